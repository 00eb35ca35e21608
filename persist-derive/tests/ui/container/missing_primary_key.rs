use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    id: i64,
    body: String,
}

fn main() {}
