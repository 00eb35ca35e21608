use persist_core::prelude::*;

#[derive(DbEnum, Clone, Copy)]
enum Status {
    Active,
    Closed(u32),
}

fn main() {}
