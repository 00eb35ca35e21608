//! Derive macros of persist: `#[derive(Entity)]`, `#[derive(DbEnum)]` and
//! `#[derive(Field)]`.
//!
//! Use them through `persist_core`, which re-exports them; the attribute
//! reference is in persist-core's README. Each entry point is one line into
//! `expand`, which works on `proc_macro2` tokens so that the expansion can be
//! tested without the compiler.
//!
//! The pipeline runs one way: `internals::attr` parses the `#[persist(…)]`
//! attributes, `internals::ast` builds the intermediate representation with
//! resolved names, `internals::check` validates it, and `expand` generates
//! code from the representation only. Every error is collected in an
//! `internals::Ctxt` and reported at once.
//!
//! # `crate = "…"`
//!
//! Generated code names persist-core as `::persist_core`. An application
//! that reaches it under another path (a re-export, a facade crate, a
//! renamed dependency) gives that path as a container key, on an entity
//! struct, a `DbEnum` enum or a `Field` newtype alike, as with serde's `#[serde(crate = "…")]`:
//!
//! ```text
//! mod storage {
//!     pub use persist_core as engine;
//! }
//!
//! #[derive(storage::engine::Entity, Clone, Debug)]
//! #[persist(crate = "crate::storage::engine", table = "notes")]
//! pub struct Note {
//!     #[persist(primary_key, auto_increment)]
//!     pub id: i64,
//!     pub mood: Mood,
//! }
//!
//! #[derive(storage::engine::DbEnum, Clone, Copy, Debug)]
//! #[persist(crate = "crate::storage::engine")]
//! pub enum Mood { Calm, NotCalm }
//! ```
//!
//! The value is a module path as written in code at the derive
//! (`"::facade::persist"`, `"crate::storage::engine"`, `"engine"`), resolved
//! there; a string that is not such a path, and a second `crate` key, are
//! compile errors.

mod expand;
mod internals;

use proc_macro::TokenStream;

/// Implements `persist_core::model::Entity` for a struct with named fields, and
/// generates its column constants and its repository (`<Name>Repo`).
#[proc_macro_derive(Entity, attributes(persist))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    expand::entity::derive(input.into()).into()
}

/// Implements `persist_core::model::DbEnum` and `persist_core::model::Field` for a
/// unit-only enum stored as text.
#[proc_macro_derive(DbEnum, attributes(persist))]
pub fn derive_db_enum(input: TokenStream) -> TokenStream {
    expand::db_enum::derive(input.into()).into()
}

/// Implements `persist_core::model::Field` for a single-field newtype
/// (`struct Money(i64);`, `struct Email { value: String }`): it is stored
/// in its field's column, every method delegating to the field's type.
#[proc_macro_derive(Field, attributes(persist))]
pub fn derive_field(input: TokenStream) -> TokenStream {
    expand::newtype::derive(input.into()).into()
}
