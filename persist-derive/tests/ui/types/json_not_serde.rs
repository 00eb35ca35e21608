use persist_core::prelude::*;

#[derive(Clone)]
struct Opaque;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    #[persist(json)]
    extra: Opaque,
}

fn main() {}
