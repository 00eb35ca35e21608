use persist_core::Entity;

#[derive(Entity, Clone)]
struct Note(i64, String);

fn main() {}
