//! MySQL and MariaDB: argument binding, row reading and statement execution.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::{Arguments, Row};
use uuid::Uuid;

use super::{Done, Driver, driver_sqlx, native_binds, native_reads};
use crate::error::BoxDynError;
use crate::model::value::{Binder, RowReader, SqlType};

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
    #[cfg(feature = "decimal")]
    native_binds!(decimal: rust_decimal::Decimal);
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
    #[cfg(feature = "decimal")]
    native_reads!(decimal: rust_decimal::Decimal);
}

impl Driver for MySql {
    driver_sqlx!(MySql, |r| Done {
        rows_affected: r.rows_affected(),
        last_insert_id: Some(r.last_insert_id()),
    });
}

/// Whether the server of `version` (`SELECT VERSION()`) is MariaDB 10.5 or
/// later, which answers `INSERT … RETURNING` (MySQL does not).
pub(crate) fn mariadb_returns_keys(version: &str) -> bool {
    if !version.to_ascii_lowercase().contains("mariadb") {
        return false;
    }
    // `10.11.19-MariaDB-0+deb12u1`; a `5.5.5-` prefix is the old handshake
    // disguise, not the version.
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (10, 5)
}

#[cfg(test)]
mod tests {
    use super::mariadb_returns_keys;

    #[test]
    fn mariadb_with_returning_is_recognized() {
        assert!(mariadb_returns_keys("10.11.19-MariaDB-0+deb12u1"));
        assert!(mariadb_returns_keys("10.5.0-MariaDB"));
        assert!(mariadb_returns_keys("11.4.2-MariaDB-log"));
        assert!(mariadb_returns_keys("5.5.5-10.6.12-MariaDB"));
        assert!(!mariadb_returns_keys("10.4.30-MariaDB"));
        assert!(!mariadb_returns_keys("8.0.36"));
        assert!(!mariadb_returns_keys("8.4.0-log"));
        assert!(!mariadb_returns_keys(""));
    }
}
