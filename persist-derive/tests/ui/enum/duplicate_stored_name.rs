use persist_core::prelude::*;

#[derive(DbEnum, Clone, Copy)]
#[persist(rename_all = "lowercase")]
enum Status {
    Active,
    #[persist(rename = "active")]
    Enabled,
}

fn main() {}
