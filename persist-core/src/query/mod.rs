//! Reading and writing beyond one entity at a time, on a [`Session`]:
//! typed queries with filters and ordering, projections and aggregates,
//! joins, relation loaders, bulk `UPDATE`/`DELETE`, and the repositories
//! `#[derive(Entity)]` generates.
//!
//! Everything here is built on the session's operations; the session knows
//! nothing of this layer (the methods it adds to [`Session`], such as
//! [`Session::query`], are defined here).
//!
//! [`Session`]: crate::session::Session
//! [`Session::query`]: crate::session::Session::query

pub(crate) mod bulk;
pub(crate) mod column;
pub(crate) mod entity_query;
pub(crate) mod expr;
pub(crate) mod history;
pub(crate) mod join;
pub(crate) mod loader;
pub(crate) mod raw;
pub(crate) mod relation;
pub(crate) mod repo;
pub(crate) mod select;
pub(crate) mod upsert;

pub use bulk::{DeleteAll, UpdateAll};
pub use column::{Column, Filter, Order, TextColumn};
pub use entity_query::{IntoOrder, Query};
pub use expr::ColumnExpr;
pub use history::{At, Revision, RevisionChange, Version};
pub use join::{InnerJoin, JoinFilter, JoinKind, JoinOrder, JoinQuery, LeftJoin, OnLeft, OnRight};
pub use loader::Load;
pub use raw::{
    FromFields, FromMySqlRow, FromPgRow, FromSqliteRow, RawAs, RawExecute, RawFromRow, RawQuery,
    SqlxFromRow,
};
pub use repo::Repo;
pub use select::{Agg, AggValue, Having, Select, Selectable, Summable, count_all};
pub use upsert::Upsert;
