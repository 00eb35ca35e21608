//! `InProcessCache`.

use std::time::Duration;

use persist_cache::InProcessCache;
use persist_core::cache::{CachedQuery, ChangeSet, SharedCache};

use crate::common::{key, keys_changed, within};

const TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn put_after_a_concurrent_commit_is_refused() {
    within(10, async {
        let c = InProcessCache::new();
        let k = key("users", 1);
        let before = c.epoch().await.unwrap();
        // A writer commits while the reader is loading.
        c.after_commit(&keys_changed(std::slice::from_ref(&k)))
            .await
            .unwrap();
        assert!(
            !c.put_if_fresh(&k, b"old".to_vec(), before, TTL)
                .await
                .unwrap()
        );
        assert_eq!(c.get(&k).await.unwrap(), None);
        let after = c.epoch().await.unwrap();
        assert!(
            c.put_if_fresh(&k, b"new".to_vec(), after, TTL)
                .await
                .unwrap()
        );
        assert_eq!(c.get(&k).await.unwrap().as_deref(), Some(&b"new"[..]));
        // The commit removes the row.
        c.after_commit(&keys_changed(std::slice::from_ref(&k)))
            .await
            .unwrap();
        assert_eq!(c.get(&k).await.unwrap(), None);
        let m = c.metrics();
        assert_eq!(
            (m.puts, m.rejected_puts, m.hits, m.misses, m.invalidations),
            (1, 1, 1, 2, 2)
        );
    })
    .await;
}

#[tokio::test]
async fn region_invalidation_drops_every_row_of_the_region() {
    within(10, async {
        let c = InProcessCache::new();
        let e = c.epoch().await.unwrap();
        for i in 0..10 {
            assert!(
                c.put_if_fresh(&key("posts", i), vec![i as u8], e, TTL)
                    .await
                    .unwrap()
            );
        }
        assert!(
            c.put_if_fresh(&key("users", 1), vec![1], e, TTL)
                .await
                .unwrap()
        );
        let bulk = ChangeSet {
            regions: vec!["posts".into()],
            tables: vec!["posts".into()],
            ..Default::default()
        };
        c.after_commit(&bulk).await.unwrap();
        for i in 0..10 {
            assert_eq!(c.get(&key("posts", i)).await.unwrap(), None);
        }
        assert!(c.get(&key("users", 1)).await.unwrap().is_some());
        assert!(
            !c.put_if_fresh(&key("posts", 3), vec![3], e, TTL)
                .await
                .unwrap()
        );
        let e2 = c.epoch().await.unwrap();
        assert!(
            c.put_if_fresh(&key("posts", 3), vec![3], e2, TTL)
                .await
                .unwrap()
        );
        assert_eq!(c.get(&key("posts", 3)).await.unwrap(), Some(vec![3]));
    })
    .await;
}

#[tokio::test]
async fn stamps_and_query_cache() {
    within(10, async {
        let c = InProcessCache::new();
        let tables = vec!["users".to_string(), "posts".to_string()];
        let s0 = c.table_stamps(&tables).await.unwrap();
        assert_eq!(s0, vec![0, 0]);
        let q = CachedQuery {
            stamps: vec![("users".into(), s0[0])],
            rows: vec![1, 2, 3],
        };
        assert_eq!(c.query_get("q1").await.unwrap(), None);
        c.query_put("q1", q.clone(), TTL).await.unwrap();
        assert_eq!(c.query_get("q1").await.unwrap(), Some(q));
        c.after_commit(&keys_changed(&[key("users", 1)]))
            .await
            .unwrap();
        let s1 = c.table_stamps(&tables).await.unwrap();
        assert!(s1[0] > s0[0], "users stamp bumped");
        assert_eq!(s1[1], s0[1], "posts stamp unchanged");
    })
    .await;
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    within(10, async {
        let c = InProcessCache::builder()
            .max_ttl(Duration::from_secs(5))
            .build();
        let e = c.epoch().await.unwrap();
        let k = key("users", 1);
        assert!(
            c.put_if_fresh(&k, vec![1], e, Duration::from_millis(80))
                .await
                .unwrap()
        );
        c.query_put(
            "q",
            CachedQuery {
                stamps: vec![],
                rows: vec![],
            },
            Duration::from_millis(80),
        )
        .await
        .unwrap();
        assert!(c.get(&k).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(c.get(&k).await.unwrap(), None);
        assert_eq!(c.query_get("q").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn pruned_records_become_a_floor() {
    within(10, async {
        let c = InProcessCache::builder()
            .retention(Duration::from_millis(50))
            .build();
        let old = c.epoch().await.unwrap();
        c.after_commit(&keys_changed(&[key("users", 1)]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        // This commit prunes the first record; its epoch becomes the floor.
        c.after_commit(&keys_changed(&[key("users", 2)]))
            .await
            .unwrap();
        assert!(
            !c.put_if_fresh(&key("users", 1), vec![1], old, TTL)
                .await
                .unwrap(),
            "older than the floor"
        );
        let now = c.epoch().await.unwrap();
        assert!(
            c.put_if_fresh(&key("users", 1), vec![1], now, TTL)
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn size_bound_is_kept() {
    within(20, async {
        let c = InProcessCache::builder().max_entries(100).build();
        let e = c.epoch().await.unwrap();
        for i in 0..2_000 {
            c.put_if_fresh(&key("t", i), vec![0; 8], e, TTL)
                .await
                .unwrap();
        }
        let mut present = 0;
        for i in 0..2_000 {
            present += usize::from(c.get(&key("t", i)).await.unwrap().is_some());
        }
        assert!(
            present <= 400,
            "{present} of 2000 rows kept with a bound of 100"
        );
    })
    .await;
}

#[tokio::test]
async fn racing_loaders_never_leave_a_stale_row() {
    within(20, async {
        let c = std::sync::Arc::new(InProcessCache::new());
        let k = key("users", 7);
        for round in 0..200u32 {
            let token = c.epoch().await.unwrap();
            let writer = {
                let c = c.clone();
                let k = k.clone();
                tokio::spawn(async move { c.after_commit(&keys_changed(&[k])).await.unwrap() })
            };
            // The loader read the old value under `token`.
            let _ = c
                .put_if_fresh(&k, round.to_le_bytes().to_vec(), token, TTL)
                .await
                .unwrap();
            writer.await.unwrap();
            // After the commit returned, the old value must not be served.
            assert_eq!(c.get(&k).await.unwrap(), None, "round {round}");
        }
    })
    .await;
}
