//! `Duration::MAX` (or any huge duration) in any setting or put: every
//! provider keeps working, clamped to what it can represent, and never
//! panics.

use std::time::Duration;

use persist_cache::{InProcessCache, NearCache, RedisCache};
use persist_core::cache::{CachedQuery, SharedCache};

use crate::common::{Prefix, SHARED_URL, key, keys_changed, within};

const HUGE: [Duration; 3] = [
    Duration::MAX,
    Duration::from_secs(u64::MAX / 2),
    Duration::from_secs(100 * 365 * 24 * 3600),
];

/// [`exercise_with`] `c` under a huge TTL, no TTL, and an ordinary one.
async fn exercise(c: &dyn SharedCache, huge: Duration) {
    for ttl in [huge, Duration::ZERO, Duration::from_secs(60)] {
        exercise_with(c, ttl).await;
    }
}

/// Puts, reads, commits and query puts through `c`, with `ttl` on each put.
async fn exercise_with(c: &dyn SharedCache, ttl: Duration) {
    let k = key("users", 1);
    let e = c.epoch().await.unwrap();
    assert!(c.put_if_fresh(&k, vec![1, 2], e, ttl).await.unwrap());
    assert_eq!(c.get(&k).await.unwrap(), Some(vec![1, 2]));
    let q = CachedQuery {
        stamps: vec![("users".into(), 0)],
        rows: vec![7],
    };
    c.query_put("q1", q.clone(), ttl).await.unwrap();
    assert_eq!(c.query_get("q1").await.unwrap(), Some(q));
    c.after_commit(&keys_changed(std::slice::from_ref(&k)))
        .await
        .unwrap();
    assert_eq!(c.get(&k).await.unwrap(), None);
    let e = c.epoch().await.unwrap();
    assert!(c.put_if_fresh(&k, vec![3], e, ttl).await.unwrap());
    assert_eq!(c.get(&k).await.unwrap(), Some(vec![3]));
    c.after_commit(&keys_changed(&[k])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_takes_huge_durations() {
    within(20, async {
        for huge in HUGE {
            let c = InProcessCache::builder()
                .max_ttl(huge)
                .retention(huge)
                .build();
            exercise(&c, huge).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_takes_huge_durations() {
    let Some(p) = Prefix::new("huge-redis") else {
        return;
    };
    within(30, async {
        for huge in HUGE {
            let c = RedisCache::builder(SHARED_URL, p.name.clone(), huge)
                .retention(huge)
                .op_timeout(huge)
                .connect_timeout(huge)
                .connect()
                .await
                .expect("connect");
            exercise(&c, huge).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_cache_takes_huge_durations() {
    let Some(p) = Prefix::new("huge-near") else {
        return;
    };
    within(30, async {
        for huge in HUGE {
            let c = NearCache::builder(SHARED_URL, p.name.clone(), huge)
                .local_ttl(huge)
                .liveness(huge)
                .heartbeat(huge)
                .redis(|r| r.retention(huge).op_timeout(huge).connect_timeout(huge))
                .local(|l| l.max_ttl(huge).retention(huge))
                .connect()
                .await
                .expect("connect");
            exercise(&c, huge).await;
        }
    })
    .await;
}
