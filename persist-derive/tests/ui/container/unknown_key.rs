use persist_core::Entity;

#[derive(Entity, Clone)]
#[persist(nme = "notes")]
struct Note {
    #[persist(primary_key)]
    id: i64,
}

fn main() {}
