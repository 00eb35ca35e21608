use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key, auto_increment)]
    id: String,
}

fn main() {}
