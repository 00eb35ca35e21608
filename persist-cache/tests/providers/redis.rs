//! `RedisCache` on the machine's Redis.

use std::time::Duration;

use persist_cache::RedisCache;
use persist_core::cache::{CachedQuery, ChangeSet, SharedCache};

use crate::common::{Prefix, SHARED_URL, key, keys_changed, within};

const TTL: Duration = Duration::from_secs(60);

async fn cache(p: &Prefix) -> RedisCache {
    RedisCache::connect(SHARED_URL, p.name.clone(), TTL)
        .await
        .expect("connect")
}

async fn raw() -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(SHARED_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_after_a_concurrent_commit_is_refused() {
    let Some(p) = Prefix::new("redis-race") else {
        return;
    };
    within(20, async {
        let c = cache(&p).await;
        let k = key("users", 1);
        let before = c.epoch().await.unwrap();
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
        assert!(after > before);
        assert!(
            c.put_if_fresh(&k, b"new".to_vec(), after, TTL)
                .await
                .unwrap()
        );
        assert_eq!(c.get(&k).await.unwrap().as_deref(), Some(&b"new"[..]));
        c.after_commit(&keys_changed(std::slice::from_ref(&k)))
            .await
            .unwrap();
        assert_eq!(c.get(&k).await.unwrap(), None);
        let m = c.metrics();
        assert_eq!(
            (m.puts, m.rejected_puts, m.hits, m.misses, m.errors),
            (1, 1, 1, 2, 0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_invalidation_without_scanning() {
    let Some(p) = Prefix::new("redis-region") else {
        return;
    };
    within(20, async {
        let c = cache(&p).await;
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
        assert_eq!(c.get(&key("users", 1)).await.unwrap(), Some(vec![1]));
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
        // A region name with the separator in it cannot reach another's keys.
        assert!(
            c.put_if_fresh(&key("a:b", "c"), vec![9], e2, TTL)
                .await
                .unwrap()
        );
        assert_eq!(c.get(&key("a", "b:c")).await.unwrap(), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_bump_and_query_cache() {
    let Some(p) = Prefix::new("redis-stamps") else {
        return;
    };
    within(20, async {
        let c = cache(&p).await;
        let tables = vec!["users".to_string(), "posts".to_string()];
        let s0 = c.table_stamps(&tables).await.unwrap();
        assert_eq!(s0.len(), 2);
        let q = CachedQuery {
            stamps: vec![("users".into(), s0[0]), ("posts".into(), s0[1])],
            rows: vec![7; 100],
        };
        assert_eq!(c.query_get("SELECT 1|[]").await.unwrap(), None);
        c.query_put("SELECT 1|[]", q.clone(), TTL).await.unwrap();
        assert_eq!(c.query_get("SELECT 1|[]").await.unwrap(), Some(q));
        c.after_commit(&keys_changed(&[key("users", 1)]))
            .await
            .unwrap();
        let s1 = c.table_stamps(&tables).await.unwrap();
        assert!(s1[0] > s0[0], "users stamp bumped");
        assert_eq!(s1[1], s0[1], "posts stamp unchanged");
        assert_eq!(
            c.table_stamps(&tables).await.unwrap(),
            s1,
            "stable while nothing commits"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_their_ttl() {
    let Some(p) = Prefix::new("redis-ttl") else {
        return;
    };
    within(20, async {
        let c = cache(&p).await;
        let e = c.epoch().await.unwrap();
        let k = key("users", 1);
        assert!(
            c.put_if_fresh(&k, vec![1], e, Duration::from_millis(100))
                .await
                .unwrap()
        );
        c.query_put(
            "q",
            CachedQuery {
                stamps: vec![],
                rows: vec![1],
            },
            Duration::from_millis(100),
        )
        .await
        .unwrap();
        assert!(c.get(&k).await.unwrap().is_some());
        assert!(c.query_get("q").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.get(&k).await.unwrap(), None);
        assert_eq!(c.query_get("q").await.unwrap(), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_values_are_misses_or_errors_never_panics() {
    let Some(p) = Prefix::new("redis-foreign") else {
        return;
    };
    within(20, async {
        let c = cache(&p).await;
        let mut r = raw().await;
        let n = &p.name;
        let set = |k: String, v: &'static [u8]| ::redis::cmd("SET").arg(k).arg(v).to_owned();
        set(format!("{n}:row:users:1"), b"garbage")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        set(format!("{n}:row:users:2"), b"12|x")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        set(format!("{n}:q:k"), b"\x01\xff\xff")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        set(format!("{n}:stamp:users"), b"not a number")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        assert_eq!(c.get(&key("users", 1)).await.unwrap(), None);
        // A well-formed prefix older than the generation is a miss too.
        assert_eq!(c.get(&key("users", 2)).await.unwrap(), None);
        assert_eq!(c.query_get("k").await.unwrap(), None);
        assert_eq!(c.table_stamps(&["users".into()]).await.unwrap().len(), 1);
        // A foreign epoch restarts the clock above every earlier token.
        let before = c.epoch().await.unwrap();
        set(format!("{n}:epoch"), b"abc")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        let after = c.epoch().await.unwrap();
        assert!(after > before);
        assert!(
            !c.put_if_fresh(&key("users", 3), vec![3], before, TTL)
                .await
                .unwrap()
        );
        // A value of another type is an error, not a panic.
        ::redis::cmd("RPUSH")
            .arg(format!("{n}:row:users:4"))
            .arg("x")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        assert!(c.get(&key("users", 4)).await.is_err());
        assert_eq!(c.metrics().errors, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_no_stale_read_after_commit_returns() {
    let Some(p) = Prefix::new("redis-two") else {
        return;
    };
    within(30, async {
        let a = cache(&p).await;
        let b = cache(&p).await;
        for i in 0..100 {
            let k = key("users", i % 7);
            let e = b.epoch().await.unwrap();
            assert!(b.put_if_fresh(&k, vec![i as u8], e, TTL).await.unwrap());
            assert_eq!(b.get(&k).await.unwrap(), Some(vec![i as u8]));
            assert_eq!(a.get(&k).await.unwrap(), Some(vec![i as u8]));
            a.after_commit(&keys_changed(std::slice::from_ref(&k)))
                .await
                .unwrap();
            assert_eq!(
                b.get(&k).await.unwrap(),
                None,
                "B read a stale row after A's commit returned"
            );
            assert!(
                !b.put_if_fresh(&k, vec![0], e, TTL).await.unwrap(),
                "B put back an old row"
            );
        }
        // A concurrent reader in B and writer in A, many rounds.
        for round in 0..100u32 {
            let k = key("hot", 1);
            let token = b.epoch().await.unwrap();
            let writer = {
                let a = a.clone();
                let k = k.clone();
                tokio::spawn(async move { a.after_commit(&keys_changed(&[k])).await.unwrap() })
            };
            let _ = b
                .put_if_fresh(&k, round.to_le_bytes().to_vec(), token, TTL)
                .await
                .unwrap();
            writer.await.unwrap();
            assert_eq!(b.get(&k).await.unwrap(), None, "round {round}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_answers_in_order_under_get_rules() {
    let Some(p) = Prefix::new("redis-get-many") else {
        return;
    };
    within(20, async {
        let c = cache(&p).await;
        let e = c.epoch().await.unwrap();
        for i in [1, 3] {
            assert!(
                c.put_if_fresh(&key("posts", i), vec![i as u8], e, TTL)
                    .await
                    .unwrap()
            );
        }
        assert!(
            c.put_if_fresh(&key("users", 9), vec![9], e, TTL)
                .await
                .unwrap()
        );
        let asked = [
            key("posts", 3),
            key("posts", 2),
            key("users", 9),
            key("posts", 1),
        ];
        assert_eq!(
            c.get_many(&asked).await.unwrap(),
            vec![Some(vec![3]), None, Some(vec![9]), Some(vec![1])]
        );
        assert_eq!(
            c.get_many(&[]).await.unwrap(),
            Vec::<Option<Vec<u8>>>::new()
        );
        // A region invalidation turns that region's rows into misses.
        let changes = ChangeSet {
            regions: vec!["posts".into()],
            ..ChangeSet::default()
        };
        c.after_commit(&changes).await.unwrap();
        assert_eq!(
            c.get_many(&asked).await.unwrap(),
            vec![None, None, Some(vec![9]), None]
        );
        let m = c.metrics();
        assert_eq!((m.hits, m.misses), (4, 4));
    })
    .await;
}
