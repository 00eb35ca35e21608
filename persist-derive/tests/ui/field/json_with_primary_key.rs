use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key, json)]
    id: Vec<String>,
}

fn main() {}
