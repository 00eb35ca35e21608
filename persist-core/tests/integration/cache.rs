//! The shared cache with sessions on real databases: Hibernate's scenarios,
//! the loader race, two processes sharing Redis, and the query cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use persist_cache::{InProcessCache, RedisCache};
use persist_core::cache::{
    CacheFuture, CacheKey, CacheMetrics, CachedQuery, ChangeSet, SharedCache,
};
use persist_core::prelude::*;
use persist_core::session::Isolation;
use tokio::sync::Notify;

use crate::common::{self, OwnRedis, TestResult};
use crate::model::*;

const TTL: Duration = Duration::from_secs(60);

fn customer(email: &str, name: &str) -> Customer {
    Customer {
        id: 0,
        email: email.into(),
        name: name.into(),
    }
}

fn redis_url() -> String {
    std::env::var("PERSIST_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A unique key prefix, so tests sharing the machine's Redis never meet.
fn prefix(test: &str) -> String {
    format!(
        "persist_t_{}_{}_{test}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Inserts one customer and commits.
async fn seed(db: &Db, email: &str, name: &str) -> Result<Customer, Error> {
    let s = db.session().await?;
    let row = s.insert(customer(email, name)).await?;
    s.commit().await?;
    Ok(row)
}

/// The cache key of customer `id`.
fn customer_key(id: i64) -> CacheKey {
    CacheKey {
        region: "customers".into(),
        key: format!("{id:?}"),
    }
}

/// Removes customer `id` from `cache`, as a commit that changed it would.
async fn evict(cache: &dyn SharedCache, id: i64) {
    let changes = ChangeSet {
        keys: vec![customer_key(id)],
        ..ChangeSet::default()
    };
    cache
        .after_commit(&changes)
        .await
        .expect("the cache answers");
}

/// A fresh isolated database and a `Db` on it with `cache`, caching
/// `Customer` rows. Runs `body`, then tears the database down.
async fn with_cached_db<F, Fut>(
    db: &Db,
    test: &str,
    cache: Arc<dyn SharedCache>,
    body: F,
) -> TestResult
where
    F: FnOnce(Db, String) -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    common::with_isolated_db(db.backend(), test, |url| async move {
        // At READ COMMITTED the shared cache answers every read (at MySQL's
        // default, REPEATABLE READ, only reads before the snapshot exists,
        // which are then checked against it).
        let cdb = Db::builder()
            .isolation(Isolation::ReadCommitted)
            .cache_arc(cache)
            .cache_entity::<Customer>(TTL)
            .connect(&url)
            .await?;
        cdb.create_tables::<Customer>().await?;
        let r = body(cdb.clone(), url.clone()).await;
        cdb.close().await;
        r
    })
    .await
}

pub async fn insert_commit_then_cached(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_cached_db(
        &db,
        "insert_commit_then_cached",
        cache.clone(),
        |db, _| async move {
            let a = seed(&db, "a@x", "A").await?;
            assert_eq!(
                cache.metrics().puts,
                1,
                "the committed insert is put after commit"
            );

            let s = db.session().await?;
            assert_eq!(s.find::<Customer>(&a.id).await?, Some(a.clone()));
            assert_eq!(s.statement_count(), 0, "served by the shared cache");
            s.commit().await?;
            assert!(db.cache_metrics().is_some_and(|m| m.hits >= 1));
            Ok(())
        },
    )
    .await
}

pub async fn rollback_leaves_cache_unchanged(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_cached_db(
        &db,
        "rollback_leaves_cache",
        cache.clone(),
        |db, _| async move {
            let s = db.session().await?;
            let a = s.insert(customer("a@x", "A")).await?;
            s.add(customer("b@x", "B"))?;
            s.flush().await?;
            s.rollback().await?;
            assert_eq!(
                cache.metrics().puts,
                0,
                "nothing of a rolled-back transaction is cached"
            );

            let s = db.session().await?;
            assert_eq!(s.find::<Customer>(&a.id).await?, None);
            assert_eq!(s.statement_count(), 1, "the database answered");
            Ok(())
        },
    )
    .await
}

pub async fn uncommitted_update_is_invisible(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_cached_db(
        &db,
        "uncommitted_update_invisible",
        cache.clone(),
        |db, _| async move {
            let a = seed(&db, "a@x", "A").await?;

            // A writer changes the row and flushes, but has not committed.
            let writer = db.session().await?;
            let mut row = writer
                .find::<Customer>(&a.id)
                .await?
                .ok_or(Error::NotFound)?;
            row.name = "changed".into();
            writer.update(&mut row)?;
            writer.flush().await?;

            // Another session still reads the committed value (from the cache;
            // on SQLite the writer holds the write lock, so read-only).
            let reader = db.session_with(SessionOptions::new().read_only()).await?;
            assert_eq!(
                reader.find::<Customer>(&a.id).await?.map(|c| c.name),
                Some("A".into())
            );
            reader.commit().await?;

            writer.commit().await?;
            let after = db.session().await?;
            assert_eq!(
                after.find::<Customer>(&a.id).await?.map(|c| c.name),
                Some("changed".into()),
                "the commit invalidated the cached row before returning"
            );
            Ok(())
        },
    )
    .await
}

pub async fn bulk_update_evicts(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_cached_db(
        &db,
        "bulk_update_evicts",
        cache.clone(),
        |db, _| async move {
            let s = db.session().await?;
            let rows = s
                .insert_many(vec![customer("a@x", "A"), customer("b@x", "B")])
                .await?;
            s.commit().await?;
            let s = db.session().await?;
            let n = s
                .update_all::<Customer>()
                .set(Customer::NAME, "bulk".to_string())
                .await?;
            assert_eq!(n, 2);
            s.commit().await?;

            let s = db.session().await?;
            for r in &rows {
                assert_eq!(
                    s.find::<Customer>(&r.id).await?.map(|c| c.name),
                    Some("bulk".into())
                );
            }
            assert_eq!(
                s.statement_count(),
                2,
                "the region was evicted: both rows came from the database"
            );
            Ok(())
        },
    )
    .await
}

/// A point where a test holds a provider call: armed, the next call there
/// signals `reached` and waits for `release`; later calls pass straight
/// through.
#[derive(Default)]
pub struct Hold {
    pub armed: AtomicBool,
    pub reached: Notify,
    pub release: Notify,
}

impl Hold {
    async fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
    }
}

/// An in-process provider whose puts and commit notifications a test can
/// hold (a loader between its database read and its put, a commit inside
/// its `after_commit`).
#[derive(Default)]
pub struct HeldCache {
    inner: InProcessCache,
    pub put: Hold,
    pub after_commit: Hold,
}

impl SharedCache for HeldCache {
    fn epoch(&self) -> CacheFuture<'_, u64> {
        self.inner.epoch()
    }
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put_if_fresh<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Vec<u8>,
        epoch: u64,
        ttl: Duration,
    ) -> CacheFuture<'a, bool> {
        Box::pin(async move {
            self.put.pass().await;
            self.inner.put_if_fresh(key, value, epoch, ttl).await
        })
    }
    fn after_commit<'a>(&'a self, changes: &'a ChangeSet) -> CacheFuture<'a, ()> {
        Box::pin(async move {
            self.after_commit.pass().await;
            self.inner.after_commit(changes).await
        })
    }
    fn table_stamps<'a>(&'a self, tables: &'a [String]) -> CacheFuture<'a, Vec<u64>> {
        self.inner.table_stamps(tables)
    }
    fn query_get<'a>(&'a self, key: &'a str) -> CacheFuture<'a, Option<CachedQuery>> {
        self.inner.query_get(key)
    }
    fn query_put<'a>(
        &'a self,
        key: &'a str,
        value: CachedQuery,
        ttl: Duration,
    ) -> CacheFuture<'a, ()> {
        self.inner.query_put(key, value, ttl)
    }
    fn metrics(&self) -> CacheMetrics {
        self.inner.metrics()
    }
}

pub async fn slow_loader_cannot_put_back_old_row(db: Db) -> TestResult {
    let cache = Arc::new(HeldCache::default());
    with_cached_db(&db, "slow_loader_race", cache.clone(), |db, _| async move {
        let a = seed(&db, "a@x", "old").await?;
        // Start from a cold cache for the key.
        evict(cache.as_ref(), a.id).await;

        // Task A misses and loads the old row, then stops before its put.
        cache.put.armed.store(true, Ordering::SeqCst);
        let loader = tokio::spawn({
            let db = db.clone();
            let id = a.id;
            async move {
                let s = db.session_with(SessionOptions::new().read_only()).await?;
                let row = s.find::<Customer>(&id).await?;
                s.commit().await?;
                Ok::<_, Error>(row)
            }
        });
        tokio::time::timeout(Duration::from_secs(10), cache.put.reached.notified())
            .await
            .expect("loader reached its put");

        // Task B updates the row and commits.
        let s = db.session().await?;
        let mut row = s.find::<Customer>(&a.id).await?.ok_or(Error::NotFound)?;
        row.name = "new".into();
        s.update(&mut row)?;
        s.commit().await?;

        let rejected_before = cache.metrics().rejected_puts;
        cache.put.release.notify_one();
        let loaded = tokio::time::timeout(Duration::from_secs(10), loader)
            .await
            .expect("loader finished")
            .expect("task")?;
        assert_eq!(
            loaded.map(|c| c.name),
            Some("old".into()),
            "A read before B committed"
        );
        assert_eq!(
            cache.metrics().rejected_puts,
            rejected_before + 1,
            "A's put was refused"
        );

        // Cache and database agree.
        let s = db.session().await?;
        assert_eq!(
            s.find::<Customer>(&a.id).await?.map(|c| c.name),
            Some("new".into())
        );
        Ok(())
    })
    .await
}

pub async fn concurrent_misses_load_once(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_cached_db(
        &db,
        "concurrent_misses_load_once",
        cache.clone(),
        |db, _| async move {
            let a = seed(&db, "a@x", "A").await?;
            evict(cache.as_ref(), a.id).await;

            let before = db.statement_count();
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let db = db.clone();
                let id = a.id;
                tasks.push(tokio::spawn(async move {
                    // Read-write: on SQLite the cache answers only a session
                    // holding the write lock (a read-only one reads its snapshot).
                    let s = db.session().await?;
                    let row = s.find::<Customer>(&id).await?;
                    s.commit().await?;
                    Ok::<_, Error>(row)
                }));
            }
            for t in tasks {
                let row = tokio::time::timeout(Duration::from_secs(10), t)
                    .await
                    .expect("finished")
                    .expect("task")?;
                assert_eq!(row.map(|c| c.id), Some(a.id));
            }
            assert_eq!(
                db.statement_count() - before,
                1,
                "eight concurrent misses, one database load"
            );
            Ok(())
        },
    )
    .await
}

pub async fn malformed_cached_value_is_a_miss(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_cached_db(
        &db,
        "malformed_value_miss",
        cache.clone(),
        |db, _| async move {
            let a = seed(&db, "a@x", "A").await?;
            let key = customer_key(a.id);
            evict(cache.as_ref(), a.id).await;
            let epoch = cache.epoch().await.expect("answers");
            assert!(
                cache
                    .put_if_fresh(&key, b"\x01garbage".to_vec(), epoch, TTL)
                    .await
                    .expect("answers")
            );

            let s = db.session().await?;
            assert_eq!(
                s.find::<Customer>(&a.id).await?,
                Some(a.clone()),
                "decoded from the database"
            );
            assert_eq!(s.statement_count(), 1);
            Ok(())
        },
    )
    .await
}

pub async fn query_cache_until_a_write_commits(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    with_cached_db(&db, "query_cache", cache.clone(), |db, _| async move {
        let s = db.session().await?;
        s.insert_many(vec![customer("a@x", "A"), customer("b@x", "B")])
            .await?;
        s.commit().await?;

        let names = |rows: Vec<Customer>| rows.into_iter().map(|c| c.name).collect::<Vec<_>>();
        let s = db.session().await?;
        let q = || {
            s.query::<Customer>()
                .filter(Customer::NAME.ne("Z"))
                .order_by(Customer::ID)
                .cached()
        };
        assert_eq!(names(q().all().await?), ["A", "B"]);
        assert_eq!(s.statement_count(), 1);
        s.commit().await?;

        let s2 = db.session().await?;
        let q2 = || {
            s2.query::<Customer>()
                .filter(Customer::NAME.ne("Z"))
                .order_by(Customer::ID)
                .cached()
        };
        assert_eq!(names(q2().all().await?), ["A", "B"]);
        assert_eq!(
            s2.statement_count(),
            0,
            "answered by the query cache, zero SQL"
        );
        s2.commit().await?;

        // A write to the table commits: the cached result is no longer valid.
        let w = db.session().await?;
        w.insert(customer("c@x", "C")).await?;
        w.commit().await?;

        let s3 = db.session().await?;
        let q3 = || {
            s3.query::<Customer>()
                .filter(Customer::NAME.ne("Z"))
                .order_by(Customer::ID)
                .cached()
        };
        assert_eq!(names(q3().all().await?), ["A", "B", "C"]);
        assert_eq!(s3.statement_count(), 1, "re-queried after the write");
        Ok(())
    })
    .await
}

pub async fn two_processes_share_redis(db: Db) -> TestResult {
    let prefix = prefix("two_processes");
    let connect = || RedisCache::connect(redis_url(), prefix.clone(), TTL);
    let (c1, c2) = match (connect().await, connect().await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("Redis unreachable with CI=true: {e}");
            }
            eprintln!("\n!!!!! SKIPPING Redis test: {e} !!!!!\n");
            return Ok(());
        }
    };
    let c2: Arc<dyn SharedCache> = Arc::new(c2);
    with_cached_db(
        &db,
        "two_processes_redis",
        Arc::new(c1),
        |db1, url| async move {
            // A second, independent Db (another process) on the same database and Redis.
            let db2 = Db::builder()
                .isolation(Isolation::ReadCommitted)
                .cache_arc(c2.clone())
                .cache_entity::<Customer>(TTL)
                .connect(&url)
                .await?;
            let s = db1.session().await?;
            let a = s.insert(customer("a@x", "v0")).await?;
            s.commit().await?;
            for i in 1..=30 {
                // db2 reads (and caches) the row...
                let r = db2.session().await?;
                let seen = r.find::<Customer>(&a.id).await?.ok_or(Error::NotFound)?;
                assert_eq!(seen.name, format!("v{}", i - 1));
                r.commit().await?;
                // ...db1 changes it and commits...
                let w = db1.session().await?;
                let mut row = w.find::<Customer>(&a.id).await?.ok_or(Error::NotFound)?;
                row.name = format!("v{i}");
                w.update(&mut row)?;
                w.commit().await?;
                // ...and once commit() returned, db2 never reads the old value.
                let r = db2.session().await?;
                assert_eq!(
                    r.find::<Customer>(&a.id).await?.map(|c| c.name),
                    Some(format!("v{i}"))
                );
                r.commit().await?;
            }
            let m = db2.cache_metrics().expect("cache registered");
            assert!(m.hits > 0, "db2 was served from Redis: {m:?}");
            db2.close().await;
            Ok(())
        },
    )
    .await
}

pub async fn redis_outage_falls_back_to_the_database(db: Db) -> TestResult {
    let mut redis = OwnRedis::start();
    let cache = RedisCache::builder(redis.url(), prefix("outage"), TTL)
        .op_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let cache: Arc<dyn SharedCache> = Arc::new(cache);
    with_cached_db(&db, "redis_outage", cache, |db, _| async move {
        let a = seed(&db, "a@x", "before").await?;
        let s = db.session().await?;
        assert_eq!(
            s.find::<Customer>(&a.id).await?.map(|c| c.name),
            Some("before".into())
        );
        assert_eq!(s.statement_count(), 0, "cached while Redis is up");
        s.commit().await?;

        redis.kill();
        // Reads come from the database; writes still commit.
        let s = db.session().await?;
        let mut row = s.find::<Customer>(&a.id).await?.ok_or(Error::NotFound)?;
        assert_eq!(s.statement_count(), 1, "the database answered");
        row.name = "during".into();
        s.update(&mut row)?;
        s.commit().await?;
        let errors = db.cache_metrics().map(|m| m.errors).unwrap_or(0);
        assert!(errors > 0, "the failures were counted");

        // Redis is back (empty, as a restarted server without persistence):
        // nothing stale is served.
        redis.restart();
        for _ in 0..3 {
            let s = db.session().await?;
            assert_eq!(
                s.find::<Customer>(&a.id).await?.map(|c| c.name),
                Some("during".into())
            );
            s.commit().await?;
        }
        Ok(())
    })
    .await
}

/// Opted in by the derive attribute, not at run time.
#[derive(persist_core::model::Entity, Clone, Debug, PartialEq)]
#[persist(table = "cached_notes", cache(ttl = "5m"))]
pub struct CachedNote {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub body: String,
}

pub async fn derive_attribute_opts_in(db: Db) -> TestResult {
    common::with_isolated_db(db.backend(), "derive_attribute_opts_in", |url| async move {
        assert_eq!(
            <CachedNote as persist_core::model::Entity>::META.cache_ttl,
            Some(Duration::from_secs(300))
        );
        let cdb = Db::builder()
            .isolation(Isolation::ReadCommitted)
            .cache(InProcessCache::new())
            .connect(&url)
            .await?;
        cdb.create_tables::<CachedNote>().await?;
        let s = cdb.session().await?;
        let n = s
            .insert(CachedNote {
                id: 0,
                body: "hi".into(),
            })
            .await?;
        s.commit().await?;
        let s = cdb.session().await?;
        assert_eq!(s.find::<CachedNote>(&n.id).await?, Some(n.clone()));
        assert_eq!(s.statement_count(), 0, "served by the shared cache");
        // On SQLite the read took the write lock, as a read from the
        // database would have: end the session before the DDL below.
        s.commit().await?;
        // Entities without the attribute (or a registration) are not cached.
        cdb.create_tables::<Customer>().await?;
        let s = cdb.session().await?;
        let c = s.insert(customer("a@x", "A")).await?;
        s.commit().await?;
        let s = cdb.session().await?;
        assert_eq!(s.find::<Customer>(&c.id).await?.map(|c| c.id), Some(c.id));
        assert_eq!(s.statement_count(), 1);
        // The session's transaction holds a connection; `close` waits for it.
        s.commit().await?;
        cdb.close().await;
        Ok(())
    })
    .await
}
