//! # persist-cache
//!
//! Shared second-level (L2) cache and query cache providers for persist.
//! Each implements [`persist_core::cache::SharedCache`]; register one with
//! `Db::builder().cache(…)` and opt entities in. persist-core never depends
//! on this crate.
//!
//! ## The contract, in one paragraph
//!
//! The session hands a provider nothing before `COMMIT`. After it, it hands
//! the transaction's [`ChangeSet`](persist_core::cache::ChangeSet) to
//! [`after_commit`](persist_core::cache::SharedCache::after_commit), and
//! `commit()` returns only once the provider applied it. Every transaction
//! takes the provider's [epoch](persist_core::cache::SharedCache::epoch)
//! before it begins; a row it loads is put with that epoch through
//! [`put_if_fresh`](persist_core::cache::SharedCache::put_if_fresh), which
//! every provider here refuses when the key (or its region) was invalidated
//! at a later epoch — so a slow reader cannot put back a row a concurrent
//! commit changed. Query results are stored with the stamps of the tables
//! they read and are valid only while those stamps are unchanged. A provider
//! failure is a [`CacheError`](persist_core::cache::CacheError): the session
//! logs and counts it and uses the database.
//!
//! ## The providers, and what each guarantees
//!
//! | provider | where the state lives | guarantee |
//! | --- | --- | --- |
//! | [`InProcessCache`] | this process (moka) | strict within the process |
//! | [`RedisCache`] | Redis, shared by every process | strict across processes |
//! | [`NearCache`] | a local tier + Redis | strict within the process; across processes, local hits are stale at most for the pub/sub delay |
//!
//! ### [`InProcessCache`]
//!
//! Two size-bounded [moka](https://docs.rs/moka) caches (rows and query
//! results) with a TTL per entry; an atomic epoch; invalidation records per
//! key and per region kept *outside* the size bound (evicting a row never
//! forgets that its key changed). Records older than the retention horizon
//! (default 10 minutes) are pruned, and the epoch pruned up to becomes a
//! floor: a put from a transaction older than that is refused — safe, never
//! stale. Once `after_commit` returns, no read in this process answers a
//! changed row. Nothing is shared with other processes.
//!
//! ```
//! use std::time::Duration;
//! use persist_cache::InProcessCache;
//!
//! let cache = InProcessCache::builder()
//!     .max_entries(50_000)
//!     .max_ttl(Duration::from_secs(300))
//!     .build();
//! # let _ = cache;
//! ```
//!
//! ### [`RedisCache`]
//!
//! Everything lives in Redis under `{prefix}:` — the epoch, the
//! invalidation records (`inv:{region}:{key}`, `rinv:{region}`), the rows
//! (`row:{region}:{key}`, each stored with the epoch it was put at, so a
//! region invalidation turns older rows into misses without scanning; a
//! batched lookup of many rows is one script), the
//! tables' stamps (`stamp:{table}`) and query results (`q:{key}`). Reads,
//! checked puts and a commit's invalidation are each one Lua script, atomic
//! in Redis: once `after_commit` returns, no process reads the old rows.
//! Redis failures come back as errors within the operation timeout (1 s by
//! default). If an invalidation failed, the provider starts a new
//! generation before serving anything once Redis answers again, so nothing
//! cached before the outage is served; the limit is another process that
//! still reached Redis during this one's outage (see [`RedisCache`]). The
//! epoch follows Redis' clock in microseconds, so a Redis that restarted
//! empty never hands out an epoch an older token could pass.
//!
//! ```no_run
//! # async fn f() -> Result<(), persist_core::cache::CacheError> {
//! use std::time::Duration;
//! use persist_cache::RedisCache;
//!
//! let cache = RedisCache::connect("redis://127.0.0.1:6379", "myapp", Duration::from_secs(60)).await?;
//! # let _ = cache; Ok(()) }
//! ```
//!
//! ### [`NearCache`]
//!
//! A local tier in front of a [`RedisCache`]. Redis stays the source of
//! truth for epochs, checked puts and stamps; every commit publishes its
//! change set on `{prefix}:inv`, and a background subscriber invalidates the
//! local tier on receipt. Pub/sub is asynchronous, so the guarantee is
//! bounded staleness: after another process's commit returns, this process
//! may answer the old row *from its local tier* until the message arrives —
//! sub-millisecond on loopback (measured in the tests, asserted under
//! 500 ms). Its own commits clear its local tier synchronously. A lost or
//! silent subscription clears the local tier and bypasses it until
//! resubscribed (a heartbeat bounds the silent case to 1 s by default).
//!
//! ## Metrics
//!
//! Every provider counts hits, misses, puts, refused puts, invalidations
//! and errors ([`SharedCache::metrics`](persist_core::cache::SharedCache::metrics)),
//! and emits `tracing` events: `debug` for hits, misses and refused puts,
//! `warn` for errors and lost subscriptions.

mod codec;
mod in_process;
mod metrics;
mod near;
mod redis_cache;

pub use in_process::{DEFAULT_RETENTION, InProcessCache, InProcessCacheBuilder};
pub use near::{NearCache, NearCacheBuilder};
pub use redis_cache::{RedisCache, RedisCacheBuilder};
