//! Regression tests of the guarantees the shared cache and the connection
//! layer give under concurrency and cuts: a savepoint rollback, rows the
//! database changes on its own (`SET NULL`), raw writes, cached reads and
//! isolation, a second write session in one task, a commit cut after
//! `COMMIT`, a bounded `close`, and the isolation level read from the server.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use persist_cache::InProcessCache;
use persist_core::cache::SharedCache;
use persist_core::db::DbBuilder;
use persist_core::prelude::*;
use persist_core::session::Isolation;
use persist_core::sql::Backend;

use crate::cache::HeldCache;
use crate::common::{self, TestResult};
use crate::model::*;
use crate::rel_model::Employee;

const TTL: Duration = Duration::from_secs(60);

/// A counter without a `version`: only the transaction's isolation
/// protects its read-modify-write.
#[derive(persist_core::model::Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "tallies")]
pub struct Tally {
    #[persist(primary_key)]
    pub id: i64,
    pub value: i64,
}

fn customer(email: &str, name: &str) -> Customer {
    Customer {
        id: 0,
        email: email.into(),
        name: name.into(),
    }
}

/// A fresh database with a `Db` built by `build` (given a builder with the
/// cache registered), the tables of `Customer`, `Employee` and `Tally`
/// created; runs `body`, then tears the database down.
async fn with_db<F, Fut>(
    db: &Db,
    test: &str,
    cache: Arc<dyn SharedCache>,
    build: impl FnOnce(DbBuilder) -> DbBuilder,
    body: F,
) -> TestResult
where
    F: FnOnce(Db) -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    common::with_isolated_db(db.backend(), test, |url| async move {
        let cdb = build(
            Db::builder()
                .cache_arc(cache)
                .cache_entity::<Customer>(TTL)
                .cache_entity::<Employee>(TTL)
                .cache_entity::<Tally>(TTL),
        )
        .connect(&url)
        .await?;
        cdb.create_tables::<(Customer, Employee, Tally)>().await?;
        let r = body(cdb.clone()).await;
        cdb.close().await;
        r
    })
    .await
}

/// The shared cache answers reads at READ COMMITTED (MySQL's default level,
/// REPEATABLE READ, reads from its snapshot in the database).
fn read_committed(b: DbBuilder) -> DbBuilder {
    b.isolation(Isolation::ReadCommitted)
}

/// Item 3: an insert rolled back to a savepoint is never served by the cache.
pub async fn savepoint_rollback_never_reaches_the_cache(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_db(
        &db,
        "sp_rollback_cache",
        cache,
        read_committed,
        |db| async move {
            let s = db.session().await?;
            let kept = s.insert(customer("kept@x", "kept")).await?;
            let sp = s.savepoint().await?;
            let gone = s.insert(customer("gone@x", "gone")).await?;
            sp.rollback().await?;
            s.commit().await?;

            let s = db.session().await?;
            assert_eq!(s.find::<Customer>(&gone.id).await?, None);
            assert_eq!(
                s.find::<Customer>(&kept.id).await?.map(|c| c.email),
                Some("kept@x".into())
            );
            assert_eq!(s.count::<Customer>().await?, 1);
            s.commit().await?;
            Ok(())
        },
    )
    .await
}

/// Item 4: deleting a parent whose `has_many` is `set_null` invalidates the
/// cached children, whose foreign key the database set to NULL.
pub async fn set_null_children_are_invalidated(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_db(
        &db,
        "set_null_cache",
        cache,
        read_committed,
        |db| async move {
            let s = db.session().await?;
            let boss = s
                .insert(Employee {
                    id: 0,
                    name: "boss".into(),
                    manager_id: None,
                })
                .await?;
            let staff = s
                .insert(Employee {
                    id: 0,
                    name: "staff".into(),
                    manager_id: Some(boss.id),
                })
                .await?;
            s.commit().await?;

            // Load the child into the cache, and check it is served from there.
            let s = db.session().await?;
            assert_eq!(s.find::<Employee>(&staff.id).await?, Some(staff.clone()));
            s.commit().await?;
            let s = db.session().await?;
            assert_eq!(s.find::<Employee>(&staff.id).await?, Some(staff.clone()));
            assert_eq!(s.statement_count(), 0, "the child is cached");
            s.commit().await?;

            let s = db.session().await?;
            s.delete_by_key::<Employee>(&boss.id)?;
            s.commit().await?;

            let s = db.session().await?;
            assert_eq!(
                s.find::<Employee>(&staff.id).await?.map(|e| e.manager_id),
                Some(None),
                "the database set the child's manager_id to NULL"
            );
            s.commit().await?;
            Ok(())
        },
    )
    .await
}

/// Item 8: a raw statement that writes invalidates what it may have
/// touched, rows and cached queries alike.
pub async fn raw_write_invalidates_rows_and_queries(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_db(
        &db,
        "raw_write_cache",
        cache,
        read_committed,
        |db| async move {
            let s = db.session().await?;
            let a = s.insert(customer("a@x", "A")).await?;
            let b = s.insert(customer("b@x", "B")).await?;
            s.commit().await?;

            // Warm the row cache and the query cache.
            for _ in 0..2 {
                let s = db.session().await?;
                assert!(s.find::<Customer>(&a.id).await?.is_some());
                assert_eq!(s.query::<Customer>().cached().all().await?.len(), 2);
                s.commit().await?;
            }
            // (The query first: on SQLite a cached query is answered once the
            // write lock is held, and a row the cache answered before that
            // is checked against the database then.)
            let s = db.session().await?;
            assert_eq!(s.query::<Customer>().cached().all().await?.len(), 2);
            assert!(s.find::<Customer>(&a.id).await?.is_some());
            assert_eq!(s.statement_count(), 0, "both answered from the cache");
            s.commit().await?;

            // DELETE … RETURNING runs on SQLite, PostgreSQL and MariaDB.
            let s = db.session().await?;
            let sql = match db.backend() {
                Backend::Postgres => "DELETE FROM customers WHERE id = $1 RETURNING *",
                _ => "DELETE FROM customers WHERE id = ? RETURNING *",
            };
            let deleted = s.raw::<Customer>(sql).bind(a.id).all().await?;
            assert_eq!(deleted.len(), 1);
            s.commit().await?;

            let s = db.session().await?;
            assert_eq!(s.find::<Customer>(&a.id).await?, None, "row invalidated");
            let left = s.query::<Customer>().cached().all().await?;
            assert_eq!(left, vec![b], "query result invalidated");
            s.commit().await?;
            Ok(())
        },
    )
    .await
}

/// Item 6: concurrent read-modify-write transactions of a cached row
/// without a version lose no update: a cached read never gives a
/// transaction weaker isolation than the database's read would. On SQLite
/// (serializable by its write lock) with default sessions; on PostgreSQL
/// and MySQL at SERIALIZABLE, where the database detects the conflicts and
/// the transactions retry.
pub async fn cached_reads_lose_no_update(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_db(&db, "cached_rmw", cache, read_committed, |db| async move {
        let s = db.session().await?;
        s.insert(Tally { id: 1, value: 0 }).await?;
        s.commit().await?;
        // The row is cached before the race starts.
        let s = db.session().await?;
        s.find::<Tally>(&1).await?;
        s.commit().await?;

        let options = match db.backend() {
            Backend::Sqlite => SessionOptions::new(),
            _ => SessionOptions::new().isolation(Isolation::Serializable),
        }
        .max_retries(200);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let db = db.clone();
            let options = options.clone();
            tasks.push(tokio::spawn(async move {
                db.transaction_with(options, |s| async move {
                    let mut c = s.find::<Tally>(&1).await?.ok_or(Error::NotFound)?;
                    c.value += 1;
                    s.update(&mut c)?;
                    Ok::<_, Error>(())
                })
                .await
            }));
        }
        for t in tasks {
            t.await.expect("task")?;
        }
        let s = db.session().await?;
        assert_eq!(s.find::<Tally>(&1).await?.map(|c| c.value), Some(20));
        s.commit().await?;
        Ok(())
    })
    .await
}

/// Item 9: on SQLite, a second write session in the task whose session holds
/// the write lock fails at once instead of waiting on itself; elsewhere the
/// two sessions are independent transactions and both commit.
pub async fn second_write_session_in_a_task(db: Db) -> TestResult {
    db.create_tables::<Customer>().await?;
    let outer = db.session().await?;
    outer.insert(customer("outer@x", "outer")).await?;
    let inner = tokio::time::timeout(
        Duration::from_secs(5),
        db.transaction(|s| async move {
            s.insert(customer("inner@x", "inner")).await?;
            Ok(())
        }),
    )
    .await
    .expect("the inner transaction answered at once, without waiting on the busy timeout");
    match db.backend() {
        Backend::Sqlite => {
            assert!(
                matches!(inner, Err(Error::WouldWaitOnItself)),
                "SQLite: refused at once, got {inner:?}"
            );
            assert!(!Error::WouldWaitOnItself.is_retryable());
        }
        _ => inner?,
    }
    outer.commit().await?;
    // A write session after the first committed is fine in the same task.
    db.transaction(|s| async move {
        s.insert(customer("after@x", "after")).await?;
        Ok::<_, Error>(())
    })
    .await?;
    let s = db.session().await?;
    let expected = if db.backend() == Backend::Sqlite {
        2
    } else {
        3
    };
    assert_eq!(s.count::<Customer>().await?, expected);
    s.commit().await?;
    Ok(())
}

/// Found by reading: a `commit()` cut after `COMMIT`, before the cache heard
/// of it, must not leave the cache serving the replaced row; and the cut
/// session refuses work until rolled back.
pub async fn cut_commit_still_invalidates_the_cache(db: Db) -> TestResult {
    let cache = Arc::new(HeldCache::default());
    let provider: Arc<dyn SharedCache> = cache.clone();
    with_db(
        &db,
        "cut_commit_cache",
        provider,
        read_committed,
        |db| async move {
            let s = db.session().await?;
            let a = s.insert(customer("a@x", "old")).await?;
            s.commit().await?;
            let s = db.session().await?;
            assert!(s.find::<Customer>(&a.id).await?.is_some());
            s.commit().await?;

            let s = db.session().await?;
            let mut row = s.find::<Customer>(&a.id).await?.ok_or(Error::NotFound)?;
            row.name = "new".into();
            s.update(&mut row)?;
            cache.after_commit.armed.store(true, Ordering::SeqCst);
            {
                let commit = s.commit();
                tokio::pin!(commit);
                tokio::select! {
                    r = &mut commit => panic!("the commit finished past a hung cache: {r:?}"),
                    () = cache.after_commit.reached.notified() => {}
                }
                // The future is dropped here, inside the cache's after_commit.
            }
            assert!(matches!(s.commit().await, Err(Error::SessionFailed)));
            s.rollback().await?;
            cache.after_commit.release.notify_one();

            // The invalidation the cut commit owed runs on its own; the cache
            // then never serves the old name (bounded wait for that task).
            let mut seen = None;
            for _ in 0..200 {
                let r = db.session().await?;
                seen = r.find::<Customer>(&a.id).await?.map(|c| c.name);
                r.commit().await?;
                if seen.as_deref() == Some("new") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(seen.as_deref(), Some("new"));
            Ok(())
        },
    )
    .await
}

/// Found by reading: `Db::close` waits a bounded time for a session that
/// never gives its connection back.
pub async fn close_wait_is_bounded(db: Db) -> TestResult {
    common::with_isolated_db(db.backend(), "close_bounded", |url| async move {
        let cdb = Db::builder()
            .close_timeout(Duration::from_millis(300))
            .connect(&url)
            .await?;
        cdb.create_tables::<Customer>().await?;
        let s = cdb.session().await?;
        s.insert(customer("a@x", "A")).await?;
        assert!(cdb.connections_in_use() >= 1, "the session holds one");
        tokio::time::timeout(Duration::from_secs(5), cdb.close())
            .await
            .expect("close returned after its timeout, though a session holds a connection");
        drop(s);
        Ok(())
    })
    .await
}

/// Found by reading: the query cache and cached reads go by the server's
/// real default isolation level, read at connect.
pub async fn isolation_is_read_from_the_server(db: Db) -> TestResult {
    let expected = match db.backend() {
        Backend::Sqlite => None,
        Backend::Postgres => Some(Isolation::ReadCommitted),
        Backend::MySql => Some(Isolation::RepeatableRead),
        other => panic!("the test suite has no case for {other:?}"),
    };
    assert_eq!(db.isolation(), expected);
    if db.backend() == Backend::Postgres {
        // A server (here: a connection) configured for REPEATABLE READ.
        let Some((url, teardown)) = common::isolated_url(db.backend(), "pg_rr_default").await
        else {
            return Ok(());
        };
        let url = format!("{url}%20-c%20default_transaction_isolation%3Drepeatable%5C%20read");
        let rr = Db::connect(&url).await;
        let level = match &rr {
            Ok(rr) => {
                let level = rr.isolation();
                rr.close().await;
                Ok(level)
            }
            Err(e) => Err(e.to_string()),
        };
        teardown.await;
        assert_eq!(level, Ok(Some(Isolation::RepeatableRead)));
    }
    Ok(())
}
