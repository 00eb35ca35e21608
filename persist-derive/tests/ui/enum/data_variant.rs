use persist_core::DbEnum;

#[derive(DbEnum, Clone, Copy)]
enum Status {
    Active,
    Closed(u32),
}

fn main() {}
