//! A unit of work per request: the tower layer that opens, commits and
//! rolls back each request's session.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::FutureExt;
use http::{Method, Request};
use persist_core::db::Db;
use persist_core::error::Error;
use persist_core::session::{Isolation, Session, SessionOptions};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::error::{ErrorMapper, ResponseError};

/// Gives every request its own persist [`Session`]: one transaction, ended
/// with the response.
///
/// - **Lazy.** The session takes a pooled connection with its first
///   statement: a request that never touches the database takes none.
/// - **Commit by status.** A 2xx or 3xx response commits; any other rolls
///   back. An error at commit (a stale row at the flush, a constraint)
///   replaces the response with the error's, mapped by the layer's
///   [`ErrorMapper`] (`NotFound` 404, `UniqueViolation`/`Stale` 409, others
///   500, as JSON `{"error": "…"}`); so does a [`DbError`](crate::DbError)
///   a handler answered.
/// - **Cancel- and panic-safe.** A request whose future is dropped (the
///   client went away) or whose handler panics rolls back, and its
///   connection goes back to the pool clean, as any dropped session's does.
/// - **Reachable.** Handlers take the session with [`Tx`](crate::Tx);
///   code they call reaches it with [`Session::current`] (the rest of the
///   stack runs inside [`Session::scope`]). A [`Db::transaction`] called
///   inside the request is a transaction of its own, with its own retries:
///   the place for a contended write (see the crate's docs).
///
/// Options: [`read_only_safe_methods`](PersistLayer::read_only_safe_methods),
/// [`isolation`](PersistLayer::isolation),
/// [`retry_idempotent`](PersistLayer::retry_idempotent),
/// [`error_mapper`](PersistLayer::error_mapper) and
/// [`on_session`](PersistLayer::on_session). Each request runs in a
/// `persist.request` span recording its method, path, session id, the
/// statements it sent and how it ended.
#[derive(Clone, Debug)]
pub struct PersistLayer {
    db: Db,
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    read_only_safe: bool,
    isolation: Option<Isolation>,
    retries: u32,
    retry_body_limit: usize,
    mapper: ErrorMapper,
    on_session: Option<OnSession>,
}

/// The function [`PersistLayer::on_session`] takes.
type SessionFn = dyn Fn(&http::request::Parts, &Session) + Send + Sync;

/// What [`PersistLayer::on_session`] runs as each request's session opens.
#[derive(Clone)]
struct OnSession(Arc<SessionFn>);

impl std::fmt::Debug for OnSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnSession")
    }
}

impl PersistLayer {
    /// A layer opening each request's session on `db`, with the default
    /// options: read-write sessions at the `Db`'s isolation, no retries,
    /// the default [`ErrorMapper`].
    pub fn new(db: Db) -> Self {
        PersistLayer {
            db,
            config: Arc::new(Config {
                read_only_safe: false,
                isolation: None,
                retries: 0,
                retry_body_limit: 1 << 20,
                mapper: ErrorMapper::default(),
                on_session: None,
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// `GET`, `HEAD` and `OPTIONS` requests get read-only sessions
    /// ([`SessionOptions::read_only`]): on PostgreSQL and MySQL a write in
    /// them fails, and on SQLite they read beside the writer instead of
    /// queueing for its lock. Off by default.
    pub fn read_only_safe_methods(mut self, on: bool) -> Self {
        self.config().read_only_safe = on;
        self
    }

    /// The isolation level of the requests' transactions (PostgreSQL and
    /// MySQL).
    pub fn isolation(mut self, level: Isolation) -> Self {
        self.config().isolation = Some(level);
        self
    }

    /// Runs an idempotent request (`GET`, `HEAD`, `OPTIONS`, `PUT`,
    /// `DELETE`) again, at most `max` times, when its transaction failed
    /// with a retryable error ([`Error::is_retryable`]: a deadlock, a
    /// serialization failure, SQLite busy, a stale row) — at commit, or in
    /// the handler, whatever error it answered. Off (0) by default; `POST`
    /// and `PATCH` are never run twice.
    ///
    /// A retried request's body is buffered, up to
    /// [`retry_body_limit`](PersistLayer::retry_body_limit) (a larger one is
    /// `413 Payload Too Large`).
    pub fn retry_idempotent(mut self, max: u32) -> Self {
        self.config().retries = max;
        self
    }

    /// The largest body a retried request may have (1 MiB by default).
    pub fn retry_body_limit(mut self, bytes: usize) -> Self {
        self.config().retry_body_limit = bytes;
        self
    }

    /// How persist errors become responses, at commit and from handlers
    /// answering [`DbError`](crate::DbError).
    pub fn error_mapper(mut self, mapper: ErrorMapper) -> Self {
        self.config().mapper = mapper;
        self
    }

    /// Runs `f` with the request (its method, URI, headers and
    /// extensions) and its session, as the session opens, before the
    /// handler; again for each attempt of a retried request. The place to
    /// tell the session who acts and why, for the history of audited
    /// entities: `s.set_actor(…)` from an authenticated user the
    /// middleware before put in the extensions, `s.set_revision_info(…)`
    /// from the route. It runs no SQL (the session takes its connection
    /// with its first statement).
    ///
    /// ```
    /// # use persist_axum::PersistLayer;
    /// # fn layer(db: persist_core::db::Db) -> PersistLayer {
    /// PersistLayer::new(db).on_session(|req, s| {
    ///     if let Some(user) = req.headers.get("x-user").and_then(|v| v.to_str().ok()) {
    ///         s.set_actor(user);
    ///     }
    ///     s.set_revision_info(format!("{} {}", req.method, req.uri.path()));
    /// })
    /// # }
    /// ```
    pub fn on_session(
        mut self,
        f: impl Fn(&http::request::Parts, &Session) + Send + Sync + 'static,
    ) -> Self {
        self.config().on_session = Some(OnSession(Arc::new(f)));
        self
    }
}

impl<S> Layer<S> for PersistLayer {
    type Service = PersistService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PersistService {
            inner,
            db: self.db.clone(),
            config: self.config.clone(),
        }
    }
}

/// The service [`PersistLayer`] wraps around the rest of the stack.
#[derive(Clone, Debug)]
pub struct PersistService<S> {
    inner: S,
    db: Db,
    config: Arc<Config>,
}

impl<S> Service<Request<Body>> for PersistService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let span = tracing::info_span!(
            "persist.request",
            method = %req.method(),
            path = %req.uri().path(),
            session = tracing::field::Empty,
            statements = tracing::field::Empty,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let run = Run {
            db: self.db.clone(),
            config: self.config.clone(),
        };
        Box::pin(run.serve(inner, req).instrument(span))
    }
}

/// One request's run through the layer.
struct Run {
    db: Db,
    config: Arc<Config>,
}

/// How one attempt ended.
enum Ended {
    /// The response to send (committed, or rolled back by its status).
    Done(Response),
    /// Failed with a retryable error: run again if allowed, else send this.
    Retryable(Response),
}

impl Run {
    async fn serve<S>(self, mut inner: S, req: http::Request<Body>) -> Result<Response, Infallible>
    where
        S: Service<http::Request<Body>, Response = Response, Error = Infallible> + Clone + Send,
        S::Future: Send,
    {
        let method = req.method().clone();
        let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let idempotent = safe || matches!(method, Method::PUT | Method::DELETE);
        let mut options = SessionOptions::new();
        if self.config.read_only_safe && safe {
            options = options.read_only();
        }
        if let Some(level) = self.config.isolation {
            options = options.isolation(level);
        }
        let retries = if idempotent { self.config.retries } else { 0 };
        if retries == 0 {
            let response = match self.attempt(&mut inner, &options, req).await {
                Ended::Done(r) | Ended::Retryable(r) => r,
            };
            tracing::Span::current().record("attempts", 1);
            return Ok(response);
        }
        // A request that may run again keeps its body.
        let (parts, body) = req.into_parts();
        let bytes: Bytes = match axum::body::to_bytes(body, self.config.retry_body_limit).await {
            Ok(b) => b,
            Err(_) => {
                return Ok(Response::builder()
                    .status(http::StatusCode::PAYLOAD_TOO_LARGE)
                    .body(Body::empty())
                    .unwrap_or_default());
            }
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let req = http::Request::from_parts(parts.clone(), Body::from(bytes.clone()));
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .unwrap_or_else(|never| match never {});
            match self.attempt(&mut inner, &options, req).await {
                Ended::Retryable(_) if attempts <= retries => {
                    tracing::debug!(
                        attempts,
                        "running the request again after a retryable error"
                    );
                    let jitter = u64::from(std::process::id() ^ attempts) % 7;
                    tokio::time::sleep(Duration::from_millis((5 << attempts.min(6)) + jitter))
                        .await;
                }
                Ended::Done(r) | Ended::Retryable(r) => {
                    tracing::Span::current().record("attempts", attempts);
                    return Ok(r);
                }
            }
        }
    }

    /// Runs the rest of the stack once, in a fresh session, and ends the
    /// session by the response.
    async fn attempt<S>(
        &self,
        inner: &mut S,
        options: &SessionOptions,
        mut req: http::Request<Body>,
    ) -> Ended
    where
        S: Service<http::Request<Body>, Response = Response, Error = Infallible> + Send,
        S::Future: Send,
    {
        let span = tracing::Span::current();
        let session = match self.db.session_with(options.clone()).await {
            Ok(s) => s,
            Err(e) => return Ended::Done(self.config.mapper.respond(&e)),
        };
        span.record("session", session.id());
        req.extensions_mut().insert(session.clone());
        if let Some(f) = &self.config.on_session {
            let (parts, body) = req.into_parts();
            (f.0)(&parts, &session);
            req = Request::from_parts(parts, body);
        }
        let run = AssertUnwindSafe(session.scope(inner.call(req))).catch_unwind();
        let response = match run.await {
            Ok(Ok(r)) => r,
            Ok(Err(never)) => match never {},
            Err(panic) => {
                // The handler panicked: nothing of the request is kept.
                span.record("outcome", "panicked");
                end(&session).await;
                std::panic::resume_unwind(panic);
            }
        };
        let status = response.status();
        let keep = status.is_success() || status.is_redirection();
        let ended = if keep {
            match session.commit().await {
                Ok(()) => {
                    span.record("outcome", "committed");
                    Ok(response)
                }
                Err(e) => {
                    span.record("outcome", "commit failed");
                    let _ = session.rollback().await;
                    Err(e)
                }
            }
        } else {
            span.record("outcome", "rolled back");
            end(&session).await;
            Ok(response)
        };
        span.record("statements", session.statement_count());
        match ended {
            Ok(response) => {
                let retryable = !keep && session.met_retryable_error();
                let response = self.remap(response);
                if retryable {
                    Ended::Retryable(response)
                } else {
                    Ended::Done(response)
                }
            }
            Err(e) => {
                let response = self.config.mapper.respond(&e);
                if e.is_retryable() || session.met_retryable_error() {
                    Ended::Retryable(response)
                } else {
                    Ended::Done(response)
                }
            }
        }
    }

    /// A handler's [`DbError`](crate::DbError) answered with the layer's mapping.
    fn remap(&self, response: Response) -> Response {
        match response.extensions().get::<ResponseError>() {
            Some(ResponseError(e)) => {
                let e: Arc<Error> = e.clone();
                let mut mapped = self.config.mapper.render(&e, false);
                mapped.extensions_mut().insert(ResponseError(e));
                mapped
            }
            None => response,
        }
    }
}

/// Ends the session without keeping anything: rollback, whose error (the
/// connection gone) only goes to the log, since the connection layer
/// discards such a connection anyway.
async fn end(session: &Session) {
    if let Err(e) = session.rollback().await {
        tracing::warn!(error = %e, "rollback at the end of a request failed");
    }
}
