//! PostgreSQL: argument binding, row reading and statement execution.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::types::Json;
use sqlx::{Arguments, Row};
use uuid::Uuid;

use super::{Done, Driver, driver_sqlx, native_binds, native_reads};
use crate::error::BoxDynError;
use crate::model::value::{Binder, RowReader, SqlType};

impl Binder for PgArguments {
    fn null(&mut self, ty: SqlType) -> Result<(), BoxDynError> {
        // PostgreSQL types every parameter, NULL included.
        match ty {
            SqlType::Bool => self.add(None::<bool>),
            SqlType::SmallInt => self.add(None::<i16>),
            SqlType::Int => self.add(None::<i32>),
            SqlType::BigInt => self.add(None::<i64>),
            SqlType::Real => self.add(None::<f32>),
            SqlType::Double => self.add(None::<f64>),
            SqlType::Text => self.add(None::<String>),
            SqlType::Blob => self.add(None::<Vec<u8>>),
            SqlType::Json => self.add(None::<Json<serde_json::Value>>),
            SqlType::TimestampTz => self.add(None::<DateTime<Utc>>),
            SqlType::Timestamp => self.add(None::<NaiveDateTime>),
            SqlType::Date => self.add(None::<NaiveDate>),
            SqlType::Time => self.add(None::<NaiveTime>),
            SqlType::Uuid => self.add(None::<Uuid>),
            #[cfg(feature = "decimal")]
            SqlType::Decimal => self.add(None::<rust_decimal::Decimal>),
        }
    }
    fn str(&mut self, v: &str) -> Result<(), BoxDynError> {
        self.add(v)
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), BoxDynError> {
        self.add(v)
    }
    fn json(&mut self, v: &serde_json::Value) -> Result<(), BoxDynError> {
        self.add(Json(v))
    }
    native_binds!(
        bool: bool, i16: i16, i32: i32, i64: i64, f32: f32, f64: f64,
        timestamptz: DateTime<Utc>, timestamp: NaiveDateTime, date: NaiveDate,
        time: NaiveTime, uuid: Uuid,
    );
    #[cfg(feature = "decimal")]
    native_binds!(decimal: rust_decimal::Decimal);
}

impl RowReader for PgRow {
    fn json(&self, i: usize) -> Result<Option<serde_json::Value>, BoxDynError> {
        Ok(self
            .try_get::<Option<Json<serde_json::Value>>, _>(i)?
            .map(|j| j.0))
    }
    native_reads!(
        bool: bool, i16: i16, i32: i32, i64: i64, f32: f32, f64: f64,
        string: String, bytes: Vec<u8>, timestamptz: DateTime<Utc>,
        timestamp: NaiveDateTime, date: NaiveDate, time: NaiveTime, uuid: Uuid,
    );
    #[cfg(feature = "decimal")]
    native_reads!(decimal: rust_decimal::Decimal);
}

impl Driver for Postgres {
    driver_sqlx!(Postgres, |r| Done {
        rows_affected: r.rows_affected(),
        last_insert_id: None,
    });
}
