//! Fixtures shared by the persist-axum benchmarks: scratch databases (a
//! PostgreSQL schema of their own, a SQLite WAL file in a temp dir) dropped
//! with their guards, the benchmarked row, a typical web-session data map,
//! and a small deterministic random generator.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use persist_core::prelude::*;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection};

/// Every scratch schema, directory and Redis prefix starts with this.
const PREFIX: &str = "web_bench_";

/// The machine's PostgreSQL (override with `PERSIST_BENCH_POSTGRES_URL`).
pub fn pg_url() -> String {
    std::env::var("PERSIST_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The machine's Redis (override with `PERSIST_BENCH_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("PERSIST_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A unique name: `web_bench_{unix secs}_{pid}_{nanos}`.
pub fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{PREFIX}{}_{}_{}",
        now.as_secs(),
        std::process::id(),
        now.subsec_nanos()
    )
}

/// `url` with PostgreSQL's `search_path` set to `schema`.
pub fn pg_url_in(schema: &str) -> String {
    let base = pg_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A schema of its own on the machine's PostgreSQL (and any further schemas
/// named with [`PgScratch::extra`]), dropped with the guard.
pub struct PgScratch {
    /// The schema persist's tables go in.
    pub schema: String,
    /// A URL whose `search_path` is [`schema`](PgScratch::schema).
    pub url: String,
    dropped: Vec<String>,
}

impl PgScratch {
    /// Creates the schema.
    pub async fn new() -> Result<PgScratch, sqlx::Error> {
        let schema = unique_name();
        let mut admin = sqlx::PgConnection::connect(&pg_url()).await?;
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(PgScratch {
            url: pg_url_in(&schema),
            dropped: vec![schema.clone()],
            schema,
        })
    }

    /// Another schema name, not created here (a store may create it), but
    /// dropped with the guard.
    pub fn extra(&mut self, suffix: &str) -> String {
        let name = format!("{}_{suffix}", self.schema);
        self.dropped.push(name.clone());
        name
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        // Drop may run inside a runtime: tear down on a thread of its own.
        let names = std::mem::take(&mut self.dropped);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&pg_url()).await.ok()?;
                for name in names {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&mut admin)
                    .await;
                }
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// A SQLite file (WAL, as persist opens it) in a fresh temp dir, removed
/// with the guard.
pub struct SqliteScratch {
    /// The URL to open it with.
    pub url: String,
    dir: PathBuf,
}

impl SqliteScratch {
    /// Makes the directory; the file is created on first connect.
    pub fn new() -> std::io::Result<SqliteScratch> {
        let dir = std::env::temp_dir().join(unique_name());
        std::fs::create_dir_all(&dir)?;
        Ok(SqliteScratch {
            url: format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
            dir,
        })
    }
}

impl Drop for SqliteScratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The row the `layer` bench reads by key: a small catalogue item.
#[derive(Entity, Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[persist(table = "web_items")]
pub struct Item {
    /// Primary key, 1..=rows.
    #[persist(primary_key)]
    pub id: i64,
    /// `Item {id}`.
    pub name: String,
    /// Some price.
    pub price_cents: i64,
}

/// Creates `web_items` through persist on the database at `url` and fills
/// it with `rows` items in one set-based statement.
pub async fn fill_items(url: &str, rows: i64) -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::connect(url).await?;
    db.create_tables::<Item>().await?;
    db.close().await;
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO web_items (id, name, price_cents) \
             SELECT g, 'Item ' || g, (g * 37) % 100000 FROM generate_series(1, {rows}) AS g"
        )))
        .execute(&mut c)
        .await?;
        sqlx::query("VACUUM ANALYZE web_items")
            .execute(&mut c)
            .await?;
        c.close().await?;
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(AssertSqlSafe(format!(
            "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < {rows}) \
             INSERT INTO web_items (id, name, price_cents) \
             SELECT g, 'Item ' || g, (g * 37) % 100000 FROM seq"
        )))
        .execute(&mut c)
        .await?;
        sqlx::query("ANALYZE").execute(&mut c).await?;
        c.close().await?;
    }
    Ok(())
}

/// A typical web session's data: a user id, a cart of five items and a
/// CSRF token (the map tower-sessions keeps in a `Record`).
pub fn session_data() -> HashMap<String, serde_json::Value> {
    let cart: Vec<serde_json::Value> = (1..=5)
        .map(|i| {
            serde_json::json!({
                "sku": format!("SKU-{:05}", i * 1_117),
                "qty": i % 3 + 1,
                "price_cents": 499 + i * 250,
            })
        })
        .collect();
    HashMap::from([
        ("user_id".to_owned(), serde_json::json!(48_213)),
        ("cart".to_owned(), serde_json::Value::Array(cart)),
        (
            "csrf".to_owned(),
            serde_json::json!("Zq3xN8c1VtR0pL7mWkY2aH5sD9fG4jE6bU0oI1nQ"),
        ),
    ])
}

/// A small deterministic generator (splitmix64): the same keys every run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// How long one setup or check step (connect, create, a checking request)
/// may take before the bench gives up instead of hanging.
pub const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs a setup or check step on `rt`, failing loudly after
/// [`STEP_TIMEOUT`].
pub fn within<F: std::future::Future>(rt: &tokio::runtime::Runtime, step: F) -> F::Output {
    rt.block_on(async {
        match tokio::time::timeout(STEP_TIMEOUT, step).await {
            Ok(out) => out,
            Err(_) => panic!("a setup step took over {STEP_TIMEOUT:?}: is the server up?"),
        }
    })
}
