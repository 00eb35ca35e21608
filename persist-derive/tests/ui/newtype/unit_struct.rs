use persist_core::prelude::*;

#[derive(Field)]
struct Nothing;

fn main() {}
