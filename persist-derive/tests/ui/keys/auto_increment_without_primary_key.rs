use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    #[persist(auto_increment)]
    seq: i64,
}

fn main() {}
