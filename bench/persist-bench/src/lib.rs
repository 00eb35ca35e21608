//! Fixtures shared by persist's benchmarks: a scratch database per backend
//! (a SQLite WAL file in a temp dir, a PostgreSQL schema of its own) filled
//! with many rows, a unique key prefix on the machine's Redis, and a small
//! deterministic random generator. Everything made here is removed when its
//! guard drops, also after a panic.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use persist_core::prelude::*;
use persist_core::sqlx::{self, AssertSqlSafe, Connection};

/// The machine's PostgreSQL (override with `PERSIST_BENCH_POSTGRES_URL`).
pub fn pg_url() -> String {
    std::env::var("PERSIST_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The machine's Redis (override with `PERSIST_BENCH_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("PERSIST_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The benchmarked row: a typical small entity.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "bench_accounts")]
pub struct Account {
    /// Primary key, 1..=rows.
    #[persist(primary_key)]
    pub id: i64,
    /// `user{id}@example.com`.
    pub email: String,
    /// `User {id}`.
    pub name: String,
    /// Some number.
    pub balance_cents: i64,
    /// Some flag.
    pub active: bool,
}

const PREFIX: &str = "persist_bench_";
/// Leftovers of interrupted runs older than this are dropped.
const SWEEP_AGE: Duration = Duration::from_secs(3600);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A unique name: `persist_bench_{unix secs}_{pid}_{nanos}`.
pub fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{PREFIX}{}_{}_{nanos}", now_secs(), std::process::id())
}

fn is_old(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s + SWEEP_AGE.as_secs() < now_secs())
}

/// Which database a [`Scratch`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in WAL mode.
    Sqlite,
    /// A schema on the machine's PostgreSQL.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A scratch database holding `rows` [`Account`]s; dropped with the guard.
pub struct Scratch {
    /// The backend.
    pub backend: Backend,
    /// The URL to open it with.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    PgSchema(String),
}

impl Scratch {
    /// A SQLite file (WAL) in a fresh temp dir, `rows` accounts in it.
    pub async fn sqlite(rows: i64) -> Result<Scratch, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(unique_name());
        std::fs::create_dir_all(&dir)?;
        let scratch = Scratch {
            backend: Backend::Sqlite,
            // persist opens a file database in WAL mode (synchronous=NORMAL).
            url: format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
            cleanup: Cleanup::Dir(dir),
        };
        scratch.fill(rows).await?;
        Ok(scratch)
    }

    /// A schema of its own on the machine's PostgreSQL, `rows` accounts in
    /// it. Schemas of interrupted runs older than an hour are dropped first.
    pub async fn postgres(rows: i64) -> Result<Scratch, Box<dyn std::error::Error>> {
        let base = pg_url();
        let mut admin = sqlx::PgConnection::connect(&base).await?;
        let old: Vec<(String,)> = sqlx::query_as(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'persist\\_bench\\_%'",
        )
        .fetch_all(&mut admin)
        .await?;
        for (s,) in old.into_iter().filter(|(s,)| is_old(s)) {
            sqlx::query(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{s}\" CASCADE"
            )))
            .execute(&mut admin)
            .await?;
        }
        let name = unique_name();
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let scratch = Scratch {
            backend: Backend::Postgres,
            url: format!("{base}{sep}options=-c%20search_path%3D{name}"),
            cleanup: Cleanup::PgSchema(name),
        };
        scratch.fill(rows).await?;
        Ok(scratch)
    }

    /// Creates the table through persist and fills it with one set-based
    /// `INSERT … SELECT` (no cache is involved).
    async fn fill(&self, rows: i64) -> Result<(), Box<dyn std::error::Error>> {
        let db = Db::connect(&self.url).await?;
        db.create_tables::<Account>().await?;
        db.close().await;
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::query(AssertSqlSafe(format!(
                    "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {rows}) \
                     INSERT INTO bench_accounts (id, email, name, balance_cents, active) \
                     SELECT g, 'user' || g || '@example.com', 'User ' || g, (g * 37) % 100000, g % 7 <> 0 FROM seq"
                )))
                .execute(&mut c)
                .await?;
                sqlx::query("ANALYZE").execute(&mut c).await?;
                c.close().await?;
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO bench_accounts (id, email, name, balance_cents, active) \
                     SELECT g, 'user' || g || '@example.com', 'User ' || g, (g * 37) % 100000, g % 7 <> 0 \
                     FROM generate_series(1, {rows}) AS g"
                )))
                .execute(&mut c)
                .await?;
                sqlx::query("VACUUM ANALYZE bench_accounts")
                    .execute(&mut c)
                    .await?;
                c.close().await?;
            }
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PgSchema(name) => {
                // Drop may run inside a runtime: tear down on a thread of its own.
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&pg_url()).await.ok()?;
                        sqlx::query(AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                        )))
                        .execute(&mut admin)
                        .await
                        .ok()?;
                        admin.close().await.ok()
                    })
                })
                .join();
            }
        }
    }
}

/// A unique key prefix on the machine's Redis; every key under it is
/// deleted when the guard drops.
pub struct RedisPrefix {
    /// The prefix (keys are `{name}:…`).
    pub name: String,
}

impl RedisPrefix {
    /// A fresh prefix; prefixes of interrupted runs older than an hour are
    /// deleted first.
    pub fn new() -> Result<RedisPrefix, redis::RedisError> {
        let p = RedisPrefix {
            name: unique_name(),
        };
        let mut c = redis::Client::open(redis_url())?
            .get_connection_with_timeout(Duration::from_secs(2))?;
        let _: String = redis::cmd("PING").query(&mut c)?;
        let stale: Vec<String> = scan(&mut c, &format!("{PREFIX}*"))?
            .into_iter()
            .filter(|k| is_old(k))
            .collect();
        for chunk in stale.chunks(1000) {
            let _: i64 = redis::cmd("DEL").arg(chunk).query(&mut c)?;
        }
        Ok(p)
    }
}

/// The keys under `prefix` on the machine's Redis now.
pub fn redis_keys(prefix: &str) -> Result<Vec<String>, redis::RedisError> {
    let mut c =
        redis::Client::open(redis_url())?.get_connection_with_timeout(Duration::from_secs(2))?;
    scan(&mut c, &format!("{prefix}:*"))
}

fn scan(c: &mut redis::Connection, pattern: &str) -> Result<Vec<String>, redis::RedisError> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(c)?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        if let Ok(keys) = scan(&mut c, &format!("{}:*", self.name)) {
            for chunk in keys.chunks(1000) {
                let _ = redis::cmd("DEL").arg(chunk).query::<i64>(&mut c);
            }
        }
    }
}

/// xorshift64*: a deterministic pseudo-random sequence (no dependency).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `n` distinct keys drawn at random from `1..=rows`.
pub fn hot_set(rows: i64, n: usize, seed: u64) -> Vec<i64> {
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k = 1 + rng.below(rows as u64) as i64;
        if seen.insert(k) {
            out.push(k);
        }
    }
    out
}
