//! The session's use of the shared cache: the epoch of each transaction,
//! the changes it made (handed to the provider after `COMMIT`), and the
//! cached read paths.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Session;
use crate::backend::AnyConn;
use crate::cache::layer::{CacheLayer, MAX_PUT_AGE, cache_key};
use crate::cache::{
    CacheKey, CachedQuery, ChangeSet, decode_row, decode_rows, encode_row, encode_rows,
};
use crate::error::Error;
use crate::error::Result;
use crate::model::entity::{Entity, EntityMeta, OnDelete};
use crate::model::row::{Capture, Captured};
use crate::session::Isolation;
pub(crate) use crate::session::commit_fence::CommitFence;
use crate::session::uow::Merge;
use crate::sql::Backend;
use crate::sql::inspect::{might_write, named_tables};
use futures_core::future::BoxFuture;

/// How the cache may answer a read (see [`Session::cache_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheRead {
    /// Not at all: the database answers.
    No,
    /// As it is.
    Yes,
    /// Answered, and checked against the database once the transaction
    /// begins.
    Checked,
}

/// Checks one cached row against the database.
type Check =
    Box<dyn for<'a> FnOnce(&'a Session, &'a mut AnyConn) -> BoxFuture<'a, Result<bool>> + Send>;

/// A row the cache answered before the transaction's snapshot (or SQLite's
/// write lock) existed. Once the transaction begins it is read again from
/// the database and compared: the transaction then saw what the database
/// would have shown it, or fails with a retryable [`Error::Stale`]. A
/// session that read one row from the cache and nothing else never pays
/// for the check (one read is consistent with itself); one that read
/// several and nothing else checks them at commit.
pub(crate) struct Unchecked {
    table: &'static str,
    key: String,
    check: Check,
}

impl Unchecked {
    fn new<E: Entity>(key: E::Key, cached: Vec<u8>) -> Unchecked {
        Unchecked {
            table: E::META.table,
            key: format!("{key:?}"),
            check: Box::new(move |s: &Session, conn: &mut AnyConn| {
                Box::pin(async move {
                    let row = s.read_by_key::<E>(conn, &key).await?;
                    Ok(row.is_some_and(|r| encode_row(&r).is_ok_and(|now| now == cached)))
                })
            }),
        }
    }
}

/// Where a savepoint found the transaction's cache record: rolling back to
/// it forgets the rows inserted since (they were never committed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheMark {
    inserted: usize,
}

/// What the session's current transaction means to the cache.
#[derive(Debug, Default)]
pub(crate) struct TxCache {
    /// The provider's epoch taken before the transaction began (`None`
    /// when the provider did not answer: then nothing is put).
    epoch: Option<u64>,
    started: Option<Instant>,
    /// Statements sent in this transaction.
    pub statements: u64,
    keys: BTreeSet<CacheKey>,
    regions: BTreeSet<String>,
    tables: BTreeSet<String>,
    /// Rows this transaction inserted into cached tables, put after commit.
    inserted: Vec<(CacheKey, Vec<u8>, Duration)>,
}

impl Session {
    pub(crate) fn cache_layer(&self) -> Option<&CacheLayer> {
        self.inner.db.cache.as_ref()
    }

    fn tx_cache(&self) -> std::sync::MutexGuard<'_, TxCache> {
        self.inner
            .tx_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Called just before a transaction begins.
    pub(crate) async fn cache_begin(&self) {
        let epoch = match self.cache_layer() {
            Some(layer) => match layer.provider.epoch().await {
                Ok(e) => Some(e),
                Err(e) => {
                    layer.failed("epoch", &e);
                    None
                }
            },
            None => None,
        };
        *self.tx_cache() = TxCache {
            epoch,
            started: Some(Instant::now()),
            ..TxCache::default()
        };
    }

    pub(crate) fn count_tx_statement(&self) {
        // Only the query cache asks; without a cache layer no lock is taken.
        if self.cache_layer().is_some() {
            self.tx_cache().statements += 1;
        }
    }

    /// Forgets the transaction's changes (rollback, failure).
    pub(crate) fn cache_discard(&self) {
        *self.tx_cache() = TxCache::default();
    }

    /// Marks where a savepoint finds the transaction's cache record.
    pub(crate) fn cache_savepoint(&self) -> CacheMark {
        CacheMark {
            inserted: self.tx_cache().inserted.len(),
        }
    }

    /// Rolls the cache record back to a savepoint: rows inserted since are
    /// not put after commit. (Keys and tables written since stay recorded:
    /// invalidating a row that did not change costs a reload, never a stale
    /// read.)
    pub(crate) fn cache_rollback_to(&self, mark: CacheMark) {
        self.tx_cache().inserted.truncate(mark.inserted);
    }

    /// The fence a commit holds from `COMMIT` until the cache has heard of
    /// it (see [`CommitFence`]).
    pub(crate) fn cache_commit_fence(&self) -> CommitFence {
        let Some(layer) = self.cache_layer() else {
            return CommitFence {
                db: None,
                changes: ChangeSet::default(),
            };
        };
        let changes = {
            let tx = self.tx_cache();
            ChangeSet {
                keys: tx.keys.iter().cloned().collect(),
                regions: tx.regions.iter().cloned().collect(),
                tables: tx.tables.iter().cloned().collect(),
            }
        };
        if changes.is_empty() {
            return CommitFence { db: None, changes };
        }
        layer.begin_commit(&changes);
        CommitFence {
            db: Some(self.inner.db.clone()),
            changes,
        }
    }

    /// The isolation level of this session's transactions: its own, else the
    /// `Db`'s default (the server's). `None` on SQLite.
    pub(crate) fn isolation(&self) -> Option<Isolation> {
        if self.backend() == Backend::Sqlite {
            return None;
        }
        self.inner
            .options
            .isolation
            .or(self.inner.db.default_isolation)
    }

    /// How the cache may answer a read of `table` in this transaction: only
    /// where that cannot give the transaction weaker isolation than the
    /// same read from the database. A cached row is the row as its latest
    /// commit left it, as a read-committed read would see it.
    /// - PostgreSQL and MySQL at `READ COMMITTED` or below: always.
    /// - SQLite in a read-write session that holds the write lock (its
    ///   transaction has begun): always; no one else can commit meanwhile.
    /// - Before the transaction's snapshot exists (SQLite, or PostgreSQL and
    ///   MySQL at `REPEATABLE READ` / `SERIALIZABLE`, before the first
    ///   statement): answered, and the row is checked against the database
    ///   as soon as the transaction begins (see [`Unchecked`]).
    /// - Once a snapshot exists (a read-only SQLite session, or a snapshot
    ///   isolation level, after the first statement): never — the database
    ///   answers from the snapshot.
    /// - Never while a commit of this process that wrote `table` is between
    ///   its `COMMIT` and the cache hearing of it.
    fn cache_read(&self, layer: &CacheLayer, table: &str) -> CacheRead {
        if layer.committing(table) {
            return CacheRead::No;
        }
        let begun = self.tx_cache().started.is_some();
        let snapshot = match self.backend() {
            Backend::Sqlite if !self.inner.options.read_only => {
                return if begun {
                    CacheRead::Yes
                } else {
                    CacheRead::Checked
                };
            }
            Backend::Sqlite => true,
            _ => !self.isolation().is_none_or(Isolation::per_statement),
        };
        match (snapshot, begun) {
            (false, _) => CacheRead::Yes,
            (true, false) => CacheRead::Checked,
            (true, true) => CacheRead::No,
        }
    }

    /// Checks the rows the cache answered before this transaction began
    /// against the database, now that it has (with SQLite's write lock, or
    /// the snapshot, taken). A row that differs is [`Error::Stale`]
    /// (retryable: [`Db::transaction`](crate::db::Db::transaction) runs the
    /// work again).
    pub(crate) async fn check_cached_reads(&self, conn: &mut AnyConn) -> Result<()> {
        let unchecked = std::mem::take(&mut *self.unchecked());
        for u in unchecked {
            let (table, key) = (u.table, u.key);
            if !(u.check)(self, conn).await? {
                return Err(Error::Stale {
                    table: table.to_owned(),
                    key,
                });
            }
        }
        Ok(())
    }

    /// The rows answered from the cache before the transaction began.
    pub(crate) fn unchecked(&self) -> std::sync::MutexGuard<'_, Vec<Unchecked>> {
        self.inner
            .unchecked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Records a raw statement that may have written: the tables it names
    /// after `UPDATE`, `INTO`, `FROM`, `JOIN` or `TABLE`, and `meta`'s own
    /// (the entity its rows decode into, if any), are invalidated whole
    /// (regions and query-cache stamps) at commit. Answers whether it may
    /// have written.
    pub(crate) fn cache_raw_statement(&self, meta: Option<&'static EntityMeta>, sql: &str) -> bool {
        if !might_write(sql) {
            return false;
        }
        // Raw SQL that may write (refused in autocommit reads when the
        // caller said it writes; a guess from the text is not enough).
        self.inner
            .wrote
            .store(true, std::sync::atomic::Ordering::Release);
        if self.cache_layer().is_none() {
            return true;
        }
        let mut tx = self.tx_cache();
        let own = meta.map(|m| m.table.to_owned());
        for table in own.into_iter().chain(named_tables(sql)) {
            tx.tables.insert(table.clone());
            tx.regions.insert(table);
        }
        if let Some(meta) = meta {
            cascade_regions(meta, &mut tx);
        }
        true
    }

    /// Hands the committed transaction's changes to the provider; returns
    /// once it applied them (a failure is logged and counted).
    ///
    /// `changes` are the transaction's, as its [`CommitFence`] took them.
    pub(crate) async fn cache_after_commit(&self, changes: &ChangeSet) {
        let tx = std::mem::take(&mut *self.tx_cache());
        let Some(layer) = self.cache_layer() else {
            return;
        };
        // Rows this transaction inserted are new keys no one can hold; they
        // go in first, with the epoch the transaction began at, so a commit
        // of another transaction that touched them since wins.
        let fresh = tx.started.is_some_and(|t| t.elapsed() < MAX_PUT_AGE);
        if let Some(epoch) = tx.epoch.filter(|_| fresh) {
            for (key, bytes, ttl) in tx.inserted {
                if changes.keys.contains(&key) || changes.regions.contains(&key.region) {
                    continue;
                }
                if let Err(e) = layer.provider.put_if_fresh(&key, bytes, epoch, ttl).await {
                    layer.failed("put", &e);
                    break;
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        if let Err(e) = layer.provider.after_commit(changes).await {
            layer.failed("after_commit", &e);
        }
    }

    /// Whether rows of `meta`'s entity are cached.
    pub(crate) fn caches(&self, meta: &EntityMeta) -> bool {
        self.cache_layer()
            .is_some_and(|l| l.ttl_for(meta).is_some())
    }

    /// Records rows inserted into a cached table, to put after commit.
    pub(crate) fn cache_inserted(&self, meta: &'static EntityMeta, rows: Vec<(String, Vec<u8>)>) {
        let Some(ttl) = self.cache_layer().and_then(|l| l.ttl_for(meta)) else {
            return;
        };
        let mut tx = self.tx_cache();
        for (key, bytes) in rows {
            tx.inserted.push((
                CacheKey {
                    region: meta.table.to_owned(),
                    key,
                },
                bytes,
                ttl,
            ));
        }
    }

    /// Records rows of `meta`'s table written with the given keys (`Debug`
    /// text), and the regions a delete of them cascades to.
    pub(crate) fn cache_wrote(&self, meta: &'static EntityMeta, keys: Vec<String>, deleted: bool) {
        if self.cache_layer().is_none() {
            return;
        }
        let mut tx = self.tx_cache();
        tx.tables.insert(meta.table.to_owned());
        for key in keys {
            tx.keys.insert(CacheKey {
                region: meta.table.to_owned(),
                key,
            });
        }
        if deleted {
            cascade_regions(meta, &mut tx);
        }
    }

    /// Records a statement that changed rows of `meta`'s table it cannot
    /// name (a bulk write): the whole region is invalidated.
    pub(crate) fn cache_wrote_region(&self, meta: &'static EntityMeta) {
        if self.cache_layer().is_none() {
            return;
        }
        let mut tx = self.tx_cache();
        tx.tables.insert(meta.table.to_owned());
        tx.regions.insert(meta.table.to_owned());
        cascade_regions(meta, &mut tx);
    }

    fn table_written(&self, table: &str) -> bool {
        self.tx_cache().tables.contains(table) || self.uow().has_pending_in(table)
    }

    /// The epoch to put rows loaded now with, if putting is safe.
    fn put_epoch(&self, table: &str) -> Option<u64> {
        let tx = self.tx_cache();
        let fresh = tx.started.is_some_and(|t| t.elapsed() < MAX_PUT_AGE);
        if !fresh || tx.tables.contains(table) {
            return None;
        }
        tx.epoch
    }

    /// `find` past the identity map for a cached entity: the cache, then the
    /// database (one load per key at a time in this process), then a put.
    pub(crate) async fn find_cached<E: Entity>(&self, key: &E::Key) -> Result<Option<Option<E>>> {
        let Some(layer) = self.cache_layer() else {
            return Ok(None);
        };
        let Some(ttl) = layer.ttl_of::<E>() else {
            return Ok(None);
        };
        if self.table_written(E::META.table) {
            // This transaction's own writes are not in the cache yet.
            return Ok(None);
        }
        // Where the cache may not answer, the row is still loaded through it
        // (and put): a put is checked against the epoch the transaction
        // began at, whatever its isolation.
        let read = self.cache_read(layer, E::META.table);
        let ck = cache_key::<E>(key);
        if let Some(row) = self.cache_answer::<E>(layer, &ck, key, read).await {
            return Ok(Some(self.merge_rows(vec![row], Merge::Track).pop()));
        }
        // One load per key at a time in this process; whoever got here
        // second finds the first one's row.
        let _flight = layer.single_flight(&ck).await;
        if let Some(row) = self.cache_answer::<E>(layer, &ck, key, read).await {
            return Ok(Some(self.merge_rows(vec![row], Merge::Track).pop()));
        }
        let row = self.load_by_key_raw::<E>(key).await?;
        if let (Some(r), Some(epoch)) = (&row, self.put_epoch(E::META.table)) {
            match encode_row(r) {
                Ok(bytes) => {
                    if let Err(e) = layer.provider.put_if_fresh(&ck, bytes, epoch, ttl).await {
                        layer.failed("put", &e);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "row not cached: cannot encode"),
            }
        }
        Ok(Some(row.and_then(|r| {
            self.merge_rows(vec![r], self.default_merge()).pop()
        })))
    }

    /// The cached row for `key`, where `read` lets the cache answer; a row
    /// answered before the snapshot exists is recorded to be checked.
    async fn cache_answer<E: Entity>(
        &self,
        layer: &CacheLayer,
        ck: &CacheKey,
        key: &E::Key,
        read: CacheRead,
    ) -> Option<E> {
        if read == CacheRead::No {
            return None;
        }
        let (row, bytes) = self.cache_get::<E>(layer, ck, key).await?;
        if read == CacheRead::Checked {
            self.unchecked()
                .push(Unchecked::new::<E>(key.clone(), bytes));
        }
        Some(row)
    }

    async fn cache_get<E: Entity>(
        &self,
        layer: &CacheLayer,
        ck: &CacheKey,
        key: &E::Key,
    ) -> Option<(E, Vec<u8>)> {
        match layer.provider.get(ck).await {
            Ok(Some(bytes)) => {
                let row = decode_cached::<E>(ck, &bytes)?;
                (row.key() == *key).then_some((row, bytes))
            }
            Ok(None) => None,
            Err(e) => {
                layer.failed("get", &e);
                None
            }
        }
    }

    /// The shared cache's layer and how it may answer a read of `E` by key
    /// in this transaction; `None` where it may not (no cache, `E` not
    /// cached, the table written by this transaction, or [`CacheRead::No`]).
    fn key_read<E: Entity>(&self) -> Option<(&CacheLayer, CacheRead)> {
        let layer = self.cache_layer()?;
        layer.ttl_of::<E>()?;
        if self.table_written(E::META.table) {
            return None;
        }
        let read = self.cache_read(layer, E::META.table);
        (read != CacheRead::No).then_some((layer, read))
    }

    /// The rows of `E` the shared cache holds for `keys` (the keys' texts,
    /// as [`cache_key`] writes them), in the order of `keys`, `None` for a
    /// miss, in one provider call ([`SharedCache::get_many`]). A hit is a
    /// row whose own key has the text asked for; a hit answered before the
    /// transaction's snapshot exists is recorded to be checked, as `find`'s
    /// are. All misses where the cache may not answer. Unmerged.
    ///
    /// [`SharedCache::get_many`]: crate::cache::SharedCache::get_many
    ///
    /// When some keys miss where hits would have to be checked, the
    /// transaction begins anyway to load the misses: it begins first and the
    /// cache is asked again under the rule that then holds, so the hits need
    /// no check statements of their own.
    pub(crate) async fn cache_lookup<E: Entity>(&self, keys: &[String]) -> Result<Vec<Option<E>>> {
        let mark = self.unchecked().len();
        let (rows, read) = self.cache_lookup_once::<E>(keys).await;
        if read != CacheRead::Checked
            || rows.iter().all(Option::is_some)
            || rows.iter().all(Option::is_none)
        {
            return Ok(rows);
        }
        self.unchecked().truncate(mark);
        drop(self.lock_unflushed().await?);
        Ok(self.cache_lookup_once::<E>(keys).await.0)
    }

    async fn cache_lookup_once<E: Entity>(&self, keys: &[String]) -> (Vec<Option<E>>, CacheRead) {
        let misses = || keys.iter().map(|_| None).collect();
        let Some((layer, read)) = self.key_read::<E>() else {
            return (misses(), CacheRead::No);
        };
        if keys.is_empty() {
            return (Vec::new(), read);
        }
        let cks: Vec<CacheKey> = keys
            .iter()
            .map(|k| CacheKey {
                region: E::META.table.to_owned(),
                key: k.clone(),
            })
            .collect();
        let got = match layer.provider.get_many(&cks).await {
            Ok(v) if v.len() == cks.len() => v,
            Ok(_) => {
                tracing::warn!(
                    region = E::META.table,
                    "cache answered the wrong number of rows; ignored"
                );
                return (misses(), read);
            }
            Err(e) => {
                layer.failed("get_many", &e);
                return (misses(), read);
            }
        };
        let rows = got
            .into_iter()
            .zip(&cks)
            .map(|(bytes, ck)| {
                let bytes = bytes?;
                let row = decode_cached::<E>(ck, &bytes)?;
                if read == CacheRead::Checked {
                    self.unchecked().push(Unchecked::new::<E>(row.key(), bytes));
                }
                Some(row)
            })
            .collect();
        (rows, read)
    }

    /// Where rows of `E` this transaction just read may be put: the layer,
    /// `E`'s TTL and the epoch to put with; `None` without a cache, for an
    /// entity not cached, for a table this transaction wrote, or where
    /// [`put_epoch`](Session::put_epoch) says no.
    fn put_target<E: Entity>(&self) -> Option<(&CacheLayer, Duration, u64)> {
        let layer = self.cache_layer()?;
        let ttl = layer.ttl_of::<E>()?;
        if self.table_written(E::META.table) {
            return None;
        }
        Some((layer, ttl, self.put_epoch(E::META.table)?))
    }

    /// Puts rows of `E` this transaction just read from the database, where
    /// putting is safe (see [`put_epoch`](Session::put_epoch); never for a
    /// table this transaction wrote). A provider failure stops the puts.
    pub(crate) async fn cache_put_loaded<E: Entity>(&self, rows: &[E]) {
        let Some((layer, ttl, epoch)) = self.put_target::<E>() else {
            return;
        };
        for r in rows.iter().filter(|r| !r.is_soft_deleted()) {
            let bytes = match encode_row(r) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "row not cached: cannot encode");
                    continue;
                }
            };
            if let Err(e) = layer
                .provider
                .put_if_fresh(&cache_key::<E>(&r.key()), bytes, epoch, ttl)
                .await
            {
                layer.failed("put", &e);
                return;
            }
        }
    }

    /// The unique-index entry of `E`'s column `col` for the value `v`, and
    /// `v` as the row holds it: where `col` is `unique` and `E` is cached.
    /// The entry (region `{table}#{column}`, key the value's text) holds the
    /// row found by that value; it is only a hint, so it needs no
    /// invalidation: a hit is verified against the row `find` answers.
    pub(crate) fn unique_entry<E: Entity, V: crate::model::value::Field>(
        &self,
        col: usize,
        v: &V,
    ) -> Option<(CacheKey, Captured)> {
        let c = E::META.columns.get(col).filter(|c| c.unique)?;
        if !self.caches(E::META) {
            return None;
        }
        let mut cap = Capture::default();
        v.bind(&mut cap).ok()?;
        let value = cap.0.pop()?;
        Some((
            CacheKey {
                region: format!("{}#{}", E::META.table, c.name),
                key: format!("{value:?}"),
            },
            value,
        ))
    }

    /// The primary key the unique-index entry `ck` points to, where this
    /// transaction may use the cache for `E` (not after writing its table).
    pub(crate) async fn cache_unique_key<E: Entity>(&self, ck: &CacheKey) -> Option<E::Key> {
        let (layer, _) = self.key_read::<E>()?;
        match layer.provider.get(ck).await {
            Ok(Some(bytes)) => decode_row::<E>(&bytes).ok().map(|r| r.key()),
            Ok(None) => None,
            Err(e) => {
                layer.failed("get", &e);
                None
            }
        }
    }

    /// Stores the unique-index entry `ck` for `row`, just read from the
    /// database by that value, where a put of the row itself is allowed.
    pub(crate) async fn cache_unique_put<E: Entity>(&self, ck: &CacheKey, row: &E) {
        let (Some((layer, ttl, epoch)), Ok(bytes)) = (self.put_target::<E>(), encode_row(row))
        else {
            return;
        };
        if let Err(e) = layer.provider.put_if_fresh(ck, bytes, epoch, ttl).await {
            layer.failed("put", &e);
        }
    }

    /// After [`refresh`](Session::refresh) read `row` for `key` (`None`: the
    /// row is gone): the cached row becomes what it read where a put is safe
    /// (the same rule as a `find`'s put), else the key is evicted, so the
    /// next read loads it from the database. A provider failure is logged.
    pub(crate) async fn cache_refreshed<E: Entity>(&self, key: &E::Key, row: Option<&E>) {
        let Some(layer) = self.cache_layer() else {
            return;
        };
        let Some(ttl) = layer.ttl_of::<E>() else {
            return;
        };
        let ck = cache_key::<E>(key);
        let epoch = self
            .put_epoch(E::META.table)
            .filter(|_| !self.table_written(E::META.table));
        if let (Some(r), Some(epoch)) = (row, epoch)
            && let Ok(bytes) = encode_row(r)
        {
            match layer.provider.put_if_fresh(&ck, bytes, epoch, ttl).await {
                Ok(true) => return,
                // Changed since the transaction began: evicted below.
                Ok(false) => {}
                Err(e) => {
                    layer.failed("put", &e);
                    return;
                }
            }
        }
        let _ = layer
            .evict(&ChangeSet {
                keys: vec![ck],
                ..ChangeSet::default()
            })
            .await;
    }

    /// Whether a query result read now may be put: its snapshot must be at
    /// least as new as the table stamps read just before it.
    fn query_put_safe(&self, statements_before: u64) -> bool {
        if statements_before == 0 {
            // The query is the transaction's first statement: its snapshot
            // begins after the stamps were read.
            return true;
        }
        match self.backend() {
            // A read-write SQLite transaction holds the write lock: nobody
            // else committed since it began.
            Backend::Sqlite => !self.inner.options.read_only,
            // Read committed takes a snapshot per statement. The level is
            // the session's, else the server's default read at connect.
            _ => self.isolation().is_some_and(Isolation::per_statement),
        }
    }

    /// A cached query on `E`'s table: answered with zero SQL while the table
    /// is unchanged since the result was stored.
    pub(crate) async fn query_cached<E, F, Fut>(&self, key: String, run: F) -> Result<Vec<E>>
    where
        E: Entity,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<E>>>,
    {
        let (rows, hit) = self
            .query_cached_with(
                key,
                &[E::META.table],
                run,
                |r| encode_rows(r),
                |b| decode_rows::<E>(b),
            )
            .await?;
        let merge = if hit {
            Merge::Track
        } else {
            self.default_merge()
        };
        Ok(self.merge_rows(rows, merge))
    }

    /// A cached query result of any shape over `tables`: answered (with
    /// `true`) from the query cache while none of the tables changed since
    /// the result was stored, else run (and stored where safe). `encode` and
    /// `decode` turn the result into bytes and back; a value `decode`
    /// refuses is a miss. Unmerged.
    pub(crate) async fn query_cached_with<T, F, Fut>(
        &self,
        key: String,
        tables: &[&'static str],
        run: F,
        encode: impl FnOnce(&[T]) -> Result<Vec<u8>>,
        decode: impl FnOnce(&[u8]) -> Result<Vec<T>>,
    ) -> Result<(Vec<T>, bool)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>>>,
    {
        let written = |s: &Session| tables.iter().any(|t| s.table_written(t));
        let layer = match self.cache_layer() {
            Some(l) if !written(self) => l,
            _ => return Ok((run().await?, false)),
        };
        let mut lock = false;
        for t in tables {
            match self.cache_read(layer, t) {
                CacheRead::Yes => {}
                // SQLite read-write: the result is answered once the write
                // lock is held (a query result cannot be checked row by row).
                CacheRead::Checked
                    if self.backend() == Backend::Sqlite && !self.inner.options.read_only =>
                {
                    lock = true;
                }
                _ => return Ok((run().await?, false)),
            }
        }
        if lock {
            drop(self.lock_unflushed().await?);
        }
        let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
        let stamps = match layer.provider.table_stamps(&tables).await {
            Ok(s) if s.len() == tables.len() => s,
            Ok(_) => return Ok((run().await?, false)),
            Err(e) => {
                layer.failed("table_stamps", &e);
                return Ok((run().await?, false));
            }
        };
        let stamps: Vec<(String, u64)> = tables.into_iter().zip(stamps).collect();
        match layer.provider.query_get(&key).await {
            Ok(Some(hit)) if hit.stamps == stamps => match decode(&hit.rows) {
                Ok(rows) => return Ok((rows, true)),
                Err(e) => tracing::warn!(error = %e, "malformed cached query result; ignored"),
            },
            Ok(_) => {}
            Err(e) => layer.failed("query_get", &e),
        }
        let before = self.tx_cache().statements;
        let rows = run().await?;
        if self.query_put_safe(before) && !written(self) {
            match encode(&rows) {
                Ok(bytes) => {
                    let value = CachedQuery {
                        stamps,
                        rows: bytes,
                    };
                    if let Err(e) = layer.provider.query_put(&key, value, layer.query_ttl).await {
                        layer.failed("query_put", &e);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "query result not cached: cannot encode"),
            }
        }
        Ok((rows, false))
    }
}

/// Decodes a cached row of `E` stored under `ck`: `None` (logged) for a
/// malformed value or a row whose own key is not `ck`'s, and `None` for a
/// soft-deleted row (reads by key do not find those).
fn decode_cached<E: Entity>(ck: &CacheKey, bytes: &[u8]) -> Option<E> {
    match decode_row::<E>(bytes) {
        Ok(row) if row.is_soft_deleted() => None,
        Ok(row) if format!("{:?}", row.key()) == ck.key => Some(row),
        Ok(_) => {
            tracing::warn!(region = %ck.region, key = %ck.key, "cached row has another key; ignored");
            None
        }
        Err(e) => {
            tracing::warn!(region = %ck.region, key = %ck.key, error = %e, "malformed cached row; ignored");
            None
        }
    }
}

/// Adds the regions (and tables) a delete from `meta`'s table changes on its
/// own in the database: children deleted by `ON DELETE CASCADE`, and
/// children whose foreign key `ON DELETE SET NULL` clears (and, through a
/// cascade, theirs). Triggers are out of persist's sight: a table a trigger
/// writes is not invalidated.
fn cascade_regions(meta: &'static EntityMeta, tx: &mut TxCache) {
    let mut work = vec![meta];
    while let Some(m) = work.pop() {
        for r in m.relations {
            let child = r.fk_owner();
            match r.on_delete {
                OnDelete::Cascade => {
                    if tx.regions.insert(child.table.to_owned()) {
                        tx.tables.insert(child.table.to_owned());
                        work.push(child);
                    }
                }
                OnDelete::SetNull => {
                    // The children stay, changed: nothing of theirs cascades.
                    tx.regions.insert(child.table.to_owned());
                    tx.tables.insert(child.table.to_owned());
                }
                OnDelete::NoAction => {}
            }
        }
    }
}
