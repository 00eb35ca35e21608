//! Redis going away: a `redis-server` of the test's own, killed or frozen
//! mid-test. Operations fail promptly with `CacheError`; after recovery
//! nothing stale is served.

use std::time::{Duration, Instant};

use persist_cache::{NearCache, RedisCache};
use persist_core::cache::{CachedQuery, SharedCache};

use crate::common::{OwnRedis, Proxy, key, keys_changed, within};

const TTL: Duration = Duration::from_secs(60);
/// What "promptly" means: the operation timeout is 500 ms here.
const PROMPT: Duration = Duration::from_millis(1500);

async fn cache(url: &str) -> RedisCache {
    RedisCache::builder(url, "app", TTL)
        .op_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await
        .expect("connect")
}

/// Retries `get` until Redis answers again; answers the first answer.
async fn first_answer(c: &dyn SharedCache, k: &persist_core::cache::CacheKey) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.get(k).await {
            Ok(v) => return v,
            Err(_) => {
                assert!(Instant::now() < deadline, "never recovered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_redis() {
    within(60, async {
        let mut server = OwnRedis::start();
        let c = cache(&server.url()).await;
        let k = key("users", 1);
        let old = c.epoch().await.unwrap();
        assert!(c.put_if_fresh(&k, vec![1], old, TTL).await.unwrap());
        assert_eq!(c.get(&k).await.unwrap(), Some(vec![1]));

        server.kill();
        for _ in 0..3 {
            let t = Instant::now();
            assert!(
                c.after_commit(&keys_changed(std::slice::from_ref(&k)))
                    .await
                    .is_err()
            );
            assert!(t.elapsed() < PROMPT, "after_commit took {:?}", t.elapsed());
            let t = Instant::now();
            assert!(c.get(&k).await.is_err());
            assert!(c.epoch().await.is_err());
            assert!(c.table_stamps(&["users".into()]).await.is_err());
            assert!(t.elapsed() < PROMPT * 3, "reads took {:?}", t.elapsed());
        }
        assert!(c.metrics().errors >= 12);

        server.restart();
        assert_eq!(
            first_answer(&c, &k).await,
            None,
            "stale row after the outage"
        );
        assert!(
            !c.put_if_fresh(&k, vec![1], old, TTL).await.unwrap(),
            "a token from before the outage"
        );
        let now = c.epoch().await.unwrap();
        assert!(now > old, "the epoch restarted above every earlier token");
        assert!(c.put_if_fresh(&k, vec![2], now, TTL).await.unwrap());
        assert_eq!(c.get(&k).await.unwrap(), Some(vec![2]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_keeps_its_data_and_the_lost_invalidation_is_covered() {
    within(60, async {
        let server = OwnRedis::start();
        let a = cache(&server.url()).await;
        let b = cache(&server.url()).await;
        let k = key("users", 1);
        let old = b.epoch().await.unwrap();
        assert!(b.put_if_fresh(&k, vec![1], old, TTL).await.unwrap());
        let tables = vec!["users".to_string()];
        let stamps = a.table_stamps(&tables).await.unwrap();
        let q = CachedQuery {
            stamps: vec![("users".into(), stamps[0])],
            rows: vec![1],
        };
        b.query_put("q", q.clone(), TTL).await.unwrap();

        // Redis stops answering (its data stays): A's commit cannot invalidate.
        server.signal("-STOP");
        let t = Instant::now();
        assert!(
            a.after_commit(&keys_changed(std::slice::from_ref(&k)))
                .await
                .is_err()
        );
        assert!(t.elapsed() < PROMPT, "after_commit took {:?}", t.elapsed());
        let t = Instant::now();
        assert!(a.get(&k).await.is_err());
        assert!(t.elapsed() < PROMPT, "get took {:?}", t.elapsed());
        server.signal("-CONT");

        // A starts a new generation before serving anything: the row and the
        // query result cached before the outage are gone for every process.
        assert_eq!(first_answer(&a, &k).await, None, "A served a stale row");
        assert_eq!(b.get(&k).await.unwrap(), None, "B served a stale row");
        assert!(
            !b.put_if_fresh(&k, vec![1], old, TTL).await.unwrap(),
            "old token accepted"
        );
        assert_ne!(
            b.table_stamps(&tables).await.unwrap(),
            stamps,
            "old query result still valid"
        );
        // And the cache works again.
        let now = b.epoch().await.unwrap();
        assert!(b.put_if_fresh(&k, vec![2], now, TTL).await.unwrap());
        assert_eq!(a.get(&k).await.unwrap(), Some(vec![2]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_bypasses_its_local_tier_while_unsubscribed() {
    within(60, async {
        let mut server = OwnRedis::start();
        let b = NearCache::builder(server.url(), "app", TTL)
            .redis(|r| {
                r.op_timeout(Duration::from_millis(500))
                    .connect_timeout(Duration::from_millis(200))
            })
            .connect()
            .await
            .unwrap();
        assert!(b.is_subscribed());
        let k = key("users", 1);
        let e = b.epoch().await.unwrap();
        assert!(b.put_if_fresh(&k, vec![1], e, TTL).await.unwrap());
        assert!(b.local_contains(&k));

        server.kill();
        let t = Instant::now();
        while b.is_subscribed() {
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "subscription loss not noticed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!(
            "near cache noticed the lost subscription after {:?}",
            t.elapsed()
        );
        assert!(!b.local_contains(&k));
        assert!(
            b.get(&k).await.is_err(),
            "served from the local tier without Redis"
        );

        server.restart();
        let t = Instant::now();
        while !b.is_subscribed() {
            assert!(t.elapsed() < Duration::from_secs(10), "never resubscribed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(first_answer(&b, &k).await, None);
        let e = b.epoch().await.unwrap();
        assert!(b.put_if_fresh(&k, vec![2], e, TTL).await.unwrap());
        assert_eq!(b.get(&k).await.unwrap(), Some(vec![2]));
        assert!(b.local_contains(&k));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_process_loses_an_invalidation_and_covers_it_on_return() {
    within(60, async {
        let server = OwnRedis::start();
        let proxy = Proxy::start(server.port).await;
        // A reaches Redis through the proxy; B directly.
        let a = cache(&proxy.url()).await;
        let b = cache(&server.url()).await;
        let k = key("users", 1);
        let old = b.epoch().await.unwrap();
        assert!(b.put_if_fresh(&k, vec![1], old, TTL).await.unwrap());
        let tables = vec!["users".to_string()];
        let stamps = b.table_stamps(&tables).await.unwrap();
        b.query_put(
            "q",
            CachedQuery {
                stamps: vec![("users".into(), stamps[0])],
                rows: vec![1],
            },
            TTL,
        )
        .await
        .unwrap();
        assert_eq!(a.get(&k).await.unwrap(), Some(vec![1]));

        // A commits a change of `k` while it cannot reach Redis: the
        // invalidation is lost.
        proxy.cut();
        let t = Instant::now();
        assert!(
            a.after_commit(&keys_changed(std::slice::from_ref(&k)))
                .await
                .is_err()
        );
        assert!(t.elapsed() < PROMPT, "after_commit took {:?}", t.elapsed());
        let t = Instant::now();
        assert!(a.get(&k).await.is_err());
        assert!(t.elapsed() < PROMPT, "get took {:?}", t.elapsed());
        // The documented limit: B, which still reaches Redis, serves the row
        // A changed until A is back.
        assert_eq!(b.get(&k).await.unwrap(), Some(vec![1]));
        assert_eq!(b.table_stamps(&tables).await.unwrap(), stamps);

        // A is back: before serving anything it starts a new generation, so
        // nothing cached before is served, by A or by B.
        proxy.restore();
        assert_eq!(first_answer(&a, &k).await, None, "A served a stale row");
        assert_eq!(b.get(&k).await.unwrap(), None, "B served a stale row");
        assert!(
            !b.put_if_fresh(&k, vec![1], old, TTL).await.unwrap(),
            "old token accepted"
        );
        assert_ne!(
            b.table_stamps(&tables).await.unwrap(),
            stamps,
            "old query result still valid"
        );
        let now = a.epoch().await.unwrap();
        assert!(a.put_if_fresh(&k, vec![2], now, TTL).await.unwrap());
        assert_eq!(b.get(&k).await.unwrap(), Some(vec![2]));
    })
    .await;
}
