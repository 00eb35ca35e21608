//! `NearCache` on the machine's Redis: two "processes" (two instances).

use std::time::{Duration, Instant};

use persist_cache::{NearCache, RedisCache};
use persist_core::cache::{ChangeSet, SharedCache};

use crate::common::{Prefix, SHARED_URL, key, keys_changed, pct, within};

const TTL: Duration = Duration::from_secs(60);
/// The staleness bound the near-cache documents for a live subscription on
/// loopback, generously.
const BOUND: Duration = Duration::from_millis(500);

async fn near(p: &Prefix) -> NearCache {
    let c = NearCache::connect(SHARED_URL, p.name.clone(), TTL)
        .await
        .expect("connect");
    assert!(c.is_subscribed(), "subscribed on connect");
    c
}

/// Waits until `b`'s local tier no longer holds `k`; answers how long it
/// took.
async fn until_dropped(
    b: &NearCache,
    k: &persist_core::cache::CacheKey,
    from: Instant,
) -> Duration {
    loop {
        if !b.local_contains(k) {
            return from.elapsed();
        }
        assert!(
            from.elapsed() < Duration::from_secs(5),
            "local tier never invalidated"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_hits_and_own_commits_are_strict() {
    let Some(p) = Prefix::new("near-own") else {
        return;
    };
    within(20, async {
        let b = near(&p).await;
        let k = key("users", 1);
        let e = b.epoch().await.unwrap();
        assert!(b.put_if_fresh(&k, vec![1], e, TTL).await.unwrap());
        assert!(b.local_contains(&k));
        assert_eq!(b.get(&k).await.unwrap(), Some(vec![1]));
        assert_eq!(b.local_hits(), 1);
        // Own commit: gone at once, locally and in Redis.
        b.after_commit(&keys_changed(std::slice::from_ref(&k)))
            .await
            .unwrap();
        assert!(!b.local_contains(&k));
        assert_eq!(b.get(&k).await.unwrap(), None);
        assert!(!b.put_if_fresh(&k, vec![1], e, TTL).await.unwrap());
        // A Redis hit fills the local tier.
        let e2 = b.epoch().await.unwrap();
        assert!(b.remote().put_if_fresh(&k, vec![2], e2, TTL).await.unwrap());
        assert!(!b.local_contains(&k));
        assert_eq!(b.get(&k).await.unwrap(), Some(vec![2]));
        assert!(b.local_contains(&k));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_commits_reach_the_local_tier_within_the_bound() {
    let Some(p) = Prefix::new("near-staleness") else {
        return;
    };
    within(60, async {
        let a = near(&p).await;
        let b = near(&p).await;
        // A plain Redis provider's commits are published too.
        let plain = RedisCache::connect(SHARED_URL, p.name.clone(), TTL).await.unwrap();
        let mut delays = Vec::new();
        for i in 0..200 {
            let k = key("users", i);
            let e = b.epoch().await.unwrap();
            assert!(b.put_if_fresh(&k, vec![1], e, TTL).await.unwrap());
            assert_eq!(b.get(&k).await.unwrap(), Some(vec![1]));
            assert!(b.local_contains(&k));
            let writer: &dyn SharedCache = if i % 2 == 0 { &a } else { &plain };
            writer.after_commit(&keys_changed(std::slice::from_ref(&k))).await.unwrap();
            let returned = Instant::now();
            delays.push(until_dropped(&b, &k, returned).await);
            assert_eq!(b.get(&k).await.unwrap(), None);
        }
        delays.sort();
        let (p50, p99, max) = (pct(&delays, 0.5), pct(&delays, 0.99), *delays.last().unwrap());
        eprintln!("near-cache staleness after commit() returned, 200 invalidations: p50 {p50:?}, p99 {p99:?}, max {max:?}");
        assert!(max < BOUND, "staleness {max:?} over the documented bound {BOUND:?}");

        // Region invalidations travel the same way.
        let e = b.epoch().await.unwrap();
        for i in 0..20 {
            assert!(b.put_if_fresh(&key("posts", i), vec![1], e, TTL).await.unwrap());
        }
        let bulk = ChangeSet { regions: vec!["posts".into()], tables: vec!["posts".into()], ..Default::default() };
        a.after_commit(&bulk).await.unwrap();
        let returned = Instant::now();
        for i in 0..20 {
            let d = until_dropped(&b, &key("posts", i), returned).await;
            assert!(d < BOUND);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_are_shared_and_validated_by_stamps() {
    let Some(p) = Prefix::new("near-query") else {
        return;
    };
    within(20, async {
        let a = near(&p).await;
        let b = near(&p).await;
        let tables = vec!["users".to_string()];
        let s = a.table_stamps(&tables).await.unwrap();
        let q = persist_core::cache::CachedQuery {
            stamps: vec![("users".into(), s[0])],
            rows: vec![1, 2],
        };
        a.query_put("k", q.clone(), TTL).await.unwrap();
        assert_eq!(b.query_get("k").await.unwrap(), Some(q.clone()));
        assert_eq!(b.query_get("k").await.unwrap(), Some(q.clone()));
        a.after_commit(&keys_changed(&[key("users", 1)]))
            .await
            .unwrap();
        // The stamps (in Redis) changed at once for every process.
        assert_ne!(b.table_stamps(&tables).await.unwrap(), s);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_uses_the_local_tier_then_redis() {
    let Some(p) = Prefix::new("near-get-many") else {
        return;
    };
    within(20, async {
        let a = near(&p).await;
        let b = near(&p).await;
        let e = a.epoch().await.unwrap();
        for i in 1..=3 {
            assert!(
                a.put_if_fresh(&key("t", i), vec![i as u8], e, TTL)
                    .await
                    .unwrap()
            );
        }
        // `a` holds all three locally; `b` fetches them from Redis in one
        // call and then holds them locally too.
        let asked = [key("t", 3), key("t", 4), key("t", 1)];
        let want = vec![Some(vec![3]), None, Some(vec![1])];
        assert_eq!(a.get_many(&asked).await.unwrap(), want);
        assert_eq!(a.local_hits(), 2);
        assert_eq!(b.get_many(&asked).await.unwrap(), want);
        assert_eq!(b.local_hits(), 0);
        assert!(b.local_contains(&key("t", 1)));
        assert_eq!(b.get_many(&asked).await.unwrap(), want);
        assert_eq!(b.local_hits(), 2);
    })
    .await;
}
