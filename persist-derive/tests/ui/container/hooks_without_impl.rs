use persist_core::prelude::*;

// `hooks` needs `impl Hooks for Note`.
#[derive(Entity, Clone)]
#[persist(hooks)]
struct Note {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
