//! The session's side of the shared cache: which entities are cached, the
//! read path by key (identity map → cache → database), single-flight
//! loads, and error handling (a cache failure is logged and counted, and
//! the database answers).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::cache::{CacheError, CacheKey, CacheMetrics, ChangeSet, SharedCache};
use crate::model::entity::{Entity, EntityMeta};

/// A provider and persist's settings for it, held by the `Db`.
pub(crate) struct CacheLayer {
    pub provider: Arc<dyn SharedCache>,
    /// Tables of the entities opted in, with their row TTL.
    entities: RwLock<HashMap<&'static str, Duration>>,
    pub query_ttl: Duration,
    inflight: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    errors: AtomicU64,
    /// Regions (tables) written by commits of this process between their
    /// `COMMIT` and the cache hearing of it, with how many such commits.
    committing: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("entities", &self.entities)
            .field("query_ttl", &self.query_ttl)
            .field("metrics", &self.provider.metrics())
            .finish()
    }
}

/// How long a loader waits for another task loading the same key before
/// loading itself (a bound, so two sessions can never wait on each other).
const SINGLE_FLIGHT_WAIT: Duration = Duration::from_secs(1);

/// Rows loaded by transactions older than this are not put: providers keep
/// invalidation records for at least ten minutes.
pub(crate) const MAX_PUT_AGE: Duration = Duration::from_secs(60);

impl CacheLayer {
    pub fn new(
        provider: Arc<dyn SharedCache>,
        entities: Vec<(&'static str, Duration)>,
        query_ttl: Duration,
    ) -> Self {
        CacheLayer {
            provider,
            entities: RwLock::new(entities.into_iter().collect()),
            query_ttl,
            inflight: Mutex::new(HashMap::new()),
            errors: AtomicU64::new(0),
            committing: Mutex::new(HashMap::new()),
        }
    }

    /// The regions a change set touches: its regions, its tables and the
    /// regions of its keys.
    fn regions_of(changes: &ChangeSet) -> impl Iterator<Item = &str> {
        changes
            .regions
            .iter()
            .chain(&changes.tables)
            .map(String::as_str)
            .chain(changes.keys.iter().map(|k| k.region.as_str()))
    }

    /// A commit that wrote `changes` is about to send `COMMIT`.
    pub fn begin_commit(&self, changes: &ChangeSet) {
        let mut map = self.committing.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = std::collections::BTreeSet::new();
        for r in Self::regions_of(changes) {
            if seen.insert(r) {
                *map.entry(r.to_owned()).or_default() += 1;
            }
        }
    }

    /// That commit has been answered, and the cache told of it.
    pub fn end_commit(&self, changes: &ChangeSet) {
        let mut map = self.committing.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = std::collections::BTreeSet::new();
        for r in Self::regions_of(changes) {
            if seen.insert(r)
                && let Some(n) = map.get_mut(r)
            {
                *n -= 1;
                if *n == 0 {
                    map.remove(r);
                }
            }
        }
    }

    /// Whether a commit of this process that wrote `region` has not yet
    /// told the cache.
    pub fn committing(&self, region: &str) -> bool {
        let map = self.committing.lock().unwrap_or_else(|p| p.into_inner());
        !map.is_empty() && map.contains_key(region)
    }

    /// The row TTL of `E`, if `E` is cached.
    pub fn ttl_of<E: Entity>(&self) -> Option<Duration> {
        self.ttl_for(E::META)
    }

    /// The row TTL of `meta`'s entity: registered at run time, else from
    /// `#[persist(cache(ttl = "…"))]`.
    pub fn ttl_for(&self, meta: &EntityMeta) -> Option<Duration> {
        self.entities
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(meta.table)
            .copied()
            .or(meta.cache_ttl)
    }

    pub fn register(&self, table: &'static str, ttl: Duration) {
        self.entities
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table, crate::cache::clamp_ttl(ttl));
    }

    /// Logs and counts a provider failure; the caller carries on without
    /// the cache.
    pub fn failed(&self, what: &str, e: &CacheError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(operation = what, error = %e, "persist cache unavailable; using the database");
    }

    /// Invalidates what `changes` names now, as a commit that changed it
    /// would (an eviction): the provider's error is logged, counted and
    /// answered.
    pub async fn evict(&self, changes: &ChangeSet) -> Result<(), CacheError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.provider.after_commit(changes).await.inspect_err(|e| {
            self.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "persist cache eviction failed");
        })
    }

    pub fn metrics(&self) -> CacheMetrics {
        let mut m = self.provider.metrics();
        m.errors = m.errors.max(self.errors.load(Ordering::Relaxed));
        m
    }

    /// Waits (boundedly) until no other task of this process is loading
    /// `key`; the guard marks this task as the loader (`None` when the wait
    /// timed out and this task loads anyway).
    pub async fn single_flight(&self, key: &CacheKey) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let lock = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            // Forget locks nobody holds, so the map stays small.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(key.clone()).or_default().clone()
        };
        tokio::time::timeout(SINGLE_FLIGHT_WAIT, lock.lock_owned())
            .await
            .ok()
    }
}

/// The cache key of `E`'s row with `key`.
pub(crate) fn cache_key<E: Entity>(key: &E::Key) -> CacheKey {
    CacheKey {
        region: E::META.table.to_owned(),
        key: format!("{key:?}"),
    }
}
