use persist_core::DbEnum;

#[derive(DbEnum, Clone, Copy)]
enum Status<T> {
    Active,
    Other(std::marker::PhantomData<T>),
}

fn main() {}
