use persist_core::prelude::*;

#[derive(Entity, Clone)]
#[persist(nme = "notes")]
struct Note {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
