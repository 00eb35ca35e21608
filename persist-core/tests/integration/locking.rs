//! Row locks: `for_update` and `skip_locked` (PostgreSQL, MySQL/MariaDB; a
//! documented no-op on SQLite).

use std::time::Duration;

use persist_core::prelude::*;
use persist_core::sql::Backend;
use tokio::time::timeout;

use crate::common::TestResult;
use crate::rel_model::*;

const WAIT: Duration = Duration::from_secs(10);

async fn seed(db: &Db) -> TestResult {
    db.create_tables::<Job>().await?;
    let s = db.session().await?;
    s.insert_many(
        (0..3)
            .map(|_| Job {
                id: 0,
                state: "new".into(),
                version: 0,
            })
            .collect(),
    )
    .await?;
    s.commit().await?;
    Ok(())
}

pub async fn for_update_blocks_second_session(db: Db) -> TestResult {
    seed(&db).await?;
    let first = db.session().await?;
    let mut job = first
        .query::<Job>()
        .filter(Job::ID.eq(1))
        .for_update()
        .one()
        .await?;
    if db.backend() == Backend::Sqlite {
        // No row locks: the query runs as a plain SELECT.
        assert_eq!(job.state, "new");
        first.rollback().await?;
        return Ok(());
    }

    let db2 = db.clone();
    let second = tokio::spawn(async move {
        let s = db2.session().await?;
        let job = s
            .query::<Job>()
            .filter(Job::ID.eq(1))
            .for_update()
            .one()
            .await?;
        s.rollback().await?;
        Ok::<_, persist_core::error::Error>(job)
    });
    // The second session waits for the lock...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "second for_update must wait for the first session"
    );

    job.state = "taken".into();
    first.update(&mut job)?;
    first.commit().await?;

    // ... and sees the committed row once the first session ends.
    let seen = timeout(WAIT, second)
        .await
        .expect("second session unblocked after commit")
        .expect("task")?;
    assert_eq!(seen.state, "taken");
    assert_eq!(seen.version, 2);
    Ok(())
}

pub async fn skip_locked_skips_locked_rows(db: Db) -> TestResult {
    seed(&db).await?;
    let first = db.session().await?;
    let mine = first
        .query::<Job>()
        .order_by(Job::ID)
        .limit(1)
        .skip_locked()
        .one()
        .await?;
    assert_eq!(mine.id, 1);
    if db.backend() == Backend::Sqlite {
        first.rollback().await?;
        return Ok(());
    }
    let second = db.session().await?;
    let theirs = timeout(
        WAIT,
        second.query::<Job>().order_by(Job::ID).skip_locked().all(),
    )
    .await
    .expect("skip_locked does not wait")?;
    let ids: Vec<i64> = theirs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [2, 3]);
    second.rollback().await?;
    first.rollback().await?;
    Ok(())
}
