//! persist errors as HTTP responses.

use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use persist_core::error::Error;

/// A persist [`Error`] as a handler's error: answered with a status by
/// [`ErrorMapper::default`] (`NotFound` → 404, `UniqueViolation`, `Stale`
/// and `ForeignKeyViolation` → 409, others → 500) and a JSON body
/// `{"error": "…"}`. `?` converts a persist error into it.
///
/// Behind a [`PersistLayer`](crate::PersistLayer) with its own
/// [`ErrorMapper`], the layer answers the error with that mapping instead.
#[derive(Debug)]
pub struct DbError(pub Error);

impl From<Error> for DbError {
    fn from(e: Error) -> Self {
        DbError(e)
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The persist error a response was made from, kept in its extensions so
/// the layer can map it again with its own [`ErrorMapper`].
#[derive(Clone, Debug)]
pub(crate) struct ResponseError(pub(crate) Arc<Error>);

impl IntoResponse for DbError {
    fn into_response(self) -> Response {
        let error = Arc::new(self.0);
        let mut response = ErrorMapper::default().respond(&error);
        response.extensions_mut().insert(ResponseError(error));
        response
    }
}

type StatusFn = dyn Fn(&Error) -> StatusCode + Send + Sync;

/// How a persist error becomes a response: a status chosen from the error,
/// and a JSON body `{"error": "<message>"}`.
///
/// The default maps `NotFound` → 404, `UniqueViolation`, `Stale` and
/// `ForeignKeyViolation` → 409, and every other error → 500 (whose body
/// says only "internal error", so no SQL or server detail reaches the
/// client).
#[derive(Clone)]
pub struct ErrorMapper {
    status: Arc<StatusFn>,
}

impl std::fmt::Debug for ErrorMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorMapper").finish_non_exhaustive()
    }
}

impl Default for ErrorMapper {
    fn default() -> Self {
        ErrorMapper::new(default_status)
    }
}

/// The default status of a persist error.
pub(crate) fn default_status(e: &Error) -> StatusCode {
    match e {
        Error::NotFound => StatusCode::NOT_FOUND,
        Error::UniqueViolation { .. } | Error::Stale { .. } | Error::ForeignKeyViolation { .. } => {
            StatusCode::CONFLICT
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ErrorMapper {
    /// A mapper with its own choice of status.
    pub fn new(status: impl Fn(&Error) -> StatusCode + Send + Sync + 'static) -> Self {
        ErrorMapper {
            status: Arc::new(status),
        }
    }

    /// The status `e` is answered with.
    pub fn status(&self, e: &Error) -> StatusCode {
        (self.status)(e)
    }

    /// The response for `e`: its status and `{"error": "…"}`. A 5xx says
    /// only "internal error"; the error itself goes to the log.
    pub fn respond(&self, e: &Error) -> Response {
        self.render(e, true)
    }

    /// [`respond`](ErrorMapper::respond), logging a 5xx's error only when
    /// `log` (a response mapped again was logged when first made).
    pub(crate) fn render(&self, e: &Error, log: bool) -> Response {
        let status = self.status(e);
        let message = if status.is_server_error() {
            if log {
                tracing::error!(error = %e, "request failed");
            }
            "internal error".to_owned()
        } else {
            e.to_string()
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
