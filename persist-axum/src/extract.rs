//! The request's session as a handler argument.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use http::request::Parts;
use persist_core::error::Error;
use persist_core::session::Session;

use crate::error::DbError;

/// The request's persist [`Session`], opened by [`PersistLayer`](crate::PersistLayer):
/// `async fn handler(Tx(s): Tx) -> Result<…, DbError>`.
///
/// It is the same session [`Session::current`] answers inside the request,
/// and it takes a connection only with its first statement. A route that is
/// not behind the layer answers `500` ([`Error::NoSession`]).
#[derive(Debug, Clone)]
pub struct Tx(pub Session);

impl Deref for Tx {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tx {
    type Rejection = DbError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .map(Tx)
            .ok_or(DbError(Error::NoSession))
    }
}
