use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: Option<i64>,
}

fn main() {}
