//! Regression tests of issue 10's items 1 and 2.

use std::time::Duration;

use persist_core::prelude::*;

use super::model::*;
use crate::common::{self, TestResult};

/// Item 1: a session inserts a row, opens a savepoint, inserts another and
/// is dropped. With one connection the next session surely gets the same
/// connection; its commit must write its own row and nothing else.
pub async fn abandoned_savepoint_transaction_is_not_committed_by_next_session(
    db: Db,
) -> TestResult {
    left_unfinished(
        &db,
        "abandoned_savepoint",
        "abandoned",
        |one, g| async move {
            let s = one.session().await?;
            s.insert(row(g, 1, "before-savepoint")).await?;
            let sp = s.savepoint().await?;
            s.insert(row(g, 1, "after-savepoint")).await?;
            // Abandoned: no commit, no rollback, the savepoint still open.
            drop(sp);
            drop(s);
            Ok(())
        },
    )
    .await
}

/// Item 2: 2,000 adds, `timeout` cuts `commit()`, then `commit()` again on
/// the same session: each row exactly once, or `SessionFailed` and after
/// `rollback()` all or nothing, never 4,000 rows.
pub async fn commit_retried_after_timeout_writes_each_row_once(db: Db) -> TestResult {
    const ROWS: usize = 2000;
    let g = seed_group(&db).await?;

    let mut cut = 0;
    for (round, ms) in [1u64, 2, 5, 10, 20, 50, 100].into_iter().enumerate() {
        let round = round as i64 + 1;
        let s = db.session().await?;
        s.add_many((0..ROWS).map(|i| row(g, round, format!("r{i}"))).collect())?;
        if tokio::time::timeout(Duration::from_millis(ms), s.commit())
            .await
            .is_ok()
        {
            continue;
        }
        cut += 1;
        let again = within(15, "the retried commit", async { Ok(s.commit().await) }).await?;
        eprintln!("commit of {ROWS} rows cut after {ms} ms; the retry answered {again:?}");
        let rows = committed_rows(&db, round).await?;
        let mut tags: Vec<_> = rows.iter().map(|r| r.tag.clone()).collect();
        tags.sort();
        tags.dedup();
        match again {
            Ok(()) => {
                assert_eq!(
                    rows.len(),
                    ROWS,
                    "a commit cut after {ms} ms and retried wrote {} rows ({} distinct) for {ROWS} adds",
                    rows.len(),
                    tags.len()
                );
                assert_eq!(tags.len(), ROWS, "each row once");
            }
            Err(Error::SessionFailed) => {
                s.rollback().await?;
                // The cut `COMMIT` may still land after the first read (on
                // SQLite it runs on sqlx's worker): read again, and judge
                // what is there now.
                let rows = committed_rows(&db, round).await?;
                let mut tags: Vec<_> = rows.iter().map(|r| r.tag.clone()).collect();
                tags.sort();
                tags.dedup();
                assert!(
                    rows.is_empty() || (rows.len() == ROWS && tags.len() == ROWS),
                    "after SessionFailed and rollback: {} rows of {ROWS}",
                    rows.len()
                );
            }
            Err(e) => panic!("the retried commit answered {e:?}: neither done nor SessionFailed"),
        }
    }
    if cut == 0 && path_name(&db) == "sqlite" {
        // The direct path runs the whole commit inside its first poll:
        // `timeout` cannot cut it (it polls the future before its timer).
        eprintln!(
            "commit of {ROWS} rows on sqlite (direct) finished in its first poll: nothing to cut"
        );
        return Ok(());
    }
    assert!(
        cut > 0,
        "no timeout cut the commit of {ROWS} rows: the test exercised nothing"
    );
    Ok(())
}

/// A panic inside `db.transaction(…)` with a savepoint open (the task
/// dies, as a handler's would): nothing of it is committed, not by the
/// next session on the same connection either.
pub async fn panic_in_transaction_with_savepoint_commits_nothing(db: Db) -> TestResult {
    left_unfinished(
        &db,
        "panic_in_transaction",
        "panicked",
        |one, g| async move {
            let task = tokio::spawn(async move {
                one.transaction(move |s| async move {
                    s.insert(row(g, 1, "before-savepoint")).await?;
                    let _sp = s.savepoint().await?;
                    s.insert(row(g, 1, "after-savepoint")).await?;
                    s.add(row(g, 1, "registered"))?;
                    if s.statement_count() > 0 {
                        panic!("a handler panics mid-transaction");
                    }
                    Ok::<_, Error>(())
                })
                .await
            });
            let joined = task.await;
            assert!(
                joined.as_ref().is_err_and(|e| e.is_panic()),
                "the closure panicked"
            );
            Ok(())
        },
    )
    .await
}

/// On a fresh database behind a `Db` of one connection (so the next session
/// surely gets the same connection), seeded with a group: `leave` leaves a
/// transaction of round 1 unfinished (`what`: abandoned, panicked), then
/// [`next_session_commits_only_its_own`] checks what the next session sees
/// and commits.
async fn left_unfinished<F, Fut>(db: &Db, name: &str, what: &str, leave: F) -> TestResult
where
    F: FnOnce(Db, i64) -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    let direct = db.sqlite_direct();
    common::with_isolated_db(db.backend(), name, |url| async move {
        let one = Db::builder()
            .max_connections(1)
            .sqlite_direct(direct)
            .connect(&url)
            .await?;
        let g = seed_group(&one).await?;
        leave(one.clone(), g).await?;
        next_session_commits_only_its_own(&one, &url, direct, g, what).await
    })
    .await
}

/// After a transaction of round 1 was left unfinished (`what`: abandoned,
/// panicked), the next session on `one`'s only connection sees none of its
/// rows, and its commit writes its own row of round 2 and nothing of round
/// 1. Closes `one`.
async fn next_session_commits_only_its_own(
    one: &Db,
    url: &str,
    direct: bool,
    g: i64,
    what: &str,
) -> TestResult {
    let seen = within(15, "the next session on the only connection", async {
        let s = one.session().await?;
        let seen = s.count::<FaultRow>().await?;
        s.insert(row(g, 2, "next")).await?;
        s.commit().await?;
        Ok(seen)
    })
    .await?;
    let witness = observer(url, direct).await?;
    let left = committed_rows(&witness, 1).await?;
    let own = committed_rows(&witness, 2).await?;
    witness.close().await;
    one.close().await;
    assert_eq!(
        seen, 0,
        "the next session saw the {what} session's uncommitted rows"
    );
    let tags: Vec<_> = left.iter().map(|r| r.tag.as_str()).collect();
    assert!(
        left.is_empty(),
        "the next session's commit committed the {what} transaction: {tags:?}"
    );
    assert_eq!(own.len(), 1, "the next session's own row");
    Ok(())
}
