#![doc = include_str!("tour.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
pub mod cache;
mod conn;
pub mod db;
pub mod error;
pub mod model;
pub mod query;
pub mod session;
pub mod sql;

pub mod prelude {
    //! What an application needs every day: `use persist_core::prelude::*;`.
    //!
    //! The derives and their traits ([`Entity`], [`DbEnum`], [`Field`]), the
    //! database and its sessions ([`Db`], [`Session`], [`SessionOptions`]), errors
    //! ([`Error`], [`Result`]), and the traits whose methods queries call
    //! ([`Load`], [`TextColumn`]). Everything else lives in the module of its
    //! concern.

    pub use crate::db::Db;
    pub use crate::error::{Error, Result};
    pub use crate::model::{DbEnum, Entity, Field, Hooks};
    pub use crate::query::{Load, TextColumn};
    pub use crate::session::{Session, SessionOptions};
}

/// The README's examples, compiled and run as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/shop.md")]
pub struct ShopGuideDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/audit.md")]
pub struct AuditGuideDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/attributes.md")]
pub struct AttributesDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/types.md")]
pub struct TypesDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/sessions.md")]
pub struct SessionsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/operations.md")]
pub struct OperationsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/relations.md")]
pub struct RelationsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/cache.md")]
pub struct CacheDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/faults.md")]
pub struct FaultsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/errors.md")]
pub struct ErrorsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/raw.md")]
pub struct RawDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/hooks.md")]
pub struct HooksDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/soft_delete.md")]
pub struct SoftDeleteDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../docs/reference/history.md")]
pub struct HistoryDoctests;

/// Re-export of sqlx, for migrations (`persist_core::sqlx::migrate!`) and
/// raw SQL.
pub use sqlx;

/// Re-export of rust_decimal, whose `Decimal` is a field type with the
/// `decimal` feature.
#[cfg(feature = "decimal")]
#[cfg_attr(docsrs, doc(cfg(feature = "decimal")))]
pub use rust_decimal;

/// Paths used by code that `#[derive(Entity)]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "sqlite")]
    pub use crate::backend::sqlite_direct_prepared;
    pub use crate::error::BoxDynError;
    pub use crate::error::{Error, Result};
    pub use crate::model::entity::{
        AutoKeyField, BelongsTo, ChangeKind, ColumnMeta, Entity, EntityMeta, Hooks, Key, OnDelete,
        Related, RelationKind, RelationMeta, SoftDeleteField, TimestampField, VersionField,
    };
    pub use crate::model::sql_cache::SqlCache;
    pub use crate::model::value::{Binder, DbEnum, Field, RowReader, SqlType, enum_field};
    pub use crate::query::column::Column;
    pub use crate::query::repo::Repo;
    pub use crate::session::Session;
    pub use chrono::{DateTime, Utc};
    pub use sea_query::Value;

    /// Binds a [`Field`], naming the column in an encode error.
    #[inline]
    pub fn bind_field<T: Field, B: Binder>(v: &T, b: &mut B, column: &str) -> Result<()> {
        v.bind(b).map_err(|e| Error::encode(column, e))
    }

    /// Decodes a [`Field`], naming the column in a decode error.
    #[inline]
    pub fn decode_field<T: Field, R: RowReader>(r: &R, i: usize, column: &str) -> Result<T> {
        T::decode(r, i).map_err(|e| Error::decode(column, e))
    }

    /// The outcome of [`Field::bind`], naming the column in an encode error.
    /// Not generic over the field, so the derive's call `<T as Field>::bind`
    /// is the only place a type without `Field` is reported.
    #[inline]
    pub fn encoded(r: Result<(), BoxDynError>, column: &str) -> Result<()> {
        r.map_err(|e| Error::encode(column, e))
    }

    /// The outcome of [`Field::decode`], naming the column in a decode error.
    #[inline]
    pub fn decoded<T>(r: Result<T, BoxDynError>, column: &str) -> Result<T> {
        r.map_err(|e| Error::decode(column, e))
    }

    /// Binds a `#[persist(json)]` field.
    pub fn bind_json<T: serde::Serialize, B: Binder>(v: &T, b: &mut B, column: &str) -> Result<()> {
        crate::model::value::json_field::bind(v, b).map_err(|e| Error::encode(column, e))
    }

    /// Decodes a `#[persist(json)]` field.
    pub fn decode_json<T: serde::de::DeserializeOwned, R: RowReader>(
        r: &R,
        i: usize,
        column: &str,
    ) -> Result<T> {
        crate::model::value::json_field::decode(r, i).map_err(|e| Error::decode(column, e))
    }

    /// Stores a generated key into an auto-increment field.
    pub fn set_generated_key<T: AutoKeyField>(f: &mut T, id: i64, column: &str) -> Result<()> {
        f.set_generated(id).map_err(|e| Error::decode(column, e))
    }

    /// The error for a column index the entity does not have.
    #[cold]
    pub fn no_column(table: &str, col: usize) -> Result<()> {
        Err(Error::Invalid(format!("{table} has no column #{col}")))
    }

    /// Wraps a conversion failure of a derived enum.
    pub fn boxed(e: impl Into<BoxDynError>) -> BoxDynError {
        e.into()
    }
}
