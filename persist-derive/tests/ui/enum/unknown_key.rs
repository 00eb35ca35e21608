use persist_core::prelude::*;

#[derive(DbEnum, Clone, Copy)]
enum Status {
    #[persist(rename = "on", skip)]
    Active,
}

fn main() {}
