//! The store under faults: every call's future cut at every poll, and the
//! cache tier's Redis going away.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use persist_axum::PersistSessionStore;
use persist_cache::RedisCache;
use persist_core::cache::SharedCache;
use persist_core::prelude::*;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};

use crate::common::{OwnRedis, TestResult};
use crate::cut::{Cut, cut_after};
use crate::support::{both, store, with_cache};

fn record(n: i64) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("n".to_owned(), serde_json::json!(n))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

/// The value the store loads for `id` (`None`: no session). A load that
/// fails is a test failure: a cut call must not leave the store unusable.
async fn loaded(store: &PersistSessionStore, id: &Id) -> Option<i64> {
    let r = tokio::time::timeout(Duration::from_secs(10), store.load(id))
        .await
        .expect("a load after a cut answers")
        .expect("a load after a cut is not an error");
    r.and_then(|r| r.data.get("n").and_then(serde_json::Value::as_i64))
}

/// Cuts `op` after 1, 2, … polls until it completes; after every cut,
/// `check` sees the store. Answers how many cuts there were.
async fn sweep<F, Fut, C, CFut>(mut op: F, mut check: C) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = tower_sessions::session_store::Result<()>>,
    C: FnMut() -> CFut,
    CFut: Future<Output = ()>,
{
    let mut cuts = 0;
    for polls in 1..5000 {
        match cut_after(polls, Duration::ZERO, op()).await {
            Cut::Completed(r) => {
                r.expect("the uncut call succeeds");
                return cuts;
            }
            Cut::Cut => {
                cuts += 1;
                check().await;
            }
        }
    }
    panic!("the call never completed uncut");
}

/// Every store call cut at every poll, without and with the cache tier:
/// after each cut a load answers the old or the new state (never an
/// error, never a mix), and once the call completes, the new one.
pub async fn store_calls_cut_at_every_poll(db: Db) -> TestResult {
    both(db, "store_calls_cut", |db, _cached| async move {
        let store = store(&db).await?;
        let mut rec = record(1);
        store.create(&mut rec).await.map_err(to_error)?;
        let id = rec.id;

        // save: the old value or the new, never anything else.
        let mut n = 1;
        for _round in 0..3 {
            let next = n + 1;
            let mut new = rec.clone();
            new.data.insert("n".into(), serde_json::json!(next));
            let cuts = sweep(
                || {
                    let (store, new) = (store.clone(), new.clone());
                    async move { store.save(&new).await }
                },
                || {
                    let store = store.clone();
                    async move {
                        let v = loaded(&store, &id).await;
                        assert!(v == Some(n) || v == Some(next), "after a cut save: {v:?}");
                    }
                },
            )
            .await;
            assert_eq!(loaded(&store, &id).await, Some(next), "after {cuts} cuts");
            // PostgreSQL always leaves a statement pending on its socket;
            // SQLite's direct path answers within the poll.
            if db.backend() == persist_core::sql::Backend::Postgres {
                assert!(cuts >= 1, "a save on PostgreSQL was cut {cuts} times");
            }
            n = next;
        }

        // create: the new session is there with its data, or not at all.
        let fresh = record(100);
        sweep(
            || {
                let (store, mut fresh) = (store.clone(), fresh.clone());
                async move { store.create(&mut fresh).await }
            },
            || {
                let (store, fresh) = (store.clone(), fresh.clone());
                async move {
                    let v = loaded(&store, &fresh.id).await;
                    assert!(v.is_none() || v == Some(100), "after a cut create: {v:?}");
                }
            },
        )
        .await;

        // delete: there or gone, and gone once the call completed.
        sweep(
            || {
                let store = store.clone();
                async move { store.delete(&id).await }
            },
            || {
                let store = store.clone();
                async move {
                    let v = loaded(&store, &id).await;
                    assert!(v.is_none() || v == Some(n), "after a cut delete: {v:?}");
                }
            },
        )
        .await;
        assert_eq!(loaded(&store, &id).await, None);

        // revoke_all: every session of the user gone, or none.
        let user = |n: i64| {
            let mut r = record(n);
            r.data.insert("user_id".into(), serde_json::json!("ann"));
            r
        };
        let (mut u1, mut u2) = (user(11), user(12));
        store.create(&mut u1).await.map_err(to_error)?;
        store.create(&mut u2).await.map_err(to_error)?;
        let mut revoked = false;
        for polls in 1..5000 {
            match cut_after(polls, Duration::ZERO, store.revoke_all("ann")).await {
                Cut::Completed(n) => {
                    assert!(n? <= 2);
                    revoked = true;
                    break;
                }
                Cut::Cut => {
                    // A statement already sent may still finish on the server:
                    // let it, then the two rows agree.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let (a, b) = (loaded(&store, &u1.id).await, loaded(&store, &u2.id).await);
                    assert_eq!(a.is_some(), b.is_some(), "after a cut revoke: {a:?} {b:?}");
                }
            }
        }
        assert!(revoked, "revoke_all completed uncut");
        assert_eq!(loaded(&store, &u1.id).await, None);
        assert!(store.sessions_of("ann").await?.is_empty());

        // load itself cut: the next load answers.
        let other = {
            let mut r = record(7);
            store.create(&mut r).await.map_err(to_error)?;
            r.id
        };
        for polls in 1..200 {
            let fut = store.load(&other);
            if let Cut::Completed(r) = cut_after(polls, Duration::ZERO, fut).await {
                assert!(r.map_err(to_error)?.is_some());
                break;
            }
            assert_eq!(loaded(&store, &other).await, Some(7));
        }
        Ok(())
    })
    .await
}

/// The cache tier's Redis goes away: loads and saves go on through the
/// database; when it is back (empty, as a restarted server without
/// persistence), nothing stale is served.
pub async fn redis_down_the_store_uses_the_database(db: Db) -> TestResult {
    let mut redis = OwnRedis::start();
    let cache = RedisCache::builder(redis.url(), "persist_store_outage", Duration::from_secs(60))
        .op_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let cache: Arc<dyn SharedCache> = Arc::new(cache);
    with_cache(&db, "store_redis_down", cache, |db| async move {
        let store = store(&db).await?;
        let mut rec = record(1);
        store.create(&mut rec).await.map_err(to_error)?;
        assert_eq!(loaded(&store, &rec.id).await, Some(1));
        let before = db.statement_count();
        assert_eq!(loaded(&store, &rec.id).await, Some(1));
        assert_eq!(
            db.statement_count(),
            before,
            "served from Redis while it is up"
        );

        redis.kill();
        assert_eq!(loaded(&store, &rec.id).await, Some(1), "from the database");
        let mut new = rec.clone();
        new.data.insert("n".into(), serde_json::json!(2));
        store.save(&new).await.map_err(to_error)?;
        assert_eq!(loaded(&store, &rec.id).await, Some(2));
        let mut created = record(5);
        store.create(&mut created).await.map_err(to_error)?;
        assert_eq!(loaded(&store, &created.id).await, Some(5));

        redis.restart();
        for _ in 0..3 {
            assert_eq!(loaded(&store, &rec.id).await, Some(2));
        }
        store.delete(&rec.id).await.map_err(to_error)?;
        assert_eq!(loaded(&store, &rec.id).await, None);
        Ok(())
    })
    .await
}

fn to_error(e: tower_sessions::session_store::Error) -> Error {
    Error::Invalid(e.to_string())
}
