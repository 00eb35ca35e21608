//! The cache tier: what persist's shared cache serves, and what it never
//! serves again.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use persist_cache::{InProcessCache, RedisCache};
use persist_core::cache::SharedCache;
use persist_core::prelude::*;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};

use crate::common::{self, TestResult};
use crate::flow::backend;
use crate::support::{app, call, row_exists, store, with_cache};

pub async fn hot_session_loads_with_no_sql(db: Db) -> TestResult {
    let cache: Arc<dyn SharedCache> = Arc::new(InProcessCache::new());
    with_cache(
        &db,
        "hot_session_loads_with_no_sql",
        cache,
        |db| async move {
            let store = store(&db).await?;
            let app = app(store.clone());
            let r = call(&app, "POST", "/set/4", None).await;
            let cookie = r.cookie().expect("cookie");
            let id: Id = r.id().expect("id").parse().expect("an id");
            // The first load may fill the cache; after that, no SQL.
            assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "4");
            let before = db.statement_count();
            for _ in 0..3 {
                assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "4");
            }
            assert_eq!(db.statement_count(), before, "served by the shared cache");
            let m = db.cache_metrics().expect("a cache");
            assert!(m.hits >= 3, "{m:?}");

            // A save reaches the cache only after its commit, and the next
            // load serves the new value.
            assert_eq!(
                call(&app, "POST", "/set/5", Some(&cookie)).await.status,
                StatusCode::OK
            );
            assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "5");
            let loaded = store.load(&id).await.map_err(backend)?;
            assert_eq!(
                loaded.map(|r| r.data["n"].clone()),
                Some(serde_json::json!(5))
            );

            // Revoking deletes in bulk: the cache never serves the old row.
            assert_eq!(
                call(&app, "POST", "/login/3", Some(&cookie)).await.status,
                StatusCode::OK
            );
            assert_eq!(store.revoke_all("3").await?, 1);
            assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "none");
            Ok(())
        },
    )
    .await
}

pub async fn cached_row_past_its_expiry_is_not_served(db: Db) -> TestResult {
    let cache: Arc<dyn SharedCache> = Arc::new(InProcessCache::new());
    with_cache(
        &db,
        "cached_row_past_its_expiry_is_not_served",
        cache,
        |db| async move {
            let store = store(&db).await?;
            let mut r = Record {
                id: Id::default(),
                data: [("n".to_owned(), serde_json::json!(1))].into(),
                expiry_date: time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500),
            };
            store.create(&mut r).await.map_err(backend)?;
            assert!(store.load(&r.id).await.map_err(backend)?.is_some());
            let before = db.statement_count();
            assert!(store.load(&r.id).await.map_err(backend)?.is_some());
            assert_eq!(db.statement_count(), before, "the cache answered");
            tokio::time::sleep(Duration::from_millis(1600)).await;
            assert!(store.load(&r.id).await.map_err(backend)?.is_none());
            assert!(
                row_exists(&db, &r.id.to_string()).await?,
                "expired, not deleted"
            );
            Ok(())
        },
    )
    .await
}

fn redis_url() -> String {
    std::env::var("PERSIST_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn cache_err(e: persist_core::cache::CacheError) -> Error {
    Error::Invalid(e.to_string())
}

/// Two `Db`s (two processes, as far as the cache can tell) on one database
/// and one Redis: what one deletes or cycles, the other never serves.
pub async fn redis_second_db_never_serves_a_dead_id(db: Db) -> TestResult {
    let name = "redis_second_db_never_serves_a_dead_id";
    common::with_isolated_db(db.backend(), name, |url| async move {
        let prefix = format!(
            "persist_store_{}_{}_{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            db.backend()
        );
        let open = || async {
            let cache = RedisCache::connect(redis_url(), prefix.clone(), Duration::from_secs(60))
                .await
                .map_err(cache_err)?;
            Db::builder()
                .max_connections(3)
                .cache(cache)
                .connect(&url)
                .await
        };
        let (a, b) = (open().await?, open().await?);
        let store_a = store(&a).await?;
        let store_b = store(&b).await?;
        let (app_a, app_b) = (app(store_a), app(store_b.clone()));

        let r = call(&app_a, "POST", "/set/8", None).await;
        let cookie = r.cookie().expect("cookie");
        // B loads it, and then serves it from Redis.
        assert_eq!(call(&app_b, "GET", "/", Some(&cookie)).await.body, "8");
        let before = b.statement_count();
        assert_eq!(call(&app_b, "GET", "/", Some(&cookie)).await.body, "8");
        assert_eq!(b.statement_count(), before, "B served it from Redis");

        // A cycles the id: B serves neither the old id nor stale data.
        let r = call(&app_a, "POST", "/cycle", Some(&cookie)).await;
        let new_cookie = r.cookie().expect("cookie");
        assert_ne!(new_cookie, cookie);
        assert_eq!(call(&app_b, "GET", "/", Some(&cookie)).await.body, "none");
        assert_eq!(call(&app_b, "GET", "/", Some(&new_cookie)).await.body, "8");

        // A changes the value, then flushes: B follows each step.
        call(&app_a, "POST", "/set/9", Some(&new_cookie)).await;
        assert_eq!(call(&app_b, "GET", "/", Some(&new_cookie)).await.body, "9");
        let r = call(&app_a, "POST", "/flush", Some(&new_cookie)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            call(&app_b, "GET", "/", Some(&new_cookie)).await.body,
            "none"
        );
        let id: Id = new_cookie
            .strip_prefix("id=")
            .expect("an id cookie")
            .parse()
            .expect("an id");
        assert!(store_b.load(&id).await.map_err(backend)?.is_none());
        let m = b.cache_metrics().expect("a cache");
        assert!(m.hits >= 1, "{m:?}");
        a.close().await;
        b.close().await;
        Ok(())
    })
    .await
}
