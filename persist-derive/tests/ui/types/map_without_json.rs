use std::collections::HashMap;

use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    counts: HashMap<String, i32>,
}

fn main() {}
