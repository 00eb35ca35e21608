use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    seen: std::time::Instant,
}

fn main() {}
