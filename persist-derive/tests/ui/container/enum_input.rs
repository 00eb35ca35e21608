use persist_core::prelude::*;

#[derive(Entity, Clone)]
enum Note {
    Draft,
    Posted,
}

fn main() {}
