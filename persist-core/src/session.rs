//! [`Session`]: one transaction on one connection, and the operations on it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};

use futures_core::future::BoxFuture;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::Instrument;

use crate::backend::{AnyPool, AnyTx, Backend, Done, Driver, dispatch};
use crate::db::Db;
use crate::entity::{Entity, EntityMeta, Key};
use crate::error::{Error, Result};
use crate::query::{Query, RawQuery};
use crate::repo::Repo;
use crate::sql::{self, Shape};
use crate::value::RowReader;

/// A unit of work: one database transaction on one connection, held for the
/// session's life.
///
/// `Session` is a cheap handle (`Clone + Send + Sync`); clones share the
/// transaction. Calls from several tasks on one session run one at a time.
/// [`commit`](Session::commit) or [`rollback`](Session::rollback) ends it;
/// dropping the last handle of an open session rolls it back.
///
/// Reads (`find`, `query`, …) and `insert` run at once. `add`, `update` and
/// `delete` only register the change; registered changes are written, in
/// registration order, before the session's next statement and at commit.
/// Their errors (`Stale`, constraint violations) surface there.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("backend", &self.inner.db.backend())
            .field("statements", &self.statement_count())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    state: Arc<Mutex<State>>,
    pending: SyncMutex<Vec<Box<dyn PendingOp>>>,
    closed: AtomicBool,
    failed: AtomicBool,
    pub(crate) streaming: AtomicBool,
    statements: AtomicU64,
}

pub(crate) struct State {
    pub(crate) tx: Option<AnyTx>,
}

/// The locked session state, with the open transaction.
pub(crate) type Guard = OwnedMutexGuard<State>;

impl Session {
    pub(crate) async fn begin(db: Db) -> Result<Session> {
        let tx = match &db.inner.pool {
            #[cfg(feature = "sqlite")]
            AnyPool::Sqlite(p) => AnyTx::Sqlite(p.begin().await?),
            #[cfg(feature = "postgres")]
            AnyPool::Postgres(p) => AnyTx::Postgres(p.begin().await?),
            #[cfg(feature = "mysql")]
            AnyPool::MySql(p) => AnyTx::MySql(p.begin().await?),
        };
        Ok(Session {
            inner: Arc::new(Inner {
                db,
                state: Arc::new(Mutex::new(State { tx: Some(tx) })),
                pending: SyncMutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                failed: AtomicBool::new(false),
                streaming: AtomicBool::new(false),
                statements: AtomicU64::new(0),
            }),
        })
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
    /// `COMMIT` or `ROLLBACK`).
    pub fn statement_count(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Whether [`commit`](Session::commit) or [`rollback`](Session::rollback) ended this session.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::SessionClosed);
        }
        if self.inner.failed.load(Ordering::Acquire) {
            return Err(Error::SessionFailed);
        }
        if self.inner.streaming.load(Ordering::Acquire) {
            return Err(Error::SessionBusy);
        }
        Ok(())
    }

    /// Locks the session for one operation, after writing registered changes.
    pub(crate) async fn lock(&self) -> Result<Guard> {
        self.check_open()?;
        let mut guard = self.inner.state.clone().lock_owned().await;
        // A stream or commit may have finished while this call waited.
        self.check_open()?;
        if guard.tx.is_none() {
            return Err(Error::SessionClosed);
        }
        self.flush_locked(&mut guard).await?;
        Ok(guard)
    }

    fn register(&self, op: Box<dyn PendingOp>) -> Result<()> {
        self.check_open()?;
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op);
        Ok(())
    }

    /// Writes every registered change now, in registration order.
    pub async fn flush(&self) -> Result<()> {
        self.lock().await.map(drop)
    }

    async fn flush_locked(&self, guard: &mut Guard) -> Result<()> {
        let ops =
            std::mem::take(&mut *self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for op in ops {
            let tx = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
            if let Err(e) = op.run(self, tx).await {
                self.fail();
                return Err(e);
            }
        }
        Ok(())
    }

    fn fail(&self) {
        self.inner.failed.store(true, Ordering::Release);
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Writes registered changes and commits the transaction. The session is
    /// closed afterwards.
    ///
    /// If writing the registered changes fails, the transaction is rolled
    /// back (nothing of it stays in the database) and the error returned;
    /// the session is closed either way.
    pub async fn commit(&self) -> Result<()> {
        let mut guard = match self.lock().await {
            Ok(g) => g,
            Err(e @ (Error::SessionBusy | Error::SessionClosed)) => return Err(e),
            Err(e) => {
                // A failed commit must not leave its transaction (and its
                // locks) open until the last handle is dropped.
                let _ = self.rollback().await;
                return Err(e);
            }
        };
        let tx = guard.tx.take().ok_or(Error::SessionClosed)?;
        self.inner.closed.store(true, Ordering::Release);
        match tx {
            #[cfg(feature = "sqlite")]
            AnyTx::Sqlite(t) => t.commit().await?,
            #[cfg(feature = "postgres")]
            AnyTx::Postgres(t) => t.commit().await?,
            #[cfg(feature = "mysql")]
            AnyTx::MySql(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls the transaction back, discarding registered changes. Allowed
    /// after a failure; the session is closed afterwards.
    pub async fn rollback(&self) -> Result<()> {
        if self.inner.streaming.load(Ordering::Acquire) {
            return Err(Error::SessionBusy);
        }
        let mut guard = self.inner.state.clone().lock_owned().await;
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.inner.closed.store(true, Ordering::Release);
        let Some(tx) = guard.tx.take() else {
            return Ok(());
        };
        match tx {
            #[cfg(feature = "sqlite")]
            AnyTx::Sqlite(t) => t.rollback().await?,
            #[cfg(feature = "postgres")]
            AnyTx::Postgres(t) => t.rollback().await?,
            #[cfg(feature = "mysql")]
            AnyTx::MySql(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// Runs one statement future: counts it, traces it, maps its error.
    pub(crate) async fn run<T>(
        &self,
        meta: Option<&'static EntityMeta>,
        sql: &str,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T> {
        self.inner.statements.fetch_add(1, Ordering::Relaxed);
        self.inner.db.count_statement();
        let span = tracing::debug_span!(
            "persist.statement",
            sql = sql,
            table = meta.map(|m| m.table)
        );
        fut.instrument(span)
            .await
            .map_err(|e| crate::errmap::map(self.backend(), meta, e))
    }

    /// Counts a statement whose rows are streamed (traced as an event: the
    /// stream outlives any span around its start).
    pub(crate) fn count_stream_statement(&self, sql: &str) {
        self.inner.statements.fetch_add(1, Ordering::Relaxed);
        self.inner.db.count_statement();
        tracing::debug!(sql = sql, "persist.statement (stream)");
    }

    /// Runs a write now; a failure marks the session failed.
    async fn write<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let out = fut.await;
        if out.is_err() {
            self.fail();
        }
        out
    }

    /// Called after a query-based (bulk) update or delete of `E`'s table ran:
    /// the session forgets what it holds of `E`, since any of it may have
    /// changed.
    pub(crate) fn after_bulk_write<E: Entity>(&self) {}

    // ----- reads -------------------------------------------------------------

    /// The row with primary key `key`, if any. A composite key is a tuple:
    /// `s.find::<OrderLine>(&(order_id, line_no))`.
    pub async fn find<E: Entity>(&self, key: &E::Key) -> Result<Option<E>> {
        let mut guard = self.lock().await?;
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::FindByKey, || sql::find_by_key(b, E::META));
        let tx = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        dispatch!(tx, |c, DB| {
            let mut args = <DB as sqlx::Database>::Arguments::default();
            bind_key::<E, _>(key, &mut args)?;
            let row = self
                .run(
                    Some(E::META),
                    &sql,
                    DB::fetch_optional(c, sql.clone(), args),
                )
                .await?;
            row.map(|r| E::decode_row(&r, 0)).transpose()
        })
    }

    /// The rows with the given keys, in the order of `keys` (missing keys are
    /// skipped, duplicates returned once). One statement per chunk of keys
    /// under the bind limit.
    pub async fn find_many<E: Entity>(&self, keys: &[E::Key]) -> Result<Vec<E>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let chunk = (self.backend().max_binds() / E::Key::ARITY).clamp(1, 10_000);
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        for part in keys.chunks(chunk) {
            for row in self.query::<E>().key_in(part).all().await? {
                found.insert(row.key(), row);
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for k in keys {
            if let Some(row) = found.remove(k) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Every row of the table, in key order.
    pub async fn all<E: Entity>(&self) -> Result<Vec<E>> {
        let mut guard = self.lock().await?;
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::SelectAll, || {
            let mut s = sql::select_all(b, E::META);
            s.push_str(" ORDER BY ");
            let keys: Vec<String> = E::META
                .primary_key
                .iter()
                .map(|i| b.quote(E::META.columns[*i].name))
                .collect();
            s.push_str(&keys.join(", "));
            s
        });
        fetch_entities::<E>(self, &mut guard, sql, Vec::new()).await
    }

    /// Number of rows in the table.
    pub async fn count<E: Entity>(&self) -> Result<u64> {
        let mut guard = self.lock().await?;
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::Count, || sql::count(b, E::META));
        let tx = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        dispatch!(tx, |c, DB| {
            let row = self
                .run(
                    Some(E::META),
                    &sql,
                    DB::fetch_optional(c, sql.clone(), Default::default()),
                )
                .await?;
            count_of(row.as_ref())
        })
    }

    /// Whether a row with primary key `key` exists.
    pub async fn exists<E: Entity>(&self, key: &E::Key) -> Result<bool> {
        let mut guard = self.lock().await?;
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::ExistsByKey, || sql::exists_by_key(b, E::META));
        let tx = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        dispatch!(tx, |c, DB| {
            let mut args = <DB as sqlx::Database>::Arguments::default();
            bind_key::<E, _>(key, &mut args)?;
            let row = self
                .run(
                    Some(E::META),
                    &sql,
                    DB::fetch_optional(c, sql.clone(), args),
                )
                .await?;
            Ok(row.is_some())
        })
    }

    /// A typed query on `E`'s table.
    pub fn query<E: Entity>(&self) -> Query<'_, E> {
        Query::new(self)
    }

    /// A raw SQL query whose rows decode into `E`. The statement must select
    /// `E`'s columns in field order (as `SELECT * FROM t` does on a table
    /// persist created); bind parameters with [`RawQuery::bind`].
    pub fn raw<E: Entity>(&self, sql: impl sqlx::SqlSafeStr) -> RawQuery<'_, E> {
        RawQuery::new(self, sql)
    }

    /// The generic repository of `E` on this session (the generated
    /// `E::repo(&s)` adds finders to it).
    pub fn repo<E: Entity>(&self) -> Repo<'_, E> {
        Repo::new(self)
    }

    // ----- writes ------------------------------------------------------------

    /// Inserts `value` now (after writing registered changes) and returns it
    /// as stored: with its generated key, `version` (1 if it was 0) and
    /// timestamps filled in.
    pub async fn insert<E: Entity>(&self, value: E) -> Result<E> {
        let mut out = self.insert_many(vec![value]).await?;
        out.pop().ok_or(Error::NotFound)
    }

    /// Inserts all `values` now in multi-row `INSERT`s chunked under the bind
    /// limit, and returns them with generated keys (PostgreSQL and SQLite:
    /// `RETURNING`; MySQL: `LAST_INSERT_ID()` plus consecutive ids).
    pub async fn insert_many<E: Entity>(&self, values: Vec<E>) -> Result<Vec<E>> {
        let mut values = values;
        prepare_insert(&mut values);
        let mut guard = self.lock().await?;
        let tx = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        self.write(insert_rows(self, tx, &mut values)).await?;
        Ok(values)
    }

    /// Registers `value` for insertion at the next flush. Use it when the key
    /// is known (or not needed); [`Session::insert`] returns generated keys.
    pub fn add<E: Entity>(&self, value: E) -> Result<()> {
        self.add_many(vec![value])
    }

    /// Registers several values for insertion at the next flush.
    pub fn add_many<E: Entity>(&self, values: Vec<E>) -> Result<()> {
        let mut values = values;
        prepare_insert(&mut values);
        self.register(Box::new(PendingInsert(values)))
    }

    /// Registers an update of `value` (all non-key columns). With a `version`
    /// field, the update checks the version `value` has now and `value` gets
    /// the bumped version at once; `updated_at` is set to now. A version
    /// mismatch at flush is [`Error::Stale`].
    pub fn update<E: Entity>(&self, value: &mut E) -> Result<()> {
        self.check_open()?;
        let expected = value.version();
        if let Some(v) = expected {
            value.set_version(v + 1);
        }
        value.stamp_updated(crate::value::truncate_micros(chrono::Utc::now()));
        self.register(Box::new(PendingUpdate {
            value: value.clone(),
            expected,
        }))
    }

    /// Registers a delete of `value`'s row (checking its version, if any).
    pub fn delete<E: Entity>(&self, value: &E) -> Result<()> {
        self.register(Box::new(PendingDelete::<E> {
            key: value.key(),
            expected: value.version(),
        }))
    }

    /// Registers a delete of the row with `key`, without a version check.
    pub fn delete_by_key<E: Entity>(&self, key: &E::Key) -> Result<()> {
        self.register(Box::new(PendingDelete::<E> {
            key: key.clone(),
            expected: None,
        }))
    }

    /// Inserts `value`, or updates the existing row with the same key, now.
    ///
    /// The conflict target is the primary key; for an entity with an
    /// auto-increment key it is the first `unique` field instead. On
    /// PostgreSQL and SQLite (`ON CONFLICT (target) DO UPDATE`) a conflict on
    /// any *other* unique key is an [`Error::UniqueViolation`]. On MySQL
    /// (`ON DUPLICATE KEY UPDATE`) a conflict on *any* unique key updates
    /// that row. The version is written as given, not checked.
    pub async fn upsert<E: Entity>(&self, value: E) -> Result<E> {
        let meta = E::META;
        let target: Vec<usize> = if meta.auto_increment.is_some() {
            match meta.columns.iter().position(|c| c.unique) {
                Some(i) => vec![i],
                None => {
                    return Err(Error::Invalid(format!(
                        "upsert on {} needs a unique field besides its auto-increment key",
                        meta.name
                    )));
                }
            }
        } else {
            meta.primary_key.to_vec()
        };
        let mut value = value;
        prepare_insert(std::slice::from_mut(&mut value));
        let mut guard = self.lock().await?;
        let b = self.backend();
        let sql: Arc<str> = Arc::from(sql::upsert(b, meta, &target));
        let tx = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
        let fut = async {
            dispatch!(tx, |c, DB| {
                let mut args = <DB as sqlx::Database>::Arguments::default();
                bind_insert_columns(&value, &mut args)?;
                if meta.auto_increment.is_some() && b.has_returning() {
                    let row = self
                        .run(Some(meta), &sql, DB::fetch_optional(c, sql.clone(), args))
                        .await?;
                    if let Some(row) = row {
                        let id = row
                            .i64(0)
                            .map_err(|e| Error::decode("key", e))?
                            .unwrap_or(0);
                        value.set_generated_key(id)?;
                    }
                } else {
                    let done: Done = self
                        .run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                        .await?;
                    if meta.auto_increment.is_some()
                        && let Some(id) = done.last_insert_id.filter(|id| *id > 0)
                    {
                        value.set_generated_key(id as i64)?;
                    }
                }
                Ok::<(), Error>(())
            })
        };
        self.write(fut).await?;
        Ok(value)
    }
}

/// Sets the timestamps and the initial version of rows about to be inserted.
fn prepare_insert<E: Entity>(values: &mut [E]) {
    let now = crate::value::truncate_micros(chrono::Utc::now());
    for v in values {
        v.stamp_created(now);
        if v.version() == Some(0) {
            v.set_version(1);
        }
    }
}

fn bind_key<E: Entity, B: crate::value::Binder>(key: &E::Key, b: &mut B) -> Result<()> {
    key.bind_key(b).map_err(|e| Error::Encode {
        column: E::META
            .primary_key
            .iter()
            .map(|i| E::META.columns[*i].name)
            .collect::<Vec<_>>()
            .join(", "),
        source: e,
    })
}

fn bind_insert_columns<E: Entity, B: crate::value::Binder>(value: &E, b: &mut B) -> Result<()> {
    for i in E::META.insert_columns() {
        value.bind_column(i, b)?;
    }
    Ok(())
}

/// Reads a single integer (a count, or a returned key) from the first column.
pub(crate) fn count_of<R: crate::value::RowReader>(row: Option<&R>) -> Result<u64> {
    let row = row.ok_or(Error::NotFound)?;
    let n = row
        .i64(0)
        .map_err(|e| Error::decode("count", e))?
        .unwrap_or(0);
    Ok(n.max(0) as u64)
}

/// Runs a query returning `E` rows with dynamic arguments.
pub(crate) async fn fetch_entities<E: Entity>(
    s: &Session,
    guard: &mut Guard,
    sql: Arc<str>,
    values: Vec<sea_query::Value>,
) -> Result<Vec<E>> {
    let tx = guard.tx.as_mut().ok_or(Error::SessionClosed)?;
    dispatch!(tx, |c, DB| {
        let args = DB::args_from_values(sea_query::Values(values));
        let rows = s
            .run(Some(E::META), &sql, DB::fetch_all(c, sql.clone(), args))
            .await?;
        rows.iter().map(|r| E::decode_row(r, 0)).collect()
    })
}

/// Inserts rows in multi-row statements and stores generated keys.
async fn insert_rows<E: Entity>(s: &Session, tx: &mut AnyTx, values: &mut [E]) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let meta = E::META;
    let b = s.backend();
    let ncols = meta.insert_columns().count();
    let auto = meta.auto_increment.is_some();
    let db = &s.inner.db.inner;
    // MySQL hands out consecutive ids to one multi-row insert only with
    // `innodb_autoinc_lock_mode` below 2; otherwise insert one row at a time.
    let one_by_one = ncols == 0 || (auto && b == Backend::MySql && !db.mysql_consecutive_ids);
    let per_stmt = if one_by_one {
        1
    } else {
        (b.max_binds() / ncols).clamp(1, 1000)
    };
    let step = db.auto_increment_increment;
    for chunk in values.chunks_mut(per_stmt) {
        let sql: Arc<str> = if chunk.len() == 1 {
            E::sql_cache().get(b, Shape::InsertOne, || sql::insert(b, meta, 1))
        } else {
            Arc::from(sql::insert(b, meta, chunk.len()))
        };
        dispatch!(&mut *tx, |c, DB| {
            let mut args = <DB as sqlx::Database>::Arguments::default();
            for v in chunk.iter() {
                bind_insert_columns(v, &mut args)?;
            }
            if auto && b.has_returning() {
                let rows = s
                    .run(Some(meta), &sql, DB::fetch_all(c, sql.clone(), args))
                    .await?;
                // RETURNING order is not guaranteed; ids are handed out in
                // VALUES order, so sorted ids match the rows in order.
                let mut ids = Vec::with_capacity(rows.len());
                for r in &rows {
                    ids.push(r.i64(0).map_err(|e| Error::decode("key", e))?.unwrap_or(0));
                }
                ids.sort_unstable();
                for (v, id) in chunk.iter_mut().zip(ids) {
                    v.set_generated_key(id)?;
                }
            } else {
                let done = s
                    .run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                    .await?;
                if auto {
                    let first = done.last_insert_id.unwrap_or(0) as i64;
                    for (n, v) in chunk.iter_mut().enumerate() {
                        v.set_generated_key(first + n as i64 * step)?;
                    }
                }
            }
        });
    }
    Ok(())
}

// ----- registered changes ------------------------------------------------------

/// A change registered on the session, written at the next flush.
trait PendingOp: Send + Sync {
    fn run<'a>(&'a self, s: &'a Session, tx: &'a mut AnyTx) -> BoxFuture<'a, Result<()>>;
}

struct PendingInsert<E>(Vec<E>);

impl<E: Entity> PendingOp for PendingInsert<E> {
    fn run<'a>(&'a self, s: &'a Session, tx: &'a mut AnyTx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Keys generated here are not reported back: `add` is for rows
            // whose keys are known or not needed.
            let mut rows = self.0.clone();
            insert_rows(s, tx, &mut rows).await
        })
    }
}

struct PendingUpdate<E> {
    value: E,
    expected: Option<i64>,
}

impl<E: Entity> PendingOp for PendingUpdate<E> {
    fn run<'a>(&'a self, s: &'a Session, tx: &'a mut AnyTx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let meta = E::META;
            let b = s.backend();
            let sql = E::sql_cache().get(b, Shape::UpdateByKey, || sql::update_by_key(b, meta));
            let done = dispatch!(tx, |c, DB| {
                let mut args = <DB as sqlx::Database>::Arguments::default();
                for i in meta.update_columns() {
                    self.value.bind_column(i, &mut args)?;
                }
                bind_key::<E, _>(&self.value.key(), &mut args)?;
                if meta.version.is_some() {
                    crate::value::Binder::i64(&mut args, self.expected.unwrap_or(0))
                        .map_err(|e| Error::encode("version", e))?;
                }
                s.run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                    .await?
            });
            check_matched(meta, &self.value.key(), done, b)
        })
    }
}

struct PendingDelete<E: Entity> {
    key: E::Key,
    expected: Option<i64>,
}

impl<E: Entity> PendingOp for PendingDelete<E> {
    fn run<'a>(&'a self, s: &'a Session, tx: &'a mut AnyTx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let meta = E::META;
            let b = s.backend();
            let versioned = meta.version.is_some() && self.expected.is_some();
            let shape = if versioned {
                Shape::DeleteByKeyVersioned
            } else {
                Shape::DeleteByKey
            };
            let sql = E::sql_cache().get(b, shape, || sql::delete_by_key(b, meta, versioned));
            let done = dispatch!(tx, |c, DB| {
                let mut args = <DB as sqlx::Database>::Arguments::default();
                bind_key::<E, _>(&self.key, &mut args)?;
                if versioned {
                    crate::value::Binder::i64(&mut args, self.expected.unwrap_or(0))
                        .map_err(|e| Error::encode("version", e))?;
                }
                s.run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                    .await?
            });
            if versioned {
                check_matched(meta, &self.key, done, b)
            } else {
                Ok(())
            }
        })
    }
}

/// Zero rows matched by a keyed update or versioned delete means the row
/// changed or vanished since it was read.
fn check_matched<K: Key>(meta: &EntityMeta, key: &K, done: Done, b: Backend) -> Result<()> {
    // MySQL counts rows *changed*, not matched, unless the client asks
    // otherwise; sqlx asks for found rows, so 0 means no match everywhere.
    let _ = b;
    if done.rows_affected == 0 {
        return Err(Error::Stale {
            table: meta.table.to_owned(),
            key: format!("{key:?}"),
        });
    }
    Ok(())
}
