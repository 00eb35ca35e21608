//! Optimistic locking with `#[persist(version)]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;
use crate::model::*;

/// One customer with one account (balance 100, version 1), committed.
async fn setup(db: &Db) -> Result<Account, Error> {
    db.create_tables::<(Customer, Account)>().await?;
    let s = db.session().await?;
    let c = s
        .insert(Customer {
            id: 0,
            email: "a@x".into(),
            name: "A".into(),
        })
        .await?;
    let a = s.insert(Account::new("DE01", c.id, 100)).await?;
    s.commit().await?;
    assert_eq!(a.version, 1);
    Ok(a)
}

async fn load(db: &Db, id: i64) -> Result<Account, Error> {
    let s = db.session().await?;
    let a = s.find::<Account>(&id).await?.ok_or(Error::NotFound)?;
    s.rollback().await?;
    Ok(a)
}

fn assert_stale(r: Result<(), Error>, id: i64) {
    match r {
        Err(e @ Error::Stale { .. }) => {
            assert!(e.is_retryable());
            let Error::Stale { table, key } = e else {
                unreachable!()
            };
            assert_eq!(table, "accounts");
            assert_eq!(key, id.to_string());
        }
        other => panic!("expected Stale, got {other:?}"),
    }
}

pub async fn update_bumps_version(db: Db) -> TestResult {
    let a = setup(&db).await?;
    let s = db.session().await?;
    let mut acc = s.find::<Account>(&a.id).await?.ok_or(Error::NotFound)?;
    acc.balance_cents = 150;
    s.update(&mut acc)?;
    assert_eq!(acc.version, 2, "the struct gets the new version at once");
    assert!(acc.updated_at.is_some());
    assert_eq!(
        s.find::<Account>(&a.id).await?.as_ref(),
        Some(&acc),
        "the row matches the struct"
    );
    acc.balance_cents = 175;
    s.update(&mut acc)?;
    assert_eq!(
        acc.version, 2,
        "two updates before one flush: one UPDATE, one bump"
    );
    s.flush().await?;
    acc.balance_cents = 180;
    s.update(&mut acc)?;
    assert_eq!(acc.version, 3, "after a flush, the next update bumps again");
    acc.balance_cents = 175;
    s.update(&mut acc)?;
    assert_eq!(
        acc.version, 2,
        "back to the flushed values: nothing to write, no bump"
    );
    let before = s.statement_count();
    s.flush().await?;
    assert_eq!(
        s.statement_count(),
        before,
        "an unchanged entity sends nothing"
    );
    acc.balance_cents = 180;
    s.update(&mut acc)?;
    assert_eq!(acc.version, 3);
    s.commit().await?;

    let stored = load(&db, a.id).await?;
    assert_eq!(stored.version, 3);
    assert_eq!(stored.balance_cents, 180);
    assert_eq!(stored, acc);
    Ok(())
}

pub async fn stale_update_of_detached_row(db: Db) -> TestResult {
    let a = setup(&db).await?;
    let stale = load(&db, a.id).await?;

    let s = db.session().await?;
    let mut fresh = s.find::<Account>(&a.id).await?.ok_or(Error::NotFound)?;
    fresh.balance_cents = 200;
    s.update(&mut fresh)?;
    s.commit().await?;

    let s = db.session().await?;
    let mut stale = stale;
    stale.balance_cents = 999;
    s.update(&mut stale)?; // registering succeeds; the check happens at flush
    assert_stale(s.flush().await, a.id);
    assert!(matches!(s.commit().await, Err(Error::SessionFailed)));
    s.rollback().await?;

    let stored = load(&db, a.id).await?;
    assert_eq!((stored.balance_cents, stored.version), (200, 2));
    Ok(())
}

pub async fn stale_update_of_concurrent_session(db: Db) -> TestResult {
    if db.backend() == Backend::Sqlite {
        // SQLite has one writer at a time: a session that read before another
        // committed cannot write at all (SQLITE_BUSY_SNAPSHOT). The detached
        // case above covers the version check there.
        return Ok(());
    }
    let a = setup(&db).await?;
    let sb = db.session().await?;
    let mut b_copy = sb.find::<Account>(&a.id).await?.ok_or(Error::NotFound)?;

    let sa = db.session().await?;
    let mut a_copy = sa.find::<Account>(&a.id).await?.ok_or(Error::NotFound)?;
    a_copy.balance_cents += 10;
    sa.update(&mut a_copy)?;
    sa.commit().await?;

    b_copy.balance_cents += 20;
    sb.update(&mut b_copy)?;
    assert_stale(sb.flush().await, a.id);
    sb.rollback().await?;

    let stored = load(&db, a.id).await?;
    assert_eq!((stored.balance_cents, stored.version), (110, 2));
    Ok(())
}

pub async fn stale_delete(db: Db) -> TestResult {
    let a = setup(&db).await?;
    let stale = load(&db, a.id).await?;

    let s = db.session().await?;
    let mut fresh = s.find::<Account>(&a.id).await?.ok_or(Error::NotFound)?;
    fresh.balance_cents = 1;
    s.update(&mut fresh)?;
    s.commit().await?;

    let s = db.session().await?;
    s.delete(&stale)?;
    assert_stale(s.commit().await, a.id);
    s.rollback().await?;
    assert_eq!(load(&db, a.id).await?.balance_cents, 1, "the row survives");

    // With the current version the delete goes through.
    let s = db.session().await?;
    s.delete(&fresh)?;
    s.commit().await?;
    let s = db.session().await?;
    assert_eq!(s.find::<Account>(&a.id).await?, None);

    // Deleting a row that is gone is stale too.
    s.delete(&fresh)?;
    assert_stale(s.flush().await, a.id);
    Ok(())
}

pub async fn transaction_retries_stale(db: Db) -> TestResult {
    let a = setup(&db).await?;
    let stale = load(&db, a.id).await?;
    {
        let s = db.session().await?;
        let mut fresh = s.find::<Account>(&a.id).await?.ok_or(Error::NotFound)?;
        fresh.balance_cents = 500;
        s.update(&mut fresh)?;
        s.commit().await?;
    }

    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let id = a.id;
    let balance = db
        .transaction(move |s| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let stale = stale.clone();
            async move {
                // First attempt works on the copy read before the concurrent
                // change; retries read the row again.
                let mut acc = if n == 0 {
                    stale
                } else {
                    s.find::<Account>(&id).await?.ok_or(Error::NotFound)?
                };
                acc.balance_cents += 1;
                s.update(&mut acc)?;
                Ok::<_, Error>(acc.balance_cents)
            }
        })
        .await?;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(balance, 501);
    let stored = load(&db, a.id).await?;
    assert_eq!((stored.balance_cents, stored.version), (501, 3));

    // A closure that is always stale gives up after max_retries (default 3).
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = attempts.clone();
    let out: Result<(), Error> = db
        .transaction(move |s| {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut acc = stored.clone();
            acc.version = 1;
            async move {
                s.update(&mut acc)?;
                Ok(())
            }
        })
        .await;
    assert!(matches!(out, Err(Error::Stale { .. })), "{out:?}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        4,
        "one try and three retries"
    );
    Ok(())
}

pub async fn concurrent_increments_retry_until_done(db: Db) -> TestResult {
    let a = setup(&db).await?;
    let attempts = Arc::new(AtomicU32::new(0));
    // Three writers: each attempt that fails does so because another
    // committed, so no writer needs more than the default three retries.
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            let attempts = attempts.clone();
            tokio::spawn(async move {
                db.transaction(|s| {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let mut acc = s.find::<Account>(&a.id).await?.ok_or(Error::NotFound)?;
                        tokio::task::yield_now().await;
                        acc.balance_cents += 1;
                        s.update(&mut acc)?;
                        Ok::<_, Error>(())
                    }
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task")?;
    }
    let stored = load(&db, a.id).await?;
    assert_eq!(stored.balance_cents, 103, "no increment lost");
    assert_eq!(stored.version, 4);
    assert!(attempts.load(Ordering::SeqCst) >= 3);
    Ok(())
}
