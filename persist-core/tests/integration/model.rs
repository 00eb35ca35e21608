//! Entities shared by the suite.

use chrono::{DateTime, Utc};
use persist_core::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "customers")]
pub struct Customer {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub email: String,
    pub name: String,
}

#[derive(DbEnum, Clone, Copy, Debug, PartialEq, Default)]
#[persist(rename_all = "snake_case")]
pub enum AccountKind {
    #[default]
    Checking,
    Savings,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Prefs {
    pub currency: String,
    pub alerts: bool,
}

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "accounts")]
pub struct Account {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub iban: String,
    pub balance_cents: i64,
    #[persist(version)]
    pub version: i64,
    #[persist(references = "Customer")]
    pub customer_id: i64,
    pub kind: AccountKind,
    #[persist(json)]
    pub tags: Vec<String>,
    #[persist(json)]
    pub prefs: Prefs,
    pub closed_at: Option<DateTime<Utc>>,
    #[persist(created_at)]
    pub created_at: Option<DateTime<Utc>>,
    #[persist(updated_at)]
    pub updated_at: Option<DateTime<Utc>>,
    #[persist(skip)]
    pub scratch: String,
}

impl Account {
    pub fn new(iban: &str, customer_id: i64, balance_cents: i64) -> Self {
        Account {
            iban: iban.into(),
            customer_id,
            balance_cents,
            ..Default::default()
        }
    }
}

/// Composite key, no auto-increment.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "order_lines")]
pub struct OrderLine {
    #[persist(primary_key)]
    pub order_id: i64,
    #[persist(primary_key)]
    pub line_no: i32,
    pub sku: String,
    pub qty: u32,
}

/// One text column, for raw catalog queries (`SELECT name FROM …`).
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "persist_scalar_text")]
pub struct TextRow {
    #[persist(primary_key)]
    pub value: String,
}

/// One integer column, for raw scalar queries (`SELECT CAST(… AS SIGNED)`).
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "persist_scalar_int")]
pub struct IntRow {
    #[persist(primary_key)]
    pub value: i64,
}

/// `notes` with a NOT NULL body (creates the table).
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "notes")]
pub struct Note {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub body: String,
}

/// The same `notes` table seen with a nullable body, to send a NULL.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "notes")]
pub struct LooseNote {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub body: Option<String>,
}

/// A `u64` column: values above `i64::MAX` cannot be stored.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "counters")]
pub struct Counter {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub hits: u64,
}

/// `levels` with a `u8` level (creates the table: a smallint column).
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "levels")]
pub struct Level {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub level: u8,
}

/// The same `levels` table seen as `i16`, to write values a `u8` cannot hold.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "levels")]
pub struct WideLevel {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub level: i16,
}

/// Every supported field type.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "all_types")]
pub struct AllTypes {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub a_i8: i8,
    pub a_i16: i16,
    pub a_i32: i32,
    pub a_i64: i64,
    pub a_u8: u8,
    pub a_u16: u16,
    pub a_u32: u32,
    pub a_u64: u64,
    pub a_f32: f32,
    pub a_f64: f64,
    pub a_bool: bool,
    pub a_string: String,
    pub a_bytes: Vec<u8>,
    pub opt_none: Option<String>,
    pub opt_some: Option<String>,
    pub opt_int: Option<i32>,
    pub opt_uuid: Option<uuid::Uuid>,
    pub ts_utc: DateTime<Utc>,
    pub ts_naive: chrono::NaiveDateTime,
    pub a_date: chrono::NaiveDate,
    pub a_time: chrono::NaiveTime,
    pub a_uuid: uuid::Uuid,
    pub a_json: serde_json::Value,
    #[persist(json)]
    pub prefs: Prefs,
    #[persist(json)]
    pub opt_prefs: Option<Prefs>,
    pub kind: AccountKind,
}

/// An `i32` auto-increment key (PostgreSQL returns it as INT4).
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "small_keys")]
pub struct SmallKey {
    #[persist(primary_key, auto_increment)]
    pub id: i32,
    #[persist(unique)]
    pub label: String,
}
