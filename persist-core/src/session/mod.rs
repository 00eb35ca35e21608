//! [`Session`]: the unit of work. One connection, its transactions, the
//! identity map and the registered changes.

pub(crate) mod audit;
mod changes;
mod commit_fence;
pub(crate) mod exec;
pub(crate) mod flush;
mod ops;
mod options;
mod savepoint;
pub(crate) mod scope;
pub(crate) mod shared;
pub(crate) mod soft_delete;
mod sqlite_writers;
pub(crate) mod tx_cache;
pub(crate) mod uow;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};

use sqlx::SqlSafeStr;
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::Instrument;

use crate::backend::{AnyConn, Driver, StmtError, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{Entity, EntityMeta};
use crate::session::shared::Shared;
use crate::session::uow::Uow;
use crate::sql::Backend;

pub use changes::{Change, ChangeSet, Flush, Interceptor, Origin};
pub(crate) use exec::{bind_key, count_of, fetch_entities, fetch_entities_merged, insert_rows};
pub use ops::AutoflushGuard;
pub use options::{Isolation, SessionOptions};
pub use savepoint::Savepoint;
pub(crate) use sqlite_writers::Runner;

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
///   transaction. Dropping the last handle rolls back an open transaction,
///   every savepoint level of it, before another session can get the
///   connection.
/// - Cancel safety: a future of any session operation may be dropped at any
///   await point. It never writes twice, never leaves half a flush
///   committed and never hands an open transaction on; the connection it
///   was cut on is closed. A session whose transaction had written then
///   answers [`Error::SessionFailed`] until [`rollback`](Session::rollback);
///   one that had only read goes on in a new transaction. See the README's
///   "Guarantees under faults".
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
    pub(crate) db: Arc<Shared>,
    slot: Arc<Mutex<ConnSlot>>,
    uow: SyncMutex<Uow>,
    /// Open savepoints (index 0 = depth 2): each one's id and the
    /// unit-of-work snapshot and cache mark it took.
    savepoints: SyncMutex<Vec<SavepointMark>>,
    /// What the open transaction wrote, for the after-commit and
    /// after-rollback notifications (kept only when an interceptor is
    /// registered or an entity has hooks).
    changes: SyncMutex<changes::ChangeSet>,
    failed: AtomicBool,
    pub(crate) streaming: AtomicBool,
    autoflush: AtomicBool,
    statements: AtomicU64,
    options: SessionOptions,
    tx_cache: SyncMutex<tx_cache::TxCache>,
    /// Rows the shared cache answered before the transaction began, to
    /// check once it has.
    unchecked: SyncMutex<Vec<tx_cache::Unchecked>>,
    /// Operations under way on the connection (see [`Session::step`]): above
    /// zero while no operation runs, one was cut (its future dropped) in the
    /// middle, and the connection's state is unknown.
    pending: Arc<AtomicUsize>,
    /// Whether the open transaction sent a write (a cut then fails the
    /// session; a transaction that only read just loses its connection).
    wrote: AtomicBool,
    /// Whether the session answered a retryable error (see
    /// [`Error::is_retryable`]) since it opened: [`Db::transaction`] reruns
    /// its closure when it fails after one, whatever error type the closure
    /// turned it into.
    ///
    /// [`Db::transaction`]: crate::db::Db::transaction
    met_retryable: AtomicBool,
    /// Tells this session from others (SQLite's write-lock claims).
    id: u64,
    /// The history revision of the open transaction, its actor and info.
    audit: SyncMutex<audit::AuditState>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.release_sqlite_write();
    }
}

/// The slot of the session's connection, locked for one operation.
pub(crate) struct ConnSlot {
    /// The connection of the open transaction; `None` while the session is
    /// idle (between transactions), so an idle session holds no connection.
    pub(crate) conn: Option<AnyConn>,
    /// The session's count of operations under way (see `Inner::pending`).
    pending: Arc<AtomicUsize>,
    /// SQLite in memory: a connection is never discarded.
    in_memory: bool,
}

impl Drop for ConnSlot {
    /// The last handle of the session is gone: its connection goes to the
    /// connection layer, which rolls back every level of an open
    /// transaction (or closes the connection) before anyone else gets it.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let cut = self.pending.load(Ordering::Acquire) > 0;
            crate::conn::release_unfinished(conn, cut, self.in_memory);
        }
    }
}

/// What a savepoint remembers: its id, the unit of work, the cache's mark
/// and the number of changes recorded, as they were when it was set.
pub(crate) type SavepointMark = (u64, Uow, tx_cache::CacheMark, usize);

/// Ids of sessions, unique in the process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// The locked session state, with the connection in a transaction.
pub(crate) type Guard = OwnedMutexGuard<ConnSlot>;

impl Session {
    pub(crate) async fn open(db: Arc<Shared>, options: SessionOptions) -> Result<Session> {
        let identity_map = options.identity_map.unwrap_or(db.identity_map);
        let limit = options.identity_map_limit.or(db.identity_map_limit);
        let pending = Arc::new(AtomicUsize::new(0));
        let in_memory = db.in_memory;
        let s = Session {
            inner: Arc::new(Inner {
                db,
                slot: Arc::new(Mutex::new(ConnSlot {
                    conn: None,
                    pending: pending.clone(),
                    in_memory,
                })),
                uow: SyncMutex::new(Uow::new(identity_map, limit)),
                savepoints: SyncMutex::new(Vec::new()),
                changes: SyncMutex::new(changes::ChangeSet::default()),
                failed: AtomicBool::new(false),
                streaming: AtomicBool::new(false),
                autoflush: AtomicBool::new(true),
                statements: AtomicU64::new(0),
                options,
                tx_cache: SyncMutex::new(tx_cache::TxCache::default()),
                unchecked: SyncMutex::new(Vec::new()),
                pending,
                wrote: AtomicBool::new(false),
                met_retryable: AtomicBool::new(false),
                id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
                audit: SyncMutex::default(),
            }),
        };
        // The connection is taken and the transaction begun with the first
        // statement: an idle session holds no connection and no lock
        // (SQLite's `BEGIN IMMEDIATE` takes the write lock).
        Ok(s)
    }

    /// An id telling this session from every other of the process (for
    /// logs and tracing spans).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The backend of this session's database.
    pub fn backend(&self) -> Backend {
        self.inner.db.backend()
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
        let mut guard = self.inner.slot.clone().lock_owned().await;
        self.recover(&mut guard)?;
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
        let fresh = guard.conn.is_none();
        if fresh {
            guard.conn = Some(self.inner.db.acquire().await?);
        }
        if self.inner.options.autocommit {
            // No transaction: each statement commits by itself. The cache
            // epoch is taken before the first read, as at a `BEGIN`; rows
            // the cache answered need no common snapshot.
            if fresh {
                self.cache_begin().await;
            }
            self.unchecked().clear();
            return Ok(());
        }
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        if crate::conn::transaction_depth(conn) > 0 {
            return Ok(());
        }
        let options = &self.inner.options;
        let backend = self.backend();
        if backend == Backend::Sqlite && !options.read_only {
            self.claim_sqlite_write()?;
        }
        self.inner.wrote.store(false, Ordering::Release);
        // The cache epoch is taken before the snapshot can exist.
        self.cache_begin().await;
        let begun: Result<()> = self
            .step(async {
                dispatch!(conn, |c, DB| {
                    let c = DB::sqlx(c);
                    if let Some(set) = options.mysql_isolation_statement(backend) {
                        sqlx::Executor::execute(&mut *c, sqlx::AssertSqlSafe(set)).await?;
                    }
                    let begin = options
                        .begin_statement(backend)
                        .map(|s| sqlx::AssertSqlSafe(s).into_sql_str());
                    <DB as sqlx::Database>::TransactionManager::begin(c, begin).await?;
                });
                Ok(())
            })
            .await;
        if let Err(e) = &begun {
            self.note_error(e);
            self.release_sqlite_write();
            return begun;
        }
        if !self.unchecked().is_empty() {
            let checked = self.check_cached_reads(conn).await;
            if let Err(e) = &checked {
                self.note_error(e);
                self.fail(guard).await;
            }
            return checked;
        }
        Ok(())
    }

    /// Runs `fut`, one operation on the session's connection (a statement,
    /// a transaction command, or several statements and the bookkeeping that
    /// goes with them), counted as under way until it completes. A future
    /// dropped in the middle leaves the count up, and the next call that
    /// locks the session [recovers](Session::recover).
    pub(crate) async fn step<T>(&self, fut: impl Future<Output = T>) -> T {
        self.inner.pending.fetch_add(1, Ordering::AcqRel);
        let out = fut.await;
        self.inner.pending.fetch_sub(1, Ordering::AcqRel);
        out
    }

    /// Marks the open transaction as having sent a write. In an
    /// [autocommit](SessionOptions::autocommit) session, refused when it
    /// is read-only or the `Db` has a shared cache (which learns of writes
    /// at commit).
    pub(crate) fn will_write(&self) -> Result<()> {
        let options = &self.inner.options;
        if options.autocommit {
            if options.read_only {
                return Err(Error::Invalid(
                    "a session of autocommit reads does not write".into(),
                ));
            }
            if self.cache_layer().is_some() {
                return Err(Error::Invalid(
                    "an autocommit session does not write on a Db with a shared cache: \
                     the cache learns of writes at commit"
                        .into(),
                ));
            }
        }
        self.inner.wrote.store(true, Ordering::Release);
        Ok(())
    }

    /// Refuses, in an [autocommit](SessionOptions::autocommit) session, a
    /// write of several statements: without a transaction it would not be
    /// all or nothing.
    pub(crate) fn one_statement_only(&self, what: &str) -> Result<()> {
        if self.inner.options.autocommit {
            return Err(Error::Invalid(format!(
                "{what} needs a transaction: an autocommit session writes one statement at a time"
            )));
        }
        Ok(())
    }

    /// After an operation was cut (see [`Session::step`]), with the state
    /// locked: the connection, whose state nobody knows, is discarded (its
    /// server rolls back what it had open), and so is the cache's record of
    /// the transaction. A transaction that had sent a write is gone: the
    /// session answers [`Error::SessionFailed`] until
    /// [`rollback`](Session::rollback). One that had only read goes on in a
    /// new transaction, its registered changes intact.
    fn recover(&self, guard: &mut Guard) -> Result<()> {
        if self.inner.pending.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let wrote = self.inner.wrote.load(Ordering::Acquire);
        self.end_transaction(guard, true);
        // A cut commit may or may not have committed: nobody is told.
        self.take_changes();
        self.inner.pending.store(0, Ordering::Release);
        self.cache_discard();
        self.savepoint_stack().clear();
        if wrote {
            self.inner.failed.store(true, Ordering::Release);
            return Err(Error::SessionFailed);
        }
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
            crate::session::flush::plans(&uow)
        };
        let mut plans = match plans {
            Ok(p) => p,
            Err(e) => {
                self.fail(guard).await;
                return Err(e);
            }
        };
        self.one_statement_only("writing registered changes")?;
        self.will_write()?;
        let listened = match self.before_writing(&mut plans) {
            Ok(recorded) => recorded,
            Err(Error::Vetoed { by, source }) => return Err(Error::Vetoed { by, source }),
            Err(e) => {
                self.fail(guard).await;
                return Err(e);
            }
        };
        // One step from the first statement to the unit of work's update: a
        // flush cut between two statements wrote some rows the unit of work
        // does not know of.
        let outcome = self
            .step(async {
                let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
                for p in plans.iter_mut() {
                    p.run_inserts(self, conn).await?;
                    p.run_updates(self, conn).await?;
                    p.record_history(self, conn, audit::Stage::Written).await?;
                }
                for p in plans.iter_mut().rev() {
                    p.record_history(self, conn, audit::Stage::BeforeDeletes)
                        .await?;
                    p.run_deletes(self, conn).await?;
                    p.record_history(self, conn, audit::Stage::AfterDeletes)
                        .await?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = outcome {
            self.note_error(&e);
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
        if listened {
            // (Describing rows cannot fail once they were bound.) A commit
            // does not remember the rows: they move into the changes.
            let _ = self.written(&mut plans, !remember);
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
        self.unchecked().clear();
        let _ = self.rollback_connection(guard).await;
        self.changes_ended(false);
        self.cache_discard();
        self.savepoint_stack().clear();
    }

    /// Rolls the transaction back (every level) and gives the connection
    /// back. A rollback that fails leaves the connection in a state persist
    /// cannot vouch for: it is discarded.
    async fn rollback_connection(&self, guard: &mut Guard) -> Result<()> {
        let Some(conn) = guard.conn.as_mut() else {
            return Ok(());
        };
        let outcome: Result<()> = self
            .step(async {
                dispatch!(conn, |c, DB| {
                    let c = DB::sqlx(c);
                    while <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) > 0 {
                        <DB as sqlx::Database>::TransactionManager::rollback(c).await?;
                    }
                });
                Ok(())
            })
            .await;
        self.end_transaction(guard, outcome.is_err());
        outcome
    }

    /// The transaction is over (committed, rolled back, or — with
    /// `discard` — in a state nobody knows): the connection goes back to the
    /// connection layer and the session's claims end with it.
    fn end_transaction(&self, guard: &mut Guard, discard: bool) {
        if let Some(conn) = guard.conn.take() {
            let conns = &self.inner.db.conns;
            if discard {
                conns.release_unfinished(conn, true);
            } else {
                conns.release(conn);
            }
        }
        self.inner.wrote.store(false, Ordering::Release);
        self.unchecked().clear();
        self.release_sqlite_write();
        *self.audit_state() = audit::AuditState::default();
    }

    /// Writes registered changes and commits. The identity map is cleared;
    /// the session can be used again, in a new transaction.
    ///
    /// A failed flush rolls back and answers its error; further calls then
    /// answer [`Error::SessionFailed`] until [`rollback`](Session::rollback).
    ///
    /// Cancel safety: a `commit()` whose future is dropped before it
    /// completes never writes twice and never leaves half a flush committed.
    /// Cut before `COMMIT` was sent, nothing of the transaction is
    /// committed; cut while `COMMIT` was on its way, its outcome is unknown
    /// (as with any database client) — the connection is discarded and the
    /// shared cache is invalidated for everything the transaction wrote, as
    /// if it committed. Either way the session then answers
    /// [`Error::SessionFailed`] until [`rollback`](Session::rollback).
    pub async fn commit(&self) -> Result<()> {
        self.check_open()?;
        let mut guard = self.inner.slot.clone().lock_owned().await;
        self.recover(&mut guard)?;
        self.check_open()?;
        // Several rows answered by the cache and nothing else: they are
        // checked in a transaction of their own, so that together they are
        // what one snapshot of the database shows. (One row alone is.)
        let unchecked = self.unchecked().len();
        // (Autocommit sessions hold no snapshot: cache hits are not checked.)
        let checks = unchecked >= 2 && !self.inner.options.autocommit;
        if guard.conn.is_none() && !self.uow().has_pending() && !checks {
            // Nothing began and nothing is registered: no BEGIN/COMMIT pair.
            self.unchecked().clear();
            self.uow().clear();
            return Ok(());
        }
        self.ensure_transaction(&mut guard).await?;
        // The unit of work is cleared below, whatever the outcome.
        self.flush_then(&mut guard, false).await?;
        self.complete_revision(&mut guard).await?;
        let backend = self.backend();
        // From here until the cache has heard of the commit, a cut must not
        // leave the cache serving what the transaction replaced.
        let fence = self.cache_commit_fence();
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let outcome: Result<()> = self
            .step(async {
                dispatch!(conn, |c, DB| {
                    let c = DB::sqlx(c);
                    while <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) > 0 {
                        <DB as sqlx::Database>::TransactionManager::commit(c)
                            .await
                            .map_err(|e| crate::backend::errmap::map(backend, None, e))?;
                    }
                    Ok(())
                })
            })
            .await;
        if let Err(e) = &outcome {
            self.note_error(e);
            let _ = self.rollback_connection(&mut guard).await;
            self.cache_discard();
            self.changes_ended(false);
        } else {
            // The cache learns of the changes before `commit()` returns.
            self.step(self.cache_after_commit(fence.changes())).await;
            self.end_transaction(&mut guard, false);
            self.changes_ended(true);
        }
        fence.disarm();
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
        let mut guard = self.inner.slot.clone().lock_owned().await;
        // A cut operation's connection is discarded: nothing more to undo.
        let _ = self.recover(&mut guard);
        let outcome = self.rollback_connection(&mut guard).await;
        self.changes_ended(false);
        self.cache_discard();
        self.uow().clear();
        self.savepoint_stack().clear();
        self.inner.failed.store(false, Ordering::Release);
        outcome
    }

    fn savepoint_stack(&self) -> MutexGuard<'_, Vec<SavepointMark>> {
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
        self.step(fut.instrument(span)).await.map_err(|e| {
            let e = match e {
                StmtError::Db(e) => crate::backend::errmap::map(self.backend(), meta, e),
                StmtError::Row(e) => e,
            };
            self.note_error(&e);
            e
        })
    }

    /// Remembers that the session answered a retryable error.
    fn note_error(&self, e: &Error) {
        if e.is_retryable() {
            self.inner.met_retryable.store(true, Ordering::Release);
        }
    }

    /// Whether one of this session's calls answered a retryable error
    /// ([`Error::is_retryable`]) since it opened: a layer that runs work in
    /// the session learns that the attempt may succeed if run again, even
    /// when the code in between turned the error into its own type.
    pub fn met_retryable_error(&self) -> bool {
        self.inner.met_retryable.load(Ordering::Acquire)
    }

    /// Forgets (and answers) whether the session met a retryable error, so
    /// that a nested attempt can tell its own.
    pub(crate) fn take_met_retryable(&self) -> bool {
        self.inner.met_retryable.swap(false, Ordering::AcqRel)
    }

    /// Sets whether the session met a retryable error (after a nested
    /// attempt: what the outer level should know).
    pub(crate) fn set_met_retryable(&self, met: bool) {
        self.inner.met_retryable.store(met, Ordering::Release);
    }

    /// Whether this session works on `db`.
    pub(crate) fn is_of(&self, db: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.inner.db, db)
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

    /// Passes on the outcome of a write that ran now; a failure marks the
    /// session failed and rolls back.
    pub(crate) async fn fail_on_error<T>(&self, guard: &mut Guard, out: Result<T>) -> Result<T> {
        // In autocommit no transaction is open: a failed statement
        // committed nothing and left nothing to roll back.
        if out.is_err() && !self.inner.options.autocommit {
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
