//! What each contender sends PostgreSQL per call: the statements the server
//! logs for one session `load` and one `save` of each store, and for one
//! request of each `layer` route. Its connections turn on
//! `log_statement=all` for themselves only (a connection option), and the
//! example reads the lines the server log gained after each call.
//!
//! `cargo run --release --example round_trips` (needs to read the server's
//! log: `WEB_BENCH_PG_LOG`, by default Debian's
//! `/var/log/postgresql/postgresql-15-main.log`).

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use persist_axum::{PersistLayer, PersistSessionStore, Tx};
use persist_cache::{InProcessCache, RedisCache};
use persist_core::prelude::*;
use time::OffsetDateTime;
use tower_sessions::SessionStore as _;
use tower_sessions_core_014::SessionStore as _;
use web_bench::{Item, PgScratch, fill_items, pg_url, session_data};

/// The server log, read from where the last call left it.
struct Log {
    file: std::fs::File,
}

impl Log {
    fn open() -> std::io::Result<Log> {
        let path = std::env::var("WEB_BENCH_PG_LOG")
            .unwrap_or_else(|_| "/var/log/postgresql/postgresql-15-main.log".into());
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Log { file })
    }

    /// The statements logged since the last call (after a moment for the
    /// server to write them).
    async fn since(&mut self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut text = String::new();
        let _ = self.file.read_to_string(&mut text);
        // A statement's own line breaks continue its entry: join them.
        let mut entries: Vec<String> = Vec::new();
        for line in text.lines() {
            match entries.last_mut() {
                Some(last) if !line.starts_with(|c: char| c.is_ascii_digit()) => {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                _ => entries.push(line.to_owned()),
            }
        }
        entries
            .iter()
            .filter_map(|l| {
                l.split_once("LOG:  statement: ")
                    .or_else(|| l.split_once("LOG:  execute "))
                    .map(|(_, s)| s.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect()
    }
}

fn show(what: &str, statements: &[String]) {
    println!("{what}: {} statements", statements.len());
    for s in statements {
        let short: String = s.chars().take(110).collect();
        println!("    {short}");
    }
}

/// `url` with `log_statement=all` for its connections.
fn logged(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    if url.contains("options=") {
        url.replacen("options=", "options=-c%20log_statement%3Dall%20", 1)
    } else {
        format!("{url}{sep}options=-c%20log_statement%3Dall")
    }
}

async fn find(Tx(s): Tx, axum::extract::Path(id): axum::extract::Path<i64>) -> String {
    match s.find::<Item>(&id).await {
        Ok(Some(item)) => item.name,
        _ => String::new(),
    }
}

async fn raw(
    axum::extract::State(pool): axum::extract::State<sqlx::PgPool>,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> String {
    sqlx::query_as::<_, Item>("SELECT id, name, price_cents FROM web_items WHERE id = $1")
        .bind(id)
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
        .map(|i| i.name)
        .unwrap_or_default()
}

async fn request(app: &axum::Router, uri: &str) -> http::StatusCode {
    use tower::ServiceExt;
    let req = http::Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("a valid request");
    match app.clone().oneshot(req).await {
        Ok(r) => r.status(),
        Err(never) => match never {},
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut log = Log::open()?;
    let mut scratch = PgScratch::new().await?;
    let sqlx_schema = scratch.extra("sqlx_store");
    let expiry = OffsetDateTime::now_utc() + time::Duration::days(1);

    // persist's store, without and with a cache tier (its few RedisCache
    // keys expire on their own, within the store's cache TTL).
    let prefix = web_bench::unique_name();
    for name in ["persist_pg", "persist_pg_cached", "persist_pg_redis"] {
        let builder = Db::builder();
        let builder = match name {
            "persist_pg_cached" => builder.cache(InProcessCache::new()),
            "persist_pg_redis" => builder.cache(
                RedisCache::connect(
                    web_bench::redis_url(),
                    prefix.clone(),
                    Duration::from_secs(60),
                )
                .await?,
            ),
            _ => builder,
        };
        let db = builder.connect(&logged(&scratch.url)).await?;
        let store = PersistSessionStore::new(db.clone());
        store.create_table().await?;
        let mut record = tower_sessions::session::Record {
            id: Default::default(),
            data: session_data(),
            expiry_date: expiry,
        };
        store.create(&mut record).await?;
        store.load(&record.id).await?; // a cached store fills its cache here
        log.since().await;
        store.load(&record.id).await?;
        show(&format!("{name} load"), &log.since().await);
        store.save(&record).await?;
        show(&format!("{name} save"), &log.since().await);
        db.close().await;
    }

    // tower-sessions-sqlx-store.
    let pool = tower_sessions_sqlx_store::sqlx::PgPool::connect(&logged(&pg_url())).await?;
    let store = tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
        .with_schema_name(&sqlx_schema)?
        .with_table_name("session")?;
    store.migrate().await?;
    let mut record = tower_sessions_core_014::session::Record {
        id: Default::default(),
        data: session_data(),
        expiry_date: expiry,
    };
    store.create(&mut record).await?;
    log.since().await;
    store.load(&record.id).await?;
    show("sqlx_store_pg load", &log.since().await);
    store.save(&record).await?;
    show("sqlx_store_pg save", &log.since().await);
    pool.close().await;

    // The layer's routes.
    fill_items(&scratch.url, 100).await?;
    let db = Db::connect(&logged(&scratch.url)).await?;
    let pool = sqlx::PgPool::connect(&logged(&scratch.url)).await?;
    let router = || axum::Router::new().route("/items/{id}", axum::routing::get(find));
    let routes = [
        (
            "layer persist_find",
            router().layer(PersistLayer::new(db.clone())),
        ),
        (
            "layer persist_find_ro",
            router().layer(PersistLayer::new(db.clone()).read_only_safe_methods(true)),
        ),
        (
            "layer raw_sqlx",
            axum::Router::new()
                .route("/items/{id}", axum::routing::get(raw))
                .with_state(pool.clone()),
        ),
    ];
    for (name, app) in &routes {
        request(app, "/items/1").await; // statements prepared, connections open
        log.since().await;
        let status = request(app, "/items/7").await;
        show(&format!("{name} ({status})"), &log.since().await);
    }
    db.close().await;
    pool.close().await;
    drop(scratch);
    Ok(())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), run())
            .await
            .unwrap_or_else(|_| Err("timed out after 120 s".into()))
    });
    if let Err(e) = outcome {
        eprintln!("round_trips: {e}");
        std::process::exit(1);
    }
}
