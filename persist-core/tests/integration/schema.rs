//! Schema creation and removal, and the names persist gives constraints.

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;
use crate::model::*;

/// Names of the tables persist's test entities use, as the catalog lists them.
async fn tables(s: &Session) -> Result<Vec<String>, Error> {
    let sql = match s.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        }
        Backend::MySql => {
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
        }
        other => panic!("the test suite has no case for {other:?}"),
    };
    Ok(s.raw::<TextRow>(sql)
        .all()
        .await?
        .into_iter()
        .map(|r| r.value)
        .collect())
}

pub async fn create_tables_twice_is_fine(db: Db) -> TestResult {
    db.create_tables::<(Customer, Account, OrderLine)>().await?;
    let s = db.session().await?;
    let c = s
        .insert(Customer {
            id: 0,
            email: "a@x".into(),
            name: "A".into(),
        })
        .await?;
    s.commit().await?;

    db.create_tables::<(Customer, Account, OrderLine)>().await?;
    let s = db.session().await?;
    assert_eq!(
        s.all::<Customer>().await?,
        vec![c],
        "existing rows are kept"
    );
    assert_eq!(tables(&s).await?, ["accounts", "customers", "order_lines"]);
    Ok(())
}

pub async fn parents_created_first(db: Db) -> TestResult {
    // Child listed before its parent: persist orders by foreign keys.
    db.create_tables::<(Account, Customer)>().await?;
    let s = db.session().await?;
    assert_eq!(tables(&s).await?, ["accounts", "customers"]);
    let c = s
        .insert(Customer {
            id: 0,
            email: "a@x".into(),
            name: "A".into(),
        })
        .await?;
    s.insert(Account::new("DE01", c.id, 0)).await?;
    // The foreign key exists (it could only be created with its parent there).
    assert!(matches!(
        s.insert(Account::new("DE02", c.id + 1, 0)).await,
        Err(Error::ForeignKeyViolation { .. })
    ));
    Ok(())
}

pub async fn drop_tables_removes(db: Db) -> TestResult {
    db.create_tables::<(Customer, Account, OrderLine)>().await?;
    let s = db.session().await?;
    let c = s
        .insert(Customer {
            id: 0,
            email: "a@x".into(),
            name: "A".into(),
        })
        .await?;
    s.insert(Account::new("DE01", c.id, 0)).await?;
    s.commit().await?;

    // Parent listed first: children are dropped before it.
    db.drop_tables::<(Customer, Account)>().await?;
    let s = db.session().await?;
    assert_eq!(tables(&s).await?, ["order_lines"]);
    s.rollback().await?;

    let s = db.session().await?;
    assert!(
        matches!(s.count::<Customer>().await, Err(Error::Database(_))),
        "the table is gone"
    );
    s.rollback().await?;

    // Dropping again is fine (if exists); creating again gives empty tables.
    db.drop_tables::<(Customer, Account)>().await?;
    db.create_tables::<(Customer, Account)>().await?;
    let s = db.session().await?;
    assert_eq!(s.count::<Customer>().await?, 0);
    Ok(())
}

pub async fn constraint_names_in_catalog(db: Db) -> TestResult {
    db.create_tables::<(Customer, Account, OrderLine)>().await?;
    let s = db.session().await?;
    let names = |sql: &'static str| {
        let s = s.clone();
        async move {
            Ok::<Vec<String>, Error>(
                s.raw::<TextRow>(sql)
                    .all()
                    .await?
                    .into_iter()
                    .map(|r| r.value)
                    .collect(),
            )
        }
    };
    let mut expected = vec![
        "uq_customers_email",
        "uq_accounts_iban",
        "ix_accounts_customer_id",
        "fk_accounts_customer_id",
    ];
    let found: Vec<String> = match db.backend() {
        Backend::Sqlite => {
            let mut n = names(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'",
            )
            .await?;
            // SQLite keeps foreign-key and table-constraint names only in the table's SQL.
            let sql =
                names("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'accounts'")
                    .await?;
            if sql.iter().any(|t| t.contains("fk_accounts_customer_id")) {
                n.push("fk_accounts_customer_id".into());
            }
            let sql = names(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'order_lines'",
            )
            .await?;
            if sql.iter().any(|t| t.contains("pk_order_lines")) {
                n.push("pk_order_lines".into());
            }
            n
        }
        Backend::Postgres => {
            let mut n = names(
                "SELECT conname::text FROM pg_constraint c JOIN pg_namespace ns ON ns.oid = c.connamespace \
                 WHERE ns.nspname = current_schema()",
            )
            .await?;
            n.extend(
                names("SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()")
                    .await?,
            );
            expected.extend(["pk_customers", "pk_accounts"]);
            n
        }
        Backend::MySql => {
            let mut n = names(
                "SELECT CAST(CONSTRAINT_NAME AS CHAR) FROM information_schema.TABLE_CONSTRAINTS \
                 WHERE TABLE_SCHEMA = DATABASE()",
            )
            .await?;
            n.extend(
                names(
                    "SELECT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()",
                )
                .await?,
            );
            n
        }
        other => panic!("the test suite has no case for {other:?}"),
    };
    if db.backend() != Backend::MySql {
        // MySQL names every primary key PRIMARY.
        expected.push("pk_order_lines");
    }
    for name in expected {
        assert!(
            found.iter().any(|f| f == name),
            "{name} missing from the catalog: {found:?}"
        );
    }
    Ok(())
}
