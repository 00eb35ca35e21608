use std::collections::HashMap;

use persist_core::Entity;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    counts: HashMap<String, i32>,
}

fn main() {}
