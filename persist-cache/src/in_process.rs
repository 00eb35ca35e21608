//! [`InProcessCache`]: a bounded, TTL'd cache inside one process.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use persist_core::cache::{
    CacheError, CacheFuture, CacheKey, CacheMetrics, CachedQuery, ChangeSet, SharedCache, clamp_ttl,
};

use crate::metrics::Counters;

/// How long invalidation records are kept by default (see
/// [`InProcessCacheBuilder::retention`]).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(600);

/// A value in one of the moka caches, with the epoch it was put at and its
/// own time to live.
#[derive(Clone)]
struct Entry<T> {
    value: T,
    epoch: u64,
    ttl: Duration,
}

/// Lets every entry expire after its own TTL (also when replaced).
struct PerEntryTtl;

impl<K, T> Expiry<K, Entry<T>> for PerEntryTtl {
    fn expire_after_create(&self, _: &K, v: &Entry<T>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
    fn expire_after_update(
        &self,
        _: &K,
        v: &Entry<T>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// The invalidation bookkeeping. Unlike the rows it is not subject to the
/// size bound: a record disappears only when it is older than the
/// retention horizon (or the record cap is reached), and then the epoch it
/// held becomes the floor below which every put is refused.
#[derive(Default)]
struct Invalidations {
    /// Latest invalidation epoch of each recently changed key.
    keys: HashMap<CacheKey, u64>,
    /// The same records in epoch order, for pruning.
    log: VecDeque<(Instant, u64, CacheKey)>,
    /// Latest invalidation epoch of each region (few: one per table; never
    /// pruned). A row put before it is a miss.
    regions: HashMap<String, u64>,
    /// Query-cache stamp of each table written.
    stamps: HashMap<String, u64>,
    /// Puts with an epoch below this are refused (records up to it pruned).
    floor: u64,
    /// Rows and query results put before this epoch are misses (everything
    /// was cleared at it).
    cleared: u64,
}

/// The provider-independent core of [`InProcessCache`], also the local tier
/// of [`NearCache`](crate::NearCache). Counts nothing.
pub(crate) struct Local {
    rows: Cache<CacheKey, Entry<Arc<[u8]>>>,
    queries: Cache<String, Entry<Arc<CachedQuery>>>,
    epoch: AtomicU64,
    invalidations: Mutex<Invalidations>,
    max_ttl: Duration,
    retention: Duration,
    max_records: usize,
}

impl Local {
    fn invalidations(&self) -> MutexGuard<'_, Invalidations> {
        self.invalidations.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ttl(&self, ttl: Duration) -> Duration {
        if ttl.is_zero() {
            self.max_ttl
        } else {
            ttl.min(self.max_ttl)
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let e = self.rows.get(key)?;
        let st = self.invalidations();
        let region = st.regions.get(&key.region).copied().unwrap_or(0);
        if e.epoch < st.cleared || e.epoch < region {
            drop(st);
            self.rows.invalidate(key);
            return None;
        }
        Some(e.value.to_vec())
    }

    /// Stores `value` unless `key` or its region changed after `epoch`.
    pub(crate) fn put_if_fresh(
        &self,
        key: &CacheKey,
        value: &[u8],
        epoch: u64,
        ttl: Duration,
    ) -> bool {
        let st = self.invalidations();
        if epoch < st.floor
            || epoch < st.cleared
            || epoch > self.epoch()
            || st.keys.get(key).is_some_and(|&e| e > epoch)
            || st.regions.get(&key.region).is_some_and(|&e| e > epoch)
        {
            return false;
        }
        // Inserted under the lock, so an `apply` either sees (and removes)
        // the row or has already recorded the epoch this put checked.
        self.rows.insert(
            key.clone(),
            Entry {
                value: value.into(),
                epoch,
                ttl: self.ttl(ttl),
            },
        );
        true
    }

    /// Applies a committed change set; answers how many keys and regions
    /// it invalidated.
    pub(crate) fn apply(&self, changes: &ChangeSet) -> usize {
        let mut st = self.invalidations();
        let e = self.epoch.fetch_add(1, SeqCst) + 1;
        let now = Instant::now();
        for k in &changes.keys {
            st.keys.insert(k.clone(), e);
            st.log.push_back((now, e, k.clone()));
            self.rows.invalidate(k);
        }
        for r in &changes.regions {
            st.regions.insert(r.clone(), e);
        }
        for t in &changes.tables {
            st.stamps.insert(t.clone(), e);
        }
        self.prune(&mut st, now);
        changes.keys.len() + changes.regions.len()
    }

    fn prune(&self, st: &mut Invalidations, now: Instant) {
        while let Some((at, e, _)) = st.log.front() {
            if now.duration_since(*at) < self.retention && st.log.len() <= self.max_records {
                break;
            }
            let e = *e;
            let (_, _, k) = st.log.pop_front().expect("front exists");
            if st.keys.get(&k) == Some(&e) {
                st.keys.remove(&k);
            }
            st.floor = st.floor.max(e);
        }
    }

    /// Forgets everything: rows, query results, and refuses every put
    /// whose epoch predates this call.
    pub(crate) fn clear(&self) {
        let mut st = self.invalidations();
        let e = self.epoch.fetch_add(1, SeqCst) + 1;
        st.cleared = e;
        st.floor = e;
        st.keys.clear();
        st.log.clear();
        self.rows.invalidate_all();
        self.queries.invalidate_all();
    }

    pub(crate) fn table_stamps(&self, tables: &[String]) -> Vec<u64> {
        let st = self.invalidations();
        tables
            .iter()
            .map(|t| st.stamps.get(t).copied().unwrap_or(0))
            .collect()
    }

    pub(crate) fn query_get(&self, key: &str) -> Option<CachedQuery> {
        let e = self.queries.get(key)?;
        if e.epoch < self.invalidations().cleared {
            return None;
        }
        Some((*e.value).clone())
    }

    /// Stores a query result taken at local epoch `epoch` (refused when
    /// everything was cleared since).
    pub(crate) fn query_put(
        &self,
        key: &str,
        value: CachedQuery,
        epoch: u64,
        ttl: Duration,
    ) -> bool {
        let st = self.invalidations();
        if epoch < st.cleared {
            return false;
        }
        self.queries.insert(
            key.to_owned(),
            Entry {
                value: Arc::new(value),
                epoch,
                ttl: self.ttl(ttl),
            },
        );
        true
    }
}

/// Builds an [`InProcessCache`] (or the local tier of a
/// [`NearCache`](crate::NearCache)).
#[derive(Debug, Clone)]
pub struct InProcessCacheBuilder {
    max_entries: u64,
    max_queries: u64,
    max_ttl: Duration,
    retention: Duration,
    max_records: usize,
}

impl Default for InProcessCacheBuilder {
    fn default() -> Self {
        InProcessCacheBuilder {
            max_entries: 100_000,
            max_queries: 10_000,
            max_ttl: Duration::from_secs(3600),
            retention: DEFAULT_RETENTION,
            max_records: 1_000_000,
        }
    }
}

impl InProcessCacheBuilder {
    /// The most rows kept (default 100,000); the least recently and least
    /// frequently used are evicted past it.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// The most query results kept (default 10,000).
    pub fn max_queries(mut self, n: u64) -> Self {
        self.max_queries = n;
        self
    }

    /// The longest any entry lives (default one hour). A put's own TTL is
    /// used when shorter; a zero TTL means this one.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// How long the epoch of an invalidated key is remembered (default ten
    /// minutes). A put whose epoch is older than the oldest remembered
    /// record is refused, so a shorter horizon only refuses more puts from
    /// long transactions; it never lets a stale one through.
    pub fn retention(mut self, horizon: Duration) -> Self {
        self.retention = horizon;
        self
    }

    /// The most invalidation records kept (default 1,000,000); past it the
    /// oldest are pruned early, with the same floor rule as
    /// [`retention`](Self::retention).
    pub fn max_records(mut self, n: usize) -> Self {
        self.max_records = n.max(1);
        self
    }

    pub(crate) fn build_local(&self) -> Local {
        Local {
            rows: Cache::builder()
                .max_capacity(self.max_entries)
                .expire_after(PerEntryTtl)
                .build(),
            queries: Cache::builder()
                .max_capacity(self.max_queries)
                .expire_after(PerEntryTtl)
                .build(),
            epoch: AtomicU64::new(1),
            invalidations: Mutex::new(Invalidations::default()),
            // Huge durations mean "until invalidated"; clamped like every
            // provider's (moka would saturate them anyway).
            max_ttl: clamp_ttl(self.max_ttl),
            retention: clamp_ttl(self.retention),
            max_records: self.max_records,
        }
    }

    /// Builds the cache.
    pub fn build(&self) -> InProcessCache {
        InProcessCache {
            inner: Arc::new(Inner {
                local: self.build_local(),
                counters: Counters::default(),
            }),
        }
    }
}

struct Inner {
    local: Local,
    counters: Counters,
}

/// A shared cache inside one process, on [moka](https://docs.rs/moka).
///
/// Rows and query results live in two size-bounded moka caches with a TTL
/// per entry. The epoch is an atomic counter; invalidation records (per key
/// and per region) and the tables' query stamps live beside them, outside
/// the size bound, so evicting a row never forgets that its key changed.
///
/// **Guarantee: strict within the process.** Once
/// [`after_commit`](SharedCache::after_commit) returns, no
/// [`get`](SharedCache::get) answers a row the change set named (or any row
/// of a region it named) and no put with an earlier epoch is stored. It
/// shares nothing with other processes: use it when one process owns the
/// database, or for data other processes never write.
///
/// It never fails: every method answers `Ok`. Cloning shares the cache.
#[derive(Clone)]
pub struct InProcessCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InProcessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessCache")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

impl Default for InProcessCache {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessCache {
    /// A cache with the defaults of [`InProcessCacheBuilder`].
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to set the size bounds, TTL and retention horizon.
    pub fn builder() -> InProcessCacheBuilder {
        InProcessCacheBuilder::default()
    }

    /// Forgets every row and query result, and refuses puts whose epoch
    /// predates this call.
    pub fn clear(&self) {
        self.inner.local.clear();
    }
}

impl SharedCache for InProcessCache {
    fn epoch(&self) -> CacheFuture<'_, u64> {
        let e = self.inner.local.epoch();
        Box::pin(async move { Ok(e) })
    }

    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Vec<u8>>> {
        let v = self.inner.local.get(key);
        if v.is_some() {
            self.inner.counters.hit();
            tracing::debug!(region = %key.region, key = %key.key, "in-process cache hit");
        } else {
            self.inner.counters.miss();
            tracing::debug!(region = %key.region, key = %key.key, "in-process cache miss");
        }
        Box::pin(async move { Ok(v) })
    }

    fn put_if_fresh<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Vec<u8>,
        epoch: u64,
        ttl: Duration,
    ) -> CacheFuture<'a, bool> {
        let stored = self.inner.local.put_if_fresh(key, &value, epoch, ttl);
        if stored {
            self.inner.counters.put();
        } else {
            self.inner.counters.rejected();
            tracing::debug!(region = %key.region, key = %key.key, epoch, "in-process cache put refused: changed since");
        }
        Box::pin(async move { Ok(stored) })
    }

    fn after_commit<'a>(&'a self, changes: &'a ChangeSet) -> CacheFuture<'a, ()> {
        let n = self.inner.local.apply(changes);
        self.inner.counters.invalidated(n);
        tracing::debug!(
            keys = changes.keys.len(),
            regions = changes.regions.len(),
            "in-process cache invalidated"
        );
        Box::pin(async { Ok(()) })
    }

    fn table_stamps<'a>(&'a self, tables: &'a [String]) -> CacheFuture<'a, Vec<u64>> {
        let s = self.inner.local.table_stamps(tables);
        Box::pin(async move { Ok(s) })
    }

    fn query_get<'a>(&'a self, key: &'a str) -> CacheFuture<'a, Option<CachedQuery>> {
        let v = self.inner.local.query_get(key);
        if v.is_some() {
            self.inner.counters.hit();
            tracing::debug!("in-process query cache hit");
        } else {
            self.inner.counters.miss();
            tracing::debug!("in-process query cache miss");
        }
        Box::pin(async move { Ok(v) })
    }

    fn query_put<'a>(
        &'a self,
        key: &'a str,
        value: CachedQuery,
        ttl: Duration,
    ) -> CacheFuture<'a, ()> {
        let epoch = self.inner.local.epoch();
        if self.inner.local.query_put(key, value, epoch, ttl) {
            self.inner.counters.put();
        }
        Box::pin(async { Ok::<(), CacheError>(()) })
    }

    fn metrics(&self) -> CacheMetrics {
        self.inner.counters.snapshot()
    }
}
