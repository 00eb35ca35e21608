//! A row's column values, owned: what a snapshot compares and what the
//! shared cache's row codec writes.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use uuid::Uuid;

use crate::error::{BoxDynError, Error, Result};
use crate::model::entity::Entity;
use crate::model::value::{Binder, SqlType};

/// One column value, owned, for comparing two versions of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Captured {
    Null(SqlType),
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    Str(String),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
    TimestampTz(DateTime<Utc>),
    Timestamp(NaiveDateTime),
    Date(NaiveDate),
    Time(NaiveTime),
    Uuid(Uuid),
    #[cfg(feature = "decimal")]
    Decimal(rust_decimal::Decimal),
}

/// A [`Binder`] that keeps the values instead of sending them.
#[derive(Default)]
pub(crate) struct Capture(pub Vec<Captured>);

/// Binder methods that keep the value as one [`Captured`] variant.
macro_rules! capture {
    ($($m:ident($t:ty) => $variant:ident $(. $conv:ident())?),* $(,)?) => {$(
        fn $m(&mut self, v: $t) -> Result<(), BoxDynError> {
            self.0.push(Captured::$variant(v $(. $conv())?));
            Ok(())
        }
    )*};
}

impl Binder for Capture {
    capture!(
        null(SqlType) => Null,
        bool(bool) => Bool,
        i16(i16) => I16,
        i32(i32) => I32,
        i64(i64) => I64,
        f32(f32) => F32.to_bits(),
        f64(f64) => F64.to_bits(),
        str(&str) => Str.to_owned(),
        bytes(&[u8]) => Bytes.to_vec(),
        json(&serde_json::Value) => Json.clone(),
        timestamptz(DateTime<Utc>) => TimestampTz,
        timestamp(NaiveDateTime) => Timestamp,
        date(NaiveDate) => Date,
        time(NaiveTime) => Time,
        uuid(Uuid) => Uuid,
    );
    #[cfg(feature = "decimal")]
    capture!(decimal(rust_decimal::Decimal) => Decimal);
}

/// The value of column `col` of `v`.
pub(crate) fn capture_column<E: Entity>(v: &E, col: usize) -> Result<Captured> {
    let mut c = Capture::default();
    v.bind_column(col, &mut c)?;
    c.0.pop()
        .ok_or_else(|| Error::Invalid(format!("column #{col} bound nothing")))
}
