use persist_core::prelude::*;

#[derive(DbEnum, Clone, Copy)]
struct Status {
    code: u8,
}

fn main() {}
