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

/// A composite key led by a foreign key: the key indexes that column.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "memberships")]
pub struct Membership {
    #[persist(primary_key, references = "Customer")]
    pub customer_id: i64,
    #[persist(primary_key, references = "Account")]
    pub account_id: i64,
    pub role: String,
}

/// The index names of table `table`, as the catalog lists them.
async fn index_names(s: &Session, table: &str) -> Result<Vec<String>, Error> {
    let sql = match s.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name NOT LIKE 'sqlite_%'"
        }
        Backend::Postgres => {
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1"
        }
        Backend::MySql => {
            "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
        }
        other => panic!("the test suite has no case for {other:?}"),
    };
    let mut names: Vec<String> = s
        .raw::<TextRow>(sql)
        .bind(table.to_owned())
        .all()
        .await?
        .into_iter()
        .map(|r| r.value)
        .collect();
    names.sort();
    Ok(names)
}

/// No index of its own for the foreign key that leads the primary key; the
/// second key column, which the key's index cannot serve, keeps its own.
pub async fn leading_key_column_gets_no_extra_index(db: Db) -> TestResult {
    db.create_tables::<(Customer, Account, Membership)>()
        .await?;
    let s = db.session().await?;
    let names = index_names(&s, "memberships").await?;
    assert!(
        !names.iter().any(|n| n == "ix_memberships_customer_id"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "ix_memberships_account_id"),
        "{names:?}"
    );
    // The key's own index: named on PostgreSQL, PRIMARY on MySQL, implicit
    // (`sqlite_autoindex_…`, filtered above) on SQLite.
    let key_index = match db.backend() {
        Backend::Postgres => Some("pk_memberships"),
        Backend::MySql => Some("PRIMARY"),
        _ => None,
    };
    let expected = 1 + usize::from(key_index.is_some());
    assert_eq!(names.len(), expected, "{names:?}");
    s.rollback().await?;
    Ok(())
}

/// A table only the notice test creates: the notices that name it are its.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "notice_probe")]
pub struct NoticeProbe {
    #[persist(primary_key)]
    pub id: i64,
    #[persist(index)]
    pub name: String,
}

fn probe_notices() -> usize {
    let notices = crate::uow::pg_notices()
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    notices
        .iter()
        .filter(|n| n.contains("notice_probe"))
        .count()
}

/// `create_tables` at every start logs no NOTICE per existing table and
/// index on PostgreSQL; a notice of the application's own still shows.
pub async fn create_tables_again_logs_no_notices(db: Db) -> TestResult {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    // The process-wide capturing subscriber (sqlx may log from any thread).
    let _log = crate::uow::SqlLog::new();
    let before = probe_notices();
    db.create_tables::<NoticeProbe>().await?;
    db.create_tables::<NoticeProbe>().await?; // table and index exist
    db.drop_tables::<NoticeProbe>().await?;
    db.drop_tables::<NoticeProbe>().await?; // does not exist
    assert_eq!(probe_notices() - before, 0);
    // The capture works, and the level is the server's again after the DDL.
    let s = db.session().await?;
    let rows = s
        .raw::<TextRow>("DO $$ BEGIN RAISE NOTICE 'notice_probe from the application'; END $$")
        .all()
        .await?;
    assert!(rows.is_empty());
    s.rollback().await?;
    assert_eq!(probe_notices() - before, 1);
    Ok(())
}
