#![deny(warnings)]

use chrono::{DateTime, NaiveDateTime, Utc};
use persist_core::prelude::*;
use persist_core::model::{Field, SqlType};
use persist_core::query::Column;

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "customers")]
pub struct Customer {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub email: String,
}

#[derive(DbEnum, Clone, Copy, Debug, PartialEq)]
#[persist(rename_all = "snake_case")]
pub enum Status {
    Active,
    #[persist(rename = "on_hold")]
    Paused,
}

#[derive(Entity, Clone, Debug)]
#[persist(table = "accounts")]
pub struct Account {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub iban: String,
    #[persist(column = "balance")]
    pub balance_cents: i64,
    #[persist(version)]
    pub version: i64,
    #[persist(references = "Customer")]
    pub customer_id: i64,
    #[persist(json)]
    pub tags: Vec<String>,
    pub status: Status,
    pub closed_at: Option<DateTime<Utc>>,
    #[persist(created_at, default = "CURRENT_TIMESTAMP")]
    pub created_at: DateTime<Utc>,
    #[persist(updated_at)]
    pub updated_at: Option<DateTime<Utc>>,
    #[persist(skip)]
    pub scratch: String,
}

#[derive(Entity, Clone, Debug)]
#[persist(rename_all = "camelCase")]
struct OrderLine {
    #[persist(primary_key, references = "crate::Account")]
    account_id: i64,
    #[persist(primary_key)]
    line_no: i32,
    #[persist(index)]
    r#type: Option<String>,
    #[persist(updated_at)]
    touched: NaiveDateTime,
    uid: uuid::Uuid,
}

#[allow(dead_code)]
async fn finders(s: &Session) -> persist_core::error::Result<()> {
    let accounts = Account::repo(s);
    let copy: AccountRepo<'_> = accounts;
    let _: Option<Account> = copy.find_by_iban("DE01").await?;
    let _: bool = accounts.exists_by_iban(String::from("DE01")).await?;
    let _: Vec<Account> = accounts.find_all_by_customer_id(1).await?;
    let _: Vec<OrderLine> = OrderLine::repo(s).find_all_by_type(Some("x".to_owned())).await?;
    let _: Vec<OrderLine> = OrderLine::repo(s).find_all_by_account_id(7).await?;
    // Deref to the generic repository.
    let _: &persist_core::query::Repo<'_, Account> = &accounts;
    Ok(())
}

fn main() {
    let meta = Account::META;
    assert_eq!(meta.table, "accounts");
    let names: Vec<_> = meta.columns.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "id", "iban", "balance", "version", "customer_id", "tags", "status", "closed_at",
            "created_at", "updated_at"
        ]
    );
    assert_eq!(meta.primary_key, &[0]);
    assert_eq!(meta.auto_increment, Some(0));
    assert_eq!(meta.version, Some(3));
    assert_eq!(meta.created_at, Some(8));
    assert_eq!(meta.updated_at, Some(9));
    assert!(meta.columns[1].unique);
    assert!(meta.columns[4].index);
    assert_eq!((meta.columns[4].references.expect("foreign key"))().table, "customers");
    assert_eq!(meta.columns[5].sql_type, SqlType::Json);
    assert_eq!(meta.columns[6].sql_type, SqlType::Text);
    assert!(meta.columns[7].nullable);
    assert_eq!(meta.columns[8].default, Some("CURRENT_TIMESTAMP"));

    let col: Column<Account, i64> = Account::BALANCE_CENTS;
    assert_eq!((col.index(), col.name()), (2, "balance"));

    let line = OrderLine::META;
    assert_eq!(line.table, "order_line");
    assert_eq!(line.primary_key, &[0, 1]);
    assert_eq!(line.columns[2].name, "type");
    assert_eq!(OrderLine::TYPE.name(), "type");
    assert_eq!(line.columns[3].name, "touched");
    let key: <OrderLine as Entity>::Key = (1i64, 2i32);
    let _ = key;

    let mut acc = Account {
        id: 0,
        iban: "DE01".into(),
        balance_cents: 0,
        version: 1,
        customer_id: 1,
        tags: vec![],
        status: Status::Paused,
        closed_at: None,
        created_at: DateTime::<Utc>::MIN_UTC,
        updated_at: None,
        scratch: String::new(),
    };
    acc.set_generated_key(42).expect("fits");
    assert_eq!(acc.key(), 42);
    acc.set_version(5);
    assert_eq!(acc.version(), Some(5));
    let now = Utc::now();
    acc.stamp_created(now);
    assert_eq!((acc.created_at, acc.updated_at), (now, Some(now)));

    assert_eq!(Status::Paused.as_str(), "on_hold");
    assert_eq!(<Status as DbEnum>::from_str("active"), Some(Status::Active));
    assert_eq!(<Status as DbEnum>::from_str("Paused"), None);
    assert_eq!(<Status as Field>::SQL_TYPE, SqlType::Text);
}
