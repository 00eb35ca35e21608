//! A user's requests through the router: cookies in, cookies out, rows in
//! the database. Each test runs without and with the cache tier.

use chrono::Utc;
use http::StatusCode;
use persist_axum::store::SessionRecord;
use persist_core::prelude::*;

use crate::common::TestResult;
use crate::support::{app, both, call, row, row_exists, rows, store};

pub async fn no_session_no_cookie_no_row(db: Db) -> TestResult {
    both(db, "no_session_no_cookie_no_row", |db, _| async move {
        let app = app(store(&db).await?);
        let r = call(&app, "GET", "/", None).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
        assert_eq!(
            r.set_cookie, None,
            "a session nothing was put in sets no cookie"
        );
        assert_eq!(rows(&db).await?, 0);
        Ok(())
    })
    .await
}

pub async fn bogus_cookie_gets_a_new_empty_session(db: Db) -> TestResult {
    both(
        db,
        "bogus_cookie_gets_a_new_empty_session",
        |db, _| async move {
            let app = app(store(&db).await?);
            // A well-formed id no session has.
            let bogus = format!("id={}", tower_sessions::session::Id::default());
            let r = call(&app, "GET", "/", Some(&bogus)).await;
            assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
            // Writing into it creates a session under a new id, not the bogus one.
            let r = call(&app, "POST", "/set/5", Some(&bogus)).await;
            assert_eq!(r.status, StatusCode::OK);
            let id = r.id().expect("a cookie for the new session");
            assert_ne!(format!("id={id}"), bogus);
            assert_eq!(rows(&db).await?, 1);
            assert!(row_exists(&db, &id).await?);
            Ok(())
        },
    )
    .await
}

pub async fn malformed_cookies_get_a_new_empty_session(db: Db) -> TestResult {
    both(
        db,
        "malformed_cookies_get_a_new_empty_session",
        |db, _| async move {
            let app = app(store(&db).await?);
            for bad in [
                "id=%%%not-base64%%%",
                "id=c2hvcnQ",                                // base64, 5 bytes
                "id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // base64, too long
                "id=",
                "id=!!!!!!!!!!!!!!!!!!!!!!",
                "id=AAAAAAAAAAAAAAAAAAAAA_",
            ] {
                let r = call(&app, "GET", "/", Some(bad)).await;
                assert_eq!(
                    (r.status, r.body.as_str()),
                    (StatusCode::OK, "none"),
                    "{bad}"
                );
            }
            assert_eq!(rows(&db).await?, 0);
            Ok(())
        },
    )
    .await
}

pub async fn value_set_then_read(db: Db) -> TestResult {
    both(db, "value_set_then_read", |db, _| async move {
        let app = app(store(&db).await?);
        let r = call(&app, "POST", "/set/42", None).await;
        assert_eq!(r.status, StatusCode::OK);
        let cookie = r.cookie().expect("a session cookie");
        let r = call(&app, "GET", "/", Some(&cookie)).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "42"));
        // A second browser, with no cookie, sees nothing of it.
        let r = call(&app, "GET", "/", None).await;
        assert_eq!(r.body, "none");
        // The value is overwritten in place: still one row.
        let r = call(&app, "POST", "/set/43", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "43");
        assert_eq!(rows(&db).await?, 1);
        Ok(())
    })
    .await
}

pub async fn max_age_and_expiry(db: Db) -> TestResult {
    both(db, "max_age_and_expiry", |db, _| async move {
        let app = app(store(&db).await?);
        let r = call(&app, "POST", "/set/7", None).await;
        let set_cookie = r.set_cookie.clone().expect("a cookie");
        assert!(set_cookie.contains("Max-Age=600"), "{set_cookie}");
        let id = r.id().expect("an id");
        let stored = row(&db, &id).await?.expect("the row");
        let left = stored.expires_at - Utc::now();
        assert!(
            left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(600),
            "expires in {left}"
        );
        let cookie = r.cookie().expect("a cookie");
        assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "7");

        // The session's time runs out (as if 10 minutes passed).
        let s = db.session().await?;
        s.update_all::<SessionRecord>()
            .set(
                SessionRecord::EXPIRES_AT,
                Utc::now() - chrono::Duration::seconds(1),
            )
            .filter(SessionRecord::ID.eq(id.clone()))
            .await?;
        s.commit().await?;
        let r = call(&app, "GET", "/", Some(&cookie)).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
        // The expired row is still there until the sweep; it is just not loaded.
        assert!(row_exists(&db, &id).await?);
        Ok(())
    })
    .await
}

pub async fn removing_the_last_value_removes_the_row(db: Db) -> TestResult {
    both(
        db,
        "removing_the_last_value_removes_the_row",
        |db, _| async move {
            let app = app(store(&db).await?);
            let r = call(&app, "POST", "/set/1", None).await;
            let (cookie, id) = (r.cookie().expect("cookie"), r.id().expect("id"));
            assert!(row_exists(&db, &id).await?);
            let r = call(&app, "POST", "/remove", Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(rows(&db).await?, 0, "an empty session keeps no row");
            let r = call(&app, "GET", "/", Some(&cookie)).await;
            assert_eq!(r.body, "none");
            Ok(())
        },
    )
    .await
}

pub async fn cycle_id_moves_the_data_and_kills_the_old_id(db: Db) -> TestResult {
    both(
        db,
        "cycle_id_moves_the_data_and_kills_the_old_id",
        |db, _| async move {
            let app = app(store(&db).await?);
            let r = call(&app, "POST", "/set/9", None).await;
            let (old_cookie, old_id) = (r.cookie().expect("cookie"), r.id().expect("id"));
            // Loaded once, so a cache tier holds the old row.
            assert_eq!(call(&app, "GET", "/", Some(&old_cookie)).await.body, "9");
            let r = call(&app, "POST", "/cycle", Some(&old_cookie)).await;
            assert_eq!(r.status, StatusCode::OK);
            let (new_cookie, new_id) = (r.cookie().expect("cookie"), r.id().expect("id"));
            assert_ne!(new_id, old_id);
            assert!(!row_exists(&db, &old_id).await?);
            assert!(row_exists(&db, &new_id).await?);
            assert_eq!(rows(&db).await?, 1);
            assert_eq!(call(&app, "GET", "/", Some(&new_cookie)).await.body, "9");
            assert_eq!(call(&app, "GET", "/", Some(&old_cookie)).await.body, "none");
            Ok(())
        },
    )
    .await
}

pub async fn flush_removes_the_session_everywhere(db: Db) -> TestResult {
    both(
        db,
        "flush_removes_the_session_everywhere",
        |db, cached| async move {
            let store = store(&db).await?;
            let app = app(store.clone());
            let r = call(&app, "POST", "/set/3", None).await;
            let (cookie, id) = (r.cookie().expect("cookie"), r.id().expect("id"));
            assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "3");
            let r = call(&app, "POST", "/flush", Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(!row_exists(&db, &id).await?);
            assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "none");
            // Nor does the store itself, or a session of the database,
            // find it (with a cache tier: the cache does not serve it).
            let tid: tower_sessions::session::Id = id.parse().expect("an id");
            use tower_sessions::SessionStore;
            assert!(store.load(&tid).await.map_err(backend)?.is_none());
            let s = db.session_with(SessionOptions::new().read_only()).await?;
            assert!(s.find::<SessionRecord>(&id).await?.is_none());
            s.commit().await?;
            if cached {
                let m = db.cache_metrics().expect("a cache");
                assert!(m.invalidations >= 1, "{m:?}");
            }
            Ok(())
        },
    )
    .await
}

pub async fn undecodable_data_is_a_new_empty_session(db: Db) -> TestResult {
    both(
        db,
        "undecodable_data_is_a_new_empty_session",
        |db, _| async move {
            let app = app(store(&db).await?);
            // 0xc1 is never valid MessagePack; then a JSON map, as an older
            // encoding might have written.
            for bytes in [vec![0xc1_u8], br#"{"n":5}"#.to_vec()] {
                let key = tower_sessions::session::Id::default().to_string();
                let s = db.session().await?;
                s.upsert(SessionRecord {
                    id: key.clone(),
                    data: bytes,
                    expires_at: Utc::now() + chrono::Duration::minutes(5),
                    principal: None,
                })
                .await?;
                s.commit().await?;
                let r = call(&app, "GET", "/", Some(&format!("id={key}"))).await;
                assert_eq!(
                    (r.status, r.body.as_str()),
                    (StatusCode::OK, "none"),
                    "{key}"
                );
                // Writing gives a new session under a new id; the old row is untouched.
                let r = call(&app, "POST", "/set/1", Some(&format!("id={key}"))).await;
                assert_eq!(r.status, StatusCode::OK);
                assert_ne!(r.id().as_deref(), Some(key.as_str()));
            }
            assert_eq!(rows(&db).await?, 4);
            Ok(())
        },
    )
    .await
}

pub async fn database_down_is_a_backend_error_and_a_500(db: Db) -> TestResult {
    both(
        db,
        "database_down_is_a_backend_error_and_a_500",
        |db, cached| async move {
            use tower_sessions::{ExpiredDeletion, SessionStore, session_store};
            let store = store(&db).await?;
            let app = app(store.clone());
            let r = call(&app, "POST", "/set/2", None).await;
            let cookie = r.cookie().expect("cookie");
            let tid: tower_sessions::session::Id = r.id().expect("id").parse().expect("an id");
            db.close().await;

            if cached {
                // A hot session is still served by the cache tier (it holds
                // what the database committed); anything else needs the
                // database and fails.
                let r = call(&app, "GET", "/", Some(&cookie)).await;
                assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "2"));
                let unknown = format!("id={}", tower_sessions::session::Id::default());
                let r = call(&app, "GET", "/", Some(&unknown)).await;
                assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
            } else {
                let r = call(&app, "GET", "/", Some(&cookie)).await;
                assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
                assert!(matches!(
                    store.load(&tid).await,
                    Err(session_store::Error::Backend(_))
                ));
            }
            let r = call(&app, "POST", "/set/3", Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
            let r = call(&app, "POST", "/set/3", None).await;
            assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);

            assert!(matches!(
                store.delete(&tid).await,
                Err(session_store::Error::Backend(_))
            ));
            assert!(matches!(
                store.delete_expired().await,
                Err(session_store::Error::Backend(_))
            ));
            let mut record = tower_sessions::session::Record {
                id: tower_sessions::session::Id::default(),
                data: [("n".to_owned(), serde_json::json!(1))].into(),
                expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(1),
            };
            assert!(matches!(
                store.create(&mut record).await,
                Err(session_store::Error::Backend(_))
            ));
            assert!(matches!(
                store.save(&record).await,
                Err(session_store::Error::Backend(_))
            ));
            assert!(store.revoke_all("1").await.is_err());
            assert!(store.sessions_of("1").await.is_err());
            Ok(())
        },
    )
    .await
}

pub fn backend(e: tower_sessions::session_store::Error) -> Error {
    Error::Invalid(e.to_string())
}
