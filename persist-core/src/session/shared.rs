//! What every session of one [`Db`](crate::db::Db) shares: the
//! connections, the backend and its traits read at connect, the defaults
//! sessions start from, and the shared cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backend::AnyConn;
use crate::cache::layer::CacheLayer;
use crate::conn::Connections;
use crate::error::Result;
use crate::session::{Interceptor, Isolation};
use crate::sql::Backend;

/// The state behind a `Db` and its sessions (a `Db` is an `Arc` of it).
#[derive(Debug)]
pub(crate) struct Shared {
    /// The pool and the connections sessions gave back.
    pub(crate) conns: Connections,
    pub(crate) backend: Backend,
    pub(crate) statements: AtomicU64,
    pub(crate) max_retries: u32,
    /// MySQL: whether a multi-row insert gets consecutive auto-increment ids
    /// (`innodb_autoinc_lock_mode` below 2).
    pub(crate) mysql_consecutive_ids: bool,
    /// MariaDB 10.5+: multi-row inserts read their keys with `RETURNING`.
    pub(crate) mysql_returning: bool,
    pub(crate) identity_map: bool,
    pub(crate) identity_map_limit: Option<usize>,
    pub(crate) cache: Option<CacheLayer>,
    /// SQLite: statements take the direct path.
    pub(crate) sqlite_direct: bool,
    /// SQLite in memory (its database lives as long as its connections).
    pub(crate) in_memory: bool,
    /// The isolation a session gets when it asks for none: the builder's
    /// [`DbBuilder::isolation`](crate::db::DbBuilder::isolation), else the server's default, read at connect
    /// (SQLite: `None`, always serializable).
    pub(crate) default_isolation: Option<Isolation>,
    /// SQLite: the write sessions holding the database's write lock, by the
    /// task they run in (see `Session::claim_sqlite_write`).
    pub(crate) sqlite_writers: std::sync::Mutex<Vec<(super::Runner, u64)>>,
    /// The longest [`Db::close`](crate::db::Db::close) waits for connections.
    pub(crate) close_timeout: Duration,
    /// Session interceptors, in registration order.
    pub(crate) interceptors: Interceptors,
}

/// The interceptors registered on a `Db`, in registration order.
#[derive(Clone, Default)]
pub(crate) struct Interceptors(pub(crate) Vec<std::sync::Arc<dyn Interceptor>>);

impl std::fmt::Debug for Interceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|i| i.name()))
            .finish()
    }
}

impl Interceptors {
    /// Whether none is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Shared {
    /// The backend the connections talk to.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for a session; see [`Connections::acquire`].
    pub(crate) async fn acquire(&self) -> Result<AnyConn> {
        self.conns.acquire().await
    }

    /// Counts one statement sent on any of this database's connections.
    pub(crate) fn count_statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }
}
