//! Point lookups by primary key, each in a fresh session, with and without
//! the shared (L2) cache: database only vs `InProcessCache` vs `RedisCache`
//! vs `NearCache`, on SQLite (a WAL file) and PostgreSQL (loopback).
//!
//! A table of 100,000 rows; a hot set of 1,000 keys drawn at random from it;
//! each iteration picks one hot key at random and runs
//! `db.session()` → `find::<Account>(&key)` → `commit()`. A fresh session per
//! lookup means the identity map never answers: a hit is the L2's, a miss
//! the database's. Every cache is warmed (the hot set looked up once, twice
//! for the near-cache so its local tier holds every key) before measuring,
//! and checked once outside the timed loop: a hit sends no SQL. After each
//! measurement the `Db`'s statement counter proves the timed loop sent no
//! SQL either (all hits).
//!
//! `bash bench/run.sh` runs it with short settings.

use std::sync::Arc;
use std::time::Duration;

use std::hint::black_box;

use criterion::Criterion;
use persist_bench::{Account, Backend, RedisPrefix, Rng, Scratch, hot_set, redis_keys, redis_url};
use persist_cache::{InProcessCache, NearCache, RedisCache};
use persist_core::prelude::*;
use persist_core::cache::SharedCache;
use tokio::runtime::Runtime;

const ROWS: i64 = 100_000;
const HOT: usize = 1_000;
const TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    DbOnly,
    InProcess,
    Redis,
    Near,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::DbOnly,
        Variant::InProcess,
        Variant::Redis,
        Variant::Near,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::DbOnly => "db_only",
            Variant::InProcess => "in_process_l2",
            Variant::Redis => "redis_l2",
            Variant::Near => "near_cache",
        }
    }
}

/// A `Db` for one variant, and what must outlive it.
struct Subject {
    db: Db,
    near: Option<Arc<NearCache>>,
    prefix: Option<RedisPrefix>,
}

async fn open(variant: Variant, url: &str) -> Subject {
    let (provider, near, prefix): (Option<Arc<dyn SharedCache>>, _, _) = match variant {
        Variant::DbOnly => (None, None, None),
        Variant::InProcess => (Some(Arc::new(InProcessCache::new())), None, None),
        Variant::Redis => {
            let p = RedisPrefix::new().expect("Redis reachable");
            let c = RedisCache::connect(&redis_url(), p.name.clone(), TTL)
                .await
                .expect("RedisCache::connect");
            (Some(Arc::new(c)), None, Some(p))
        }
        Variant::Near => {
            let p = RedisPrefix::new().expect("Redis reachable");
            let c = Arc::new(
                NearCache::connect(&redis_url(), p.name.clone(), TTL)
                    .await
                    .expect("NearCache::connect"),
            );
            assert!(c.is_subscribed());
            (Some(c.clone() as Arc<dyn SharedCache>), Some(c), Some(p))
        }
    };
    let db = match provider {
        None => Db::connect(url).await,
        Some(p) => {
            Db::builder()
                .cache_arc(p)
                .cache_entity::<Account>(TTL)
                .connect(url)
                .await
        }
    }
    .expect("connect");
    Subject { db, near, prefix }
}

/// One lookup as an application does it: a fresh session, find, commit.
async fn lookup(db: &Db, key: i64) -> Account {
    let s = db.session().await.expect("session");
    let row = s.find::<Account>(&key).await.expect("find").expect("row");
    s.commit().await.expect("commit");
    row
}

/// Looks the hot set up (twice for the near-cache: the first pass puts in
/// Redis, the second fills the local tier), then checks, outside any timed
/// loop, that a hit sends no SQL.
async fn warm(subject: &Subject, variant: Variant, hot: &[i64]) {
    let db = &subject.db;
    let passes = if variant == Variant::Near { 2 } else { 1 };
    for _ in 0..passes {
        for &k in hot {
            let row = lookup(db, k).await;
            assert_eq!(row.id, k);
            assert_eq!(row.email, format!("user{k}@example.com"));
        }
    }
    let s = db.session().await.expect("session");
    let row = s
        .find::<Account>(&hot[0])
        .await
        .expect("find")
        .expect("row");
    assert_eq!(row.id, hot[0]);
    match variant {
        Variant::DbOnly => assert_eq!(s.statement_count(), 1, "database only: one SELECT"),
        _ => assert_eq!(
            s.statement_count(),
            0,
            "{}: a hit sends no SQL",
            variant.name()
        ),
    }
    s.commit().await.expect("commit");
    if let Some(m) = db.cache_metrics() {
        assert!(
            m.hits > 0,
            "{}: no hits after warming: {m:?}",
            variant.name()
        );
        assert_eq!(m.errors, 0, "{}: provider errors: {m:?}", variant.name());
    }
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, scratch: &Scratch, hot: &[i64]) {
    let backend = scratch.backend.name();
    let mut group = c.benchmark_group(format!("find_by_pk_fresh_session/{backend}"));
    for variant in Variant::ALL {
        let subject = rt.block_on(open(variant, &scratch.url));
        rt.block_on(warm(&subject, variant, hot));
        let before = subject.db.statement_count();
        let near_before = subject.near.as_ref().map(|n| n.local_hits());
        let metrics_before = subject.db.cache_metrics();

        let db = &subject.db;
        let mut rng = Rng::new(0x5EED_0000 + variant as u64);
        group.bench_function(variant.name(), |b| {
            b.to_async(rt).iter(|| {
                let key = hot[rng.below(hot.len() as u64) as usize];
                async move { black_box(lookup(db, key).await) }
            })
        });

        // Outside the timed loop: what the loop did.
        let sent = subject.db.statement_count() - before;
        if variant != Variant::DbOnly {
            assert_eq!(
                sent,
                0,
                "{backend}/{}: the timed loop sent SQL",
                variant.name()
            );
        }
        if let (Some(after), Some(before)) = (subject.db.cache_metrics(), metrics_before) {
            eprintln!(
                "  {backend}/{}: {} hits, {} misses, {} errors during measurement",
                variant.name(),
                after.hits - before.hits,
                after.misses - before.misses,
                after.errors - before.errors,
            );
        } else {
            eprintln!(
                "  {backend}/{}: {sent} SELECTs during measurement",
                variant.name()
            );
        }
        if let (Some(n), Some(b)) = (&subject.near, near_before) {
            eprintln!(
                "  {backend}/near_cache: {} local-tier hits",
                n.local_hits() - b
            );
        }
        let Subject { db, near, prefix } = subject;
        rt.block_on(db.close());
        drop((db, near));
        if let Some(p) = prefix {
            let name = p.name.clone();
            drop(p); // deletes every key under the prefix
            let left = redis_keys(&name).expect("Redis reachable");
            assert!(
                left.is_empty(),
                "Redis keys left under {name}: {}",
                left.len()
            );
        }
    }
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    let hot = hot_set(ROWS, HOT, 42);

    for backend in [Backend::Sqlite, Backend::Postgres] {
        let t = std::time::Instant::now();
        let scratch = rt
            .block_on(async {
                match backend {
                    Backend::Sqlite => Scratch::sqlite(ROWS).await,
                    Backend::Postgres => Scratch::postgres(ROWS).await,
                }
            })
            .unwrap_or_else(|e| panic!("{} scratch database: {e}", backend.name()));
        eprintln!(
            "{}: {ROWS} rows in {:.1?}; hot set of {HOT} keys",
            backend.name(),
            t.elapsed()
        );
        bench_backend(&mut c, &rt, &scratch, &hot);
        drop(scratch);
    }
    c.final_summary();
}
