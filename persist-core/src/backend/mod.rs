//! Backend dispatch: the one place that knows which databases are compiled in.
//!
//! Each backend module implements [`Driver`] for its sqlx database type, plus
//! [`Binder`](crate::Binder) for its argument buffer and
//! [`RowReader`](crate::RowReader) for its row type. Everything above this
//! module is written once, generically over `Driver`, and reaches a concrete
//! backend through [`dispatch!`].

use std::sync::Arc;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;

use crate::value::{Binder, RowReader};

#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
mod mysql;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
mod sqlite;

/// The kind of database a [`Db`](crate::Db) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite (feature `sqlite`, the default).
    Sqlite = 0,
    /// PostgreSQL (feature `postgres`).
    Postgres = 1,
    /// MySQL or MariaDB (feature `mysql`).
    MySql = 2,
}

impl Backend {
    /// The most bind parameters one statement may carry on this backend
    /// (SQLite's default limit is 32766, PostgreSQL's and MySQL's 65535).
    pub const fn max_binds(self) -> usize {
        match self {
            Backend::Sqlite => 32_766,
            Backend::Postgres | Backend::MySql => 65_535,
        }
    }

    /// Whether `INSERT … RETURNING` gives back generated keys.
    pub const fn has_returning(self) -> bool {
        !matches!(self, Backend::MySql)
    }
}

/// Outcome of a statement that returns no rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    pub rows_affected: u64,
    /// MySQL's `LAST_INSERT_ID()` for the statement (first id of a multi-row insert).
    pub last_insert_id: Option<u64>,
}

/// What persist needs of one sqlx database type.
pub(crate) trait Driver: sqlx::Database<Arguments: Binder, Row: RowReader> {
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: Arc<str>,
        args: Self::Arguments,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: Arc<str>,
        args: Self::Arguments,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        sql: Arc<str>,
        args: Self::Arguments,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;

    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: Arc<str>,
        args: Self::Arguments,
    ) -> BoxFuture<'c, Result<Done, sqlx::Error>>;

    /// Converts sea-query values (dynamic queries) into this backend's arguments.
    fn args_from_values(values: sea_query::Values) -> Self::Arguments;
}

/// Which sea-query builder renders SQL for a backend.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeaBuilder {
    Sqlite,
    Postgres,
    MySql,
}

impl SeaBuilder {
    pub(crate) fn build_select(
        self,
        q: &sea_query::SelectStatement,
    ) -> (String, sea_query::Values) {
        match self {
            SeaBuilder::Sqlite => q.build(sea_query::SqliteQueryBuilder),
            SeaBuilder::Postgres => q.build(sea_query::PostgresQueryBuilder),
            SeaBuilder::MySql => q.build(sea_query::MysqlQueryBuilder),
        }
    }
}

impl Backend {
    pub(crate) fn sea(self) -> SeaBuilder {
        match self {
            Backend::Sqlite => SeaBuilder::Sqlite,
            Backend::Postgres => SeaBuilder::Postgres,
            Backend::MySql => SeaBuilder::MySql,
        }
    }

    /// Quotes an identifier for this backend.
    pub(crate) fn quote(self, ident: &str) -> String {
        match self {
            Backend::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// The `n`-th (1-based) bind placeholder.
    pub(crate) fn placeholder(self, n: usize, out: &mut String) {
        use std::fmt::Write;
        match self {
            Backend::Postgres => {
                let _ = write!(out, "${n}");
            }
            _ => out.push('?'),
        }
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
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    MySql(sqlx::pool::PoolConnection<sqlx::MySql>),
}

/// Runs `$body` with `$c` bound to the backend's connection (`&mut
/// DB::Connection`) and `$DB` naming its sqlx database type. The only match
/// over backends that operations need.
macro_rules! dispatch {
    ($e:expr, |$c:ident, $DB:ident| $body:expr) => {
        match $e {
            #[cfg(feature = "sqlite")]
            $crate::backend::AnyConn::Sqlite(pc) => {
                #[allow(unused)]
                type $DB = ::sqlx::Sqlite;
                let $c: &mut ::sqlx::SqliteConnection = &mut *pc;
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

/// Implements the statement methods of [`Driver`] for one sqlx database.
macro_rules! driver_exec {
    ($DB:ty) => {
        fn fetch_all<'c>(
            conn: &'c mut <$DB as ::sqlx::Database>::Connection,
            sql: ::std::sync::Arc<str>,
            args: <$DB as ::sqlx::Database>::Arguments,
        ) -> ::futures_core::future::BoxFuture<
            'c,
            Result<Vec<<$DB as ::sqlx::Database>::Row>, ::sqlx::Error>,
        > {
            Box::pin(::sqlx::query_with::<$DB, _>(::sqlx::AssertSqlSafe(sql), args).fetch_all(conn))
        }

        fn fetch_optional<'c>(
            conn: &'c mut <$DB as ::sqlx::Database>::Connection,
            sql: ::std::sync::Arc<str>,
            args: <$DB as ::sqlx::Database>::Arguments,
        ) -> ::futures_core::future::BoxFuture<
            'c,
            Result<Option<<$DB as ::sqlx::Database>::Row>, ::sqlx::Error>,
        > {
            Box::pin(
                ::sqlx::query_with::<$DB, _>(::sqlx::AssertSqlSafe(sql), args).fetch_optional(conn),
            )
        }

        fn fetch<'c>(
            conn: &'c mut <$DB as ::sqlx::Database>::Connection,
            sql: ::std::sync::Arc<str>,
            args: <$DB as ::sqlx::Database>::Arguments,
        ) -> ::futures_core::stream::BoxStream<
            'c,
            Result<<$DB as ::sqlx::Database>::Row, ::sqlx::Error>,
        > {
            ::sqlx::query_with::<$DB, _>(::sqlx::AssertSqlSafe(sql), args).fetch(conn)
        }

        fn args_from_values(values: ::sea_query::Values) -> <$DB as ::sqlx::Database>::Arguments {
            ::sqlx::IntoArguments::<$DB>::into_arguments(::sea_query_sqlx::SqlxValues(values))
        }
    };
}

pub(crate) use driver_exec;

/// Binder methods that add the value as sqlx encodes it natively.
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

pub(crate) use {native_binds, native_reads};
