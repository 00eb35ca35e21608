//! [`RedisCache`]: every process shares one Redis; all state lives there.

use std::future::Future;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use persist_core::cache::{
    CacheError, CacheFuture, CacheKey, CacheMetrics, CachedQuery, ChangeSet, SharedCache, clamp_ttl,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use crate::codec::{MSG_CLEAR, decode_query, encode_changes, encode_query};
use crate::in_process::DEFAULT_RETENTION;
use crate::metrics::Counters;

/// Lua shared by every script.
///
/// The epoch is a hybrid clock: never below Redis' own clock in
/// microseconds, advanced by one at least on every commit. `ensure` finds a
/// missing (or foreign) epoch or generation — Redis restarted empty, was
/// flushed, or evicted them — and starts both at the current time, above
/// every token handed out before: every earlier token is then refused and
/// every row put before is a miss.
const PRELUDE: &str = r"
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(n) return string.format('%.0f', n) end
local function num(k) return tonumber(redis.call('GET', k) or '') end
local function ensure(ek, gk)
  local e, g = num(ek), num(gk)
  if e == nil or g == nil or g > e then
    local n = math.max((e or 0) + 1, now_us())
    redis.call('SET', ek, fmt(n))
    redis.call('SET', gk, fmt(n))
    return n, n
  end
  return e, g
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// KEYS: epoch, gen. Ticks the epoch up to the clock and answers it.
static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local e = ensure(KEYS[1], KEYS[2])
local n = now_us()
if n > e then redis.call('SET', KEYS[1], fmt(n)); e = n end
return e
",
    )
});

/// KEYS: epoch, gen, row, rinv. The row's payload, unless it was put before
/// its region's invalidation or the generation, or is not ours.
static GET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local e, g = ensure(KEYS[1], KEYS[2])
local v = redis.call('GET', KEYS[3])
if not v then return false end
local bar = string.find(v, '|', 1, true)
if not bar or bar > 21 then return false end
local p = tonumber(string.sub(v, 1, bar - 1))
if p == nil or p < g then return false end
local r = num(KEYS[4])
if r and r > p then return false end
return string.sub(v, bar + 1)
",
    )
});

/// KEYS: epoch, gen, then each row followed by its region's record. The
/// payload of each row as [`GET`] answers it (`false` for a miss), in order.
static GET_MANY: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local e, g = ensure(KEYS[1], KEYS[2])
local out = {}
for j = 3, #KEYS, 2 do
  local res = false
  local v = redis.call('GET', KEYS[j])
  if v then
    local bar = string.find(v, '|', 1, true)
    if bar and bar <= 21 then
      local p = tonumber(string.sub(v, 1, bar - 1))
      local r = num(KEYS[j + 1])
      if p ~= nil and p >= g and not (r and r > p) then
        res = string.sub(v, bar + 1)
      end
    end
  end
  out[#out + 1] = res
end
return out
",
    )
});

/// KEYS: epoch, gen, row, inv, rinv. ARGV: token, ttl ms, value, horizon us.
/// Stores `token|value` unless the key or region changed after the token,
/// the token predates the generation, or it is older than the horizon
/// (its invalidation records may have expired).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local e, g = ensure(KEYS[1], KEYS[2])
local t = tonumber(ARGV[1])
if t == nil or t < g or t > e then return 0 end
if t < now_us() - tonumber(ARGV[4]) then return 0 end
local i = num(KEYS[4])
if i and i > t then return 0 end
local r = num(KEYS[5])
if r and r > t then return 0 end
redis.call('SET', KEYS[3], ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[2])
return 1
",
    )
});

/// KEYS: epoch, gen, then nk invalidation records, nk rows, nr region
/// records, nt stamps. ARGV: nk, nr, nt, record ttl ms, channel, message.
/// Advances the epoch, records it for every key and region, deletes the
/// rows, stamps the tables and publishes the change set — atomically.
static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local e = ensure(KEYS[1], KEYS[2])
local n = math.max(e + 1, now_us())
local s = fmt(n)
redis.call('SET', KEYS[1], s)
local nk, nr, nt = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for j = 3, 2 + nk do
  redis.call('SET', KEYS[j], s, 'PX', ARGV[4])
  redis.call('DEL', KEYS[j + nk])
end
for j = 3 + 2 * nk, 2 + 2 * nk + nr + nt do
  redis.call('SET', KEYS[j], s)
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return n
",
    )
});

/// KEYS: epoch, gen. ARGV: channel, message. Starts a new generation: every
/// row and query result cached before is a miss, every earlier token is
/// refused; near-caches are told to forget everything.
static RESET: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local e = ensure(KEYS[1], KEYS[2])
local n = math.max(e + 1, now_us())
redis.call('SET', KEYS[1], fmt(n))
redis.call('SET', KEYS[2], fmt(n))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
",
    )
});

/// KEYS: epoch, gen, then the tables' stamps. Each stamp is the epoch of the
/// table's last change, never below the generation (so a new generation
/// changes every stamp and invalidates every cached query).
static STAMPS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local e, g = ensure(KEYS[1], KEYS[2])
local out = {}
for j = 3, #KEYS do
  out[#out + 1] = math.max(num(KEYS[j]) or 0, g)
end
return out
",
    )
});

/// Key names under the application prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// A region (table) name with `%` and `:` escaped, so that `region:key`
/// cannot be read two ways.
fn region_part(region: &str) -> String {
    region.replace('%', "%25").replace(':', "%3A")
}

impl Keys {
    fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }
    fn generation(&self) -> String {
        format!("{}:gen", self.prefix)
    }
    fn row(&self, k: &CacheKey) -> String {
        format!("{}:row:{}:{}", self.prefix, region_part(&k.region), k.key)
    }
    fn inv(&self, k: &CacheKey) -> String {
        format!("{}:inv:{}:{}", self.prefix, region_part(&k.region), k.key)
    }
    fn rinv(&self, region: &str) -> String {
        format!("{}:rinv:{}", self.prefix, region_part(region))
    }
    fn stamp(&self, table: &str) -> String {
        format!("{}:stamp:{}", self.prefix, region_part(table))
    }
    fn query(&self, key: &str) -> String {
        format!("{}:q:{}", self.prefix, key)
    }
    pub(crate) fn channel(&self) -> String {
        format!("{}:inv", self.prefix)
    }
}

/// Builds a [`RedisCache`] (or the remote tier of a
/// [`NearCache`](crate::NearCache)).
#[derive(Debug, Clone)]
pub struct RedisCacheBuilder {
    pub(crate) url: String,
    prefix: String,
    default_ttl: Duration,
    retention: Duration,
    pub(crate) op_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl RedisCacheBuilder {
    /// How long the epoch of an invalidated key is kept in Redis (default
    /// ten minutes; the records live twice as long). Puts whose epoch is
    /// older than this are refused, so a transaction that loads a row after
    /// running longer than this does not cache it.
    pub fn retention(mut self, horizon: Duration) -> Self {
        self.retention = horizon;
        self
    }

    /// The longest any operation may take, reconnection included, before it
    /// fails with a [`CacheError`] (default 1 s).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The longest one connection attempt may take (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Builds the cache without connecting: the connection is made on first
    /// use (and remade after a failure), so the application starts while
    /// Redis is down. Must be called inside a Tokio runtime.
    pub fn build(&self) -> Result<RedisCache, CacheError> {
        let client = redis::Client::open(self.url.as_str()).map_err(CacheError::new)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.op_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(CacheError::new)?;
        Ok(RedisCache {
            inner: Arc::new(Inner {
                conn,
                client,
                keys: Keys {
                    prefix: self.prefix.clone(),
                },
                // Huge durations mean "until invalidated": clamped, so
                // they fit Redis' expiries (and double it without overflow).
                default_ttl: clamp_ttl(self.default_ttl),
                retention: clamp_ttl(self.retention),
                op_timeout: self.op_timeout,
                failed_commits: AtomicU64::new(0),
                reset_upto: AtomicU64::new(0),
                counters: Counters::default(),
            }),
        })
    }

    /// Builds the cache and checks that Redis answers.
    pub async fn connect(&self) -> Result<RedisCache, CacheError> {
        let cache = self.build()?;
        cache.epoch().await?;
        Ok(cache)
    }
}

struct Inner {
    conn: ConnectionManager,
    client: redis::Client,
    keys: Keys,
    default_ttl: Duration,
    retention: Duration,
    op_timeout: Duration,
    /// After-commits that failed (their invalidations may be lost) …
    failed_commits: AtomicU64,
    /// … and how many of them a new generation has covered.
    reset_upto: AtomicU64,
    counters: Counters,
}

/// A shared cache in Redis, through the `redis` crate's async
/// [`ConnectionManager`]. All state — the epoch, invalidation records, rows,
/// table stamps and query results — lives in Redis under `{prefix}:`, so
/// every process using the same Redis and prefix agrees.
///
/// **Guarantee: strict across processes.** Reads, checked puts and the
/// commit's invalidation are single Lua scripts, atomic in Redis. When
/// [`after_commit`](SharedCache::after_commit) returns `Ok`, the changed
/// rows are deleted (a changed region's rows, stored with the epoch they
/// were put at, are misses), so no process reads them afterwards; and a
/// reader whose transaction began before the commit cannot put its old row
/// back.
///
/// **Failures** (Redis unreachable, slow, or answering nonsense) come back
/// as [`CacheError`] within the [operation timeout](RedisCacheBuilder::op_timeout);
/// the session then uses the database. If an `after_commit` fails, its
/// invalidations may be lost: the provider remembers it and, before serving
/// anything once Redis answers again, starts a new *generation* (`{prefix}:gen`),
/// which turns every row and query result cached before into a miss and
/// refuses every put from an earlier transaction. The remaining limit:
/// another process that still reached Redis during this one's outage may
/// serve the rows this one changed until this one reconnects (or their TTL
/// ends).
///
/// **Redis restarts.** The epoch is initialized (`SET` when missing) to
/// Redis' clock in microseconds and never falls below it, so after a
/// restart that lost data it is larger than every token handed out before;
/// a missing epoch also starts a new generation. Run the cache's Redis
/// without persistence (or flush it on restore) — a restored *old* snapshot
/// could hold rows changed since — and with `maxmemory-policy noeviction`
/// or enough memory: an evicted invalidation record could let a put from a
/// transaction concurrent with that commit through.
///
/// Every commit also publishes its change set on `{prefix}:inv` (for
/// [`NearCache`](crate::NearCache)s). Metrics are counted in this process.
/// Cloning shares the connection.
#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.inner.keys.prefix)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// The longest expiry sent to Redis, in milliseconds (some 142,000 years):
/// Redis refuses one that overflows its clock (`i64` milliseconds), and it
/// stays exact as a Lua number.
const MAX_PX: u64 = 1 << 52;

/// An expiry in milliseconds for Redis (`PX`), from 1 to [`MAX_PX`].
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_PX)
}

impl RedisCache {
    /// A builder for the Redis at `url` (`redis://host:port/db`), keys under
    /// `{prefix}:`, and `default_ttl` for puts that give a zero TTL.
    pub fn builder(
        url: impl Into<String>,
        prefix: impl Into<String>,
        default_ttl: Duration,
    ) -> RedisCacheBuilder {
        RedisCacheBuilder {
            url: url.into(),
            prefix: prefix.into(),
            default_ttl,
            retention: DEFAULT_RETENTION,
            op_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(250),
        }
    }

    /// Connects with the builder's defaults; fails when Redis does not
    /// answer.
    pub async fn connect(
        url: impl Into<String>,
        prefix: impl Into<String>,
        default_ttl: Duration,
    ) -> Result<Self, CacheError> {
        Self::builder(url, prefix, default_ttl).connect().await
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    fn ttl(&self, ttl: Duration) -> u64 {
        ms(if ttl.is_zero() {
            self.inner.default_ttl
        } else {
            clamp_ttl(ttl)
        })
    }

    /// Runs `f` after starting a new generation if an after-commit failed,
    /// within the operation timeout; logs and counts failures.
    async fn run<'a, T, F>(&'a self, op: &'static str, f: F) -> Result<T, CacheError>
    where
        F: Future<Output = RedisResult<T>> + Send + 'a,
    {
        let work = async {
            self.reset_if_needed().await?;
            f.await
        };
        let res = match tokio::time::timeout(self.inner.op_timeout, work).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => CacheError::new(e),
            Err(_) => CacheError::new(format!(
                "redis {op} timed out after {:?}",
                self.inner.op_timeout
            )),
        };
        self.inner.counters.error();
        tracing::warn!(op, error = %res, "redis cache operation failed");
        Err(res)
    }

    async fn reset_if_needed(&self) -> RedisResult<()> {
        let failed = self.inner.failed_commits.load(SeqCst);
        if failed <= self.inner.reset_upto.load(SeqCst) {
            return Ok(());
        }
        let k = &self.inner.keys;
        let mut c = self.inner.conn.clone();
        let generation: u64 = RESET
            .key(k.epoch())
            .key(k.generation())
            .arg(k.channel())
            .arg(&[MSG_CLEAR][..])
            .invoke_async(&mut c)
            .await?;
        self.inner.reset_upto.fetch_max(failed, SeqCst);
        tracing::warn!(
            generation,
            "redis cache: new generation after a failed invalidation; earlier entries dropped"
        );
        Ok(())
    }

    /// `get` without counting.
    pub(crate) async fn get_raw(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        let k = &self.inner.keys;
        let mut c = self.inner.conn.clone();
        let mut inv = GET.key(k.epoch());
        inv.key(k.generation())
            .key(k.row(key))
            .key(k.rinv(&key.region));
        self.run("get", async move { inv.invoke_async(&mut c).await })
            .await
    }

    /// `get_many` without counting: one script for all the keys.
    pub(crate) async fn get_many_raw(
        &self,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.inner.keys;
        let mut c = self.inner.conn.clone();
        let mut inv = GET_MANY.key(k.epoch());
        inv.key(k.generation());
        for key in keys {
            inv.key(k.row(key)).key(k.rinv(&key.region));
        }
        let v: Vec<Option<Vec<u8>>> = self
            .run("get_many", async move { inv.invoke_async(&mut c).await })
            .await?;
        if v.len() != keys.len() {
            return Err(CacheError::new("redis answered the wrong number of rows"));
        }
        Ok(v)
    }

    /// `put_if_fresh` without counting.
    pub(crate) async fn put_raw(
        &self,
        key: &CacheKey,
        value: &[u8],
        epoch: u64,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let k = &self.inner.keys;
        let mut c = self.inner.conn.clone();
        let horizon = u64::try_from(self.inner.retention.as_micros()).unwrap_or(u64::MAX);
        let mut inv = PUT.key(k.epoch());
        inv.key(k.generation())
            .key(k.row(key))
            .key(k.inv(key))
            .key(k.rinv(&key.region))
            .arg(epoch)
            .arg(self.ttl(ttl))
            .arg(value)
            .arg(horizon);
        self.run("put", async move {
            inv.invoke_async::<i64>(&mut c).await.map(|n| n == 1)
        })
        .await
    }

    /// `after_commit` without counting.
    pub(crate) async fn commit_raw(&self, changes: &ChangeSet) -> Result<(), CacheError> {
        let k = &self.inner.keys;
        let mut inv = COMMIT.key(k.epoch());
        inv.key(k.generation());
        for key in &changes.keys {
            inv.key(k.inv(key));
        }
        for key in &changes.keys {
            inv.key(k.row(key));
        }
        for r in &changes.regions {
            inv.key(k.rinv(r));
        }
        for t in &changes.tables {
            inv.key(k.stamp(t));
        }
        inv.arg(changes.keys.len())
            .arg(changes.regions.len())
            .arg(changes.tables.len())
            .arg(ms(self.inner.retention.saturating_mul(2)))
            .arg(k.channel())
            .arg(encode_changes(changes));
        let mut c = self.inner.conn.clone();
        let res = self
            .run("after_commit", async move {
                inv.invoke_async::<u64>(&mut c).await
            })
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                self.inner.failed_commits.fetch_add(1, SeqCst);
                Err(e)
            }
        }
    }

    /// `query_get` without counting; a malformed value is a miss.
    pub(crate) async fn query_get_raw(&self, key: &str) -> Result<Option<CachedQuery>, CacheError> {
        let name = self.inner.keys.query(key);
        let mut c = self.inner.conn.clone();
        let raw: Option<Vec<u8>> = self
            .run("query_get", async move {
                redis::cmd("GET").arg(name).query_async(&mut c).await
            })
            .await?;
        Ok(raw.and_then(|b| {
            let q = decode_query(&b);
            if q.is_none() {
                tracing::warn!(key, "malformed cached query result in redis; ignored");
            }
            q
        }))
    }

    /// `query_put` without counting.
    pub(crate) async fn query_put_raw(
        &self,
        key: &str,
        value: &CachedQuery,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let name = self.inner.keys.query(key);
        let bytes = encode_query(value);
        let ttl = self.ttl(ttl);
        let mut c = self.inner.conn.clone();
        self.run("query_put", async move {
            redis::cmd("SET")
                .arg(name)
                .arg(bytes)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// `table_stamps` without counting.
    pub(crate) async fn stamps_raw(&self, tables: &[String]) -> Result<Vec<u64>, CacheError> {
        let k = &self.inner.keys;
        let mut inv = STAMPS.key(k.epoch());
        inv.key(k.generation());
        for t in tables {
            inv.key(k.stamp(t));
        }
        let mut c = self.inner.conn.clone();
        let n = tables.len();
        let v: Vec<u64> = self
            .run(
                "table_stamps",
                async move { inv.invoke_async(&mut c).await },
            )
            .await?;
        if v.len() != n {
            return Err(CacheError::new("redis answered the wrong number of stamps"));
        }
        Ok(v)
    }

    /// `epoch` without counting.
    pub(crate) async fn epoch_raw(&self) -> Result<u64, CacheError> {
        let k = &self.inner.keys;
        let mut inv = EPOCH.key(k.epoch());
        inv.key(k.generation());
        let mut c = self.inner.conn.clone();
        self.run("epoch", async move { inv.invoke_async(&mut c).await })
            .await
    }
}

impl SharedCache for RedisCache {
    fn epoch(&self) -> CacheFuture<'_, u64> {
        Box::pin(self.epoch_raw())
    }

    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let v = self.get_raw(key).await?;
            if v.is_some() {
                self.inner.counters.hit();
                tracing::debug!(region = %key.region, key = %key.key, "redis cache hit");
            } else {
                self.inner.counters.miss();
                tracing::debug!(region = %key.region, key = %key.key, "redis cache miss");
            }
            Ok(v)
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [CacheKey]) -> CacheFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let v = self.get_many_raw(keys).await?;
            let hits = v.iter().filter(|r| r.is_some()).count();
            self.inner.counters.lookups(hits, v.len() - hits);
            tracing::debug!(keys = v.len(), hits, "redis cache batched lookup");
            Ok(v)
        })
    }

    fn put_if_fresh<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Vec<u8>,
        epoch: u64,
        ttl: Duration,
    ) -> CacheFuture<'a, bool> {
        Box::pin(async move {
            let stored = self.put_raw(key, &value, epoch, ttl).await?;
            if stored {
                self.inner.counters.put();
            } else {
                self.inner.counters.rejected();
                tracing::debug!(region = %key.region, key = %key.key, epoch, "redis cache put refused: changed since");
            }
            Ok(stored)
        })
    }

    fn after_commit<'a>(&'a self, changes: &'a ChangeSet) -> CacheFuture<'a, ()> {
        Box::pin(async move {
            if changes.is_empty() {
                return Ok(());
            }
            self.commit_raw(changes).await?;
            self.inner
                .counters
                .invalidated(changes.keys.len() + changes.regions.len());
            tracing::debug!(
                keys = changes.keys.len(),
                regions = changes.regions.len(),
                "redis cache invalidated"
            );
            Ok(())
        })
    }

    fn table_stamps<'a>(&'a self, tables: &'a [String]) -> CacheFuture<'a, Vec<u64>> {
        Box::pin(self.stamps_raw(tables))
    }

    fn query_get<'a>(&'a self, key: &'a str) -> CacheFuture<'a, Option<CachedQuery>> {
        Box::pin(async move {
            let v = self.query_get_raw(key).await?;
            if v.is_some() {
                self.inner.counters.hit();
                tracing::debug!("redis query cache hit");
            } else {
                self.inner.counters.miss();
                tracing::debug!("redis query cache miss");
            }
            Ok(v)
        })
    }

    fn query_put<'a>(
        &'a self,
        key: &'a str,
        value: CachedQuery,
        ttl: Duration,
    ) -> CacheFuture<'a, ()> {
        Box::pin(async move {
            self.query_put_raw(key, &value, ttl).await?;
            self.inner.counters.put();
            Ok(())
        })
    }

    fn metrics(&self) -> CacheMetrics {
        self.inner.counters.snapshot()
    }
}
