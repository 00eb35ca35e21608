//! Backend dispatch: the one place that knows which databases are compiled in.
//!
//! Each backend module implements [`Driver`] for its sqlx database type, plus
//! [`Binder`](crate::model::Binder) for its argument buffer and
//! [`RowReader`](crate::model::RowReader) for its row type. Everything above this
//! module is written once, generically over `Driver`, and reaches a concrete
//! backend through [`dispatch!`].

use std::sync::Arc;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;

pub(crate) mod errmap;

use crate::error::{Error, Result};
use crate::model::value::{Binder, RowReader};

#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
mod mysql;
#[cfg(feature = "mysql")]
pub(crate) use mysql::mariadb_returns_keys;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
mod sqlite;
#[cfg(feature = "sqlite")]
#[allow(unsafe_code)]
mod sqlite_direct;
#[cfg(feature = "sqlite")]
pub use sqlite_direct::prepared_on_this_thread as sqlite_direct_prepared;

/// Outcome of a statement that returns no rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    pub rows_affected: u64,
    /// MySQL's `LAST_INSERT_ID()` for the statement (first id of a multi-row insert).
    pub last_insert_id: Option<u64>,
}

/// Decodes one result row (an entity, a tuple of a join, a key, a count).
pub(crate) trait RowMap: Sync {
    /// What one row becomes.
    type Out: Send;
    /// Decodes `row`.
    fn map<R: RowReader + RowColumns>(&self, row: &R) -> Result<Self::Out>;
}

/// The shape of a result row: how many columns it has and what they are
/// called. Raw SQL checks a row against what it decodes into (persist's own
/// statements select what they decode).
pub(crate) trait RowColumns {
    /// The number of columns.
    fn column_count(&self) -> usize;
    /// The name of column `i`, if it has one.
    fn column_name(&self, i: usize) -> Option<String>;
}

impl<R: sqlx::Row> RowColumns for R {
    fn column_count(&self) -> usize {
        self.len()
    }
    fn column_name(&self, i: usize) -> Option<String> {
        use sqlx::Column;
        self.columns().get(i).map(|c| c.name().to_owned())
    }
}

/// Why a statement failed: the database (or driver) refused it, or one of
/// its rows did not decode.
#[derive(Debug)]
pub(crate) enum StmtError {
    Db(sqlx::Error),
    Row(Error),
}

impl From<sqlx::Error> for StmtError {
    fn from(e: sqlx::Error) -> Self {
        StmtError::Db(e)
    }
}

impl From<Error> for StmtError {
    fn from(e: Error) -> Self {
        StmtError::Row(e)
    }
}

/// What persist needs of one sqlx database type.
///
/// Statements run on [`Driver::Conn`], the connection as a session holds it
/// (for SQLite a wrapper that can reach the database directly); sqlx itself
/// (transactions, savepoints) is only reached through [`Driver::sqlx`].
pub(crate) trait Driver: sqlx::Database<Row: RowReader> {
    /// The connection a session holds.
    type Conn: Send;
    /// The bind arguments of one statement.
    type Args: Binder + Default + Send;

    /// The sqlx connection, for sqlx's own calls (transactions). SQLite's
    /// direct path is released first: sqlx must never run while it is held.
    fn sqlx(conn: &mut Self::Conn) -> &mut Self::Connection;

    /// sqlx's transaction depth, read without releasing the direct path
    /// (a lock/unlock per statement is slow, and a tight loop of them has
    /// been seen to hang sqlx's SQLite worker).
    fn transaction_depth(conn: &Self::Conn) -> usize;

    /// Runs a query and decodes every row with `m`.
    fn fetch_all<'c, M: RowMap>(
        conn: &'c mut Self::Conn,
        sql: Arc<str>,
        args: Self::Args,
        m: &'c M,
    ) -> BoxFuture<'c, Result<Vec<M::Out>, StmtError>>;

    /// Runs a query and decodes its first row, if any, with `m`.
    fn fetch_optional<'c, M: RowMap>(
        conn: &'c mut Self::Conn,
        sql: Arc<str>,
        args: Self::Args,
        m: &'c M,
    ) -> BoxFuture<'c, Result<Option<M::Out>, StmtError>>;

    /// Streams the rows of a query (always through sqlx).
    fn fetch<'c>(
        conn: &'c mut Self::Conn,
        sql: Arc<str>,
        args: Self::Args,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;

    /// Runs a statement that returns no rows.
    fn execute<'c>(
        conn: &'c mut Self::Conn,
        sql: Arc<str>,
        args: Self::Args,
    ) -> BoxFuture<'c, Result<Done, StmtError>>;

    /// Converts sea-query values (dynamic queries) into this backend's arguments.
    fn args_from_values(values: sea_query::Values) -> Self::Args;
}

/// Decodes a row into the entity `E` (its columns first).
pub(crate) struct Decoded<E>(std::marker::PhantomData<fn() -> E>);

impl<E> Decoded<E> {
    pub(crate) const NEW: Decoded<E> = Decoded(std::marker::PhantomData);
}

impl<E: crate::model::entity::Entity> RowMap for Decoded<E> {
    type Out = E;
    #[inline]
    fn map<R: RowReader>(&self, row: &R) -> Result<E> {
        E::decode_row(row, 0)
    }
}

/// Reads the first column as an integer (a count, a returned key).
pub(crate) struct FirstInt;

impl RowMap for FirstInt {
    type Out = i64;
    fn map<R: RowReader>(&self, row: &R) -> Result<i64> {
        Ok(row
            .i64(0)
            .map_err(|e| Error::decode("count", e))?
            .unwrap_or(0))
    }
}

/// Reads nothing: whether a row came back is the answer.
pub(crate) struct AnyRow;

impl RowMap for AnyRow {
    type Out = ();
    fn map<R: RowReader>(&self, _row: &R) -> Result<()> {
        Ok(())
    }
}

/// A pool of one of the compiled-in backends.
#[derive(Debug, Clone)]
pub(crate) enum AnyPool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// A pooled connection of one of the backends. A session holds one for its
/// whole life, across its transactions; DDL runs on one outside any.
#[derive(Debug)]
pub(crate) enum AnyConn {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteConn),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    MySql(sqlx::pool::PoolConnection<sqlx::MySql>),
}

#[cfg(feature = "sqlite")]
pub(crate) use sqlite::{BUSY_TIMEOUT as SQLITE_BUSY_TIMEOUT, SqliteConn};

/// Runs `$body` with `$c` bound to the backend's connection (`&mut
/// <DB as Driver>::Conn`) and `$DB` naming its sqlx database type. The only
/// match over backends that operations need.
macro_rules! dispatch {
    ($e:expr, |$c:ident, $DB:ident| $body:expr) => {
        match $e {
            #[cfg(feature = "sqlite")]
            $crate::backend::AnyConn::Sqlite(pc) => {
                #[allow(unused)]
                type $DB = ::sqlx::Sqlite;
                let $c: &mut $crate::backend::SqliteConn = pc;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::backend::AnyConn::Postgres(pc) => {
                #[allow(unused)]
                type $DB = ::sqlx::Postgres;
                let $c: &mut ::sqlx::PgConnection = &mut *pc;
                $body
            }
            #[cfg(feature = "mysql")]
            $crate::backend::AnyConn::MySql(pc) => {
                #[allow(unused)]
                type $DB = ::sqlx::MySql;
                let $c: &mut ::sqlx::MySqlConnection = &mut *pc;
                $body
            }
        }
    };
}

pub(crate) use dispatch;

/// Runs `$body` with `$p` bound to the backend's sqlx pool (`&Pool<DB>`):
/// the one match over pools, for calls every sqlx pool has.
macro_rules! dispatch_pool {
    ($e:expr, |$p:ident| $body:expr) => {
        match $e {
            #[cfg(feature = "sqlite")]
            $crate::backend::AnyPool::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            $crate::backend::AnyPool::Postgres($p) => $body,
            #[cfg(feature = "mysql")]
            $crate::backend::AnyPool::MySql($p) => $body,
        }
    };
}
pub(crate) use dispatch_pool;

/// Implements [`Driver`]'s statements through sqlx for a database whose
/// session connection is sqlx's own (`$exec` turns sqlx's result of
/// `execute` into [`Done`]).
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! driver_sqlx {
    ($DB:ty, |$r:ident| $done:expr) => {
        type Conn = <$DB as ::sqlx::Database>::Connection;
        type Args = <$DB as ::sqlx::Database>::Arguments;

        #[inline]
        fn sqlx(conn: &mut Self::Conn) -> &mut Self::Connection {
            conn
        }

        #[inline]
        fn transaction_depth(conn: &Self::Conn) -> usize {
            <<$DB as ::sqlx::Database>::TransactionManager as ::sqlx_core::transaction::TransactionManager>::get_transaction_depth(conn)
        }

        fn fetch_all<'c, M: $crate::backend::RowMap>(
            conn: &'c mut Self::Conn,
            sql: ::std::sync::Arc<str>,
            args: Self::Args,
            m: &'c M,
        ) -> ::futures_core::future::BoxFuture<'c, Result<Vec<M::Out>, $crate::backend::StmtError>> {
            Box::pin(async move {
                let rows = ::sqlx::query_with::<$DB, _>(::sqlx::AssertSqlSafe(sql), args)
                    .fetch_all(conn)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(m.map(r)?);
                }
                Ok(out)
            })
        }

        fn fetch_optional<'c, M: $crate::backend::RowMap>(
            conn: &'c mut Self::Conn,
            sql: ::std::sync::Arc<str>,
            args: Self::Args,
            m: &'c M,
        ) -> ::futures_core::future::BoxFuture<'c, Result<Option<M::Out>, $crate::backend::StmtError>> {
            Box::pin(async move {
                let row = ::sqlx::query_with::<$DB, _>(::sqlx::AssertSqlSafe(sql), args)
                    .fetch_optional(conn)
                    .await?;
                Ok(row.map(|r| m.map(&r)).transpose()?)
            })
        }

        fn fetch<'c>(
            conn: &'c mut Self::Conn,
            sql: ::std::sync::Arc<str>,
            args: Self::Args,
        ) -> ::futures_core::stream::BoxStream<
            'c,
            Result<<$DB as ::sqlx::Database>::Row, ::sqlx::Error>,
        > {
            ::sqlx::query_with::<$DB, _>(::sqlx::AssertSqlSafe(sql), args).fetch(conn)
        }

        fn execute<'c>(
            conn: &'c mut Self::Conn,
            sql: ::std::sync::Arc<str>,
            args: Self::Args,
        ) -> ::futures_core::future::BoxFuture<'c, Result<$crate::backend::Done, $crate::backend::StmtError>> {
            Box::pin(async move {
                let $r = ::sqlx::query_with::<$DB, _>(::sqlx::AssertSqlSafe(sql), args)
                    .execute(conn)
                    .await?;
                Ok($done)
            })
        }

        fn args_from_values(values: ::sea_query::Values) -> Self::Args {
            ::sqlx::IntoArguments::<$DB>::into_arguments(::sea_query_sqlx::SqlxValues(values))
        }
    };
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) use driver_sqlx;

/// Binder methods that add the value as sqlx encodes it natively.
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! native_binds {
    ($($m:ident: $t:ty),* $(,)?) => {$(
        #[inline]
        fn $m(&mut self, v: $t) -> Result<(), $crate::error::BoxDynError> {
            ::sqlx::Arguments::add(self, v)
        }
    )*};
}

/// RowReader methods that read the value as sqlx decodes it natively.
macro_rules! native_reads {
    ($($m:ident: $t:ty),* $(,)?) => {$(
        #[inline]
        fn $m(&self, i: usize) -> Result<Option<$t>, $crate::error::BoxDynError> {
            Ok(::sqlx::Row::try_get(self, i)?)
        }
    )*};
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) use native_binds;
pub(crate) use native_reads;
