use persist_core::prelude::*;

// Every error of the input is reported in one build.
#[derive(Entity, Clone)]
#[persist(tabel = "notes")]
struct Note {
    #[persist(colum = "x")]
    id: i64,
    #[persist(version)]
    v1: String,
    #[persist(version)]
    v2: i64,
}

fn main() {
    // No follow-up errors: the stub impls keep the generated items.
    let _ = Note::ID;
    let _ = <Note as persist_core::model::Entity>::META;
}
