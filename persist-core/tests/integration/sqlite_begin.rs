//! How SQLite sessions begin: read-write sessions take the one write lock
//! at their first statement (`BEGIN IMMEDIATE`) and wait for it on the busy
//! timeout, read-only sessions begin deferred and never wait. Each test
//! runs on SQLite only.

use std::time::Duration;

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;

/// A counter read and changed by the tests.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "begin_counters")]
pub struct Counter {
    #[persist(primary_key)]
    pub id: i64,
    pub n: i64,
}

/// The table with one counter at zero, committed.
async fn one_counter(db: &Db) -> TestResult {
    db.create_tables::<Counter>().await?;
    let s = db.session().await?;
    s.insert(Counter { id: 1, n: 0 }).await?;
    s.commit().await?;
    Ok(())
}

/// A default session that has changed the counter to 1 and flushed:
/// it holds SQLite's write lock until it commits.
async fn open_writer(db: &Db) -> Result<Session, Error> {
    let w = db.session().await?;
    let mut c = w.find::<Counter>(&1).await?.ok_or(Error::NotFound)?;
    c.n = 1;
    w.update(&mut c)?;
    w.flush().await?;
    Ok(w)
}

async fn counter(s: &Session) -> Result<i64, Error> {
    Ok(s.find::<Counter>(&1).await?.ok_or(Error::NotFound)?.n)
}

pub async fn read_only_reader_does_not_queue_behind_an_open_writer(db: Db) -> TestResult {
    if db.backend() != Backend::Sqlite {
        return Ok(());
    }
    one_counter(&db).await?;
    let writer = open_writer(&db).await?;
    let read = tokio::time::timeout(Duration::from_secs(2), async {
        let r = db.session_with(SessionOptions::new().read_only()).await?;
        let n = counter(&r).await?;
        r.commit().await?;
        Ok::<_, Error>(n)
    })
    .await
    .expect("a read-only session reads while the writer holds its transaction")?;
    assert_eq!(read, 0, "it reads the last committed state");
    writer.commit().await?;
    Ok(())
}

pub async fn default_reader_queues_until_the_writer_commits(db: Db) -> TestResult {
    if db.backend() != Backend::Sqlite {
        return Ok(());
    }
    one_counter(&db).await?;
    let writer = open_writer(&db).await?;
    let reader = tokio::spawn({
        let db = db.clone();
        async move {
            let s = db.session().await?;
            let n = counter(&s).await?;
            s.commit().await?;
            Ok::<_, Error>(n)
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !reader.is_finished(),
        "a default session begins with BEGIN IMMEDIATE: it waits for the writer"
    );
    writer.commit().await?;
    let n = tokio::time::timeout(Duration::from_secs(2), reader)
        .await
        .expect("it goes on when the writer commits, long before the busy timeout")
        .expect("reader task")?;
    assert_eq!(n, 1, "it began after the commit");
    Ok(())
}

pub async fn default_sessions_that_read_then_write_take_turns(db: Db) -> TestResult {
    if db.backend() != Backend::Sqlite {
        return Ok(());
    }
    one_counter(&db).await?;
    const TASKS: i64 = 4;
    const ROUNDS: i64 = 10;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                if t % 2 == 0 {
                    // A session of its own: any SQLITE_BUSY would surface here.
                    let s = db.session().await?;
                    let mut c = s.find::<Counter>(&1).await?.ok_or(Error::NotFound)?;
                    tokio::task::yield_now().await;
                    c.n += 1;
                    s.update(&mut c)?;
                    s.commit().await?;
                } else {
                    let done = db
                        .transaction_with(SessionOptions::new().max_retries(0), |s| async move {
                            let mut c = s.find::<Counter>(&1).await?.ok_or(Error::NotFound)?;
                            tokio::task::yield_now().await;
                            c.n += 1;
                            s.update(&mut c)?;
                            Ok::<_, Error>(())
                        })
                        .await?;
                    assert_eq!(done.attempts, 1, "no retry was needed");
                }
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("no session waits on another for long")
            .expect("writer task")?;
    }
    let s = db.session().await?;
    assert_eq!(counter(&s).await?, TASKS * ROUNDS, "no update was lost");
    s.commit().await?;
    Ok(())
}

pub async fn a_session_cut_while_waiting_holds_up_nobody(db: Db) -> TestResult {
    if db.backend() != Backend::Sqlite {
        return Ok(());
    }
    one_counter(&db).await?;
    let writer = open_writer(&db).await?;
    // Another task's session waits for the writer's lock and is cut there;
    // its handle stays alive.
    let cut = tokio::spawn({
        let db = db.clone();
        async move {
            let s = db.session().await?;
            let waited =
                tokio::time::timeout(Duration::from_millis(100), s.find::<Counter>(&1)).await;
            assert!(waited.is_err(), "it waited for the writer");
            Ok::<_, Error>(s)
        }
    })
    .await
    .expect("cut task")?;
    writer.commit().await?;
    let next = tokio::time::timeout(Duration::from_secs(2), {
        let db = db.clone();
        tokio::spawn(async move {
            let s = db.session().await?;
            let mut c = s.find::<Counter>(&1).await?.ok_or(Error::NotFound)?;
            c.n += 1;
            s.update(&mut c)?;
            s.commit().await?;
            Ok::<_, Error>(())
        })
    })
    .await
    .expect("the next writer does not wait for the cut session");
    next.expect("next task")?;
    // The cut session works on, in a new transaction.
    assert_eq!(counter(&cut).await?, 2);
    cut.commit().await?;
    Ok(())
}
