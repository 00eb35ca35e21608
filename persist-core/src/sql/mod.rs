//! SQL text: the dialect of each [`Backend`], the fixed statement shapes
//! built once per entity and backend, and the schema (DDL) of entities.
//!
//! Nothing here touches a connection: this layer turns entity metadata
//! into SQL text, and the drivers above it run that text.

mod dialect;
pub(crate) mod inspect;
pub(crate) mod schema;
pub(crate) mod statements;

pub use dialect::Backend;
