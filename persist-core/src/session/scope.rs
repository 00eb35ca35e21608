//! The ambient session: a `tokio` task-local holding the current session,
//! so code deep in a call stack reaches it without threading it through
//! every signature.

use std::future::Future;

use crate::error::{Error, Result};
use crate::session::Session;

tokio::task_local! {
    static CURRENT: Session;
}

impl Session {
    /// Runs `fut` with this session as the ambient one:
    /// [`Session::current`] inside it (in this task) answers this session.
    /// [`Db::transaction`](crate::db::Db::transaction) does this for its closure.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        CURRENT.scope(self.clone(), fut).await
    }

    /// The ambient session of the current task, set by [`Session::scope`]
    /// or [`Db::transaction`](crate::db::Db::transaction); outside one,
    /// [`Error::NoSession`]. (A task spawned inside a scope does not inherit
    /// it: pass the session or scope the task.)
    pub fn current() -> Result<Session> {
        CURRENT
            .try_with(Session::clone)
            .map_err(|_| Error::NoSession)
    }
}
