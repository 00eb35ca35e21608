//! MySQL and MariaDB: argument binding, row reading and statement execution.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::{Arguments, Row};
use uuid::Uuid;

use super::{Done, Driver, driver_sqlx, native_binds, native_reads};
use crate::error::BoxDynError;
use crate::value::{Binder, RowReader, SqlType};

impl Binder for MySqlArguments {
    fn null(&mut self, _ty: SqlType) -> Result<(), BoxDynError> {
        self.add(None::<i64>)
    }
    fn str(&mut self, v: &str) -> Result<(), BoxDynError> {
        self.add(v.to_owned())
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), BoxDynError> {
        self.add(v.to_vec())
    }
    fn json(&mut self, v: &serde_json::Value) -> Result<(), BoxDynError> {
        // Stored as JSON text (MariaDB's JSON is LONGTEXT with a check).
        self.add(v.to_string())
    }
    native_binds!(
        bool: bool, i16: i16, i32: i32, i64: i64, f32: f32, f64: f64,
        timestamptz: DateTime<Utc>, timestamp: NaiveDateTime, date: NaiveDate,
        time: NaiveTime, uuid: Uuid,
    );
}

impl RowReader for MySqlRow {
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
}

impl Driver for MySql {
    driver_sqlx!(MySql, |r| Done {
        rows_affected: r.rows_affected(),
        last_insert_id: Some(r.last_insert_id()),
    });
}
