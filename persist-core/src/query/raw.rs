//! Raw SQL in the session's transaction: statements that return nothing
//! ([`Session::execute`]), and queries whose rows decode into an entity
//! ([`Session::raw`]), a tuple of [`Field`]s ([`Session::raw_as`]) or an
//! `sqlx::FromRow` type ([`Session::raw_from_row`]).
//!
//! Every raw statement runs after the autoflush (registered changes are
//! written first, unless autoflush is off), on the session's connection, in
//! its transaction. A statement that may write (anything but a plain
//! `SELECT`) invalidates at commit, in the shared cache, the tables it names
//! (rows and query results); if it fails, the session is failed and rolled
//! back, as after a failed flush. Rows the session already holds keep their
//! in-session state: after a raw write of them, `refresh` or `clear` the
//! session.
//!
//! ```
//! # use persist_core::prelude::*;
//! # async fn demo(s: &Session) -> Result<(), Error> {
//! let n: u64 = s
//!     .execute("UPDATE accounts SET frozen = ? WHERE balance_cents < ?")
//!     .bind(true)
//!     .bind(0i64)
//!     .await?;                                     // rows affected
//! let rows: Vec<(i64, Option<String>)> = s
//!     .raw_as("SELECT id, nickname FROM accounts ORDER BY id")
//!     .all()
//!     .await?;
//! # Ok(()) }
//! ```

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_core::future::BoxFuture;
use futures_util::TryStreamExt;

use crate::backend::{Driver, RowColumns, RowMap, dispatch};
use crate::error::{BoxDynError, Error, Result, msg};
use crate::model::entity::{Entity, EntityMeta};
use crate::model::value::{Field, RowReader};
use crate::session::{Guard, Session, fetch_entities};

impl Session {
    /// A raw SQL query whose rows decode into `E`. The statement must select
    /// `E`'s columns in field order (as `SELECT * FROM t` does on a table
    /// persist created); bind parameters with [`RawQuery::bind`]. Registered
    /// changes are flushed first.
    pub fn raw<E: Entity>(&self, sql: impl sqlx::SqlSafeStr) -> RawQuery<'_, E> {
        RawQuery {
            sql: RawSql::new(self, sql),
            _marker: PhantomData,
        }
    }

    /// A raw SQL query whose rows decode into `T`: one [`Field`] type
    /// (`i64`, `Option<String>`, a `#[derive(DbEnum)]` enum, …) or a tuple
    /// of up to twelve, one per column, in order. Columns are decoded by
    /// persist, as entity fields are. A row with another number of columns,
    /// or a column that does not decode, is [`Error::Decode`] naming the
    /// column.
    ///
    /// ```
    /// # use persist_core::prelude::*;
    /// # async fn demo(s: &Session) -> Result<(), Error> {
    /// let (n, total): (i64, Option<i64>) = s
    ///     .raw_as("SELECT COUNT(*), SUM(balance_cents) FROM accounts")
    ///     .one()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn raw_as<T: FromFields>(&self, sql: impl sqlx::SqlSafeStr) -> RawAs<'_, T> {
        RawAs {
            sql: RawSql::new(self, sql),
            _marker: PhantomData,
        }
    }

    /// A raw SQL query whose rows decode into `T` through sqlx's
    /// [`FromRow`](sqlx::FromRow) (`#[derive(sqlx::FromRow)]`: columns
    /// matched by name). Rows are read through sqlx, on the session's
    /// connection and transaction, on every backend; `T` must implement
    /// `FromRow` for the row type of every backend compiled in (see
    /// [`SqlxFromRow`]). A missing column or one that does not decode is
    /// [`Error::Decode`] naming the column.
    pub fn raw_from_row<T: SqlxFromRow>(&self, sql: impl sqlx::SqlSafeStr) -> RawFromRow<'_, T> {
        RawFromRow {
            sql: RawSql::new(self, sql),
            _marker: PhantomData,
        }
    }

    /// A raw SQL statement that returns no rows (`INSERT`, `UPDATE`,
    /// `DELETE`, DDL the backend runs in a transaction, …). Await it (or
    /// call [`RawExecute::run`]): the number of rows affected. It runs after
    /// the autoflush, in the session's transaction; if it fails, the
    /// session is failed and rolled back, as after a failed flush.
    pub fn execute(&self, sql: impl sqlx::SqlSafeStr) -> RawExecute<'_> {
        RawExecute {
            sql: RawSql::new(self, sql),
        }
    }
}

/// What every raw statement holds: its session, its SQL and its bound
/// parameters (or the first one that did not encode).
struct RawSql<'s> {
    session: &'s Session,
    sql: Arc<str>,
    values: Result<Vec<sea_query::Value>>,
}

impl std::fmt::Debug for RawSql<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql)
    }
}

impl<'s> RawSql<'s> {
    fn new(session: &'s Session, sql: impl sqlx::SqlSafeStr) -> Self {
        let sql = sql.into_sql_str();
        RawSql {
            session,
            sql: Arc::from(sql.as_str()),
            values: Ok(Vec::new()),
        }
    }

    fn bind<V: Field>(&mut self, v: V) {
        if let Ok(values) = &mut self.values {
            match v.to_value() {
                Ok(v) => values.push(v),
                Err(e) => self.values = Err(Error::encode("raw parameter", e)),
            }
        }
    }

    /// Locks the session after the autoflush and records what the
    /// statement may write (`meta`: the entity its rows decode into);
    /// `write` counts it as a write whatever its SQL.
    async fn start(self, meta: Option<&'static EntityMeta>, write: bool) -> Result<Started<'s>> {
        let values = self.values?;
        let s = self.session;
        let guard = s.lock_for_any_read().await?;
        // A raw statement may write (`UPDATE … RETURNING *`): the tables it
        // names are invalidated at commit.
        let writes = s.cache_raw_statement(meta, &self.sql) || write;
        if write {
            s.will_write()?;
        }
        Ok(Started {
            session: s,
            guard,
            sql: self.sql,
            values,
            writes,
        })
    }
}

/// A raw statement about to run: the session locked, its bookkeeping done.
struct Started<'s> {
    session: &'s Session,
    guard: Guard,
    sql: Arc<str>,
    values: Vec<sea_query::Value>,
    /// Whether it may write: its failure then fails the session.
    writes: bool,
}

impl Started<'_> {
    /// The SQL and the parameters, for the statement's run.
    fn take(&mut self) -> (Arc<str>, Vec<sea_query::Value>) {
        (self.sql.clone(), std::mem::take(&mut self.values))
    }

    /// Passes on the statement's outcome; a failure of one that may write
    /// fails the session.
    async fn finish<T>(mut self, out: Result<T>) -> Result<T> {
        if self.writes {
            self.session.fail_on_error(&mut self.guard, out).await
        } else {
            out
        }
    }
}

/// At most one of `rows`: `None` for none, [`Error::TooManyRows`] for more.
fn at_most_one<T>(mut rows: Vec<T>) -> Result<Option<T>> {
    match rows.len() {
        0 => Ok(None),
        1 => Ok(rows.pop()),
        _ => Err(Error::TooManyRows),
    }
}

/// Implements `bind`, `optional` and `one` on top of `all`.
macro_rules! raw_query_methods {
    ($out:ty) => {
        /// Binds the next parameter (`?` on SQLite and MySQL, `$n` on
        /// PostgreSQL).
        pub fn bind<V: Field>(mut self, v: V) -> Self {
            self.sql.bind(v);
            self
        }

        /// At most one row: `None` for none, [`Error::TooManyRows`] for more.
        pub async fn optional(self) -> Result<Option<$out>> {
            at_most_one(self.all().await?)
        }

        /// Exactly one row: [`Error::NotFound`] for none,
        /// [`Error::TooManyRows`] for more.
        pub async fn one(self) -> Result<$out> {
            self.optional().await?.ok_or(Error::NotFound)
        }
    };
}

/// A raw SQL statement whose rows decode into `E`; see [`Session::raw`].
#[must_use = "a query does nothing until it is run"]
pub struct RawQuery<'s, E> {
    sql: RawSql<'s>,
    _marker: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for RawQuery<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawQuery").field("sql", &self.sql).finish()
    }
}

impl<'s, E: Entity> RawQuery<'s, E> {
    raw_query_methods!(E);

    /// All rows.
    pub async fn all(self) -> Result<Vec<E>> {
        let mut st = self.sql.start(Some(E::META), false).await?;
        let (sql, values) = st.take();
        let out = fetch_entities::<E>(st.session, &mut st.guard, sql, values).await;
        st.finish(out).await
    }
}

/// A row of [`Field`] values, one per column: a `Field` type itself or a
/// tuple of up to twelve. What [`Session::raw_as`] decodes into.
pub trait FromFields: Sized + Send + 'static {
    /// The number of columns a row must have.
    const WIDTH: usize;
    /// Decodes the row's columns; on failure, the index of the column that
    /// did not decode and why.
    #[doc(hidden)]
    fn from_fields<R: RowReader>(row: &R) -> Result<Self, (usize, BoxDynError)>;
}

impl<T: Field> FromFields for T {
    const WIDTH: usize = 1;
    fn from_fields<R: RowReader>(row: &R) -> Result<Self, (usize, BoxDynError)> {
        T::decode(row, 0).map_err(|e| (0, e))
    }
}

macro_rules! tuple_from_fields {
    ($n:literal: $($t:ident $i:tt),+) => {
        impl<$($t: Field),+> FromFields for ($($t,)+) {
            const WIDTH: usize = $n;
            fn from_fields<R: RowReader>(row: &R) -> Result<Self, (usize, BoxDynError)> {
                Ok(($($t::decode(row, $i).map_err(|e| ($i, e))?,)+))
            }
        }
    };
}

tuple_from_fields!(1: A 0);
tuple_from_fields!(2: A 0, B 1);
tuple_from_fields!(3: A 0, B 1, C 2);
tuple_from_fields!(4: A 0, B 1, C 2, D 3);
tuple_from_fields!(5: A 0, B 1, C 2, D 3, F 4);
tuple_from_fields!(6: A 0, B 1, C 2, D 3, F 4, G 5);
tuple_from_fields!(7: A 0, B 1, C 2, D 3, F 4, G 5, H 6);
tuple_from_fields!(8: A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7);
tuple_from_fields!(9: A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7, J 8);
tuple_from_fields!(10: A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7, J 8, K 9);
tuple_from_fields!(11: A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7, J 8, K 9, L 10);
tuple_from_fields!(12: A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7, J 8, K 9, L 10, M 11);

/// Decodes a row into `T` with persist's [`RowReader`], after checking its
/// number of columns.
struct FieldsMap<T>(PhantomData<fn() -> T>);

/// How an error names column `i` of `row`: its name, else its position.
fn column_label<R: RowColumns>(row: &R, i: usize) -> String {
    row.column_name(i)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("#{}", i + 1))
}

impl<T: FromFields> RowMap for FieldsMap<T> {
    type Out = T;
    fn map<R: RowReader + RowColumns>(&self, row: &R) -> Result<T> {
        let n = row.column_count();
        if n != T::WIDTH {
            let why = msg(format!(
                "the statement returns {n} column{}, {} reads {}",
                if n == 1 { "" } else { "s" },
                std::any::type_name::<T>(),
                T::WIDTH
            ));
            // The first column one side has and the other has not.
            let first = n.min(T::WIDTH);
            return Err(Error::decode(&column_label(row, first), why));
        }
        T::from_fields(row).map_err(|(i, e)| Error::decode(&column_label(row, i), e))
    }
}

/// Runs a started query; its rows decode with [`FieldsMap`].
async fn fetch_fields<T: FromFields>(st: &mut Started<'_>) -> Result<Vec<T>> {
    let (sql, values) = st.take();
    let s = st.session;
    let tx = st.guard.conn.as_mut().ok_or(Error::SessionClosed)?;
    let map = FieldsMap::<T>(PhantomData);
    dispatch!(tx, |c, DB| {
        let args = DB::args_from_values(sea_query::Values(values));
        s.run(None, &sql, DB::fetch_all(c, sql.clone(), args, &map))
            .await
    })
}

/// A raw SQL query whose rows decode into `T`, a [`Field`] or a tuple of
/// them; see [`Session::raw_as`].
#[must_use = "a query does nothing until it is run"]
pub struct RawAs<'s, T> {
    sql: RawSql<'s>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RawAs<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAs").field("sql", &self.sql).finish()
    }
}

impl<'s, T: FromFields> RawAs<'s, T> {
    raw_query_methods!(T);

    /// All rows.
    pub async fn all(self) -> Result<Vec<T>> {
        let mut st = self.sql.start(None, false).await?;
        let out = fetch_fields(&mut st).await;
        st.finish(out).await
    }
}

/// Declares a helper trait: `FromRow` for one backend's row type when that
/// backend is compiled in, nothing otherwise.
macro_rules! from_backend_row {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $row:ty) => {
        $(#[$doc])*
        #[cfg(feature = $feature)]
        pub trait $name: for<'r> sqlx::FromRow<'r, $row> {}
        #[cfg(feature = $feature)]
        impl<T: for<'r> sqlx::FromRow<'r, $row>> $name for T {}

        $(#[$doc])*
        #[cfg(not(feature = $feature))]
        pub trait $name {}
        #[cfg(not(feature = $feature))]
        impl<T> $name for T {}
    };
}

from_backend_row!(
    /// `sqlx::FromRow` for SQLite rows, when the `sqlite` feature is on
    /// (implemented by every type otherwise). Part of [`SqlxFromRow`].
    FromSqliteRow,
    "sqlite",
    sqlx::sqlite::SqliteRow
);
from_backend_row!(
    /// `sqlx::FromRow` for PostgreSQL rows, when the `postgres` feature is
    /// on (implemented by every type otherwise). Part of [`SqlxFromRow`].
    FromPgRow,
    "postgres",
    sqlx::postgres::PgRow
);
from_backend_row!(
    /// `sqlx::FromRow` for MySQL rows, when the `mysql` feature is on
    /// (implemented by every type otherwise). Part of [`SqlxFromRow`].
    FromMySqlRow,
    "mysql",
    sqlx::mysql::MySqlRow
);

/// A type [`Session::raw_from_row`] decodes into: `sqlx::FromRow` for the
/// row type of every backend compiled in (features are additive, and one
/// build may talk to several databases). `#[derive(sqlx::FromRow)]` on a
/// struct whose fields sqlx decodes on each of them gives it.
pub trait SqlxFromRow: FromSqliteRow + FromPgRow + FromMySqlRow + Send + Unpin + 'static {}

impl<T: FromSqliteRow + FromPgRow + FromMySqlRow + Send + Unpin + 'static> SqlxFromRow for T {}

/// sqlx's errors of decoding a row as persist reports them: the column
/// named, as [`Error::Decode`].
fn from_row_error(s: &Session, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::ColumnDecode { index, source } => {
            Error::decode(index.trim_matches('"'), source)
        }
        sqlx::Error::ColumnNotFound(name) => {
            Error::decode(&name, msg("the statement returns no column of that name"))
        }
        sqlx::Error::ColumnIndexOutOfBounds { index, len } => Error::decode(
            &format!("#{}", index + 1),
            msg(format!("the statement returns {len} columns")),
        ),
        e => crate::backend::errmap::map(s.backend(), None, e),
    }
}

/// Runs a started query; its rows decode with sqlx's `FromRow`.
async fn fetch_from_row<T: SqlxFromRow>(st: &mut Started<'_>) -> Result<Vec<T>> {
    let (sql, values) = st.take();
    let s = st.session;
    let tx = st.guard.conn.as_mut().ok_or(Error::SessionClosed)?;
    dispatch!(tx, |c, DB| {
        let args = DB::args_from_values(sea_query::Values(values));
        // Through sqlx on every path: on SQLite's direct path the
        // connection is sqlx's own, in the same transaction (the direct
        // path is released first).
        let rows: Vec<<DB as sqlx::Database>::Row> = s
            .run(None, &sql, async {
                Ok(DB::fetch(c, sql.clone(), args).try_collect().await?)
            })
            .await?;
        rows.iter()
            .map(|r| sqlx::FromRow::from_row(r).map_err(|e| from_row_error(s, e)))
            .collect()
    })
}

/// A raw SQL query whose rows decode into `T` through sqlx's `FromRow`;
/// see [`Session::raw_from_row`].
#[must_use = "a query does nothing until it is run"]
pub struct RawFromRow<'s, T> {
    sql: RawSql<'s>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RawFromRow<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawFromRow")
            .field("sql", &self.sql)
            .finish()
    }
}

impl<'s, T: SqlxFromRow> RawFromRow<'s, T> {
    raw_query_methods!(T);

    /// All rows.
    pub async fn all(self) -> Result<Vec<T>> {
        let mut st = self.sql.start(None, false).await?;
        let out = fetch_from_row(&mut st).await;
        st.finish(out).await
    }
}

/// Runs a started statement that returns no rows; the rows affected.
async fn execute(st: &mut Started<'_>) -> Result<u64> {
    let (sql, values) = st.take();
    let s = st.session;
    let tx = st.guard.conn.as_mut().ok_or(Error::SessionClosed)?;
    let done = dispatch!(tx, |c, DB| {
        let args = DB::args_from_values(sea_query::Values(values));
        s.run(None, &sql, DB::execute(c, sql.clone(), args)).await?
    });
    Ok(done.rows_affected)
}

/// A raw SQL statement that returns no rows; made by [`Session::execute`].
/// Await it (or call [`run`](RawExecute::run)): the number of rows
/// affected.
///
/// # Cancel safety
///
/// As every write of a session: dropped at any await point, the
/// connection is discarded (the server rolls the transaction back) and the
/// session answers [`Error::SessionFailed`] until
/// [`rollback`](Session::rollback). The raw queries (`raw_as`,
/// `raw_from_row`) are cut the same way where they may write, and like
/// any read where they cannot. The fault suite cuts all three at every poll.
#[must_use = "a statement does nothing until it is awaited"]
pub struct RawExecute<'s> {
    sql: RawSql<'s>,
}

impl std::fmt::Debug for RawExecute<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawExecute")
            .field("sql", &self.sql)
            .finish()
    }
}

impl<'s> RawExecute<'s> {
    /// Binds the next parameter (`?` on SQLite and MySQL, `$n` on
    /// PostgreSQL).
    pub fn bind<V: Field>(mut self, v: V) -> Self {
        self.sql.bind(v);
        self
    }

    /// Runs the statement; the number of rows affected (as the database
    /// counts them: MySQL counts rows changed, not rows matched).
    pub async fn run(self) -> Result<u64> {
        let mut st = self.sql.start(None, true).await?;
        let out = execute(&mut st).await;
        st.finish(out).await
    }
}

impl<'s> IntoFuture for RawExecute<'s> {
    type Output = Result<u64>;
    type IntoFuture = BoxFuture<'s, Result<u64>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
