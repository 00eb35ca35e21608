//! Per-request web-session `load` and `save`, each store called through its
//! own `SessionStore` trait, all in one run:
//!
//! - `persist_pg`: persist's `PersistSessionStore` on PostgreSQL;
//!   `persist_pg_cached` with an `InProcessCache` on the `Db`,
//!   `persist_pg_redis` with a `RedisCache` (tower-sessions 0.15's trait);
//! - `sqlx_store_pg`: tower-sessions-sqlx-store's `PostgresStore` (sqlx 0.8,
//!   tower-sessions-core 0.14's trait), in a schema it migrates itself;
//! - `redis_store`: tower-sessions-redis-store's `RedisStore` over fred;
//!   `moka_store`: tower-sessions-moka-store's `MokaStore` (in process);
//! - `floor_autocommit` / `floor_in_tx`: the same SELECT (load) or upsert
//!   (save) on the sqlx-store's table with sqlx 0.9 directly, MessagePack
//!   included, as one autocommit statement or inside BEGIN … COMMIT: the
//!   round-trip floors of a store without and with a transaction.
//!
//! One session record (a user id, a cart of five items, a CSRF token) per
//! store, created before measuring. `load` reads it back; `save` writes it
//! with one cart quantity changed per call (every save changes the bytes).
//! Outside the timed loops every store is checked: a load returns what was
//! last saved (for the cached ones, what the cache serves after the saves),
//! and persist's statement counter shows what each timed loop sent.
//!
//! `bash bench/run.sh` with `WEB_BENCHES=sessions` runs it.

use std::cell::Cell;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use time::OffsetDateTime;
use tokio::runtime::Runtime;
use web_bench::{PgScratch, redis_url, session_data, within};

use tower_sessions_core_014::SessionStore as SessionStore014;
use tower_sessions_core_014::session::{Id as Id014, Record as Record014};
use tower_sessions_moka_store::MokaStore;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{
    Client as FredClient, ClientLike, Config as FredConfig,
};
use tower_sessions_sqlx_store::PostgresStore;
use tower_sessions_sqlx_store::sqlx as sqlx08;

type Data = HashMap<String, serde_json::Value>;

/// Changes one cart quantity: a save that writes different bytes, of the
/// same size, every call.
fn touch(data: &mut Data, n: u64) {
    if let Some(qty) = data
        .get_mut("cart")
        .and_then(|c| c.get_mut(0))
        .and_then(|item| item.get_mut("qty"))
    {
        *qty = serde_json::json!(n % 9 + 1);
    }
}

fn expiry() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(1)
}

/// What persist's statement counter saw over one contender's load loops
/// and save loops, and how many loads and saves there were.
struct Measured {
    statements: Option<(u64, u64)>,
    loads: u64,
    saves: u64,
}

/// Benchmarks `load` and `save` of one store, checks outside the timed
/// loops that a load returns the last save, then deletes the record. One
/// macro for both trait versions: the method names and shapes are the same,
/// the `Id`/`Record` types and the trait differ.
macro_rules! bench_store {
    ($rt:expr, $group:expr, $name:expr, $store:expr, $record:ty, $count:expr) => {{
        let rt: &Runtime = $rt;
        let store = &$store;
        let count = $count;
        let mut record: $record = <$record>::new_bench(session_data(), expiry());
        within(rt, store.create(&mut record)).expect("create");
        let loaded = within(rt, store.load(&record.id))
            .expect("load")
            .expect("the created record");
        assert_eq!(loaded.data, record.data, "{}: load after create", $name);
        let id = record.id;

        let c0 = count();
        let loads = Cell::new(0u64);
        $group.bench_function(BenchmarkId::new("load", $name), |b| {
            b.to_async(rt).iter(|| {
                loads.set(loads.get() + 1);
                async move { black_box(store.load(&id).await.expect("load").expect("record")) }
            });
        });
        let c1 = count();
        let saves = Cell::new(0u64);
        let (base, saves_ref) = (&record, &saves);
        $group.bench_function(BenchmarkId::new("save", $name), |b| {
            b.to_async(rt).iter_custom(|iters| async move {
                let mut r = base.clone();
                let first = saves_ref.get();
                saves_ref.set(first + iters);
                let start = Instant::now();
                for i in 0..iters {
                    touch(&mut r.data, first + i);
                    store.save(&r).await.expect("save");
                }
                start.elapsed()
            });
        });
        let c2 = count();
        let saves = saves.get();
        let mut last = record.clone();
        if saves > 0 {
            touch(&mut last.data, saves - 1);
        }
        let got = within(rt, store.load(&id))
            .expect("load")
            .expect("the saved record");
        assert_eq!(
            got.data, last.data,
            "{}: a load returns the last save",
            $name
        );
        within(rt, store.delete(&id)).expect("delete");
        assert!(
            within(rt, store.load(&id)).expect("load").is_none(),
            "{}: deleted",
            $name
        );
        Measured {
            statements: match (c0, c1, c2) {
                (Some(a), Some(b), Some(c)) => Some((b - a, c - b)),
                _ => None,
            },
            loads: loads.get(),
            saves,
        }
    }};
}

/// A record made here: tower-sessions keeps `Record::new` private.
trait NewBench {
    fn new_bench(data: Data, expiry_date: OffsetDateTime) -> Self;
}

impl NewBench for tower_sessions::session::Record {
    fn new_bench(data: Data, expiry_date: OffsetDateTime) -> Self {
        tower_sessions::session::Record {
            id: tower_sessions::session::Id::default(),
            data,
            expiry_date,
        }
    }
}

impl NewBench for Record014 {
    fn new_bench(data: Data, expiry_date: OffsetDateTime) -> Self {
        Record014 {
            id: Id014::default(),
            data,
            expiry_date,
        }
    }
}

fn report(name: &str, m: &Measured) {
    let per = |n: u64, of: u64| n as f64 / of.max(1) as f64;
    match m.statements {
        Some((l, s)) => eprintln!(
            "  {name}: persist counted {l} statements over {} loads ({:.2} each), {s} over {} saves ({:.2} each)",
            m.loads,
            per(l, m.loads),
            m.saves,
            per(s, m.saves)
        ),
        None => eprintln!("  {name}: {} loads, {} saves", m.loads, m.saves),
    }
}

/// The floors: the sqlx-store's SELECT and upsert with sqlx 0.9, as one
/// autocommit statement or inside a transaction.
fn bench_floors(
    rt: &Runtime,
    group: &mut BenchmarkGroup<'_, WallTime>,
    pool: &sqlx::PgPool,
    table: &str,
) {
    use sqlx::AssertSqlSafe;
    let select = format!("SELECT data FROM {table} WHERE id = $1 AND expiry_date > $2");
    let upsert = format!(
        "INSERT INTO {table} (id, data, expiry_date) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date"
    );
    let mut record = Record014::new_bench(session_data(), expiry());
    let id = record.id.to_string();
    let bytes = rmp_serde::to_vec(&record).expect("encode");
    within(
        rt,
        sqlx::query(AssertSqlSafe(upsert.clone()))
            .bind(&id)
            .bind(&bytes)
            .bind(record.expiry_date)
            .execute(pool),
    )
    .expect("insert the floor's record");

    let (select, upsert, id) = (&select, &upsert, &id);
    for in_tx in [false, true] {
        let name = if in_tx {
            "floor_in_tx"
        } else {
            "floor_autocommit"
        };
        group.bench_function(BenchmarkId::new("load", name), |b| {
            b.to_async(rt).iter(|| async move {
                let q = sqlx::query_as::<_, (Vec<u8>,)>(AssertSqlSafe(select.clone()))
                    .bind(id)
                    .bind(OffsetDateTime::now_utc());
                let row = if in_tx {
                    let mut tx = pool.begin().await.expect("begin");
                    let row = q.fetch_optional(&mut *tx).await.expect("select");
                    tx.commit().await.expect("commit");
                    row
                } else {
                    q.fetch_optional(pool).await.expect("select")
                };
                let (data,) = row.expect("the floor's record");
                black_box(rmp_serde::from_slice::<Record014>(&data).expect("decode"))
            })
        });
        let rec = &mut record;
        group.bench_function(BenchmarkId::new("save", name), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let mut r = rec.clone();
                async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        touch(&mut r.data, i);
                        let bytes = rmp_serde::to_vec(&r).expect("encode");
                        let q = sqlx::query(AssertSqlSafe(upsert.clone()))
                            .bind(id)
                            .bind(bytes)
                            .bind(r.expiry_date);
                        if in_tx {
                            let mut tx = pool.begin().await.expect("begin");
                            q.execute(&mut *tx).await.expect("upsert");
                            tx.commit().await.expect("commit");
                        } else {
                            q.execute(pool).await.expect("upsert");
                        }
                    }
                    start.elapsed()
                }
            });
        });
    }
}

/// Deletes every Redis key under `prefix` (persist's `RedisCache` keys).
fn sweep_redis(prefix: &str) -> usize {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return 0;
    };
    let Ok(mut conn) = client.get_connection() else {
        return 0;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query(&mut conn);
    }
    keys.len()
}

/// persist's store on PostgreSQL: without a cache, with an `InProcessCache`
/// and with a `RedisCache` on the `Db`.
fn bench_persist(rt: &Runtime, group: &mut BenchmarkGroup<'_, WallTime>, scratch: &PgScratch) {
    use persist_axum::PersistSessionStore;
    use persist_cache::{InProcessCache, RedisCache};
    use persist_core::prelude::*;
    use std::time::Duration;
    use tower_sessions::SessionStore as _;
    use web_bench::unique_name;

    let db = within(rt, Db::connect(&scratch.url)).expect("connect");
    let store = PersistSessionStore::new(db.clone());
    within(rt, store.create_table()).expect("create_table");
    let counter = || Some(db.statement_count());
    let m = bench_store!(
        rt,
        group,
        "persist_pg",
        store,
        tower_sessions::session::Record,
        counter
    );
    report("persist_pg", &m);
    within(rt, db.close());

    let db = within(
        rt,
        Db::builder()
            .cache(InProcessCache::new())
            .connect(&scratch.url),
    )
    .expect("connect");
    let store = PersistSessionStore::new(db.clone());
    let counter = || Some(db.statement_count());
    let m = bench_store!(
        rt,
        group,
        "persist_pg_cached",
        store,
        tower_sessions::session::Record,
        counter
    );
    report("persist_pg_cached", &m);
    eprintln!("  persist_pg_cached: {:?}", db.cache_metrics());
    within(rt, db.close());

    let prefix = unique_name();
    let cache = within(
        rt,
        RedisCache::connect(redis_url(), prefix.clone(), Duration::from_secs(600)),
    )
    .expect("RedisCache::connect");
    let db = within(rt, Db::builder().cache(cache).connect(&scratch.url)).expect("connect");
    let store = PersistSessionStore::new(db.clone());
    let counter = || Some(db.statement_count());
    let m = bench_store!(
        rt,
        group,
        "persist_pg_redis",
        store,
        tower_sessions::session::Record,
        counter
    );
    report("persist_pg_redis", &m);
    eprintln!("  persist_pg_redis: {:?}", db.cache_metrics());
    within(rt, db.close());
    eprintln!(
        "  persist_pg_redis: {} Redis keys swept",
        sweep_redis(&prefix)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rt = &rt;
    let mut c = Criterion::default().configure_from_args();
    let mut scratch = within(rt, PgScratch::new()).expect("PostgreSQL reachable");
    let sqlx_schema = scratch.extra("sqlx_store");
    let mut group = c.benchmark_group("sessions");

    bench_persist(rt, &mut group, &scratch);

    let none = || None::<u64>;
    let pool08 =
        within(rt, sqlx08::PgPool::connect(&web_bench::pg_url())).expect("sqlx 0.8 PgPool");
    let store = PostgresStore::new(pool08.clone())
        .with_schema_name(&sqlx_schema)
        .expect("a valid schema name")
        .with_table_name("session")
        .expect("a valid table name");
    within(rt, store.migrate()).expect("migrate");
    let m = bench_store!(rt, group, "sqlx_store_pg", store, Record014, none);
    report("sqlx_store_pg", &m);

    let pool = within(rt, sqlx::PgPool::connect(&web_bench::pg_url())).expect("sqlx 0.9 PgPool");
    bench_floors(
        rt,
        &mut group,
        &pool,
        &format!("\"{sqlx_schema}\".\"session\""),
    );
    within(rt, pool.close());
    within(rt, pool08.close());

    let client = FredClient::new(
        FredConfig::from_url(&redis_url()).expect("a Redis URL"),
        None,
        None,
        None,
    );
    let _task = within(rt, client.init()).expect("Redis reachable");
    let store = RedisStore::new(client.clone());
    let m = bench_store!(rt, group, "redis_store", store, Record014, none);
    report("redis_store", &m);
    within(rt, client.quit()).expect("quit");

    let store = MokaStore::new(Some(10_000));
    let m = bench_store!(rt, group, "moka_store", store, Record014, none);
    report("moka_store", &m);

    group.finish();
    drop(scratch);
    c.final_summary();
}
