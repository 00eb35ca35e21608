use persist_core::Entity;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key, json)]
    id: Vec<String>,
}

fn main() {}
