//! SQLite: argument binding, row reading and statement execution, on the
//! direct path ([`sqlite_direct`](super::sqlite_direct)) or through sqlx.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Utc};
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, Row};
use sqlx_core::transaction::TransactionManager;
use uuid::Uuid;

use super::sqlite_direct::{Direct, Ran, Statements};
use super::{Done, Driver, RowMap, StmtError, native_reads};
use crate::error::BoxDynError;
use crate::model::value::{Binder, RowReader, SqlType};

/// The busy timeout persist opens SQLite connections with.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// One bind argument, in SQLite's storage classes, encoded as sqlx encodes
/// it (so both paths write the same bytes).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Null,
    Int(i64),
    Double(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// The arguments of one SQLite statement.
#[derive(Debug, Default)]
pub(crate) struct SqliteArgs {
    values: Vec<Arg>,
    /// Set when some dynamic value has no direct encoding: the statement
    /// then runs through sqlx with sqlx's own arguments.
    sqlx: Option<SqliteArguments>,
}

impl SqliteArgs {
    fn push(&mut self, a: Arg) -> Result<(), BoxDynError> {
        self.values.push(a);
        Ok(())
    }

    /// sqlx's arguments for the same values.
    fn into_sqlx(self) -> SqliteArguments {
        if let Some(a) = self.sqlx {
            return a;
        }
        let mut out = SqliteArguments::default();
        for v in self.values {
            // Adding these types to sqlx's buffer cannot fail.
            let _ = match v {
                Arg::Null => out.add(None::<i64>),
                Arg::Int(v) => out.add(v),
                Arg::Double(v) => out.add(v),
                Arg::Text(v) => out.add(v),
                Arg::Blob(v) => out.add(v),
            };
        }
        out
    }
}

fn text_datetime<Tz: TimeZone>(v: &DateTime<Tz>) -> Arg
where
    Tz::Offset: std::fmt::Display,
{
    Arg::Text(v.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

fn text_timestamp(v: &NaiveDateTime) -> Arg {
    Arg::Text(v.format("%F %T%.f").to_string())
}

fn text_date(v: &NaiveDate) -> Arg {
    Arg::Text(v.format("%F").to_string())
}

fn text_time(v: &NaiveTime) -> Arg {
    Arg::Text(v.format("%T%.f").to_string())
}

/// A decimal as SQLite stores it: normalized text (`1.5`, not `1.50`), exact
/// (no REAL rounding), and one text per value, so `=` compares values.
#[cfg(feature = "decimal")]
fn text_decimal(v: &rust_decimal::Decimal) -> Arg {
    Arg::Text(v.normalize().to_string())
}

/// A stored SQLite value as a decimal: the text persist writes, or an
/// INTEGER or REAL another writer left (a REAL is as exact as it was).
#[cfg(feature = "decimal")]
pub(crate) enum StoredDecimal<'a> {
    Text(&'a str),
    Int(i64),
    Real(f64),
}

#[cfg(feature = "decimal")]
impl StoredDecimal<'_> {
    pub(crate) fn decimal(self) -> Result<rust_decimal::Decimal, BoxDynError> {
        use rust_decimal::Decimal;
        match self {
            StoredDecimal::Text(s) => Decimal::from_str_exact(s.trim())
                .or_else(|_| Decimal::from_scientific(s.trim()))
                .map_err(|e| format!("`{s}` is not a decimal: {e}").into()),
            StoredDecimal::Int(v) => Ok(Decimal::from(v)),
            StoredDecimal::Real(v) => {
                Decimal::try_from(v).map_err(|e| format!("{v} does not fit a decimal: {e}").into())
            }
        }
    }
}

impl Binder for SqliteArgs {
    fn null(&mut self, _ty: SqlType) -> Result<(), BoxDynError> {
        self.push(Arg::Null)
    }
    fn bool(&mut self, v: bool) -> Result<(), BoxDynError> {
        self.push(Arg::Int(i64::from(v)))
    }
    fn i16(&mut self, v: i16) -> Result<(), BoxDynError> {
        self.push(Arg::Int(i64::from(v)))
    }
    fn i32(&mut self, v: i32) -> Result<(), BoxDynError> {
        self.push(Arg::Int(i64::from(v)))
    }
    fn i64(&mut self, v: i64) -> Result<(), BoxDynError> {
        self.push(Arg::Int(v))
    }
    fn f32(&mut self, v: f32) -> Result<(), BoxDynError> {
        self.push(Arg::Double(f64::from(v)))
    }
    fn f64(&mut self, v: f64) -> Result<(), BoxDynError> {
        self.push(Arg::Double(v))
    }
    fn str(&mut self, v: &str) -> Result<(), BoxDynError> {
        self.push(Arg::Text(v.to_owned()))
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), BoxDynError> {
        self.push(Arg::Blob(v.to_vec()))
    }
    fn json(&mut self, v: &serde_json::Value) -> Result<(), BoxDynError> {
        // Stored as JSON text (MariaDB's JSON is LONGTEXT with a check).
        self.push(Arg::Text(v.to_string()))
    }
    fn timestamptz(&mut self, v: DateTime<Utc>) -> Result<(), BoxDynError> {
        self.push(text_datetime(&v))
    }
    fn timestamp(&mut self, v: NaiveDateTime) -> Result<(), BoxDynError> {
        self.push(text_timestamp(&v))
    }
    fn date(&mut self, v: NaiveDate) -> Result<(), BoxDynError> {
        self.push(text_date(&v))
    }
    fn time(&mut self, v: NaiveTime) -> Result<(), BoxDynError> {
        self.push(text_time(&v))
    }
    fn uuid(&mut self, v: Uuid) -> Result<(), BoxDynError> {
        self.push(Arg::Blob(v.as_bytes().to_vec()))
    }
    #[cfg(feature = "decimal")]
    fn decimal(&mut self, v: rust_decimal::Decimal) -> Result<(), BoxDynError> {
        self.push(text_decimal(&v))
    }
}

/// A sea-query value as sea-query-sqlx would bind it; `None` for a kind
/// the direct path does not encode.
fn arg_of(v: &sea_query::Value) -> Option<Arg> {
    use sea_query::Value as V;
    fn or_null<T>(v: &Option<T>, f: impl FnOnce(&T) -> Arg) -> Arg {
        v.as_ref().map_or(Arg::Null, f)
    }
    Some(match v {
        V::Bool(v) => or_null(v, |v| Arg::Int(i64::from(*v))),
        V::TinyInt(v) => or_null(v, |v| Arg::Int(i64::from(*v))),
        V::SmallInt(v) => or_null(v, |v| Arg::Int(i64::from(*v))),
        V::Int(v) => or_null(v, |v| Arg::Int(i64::from(*v))),
        V::BigInt(v) => or_null(v, |v| Arg::Int(*v)),
        V::TinyUnsigned(v) => or_null(v, |v| Arg::Int(i64::from(*v))),
        V::SmallUnsigned(v) => or_null(v, |v| Arg::Int(i64::from(*v))),
        V::Unsigned(v) => or_null(v, |v| Arg::Int(i64::from(*v))),
        V::BigUnsigned(Some(v)) => Arg::Int(i64::try_from(*v).ok()?),
        V::BigUnsigned(None) => Arg::Null,
        V::Float(v) => or_null(v, |v| Arg::Double(f64::from(*v))),
        V::Double(v) => or_null(v, |v| Arg::Double(*v)),
        V::String(v) => or_null(v, |v| Arg::Text(v.clone())),
        V::Char(v) => or_null(v, |v| Arg::Text(v.to_string())),
        V::Bytes(v) => or_null(v, |v| Arg::Blob(v.clone())),
        V::Json(v) => or_null(v, |v| Arg::Text(v.to_string())),
        V::ChronoDate(v) => or_null(v, text_date),
        V::ChronoTime(v) => or_null(v, text_time),
        V::ChronoDateTime(v) => or_null(v, text_timestamp),
        V::ChronoDateTimeUtc(v) => or_null(v, text_datetime),
        V::ChronoDateTimeLocal(v) => or_null(v, text_datetime),
        V::ChronoDateTimeWithTimeZone(v) => or_null(v, text_datetime),
        V::Uuid(v) => or_null(v, |v| Arg::Blob(v.as_bytes().to_vec())),
        #[cfg(feature = "decimal")]
        V::Decimal(v) => or_null(v, text_decimal),
        _ => return None,
    })
}

impl RowReader for SqliteRow {
    fn json(&self, i: usize) -> Result<Option<serde_json::Value>, BoxDynError> {
        match self.try_get::<Option<String>, _>(i)? {
            None => Ok(None),
            Some(s) => Ok(Some(serde_json::from_str(&s)?)),
        }
    }
    native_reads!(
        bool: bool, i16: i16, i32: i32, i64: i64, f32: f32, f64: f64,
        string: String, bytes: Vec<u8>, timestamptz: DateTime<Utc>,
        timestamp: NaiveDateTime, date: NaiveDate, time: NaiveTime, uuid: Uuid,
    );
    #[cfg(feature = "decimal")]
    fn decimal(&self, i: usize) -> Result<Option<rust_decimal::Decimal>, BoxDynError> {
        let stored = match self.try_get::<Option<String>, _>(i) {
            Ok(None) => return Ok(None),
            Ok(Some(s)) => return StoredDecimal::Text(&s).decimal().map(Some),
            Err(e) => match self.try_get::<i64, _>(i) {
                Ok(v) => StoredDecimal::Int(v),
                Err(_) => StoredDecimal::Real(self.try_get::<f64, _>(i).map_err(|_| e)?),
            },
        };
        stored.decimal().map(Some)
    }
}

/// A session's SQLite connection: sqlx's pooled connection, the direct
/// path's prepared statements on it, kept from one transaction to the next
/// (and across sessions while the connection is parked), and, while a
/// transaction runs statements, the direct path locked on it.
pub(crate) struct SqliteConn {
    // Declared first: dropped (lock released) before the connection goes
    // back to the pool.
    direct: Option<Direct>,
    /// Whether statements take the direct path (`DbBuilder::sqlite_direct`).
    use_direct: bool,
    /// The prepared statements of the direct path, owned by the connection
    /// once locked (sqlx finalizes them when it closes it).
    statements: Statements,
    conn: PoolConnection<Sqlite>,
}

impl std::fmt::Debug for SqliteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConn")
            .field("direct", &self.use_direct)
            .field("locked", &self.direct.is_some())
            .finish()
    }
}

impl SqliteConn {
    pub(crate) fn new(conn: PoolConnection<Sqlite>, use_direct: bool) -> SqliteConn {
        SqliteConn {
            direct: None,
            use_direct,
            statements: Statements::default(),
            conn,
        }
    }

    /// The direct path, locked on first use; `None` when it is off.
    async fn direct(&mut self) -> Result<Option<&mut Direct>, sqlx::Error> {
        if !self.use_direct {
            return Ok(None);
        }
        if self.direct.is_none() {
            self.direct =
                Some(Direct::lock(&mut self.conn, &mut self.statements, BUSY_TIMEOUT).await?);
        }
        Ok(self.direct.as_mut())
    }

    /// sqlx's connection, with the direct path released.
    fn sqlx(&mut self) -> &mut SqliteConnection {
        self.direct = None;
        &mut self.conn
    }

    /// The pooled connection, with the direct path released, for the
    /// connection layer to release or discard. Its prepared statements go
    /// with it: sqlx finalizes them when it closes the connection, or the
    /// next `SqliteConn` to lock it does.
    pub(crate) fn into_pool_connection(mut self) -> PoolConnection<Sqlite> {
        self.direct = None;
        self.conn
    }
}

impl Driver for Sqlite {
    type Conn = SqliteConn;
    type Args = SqliteArgs;

    fn sqlx(conn: &mut SqliteConn) -> &mut SqliteConnection {
        conn.sqlx()
    }

    fn transaction_depth(conn: &SqliteConn) -> usize {
        // An atomic of sqlx's worker state: no call reaches the worker.
        <Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth(&conn.conn)
    }

    fn fetch_all<'c, M: RowMap>(
        conn: &'c mut SqliteConn,
        sql: Arc<str>,
        args: SqliteArgs,
        m: &'c M,
    ) -> BoxFuture<'c, Result<Vec<M::Out>, StmtError>> {
        Box::pin(async move {
            if args.sqlx.is_none()
                && let Some(d) = conn.direct().await?
                && let Ran::Done(rows) = d.query(&sql, &args.values, m)?
            {
                return Ok(rows);
            }
            let rows = sqlx::query_with::<Sqlite, _>(sqlx::AssertSqlSafe(sql), args.into_sqlx())
                .fetch_all(conn.sqlx())
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(m.map(r)?);
            }
            Ok(out)
        })
    }

    fn fetch_optional<'c, M: RowMap>(
        conn: &'c mut SqliteConn,
        sql: Arc<str>,
        args: SqliteArgs,
        m: &'c M,
    ) -> BoxFuture<'c, Result<Option<M::Out>, StmtError>> {
        Box::pin(async move {
            if args.sqlx.is_none()
                && let Some(d) = conn.direct().await?
                && let Ran::Done(row) = d.query_first(&sql, &args.values, m)?
            {
                return Ok(row);
            }
            let row = sqlx::query_with::<Sqlite, _>(sqlx::AssertSqlSafe(sql), args.into_sqlx())
                .fetch_optional(conn.sqlx())
                .await?;
            Ok(row.map(|r| m.map(&r)).transpose()?)
        })
    }

    fn fetch<'c>(
        conn: &'c mut SqliteConn,
        sql: Arc<str>,
        args: SqliteArgs,
    ) -> BoxStream<'c, Result<SqliteRow, sqlx::Error>> {
        sqlx::query_with::<Sqlite, _>(sqlx::AssertSqlSafe(sql), args.into_sqlx()).fetch(conn.sqlx())
    }

    fn execute<'c>(
        conn: &'c mut SqliteConn,
        sql: Arc<str>,
        args: SqliteArgs,
    ) -> BoxFuture<'c, Result<Done, StmtError>> {
        Box::pin(async move {
            if args.sqlx.is_none()
                && let Some(d) = conn.direct().await?
                && let Ran::Done(rows_affected) = d.execute(&sql, &args.values)?
            {
                return Ok(Done {
                    rows_affected,
                    last_insert_id: None,
                });
            }
            let r = sqlx::query_with::<Sqlite, _>(sqlx::AssertSqlSafe(sql), args.into_sqlx())
                .execute(conn.sqlx())
                .await?;
            Ok(Done {
                rows_affected: r.rows_affected(),
                last_insert_id: None,
            })
        })
    }

    fn args_from_values(values: sea_query::Values) -> SqliteArgs {
        let mut args = SqliteArgs {
            values: Vec::with_capacity(values.0.len()),
            sqlx: None,
        };
        for v in &values.0 {
            match arg_of(v) {
                Some(a) => args.values.push(a),
                None => {
                    return SqliteArgs {
                        values: Vec::new(),
                        sqlx: Some(sqlx::IntoArguments::<Sqlite>::into_arguments(
                            sea_query_sqlx::SqlxValues(values),
                        )),
                    };
                }
            }
        }
        args
    }
}
