use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Account {
    #[persist(primary_key)]
    id: i64,
    #[persist(references = "customers(id)")]
    customer_id: i64,
}

fn main() {}
