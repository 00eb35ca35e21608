//! The plumbing shared by loaders, joins and projections: key values
//! captured from entities and rows (to match children to parents), and
//! running a dynamic `SELECT` whose rows are decoded by a [`RowMap`].

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sea_query::{Expr, ExprTrait, SelectStatement, SimpleExpr};
use uuid::Uuid;

use crate::backend::{Driver, dispatch};
use crate::error::{BoxDynError, Error, Result};
use crate::model::entity::{Entity, EntityMeta};
use crate::model::value::{Binder, RowReader, SqlType};
use crate::session::Session;
use crate::sql::Backend;

/// A key value that can be hashed: what a foreign key and the primary key
/// it references are compared as. Integers of every width compare equal
/// when their values do (`i32` key, `i64` foreign key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyValue {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(Uuid),
    Date(NaiveDate),
    /// Timestamps, times, floats and JSON: compared by their text.
    Other(String),
}

/// A [`Binder`] that records what is bound, as hashable keys and as
/// sea-query values (for `IN` lists).
#[derive(Default)]
pub(crate) struct Capture {
    pub(crate) keys: Vec<KeyValue>,
    pub(crate) values: Vec<sea_query::Value>,
}

impl Capture {
    fn push(&mut self, k: KeyValue, v: sea_query::Value) -> Result<(), BoxDynError> {
        self.keys.push(k);
        self.values.push(v);
        Ok(())
    }
}

impl Binder for Capture {
    fn null(&mut self, _ty: SqlType) -> Result<(), BoxDynError> {
        self.push(KeyValue::Null, sea_query::Value::BigInt(None))
    }
    fn bool(&mut self, v: bool) -> Result<(), BoxDynError> {
        self.push(KeyValue::Bool(v), sea_query::Value::Bool(Some(v)))
    }
    fn i16(&mut self, v: i16) -> Result<(), BoxDynError> {
        self.push(KeyValue::Int(v.into()), sea_query::Value::SmallInt(Some(v)))
    }
    fn i32(&mut self, v: i32) -> Result<(), BoxDynError> {
        self.push(KeyValue::Int(v.into()), sea_query::Value::Int(Some(v)))
    }
    fn i64(&mut self, v: i64) -> Result<(), BoxDynError> {
        self.push(KeyValue::Int(v), sea_query::Value::BigInt(Some(v)))
    }
    fn f32(&mut self, v: f32) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Other(v.to_string()),
            sea_query::Value::Float(Some(v)),
        )
    }
    fn f64(&mut self, v: f64) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Other(v.to_string()),
            sea_query::Value::Double(Some(v)),
        )
    }
    fn str(&mut self, v: &str) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Text(v.to_owned()),
            sea_query::Value::String(Some(v.to_owned())),
        )
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Bytes(v.to_vec()),
            sea_query::Value::Bytes(Some(v.to_vec())),
        )
    }
    fn json(&mut self, v: &serde_json::Value) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Other(v.to_string()),
            sea_query::Value::Json(Some(Box::new(v.clone()))),
        )
    }
    fn timestamptz(&mut self, v: DateTime<Utc>) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Other(v.to_rfc3339()),
            sea_query::Value::ChronoDateTimeUtc(Some(v)),
        )
    }
    fn timestamp(&mut self, v: NaiveDateTime) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Other(v.to_string()),
            sea_query::Value::ChronoDateTime(Some(v)),
        )
    }
    fn date(&mut self, v: NaiveDate) -> Result<(), BoxDynError> {
        self.push(KeyValue::Date(v), sea_query::Value::ChronoDate(Some(v)))
    }
    fn time(&mut self, v: NaiveTime) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Other(v.to_string()),
            sea_query::Value::ChronoTime(Some(v)),
        )
    }
    fn uuid(&mut self, v: Uuid) -> Result<(), BoxDynError> {
        self.push(KeyValue::Uuid(v), sea_query::Value::Uuid(Some(v)))
    }
    #[cfg(feature = "decimal")]
    fn decimal(&mut self, v: rust_decimal::Decimal) -> Result<(), BoxDynError> {
        self.push(
            KeyValue::Other(v.normalize().to_string()),
            sea_query::Value::Decimal(Some(v)),
        )
    }
}

/// `column` matches one of `values`: on PostgreSQL `column = ANY($1)` with
/// one array bind when the values allow it (see
/// [`pg_array`](crate::model::value::pg_array)), so every list length is
/// the same statement text (one prepared statement) and one bind; elsewhere
/// `column IN ($1, …, $n)`. An empty list is a condition that is always
/// false (`IN ()` is not valid SQL everywhere).
pub(crate) fn in_list(b: Backend, column: Expr, values: Vec<sea_query::Value>) -> SimpleExpr {
    if values.is_empty() {
        return Expr::val(1).eq(0);
    }
    #[cfg(feature = "postgres")]
    if b == Backend::Postgres {
        match crate::model::value::pg_array(values) {
            Ok(array) => {
                return column.eq(sea_query::extension::postgres::PgFunc::any(Expr::val(
                    array,
                )));
            }
            Err(values) => return column.is_in(values),
        }
    }
    let _ = b;
    column.is_in(values)
}

/// Whether [`in_list`] sends `values` as one array bind, so that any number
/// of them fits in one statement.
pub(crate) fn binds_as_array(b: Backend, values: &[sea_query::Value]) -> bool {
    #[cfg(feature = "postgres")]
    if b == Backend::Postgres {
        return crate::model::value::is_array_element_list(values);
    }
    let _ = (b, values);
    false
}

/// The value of column `col` of `e`, as a key and as a query value.
pub(crate) fn column_key<E: Entity>(e: &E, col: usize) -> Result<(KeyValue, sea_query::Value)> {
    let mut c = Capture::default();
    e.bind_column(col, &mut c)?;
    single(c, E::META, col)
}

/// The primary key of `e` (single-column keys only), as a key and a value.
pub(crate) fn primary_key<E: Entity>(e: &E) -> Result<(KeyValue, sea_query::Value)> {
    let col = single_key_column(E::META)?;
    column_key(e, col)
}

/// The index of an entity's only key column; composite keys cannot be
/// referenced by a foreign key persist creates.
pub(crate) fn single_key_column(meta: &EntityMeta) -> Result<usize> {
    match meta.primary_key {
        [k] => Ok(*k),
        _ => Err(Error::Invalid(format!(
            "{} has a composite key: relations need a single-column key",
            meta.name
        ))),
    }
}

fn single(c: Capture, meta: &EntityMeta, col: usize) -> Result<(KeyValue, sea_query::Value)> {
    match (c.keys.into_iter().next(), c.values.into_iter().next()) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(Error::Invalid(format!(
            "{}: column #{col} bound no value",
            meta.name
        ))),
    }
}

/// Reads column `i` of a row as a key, by the column's storage class.
pub(crate) fn read_key<R: RowReader>(
    row: &R,
    i: usize,
    ty: SqlType,
    column: &str,
) -> Result<KeyValue> {
    let d = |e| Error::decode(column, e);
    let k = match ty {
        SqlType::Bool => row.bool(i).map_err(d)?.map(KeyValue::Bool),
        SqlType::SmallInt => row.i16(i).map_err(d)?.map(|v| KeyValue::Int(v.into())),
        SqlType::Int => row.i32(i).map_err(d)?.map(|v| KeyValue::Int(v.into())),
        SqlType::BigInt => row.i64(i).map_err(d)?.map(KeyValue::Int),
        SqlType::Text => row.string(i).map_err(d)?.map(KeyValue::Text),
        SqlType::Blob => row.bytes(i).map_err(d)?.map(KeyValue::Bytes),
        SqlType::Uuid => row.uuid(i).map_err(d)?.map(KeyValue::Uuid),
        SqlType::Date => row.date(i).map_err(d)?.map(KeyValue::Date),
        SqlType::TimestampTz => row
            .timestamptz(i)
            .map_err(d)?
            .map(|v| KeyValue::Other(v.to_rfc3339())),
        SqlType::Timestamp => row
            .timestamp(i)
            .map_err(d)?
            .map(|v| KeyValue::Other(v.to_string())),
        SqlType::Time => row
            .time(i)
            .map_err(d)?
            .map(|v| KeyValue::Other(v.to_string())),
        SqlType::Real => row
            .f32(i)
            .map_err(d)?
            .map(|v| KeyValue::Other(v.to_string())),
        SqlType::Double => row
            .f64(i)
            .map_err(d)?
            .map(|v| KeyValue::Other(v.to_string())),
        SqlType::Json => row
            .json(i)
            .map_err(d)?
            .map(|v| KeyValue::Other(v.to_string())),
        #[cfg(feature = "decimal")]
        SqlType::Decimal => row
            .decimal(i)
            .map_err(d)?
            .map(|v| KeyValue::Other(v.normalize().to_string())),
    };
    Ok(k.unwrap_or(KeyValue::Null))
}

pub(crate) use crate::backend::RowMap;

/// Runs a `SELECT` on the session (after its autoflush) and decodes every
/// row with `m`; `meta` names the table in traces and errors.
pub(crate) async fn fetch_mapped<M: RowMap>(
    s: &Session,
    meta: &'static EntityMeta,
    q: &SelectStatement,
    m: &M,
) -> Result<Vec<M::Out>> {
    let (sql, values) = s.backend().sea().build_select(q);
    let sql: Arc<str> = Arc::from(sql);
    let mut guard = s.lock().await?;
    let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
    dispatch!(tx, |c, DB| {
        let args = DB::args_from_values(values);
        s.run(Some(meta), &sql, DB::fetch_all(c, sql.clone(), args, m))
            .await
    })
}
