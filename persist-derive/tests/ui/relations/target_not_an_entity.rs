use persist_core::prelude::*;

#[derive(Clone)]
struct Post {
    id: i64,
}

#[derive(Entity, Clone)]
#[persist(has_many(Post, by = "user_id"))]
struct User {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
