use persist_core::prelude::*;

#[derive(Field)]
enum Money {
    Cents(i64),
}

fn main() {}
