//! Sessions: commit, rollback, drop, `Db::transaction`, statement counters,
//! isolation between sessions, and one connection per session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use persist_core::prelude::*;

use crate::common::{self, TestResult};
use crate::model::*;

fn customer(email: &str) -> Customer {
    Customer {
        id: 0,
        email: email.into(),
        name: "N".into(),
    }
}

async fn emails(db: &Db) -> Result<Vec<String>, Error> {
    let s = db.session().await?;
    let out = s
        .all::<Customer>()
        .await?
        .into_iter()
        .map(|c| c.email)
        .collect();
    s.rollback().await?;
    Ok(out)
}

pub async fn commit_persists(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let s = db.session().await?;
    let c = s.insert(customer("a@x")).await?;
    s.add(customer("b@x"))?;
    s.commit().await?;
    assert_eq!(s.identity_map_len(), 0, "commit clears the identity map");

    let s = db.session().await?;
    assert_eq!(s.find::<Customer>(&c.id).await?, Some(c));
    assert_eq!(s.count::<Customer>().await?, 2);
    Ok(())
}

pub async fn rollback_discards(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let s = db.session().await?;
    s.insert(customer("a@x")).await?;
    s.add(customer("b@x"))?;
    s.rollback().await?;
    assert_eq!(s.identity_map_len(), 0, "rollback empties the identity map");
    assert!(emails(&db).await?.is_empty());
    Ok(())
}

pub async fn dropping_last_handle_rolls_back(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let s = db.session().await?;
    let s2 = s.clone();
    s.insert(customer("a@x")).await?;
    s2.add(customer("b@x"))?;
    drop(s);
    // The clone keeps the session open.
    assert_eq!(s2.count::<Customer>().await?, 2);
    drop(s2);

    assert!(emails(&db).await?.is_empty());
    // The dropped transaction released its locks: the same rows can be written.
    let s = db.session().await?;
    s.insert(customer("a@x")).await?;
    s.insert(customer("b@x")).await?;
    s.commit().await?;
    assert_eq!(emails(&db).await?, ["a@x", "b@x"]);
    Ok(())
}

pub async fn transaction_commits_on_ok(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let id = db
        .transaction(move |s| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                let a = s.insert(customer("a@x")).await?;
                s.add(customer("b@x"))?;
                Ok::<_, Error>(a.id)
            }
        })
        .await?;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(id > 0);
    assert_eq!(emails(&db).await?, ["a@x", "b@x"]);
    Ok(())
}

pub async fn transaction_rolls_back_on_err(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let out: Result<(), Error> = db
        .transaction(move |s| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                s.insert(customer("a@x")).await?;
                s.add(customer("b@x"))?;
                Err(Error::NotFound)
            }
        })
        .await;
    assert!(
        matches!(out, Err(Error::NotFound)),
        "the closure's error comes back: {out:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "NotFound is not retried");
    assert!(emails(&db).await?.is_empty());

    // A constraint error inside the closure: rolled back, not retried.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let out: Result<(), Error> = db
        .transaction(move |s| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                s.insert(customer("x@x")).await?;
                s.insert(customer("x@x")).await?;
                Ok(())
            }
        })
        .await;
    assert!(matches!(out, Err(Error::UniqueViolation { .. })), "{out:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(emails(&db).await?.is_empty());
    Ok(())
}

pub async fn statement_counters(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let base = db.statement_count();
    assert!(base > 0, "schema statements are counted");

    let s1 = db.session().await?;
    assert_eq!(s1.statement_count(), 0, "BEGIN is not counted");
    assert_eq!(db.statement_count(), base);
    s1.insert(customer("a@x")).await?;
    s1.count::<Customer>().await?;
    assert_eq!(s1.statement_count(), 2);

    let s2 = db.session_with(SessionOptions::new().read_only()).await?;
    s2.find::<Customer>(&1).await?;
    assert_eq!(s2.statement_count(), 1);
    assert_eq!(s1.statement_count(), 2, "sessions count separately");
    assert_eq!(db.statement_count(), base + 3, "the Db counts all of them");

    s1.add(customer("b@x"))?;
    s1.commit().await?;
    assert_eq!(
        s1.statement_count(),
        3,
        "the flush at commit counts, COMMIT does not"
    );
    s2.rollback().await?;
    assert_eq!(s2.statement_count(), 1, "ROLLBACK is not counted");
    assert_eq!(db.statement_count(), base + 4);
    Ok(())
}

pub async fn reusable_after_commit(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let s = db.session().await?;
    s.insert(customer("a@x")).await?;
    s.commit().await?;
    // The next call begins a new transaction on the same session.
    s.insert(customer("b@x")).await?;
    assert_eq!(s.count::<Customer>().await?, 2);
    s.rollback().await?;
    assert_eq!(s.statement_count(), 3);
    // Committing a session with nothing to do sends nothing.
    s.commit().await?;
    assert_eq!(s.statement_count(), 3);
    assert_eq!(emails(&db).await?, ["a@x"]);
    Ok(())
}

pub async fn sessions_see_each_others_data_after_commit(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let writer = db.session().await?;
    writer.insert(customer("a@x")).await?;
    assert_eq!(
        writer.count::<Customer>().await?,
        1,
        "a session reads its own writes"
    );

    // A read-only session: on SQLite a read-write one would wait for the
    // writer's `BEGIN IMMEDIATE` lock.
    let reader = db.session_with(SessionOptions::new().read_only()).await?;
    assert_eq!(
        reader.count::<Customer>().await?,
        0,
        "uncommitted rows are invisible"
    );
    assert_eq!(Customer::repo(&reader).find_by_email("a@x").await?, None);
    reader.rollback().await?;

    writer.commit().await?;
    let reader = db.session().await?;
    assert_eq!(reader.count::<Customer>().await?, 1);
    assert!(Customer::repo(&reader).exists_by_email("a@x").await?);
    Ok(())
}

pub async fn one_connection_per_session(db: Db) -> TestResult {
    common::with_isolated_db(
        db.backend(),
        "one_connection_per_session",
        |url| async move {
            let db1 = Db::builder().max_connections(1).connect(&url).await?;
            db1.create_tables::<Customer>().await?;
            let s1 = db1.session().await?;
            s1.insert(customer("a@x")).await?;

            // The only connection is held by s1: a second session waits.
            // (`db.session()` itself takes no connection: the first statement does.)
            let waiting = tokio::time::timeout(Duration::from_millis(300), async {
                db1.session().await?.count::<Customer>().await
            })
            .await;
            assert!(
                waiting.is_err(),
                "a second session must wait for the connection"
            );

            let pending = tokio::spawn({
                let db1 = db1.clone();
                async move {
                    let s2 = db1.session().await?;
                    let n = s2.count::<Customer>().await?;
                    s2.commit().await?;
                    Ok::<u64, Error>(n)
                }
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!pending.is_finished(), "still waiting while s1 is open");
            // A session holds its connection from its first statement to the
            // end of its transaction: commit hands it back to the pool.
            s1.commit().await?;
            let n = tokio::time::timeout(Duration::from_secs(10), pending)
                .await
                .expect("the second session starts once the first commits")
                .expect("task")?;
            assert_eq!(n, 1, "and sees what the first committed");
            db1.close().await;
            Ok::<(), Error>(())
        },
    )
    .await
}

pub async fn concurrent_calls_on_one_session(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let s = db.session().await?;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.add(customer(&format!("add{i}@x")))?;
                let c = s.insert(customer(&format!("ins{i}@x"))).await?;
                s.find::<Customer>(&c.id).await?.ok_or(Error::NotFound)
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task")?;
    }
    assert_eq!(s.count::<Customer>().await?, 16);
    s.commit().await?;
    assert_eq!(emails(&db).await?.len(), 16);
    Ok(())
}

/// `db.transaction` inside another session's scope: its own transaction
/// (PostgreSQL, MySQL, and SQLite while the ambient session holds no write
/// lock), or on SQLite, once the ambient session holds the one write lock,
/// a savepoint of it, instead of waiting on itself.
pub async fn transaction_inside_a_scope(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let outer = db.session().await?;
    let inner_ids = outer
        .scope(async {
            // Nothing began yet: a transaction of its own on every backend.
            let first = db
                .transaction(|s| async move {
                    Ok::<_, Error>((s.insert(customer("t1@x")).await?, s.id()))
                })
                .await?;
            assert_ne!(first.1, outer.id());
            outer.insert(customer("outer@x")).await?;
            // The outer session wrote: on SQLite it holds the write lock.
            let kept = db
                .transaction(|s| async move {
                    s.insert(customer("t2@x")).await?;
                    Ok::<_, Error>(s.id())
                })
                .await?;
            let dropped: Result<(), Error> = db
                .transaction(|s| async move {
                    s.insert(customer("t3@x")).await?;
                    Err(Error::NotFound)
                })
                .await;
            assert!(matches!(dropped, Err(Error::NotFound)), "{dropped:?}");
            Ok::<_, Error>((first.1, kept))
        })
        .await?;
    let nested = db.backend() == persist_core::sql::Backend::Sqlite;
    assert_eq!(
        inner_ids.1 == outer.id(),
        nested,
        "SQLite runs it inside the writer"
    );
    // The rolled-back attempt left nothing, on every backend. (A reader
    // beside SQLite's writer is a read-only session.)
    let reader = db.session_with(SessionOptions::new().read_only()).await?;
    let mut seen_outside: Vec<String> = reader
        .all::<Customer>()
        .await?
        .into_iter()
        .map(|c| c.email)
        .collect();
    reader.rollback().await?;
    seen_outside.sort();
    if nested {
        assert_eq!(seen_outside, ["t1@x"], "t2 commits with the outer session");
    } else {
        assert_eq!(seen_outside, ["t1@x", "t2@x"]);
    }
    outer.commit().await?;
    let mut all = emails(&db).await?;
    all.sort();
    assert_eq!(all, ["outer@x", "t1@x", "t2@x"]);
    Ok(())
}

/// The customer table with one committed row, and a session of autocommit
/// reads without an identity map (every read goes to the database).
async fn one_customer_and_an_autocommit_reader(db: &Db) -> Result<(Customer, Session), Error> {
    db.create_tables::<Customer>().await?;
    let w = db.session().await?;
    let a = w.insert(customer("a@x")).await?;
    w.commit().await?;
    let r = db
        .session_with(SessionOptions::new().autocommit_reads().identity_map(false))
        .await?;
    Ok((a, r))
}

/// A session of autocommit reads: no transaction around its statements
/// (each read sees the latest commit), its connection back at `commit`,
/// every write refused.
pub async fn autocommit_reads_see_each_commit_and_refuse_writes(db: Db) -> TestResult {
    let (a, r) = one_customer_and_an_autocommit_reader(&db).await?;
    assert_eq!(r.all::<Customer>().await?.len(), 1);
    // Another session commits between two reads: the second read sees it,
    // on every backend and isolation (no snapshot is held).
    let w = db.session().await?;
    w.insert(customer("b@x")).await?;
    w.commit().await?;
    assert_eq!(r.all::<Customer>().await?.len(), 2);
    let before = r.statement_count();
    assert_eq!(
        r.find::<Customer>(&a.id).await?.map(|c| c.email).as_deref(),
        Some("a@x")
    );
    assert_eq!(r.statement_count(), before + 1);

    // Writes are refused, and nothing is written.
    let refused = |e: Result<(), Error>| matches!(e, Err(Error::Invalid(_)));
    assert!(refused(r.insert(customer("c@x")).await.map(drop)));
    r.add(customer("d@x"))?;
    assert!(refused(r.flush().await));
    assert!(
        refused(r.commit().await),
        "the registered row is refused at commit too"
    );
    r.rollback().await?;
    assert!(refused(
        r.update_all::<Customer>()
            .set(Customer::NAME, "x".to_string())
            .execute()
            .await
            .map(drop)
    ));
    assert!(refused(r.savepoint().await.map(drop)));
    r.commit().await?;
    assert_eq!(emails(&db).await?, ["a@x", "b@x"]);
    Ok(())
}

/// An autocommit read cut at every poll: the session goes on reading, and
/// its connection comes back.
pub async fn autocommit_read_cut_at_every_poll(db: Db) -> TestResult {
    use crate::faults::harness::{Cut, cut_after};
    let (a, r) = one_customer_and_an_autocommit_reader(&db).await?;
    let mut cuts = 0;
    // A sweep can meet the server's answer already read within one poll
    // (chance on a loaded machine): a few sweeps, until one was cut.
    for _sweep in 0..8 {
        for polls in 1..500 {
            match cut_after(polls, Duration::ZERO, r.find::<Customer>(&a.id)).await {
                Cut::Completed(found) => {
                    assert_eq!(found?.map(|c| c.email).as_deref(), Some("a@x"));
                    break;
                }
                Cut::Cut => cuts += 1,
            }
            let again = r.find::<Customer>(&a.id).await?;
            assert_eq!(
                again.map(|c| c.email).as_deref(),
                Some("a@x"),
                "usable after a cut at {polls}"
            );
        }
        if cuts > 0 {
            break;
        }
    }
    r.commit().await?;
    // PostgreSQL always leaves the read pending on its socket at least once;
    // SQLite's direct path never does, and a loaded machine often finds
    // MariaDB's answer read within the poll that sent the query.
    if db.backend() == persist_core::sql::Backend::Postgres {
        assert!(cuts >= 1, "{cuts} cuts");
    }
    // Every connection is back in the pool or parked for the next session.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while db.connections_in_use() as usize > db.connections_parked() {
        assert!(
            std::time::Instant::now() < deadline,
            "a connection was kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Autocommit writes: each one-statement write is committed by itself (seen
/// by another session before any commit), a failed one leaves nothing and
/// the session usable, and writes needing a transaction are refused. On a
/// `Db` with a shared cache, `transaction_with(autocommit)` runs a
/// transaction, and the cache learns of the write.
pub async fn autocommit_writes_commit_one_statement_each(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let w = db.session_with(SessionOptions::new().autocommit()).await?;
    let before = db.statement_count();
    let a = w.insert(customer("a@x")).await?;
    assert_eq!(
        db.statement_count(),
        before + 1,
        "one statement, no transaction"
    );
    // Visible to another session at once: no transaction is open.
    let reader = db.session_with(SessionOptions::new().read_only()).await?;
    assert_eq!(reader.count::<Customer>().await?, 1);
    reader.rollback().await?;
    // A unique violation: nothing written, the session goes on.
    let dup = w.insert(customer("a@x")).await;
    assert!(matches!(dup, Err(Error::UniqueViolation { .. })), "{dup:?}");
    w.upsert(Customer {
        id: a.id,
        email: "a@x".into(),
        name: "renamed".into(),
    })
    .await?;
    let n = w
        .delete_all::<Customer>()
        .filter(Customer::EMAIL.eq("nobody@x"))
        .execute()
        .await?;
    assert_eq!(n, 0);
    // Writes of several statements need a transaction.
    let many = w.insert_many(vec![customer("b@x"), customer("c@x")]).await;
    assert!(matches!(many, Err(Error::Invalid(_))), "{many:?}");
    w.add(customer("d@x"))?;
    assert!(matches!(w.flush().await, Err(Error::Invalid(_))));
    w.rollback().await?;
    w.commit().await?;
    assert_eq!(emails(&db).await?, ["a@x"]);

    // Through db.transaction_with: one statement, retried like any.
    let b = db
        .transaction_with(SessionOptions::new().autocommit(), |s| async move {
            s.insert(customer("b@x")).await
        })
        .await?;
    assert_eq!(b.attempts, 1);
    assert_eq!(emails(&db).await?, ["a@x", "b@x"]);

    // A Db with a shared cache: refused in a session, a transaction in
    // db.transaction_with, and the cache serves the new row after it.
    common::with_isolated_db(db.backend(), "autocommit_cached", |url| async move {
        let cdb = Db::builder()
            .cache(persist_cache::InProcessCache::new())
            .cache_entity::<Customer>(Duration::from_secs(60))
            .connect(&url)
            .await?;
        cdb.create_tables::<Customer>().await?;
        let s = cdb.session_with(SessionOptions::new().autocommit()).await?;
        assert!(matches!(
            s.insert(customer("x@x")).await,
            Err(Error::Invalid(_))
        ));
        s.rollback().await?;
        let c = cdb
            .transaction_with(SessionOptions::new().autocommit(), |s| async move {
                s.insert(customer("x@x")).await
            })
            .await?
            .value;
        let warm = cdb.session().await?;
        assert!(warm.find::<Customer>(&c.id).await?.is_some());
        warm.commit().await?;
        cdb.transaction_with(SessionOptions::new().autocommit(), |s| async move {
            s.upsert(Customer {
                id: c.id,
                email: "x@x".into(),
                name: "new".into(),
            })
            .await
        })
        .await?;
        // The commit evicted the old row: one read from the database, which
        // fills the cache again; the next session reads it from there.
        for expected_statements in [1, 0] {
            let r = cdb.session().await?;
            let before = cdb.statement_count();
            let got = r.find::<Customer>(&c.id).await?.map(|c| c.name);
            assert_eq!(
                got.as_deref(),
                Some("new"),
                "the cache learned of the upsert"
            );
            assert_eq!(cdb.statement_count(), before + expected_statements);
            r.commit().await?;
        }
        // Autocommit reads answered by the cache: no statement, and no
        // connection taken (not even at commit, to check them together).
        let y = cdb
            .transaction(|s| async move { s.insert(customer("y@x")).await })
            .await?;
        let warm = cdb.session().await?;
        warm.find::<Customer>(&y.id).await?;
        warm.commit().await?;
        let acquired = cdb.connections_acquired();
        let r = cdb
            .session_with(SessionOptions::new().autocommit_reads())
            .await?;
        assert!(r.find::<Customer>(&c.id).await?.is_some());
        assert!(r.find::<Customer>(&y.id).await?.is_some());
        r.commit().await?;
        assert_eq!(cdb.connections_acquired(), acquired);
        cdb.close().await;
        Ok(())
    })
    .await
}
