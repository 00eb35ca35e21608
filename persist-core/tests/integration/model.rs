//! Entities shared by the suite.

use chrono::{DateTime, Utc};
use persist_core::{DbEnum, Entity};
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
        Account { iban: iban.into(), customer_id, balance_cents, ..Default::default() }
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
