//! The model: what an entity is to persist. The [`Entity`] trait that
//! `#[derive(Entity)]` implements, its metadata (table, columns, keys,
//! relations), and the [`Field`] types a column may hold.
//!
//! This is the bottom layer: it names nothing above it.

pub(crate) mod entity;
pub(crate) mod row;
pub(crate) mod sql_cache;
pub(crate) mod value;

pub use entity::{
    BelongsTo, ChangeKind, ColumnMeta, Entity, EntityList, EntityMeta, Hooks, Key, MetaFn,
    OnDelete, Related, RelationKind, RelationMeta,
};
pub(crate) use sql_cache::SqlCache;
pub use value::{Binder, DbEnum, Field, RowReader, SqlType, Value};

/// The error type of [`Field`], [`Binder`] and [`RowReader`] methods (any
/// error, boxed), here beside them for hand-written `Field` impls.
pub use crate::error::BoxDynError;

/// The derives, in the macro namespace beside their traits: `model::Entity`
/// names both the trait and `#[derive(Entity)]`, `model::Field` both the
/// trait and the newtype derive.
#[cfg(feature = "derive")]
pub use persist_derive::{DbEnum, Entity, Field};
