//! The application the layer tests drive: a few routes behind
//! `PersistLayer`, and a client that sends them requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use http_body_util::BodyExt;
use persist_axum::{DbError, PersistLayer, Tx};
use persist_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

/// A note: unique title, optimistic-locking version.
#[derive(Entity, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[persist(table = "lw_notes")]
pub struct Note {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub title: String,
    #[persist(version)]
    pub version: i64,
}

/// Stock of one product.
#[derive(Entity, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[persist(table = "lw_stock")]
pub struct Stock {
    #[persist(primary_key)]
    pub id: i64,
    pub qty: i64,
    #[persist(version)]
    pub version: i64,
}

/// One unit sold.
#[derive(Entity, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[persist(table = "lw_orders")]
pub struct Order {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub stock_id: i64,
    pub buyer: String,
}

pub type Tables = (Note, Stock, Order);

/// The product every checkout buys.
pub const PRODUCT: i64 = 1;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Times the bump handlers ran (a retried request runs again).
    pub bumps: Arc<AtomicUsize>,
    /// Told by `/slow` once its write reached the database.
    pub wrote: Arc<Notify>,
}

fn note(title: &str) -> Note {
    Note {
        id: 0,
        title: title.into(),
        version: 0,
    }
}

/// A checkout's failure: the persist error, or nothing left to sell.
#[derive(Debug)]
pub enum CheckoutError {
    Db(Error),
    OutOfStock,
}

impl From<Error> for CheckoutError {
    fn from(e: Error) -> Self {
        CheckoutError::Db(e)
    }
}

impl IntoResponse for CheckoutError {
    fn into_response(self) -> Response {
        match self {
            CheckoutError::Db(e) => DbError(e).into_response(),
            CheckoutError::OutOfStock => (
                StatusCode::CONFLICT,
                Json(json!({ "error": "out of stock" })),
            )
                .into_response(),
        }
    }
}

/// Sells one unit in a transaction of its own, retried on a stale row.
pub async fn sell_one(db: &Db, buyer: &str) -> Result<Order, CheckoutError> {
    let buyer = buyer.to_owned();
    db.transaction_with(SessionOptions::new().max_retries(40), move |t| {
        let buyer = buyer.clone();
        async move {
            let mut stock = t.find::<Stock>(&PRODUCT).await?.ok_or(Error::NotFound)?;
            if stock.qty == 0 {
                return Err(CheckoutError::OutOfStock);
            }
            stock.qty -= 1;
            t.update(&mut stock)?;
            let order = t
                .insert(Order {
                    id: 0,
                    stock_id: PRODUCT,
                    buyer,
                })
                .await?;
            Ok(order)
        }
    })
    .await
    .map(|c| c.value)
}

pub fn router(db: Db, layer: PersistLayer) -> (Router, AppState) {
    let state = AppState {
        db,
        bumps: Arc::new(AtomicUsize::new(0)),
        wrote: Arc::new(Notify::new()),
    };
    let app = Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/ping_tx", get(|Tx(_s): Tx| async { "pong" }))
        .route("/notes", post(create_note))
        .route("/notes/{id}", get(get_note))
        .route("/notes/redirect/{title}", post(create_then_redirect))
        .route("/notes/fail/{status}/{title}", post(create_then_fail))
        .route("/notes/stale/{id}", post(stale_update))
        .route("/notes/dup/{title}", post(add_duplicate))
        .route("/write_in_get/{title}", get(write_in_get))
        .route("/current", get(current))
        .route("/isolation", get(isolation))
        .route("/panic/{title}", post(panic_after_write))
        .route("/slow/{title}", post(slow_after_write))
        .route("/two/{title}", post(two_rows))
        .route("/killed/{title}", post(killed_after_write))
        .route("/checkout/{buyer}", post(checkout))
        .route(
            "/checkout_after_write/{buyer}/{status}",
            post(checkout_after_write),
        )
        .route("/stock/bump", put(bump).post(bump))
        .layer(layer)
        .with_state(state.clone());
    (app, state)
}

#[derive(Deserialize)]
struct NewNote {
    title: String,
}

async fn create_note(Tx(s): Tx, Json(new): Json<NewNote>) -> Result<impl IntoResponse, DbError> {
    let n = s.insert(note(&new.title)).await?;
    Ok((StatusCode::CREATED, Json(n)))
}

async fn get_note(Tx(s): Tx, Path(id): Path<i64>) -> Result<Json<Note>, DbError> {
    Ok(Json(s.find::<Note>(&id).await?.ok_or(Error::NotFound)?))
}

async fn create_then_redirect(Tx(s): Tx, Path(title): Path<String>) -> Result<Redirect, DbError> {
    let n = s.insert(note(&title)).await?;
    Ok(Redirect::to(&format!("/notes/{}", n.id)))
}

async fn create_then_fail(
    Tx(s): Tx,
    Path((status, title)): Path<(u16, String)>,
) -> Result<StatusCode, DbError> {
    s.insert(note(&title)).await?;
    s.flush().await?;
    Ok(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
}

/// Registers an update carrying a version the row no longer has, and
/// answers 200: the flush at commit finds the row stale.
async fn stale_update(Tx(s): Tx, Path(id): Path<i64>) -> Result<StatusCode, DbError> {
    let mut n = s.find::<Note>(&id).await?.ok_or(Error::NotFound)?;
    n.version -= 1;
    n.title = format!("{} (stale edit)", n.title);
    s.update(&mut n)?;
    Ok(StatusCode::OK)
}

/// Registers a note whose title exists, without flushing: the unique
/// violation comes at commit.
async fn add_duplicate(Tx(s): Tx, Path(title): Path<String>) -> Result<StatusCode, DbError> {
    s.add(note(&title))?;
    Ok(StatusCode::OK)
}

async fn write_in_get(Tx(s): Tx, Path(title): Path<String>) -> Result<StatusCode, DbError> {
    s.insert(note(&title)).await?;
    Ok(StatusCode::OK)
}

/// The isolation level of the request's transaction, as PostgreSQL names
/// it (other backends answer `null`).
async fn isolation(Tx(s): Tx) -> Result<Json<Value>, DbError> {
    if s.backend() != persist_core::sql::Backend::Postgres {
        return Ok(Json(Value::Null));
    }
    let (level,): (String,) = s.raw_as("SHOW transaction_isolation").one().await?;
    Ok(Json(json!(level)))
}

/// Service code without a session parameter.
async fn current_session_id() -> Result<u64, Error> {
    Ok(Session::current()?.id())
}

async fn current(Tx(s): Tx) -> Result<Json<Value>, DbError> {
    let inner = current_session_id().await?;
    Ok(Json(json!({ "tx": s.id(), "current": inner })))
}

async fn panic_after_write(Tx(s): Tx, Path(title): Path<String>) -> StatusCode {
    s.insert(note(&title)).await.expect("insert");
    s.flush().await.expect("flush");
    panic!("handler panics after a write");
}

async fn slow_after_write(
    State(st): State<AppState>,
    Tx(s): Tx,
    Path(title): Path<String>,
) -> Result<StatusCode, DbError> {
    s.insert(note(&title)).await?;
    s.flush().await?;
    st.wrote.notify_one();
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(StatusCode::OK)
}

/// Two rows in two tables, written with several statements: a cut
/// request leaves both or neither.
async fn two_rows(Tx(s): Tx, Path(title): Path<String>) -> Result<StatusCode, DbError> {
    let mut n = s.insert(note(&title)).await?;
    n.title = format!("{title}!");
    s.update(&mut n)?;
    s.add(Order {
        id: 0,
        stock_id: n.id,
        buyer: title,
    })?;
    s.flush().await?;
    Ok(StatusCode::CREATED)
}

/// Writes, then has the server kill this request's connection (from
/// another connection), then answers 201: the commit cannot succeed.
/// SQLite has no server to kill connections: there it just commits.
async fn killed_after_write(
    State(st): State<AppState>,
    Tx(s): Tx,
    Path(title): Path<String>,
) -> Result<StatusCode, DbError> {
    use persist_core::sql::Backend;
    s.insert(note(&title)).await?;
    let kill = match s.backend() {
        Backend::Postgres => {
            let (pid,): (i32,) = s.raw_as("SELECT pg_backend_pid()").one().await?;
            Some(format!("SELECT pg_terminate_backend({pid})"))
        }
        Backend::MySql => {
            let (id,): (i64,) = s
                .raw_as("SELECT CAST(CONNECTION_ID() AS SIGNED)")
                .one()
                .await?;
            Some(format!("KILL {id}"))
        }
        _ => None,
    };
    if let Some(kill) = kill {
        let admin = st.db.session().await?;
        admin.execute(sqlx::AssertSqlSafe(kill)).run().await?;
        admin.commit().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(StatusCode::CREATED)
}

async fn checkout(
    State(st): State<AppState>,
    Path(buyer): Path<String>,
) -> Result<(StatusCode, Json<Order>), CheckoutError> {
    let order = sell_one(&st.db, &buyer).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// Writes through the request's session first (on SQLite it then holds
/// the write lock), then runs the checkout's transaction, then answers
/// `status`.
async fn checkout_after_write(
    State(st): State<AppState>,
    Tx(s): Tx,
    Path((buyer, status)): Path<(String, u16)>,
) -> Result<(StatusCode, Json<Order>), CheckoutError> {
    s.insert(note(&format!("receipt for {buyer}"))).await?;
    let order = sell_one(&st.db, &buyer).await?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok((status, Json(order)))
}

/// Adds one to the stock. On its first run, another connection changes
/// the row between this request's read and its write (PostgreSQL and
/// MySQL; SQLite's one writer is this request, so nothing can): the write
/// finds the row stale.
async fn bump(State(st): State<AppState>, Tx(s): Tx) -> Result<Json<Stock>, DbError> {
    let run = st.bumps.fetch_add(1, Ordering::SeqCst);
    let mut stock = s.find::<Stock>(&PRODUCT).await?.ok_or(Error::NotFound)?;
    if run == 0 && st.db.backend() != persist_core::sql::Backend::Sqlite {
        let other = st.db.session().await?;
        let mut row = other
            .find::<Stock>(&PRODUCT)
            .await?
            .ok_or(Error::NotFound)?;
        row.qty += 100;
        other.update(&mut row)?;
        other.commit().await?;
    }
    stock.qty += 1;
    s.update(&mut stock)?;
    s.flush().await?;
    Ok(Json(stock))
}

/// A request to the router: status and JSON body (`Null` when empty).
pub async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = request(method, path, body);
    let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req))
        .await
        .unwrap_or_else(|_| panic!("{path} timed out"))
        .unwrap_or_else(|never| match never {});
    read(resp).await
}

pub fn request(method: Method, path: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder().method(method).uri(path);
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .expect("request"),
        None => b.body(Body::empty()).expect("request"),
    }
}

pub async fn read(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, json)
}

/// Rows of `E` in the database, counted by a fresh session.
pub async fn count<E: Entity>(db: &Db) -> Result<u64, Error> {
    let s = db.session().await?;
    let n = s.query::<E>().count().await?;
    s.rollback().await?;
    Ok(n)
}

/// Waits (up to 5 s) until every connection out of the pool is a parked
/// one: no session kept one.
pub async fn connections_settle(db: &Db) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if db.connections_in_use() as usize <= db.connections_parked() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
