//! SQLite's direct path against sqlx's: the same bytes either way, the lock
//! released before sqlx runs, and a statement that would wait for another
//! connection's lock handed to sqlx (which waits on its worker thread).

use std::time::Duration;

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::{TestResult, isolated_url};
use crate::model::*;

/// A stuck lock must fail the test in seconds.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `test` on a runtime of its own, failing on an error or after
/// [`TIMEOUT`].
fn block_on(name: &str, test: impl std::future::Future<Output = TestResult>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The timer is made inside the runtime, which drives it.
    match rt.block_on(async { tokio::time::timeout(TIMEOUT, test).await }) {
        Err(_) => panic!("{name} timed out after {TIMEOUT:?}"),
        Ok(Err(e)) => panic!("{name} failed: {e:?}"),
        Ok(Ok(())) => {}
    }
}

/// Runs `f` on the URL of a fresh SQLite file, removed afterwards.
fn run<F: std::future::Future<Output = TestResult>>(name: &str, f: impl FnOnce(String) -> F) {
    block_on(name, async {
        let (url, teardown) = isolated_url(Backend::Sqlite, name)
            .await
            .expect("SQLite needs no server");
        let outcome = f(url).await;
        teardown.await;
        outcome
    });
}

async fn open(url: &str, direct: bool) -> Result<Db, Error> {
    Db::builder()
        .max_connections(2)
        .sqlite_direct(direct)
        .connect(url)
        .await
}

#[test]
fn rows_written_on_one_path_read_the_same_on_the_other() {
    run("direct_cross_path", |url| async move {
        let direct = open(&url, true).await?;
        let fallback = open(&url, false).await?;
        direct.create_tables::<AllTypes>().await?;
        for (writer, reader) in [(&direct, &fallback), (&fallback, &direct)] {
            let s = writer.session().await?;
            let written = s.insert(crate::types::sample()).await?;
            s.commit().await?;
            let w = writer.session().await?;
            let own = w.find::<AllTypes>(&written.id).await?;
            w.commit().await?;
            let r = reader.session().await?;
            let read = r.find::<AllTypes>(&written.id).await?;
            assert!(read.is_some());
            assert_eq!(read, own);
            // Filters bind the same values on both paths.
            let matching = r
                .query::<AllTypes>()
                .filter(AllTypes::A_UUID.eq(written.a_uuid))
                .filter(AllTypes::TS_UTC.eq(written.ts_utc))
                .filter(AllTypes::TS_NAIVE.eq(written.ts_naive))
                .filter(AllTypes::A_TIME.eq(written.a_time))
                .filter(AllTypes::A_BYTES.eq(written.a_bytes.clone()))
                .count()
                .await?;
            assert_eq!(matching, 2 - u64::from(std::ptr::eq(writer, &direct)));
            r.commit().await?;
        }
        direct.close().await;
        fallback.close().await;
        Ok(())
    });
}

#[test]
fn lock_and_release_across_many_transactions() {
    run("direct_lock_loop", |url| async move {
        // One connection: every transaction takes the direct lock on the same
        // connection and must hand it back before sqlx commits.
        let db = Db::builder().max_connections(1).connect(&url).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let mut committed = 0;
        for i in 0..300 {
            let c = s
                .insert(Customer {
                    id: 0,
                    email: format!("c{i}@example.com"),
                    name: format!("C{i}"),
                })
                .await?;
            assert!(s.find::<Customer>(&c.id).await?.is_some());
            if i % 3 == 0 {
                // sqlx (SAVEPOINT) between two direct statements.
                let sp = s.savepoint().await?;
                assert_eq!(s.count::<Customer>().await?, committed + 1);
                sp.release().await?;
            }
            if i % 2 == 0 {
                s.commit().await?;
                committed += 1;
            } else {
                s.rollback().await?;
            }
        }
        assert_eq!(s.count::<Customer>().await?, 150);
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn a_read_blocked_by_another_connection_waits_through_sqlx() {
    block_on("direct_locked_fallback", locked_fallback());
}

async fn locked_fallback() -> TestResult {
    // In-memory SQLite is one shared-cache database per pool: with two
    // connections, a writer's table lock makes the other connection's read
    // meet SQLITE_LOCKED.
    let db = Db::builder()
        .max_connections(2)
        .connect("sqlite::memory:")
        .await?;
    db.create_tables::<Customer>().await?;
    let writer = db.session().await?;
    writer
        .insert(Customer {
            id: 0,
            email: "a@example.com".into(),
            name: "A".into(),
        })
        .await?;
    let committing = {
        let writer = writer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            writer.commit().await
        })
    };
    // The direct path meets the lock at once; the statement then runs
    // through sqlx, which waits for the writer on its worker thread instead
    // of failing.
    let reader = db.session_with(SessionOptions::new().read_only()).await?;
    let all = reader.all::<Customer>().await?;
    assert_eq!(all.len(), 1, "the read saw the writer's commit");
    committing.await.expect("writer task")?;
    reader.commit().await?;
    db.close().await;
    Ok(())
}

#[test]
fn several_statements_in_one_string_run_through_sqlx() {
    run("direct_multi_statement", |url| async move {
        let db = open(&url, true).await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let rows = s
            .raw::<Customer>(
                "INSERT INTO customers (email, name) VALUES ('m@example.com', 'M'); \
                 SELECT id, email, name FROM customers",
            )
            .all()
            .await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].email, "m@example.com");
        // The direct path is taken again by the next statement.
        assert_eq!(s.count::<Customer>().await?, 1);
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn in_memory_database_on_the_direct_path() {
    block_on("direct_in_memory", async {
        let db = Db::connect("sqlite::memory:").await?;
        db.create_tables::<Customer>().await?;
        let s = db.session().await?;
        let c = s
            .insert(Customer {
                id: 0,
                email: "x@example.com".into(),
                name: "X".into(),
            })
            .await?;
        s.commit().await?;
        let s = db.session().await?;
        assert_eq!(s.find::<Customer>(&c.id).await?, Some(c));
        s.commit().await?;
        db.close().await;
        Ok(())
    });
}

#[test]
fn a_db_dropped_after_its_runtime_closes_its_kept_connections() {
    // A session's connection is kept by the Db for the next session; the
    // last Db handle may outlive the runtime it was used on.
    let path = std::env::temp_dir().join(format!("persist_parked_{}.db", std::process::id()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(async {
        tokio::time::timeout(TIMEOUT, async {
            let db = Db::connect(&url).await?;
            db.create_tables::<Customer>().await?;
            let s = db.session().await?;
            s.insert(Customer {
                id: 0,
                email: "p@example.com".into(),
                name: "P".into(),
            })
            .await?;
            s.commit().await?;
            Ok::<_, Error>(db)
        })
        .await
        .expect("timed out")
        .expect("session failed")
    });
    drop(rt);
    // No runtime here: dropping must neither panic nor lose the row.
    drop(db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let db = Db::connect(&url).await.expect("reopen");
        let s = db.session().await.expect("session");
        assert_eq!(s.count::<Customer>().await.expect("count"), 1);
        s.commit().await.expect("commit");
        db.close().await;
    });
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[test]
fn autocommit_writes_one_after_another() {
    run("direct_autocommit_writes", |url| async move {
        // An autocommit session sends no BEGIN or COMMIT: the direct lock its
        // statements take must still be handed back before the connection is.
        for max in [1, 2] {
            let db = Db::builder().max_connections(max).connect(&url).await?;
            db.create_tables::<Customer>().await?;
            for i in 0..20 {
                let s = db
                    .session_with(SessionOptions::default().autocommit())
                    .await?;
                s.insert_many(vec![Customer {
                    id: 0,
                    email: format!("a{max}-{i}@example.com"),
                    name: format!("A{i}"),
                }])
                .await?;
                s.commit().await?;
                drop(s);
                let r = db.session().await?;
                assert_eq!(r.count::<Customer>().await?, (max as u64 - 1) * 20 + i + 1);
                r.commit().await?;
            }
            db.close().await;
        }
        Ok(())
    });
}
