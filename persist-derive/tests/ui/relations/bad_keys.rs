use persist_core::prelude::*;

#[derive(Entity, Clone)]
#[persist(has_many(Post, by = "user_id", on_delete = "explode"), many_to_many(Tag, by = "user_id"))]
struct User {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
