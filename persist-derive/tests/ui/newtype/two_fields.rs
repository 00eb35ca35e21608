use persist_core::prelude::*;

#[derive(Field)]
struct Money(i64, String);

fn main() {}
