//! [`Db`]: the connection pool, the factory of sessions, and schema creation.

mod pool;

use std::future::Future;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::Instrument;

use crate::backend::AnyPool;
use crate::cache::layer::CacheLayer;
use crate::cache::{CacheMetrics, SharedCache};
use crate::conn::Connections;
use crate::error::{Error, Result};
use crate::model::entity::{Entity, EntityList};
use crate::session::shared::{Interceptors, Shared};
use crate::session::{Interceptor, Isolation, Session, SessionOptions};
use crate::sql::Backend;

mod evict;

/// The outcome of [`Db::transaction_with`]: the closure's value and how many
/// tries it took (1 when it committed at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<T> {
    /// What the closure returned.
    pub value: T,
    /// Tries run, the successful one included.
    pub attempts: u32,
}

/// A database: a connection pool plus persist's settings for it.
///
/// Cheap to clone (all clones share the pool). `Db` runs no repository
/// calls itself: all reads and writes go through a [`Session`]. Schema
/// statements ([`Db::create_tables`]) run here, outside any session, because
/// MySQL commits DDL implicitly.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) inner: Arc<Shared>,
}

/// The server's default isolation level (PostgreSQL, MySQL); `None` for
/// SQLite (always serializable).
async fn server_isolation(pool: &AnyPool) -> Result<Option<Isolation>> {
    #[allow(unused_variables)]
    let text: Option<String> = match pool {
        #[cfg(feature = "sqlite")]
        AnyPool::Sqlite(_) => None,
        #[cfg(feature = "postgres")]
        AnyPool::Postgres(p) => Some(
            sqlx::query_scalar("SELECT current_setting('default_transaction_isolation')")
                .fetch_one(p)
                .await?,
        ),
        #[cfg(feature = "mysql")]
        AnyPool::MySql(p) => {
            // MySQL 8 and MariaDB 11 name it `transaction_isolation`;
            // MariaDB 10 only `tx_isolation`.
            let level: Result<String, _> =
                sqlx::query_scalar("SELECT CAST(@@SESSION.transaction_isolation AS CHAR)")
                    .fetch_one(p)
                    .await;
            Some(match level {
                Ok(l) => l,
                Err(_) => {
                    sqlx::query_scalar("SELECT CAST(@@SESSION.tx_isolation AS CHAR)")
                        .fetch_one(p)
                        .await?
                }
            })
        }
    };
    Ok(text.map(|t| Isolation::parse(&t)))
}

/// A provider as the builder holds it.
#[derive(Clone)]
struct Provider(Arc<dyn SharedCache>);

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedCache")
    }
}

/// Options for opening a [`Db`]; start with [`Db::builder`].
#[derive(Debug, Clone)]
pub struct DbBuilder {
    max_connections: Option<u32>,
    min_connections: u32,
    acquire_timeout: Duration,
    test_before_acquire: bool,
    max_retries: u32,
    identity_map: bool,
    identity_map_limit: Option<usize>,
    cache: Option<Provider>,
    cached_entities: Vec<(&'static str, Duration)>,
    query_cache_ttl: Duration,
    sqlite_direct: bool,
    isolation: Option<Isolation>,
    close_timeout: Duration,
    interceptors: Interceptors,
}

impl Default for DbBuilder {
    fn default() -> Self {
        DbBuilder {
            max_connections: None,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(30),
            test_before_acquire: false,
            max_retries: 3,
            identity_map: true,
            identity_map_limit: None,
            cache: None,
            cached_entities: Vec::new(),
            query_cache_ttl: Duration::from_secs(60),
            sqlite_direct: true,
            isolation: None,
            close_timeout: Duration::from_secs(10),
            interceptors: Interceptors::default(),
        }
    }
}

impl DbBuilder {
    /// Registers a session interceptor: it sees every flush's change set
    /// before it is written (and may add to it or veto it), every bulk
    /// write before it runs, and every transaction's changes after it
    /// commits or rolls back. Interceptors run in registration order. See
    /// [`Interceptor`].
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.0.push(Arc::new(interceptor));
        self
    }

    /// Most connections the pool opens (default 10; 1 for in-memory SQLite).
    /// Each open session holds one.
    ///
    /// In-memory SQLite is one shared-cache database per pool, and its
    /// table locks make a second connection wait without a timeout while
    /// another session writes. With one connection, a second session waits
    /// in the pool instead and fails with a timeout rather than hanging.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// Connections the pool keeps open when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long [`Db::session`] waits for a free connection (default 30 s).
    pub fn acquire_timeout(mut self, t: Duration) -> Self {
        self.acquire_timeout = t;
        self
    }

    /// Whether the pool pings a connection before handing it to a session
    /// (default false: a session holds its connection for its whole life,
    /// so the ping would be one extra round trip per session for little gain).
    pub fn test_before_acquire(mut self, yes: bool) -> Self {
        self.test_before_acquire = yes;
        self
    }

    /// How many times [`Db::transaction`] retries a closure that failed with a
    /// retryable error (default 3; see [`Error::is_retryable`]).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Whether SQLite statements take the direct path (default on): a
    /// session runs them on the raw handle of its sqlx connection, on its own
    /// thread, and decodes rows straight from SQLite, instead of through
    /// sqlx's worker thread and row channel. Off, every statement runs
    /// through sqlx. Results and errors are the same either way; the direct
    /// path is several times faster on reads. No effect on other backends.
    ///
    /// A statement that would wait for another connection's lock, a string
    /// of several statements, a streamed query and transaction control run
    /// through sqlx in either mode.
    pub fn sqlite_direct(mut self, on: bool) -> Self {
        self.sqlite_direct = on;
        self
    }

    /// Whether sessions serve reads by key from their identity map (default
    /// on); a session can override it with [`SessionOptions::identity_map`].
    pub fn identity_map(mut self, on: bool) -> Self {
        self.identity_map = on;
        self
    }

    /// The most rows a session's identity map keeps (default: no limit);
    /// beyond it the oldest clean entries are evicted.
    pub fn identity_map_limit(mut self, n: usize) -> Self {
        self.identity_map_limit = Some(n);
        self
    }

    /// Registers a shared (second-level) cache provider, for example from
    /// `persist-cache`. Entities opt in with [`DbBuilder::cache_entity`];
    /// queries with [`Query::cached`](crate::query::Query::cached).
    pub fn cache(mut self, provider: impl SharedCache) -> Self {
        self.cache = Some(Provider(Arc::new(provider)));
        self
    }

    /// Like [`DbBuilder::cache`], for a provider already shared.
    pub fn cache_arc(mut self, provider: Arc<dyn SharedCache>) -> Self {
        self.cache = Some(Provider(provider));
        self
    }

    /// Caches rows of `E` by key in the shared cache, for `ttl`: a `find` the
    /// identity map cannot answer asks the cache before the database.
    pub fn cache_entity<E: Entity>(mut self, ttl: Duration) -> Self {
        self.cached_entities
            .push((E::META.table, crate::cache::clamp_ttl(ttl)));
        self
    }

    /// How long cached query results live (default 60 s; they are also
    /// dropped as soon as a table they read changes).
    pub fn query_cache_ttl(mut self, ttl: Duration) -> Self {
        self.query_cache_ttl = crate::cache::clamp_ttl(ttl);
        self
    }

    /// The isolation level of sessions that set none with
    /// [`SessionOptions::isolation`] (default: the server's own default,
    /// read at connect; SQLite is always serializable and ignores it).
    ///
    /// The level decides where the shared cache may answer a read: it
    /// answers reads by key only where that cannot give a transaction weaker
    /// isolation than the database would (see the README's "Guarantees
    /// under faults"), which on PostgreSQL and MySQL means `ReadCommitted`
    /// or `ReadUncommitted`.
    pub fn isolation(mut self, level: Isolation) -> Self {
        self.isolation = Some(level);
        self
    }

    /// The longest [`Db::close`] waits for sessions to give their
    /// connections back (default 10 s).
    pub fn close_timeout(mut self, t: Duration) -> Self {
        self.close_timeout = t;
        self
    }

    fn pool_options<DB: sqlx::Database>(&self, default_max: u32) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::new()
            .max_connections(self.max_connections.unwrap_or(default_max))
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(self.test_before_acquire)
    }

    /// Opens the database at `url`: `sqlite::memory:`, `sqlite://path?mode=rwc`,
    /// `postgres://…` (or `postgresql://`), `mysql://…` (or `mariadb://`).
    pub async fn connect(self, url: &str) -> Result<Db> {
        let (pool, backend) = self.open_pool(url).await?;
        let in_memory =
            backend == Backend::Sqlite && (url.contains(":memory:") || url.contains("mode=memory"));
        let default_isolation = match self.isolation {
            Some(level) => Some(level),
            None => server_isolation(&pool).await?,
        };
        #[cfg_attr(not(feature = "mysql"), allow(unused_mut))]
        let mut inner = Shared {
            conns: Connections::new(pool, self.sqlite_direct, in_memory),
            backend,
            statements: AtomicU64::new(0),
            max_retries: self.max_retries,
            mysql_consecutive_ids: true,
            mysql_returning: false,
            identity_map: self.identity_map,
            identity_map_limit: self.identity_map_limit,
            cache: self
                .cache
                .clone()
                .map(|p| CacheLayer::new(p.0, self.cached_entities.clone(), self.query_cache_ttl)),
            sqlite_direct: self.sqlite_direct,
            in_memory,
            default_isolation,
            sqlite_writers: std::sync::Mutex::new(Vec::new()),
            close_timeout: self.close_timeout,
            interceptors: self.interceptors.clone(),
        };
        #[cfg(feature = "mysql")]
        #[allow(irrefutable_let_patterns)]
        if let AnyPool::MySql(pool) = &inner.conns.pool {
            let (lock_mode, version): (i64, String) = sqlx::query_as(
                "SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED), CAST(VERSION() AS CHAR)",
            )
            .fetch_one(pool)
            .await?;
            // MariaDB returns a multi-row insert's keys (`RETURNING`): they
            // need neither consecutive ids nor a step. MySQL's are computed
            // from `LAST_INSERT_ID()` and the step the session has at the
            // time, read then (a session can change it).
            let returned = crate::backend::mariadb_returns_keys(&version);
            inner.mysql_consecutive_ids = lock_mode < 2 || returned;
            inner.mysql_returning = returned;
        }
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    #[allow(unused_variables)]
    async fn open_pool(&self, url: &str) -> Result<(AnyPool, Backend)> {
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            use std::str::FromStr;
            let mut opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .foreign_keys(true)
                .busy_timeout(crate::backend::SQLITE_BUSY_TIMEOUT);
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if !in_memory && !url.contains("journal_mode") {
                // WAL lets readers run beside the one writer, as sessions of
                // a server expect; the URL's own `journal_mode` wins.
                opts = opts
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
            }
            let mut pool = self.pool_options(if in_memory { 1 } else { 10 });
            if in_memory {
                // The database lives as long as one of its connections: the
                // pool must never close its last one for being idle or old.
                pool = pool
                    .min_connections(self.min_connections.max(1))
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            let pool = pool.connect_with(opts).await?;
            return Ok((AnyPool::Sqlite(pool), Backend::Sqlite));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = self.pool_options(10).connect(url).await?;
            return Ok((AnyPool::Postgres(pool), Backend::Postgres));
        }
        #[cfg(feature = "mysql")]
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let url = url.replacen("mariadb://", "mysql://", 1);
            let pool = self.pool_options(10).connect(&url).await?;
            return Ok((AnyPool::MySql(pool), Backend::MySql));
        }
        Err(Error::UnsupportedUrl(
            url.split('?').next().unwrap_or(url).to_owned(),
        ))
    }
}

impl Db {
    /// Opens the database at `url` with default options; see
    /// [`DbBuilder::connect`] for the URL forms.
    pub async fn connect(url: &str) -> Result<Db> {
        DbBuilder::default().connect(url).await
    }

    /// Options for opening a database.
    pub fn builder() -> DbBuilder {
        DbBuilder::default()
    }

    /// Caches rows of `E` from now on (see [`DbBuilder::cache_entity`]).
    /// [`Error::Invalid`] when no cache provider is registered.
    pub fn cache_entity<E: Entity>(&self, ttl: Duration) -> Result<()> {
        match &self.inner.cache {
            Some(c) => {
                c.register(E::META.table, ttl);
                Ok(())
            }
            None => Err(Error::Invalid(
                "no shared cache is registered on this Db".into(),
            )),
        }
    }

    /// The shared cache's counters (hits, misses, puts, invalidations,
    /// errors), if a cache is registered.
    pub fn cache_metrics(&self) -> Option<CacheMetrics> {
        self.inner.cache.as_ref().map(|c| c.metrics())
    }

    /// Whether SQLite statements take the direct path
    /// ([`DbBuilder::sqlite_direct`]; always `false` on other backends).
    pub fn sqlite_direct(&self) -> bool {
        self.inner.backend == Backend::Sqlite && self.inner.sqlite_direct
    }

    /// The isolation level of sessions that set none: the builder's
    /// [`DbBuilder::isolation`], else the server's default as read at
    /// connect (`None` on SQLite, which is always serializable).
    pub fn isolation(&self) -> Option<Isolation> {
        self.inner.default_isolation
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Statements persist has sent through this `Db` and all its sessions:
    /// queries, writes and schema statements. `BEGIN`, `COMMIT` and
    /// `ROLLBACK` are not counted, so a test can assert exactly the SQL its
    /// code caused.
    pub fn statement_count(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Starts a session on one pooled connection, which it holds for its
    /// life; see [`Session`].
    pub async fn session(&self) -> Result<Session> {
        Session::open(self.inner.clone(), SessionOptions::default()).await
    }

    /// Starts a session with options: isolation level, read-only, identity
    /// map.
    pub async fn session_with(&self, options: SessionOptions) -> Result<Session> {
        Session::open(self.inner.clone(), options).await
    }

    /// Runs `f` in a fresh session: commits when it returns `Ok`, rolls back
    /// when it returns `Err`. The session is the ambient one inside `f`
    /// ([`Session::current`]).
    ///
    /// Called inside another session's scope (a web request's session, say),
    /// `f` still runs in a transaction of its own, which commits or rolls
    /// back by itself and is retried by itself: the place for a contended
    /// write inside a longer unit of work. One exception: on SQLite, when
    /// the ambient session of this task already holds the database's one
    /// write lock, a second write transaction would wait for it forever, so
    /// `f` runs inside the ambient session instead, in a savepoint (rolled
    /// back when `f` answers `Err`, kept when it answers `Ok`; what it wrote
    /// commits with the ambient session). Nothing can compete with it
    /// there: the ambient session is SQLite's only writer.
    ///
    /// `f` fails with the application's own error type: any `E` that a
    /// persist [`Error`] converts into (`E: From<Error>`, so `?` works on
    /// persist calls inside `f`), and `transaction` answers that `E`. A
    /// domain error (`OutOfStock`) is an `Err` like any other: nothing of
    /// the attempt is committed.
    ///
    /// Retries: when the attempt failed with a retryable error
    /// ([`Error::is_retryable`]: deadlocks, serialization failures, SQLite
    /// busy, stale rows) — at commit, or inside `f`, whatever `E` it became
    /// there (the session remembers that one of its calls answered such an
    /// error) — `f` runs again in a new session, at most
    /// [`DbBuilder::max_retries`] times, with a short growing pause. An
    /// attempt that fails with any other error is not retried.
    ///
    /// When `E` is persist's own [`Error`], say so once, as with any
    /// closure whose error type the compiler cannot infer:
    ///
    /// ```no_run
    /// # use persist_core::prelude::*;
    /// # async fn demo(db: Db) -> Result<(), Error> {
    /// let n = db
    ///     .transaction(|s| async move { Ok::<_, Error>(s.statement_count()) })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<F, Fut, T, E>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnMut(Session) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        self.transaction_with(SessionOptions::default(), f)
            .await
            .map(|c| c.value)
    }

    /// [`Db::transaction`] with session options, answering how many tries ran.
    pub async fn transaction_with<F, Fut, T, E>(
        &self,
        options: SessionOptions,
        mut f: F,
    ) -> std::result::Result<Committed<T>, E>
    where
        F: FnMut(Session) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        let max_retries = options.max_retries.unwrap_or(self.inner.max_retries);
        if let Some(ambient) = self.ambient_sqlite_writer(&options) {
            return self.transaction_inside(ambient, max_retries, f).await;
        }
        let mut options = options;
        if options.autocommit && !options.read_only && self.inner.cache.is_some() {
            // The cache learns of writes at commit: a transaction it is.
            options.autocommit = false;
        }
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let s = self.session_with(options.clone()).await?;
            // `Err` carries whether the attempt may succeed if run again.
            let outcome = match s.scope(f(s.clone())).await {
                Ok(v) => match s.commit().await {
                    Ok(()) => Ok(v),
                    Err(e) => Err((e.is_retryable(), E::from(e))),
                },
                Err(e) => {
                    let _ = s.rollback().await;
                    Err((s.met_retryable_error(), e))
                }
            };
            match outcome {
                Ok(value) => return Ok(Committed { value, attempts }),
                Err((true, _)) if attempts <= max_retries => {
                    tracing::debug!(attempts, "retrying transaction after a retryable error");
                    // Spread the retries of competing tasks a little.
                    let jitter = u64::from(std::process::id() ^ attempts) % 7;
                    tokio::time::sleep(Duration::from_millis((5 << attempts.min(6)) + jitter))
                        .await;
                }
                Err((retryable, e)) => {
                    tracing::debug!(attempts, retryable, "transaction failed");
                    return Err(e);
                }
            }
        }
    }

    /// SQLite: the ambient session of this task, when it holds the write
    /// lock a new write session would wait for.
    fn ambient_sqlite_writer(&self, options: &SessionOptions) -> Option<Session> {
        if self.backend() != Backend::Sqlite || options.read_only {
            return None;
        }
        Session::current()
            .ok()
            .filter(|s| s.is_of(&self.inner) && s.holds_sqlite_write_here())
    }

    /// [`Db::transaction_with`] inside the ambient session `s` (SQLite,
    /// which has one writer, and `s` is it): each attempt runs in a
    /// savepoint, released when `f` answers `Ok` and its changes are
    /// flushed, rolled back when it answers `Err`. What it wrote commits
    /// with `s`.
    async fn transaction_inside<F, Fut, T, E>(
        &self,
        s: Session,
        max_retries: u32,
        mut f: F,
    ) -> std::result::Result<Committed<T>, E>
    where
        F: FnMut(Session) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        let outer_met = s.take_met_retryable();
        let mut attempts = 0u32;
        let outcome = loop {
            attempts += 1;
            let savepoint = match s.savepoint().await {
                Ok(sp) => sp,
                Err(e) => break Err(E::from(e)),
            };
            match f(s.clone()).await {
                Ok(value) => {
                    // A failed flush fails the whole session: not retried.
                    let kept = match s.flush().await {
                        Ok(()) => savepoint.release().await,
                        Err(e) => Err(e),
                    };
                    break kept
                        .map(|()| Committed { value, attempts })
                        .map_err(E::from);
                }
                Err(e) => {
                    let met = s.take_met_retryable();
                    let rolled = savepoint.rollback().await;
                    if met && attempts <= max_retries && rolled.is_ok() {
                        tracing::debug!(
                            attempts,
                            "retrying a transaction inside the ambient session"
                        );
                        continue;
                    }
                    s.set_met_retryable(met);
                    break Err(e);
                }
            }
        };
        let met = s.met_retryable_error();
        s.set_met_retryable(outer_met || (outcome.is_err() && met));
        outcome
    }

    /// Creates the tables of the listed entities (`if not exists`), parents
    /// before children by their foreign keys, with their indexes and named
    /// constraints.
    pub async fn create_tables<L: EntityList>(&self) -> Result<()> {
        let statements = crate::sql::schema::create_statements(self.backend(), &L::metas())?;
        self.run_ddl(statements).await
    }

    /// Drops the tables of the listed entities (`if exists`), children first.
    pub async fn drop_tables<L: EntityList>(&self) -> Result<()> {
        let statements = crate::sql::schema::drop_statements(self.backend(), &L::metas())?;
        self.run_ddl(statements).await
    }

    /// Runs sqlx migrations (`sqlx::migrate!("./migrations")`) on this
    /// database. persist's [`Db::create_tables`] suits prototypes and tests;
    /// versioned migrations stay sqlx's, and the two meet here.
    pub async fn migrate(&self, migrator: &sqlx::migrate::Migrator) -> Result<()> {
        // The migrator takes its connection from the pool itself.
        self.inner.conns.release_parked();
        crate::backend::dispatch_pool!(&self.inner.conns.pool, |p| migrator.run(p).await)
            .map_err(|e| Error::Database(e.into()))
    }

    /// Closes the pool: new sessions get no connection, and the call waits
    /// for sessions to give theirs back — at most
    /// [`DbBuilder::close_timeout`] (10 s by default); past it, a warning
    /// names how many are still out and `close` returns (their connections
    /// close when those sessions end).
    pub async fn close(&self) {
        if tokio::time::timeout(self.inner.close_timeout, self.inner.conns.close())
            .await
            .is_err()
        {
            tracing::warn!(
                in_use = self.connections_in_use(),
                "Db::close gave up waiting for sessions to give their connections back"
            );
        }
        // A connection parked while the pool was closing goes back now.
        self.inner.conns.release_parked();
    }

    /// Connections of the pool that are out (held by sessions, parked, or
    /// on their way back): the pool's size less its idle connections.
    /// A test can check that sessions gave theirs back.
    pub fn connections_in_use(&self) -> u32 {
        self.inner.conns.in_use()
    }

    /// Connections handed to sessions since the `Db` opened, parked or from
    /// the pool: a session takes one with its first statement, so a test
    /// can check that a request which never touched the database took none.
    pub fn connections_acquired(&self) -> u64 {
        self.inner.conns.acquired()
    }

    /// Connections kept for the next session (given back within the last
    /// few seconds, outside any transaction).
    pub fn connections_parked(&self) -> usize {
        self.inner.conns.parked_len()
    }

    async fn run_ddl(&self, statements: Vec<String>) -> Result<()> {
        let mut conn = self.inner.acquire().await?;
        // PostgreSQL answers every `IF NOT EXISTS` on an existing table or
        // index with a NOTICE, which sqlx logs: one line per table and
        // index at each start. Raised to warnings for the DDL's own
        // statements (a connection cut before the `RESET` keeps only
        // quieter notices).
        let quiet = self.backend() == Backend::Postgres;
        if quiet {
            ddl_statement(&mut conn, "SET client_min_messages TO warning").await?;
        }
        let mut outcome = Ok(());
        for sql in statements {
            self.inner.count_statement();
            outcome = ddl_statement(&mut conn, &sql).await;
            if outcome.is_err() {
                break;
            }
        }
        if quiet {
            let reset = ddl_statement(&mut conn, "RESET client_min_messages").await;
            outcome = outcome.and(reset);
        }
        outcome
    }
}

/// Runs one schema statement on `conn`, traced like every statement. DDL
/// errors name no constraint, so they are not mapped as writes' are.
async fn ddl_statement(conn: &mut crate::backend::AnyConn, sql: &str) -> Result<()> {
    let sql: Arc<str> = Arc::from(sql);
    let span = tracing::debug_span!("persist.statement", sql = %sql);
    let done = crate::backend::dispatch!(conn, |c, DB| {
        <DB as crate::backend::Driver>::execute(c, sql, Default::default())
            .instrument(span)
            .await
    });
    done.map(drop).map_err(|e| match e {
        crate::backend::StmtError::Db(e) => Error::Database(e),
        crate::backend::StmtError::Row(e) => e,
    })
}

impl Session {
    /// The database this session belongs to (a cheap handle: `Db` is an
    /// `Arc`).
    pub fn db(&self) -> Db {
        Db {
            inner: self.inner.db.clone(),
        }
    }
}
