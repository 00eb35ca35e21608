use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    #[persist(version)]
    version: String,
}

fn main() {}
