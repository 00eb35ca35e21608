//! Evicting from the shared cache what changed outside persist: a row
//! another program or a migration wrote stays cached until its TTL unless
//! it is evicted.
//!
//! An eviction is handed to the provider as a commit's invalidation is
//! ([`SharedCache::after_commit`](crate::cache::SharedCache::after_commit)):
//! it advances the epoch and records it for what it names, so a transaction
//! that began before the eviction cannot put the old row back, and with the
//! Redis providers every process sharing the Redis stops serving it (a
//! near-cache's local tier hears of it by pub/sub, as of a commit).
//!
//! Each call answers the provider's error (it is also logged and counted
//! in [`Db::cache_metrics`]): an eviction that failed left the old entries
//! in place, and the caller decides whether to retry. The Redis providers
//! remember a failed eviction as they do a failed commit, and start a new
//! generation (dropping every entry) before serving anything once Redis
//! answers again. A dropped eviction future may or may not have run: run it
//! again. Without a cache on the `Db` each call does nothing and answers
//! `Ok`.

use crate::cache::layer::cache_key;
use crate::cache::{CacheError, ChangeSet};
use crate::db::Db;
use crate::model::entity::Entity;

impl Db {
    /// Evicts `E`'s cached row with `key`, in this process and (with the
    /// Redis providers) every process sharing the cache: the next read of it
    /// loads it from the database. Query results that read the row stay
    /// cached; evict them with [`evict_queries`](Db::evict_queries).
    ///
    /// ```
    /// # use persist_core::prelude::*;
    /// # #[derive(Entity, Clone, Debug)]
    /// # pub struct Account { #[persist(primary_key)] pub id: i64, pub balance_cents: i64 }
    /// # async fn demo(db: &Db) -> Result<(), persist_core::cache::CacheError> {
    /// // Another program changed account 7.
    /// db.evict::<Account>(&7).await?;
    /// # Ok(()) }
    /// ```
    pub async fn evict<E: Entity>(&self, key: &E::Key) -> Result<(), CacheError> {
        self.evict_changes(ChangeSet {
            keys: vec![cache_key::<E>(key)],
            ..ChangeSet::default()
        })
        .await
    }

    /// Evicts every cached row of `E` (after a bulk write or a migration
    /// outside persist). Query results stay cached; evict them with
    /// [`evict_queries`](Db::evict_queries).
    pub async fn evict_all<E: Entity>(&self) -> Result<(), CacheError> {
        self.evict_changes(ChangeSet {
            regions: vec![E::META.table.to_owned()],
            ..ChangeSet::default()
        })
        .await
    }

    /// Evicts every cached query result that read `E`'s table (entity
    /// queries, projections, aggregates and joins made with `.cached()`):
    /// the table's query-cache stamp is bumped, as a commit that wrote it
    /// would.
    pub async fn evict_queries<E: Entity>(&self) -> Result<(), CacheError> {
        self.evict_queries_of(E::META.table).await
    }

    /// [`evict_queries`](Db::evict_queries) by table name, for a table no
    /// entity of this program maps.
    pub async fn evict_queries_of(&self, table: &str) -> Result<(), CacheError> {
        self.evict_changes(ChangeSet {
            tables: vec![table.to_owned()],
            ..ChangeSet::default()
        })
        .await
    }

    async fn evict_changes(&self, changes: ChangeSet) -> Result<(), CacheError> {
        match &self.inner.cache {
            Some(layer) => layer.evict(&changes).await,
            None => Ok(()),
        }
    }
}
