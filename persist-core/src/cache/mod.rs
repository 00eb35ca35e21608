//! The shared (second-level) cache interface and the row encoding it
//! stores. persist-core defines it; `persist-cache` implements it (in-process,
//! Redis, near-cache); users register a provider with
//! [`DbBuilder::cache`](crate::db::DbBuilder::cache) and opt entities in with
//! [`DbBuilder::cache_entity`](crate::db::DbBuilder::cache_entity).
//!
//! Commit safety rests on three rules the session follows and providers
//! implement:
//! - nothing reaches the cache before its transaction commits: the session
//!   hands the provider a [`ChangeSet`] after `COMMIT`, and `commit()`
//!   returns only once the provider has applied it;
//! - a row loaded from the database is put with the provider's
//!   [epoch](SharedCache::epoch) taken *before the transaction began*; the
//!   provider refuses the put when the key was invalidated at a later epoch,
//!   so a reader whose snapshot predates a concurrent commit cannot put the
//!   old row back;
//! - sessions that wrote a table neither read it from nor put it into the
//!   cache until they commit.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::BoxDynError;

mod codec;
pub(crate) mod layer;

pub(crate) use codec::{decode_pairs, decode_projected, encode_pairs, encode_projected};
pub use codec::{decode_row, decode_rows, encode_row, encode_rows, layout_fingerprint};

/// The longest time-to-live a cache entry is given: a longer one, up to
/// `Duration::MAX`, means "until invalidated" and is clamped to this (a
/// year), so providers never overflow adding it to a clock or converting it
/// to milliseconds (Redis refuses an expiry past `i64` milliseconds).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `ttl`, clamped to [`MAX_TTL`]. Providers apply it to every TTL and
/// retention they are given.
pub fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.min(MAX_TTL)
}

/// A boxed future answered by a cache provider.
pub type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send + 'a>>;

/// A failure of the cache provider (unreachable server, bad reply, …). The
/// session logs and counts it and carries on with the database: a cache
/// failure never fails a transaction.
#[derive(Debug, thiserror::Error)]
#[error("cache: {0}")]
pub struct CacheError(#[source] pub BoxDynError);

impl CacheError {
    /// A cache error from any error or message.
    pub fn new(e: impl Into<BoxDynError>) -> Self {
        CacheError(e.into())
    }
}

/// The cache key of one entity row: its table (the region) and its primary
/// key, encoded as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    /// The entity's table.
    pub region: String,
    /// The primary key (`Debug` of the key value: `42`, `"abc"`, `(1, 2)`).
    pub key: String,
}

/// What a committed transaction changed, handed to the provider after
/// `COMMIT` and before `commit()` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Rows updated or deleted (or inserted, which may replace a cached
    /// "absent"): invalidate them.
    pub keys: Vec<CacheKey>,
    /// Regions changed by statements that name no keys (bulk updates and
    /// deletes, cascades): invalidate every row of them.
    pub regions: Vec<String>,
    /// Every table written: bump their query-cache stamps.
    pub tables: Vec<String>,
}

impl ChangeSet {
    /// Whether the transaction changed nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.regions.is_empty() && self.tables.is_empty()
    }
}

/// A cached query result: the rows, and the stamps of the tables it read
/// when it was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedQuery {
    /// `(table, stamp)` for every table the query read.
    pub stamps: Vec<(String, u64)>,
    /// The encoded rows.
    pub rows: Vec<u8>,
}

/// Counters every provider keeps, readable with [`SharedCache::metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheMetrics {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups the cache could not answer.
    pub misses: u64,
    /// Rows and query results stored.
    pub puts: u64,
    /// Puts refused because the key changed after the reader's epoch.
    pub rejected_puts: u64,
    /// Keys and regions invalidated after commits.
    pub invalidations: u64,
    /// Provider failures (the database answered instead).
    pub errors: u64,
}

/// A shared cache provider. Object-safe: persist holds it as
/// `Arc<dyn SharedCache>`.
pub trait SharedCache: Send + Sync + 'static {
    /// The current epoch: a counter that every
    /// [`after_commit`](SharedCache::after_commit) advances. Sessions take it before a
    /// transaction begins and pass it to [`put_if_fresh`](SharedCache::put_if_fresh).
    fn epoch(&self) -> CacheFuture<'_, u64>;

    /// The cached row for `key`, if any.
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Vec<u8>>>;

    /// The cached rows for `keys`, in the same order (`None` for a miss).
    /// The default asks [`get`](SharedCache::get) for each key in turn;
    /// providers with a batched read (Redis: one script for all keys)
    /// override it.
    fn get_many<'a>(&'a self, keys: &'a [CacheKey]) -> CacheFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                out.push(self.get(k).await?);
            }
            Ok(out)
        })
    }

    /// Stores a row loaded from the database by a transaction that began at
    /// `epoch`, unless `key` (or its region) was invalidated at a later
    /// epoch. Answers whether it was stored.
    fn put_if_fresh<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Vec<u8>,
        epoch: u64,
        ttl: Duration,
    ) -> CacheFuture<'a, bool>;

    /// Applies a committed transaction's changes: advances the epoch,
    /// records it as the invalidation epoch of every key and region
    /// changed, removes their entries, and bumps the tables' stamps.
    fn after_commit<'a>(&'a self, changes: &'a ChangeSet) -> CacheFuture<'a, ()>;

    /// The current stamps of `tables` (0 for a table never written).
    fn table_stamps<'a>(&'a self, tables: &'a [String]) -> CacheFuture<'a, Vec<u64>>;

    /// A cached query result.
    fn query_get<'a>(&'a self, key: &'a str) -> CacheFuture<'a, Option<CachedQuery>>;

    /// Stores a query result.
    fn query_put<'a>(
        &'a self,
        key: &'a str,
        value: CachedQuery,
        ttl: Duration,
    ) -> CacheFuture<'a, ()>;

    /// The provider's counters.
    fn metrics(&self) -> CacheMetrics;
}

// ----- the row encoding ------------------------------------------------------
