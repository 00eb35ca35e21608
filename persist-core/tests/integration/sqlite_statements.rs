//! SQLite's direct path keeps its prepared statements from one transaction
//! to the next on a connection: a repeated lookup or insert is prepared
//! once, and the statements are finalized when the connection closes (no
//! panic, no leak), after a cut, an error or a schema change.
//!
//! Prepares are counted per thread (the direct path runs on the caller's
//! thread), so each test runs on a current-thread runtime of its own.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use persist_core::__private::sqlite_direct_prepared as prepared;
use persist_core::prelude::*;
use persist_core::sql::Backend;
use persist_core::sqlx::AssertSqlSafe;

use crate::common::{TestResult, isolated_url};
use crate::model::Customer;

/// A stuck lock must fail the test in seconds.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Panics whose message is SQLite's refusal to close a connection that
/// still has statements (sqlx panics then, on whichever thread closes it).
fn close_panics() -> usize {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.to_string().contains("unfinalized statements") {
                SEEN.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    SEEN.load(Ordering::SeqCst)
}

/// Runs `f` on the URL of a fresh SQLite file (removed afterwards), on a
/// current-thread runtime, failing on an error, after [`TIMEOUT`], or if a
/// connection refused to close meanwhile.
fn run<F: Future<Output = TestResult>>(name: &str, f: impl FnOnce(String) -> F) {
    let panics = close_panics();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = rt.block_on(async {
        let (url, teardown) = isolated_url(Backend::Sqlite, name)
            .await
            .expect("SQLite needs no server");
        let outcome = tokio::time::timeout(TIMEOUT, f(url)).await;
        teardown.await;
        outcome
    });
    // The runtime's shutdown drops what its tasks still held.
    drop(rt);
    match outcome {
        Err(_) => panic!("{name} timed out after {TIMEOUT:?}"),
        Ok(Err(e)) => panic!("{name} failed: {e:?}"),
        Ok(Ok(())) => {}
    }
    assert_eq!(
        close_panics(),
        panics,
        "{name}: a connection closed with statements left"
    );
}

/// One connection, so every session gets the same (parked) one.
async fn open(url: &str, direct: bool) -> Result<Db, Error> {
    Db::builder()
        .max_connections(1)
        .sqlite_direct(direct)
        .identity_map(false)
        .connect(url)
        .await
}

fn customer(i: usize) -> Customer {
    Customer {
        id: 0,
        email: format!("c{i}@example.com"),
        name: format!("c{i}"),
    }
}

/// One session: finds `id`, inserts a customer, commits.
async fn find_and_insert(db: &Db, id: i64, i: usize) -> TestResult {
    let s = db.session().await?;
    let found = s.find::<Customer>(&id).await?;
    assert_eq!(found.map(|c| c.id), Some(id));
    s.insert(customer(i)).await?;
    s.commit().await
}

/// Polls `fut` at most `polls` times; answers whether it finished.
async fn cut_after<F: Future>(polls: usize, fut: F) -> bool {
    let mut fut = pin!(fut);
    let mut n = 0;
    std::future::poll_fn(|cx| {
        if n == polls {
            return Poll::Ready(false);
        }
        n += 1;
        fut.as_mut().poll(cx).map(|_| true)
    })
    .await
}

#[test]
fn a_statement_prepared_in_one_session_is_reused_in_the_next() {
    run("stmts_reused", |url| async move {
        let db = open(&url, true).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let first = s.insert(customer(0)).await?;
        s.commit().await?;
        // Warm: the lookup and the one-row insert are prepared once.
        find_and_insert(&db, first.id, 1).await?;
        let warm = prepared();
        let statements = db.statement_count();
        for i in 2..12 {
            find_and_insert(&db, first.id, i).await?;
        }
        assert_eq!(prepared(), warm, "a later session prepared again");
        // The statements ran (and on one connection).
        assert!(db.statement_count() >= statements + 20);
        assert_eq!(db.connections_in_use(), 1);
        let s = db.session().await?;
        assert_eq!(s.query::<Customer>().count().await?, 12);
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn sqlx_path_prepares_nothing_directly() {
    run("stmts_sqlx_path", |url| async move {
        let before = prepared();
        let db = open(&url, false).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let first = s.insert(customer(0)).await?;
        s.commit().await?;
        for i in 1..4 {
            find_and_insert(&db, first.id, i).await?;
        }
        assert_eq!(prepared(), before);
        db.close().await;
        Ok(())
    });
}

#[test]
fn closing_or_dropping_with_cached_statements_neither_panics_nor_leaks() {
    run("stmts_close", |url| async move {
        for close in [true, false] {
            let db = open(&url, true).await?;
            db.create_tables::<Customer>().await?;
            let s = db.session().await?;
            let c = s.insert(customer(usize::from(close))).await?;
            s.commit().await?;
            find_and_insert(&db, c.id, 10 + usize::from(close)).await?;
            assert_eq!(db.connections_parked(), 1);
            if close {
                db.close().await;
                assert_eq!(db.connections_in_use(), 0);
            } else {
                drop(db);
            }
            // Let the pool's tasks close what they were handed.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Another Db reads what both wrote.
        let db = open(&url, true).await?;
        let s = db.session().await?;
        assert_eq!(s.query::<Customer>().count().await?, 4);
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn a_connection_discarded_after_an_error_takes_its_statements_along() {
    run("stmts_discard", |url| async move {
        let db = open(&url, true).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let first = s.insert(customer(0)).await?;
        s.commit().await?;
        find_and_insert(&db, first.id, 1).await?;
        // A unique violation fails the session; dropped with its
        // transaction open, its connection is rolled back or discarded.
        let s = db.session().await?;
        let e = s.insert(customer(0)).await.unwrap_err();
        assert!(matches!(e, Error::UniqueViolation { .. }), "{e:?}");
        drop(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 2..5 {
            find_and_insert(&db, first.id, i).await?;
        }
        let s = db.session().await?;
        assert_eq!(s.query::<Customer>().count().await?, 5);
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn a_session_after_a_cut_statement_works() {
    run("stmts_cut", |url| async move {
        let db = open(&url, true).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let first = s.insert(customer(0)).await?;
        s.commit().await?;
        let mut rows = 1;
        for polls in 0.. {
            find_and_insert(&db, first.id, 1000 + polls).await?;
            rows += 1;
            let s = db.session().await?;
            let done = cut_after(polls, async {
                s.find::<Customer>(&first.id).await?;
                s.insert(customer(2000 + polls)).await
            })
            .await;
            // Never committed: the insert is rolled back whether it ran.
            drop(s);
            if done {
                break;
            }
            assert!(polls < 50, "the statements never finished");
        }
        let s = db.session().await?;
        assert_eq!(s.query::<Customer>().count().await?, rows);
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn a_schema_change_between_sessions_reprepares_or_errors_cleanly() {
    run("stmts_schema", |url| async move {
        let db = open(&url, true).await?;
        let other = open(&url, false).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let first = s.insert(customer(0)).await?;
        s.commit().await?;
        find_and_insert(&db, first.id, 1).await?;

        // Another connection alters the table: the cached statements are
        // prepared again by SQLite and still answer.
        let o = other.session().await?;
        o.execute("ALTER TABLE customers ADD COLUMN extra TEXT")
            .run()
            .await?;
        o.commit().await?;
        find_and_insert(&db, first.id, 2).await?;

        // Dropped: a cached lookup fails with SQLite's error, and the
        // connection stays usable.
        other.drop_tables::<Customer>().await?;
        let s = db.session().await?;
        let e = s.find::<Customer>(&first.id).await.unwrap_err();
        assert!(e.to_string().contains("no such table"), "{e:?}");
        drop(s);
        // Created again (on the same connection, through sqlx).
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let c = s.insert(customer(3)).await?;
        s.commit().await?;
        find_and_insert(&db, c.id, 4).await?;
        let s = db.session().await?;
        assert_eq!(s.query::<Customer>().count().await?, 2);
        s.commit().await?;
        other.close().await;
        db.close().await;
        Ok(())
    });
}

#[test]
fn the_least_recently_used_statement_is_evicted_past_the_cap() {
    run("stmts_lru", |url| async move {
        let db = open(&url, true).await?;
        db.create_tables::<Customer>().await?;
        let sql =
            |i: usize| AssertSqlSafe(format!("SELECT COUNT(*) FROM customers WHERE id > {i}"));
        let s = db.session().await?;
        // More distinct texts than a connection keeps (64).
        for i in 0..70 {
            s.raw_as::<i64>(sql(i)).one().await?;
        }
        s.commit().await?;
        let s = db.session().await?;
        let before = prepared();
        s.raw_as::<i64>(sql(69)).one().await?;
        assert_eq!(prepared(), before, "the last one used is kept");
        s.raw_as::<i64>(sql(0)).one().await?;
        assert_eq!(prepared(), before + 1, "the first one used was evicted");
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn a_connection_back_from_the_pool_prepares_again() {
    run("stmts_pool", |url| async move {
        let db = open(&url, true).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let first = s.insert(customer(0)).await?;
        s.commit().await?;
        find_and_insert(&db, first.id, 1).await?;
        // A session waiting for the pool gets the connection through it
        // (not the parking): a new wrapper whose first lock finalizes the
        // statements left on it.
        let holder = db.session().await?;
        holder.find::<Customer>(&first.id).await?;
        let waiter = {
            let db = db.clone();
            tokio::spawn(async move {
                let before = prepared();
                find_and_insert(&db, first.id, 2).await?;
                Ok::<_, Error>(prepared() - before)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        holder.commit().await?;
        let prepares = waiter.await.expect("no panic")?;
        assert!(prepares >= 2, "prepared {prepares}");
        find_and_insert(&db, first.id, 3).await?;
        let s = db.session().await?;
        assert_eq!(s.query::<Customer>().count().await?, 4);
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}
