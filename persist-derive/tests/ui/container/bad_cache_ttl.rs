use persist_core::prelude::*;

#[derive(Entity, Clone)]
#[persist(cache(ttl = "ten minutes"))]
struct Note {
    #[persist(primary_key)]
    id: i64,
}

#[derive(Entity, Clone)]
#[persist(cache(size = 10))]
struct Other {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
