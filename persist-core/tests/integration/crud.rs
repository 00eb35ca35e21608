//! Inserts, reads, updates, deletes, upserts and generated finders.

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;
use crate::model::*;

fn customer(email: &str, name: &str) -> Customer {
    Customer {
        id: 0,
        email: email.into(),
        name: name.into(),
    }
}

async fn setup(db: &Db) -> TestResult {
    db.create_tables::<(Customer, Account, OrderLine)>().await
}

pub async fn insert_returns_generated_key(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let a = s.insert(customer("a@x", "A")).await?;
    let b = s.insert(customer("b@x", "B")).await?;
    assert!(a.id > 0);
    assert!(b.id > a.id);
    assert_eq!(s.statement_count(), 2);
    s.commit().await?;

    let s = db.session().await?;
    assert_eq!(s.find::<Customer>(&a.id).await?, Some(a));
    assert_eq!(s.find::<Customer>(&b.id).await?, Some(b));
    Ok(())
}

pub async fn insert_many_returns_keys_in_order(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let rows = s
        .insert_many(vec![
            customer("a@x", "A"),
            customer("b@x", "B"),
            customer("c@x", "C"),
        ])
        .await?;
    assert_eq!(s.statement_count(), 1, "three rows go out in one INSERT");
    assert_eq!(rows.len(), 3);
    assert!(rows[0].id > 0);
    assert_eq!(rows[1].id, rows[0].id + 1);
    assert_eq!(rows[2].id, rows[0].id + 2);
    // Each returned key belongs to the row it was returned with.
    for r in &rows {
        assert_eq!(s.find::<Customer>(&r.id).await?.as_ref(), Some(r));
    }
    s.commit().await?;
    Ok(())
}

pub async fn insert_many_big_batch_is_chunked(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    // MySQL hands out consecutive ids to a multi-row insert only with
    // innodb_autoinc_lock_mode < 2; otherwise persist inserts one at a time.
    let one_by_one = db.backend() == Backend::MySql
        && s.raw::<IntRow>("SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED)")
            .one()
            .await?
            .value
            >= 2;
    let before = s.statement_count();

    let n = 25_000usize;
    let values: Vec<Customer> = (0..n)
        .map(|i| customer(&format!("c{i}@x"), &format!("C{i}")))
        .collect();
    let rows = s.insert_many(values).await?;
    // Two insert columns (email, name): min(max_binds / 2, 10,000) = 10,000
    // rows a statement; 50 on SQLite's direct path (no round trips to save,
    // and a smaller statement prepares faster).
    let expected = if one_by_one {
        n as u64
    } else if db.sqlite_direct() {
        n.div_ceil(50) as u64
    } else {
        3
    };
    assert_eq!(s.statement_count() - before, expected);
    assert_eq!(rows.len(), n);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.id, rows[0].id + i as i64, "id of row {i}");
        assert_eq!(r.email, format!("c{i}@x"));
    }
    assert_eq!(s.count::<Customer>().await?, n as u64);
    // Spot-check that keys match the stored rows across chunk borders.
    for i in [0usize, 9_999, 10_000, 20_000, 24_999] {
        let got = s
            .find::<Customer>(&rows[i].id)
            .await?
            .ok_or(Error::NotFound)?;
        assert_eq!(got.email, format!("c{i}@x"));
    }
    s.commit().await?;
    Ok(())
}

pub async fn find_and_find_many(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let rows = s
        .insert_many(vec![
            customer("a@x", "A"),
            customer("b@x", "B"),
            customer("c@x", "C"),
        ])
        .await?;
    let (a, b, c) = (&rows[0], &rows[1], &rows[2]);

    assert_eq!(s.find::<Customer>(&b.id).await?.as_ref(), Some(b));
    assert_eq!(s.find::<Customer>(&(c.id + 100)).await?, None);

    let before = s.statement_count();
    let missing = c.id + 100;
    let got = s
        .find_many::<Customer>(&[c.id, missing, a.id, b.id])
        .await?;
    assert_eq!(s.statement_count() - before, 1);
    assert_eq!(
        got,
        vec![c.clone(), a.clone(), b.clone()],
        "order of the keys given, missing skipped"
    );

    assert!(s.find_many::<Customer>(&[]).await?.is_empty());
    assert!(s.find_many::<Customer>(&[missing]).await?.is_empty());
    Ok(())
}

pub async fn all_count_exists(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    assert_eq!(s.count::<Customer>().await?, 0);
    assert!(s.all::<Customer>().await?.is_empty());
    let rows = s
        .insert_many(vec![customer("b@x", "B"), customer("a@x", "A")])
        .await?;
    assert_eq!(s.count::<Customer>().await?, 2);
    assert_eq!(s.all::<Customer>().await?, rows, "all() in key order");
    assert!(s.exists::<Customer>(&rows[0].id).await?);
    assert!(!s.exists::<Customer>(&(rows[1].id + 1)).await?);
    assert_eq!(Customer::repo(&s).count().await?, 2);
    Ok(())
}

pub async fn add_is_written_before_next_read(db: Db) -> TestResult {
    setup(&db).await?;
    let db_before = db.statement_count();
    let s = db.session().await?;
    s.add(customer("a@x", "A"))?;
    s.add_many(vec![customer("b@x", "B"), customer("c@x", "C")])?;
    assert_eq!(s.statement_count(), 0, "add only registers");
    assert_eq!(db.statement_count(), db_before);

    let names: Vec<String> = s
        .query::<Customer>()
        .order_by(Customer::NAME)
        .all()
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(
        s.statement_count(),
        2,
        "the three registered rows go out in one INSERT, then the read"
    );

    // Nothing left to write: the next read sends one statement.
    assert_eq!(s.count::<Customer>().await?, 3);
    assert_eq!(s.statement_count(), 3);
    s.commit().await?;
    Ok(())
}

pub async fn add_is_written_at_commit(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    s.add(customer("a@x", "A"))?;
    s.add(OrderLine {
        order_id: 7,
        line_no: 1,
        sku: "sku-1".into(),
        qty: 2,
    })?;
    assert_eq!(s.statement_count(), 0);
    s.commit().await?;
    assert_eq!(s.statement_count(), 2);

    let s = db.session().await?;
    let c = Customer::repo(&s)
        .find_by_email("a@x")
        .await?
        .ok_or(Error::NotFound)?;
    assert_eq!(c.name, "A");
    assert_eq!(s.find::<OrderLine>(&(7, 1)).await?.map(|l| l.qty), Some(2));
    Ok(())
}

pub async fn update_writes_changed_columns(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let a = s.insert(customer("a@x", "Alice")).await?;
    let b = s.insert(customer("b@x", "Bob")).await?;
    s.commit().await?;

    let s = db.session().await?;
    let mut a2 = s.find::<Customer>(&a.id).await?.ok_or(Error::NotFound)?;
    a2.name = "Alicia".into();
    s.update(&mut a2)?;
    let before = s.statement_count();
    s.flush().await?;
    assert_eq!(s.statement_count() - before, 1, "one UPDATE");
    s.commit().await?;

    let s = db.session().await?;
    let got = s.find::<Customer>(&a.id).await?.ok_or(Error::NotFound)?;
    assert_eq!(
        got,
        Customer {
            id: a.id,
            email: "a@x".into(),
            name: "Alicia".into()
        }
    );
    assert_eq!(
        s.find::<Customer>(&b.id).await?,
        Some(b.clone()),
        "other rows untouched"
    );

    // Updating a row to the values it has is not an error (no version to
    // bump, so MySQL would report 0 rows changed without FOUND_ROWS).
    let mut same = b.clone();
    s.update(&mut same)?;
    s.flush().await?;
    // Updating a row that does not exist is.
    let mut gone = Customer {
        id: b.id + 100,
        ..b.clone()
    };
    s.update(&mut gone)?;
    assert!(matches!(s.flush().await, Err(Error::Stale { .. })));
    Ok(())
}

pub async fn delete_and_delete_by_key(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let rows = s
        .insert_many(vec![
            customer("a@x", "A"),
            customer("b@x", "B"),
            customer("c@x", "C"),
        ])
        .await?;
    s.commit().await?;

    let s = db.session().await?;
    s.delete(&rows[0])?;
    s.delete_by_key::<Customer>(&rows[2].id)?;
    assert_eq!(s.statement_count(), 0, "deletes are registered");
    assert!(
        !s.exists::<Customer>(&rows[0].id).await?,
        "a read sees the session's own deletes"
    );
    assert!(!s.exists::<Customer>(&rows[2].id).await?);
    assert_eq!(
        s.statement_count(),
        0,
        "keys registered for delete are answered by the identity map"
    );
    assert_eq!(s.count::<Customer>().await?, 1, "a query flushes first");
    assert_eq!(s.statement_count(), 3, "two deletes, then the count");
    s.commit().await?;

    let s = db.session().await?;
    assert_eq!(s.all::<Customer>().await?, vec![rows[1].clone()]);
    Ok(())
}

pub async fn upsert_inserts_then_updates(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    // Customer's key is auto-increment, so the conflict target is its first
    // unique field, `email`. PostgreSQL/SQLite: ON CONFLICT (email) DO
    // UPDATE … RETURNING id; MySQL: ON DUPLICATE KEY UPDATE with
    // id = LAST_INSERT_ID(id), so the existing id comes back on every backend.
    let other = s.insert(customer("other@x", "Other")).await?;
    let first = s.upsert(customer("a@x", "A")).await?;
    assert!(first.id > other.id);
    let second = s.upsert(customer("a@x", "A2")).await?;
    assert_eq!(second.id, first.id, "the existing row's key");
    let same = s.upsert(customer("a@x", "A2")).await?;
    assert_eq!(
        same.id, first.id,
        "the existing row's key when nothing changes"
    );
    assert_eq!(s.count::<Customer>().await?, 2);
    assert_eq!(
        s.find::<Customer>(&first.id).await?.map(|c| c.name),
        Some("A2".into())
    );

    // Composite key without auto-increment: the target is the primary key.
    let line = OrderLine {
        order_id: 1,
        line_no: 1,
        sku: "x".into(),
        qty: 1,
    };
    s.upsert(line.clone()).await?;
    s.upsert(OrderLine {
        qty: 5,
        sku: "y".into(),
        ..line.clone()
    })
    .await?;
    assert_eq!(
        s.all::<OrderLine>().await?,
        vec![OrderLine {
            order_id: 1,
            line_no: 1,
            sku: "y".into(),
            qty: 5
        }]
    );
    s.commit().await?;

    let s = db.session().await?;
    assert_eq!(
        s.find::<Customer>(&first.id).await?,
        Some(Customer {
            id: first.id,
            email: "a@x".into(),
            name: "A2".into()
        })
    );
    Ok(())
}

pub async fn composite_key_crud(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let lines = vec![
        OrderLine {
            order_id: 1,
            line_no: 1,
            sku: "a".into(),
            qty: 1,
        },
        OrderLine {
            order_id: 1,
            line_no: 2,
            sku: "b".into(),
            qty: 2,
        },
        OrderLine {
            order_id: 2,
            line_no: 1,
            sku: "c".into(),
            qty: 3,
        },
    ];
    s.insert_many(lines.clone()).await?;
    s.commit().await?;

    let s = db.session().await?;
    assert_eq!(
        s.find::<OrderLine>(&(1, 2)).await?.as_ref(),
        Some(&lines[1])
    );
    assert_eq!(s.find::<OrderLine>(&(2, 2)).await?, None);
    assert!(s.exists::<OrderLine>(&(2, 1)).await?);
    assert_eq!(
        s.find_many::<OrderLine>(&[(2, 1), (9, 9), (1, 1)]).await?,
        vec![lines[2].clone(), lines[0].clone()]
    );

    let mut l = s.find::<OrderLine>(&(1, 2)).await?.ok_or(Error::NotFound)?;
    l.qty = 20;
    s.update(&mut l)?;
    s.delete_by_key::<OrderLine>(&(1, 1))?;
    s.commit().await?;

    let s = db.session().await?;
    assert_eq!(
        s.all::<OrderLine>().await?,
        vec![
            OrderLine {
                qty: 20,
                ..lines[1].clone()
            },
            lines[2].clone()
        ]
    );
    Ok(())
}

pub async fn generated_finders(db: Db) -> TestResult {
    setup(&db).await?;
    let s = db.session().await?;
    let alice = s.insert(customer("alice@x", "Alice")).await?;
    let bob = s.insert(customer("bob@x", "Bob")).await?;
    let a1 = s.insert(Account::new("DE02", alice.id, 10)).await?;
    let a2 = s.insert(Account::new("DE01", alice.id, 20)).await?;
    s.insert(Account::new("DE03", bob.id, 30)).await?;
    s.commit().await?;

    let s = db.session().await?;
    let customers = Customer::repo(&s);
    assert_eq!(
        customers.find_by_email("alice@x").await?,
        Some(alice.clone())
    );
    assert_eq!(customers.find_by_email("nobody@x").await?, None);
    assert!(customers.exists_by_email("bob@x").await?);
    assert!(!customers.exists_by_email("nobody@x").await?);

    let accounts = Account::repo(&s);
    assert_eq!(
        accounts.find_by_iban("DE01").await?.map(|a| a.id),
        Some(a2.id)
    );
    assert!(accounts.exists_by_iban("DE03").await?);
    let ids: Vec<i64> = accounts
        .find_all_by_customer_id(alice.id)
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![a1.id, a2.id], "in key order");
    assert!(
        accounts
            .find_all_by_customer_id(bob.id + 100)
            .await?
            .is_empty()
    );
    Ok(())
}

pub async fn i32_auto_keys_come_back(db: Db) -> TestResult {
    db.create_tables::<SmallKey>().await?;
    let s = db.session().await?;
    let one = s
        .insert(SmallKey {
            id: 0,
            label: "a".into(),
        })
        .await?;
    let many = s
        .insert_many(vec![
            SmallKey {
                id: 0,
                label: "b".into(),
            },
            SmallKey {
                id: 0,
                label: "c".into(),
            },
        ])
        .await?;
    assert!(one.id > 0);
    assert_eq!(many[0].id, one.id + 1);
    assert_eq!(many[1].id, one.id + 2);
    let up = s
        .upsert(SmallKey {
            id: 0,
            label: "c".into(),
        })
        .await?;
    assert_eq!(up.id, many[1].id, "the upsert hit the existing row");
    s.add(SmallKey {
        id: 0,
        label: "d".into(),
    })?;
    s.commit().await?;
    let s = db.session().await?;
    assert_eq!(s.count::<SmallKey>().await?, 4);
    assert_eq!(s.find::<SmallKey>(&one.id).await?, Some(one));
    Ok(())
}
