//! Derive macros of persist: `#[derive(Entity)]` and `#[derive(DbEnum)]`.
//!
//! Use them through `persist_core`, which re-exports both; the attribute
//! reference is in persist-core's README. Each entry point is one line into
//! `expand`, which works on `proc_macro2` tokens so that the expansion can be
//! tested without the compiler.
//!
//! The pipeline runs one way: `internals::attr` parses the `#[persist(…)]`
//! attributes, `internals::ast` builds the intermediate representation with
//! resolved names, `internals::check` validates it, and `expand` generates
//! code from the representation only. Every error is collected in an
//! `internals::Ctxt` and reported at once.

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
