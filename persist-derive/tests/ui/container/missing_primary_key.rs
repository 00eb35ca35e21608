use persist_core::Entity;

#[derive(Entity, Clone)]
struct Note {
    id: i64,
    body: String,
}

fn main() {}
