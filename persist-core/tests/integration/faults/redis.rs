//! Redis stopped and paused while sessions commit: sessions keep working
//! from the database, and once Redis is back no read is stale.

use std::sync::Arc;
use std::time::{Duration, Instant};

use persist_cache::RedisCache;
use persist_core::cache::SharedCache;
use persist_core::prelude::*;

use super::model::*;
use crate::common::{self, OwnRedis, TestResult};

const TTL: Duration = Duration::from_secs(60);

/// Sets the row's `n` in a session of its own and commits; answers how long
/// the commit took.
async fn set_n(db: &Db, id: i64, n: i64) -> Result<Duration, Error> {
    let s = db.session().await?;
    let mut r = s.find::<FaultRow>(&id).await?.ok_or(Error::NotFound)?;
    r.n = n;
    s.update(&mut r)?;
    let t = Instant::now();
    s.commit().await?;
    Ok(t.elapsed())
}

/// The row's `n` as a new session reads it (through the cache when it can).
async fn read_n(db: &Db, id: i64) -> Result<i64, Error> {
    let s = db.session_with(SessionOptions::new().read_only()).await?;
    let n = s.find::<FaultRow>(&id).await?.ok_or(Error::NotFound)?.n;
    s.commit().await?;
    Ok(n)
}

pub async fn redis_stopped_and_paused_during_commits(db: Db) -> TestResult {
    let mut redis = OwnRedis::start();
    let cache = RedisCache::builder(redis.url(), "persist_faults", TTL)
        .op_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let cache: Arc<dyn SharedCache> = Arc::new(cache);
    common::with_isolated_db(db.backend(), "redis_stopped_paused", |url| async move {
        let cdb = Db::builder()
            .sqlite_direct(db.sqlite_direct())
            .cache_arc(cache)
            .cache_entity::<FaultRow>(TTL)
            .connect(&url)
            .await?;
        cdb.create_tables::<FaultTables>().await?;
        let s = cdb.session().await?;
        let g = s
            .insert(FaultGroup {
                id: 0,
                name: "g".into(),
            })
            .await?;
        let a = s.insert(row(g.id, 0, "a")).await?;
        s.commit().await?;
        assert_eq!(read_n(&cdb, a.id).await?, 0);
        let s = cdb.session_with(SessionOptions::new().read_only()).await?;
        s.find::<FaultRow>(&a.id).await?;
        assert_eq!(s.statement_count(), 0, "cached while Redis is up");
        s.commit().await?;

        // Stopped: commits succeed and reads come from the database.
        redis.kill();
        for n in 1..=3 {
            let took = set_n(&cdb, a.id, n).await?;
            eprintln!("commit with Redis stopped took {took:?}");
            assert_eq!(read_n(&cdb, a.id).await?, n, "a read while Redis is down");
        }
        // Back, empty: nothing stale, and the cache fills again.
        redis.restart();
        for _ in 0..3 {
            assert_eq!(read_n(&cdb, a.id).await?, 3, "a read once Redis is back");
        }
        set_n(&cdb, a.id, 4).await?;
        for _ in 0..3 {
            assert_eq!(read_n(&cdb, a.id).await?, 4, "a read after the next commit");
        }

        // Paused (the data stays, commands wait): the row is cached with
        // n=4; commits change it during the pause.
        let s = cdb.session_with(SessionOptions::new().read_only()).await?;
        s.find::<FaultRow>(&a.id).await?;
        let served_by_cache = s.statement_count() == 0;
        s.commit().await?;
        eprintln!("before the pause the row is served by the cache: {served_by_cache}");
        let paused_at = Instant::now();
        redis.pause(2000);
        // Readers beside the writer: their gets and puts queue in Redis
        // during the pause and run when it ends, after or before the
        // writer's invalidations.
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let cdb = cdb.clone();
                let id = a.id;
                tokio::spawn(async move {
                    while paused_at.elapsed() < Duration::from_millis(2300) {
                        read_n(&cdb, id).await?;
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    Ok::<(), Error>(())
                })
            })
            .collect();
        let mut last = 4;
        while paused_at.elapsed() < Duration::from_millis(1700) {
            last += 1;
            let took = set_n(&cdb, a.id, last).await?;
            let t = Instant::now();
            let seen = read_n(&cdb, a.id).await?;
            eprintln!(
                "during the pause: commit took {took:?}, read n={seen} (wrote {last}) in {:?}",
                t.elapsed()
            );
            assert_eq!(
                seen, last,
                "a read during the pause, after a commit of n={last}"
            );
        }
        for r in readers {
            r.await.expect("reader task")?;
        }
        // Past the pause, the queued commands have run: no stale read.
        tokio::time::sleep(Duration::from_millis(2500).saturating_sub(paused_at.elapsed())).await;
        for i in 0..5 {
            let seen = read_n(&cdb, a.id).await?;
            assert_eq!(
                seen, last,
                "read {i} after the pause ended serves n={seen}; the database holds n={last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // And a commit right after the pause is seen.
        set_n(&cdb, a.id, last + 1).await?;
        assert_eq!(read_n(&cdb, a.id).await?, last + 1);
        let m = cdb.cache_metrics().expect("cache registered");
        eprintln!("cache metrics after the outages: {m:?}");
        cdb.close().await;
        Ok::<(), Error>(())
    })
    .await
}
