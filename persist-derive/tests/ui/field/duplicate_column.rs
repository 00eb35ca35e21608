use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    title: String,
    #[persist(column = "title")]
    heading: String,
}

fn main() {}
