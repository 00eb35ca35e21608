use persist_core::Entity;

#[derive(Entity, Clone)]
struct Note {
    #[persist(primary_key)]
    id: Option<i64>,
}

fn main() {}
