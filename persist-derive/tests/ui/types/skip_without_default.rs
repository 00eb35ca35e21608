use persist_core::prelude::*;

#[derive(Clone)]
struct Cache;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    #[persist(skip)]
    cache: Cache,
}

fn main() {}
