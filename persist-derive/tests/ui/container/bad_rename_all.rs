use persist_core::prelude::*;

#[derive(Entity, Clone)]
#[persist(rename_all = "Title Case")]
struct Note {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
