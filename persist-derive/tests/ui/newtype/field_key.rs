use persist_core::prelude::*;

#[derive(Field)]
#[persist(table = "money")]
struct Money(#[persist(unique)] i64);

fn main() {}
