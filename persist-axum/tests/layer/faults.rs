//! Requests that end badly: a panicking handler, a client that goes away
//! after the handler wrote, and a request future cut at every poll.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use persist_axum::PersistLayer;
use persist_core::prelude::*;
use serde_json::json;
use tower::ServiceExt;

use crate::app::{self, Note, Order, Tables, call, connections_settle, count, request};
use crate::common::TestResult;
use crate::cut::{Cut, cut_after};

/// After a request that ended badly: a new write goes through at once (no
/// lock or open transaction was left behind) and commits.
async fn still_writable(app: &axum::Router, title: &str) {
    let (status, body) = call(app, Method::POST, "/notes", Some(json!({ "title": title }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

pub async fn panic_rolls_back(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let (app, _) = app::router(db.clone(), PersistLayer::new(db.clone()));
    for i in 0..5 {
        let req = request(Method::POST, &format!("/panic/p{i}"), None);
        let handle = tokio::spawn(app.clone().oneshot(req));
        let joined = tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .expect("the panicking request ends");
        assert!(
            joined.is_err_and(|e| e.is_panic()),
            "the panic goes on to the server"
        );
    }
    assert_eq!(
        count::<Note>(&db).await?,
        0,
        "the flushed rows were rolled back"
    );
    assert!(connections_settle(&db).await, "no connection kept");
    still_writable(&app, "after panics").await;
    assert_eq!(count::<Note>(&db).await?, 1);
    Ok(())
}

pub async fn dropped_request_leaves_nothing_and_no_connection(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let (app, state) = app::router(db.clone(), PersistLayer::new(db.clone()));
    for i in 0..40 {
        let req = request(Method::POST, &format!("/slow/gone{i}"), None);
        let wrote = state.wrote.notified();
        let handle = tokio::spawn(app.clone().oneshot(req));
        tokio::time::timeout(Duration::from_secs(20), wrote)
            .await
            .expect("the handler wrote");
        // The client goes away: the server drops the request's future.
        handle.abort();
        assert!(handle.await.is_err_and(|e| e.is_cancelled()));
    }
    assert_eq!(
        count::<Note>(&db).await?,
        0,
        "nothing of a dropped request stays"
    );
    assert!(connections_settle(&db).await, "every connection came back");
    still_writable(&app, "after drops").await;
    assert_eq!(count::<Note>(&db).await?, 1);
    Ok(())
}

pub async fn cut_at_every_poll(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let (app, _) = app::router(db.clone(), PersistLayer::new(db.clone()));
    let mut completed = None;
    let mut cuts = 0;
    for polls in 1..2000 {
        let title = format!("cut{polls}");
        let fut = app
            .clone()
            .oneshot(request(Method::POST, &format!("/two/{title}"), None));
        match cut_after(polls, Duration::ZERO, fut).await {
            Cut::Completed(resp) => {
                let resp = resp.unwrap_or_else(|never| match never {});
                assert_eq!(resp.status(), StatusCode::CREATED);
                completed = Some(polls);
                break;
            }
            Cut::Cut => cuts += 1,
        }
        // A cut during COMMIT may have committed; never half of it.
        let s = db.session().await?;
        let notes = s
            .query::<Note>()
            .filter(Note::TITLE.eq(format!("{title}!")))
            .count()
            .await?;
        let orders = s
            .query::<Order>()
            .filter(Order::BUYER.eq(title.clone()))
            .count()
            .await?;
        let unfinished = s
            .query::<Note>()
            .filter(Note::TITLE.eq(title.clone()))
            .count()
            .await?;
        s.rollback().await?;
        assert_eq!(notes, orders, "cut after {polls} polls left half a request");
        assert_eq!(
            unfinished, 0,
            "cut after {polls} polls left a partial flush"
        );
    }
    let polls = completed.expect("the request completes uncut at last");
    // PostgreSQL always leaves a statement pending at some poll; SQLite
    // (direct path or sqlx's worker) and a loaded MariaDB can answer a
    // whole request within one poll, as elsewhere in the suites.
    assert!(
        cuts >= 1 || db.backend() != persist_core::sql::Backend::Postgres,
        "the request was cut at {cuts} points before completing at {polls}"
    );
    assert!(
        connections_settle(&db).await,
        "every connection came back: {} out, {} parked, after {cuts} cuts",
        db.connections_in_use(),
        db.connections_parked()
    );
    still_writable(&app, "after cuts").await;
    Ok(())
}

/// The server kills the request's connection after the handler wrote: the
/// commit fails, the client gets a 500, nothing of the request is kept,
/// and the next request gets a working connection.
pub async fn killed_connection_is_a_500_and_keeps_nothing(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let (app, _) = app::router(db.clone(), PersistLayer::new(db.clone()));
    let (status, body) = call(&app, Method::POST, "/killed/doomed", None).await;
    if db.backend() == persist_core::sql::Backend::Sqlite {
        assert_eq!(status, StatusCode::CREATED, "no server, nothing killed");
        assert_eq!(count::<Note>(&db).await?, 1);
        return Ok(());
    }
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body, json!({"error": "internal error"}));
    assert_eq!(
        count::<Note>(&db).await?,
        0,
        "the killed transaction kept nothing"
    );
    still_writable(&app, "after the kill").await;
    assert_eq!(count::<Note>(&db).await?, 1);
    assert!(connections_settle(&db).await);
    Ok(())
}
