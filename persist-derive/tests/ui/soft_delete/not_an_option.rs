use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: i64,
    #[persist(soft_delete)]
    deleted_at: chrono::DateTime<chrono::Utc>,
}

fn main() {}
