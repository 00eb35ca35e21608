//! The store's own operations: atomic create, the expiry sweep, principals,
//! revocation, the per-user bound and a table of another name.

use std::collections::HashSet;

use chrono::Utc;
use http::StatusCode;
use persist_axum::PersistSessionStore;
use persist_axum::store::SessionRecord;
use persist_core::prelude::*;
use tower_sessions::session::{Id, Record};
use tower_sessions::{ExpiredDeletion, SessionStore};

use crate::common::TestResult;
use crate::flow::backend;
use crate::support::{app, both, call, row, row_exists, rows, store};

fn record(n: i64) -> Record {
    Record {
        id: Id::default(),
        data: [("n".to_owned(), serde_json::json!(n))].into(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(10),
    }
}

pub async fn concurrent_creates_get_distinct_ids(db: Db) -> TestResult {
    let store = store(&db).await?;
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = record(n);
                store.create(&mut r).await.map(|()| r.id)
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        let id = t
            .await
            .map_err(|e| Error::Invalid(e.to_string()))?
            .map_err(backend)?;
        ids.insert(id.to_string());
    }
    assert_eq!(ids.len(), 200);
    assert_eq!(rows(&db).await?, 200);
    for id in ids.iter().take(5) {
        assert!(row_exists(&db, id).await?);
    }
    Ok(())
}

pub async fn create_retries_an_id_collision(db: Db) -> TestResult {
    both(db, "create_retries_an_id_collision", |db, _| async move {
        let store = store(&db).await?;
        let mut first = record(1);
        store.create(&mut first).await.map_err(backend)?;
        let taken = first.id;
        let before = row(&db, &taken.to_string()).await?.expect("the first row");

        let mut second = record(2);
        second.id = taken; // as if `Id::default()` drew the same id again
        let statements = db.statement_count();
        store.create(&mut second).await.map_err(backend)?;
        assert_ne!(second.id, taken, "the record got a new id");
        assert_eq!(
            db.statement_count() - statements,
            2,
            "the failed INSERT and the one that went in, nothing else"
        );
        assert_eq!(rows(&db).await?, 2);
        let after = row(&db, &taken.to_string()).await?.expect("the first row");
        assert_eq!(after.data, before.data, "the first session is untouched");
        let loaded = store.load(&second.id).await.map_err(backend)?;
        assert_eq!(loaded.map(|r| r.data), Some(second.data.clone()));
        let loaded = store.load(&taken).await.map_err(backend)?;
        assert_eq!(loaded.map(|r| r.data), Some(first.data.clone()));
        Ok(())
    })
    .await
}

pub async fn delete_expired_is_one_statement(db: Db) -> TestResult {
    both(db, "delete_expired_is_one_statement", |db, _| async move {
        let store = store(&db).await?;
        let s = db.session().await?;
        let mut live = Vec::new();
        for i in 0..5 {
            let id = Id::default().to_string();
            let expires_at = if i < 3 {
                Utc::now() - chrono::Duration::seconds(10 + i)
            } else {
                live.push(id.clone());
                Utc::now() + chrono::Duration::minutes(10)
            };
            s.insert(SessionRecord {
                id,
                data: rmp_serde::to_vec(&serde_json::json!({ "n": i }))
                    .map_err(|e| Error::Invalid(e.to_string()))?,
                expires_at,
                principal: None,
            })
            .await?;
        }
        s.commit().await?;
        let before = db.statement_count();
        store.delete_expired().await.map_err(backend)?;
        assert_eq!(db.statement_count() - before, 1, "one DELETE");
        assert_eq!(rows(&db).await?, 2);
        for id in &live {
            assert!(row_exists(&db, id).await?);
        }
        // Nothing left to sweep: still one statement, nothing removed.
        store.delete_expired().await.map_err(backend)?;
        assert_eq!(rows(&db).await?, 2);
        Ok(())
    })
    .await
}

pub async fn revoke_all_for_one_user(db: Db) -> TestResult {
    both(db, "revoke_all_for_one_user", |db, _| async move {
        let store = store(&db).await?;
        let app = app(store.clone());
        let mut cookies = Vec::new();
        for user in [1, 1, 1, 2] {
            let r = call(&app, "POST", &format!("/login/{user}"), None).await;
            assert_eq!(r.status, StatusCode::OK);
            let cookie = r.cookie().expect("cookie");
            call(&app, "POST", "/set/5", Some(&cookie)).await;
            assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "5");
            cookies.push((user, cookie, r.id().expect("id")));
        }
        assert_eq!(
            row(&db, &cookies[0].2).await?.and_then(|r| r.principal),
            Some("1".to_owned())
        );
        let of_1 = store.sessions_of("1").await?;
        assert_eq!(of_1.len(), 3);
        assert!(
            of_1.iter()
                .all(|l| cookies.iter().any(|c| c.2 == l.id.to_string()))
        );
        assert_eq!(store.sessions_of("2").await?.len(), 1);

        // "Log out my other devices" from the first session of user 1.
        let keep: Id = cookies[0].2.parse().expect("an id");
        let before = db.statement_count();
        assert_eq!(store.revoke_all_except("1", &keep).await?, 2);
        assert_eq!(db.statement_count() - before, 1, "one DELETE");
        assert_eq!(call(&app, "GET", "/", Some(&cookies[0].1)).await.body, "5");
        assert_eq!(
            call(&app, "GET", "/", Some(&cookies[1].1)).await.body,
            "none"
        );
        assert_eq!(
            call(&app, "GET", "/", Some(&cookies[2].1)).await.body,
            "none"
        );

        // "Log out everywhere".
        let before = db.statement_count();
        assert_eq!(store.revoke_all("1").await?, 1);
        assert_eq!(db.statement_count() - before, 1, "one DELETE");
        assert_eq!(
            call(&app, "GET", "/", Some(&cookies[0].1)).await.body,
            "none"
        );
        assert!(store.sessions_of("1").await?.is_empty());
        // User 2 is still signed in.
        assert_eq!(call(&app, "GET", "/", Some(&cookies[3].1)).await.body, "5");
        assert_eq!(rows(&db).await?, 1);
        assert_eq!(store.revoke_all("nobody").await?, 0);
        Ok(())
    })
    .await
}

pub async fn bound_per_user_deletes_the_oldest(db: Db) -> TestResult {
    both(
        db,
        "bound_per_user_deletes_the_oldest",
        |db, _| async move {
            let store = store(&db).await?.max_sessions_per_principal(2);
            let app = app(store.clone());
            let mut logins = Vec::new();
            for user in [7, 7, 8, 7] {
                let r = call(&app, "POST", &format!("/login/{user}"), None).await;
                assert_eq!(r.status, StatusCode::OK);
                logins.push(r.cookie().expect("cookie"));
                // Distinct expiry times, so "oldest" is well defined.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let of_7 = store.sessions_of("7").await?;
            assert_eq!(of_7.len(), 2, "{of_7:?}");
            assert_eq!(rows(&db).await?, 3, "two of user 7, one of user 8");
            // The first login of user 7 was the oldest: it is gone.
            let first = call(&app, "POST", "/set/1", Some(&logins[0])).await;
            assert_ne!(first.cookie(), Some(logins[0].clone()), "a new session");
            assert_eq!(call(&app, "GET", "/", Some(&logins[0])).await.body, "none");
            for c in [&logins[1], &logins[2], &logins[3]] {
                let r = call(&app, "POST", "/set/1", Some(c)).await;
                assert_eq!(r.status, StatusCode::OK);
                assert_eq!(call(&app, "GET", "/", Some(c)).await.body, "1");
            }
            Ok(())
        },
    )
    .await
}

persist_axum::session_table!(
    /// Sessions of an admin site, under a table name of its own.
    pub struct AdminSessions = "admin_sessions"
);

pub async fn custom_table_name(db: Db) -> TestResult {
    let store = PersistSessionStore::<AdminSessions>::with_table(db.clone());
    store.create_table().await?;
    let app = app(store.clone());
    let r = call(&app, "POST", "/set/11", None).await;
    let cookie = r.cookie().expect("cookie");
    assert_eq!(call(&app, "GET", "/", Some(&cookie)).await.body, "11");
    let s = db.session_with(SessionOptions::new().read_only()).await?;
    assert_eq!(s.query::<AdminSessions>().count().await?, 1);
    let id = r.id().expect("id");
    let stored = s.find::<AdminSessions>(&id).await?.expect("the row");
    s.commit().await?;
    assert_eq!(stored.principal, None);
    assert!(
        rows(&db).await.is_err(),
        "the default table was never created"
    );
    Ok(())
}

/// MySQL's default collation compares text without case: an id that
/// differs from a live one only in case must still load nothing.
pub async fn id_differing_in_case_is_another_session(db: Db) -> TestResult {
    both(
        db,
        "id_differing_in_case_is_another_session",
        |db, _| async move {
            let store = store(&db).await?;
            let mut live = record(1);
            // An id with a letter among its first 21 characters (the last
            // one carries padding bits), whose case can be swapped.
            while !live.id.to_string()[..21]
                .chars()
                .any(|c| c.is_ascii_alphabetic())
            {
                live.id = Id::default();
            }
            store.create(&mut live).await.map_err(backend)?;
            let text = live.id.to_string();
            let at = text[..21]
                .find(|c: char| c.is_ascii_alphabetic())
                .expect("a letter");
            let mut swapped: Vec<char> = text.chars().collect();
            swapped[at] = if swapped[at].is_ascii_lowercase() {
                swapped[at].to_ascii_uppercase()
            } else {
                swapped[at].to_ascii_lowercase()
            };
            let other: Id = swapped
                .into_iter()
                .collect::<String>()
                .parse()
                .expect("still an id");
            assert_ne!(other, live.id);
            assert!(store.load(&other).await.map_err(backend)?.is_none());
            assert!(store.load(&live.id).await.map_err(backend)?.is_some());
            let app = app(store.clone());
            let r = call(&app, "GET", "/", Some(&format!("id={other}"))).await;
            assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
            Ok(())
        },
    )
    .await
}

/// What each store call sends, without a cache: one statement each.
pub async fn one_statement_per_call(db: Db) -> TestResult {
    let store = store(&db).await?;
    let count = || db.statement_count();
    let mut r = record(1);
    let before = count();
    store.create(&mut r).await.map_err(backend)?;
    assert_eq!(count() - before, 1, "create: one INSERT");
    r.data.insert("user_id".into(), serde_json::json!("ann"));
    let before = count();
    store.save(&r).await.map_err(backend)?;
    assert_eq!(count() - before, 1, "save: one UPDATE");
    assert_eq!(
        row(&db, &r.id.to_string()).await?.and_then(|r| r.principal),
        Some("ann".to_owned())
    );
    let before = count();
    let loaded = store.load(&r.id).await.map_err(backend)?;
    assert_eq!(count() - before, 1, "load: one SELECT");
    assert_eq!(loaded.map(|l| l.data), Some(r.data.clone()));
    let before = count();
    store.delete(&r.id).await.map_err(backend)?;
    assert_eq!(count() - before, 1, "delete: one DELETE");
    assert_eq!(rows(&db).await?, 0);
    // With a bound, a save also reads the principal's other sessions.
    let bounded = store.max_sessions_per_principal(3);
    bounded.create(&mut r).await.map_err(backend)?;
    let before = count();
    bounded.save(&r).await.map_err(backend)?;
    assert_eq!(count() - before, 2, "the UPDATE and the bound's SELECT");
    Ok(())
}

/// A request that loaded its session before "log out everywhere" must not
/// write it back when it ends.
pub async fn save_after_revoke_does_not_resurrect(db: Db) -> TestResult {
    both(
        db,
        "save_after_revoke_does_not_resurrect",
        |db, _| async move {
            let store = store(&db).await?;
            let mut r = record(1);
            r.data.insert("user_id".into(), serde_json::json!(5));
            store.create(&mut r).await.map_err(backend)?;
            // The request loaded it...
            let mut loaded = store.load(&r.id).await.map_err(backend)?.expect("live");
            // ...the user logged out everywhere meanwhile...
            assert_eq!(store.revoke_all("5").await?, 1);
            // ...and the request's end saves what it changed.
            loaded.data.insert("n".into(), serde_json::json!(2));
            store.save(&loaded).await.map_err(backend)?;
            assert_eq!(rows(&db).await?, 0, "not written back");
            assert!(store.load(&r.id).await.map_err(backend)?.is_none());
            // A live session saves as before.
            let mut live = record(3);
            store.create(&mut live).await.map_err(backend)?;
            live.data.insert("n".into(), serde_json::json!(4));
            store.save(&live).await.map_err(backend)?;
            let back = store.load(&live.id).await.map_err(backend)?.expect("live");
            assert_eq!(back.data["n"], serde_json::json!(4));
            Ok(())
        },
    )
    .await
}
