use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct User {
    #[persist(primary_key)]
    id: i64,
    #[persist(unique_live)]
    email: String,
}

#[derive(Entity, Clone)]
struct Member {
    #[persist(primary_key)]
    id: i64,
    #[persist(unique, unique_live)]
    email: String,
    #[persist(soft_delete)]
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn main() {}
