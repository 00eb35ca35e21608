use persist_core::DbEnum;

#[derive(DbEnum, Clone, Copy)]
struct Status {
    code: u8,
}

fn main() {}
