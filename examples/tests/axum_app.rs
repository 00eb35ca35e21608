//! Drives the axum example over real HTTP: per-request sessions commit on
//! success, roll back on failure, and reach code through `Session::current`.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use persist_core::prelude::*;
use persist_examples::axum_app::{self, Todo};
use serde_json::{Value, json};

/// Bound on every single wait in this test.
const WAIT: Duration = Duration::from_secs(20);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("persist-axum-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    /// Sends one request (bounded by `WAIT`) and answers its status and JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        let bytes = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(&v).expect("encode body"))
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).expect("build request");
        let exchange = async {
            let resp = self.client.request(req).await.expect("send request");
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .expect("read body")
                .to_bytes();
            (status, body)
        };
        let (status, body) = tokio::time::timeout(WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path} timed out"));
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {body:?}"))
        };
        (status, json)
    }

    async fn get_todo(&self, id: i64) -> Todo {
        let (status, body) = self.call(Method::GET, &format!("/todos/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "GET /todos/{id}: {body}");
        serde_json::from_value(body).expect("a todo")
    }
}

#[tokio::test]
async fn per_request_sessions_over_http() {
    let tmp = TempDir::new();
    let url = format!("sqlite://{}?mode=rwc", tmp.0.join("x.db").display());
    let db = tokio::time::timeout(WAIT, Db::connect(&url))
        .await
        .expect("connect timed out")
        .expect("connect");
    tokio::time::timeout(WAIT, axum_app::create_schema(&db))
        .await
        .expect("create_schema timed out")
        .expect("create_schema");

    let listener = tokio::time::timeout(WAIT, tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind timed out")
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(axum::serve(listener, axum_app::router(db.clone())).into_future());
    let api = Api {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{addr}"),
    };

    // Create: 201 with the generated id.
    let (status, body) = api
        .call(
            Method::POST,
            "/todos",
            Some(json!({ "title": "write docs" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Todo = serde_json::from_value(body).expect("a todo");
    assert!(created.id > 0, "{created:?}");
    assert_eq!(created.title, "write docs");
    assert!(!created.done);
    assert_eq!(created.version, 1);
    let id = created.id;

    // Get: the same row, committed by the create's request.
    assert_eq!(api.get_todo(id).await, created);

    // Unknown id: 404.
    let (status, body) = api.call(Method::GET, "/todos/999999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Duplicate title: 409 (UniqueViolation), and nothing new was stored.
    let (status, body) = api
        .call(
            Method::POST,
            "/todos",
            Some(json!({ "title": "write docs" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("unique")),
        "{body}"
    );

    // The failing handler changed the row, flushed, then answered 500: rolled back.
    let (status, body) = api
        .call(Method::POST, &format!("/todos/{id}/fail"), None)
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        api.get_todo(id).await,
        created,
        "the failed request's change must be rolled back"
    );

    // A plain async fn reaching the request's session through Session::current().
    let (status, body) = api
        .call(Method::POST, &format!("/todos/{id}/done"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = api.get_todo(id).await;
    assert!(done.done, "{done:?}");
    assert_eq!(done.version, 2, "{done:?}");

    // PATCH with the current version: 200, version bumped.
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/todos/{id}"),
            Some(json!({ "title": "write better docs", "version": done.version })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let patched: Todo = serde_json::from_value(body).expect("a todo");
    assert_eq!(patched.version, 3);
    assert_eq!(api.get_todo(id).await, patched);

    // PATCH with a stale version: 409, row unchanged.
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/todos/{id}"),
            Some(json!({ "title": "lost update", "version": done.version })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("stale")),
        "{body}"
    );
    assert_eq!(api.get_todo(id).await, patched);

    // A stale PATCH did not poison the pool: a later write still works.
    let (status, body) = api
        .call(Method::POST, "/todos", Some(json!({ "title": "second" })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    server.abort();
    let _ = tokio::time::timeout(WAIT, server).await;
    tokio::time::timeout(WAIT, db.close())
        .await
        .expect("close timed out");
}

#[tokio::test]
async fn current_outside_a_scope_is_no_session() {
    assert!(matches!(Session::current(), Err(Error::NoSession)));
    let r = tokio::time::timeout(WAIT, axum_app::todos::mark_done(1))
        .await
        .expect("timed out");
    assert!(matches!(r, Err(Error::NoSession)), "{r:?}");
}
