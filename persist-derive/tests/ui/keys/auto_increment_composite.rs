use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Line {
    #[persist(primary_key, auto_increment)]
    order_id: i64,
    #[persist(primary_key)]
    line_no: i32,
}

fn main() {}
