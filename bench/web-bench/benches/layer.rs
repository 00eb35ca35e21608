//! The request layer's cost: an axum `Router` driven in process with
//! `tower::ServiceExt::oneshot` (no sockets), the response body read to the
//! end, one request per iteration.
//!
//! - `layer/<backend>/persist_find`: behind `PersistLayer`, the handler
//!   takes `Tx(s)` and answers `s.find::<Item>(&id)` as JSON (the request's
//!   session: BEGIN, SELECT, COMMIT).
//! - `layer/<backend>/persist_find_ro`: the same with
//!   `read_only_safe_methods(true)` (a read-only transaction for a GET).
//! - `layer/<backend>/raw_sqlx`: no layer, the handler runs one autocommit
//!   `sqlx::query_as` by key on the pool and answers the same JSON.
//! - `layer/no_db/plain` and `layer/no_db/persist_layer`: a handler that
//!   touches no database, without and behind `PersistLayer` (the lazy
//!   session takes no connection): the layer's own overhead.
//!
//! A table of 10,000 items, a key drawn at random per request. Outside the
//! timed loops each route is checked (status, body) and persist's
//! statement counter shows what the timed loop sent.
//!
//! `bash bench/run.sh` with `WEB_BENCHES=layer` runs it.

use std::hint::black_box;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::Json;
use axum::routing::get;
use criterion::Criterion;
use http_body_util::BodyExt;
use persist_axum::{DbError, PersistLayer, Tx};
use persist_core::prelude::*;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use web_bench::{Item, PgScratch, Rng, SqliteScratch, fill_items, within};

const ROWS: i64 = 10_000;

async fn persist_find(Tx(s): Tx, Path(id): Path<i64>) -> Result<Json<Item>, DbError> {
    let item = s.find::<Item>(&id).await?.ok_or(Error::NotFound)?;
    Ok(Json(item))
}

async fn pg_find(
    State(pool): State<sqlx::PgPool>,
    Path(id): Path<i64>,
) -> Result<Json<Item>, StatusCode> {
    sqlx::query_as::<_, Item>("SELECT id, name, price_cents FROM web_items WHERE id = $1")
        .bind(id)
        .fetch_optional(&pool)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

async fn sqlite_find(
    State(pool): State<sqlx::SqlitePool>,
    Path(id): Path<i64>,
) -> Result<Json<Item>, StatusCode> {
    sqlx::query_as::<_, Item>("SELECT id, name, price_cents FROM web_items WHERE id = ?")
        .bind(id)
        .fetch_optional(&pool)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .map(Json)
        .ok_or(StatusCode::NOT_FOUND)
}

async fn hello() -> &'static str {
    "hello"
}

/// One request through `app`: the status and the whole body.
async fn request(app: &Router, uri: String) -> (StatusCode, axum::body::Bytes) {
    let req = Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("a valid request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("an in-memory body")
        .to_bytes();
    (status, body)
}

/// A contender: its name, its router, and the `Db` whose statements it
/// counts (persist's routes).
struct Route {
    name: &'static str,
    app: Router,
    db: Option<Db>,
}

/// Checks a route once outside the timed loop: item 7 comes back as JSON.
async fn check(route: &Route, items: bool) {
    if items {
        let (status, body) = request(&route.app, "/items/7".into()).await;
        assert_eq!(status, StatusCode::OK, "{}: status", route.name);
        let expected = serde_json::json!({ "id": 7, "name": "Item 7", "price_cents": 259 });
        let got: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        assert_eq!(got, expected, "{}: body", route.name);
        let (status, _) = request(&route.app, format!("/items/{}", ROWS + 1)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{}: missing key", route.name);
    } else {
        let (status, body) = request(&route.app, "/hello".into()).await;
        assert_eq!(status, StatusCode::OK, "{}: status", route.name);
        assert_eq!(&body[..], b"hello", "{}: body", route.name);
    }
}

fn bench_group(c: &mut Criterion, rt: &Runtime, group: &str, routes: &[Route], items: bool) {
    for route in routes {
        within(rt, check(route, items));
    }
    let mut g = c.benchmark_group(group);
    for route in routes {
        let before = route.db.as_ref().map(|db| db.statement_count());
        let mut rng = Rng::new(0xBEEF);
        let mut requests = 0u64;
        let app = &route.app;
        g.bench_function(route.name, |b| {
            b.to_async(rt).iter(|| {
                requests += 1;
                let uri = if items {
                    format!("/items/{}", rng.below(ROWS as u64) as i64 + 1)
                } else {
                    "/hello".to_owned()
                };
                async move {
                    let (status, body) = request(app, uri).await;
                    debug_assert_eq!(status, StatusCode::OK);
                    black_box(body)
                }
            })
        });
        if let (Some(db), Some(before)) = (&route.db, before) {
            let sent = db.statement_count() - before;
            eprintln!(
                "  {group}/{}: {sent} statements counted by persist over {requests} requests ({:.2} each)",
                route.name,
                sent as f64 / requests.max(1) as f64
            );
        }
    }
    g.finish();
}

fn persist_routes(db: &Db) -> [Route; 2] {
    let router = || Router::new().route("/items/{id}", get(persist_find));
    [
        Route {
            name: "persist_find",
            app: router().layer(PersistLayer::new(db.clone())),
            db: Some(db.clone()),
        },
        Route {
            name: "persist_find_ro",
            app: router().layer(PersistLayer::new(db.clone()).read_only_safe_methods(true)),
            db: Some(db.clone()),
        },
    ]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rt = &rt;
    let mut c = Criterion::default().configure_from_args();

    // The layer alone: no database touched.
    {
        let db = within(rt, Db::connect("sqlite::memory:")).expect("an in-memory SQLite");
        let plain = Router::new().route("/hello", get(hello));
        let routes = [
            Route {
                name: "plain",
                app: plain.clone(),
                db: None,
            },
            Route {
                name: "persist_layer",
                app: plain.layer(PersistLayer::new(db.clone())),
                db: Some(db.clone()),
            },
        ];
        let acquired = db.connections_acquired();
        bench_group(&mut c, rt, "layer/no_db", &routes, false);
        assert_eq!(
            db.connections_acquired(),
            acquired,
            "a request that touches no database takes no connection"
        );
        within(rt, db.close());
    }

    // PostgreSQL.
    {
        let scratch = within(rt, PgScratch::new()).expect("PostgreSQL reachable");
        within(rt, fill_items(&scratch.url, ROWS)).expect("fill web_items");
        let db = within(rt, Db::connect(&scratch.url)).expect("connect");
        let pool = within(rt, sqlx::PgPool::connect(&scratch.url)).expect("PgPool");
        let [find, find_ro] = persist_routes(&db);
        let routes = [
            find,
            find_ro,
            Route {
                name: "raw_sqlx",
                app: Router::new()
                    .route("/items/{id}", get(pg_find))
                    .with_state(pool.clone()),
                db: None,
            },
        ];
        bench_group(&mut c, rt, "layer/postgres", &routes, true);
        within(rt, db.close());
        within(rt, pool.close());
        drop(scratch);
    }

    // A SQLite file (WAL).
    {
        let scratch = SqliteScratch::new().expect("a temp dir");
        within(rt, fill_items(&scratch.url, ROWS)).expect("fill web_items");
        let db = within(rt, Db::connect(&scratch.url)).expect("connect");
        let pool = within(rt, sqlx::SqlitePool::connect(&scratch.url)).expect("SqlitePool");
        let [find, find_ro] = persist_routes(&db);
        let routes = [
            find,
            find_ro,
            Route {
                name: "raw_sqlx",
                app: Router::new()
                    .route("/items/{id}", get(sqlite_find))
                    .with_state(pool.clone()),
                db: None,
            },
        ];
        bench_group(&mut c, rt, "layer/sqlite", &routes, true);
        within(rt, db.close());
        within(rt, pool.close());
        drop(scratch);
    }
    c.final_summary();
}
