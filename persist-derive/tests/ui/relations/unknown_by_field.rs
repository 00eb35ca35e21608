use persist_core::prelude::*;

#[derive(Entity, Clone)]
#[persist(has_many(Post, by = "owner_id"))]
struct User {
    #[persist(primary_key)]
    id: i64,
}

#[derive(Entity, Clone)]
struct Post {
    #[persist(primary_key)]
    id: i64,
    #[persist(references = "User")]
    user_id: i64,
}

fn main() {}
