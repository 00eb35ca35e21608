use persist_core::prelude::*;

#[derive(Entity, Clone)]
struct Note(i64, String);

fn main() {}
