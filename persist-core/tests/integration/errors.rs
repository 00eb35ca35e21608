//! Structured errors: the same variant, table, columns and constraint on every backend.

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;
use crate::model::*;

fn customer(email: &str) -> Customer {
    Customer {
        id: 0,
        email: email.into(),
        name: "N".into(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub async fn unique_violation_names_constraint(db: Db) -> TestResult {
    db.create_tables::<(Customer, Account)>().await?;
    let s = db.session().await?;
    s.insert(customer("a@x")).await?;
    match s.insert(customer("a@x")).await {
        Err(Error::UniqueViolation {
            table,
            columns,
            constraint,
        }) => {
            assert_eq!(table, "customers");
            assert_eq!(columns, strings(&["email"]));
            assert_eq!(constraint.as_deref(), Some("uq_customers_email"));
        }
        other => panic!("expected UniqueViolation, got {other:?}"),
    }
    s.rollback().await?;

    // Through a registered insert, surfacing at flush.
    let s = db.session().await?;
    let c = s.insert(customer("b@x")).await?;
    s.add(Account::new("DE01", c.id, 0))?;
    s.add(Account::new("DE01", c.id, 0))?;
    match s.flush().await {
        Err(Error::UniqueViolation {
            table,
            columns,
            constraint,
        }) => {
            assert_eq!(table, "accounts");
            assert_eq!(columns, strings(&["iban"]));
            assert_eq!(constraint.as_deref(), Some("uq_accounts_iban"));
        }
        other => panic!("expected UniqueViolation, got {other:?}"),
    }
    Ok(())
}

pub async fn duplicate_primary_key(db: Db) -> TestResult {
    db.create_tables::<OrderLine>().await?;
    let s = db.session().await?;
    let line = OrderLine {
        order_id: 1,
        line_no: 1,
        sku: "a".into(),
        qty: 1,
    };
    s.insert(line.clone()).await?;
    match s.insert(line).await {
        Err(Error::UniqueViolation {
            table,
            columns,
            constraint,
        }) => {
            assert_eq!(table, "order_lines");
            assert_eq!(columns, strings(&["order_id", "line_no"]));
            assert_eq!(constraint.as_deref(), Some("pk_order_lines"));
        }
        other => panic!("expected UniqueViolation, got {other:?}"),
    }
    Ok(())
}

pub async fn foreign_key_violation(db: Db) -> TestResult {
    db.create_tables::<(Customer, Account)>().await?;
    let s = db.session().await?;
    match s.insert(Account::new("DE01", 4242, 0)).await {
        Err(Error::ForeignKeyViolation {
            table,
            columns,
            constraint,
        }) => {
            assert_eq!(table, "accounts");
            assert_eq!(columns, strings(&["customer_id"]));
            assert_eq!(constraint.as_deref(), Some("fk_accounts_customer_id"));
        }
        other => panic!("expected ForeignKeyViolation, got {other:?}"),
    }
    s.rollback().await?;

    // Deleting a parent that still has children.
    let s = db.session().await?;
    let c = s.insert(customer("a@x")).await?;
    s.insert(Account::new("DE01", c.id, 0)).await?;
    s.delete(&c)?;
    match s.flush().await {
        // SQLite names neither the child table nor the constraint for a
        // parent delete; PostgreSQL and MySQL name the referencing side.
        Err(Error::ForeignKeyViolation { .. }) if db.backend() == Backend::Sqlite => {}
        Err(Error::ForeignKeyViolation {
            table,
            columns,
            constraint,
        }) => {
            assert_eq!(table, "accounts");
            assert_eq!(columns, strings(&["customer_id"]));
            assert_eq!(constraint.as_deref(), Some("fk_accounts_customer_id"));
        }
        other => panic!("expected ForeignKeyViolation, got {other:?}"),
    }
    Ok(())
}

pub async fn not_null_violation(db: Db) -> TestResult {
    db.create_tables::<Note>().await?;
    let s = db.session().await?;
    s.insert(LooseNote {
        id: 0,
        body: Some("fine".into()),
    })
    .await?;
    match s.insert(LooseNote { id: 0, body: None }).await {
        Err(Error::NotNullViolation {
            table,
            columns,
            constraint,
        }) => {
            assert_eq!(table, "notes");
            assert_eq!(columns, strings(&["body"]));
            assert_eq!(constraint, None);
        }
        other => panic!("expected NotNullViolation, got {other:?}"),
    }
    Ok(())
}

pub async fn encode_error_for_u64_above_i64_max(db: Db) -> TestResult {
    db.create_tables::<Counter>().await?;
    let s = db.session().await?;
    let ok = s
        .insert(Counter {
            id: 0,
            hits: i64::MAX as u64,
        })
        .await?;
    assert_eq!(
        s.find::<Counter>(&ok.id).await?.map(|c| c.hits),
        Some(i64::MAX as u64)
    );

    // In a filter: reported when the query runs, nothing sent.
    let before = s.statement_count();
    match s
        .query::<Counter>()
        .filter(Counter::HITS.eq(u64::MAX))
        .all()
        .await
    {
        Err(Error::Encode { column, .. }) => assert_eq!(column, "hits"),
        other => panic!("expected Encode, got {other:?}"),
    }
    assert_eq!(s.statement_count(), before);

    // In an insert: no panic, no statement.
    match s
        .insert(Counter {
            id: 0,
            hits: i64::MAX as u64 + 1,
        })
        .await
    {
        Err(Error::Encode { column, .. }) => assert_eq!(column, "hits"),
        other => panic!("expected Encode, got {other:?}"),
    }
    assert_eq!(s.statement_count(), before);
    Ok(())
}

pub async fn decode_error_for_out_of_range_value(db: Db) -> TestResult {
    db.create_tables::<Level>().await?;
    let s = db.session().await?;
    let fine = s.insert(Level { id: 0, level: 255 }).await?;
    let wide = s.insert(WideLevel { id: 0, level: 300 }).await?;
    assert_eq!(s.find::<Level>(&fine.id).await?.map(|l| l.level), Some(255));
    match s.find::<Level>(&wide.id).await {
        Err(Error::Decode { column, .. }) => assert_eq!(column, "level"),
        other => panic!("expected Decode, got {other:?}"),
    }
    match s.all::<Level>().await {
        Err(Error::Decode { column, .. }) => assert_eq!(column, "level"),
        other => panic!("expected Decode, got {other:?}"),
    }
    // A read error does not poison the session.
    assert_eq!(
        s.find::<WideLevel>(&wide.id).await?.map(|l| l.level),
        Some(300)
    );
    s.commit().await?;
    Ok(())
}

pub async fn session_failed_after_flush_error(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let s = db.session().await?;
    s.insert(customer("a@x")).await?;
    s.add(customer("a@x"))?;
    assert!(matches!(
        s.flush().await,
        Err(Error::UniqueViolation { .. })
    ));

    assert!(matches!(
        s.count::<Customer>().await,
        Err(Error::SessionFailed)
    ));
    assert!(matches!(
        s.find::<Customer>(&1).await,
        Err(Error::SessionFailed)
    ));
    assert!(matches!(
        s.insert(customer("b@x")).await,
        Err(Error::SessionFailed)
    ));
    assert!(matches!(s.add(customer("c@x")), Err(Error::SessionFailed)));
    assert!(matches!(s.flush().await, Err(Error::SessionFailed)));
    assert!(matches!(s.commit().await, Err(Error::SessionFailed)));
    assert!(s.is_failed());
    s.rollback().await?;
    // Rolled back, the session works again, in a new transaction: the
    // failed transaction's first insert is gone.
    assert!(!s.is_failed());
    assert_eq!(s.count::<Customer>().await?, 0);
    Ok(())
}

pub async fn failed_session_leaves_nothing(db: Db) -> TestResult {
    db.create_tables::<(Customer, Account)>().await?;
    let s = db.session().await?;
    s.insert(customer("keep@x")).await?;
    s.commit().await?;

    let s = db.session().await?;
    let c = s.insert(customer("new@x")).await?;
    s.add(Account::new("DE01", c.id, 5))?;
    s.add(customer("keep@x"))?; // duplicate: the flush fails here
    s.add(customer("after@x"))?;
    assert!(matches!(
        s.commit().await,
        Err(Error::UniqueViolation { .. })
    ));
    // The failed flush rolled the transaction back; a second commit is
    // refused until the session is rolled back.
    assert!(s.is_failed());
    assert!(matches!(s.commit().await, Err(Error::SessionFailed)));
    s.rollback().await?;
    assert_eq!(s.identity_map_len(), 0);

    let s = db.session().await?;
    let emails: Vec<String> = s
        .all::<Customer>()
        .await?
        .into_iter()
        .map(|c| c.email)
        .collect();
    assert_eq!(emails, ["keep@x"]);
    assert_eq!(s.count::<Account>().await?, 0);
    // The backend did not keep the failed transaction open: writes go through.
    s.insert(customer("new@x")).await?;
    s.commit().await?;
    Ok(())
}
