use persist_core::prelude::*;

#[derive(Clone)]
struct Customer {
    id: i64,
}

#[derive(Entity, Clone)]
struct Account {
    #[persist(primary_key)]
    id: i64,
    #[persist(references = "Customer")]
    customer_id: i64,
}

fn main() {}
