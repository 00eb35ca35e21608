use persist_core::prelude::*;

#[derive(DbEnum, Clone, Copy)]
enum Status<T> {
    Active,
    Other(std::marker::PhantomData<T>),
}

fn main() {}
