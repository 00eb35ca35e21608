use persist_core::DbEnum;

#[derive(DbEnum, Clone, Copy)]
enum Status {
    #[persist(rename = "on", skip)]
    Active,
}

fn main() {}
