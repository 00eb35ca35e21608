use persist_core::Entity;

#[derive(Entity, Clone)]
enum Note {
    Draft,
    Posted,
}

fn main() {}
