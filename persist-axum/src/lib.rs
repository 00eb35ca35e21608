//! persist for [axum]: a unit of work per request, and web sessions kept by
//! persist.
//!
//! - [`PersistLayer`] gives every request its own persist [`Session`]
//!   (one transaction), opened lazily, committed when the response is a
//!   2xx/3xx and rolled back otherwise; handlers take it with [`Tx`] or reach
//!   it with [`Session::current`].
//! - [`PersistSessionStore`] is a [`tower_sessions::SessionStore`] on a
//!   persist entity: web sessions ("the shop that remembers your cart")
//!   kept in SQLite, PostgreSQL or MySQL/MariaDB, served from persist's
//!   shared cache when the `Db` has one.
//!
//! [`Session`]: persist_core::session::Session
//! [`Session::current`]: persist_core::session::Session::current

mod error;
mod extract;
mod layer;
pub mod store;

pub use error::{DbError, ErrorMapper};
pub use extract::Tx;
pub use layer::{PersistLayer, PersistService};
pub use store::PersistSessionStore;

#[doc(hidden)]
pub mod __private {
    pub use persist_core;
}
