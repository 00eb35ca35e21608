//! [`Session`]: the unit of work. One connection, its transactions, the
//! identity map and the registered changes.

mod cached;
mod exec;
mod ops;
mod options;
mod savepoint;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};

use sqlx::SqlSafeStr;
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::Instrument;

use crate::backend::{AnyConn, Backend, Driver, StmtError, dispatch};
use crate::db::Db;
use crate::entity::{Entity, EntityMeta};
use crate::error::{Error, Result};
use crate::uow::Uow;

pub(crate) use exec::{bind_key, count_of, fetch_entities, fetch_entities_merged, insert_rows};
pub use ops::AutoflushGuard;
pub use options::{Isolation, SessionOptions};
pub use savepoint::Savepoint;

/// A unit of work: a session on one pooled connection, held for the
/// session's life, with its transaction, identity map and registered
/// changes.
///
/// `Session` is a cheap handle (`Clone + Send + Sync`); clones share
/// everything, and calls from several tasks run one at a time.
///
/// - Reads (`find`, `query`, …) and `insert` / `insert_many` / `upsert` run
///   at once. `add`, `update` and `delete` only *register* a change; the
///   [flush](Session::flush) writes registered changes in one ordered,
///   batched pass: explicitly, before a read of a table with pending changes
///   (a session reads its own writes), and at [`commit`](Session::commit).
///   Their errors (`Stale`, constraint violations) surface there.
/// - The identity map (on by default) makes each row load once: a `find` of
///   a key the session already holds runs no SQL, and query rows the session
///   holds come back in their in-session state.
/// - A transaction begins with the first statement and ends with `commit`
///   or `rollback`; the session can then be used again, in a new
///   transaction. Dropping the last handle rolls back an open transaction.
/// - A failed flush rolls the transaction back at once (nothing of it stays
///   in the database) and the session answers [`Error::SessionFailed`] until
///   [`rollback`](Session::rollback) is called.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("backend", &self.backend())
            .field("statements", &self.statement_count())
            .field("failed", &self.inner.failed.load(Ordering::Relaxed))
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    state: Arc<Mutex<State>>,
    uow: SyncMutex<Uow>,
    /// Open savepoints (index 0 = depth 2): each one's id and the
    /// unit-of-work snapshot it took.
    savepoints: SyncMutex<Vec<(u64, Uow)>>,
    failed: AtomicBool,
    pub(crate) streaming: AtomicBool,
    autoflush: AtomicBool,
    statements: AtomicU64,
    options: SessionOptions,
    tx_cache: SyncMutex<cached::TxCache>,
}

/// The session's connection, locked for one operation.
pub(crate) struct State {
    /// The connection of the open transaction; `None` while the session is
    /// idle (between transactions), so an idle session holds no connection.
    pub(crate) tx: Option<AnyConn>,
}

impl Drop for State {
    fn drop(&mut self) {
        release(self.tx.take());
    }
}

/// Returns a connection to the pool; an open transaction on it is rolled
/// back first (queued, and run when the pool tests the connection).
fn release(conn: Option<AnyConn>) {
    if let Some(mut conn) = conn {
        dispatch!(&mut conn, |c, DB| {
            let c = DB::sqlx(c);
            if <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) > 0 {
                <DB as sqlx::Database>::TransactionManager::start_rollback(c);
            }
        });
    }
}

/// Gives a connection a session is done with back to its `Db`, which keeps
/// it for the next session when its transaction has ended.
fn give_back(db: &Db, conn: Option<AnyConn>) {
    let Some(mut conn) = conn else {
        return;
    };
    let idle = dispatch!(&mut conn, |c, DB| {
        // Releases SQLite's direct path too.
        let c = DB::sqlx(c);
        <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) == 0
    });
    if idle {
        db.park(conn);
    } else {
        release(Some(conn));
    }
}

/// The locked session state, with the connection in a transaction.
pub(crate) type Guard = OwnedMutexGuard<State>;

impl Session {
    pub(crate) async fn open(db: Db, options: SessionOptions) -> Result<Session> {
        let identity_map = options.identity_map.unwrap_or(db.inner.identity_map);
        let limit = options.identity_map_limit.or(db.inner.identity_map_limit);
        let s = Session {
            inner: Arc::new(Inner {
                db,
                state: Arc::new(Mutex::new(State { tx: None })),
                uow: SyncMutex::new(Uow::new(identity_map, limit)),
                savepoints: SyncMutex::new(Vec::new()),
                failed: AtomicBool::new(false),
                streaming: AtomicBool::new(false),
                autoflush: AtomicBool::new(true),
                statements: AtomicU64::new(0),
                options,
                tx_cache: SyncMutex::new(cached::TxCache::default()),
            }),
        };
        // The connection is taken and the transaction begun with the first
        // statement: an idle session holds no connection and no lock
        // (SQLite's `BEGIN IMMEDIATE` takes the write lock).
        Ok(s)
    }

    /// The backend of this session's database.
    pub fn backend(&self) -> Backend {
        self.inner.db.backend()
    }

    /// The database this session belongs to.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Statements this session has sent (queries and writes; not `BEGIN`,
    /// `COMMIT`, `ROLLBACK` or savepoint statements).
    pub fn statement_count(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Whether a failed flush left the session waiting for
    /// [`rollback`](Session::rollback).
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    pub(crate) fn uow(&self) -> MutexGuard<'_, Uow> {
        self.inner.uow.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.failed.load(Ordering::Acquire) {
            return Err(Error::SessionFailed);
        }
        if self.inner.streaming.load(Ordering::Acquire) {
            return Err(Error::SessionBusy);
        }
        Ok(())
    }

    /// Locks the connection for one operation, in a transaction, without
    /// flushing.
    pub(crate) async fn lock_unflushed(&self) -> Result<Guard> {
        self.check_open()?;
        let mut guard = self.inner.state.clone().lock_owned().await;
        // A stream or a failure may have happened while this call waited.
        self.check_open()?;
        self.ensure_transaction(&mut guard).await?;
        Ok(guard)
    }

    /// Locks the connection for one operation after writing every
    /// registered change.
    pub(crate) async fn lock(&self) -> Result<Guard> {
        let mut guard = self.lock_unflushed().await?;
        self.flush_locked(&mut guard).await?;
        Ok(guard)
    }

    /// Locks the connection to read `table`: registered changes are written
    /// first when that table has any (unless autoflush is off).
    pub(crate) async fn lock_for_read(&self, table: &str) -> Result<Guard> {
        let mut guard = self.lock_unflushed().await?;
        let needed =
            self.inner.autoflush.load(Ordering::Acquire) && self.uow().has_pending_in(table);
        if needed {
            self.flush_locked(&mut guard).await?;
        }
        Ok(guard)
    }

    /// Locks the connection for a statement that may read any table (raw
    /// SQL): everything registered is written first, unless autoflush is off.
    pub(crate) async fn lock_for_any_read(&self) -> Result<Guard> {
        if self.inner.autoflush.load(Ordering::Acquire) {
            self.lock().await
        } else {
            self.lock_unflushed().await
        }
    }

    async fn ensure_transaction(&self, guard: &mut Guard) -> Result<()> {
        if guard.tx.is_none() {
            guard.tx = Some(self.inner.db.acquire().await?);
        }
        let conn = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        let options = &self.inner.options;
        let backend = self.backend();
        dispatch!(conn, |c, DB| {
            if DB::transaction_depth(c) == 0 {
                let c = DB::sqlx(c);
                // The cache epoch is taken before the snapshot can exist.
                self.cache_begin().await;
                if let Some(set) = options.mysql_isolation_statement(backend) {
                    sqlx::Executor::execute(&mut *c, sqlx::AssertSqlSafe(set)).await?;
                }
                let begin = options
                    .begin_statement(backend)
                    .map(|s| sqlx::AssertSqlSafe(s).into_sql_str());
                <DB as sqlx::Database>::TransactionManager::begin(c, begin).await?;
            }
        });
        Ok(())
    }

    /// Writes every registered change now.
    pub async fn flush(&self) -> Result<()> {
        self.lock().await.map(drop)
    }

    pub(crate) async fn flush_locked(&self, guard: &mut Guard) -> Result<()> {
        self.flush_then(guard, true).await
    }

    /// Writes every registered change; with `remember`, the written rows
    /// become clean entries of the unit of work. A commit, which clears the
    /// unit of work next, skips that (for 10,000 added rows it was a tenth
    /// of the commit).
    async fn flush_then(&self, guard: &mut Guard, remember: bool) -> Result<()> {
        let plans = {
            let uow = self.uow();
            if !uow.has_pending() {
                return Ok(());
            }
            crate::flush::plans(&uow)
        };
        let mut plans = match plans {
            Ok(p) => p,
            Err(e) => {
                self.fail(guard).await;
                return Err(e);
            }
        };
        let conn = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        let mut outcome = Ok(());
        for p in plans.iter_mut() {
            outcome = p.run_inserts(self, conn).await;
            if outcome.is_err() {
                break;
            }
            outcome = p.run_updates(self, conn).await;
            if outcome.is_err() {
                break;
            }
        }
        if outcome.is_ok() {
            for p in plans.iter_mut().rev() {
                outcome = p.run_deletes(self, conn).await;
                if outcome.is_err() {
                    break;
                }
            }
        }
        if let Err(e) = outcome {
            self.fail(guard).await;
            return Err(e);
        }
        let mut uow = self.uow();
        for p in &plans {
            let (keys, deleted) = p.written_keys();
            self.cache_wrote(p.meta(), keys, deleted);
            if self.caches(p.meta()) {
                self.cache_inserted(p.meta(), p.inserted_rows());
            }
        }
        if !remember {
            return Ok(());
        }
        for p in plans {
            let meta = p.meta();
            let deleted = if meta.cascades().next().is_some() {
                p.deleted_keys()
            } else {
                Vec::new()
            };
            p.apply(&mut uow);
            uow.cascade_deleted(meta, deleted);
        }
        Ok(())
    }

    /// Marks the session failed and rolls its transaction back now, so no
    /// lock outlives the failure.
    async fn fail(&self, guard: &mut Guard) {
        self.inner.failed.store(true, Ordering::Release);
        let _ = self.rollback_connection(guard).await;
        self.cache_discard();
        self.savepoint_stack().clear();
    }

    /// Rolls the transaction back and returns the connection to the pool.
    async fn rollback_connection(&self, guard: &mut Guard) -> Result<()> {
        let Some(conn) = guard.tx.as_mut() else {
            return Ok(());
        };
        let outcome: Result<()> = dispatch!(conn, |c, DB| {
            let c = DB::sqlx(c);
            let mut r = Ok(());
            while <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) > 0 {
                if let Err(e) = <DB as sqlx::Database>::TransactionManager::rollback(c).await {
                    r = Err(e.into());
                    break;
                }
            }
            r
        });
        // On failure the dropped `State`-less connection queues its rollback.
        give_back(&self.inner.db, guard.tx.take());
        outcome
    }

    /// Writes registered changes and commits. The identity map is cleared;
    /// the session can be used again, in a new transaction.
    ///
    /// A failed flush rolls back and answers its error; further calls then
    /// answer [`Error::SessionFailed`] until [`rollback`](Session::rollback).
    pub async fn commit(&self) -> Result<()> {
        self.check_open()?;
        let idle = {
            let guard = self.inner.state.clone().lock_owned().await;
            guard.tx.is_none() && !self.uow().has_pending()
        };
        if idle {
            // Nothing began and nothing is registered: no BEGIN/COMMIT pair.
            self.uow().clear();
            return Ok(());
        }
        let mut guard = self.lock_unflushed().await?;
        // The unit of work is cleared below, whatever the outcome.
        self.flush_then(&mut guard, false).await?;
        let conn = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        let backend = self.backend();
        let outcome: Result<()> = dispatch!(conn, |c, DB| {
            let c = DB::sqlx(c);
            let mut r = Ok(());
            while <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) > 0 {
                if let Err(e) = <DB as sqlx::Database>::TransactionManager::commit(c).await {
                    r = Err(crate::errmap::map(backend, None, e));
                    break;
                }
            }
            r
        });
        if outcome.is_err() {
            let _ = self.rollback_connection(&mut guard).await;
            self.cache_discard();
        } else {
            // The cache learns of the changes before `commit()` returns.
            self.cache_after_commit().await;
        }
        give_back(&self.inner.db, guard.tx.take());
        self.uow().clear();
        self.savepoint_stack().clear();
        outcome
    }

    /// Rolls back the transaction and forgets registered changes and the
    /// identity map. Clears a failed state; the session can be used again.
    pub async fn rollback(&self) -> Result<()> {
        if self.inner.streaming.load(Ordering::Acquire) {
            return Err(Error::SessionBusy);
        }
        let mut guard = self.inner.state.clone().lock_owned().await;
        let outcome = self.rollback_connection(&mut guard).await;
        self.cache_discard();
        self.uow().clear();
        self.savepoint_stack().clear();
        self.inner.failed.store(false, Ordering::Release);
        outcome
    }

    fn savepoint_stack(&self) -> MutexGuard<'_, Vec<(u64, Uow)>> {
        self.inner
            .savepoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one statement future: counts it, traces it, maps its error.
    pub(crate) async fn run<T>(
        &self,
        meta: Option<&'static EntityMeta>,
        sql: &str,
        fut: impl Future<Output = Result<T, StmtError>>,
    ) -> Result<T> {
        self.count_statement();
        let span = tracing::debug_span!(
            "persist.statement",
            sql = sql,
            table = meta.map(|m| m.table)
        );
        fut.instrument(span).await.map_err(|e| match e {
            StmtError::Db(e) => crate::errmap::map(self.backend(), meta, e),
            StmtError::Row(e) => e,
        })
    }

    /// Counts a statement whose rows are streamed (traced as an event: the
    /// stream outlives any span around its start).
    pub(crate) fn count_stream_statement(&self, sql: &str) {
        self.count_statement();
        tracing::debug!(sql = sql, "persist.statement (stream)");
    }

    /// Counts one statement for the session, its `Db` and its transaction
    /// (the query cache asks whether a query is its transaction's first).
    fn count_statement(&self) {
        self.inner.statements.fetch_add(1, Ordering::Relaxed);
        self.inner.db.count_statement();
        self.count_tx_statement();
    }

    /// Runs a write now; a failure marks the session failed and rolls back.
    pub(crate) async fn write<T>(&self, guard: &mut Guard, out: Result<T>) -> Result<T> {
        if out.is_err() {
            self.fail(guard).await;
        }
        out
    }

    /// Called after a query-based (bulk) update or delete of `E`'s table ran:
    /// the session forgets what it holds of `E`, since any of it may have
    /// changed. (Registered changes were flushed before the statement.)
    pub(crate) fn after_bulk_write<E: Entity>(&self) {
        self.cache_wrote_region(E::META);
        self.uow().forget::<E>();
    }
}
