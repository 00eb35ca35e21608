use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note<T> {
    #[persist(primary_key)]
    id: i64,
    body: T,
}

fn main() {}
