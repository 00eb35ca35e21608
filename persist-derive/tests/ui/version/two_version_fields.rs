use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    #[persist(version)]
    version: i64,
    #[persist(version)]
    revision: i32,
}

fn main() {}
