//! The session's use of the shared cache: the epoch of each transaction,
//! the changes it made (handed to the provider after `COMMIT`), and the
//! cached read paths.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Session;
use crate::backend::Backend;
use crate::cache::{
    CacheKey, CachedQuery, ChangeSet, decode_row, decode_rows, encode_row, encode_rows,
};
use crate::entity::{Entity, EntityMeta};
use crate::error::Result;
use crate::l2::{CacheLayer, MAX_PUT_AGE, cache_key};
use crate::session::Isolation;
use crate::uow::Merge;

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
        self.inner.db.inner.cache.as_ref()
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

    /// Hands the committed transaction's changes to the provider; returns
    /// once it applied them (a failure is logged and counted).
    pub(crate) async fn cache_after_commit(&self) {
        let tx = std::mem::take(&mut *self.tx_cache());
        let Some(layer) = self.cache_layer() else {
            return;
        };
        let changes = ChangeSet {
            keys: tx.keys.into_iter().collect(),
            regions: tx.regions.into_iter().collect(),
            tables: tx.tables.into_iter().collect(),
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
        if let Err(e) = layer.provider.after_commit(&changes).await {
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
        let ck = cache_key::<E>(key);
        if let Some(row) = self.cache_get::<E>(layer, &ck, key).await {
            return Ok(Some(self.merge_rows(vec![row], Merge::Track).pop()));
        }
        // One load per key at a time in this process; whoever got here
        // second finds the first one's row.
        let _flight = layer.single_flight(&ck).await;
        if let Some(row) = self.cache_get::<E>(layer, &ck, key).await {
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

    async fn cache_get<E: Entity>(
        &self,
        layer: &CacheLayer,
        ck: &CacheKey,
        key: &E::Key,
    ) -> Option<E> {
        match layer.provider.get(ck).await {
            Ok(Some(bytes)) => match decode_row::<E>(&bytes) {
                Ok(row) if row.key() == *key => Some(row),
                Ok(_) => {
                    tracing::warn!(region = %ck.region, key = %ck.key, "cached row has another key; ignored");
                    None
                }
                Err(e) => {
                    tracing::warn!(region = %ck.region, key = %ck.key, error = %e, "malformed cached row; ignored");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                layer.failed("get", &e);
                None
            }
        }
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
            // Read committed takes a snapshot per statement.
            Backend::Postgres => {
                matches!(
                    self.inner.options.isolation,
                    None | Some(Isolation::ReadCommitted | Isolation::ReadUncommitted)
                )
            }
            // A read-write SQLite transaction holds the write lock: nobody
            // else committed since it began.
            Backend::Sqlite => !self.inner.options.read_only,
            Backend::MySql => false,
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
        let table = E::META.table.to_owned();
        let layer = match self.cache_layer() {
            Some(l) if !self.table_written(&table) => l,
            _ => return run().await,
        };
        let tables = vec![table.clone()];
        let stamps = match layer.provider.table_stamps(&tables).await {
            Ok(s) => s,
            Err(e) => {
                layer.failed("table_stamps", &e);
                return run().await;
            }
        };
        let stamps: Vec<(String, u64)> = tables.into_iter().zip(stamps).collect();
        match layer.provider.query_get(&key).await {
            Ok(Some(hit)) if hit.stamps == stamps => match decode_rows::<E>(&hit.rows) {
                Ok(rows) => return Ok(self.merge_rows(rows, Merge::Track)),
                Err(e) => tracing::warn!(error = %e, "malformed cached query result; ignored"),
            },
            Ok(_) => {}
            Err(e) => layer.failed("query_get", &e),
        }
        let before = self.tx_cache().statements;
        let rows = run().await?;
        if self.query_put_safe(before) && !self.table_written(E::META.table) {
            match encode_rows(&rows) {
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
        Ok(self.merge_rows(rows, self.default_merge()))
    }
}

/// Adds the regions (and tables) a delete from `meta`'s table cascades to.
fn cascade_regions(meta: &'static EntityMeta, tx: &mut TxCache) {
    let mut work = vec![meta];
    while let Some(m) = work.pop() {
        for (child, _) in m.cascades() {
            if tx.regions.insert(child.table.to_owned()) {
                tx.tables.insert(child.table.to_owned());
                work.push(child);
            }
        }
    }
}
