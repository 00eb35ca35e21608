use persist_core::prelude::*;

#[derive(Field)]
struct Seen(std::time::Instant);

fn main() {}
