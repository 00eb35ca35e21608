use persist_core::prelude::*;

#[derive(Entity, Clone)]
#[persist(table = "")]
struct Note {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
