//! persist for [axum]: a unit of work per request, and web sessions kept by
//! persist.
//!
//! - [`PersistLayer`] gives every request its own persist [`Session`] (one
//!   transaction), opened lazily, committed when the response is a 2xx/3xx
//!   and rolled back otherwise; handlers take it with [`Tx`], and code they
//!   call reaches it with [`Session::current`].
//! - [`PersistSessionStore`] is a [`tower_sessions::SessionStore`] on a
//!   persist entity: web sessions ("the shop that remembers your cart")
//!   kept in SQLite, PostgreSQL or MySQL/MariaDB, served from persist's
//!   shared cache when the `Db` has one.
//!
//! # A service
//!
//! ```no_run
//! use axum::routing::{get, post};
//! use axum::{Json, Router};
//! use persist_axum::{DbError, PersistLayer, PersistSessionStore, Tx};
//! use persist_core::prelude::*;
//! use tower_sessions::{Session as WebSession, SessionManagerLayer};
//!
//! #[derive(Entity, Clone, Debug, serde::Serialize)]
//! #[persist(table = "notes")]
//! struct Note {
//!     #[persist(primary_key, auto_increment)]
//!     id: i64,
//!     text: String,
//! }
//!
//! async fn add(Tx(s): Tx, web: WebSession, text: String) -> Result<Json<Note>, DbError> {
//!     // Written now, committed with the response (a 2xx).
//!     let note = s.insert(Note { id: 0, text }).await?;
//!     // The web session remembers the visitor's last note.
//!     let _ = web.insert("last_note", note.id).await;
//!     Ok(Json(note))
//! }
//!
//! async fn show(Tx(s): Tx, axum::extract::Path(id): axum::extract::Path<i64>) -> Result<Json<Note>, DbError> {
//!     Ok(Json(s.find::<Note>(&id).await?.ok_or(Error::NotFound)?))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let db = Db::connect("sqlite://app.db?mode=rwc").await?;
//! db.create_tables::<(Note,)>().await?;
//! let store = PersistSessionStore::new(db.clone());
//! store.create_table().await?;
//! let app: Router = Router::new()
//!     .route("/notes", post(add))
//!     .route("/notes/{id}", get(show))
//!     .layer(PersistLayer::new(db.clone()))
//!     .layer(SessionManagerLayer::new(store));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Contended writes inside a request
//!
//! A request's session commits once, after the handler answered: a stale
//! row found at that commit cannot be retried (the response is a 409). The
//! part of a request that competes with other requests — selling the last
//! units of stock, say — runs in [`Db::transaction`], which is a
//! transaction of its own, committed before the handler goes on and retried
//! by itself on a retryable error:
//!
//! ```no_run
//! # use persist_core::prelude::*;
//! # use axum::extract::{Path, State};
//! # use persist_axum::{DbError, Tx};
//! # #[derive(Entity, Clone, Debug)]
//! # #[persist(table = "stock")]
//! # struct Stock { #[persist(primary_key)] id: i64, qty: i64, #[persist(version)] version: i64 }
//! # #[derive(Entity, Clone, Debug)]
//! # #[persist(table = "orders")]
//! # struct Order { #[persist(primary_key, auto_increment)] id: i64, stock_id: i64 }
//! async fn checkout(State(db): State<Db>, Path(item): Path<i64>) -> Result<String, DbError> {
//!     let order = db
//!         .transaction(|t| async move {
//!             let mut stock = t.find::<Stock>(&item).await?.ok_or(Error::NotFound)?;
//!             if stock.qty == 0 {
//!                 return Err(Error::NotFound); // or the application's own error type
//!             }
//!             stock.qty -= 1;
//!             t.update(&mut stock)?; // a stale version: the whole closure runs again
//!             t.insert(Order { id: 0, stock_id: item }).await
//!         })
//!         .await?;
//!     Ok(format!("order {}", order.id))
//! }
//! ```
//!
//! With 20 concurrent buyers for 5 units this sells exactly 5 (the
//! integration tests check it on every backend). Two things to know:
//!
//! - On PostgreSQL and MySQL the transaction has a connection of its own:
//!   the pool must have room for it beside the request's session when the
//!   request's session already holds one (it takes one with its first
//!   statement; call the transaction first and it holds none yet). What
//!   the transaction committed stays committed if the request later rolls
//!   back.
//! - On SQLite, which has one writer, a request's session that has already
//!   begun writing holds the database's write lock; a second write
//!   transaction would wait for it forever. There `Db::transaction` runs
//!   its closure inside the request's session, in a savepoint, and what it
//!   wrote commits (or rolls back) with the request. Nothing can compete
//!   with it: the request is the only writer.
//!
//! [`Session`]: persist_core::session::Session
//! [`Session::current`]: persist_core::session::Session::current
//! [`Db::transaction`]: persist_core::db::Db::transaction

mod error;
mod extract;
mod layer;
pub mod store;

pub use error::{DbError, ErrorMapper};
pub use extract::Tx;
pub use layer::{PersistLayer, PersistService};
pub use store::{LiveSession, PersistSessionStore, SessionRecord, SessionTable};

/// The web guide's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/web.md")]
pub struct WebGuideDoctests;

#[doc(hidden)]
pub mod __private {
    pub use persist_core;
}
