//! The router the tests drive, requests with cookies, and row counts.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use persist_axum::PersistSessionStore;
use persist_axum::store::{SessionRecord, SessionTable};
use persist_cache::InProcessCache;
use persist_core::cache::SharedCache;
use persist_core::prelude::*;
use tower::ServiceExt;
use tower_sessions::{Expiry, Session as WebSession, SessionManagerLayer};

use crate::common::{self, TestResult};

/// The key whose value the tests read and write.
pub const KEY: &str = "n";

async fn read(web: WebSession) -> Result<String, StatusCode> {
    let v: Option<i64> = web
        .get(KEY)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(v.map_or_else(|| "none".to_owned(), |v| v.to_string()))
}

async fn set(web: WebSession, Path(v): Path<i64>) -> Result<&'static str, StatusCode> {
    web.insert(KEY, v)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok("ok")
}

async fn login(web: WebSession, Path(user): Path<i64>) -> Result<&'static str, StatusCode> {
    web.insert("user_id", user)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok("ok")
}

async fn remove(web: WebSession) -> Result<&'static str, StatusCode> {
    web.remove_value(KEY)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok("ok")
}

async fn cycle(web: WebSession) -> Result<&'static str, StatusCode> {
    web.cycle_id()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok("ok")
}

async fn flush(web: WebSession) -> Result<&'static str, StatusCode> {
    web.flush()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok("ok")
}

/// The test application: `GET /` reads `n` ("none" when missing),
/// `POST /set/{v}`, `/login/{user}`, `/remove`, `/cycle`, `/flush`.
pub fn app<T: SessionTable>(store: PersistSessionStore<T>) -> Router {
    Router::new()
        .route("/", get(read))
        .route("/set/{v}", post(set))
        .route("/login/{user}", post(login))
        .route("/remove", post(remove))
        .route("/cycle", post(cycle))
        .route("/flush", post(flush))
        .layer(
            SessionManagerLayer::new(store)
                .with_secure(false)
                .with_expiry(Expiry::OnInactivity(time::Duration::minutes(10))),
        )
}

/// What a response brought back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// The whole `Set-Cookie` header, if any.
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Reply {
    /// The `id=…` pair of the `Set-Cookie` header, to send back as `Cookie`.
    pub fn cookie(&self) -> Option<String> {
        self.set_cookie
            .as_deref()
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    }

    /// The session id the cookie holds.
    pub fn id(&self) -> Option<String> {
        self.cookie()
            .and_then(|c| c.strip_prefix("id=").map(str::to_owned))
    }
}

/// Sends one request through the router.
pub async fn call(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(http::header::COOKIE, c);
    }
    let req = req.body(Body::empty()).expect("a request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let set_cookie = res
        .headers()
        .get(http::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    Reply {
        status,
        set_cookie,
        body,
    }
}

/// Rows of the session table, counted by the database (a query, which the
/// shared cache never answers).
pub async fn rows(db: &Db) -> Result<u64, Error> {
    let s = db.session_with(SessionOptions::new().read_only()).await?;
    let n = s.query::<SessionRecord>().count().await?;
    s.commit().await?;
    Ok(n)
}

/// Whether the row with `id` is in the database.
pub async fn row_exists(db: &Db, id: &str) -> Result<bool, Error> {
    let s = db.session_with(SessionOptions::new().read_only()).await?;
    let n = s
        .query::<SessionRecord>()
        .filter(SessionRecord::ID.eq(id.to_owned()))
        .count()
        .await?;
    s.commit().await?;
    Ok(n == 1)
}

/// The row with `id`, read from the database.
pub async fn row(db: &Db, id: &str) -> Result<Option<SessionRecord>, Error> {
    let s = db.session_with(SessionOptions::new().read_only()).await?;
    let r = s
        .query::<SessionRecord>()
        .filter(SessionRecord::ID.eq(id.to_owned()))
        .optional()
        .await?;
    s.commit().await?;
    Ok(r)
}

/// Runs `body` twice: on the suite's `Db` (no cache), then on a `Db` of a
/// fresh database with an in-process shared cache, so the store's cache
/// tier is on. `body` gets the `Db` and whether it is cached.
pub async fn both<F, Fut>(db: Db, name: &str, body: F) -> TestResult
where
    F: Fn(Db, bool) -> Fut,
    Fut: Future<Output = TestResult>,
{
    body(db.clone(), false).await?;
    let cache: Arc<dyn SharedCache> = Arc::new(InProcessCache::new());
    with_cache(&db, name, cache, |cdb| body(cdb, true)).await
}

/// Runs `body` on a `Db` with `cache`, on a fresh database of `db`'s
/// backend.
pub async fn with_cache<F, Fut>(
    db: &Db,
    name: &str,
    cache: Arc<dyn SharedCache>,
    body: F,
) -> TestResult
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = TestResult>,
{
    common::with_isolated_db(db.backend(), name, |url| async move {
        let cdb = Db::builder()
            .max_connections(5)
            .cache_arc(cache)
            .connect(&url)
            .await?;
        let r = body(cdb.clone()).await;
        cdb.close().await;
        r
    })
    .await
}

/// A store on `db` with its table created.
pub async fn store(db: &Db) -> Result<PersistSessionStore, Error> {
    let store = PersistSessionStore::new(db.clone()).principal_key("user_id");
    store.create_table().await?;
    Ok(store)
}
