//! The unit of work and the identity map, against raw sqlx, on SQLite (a WAL
//! file) and PostgreSQL (a schema of its own): the workloads of `anchors`
//! that exercise persist's own machinery, in a bench that builds and runs in
//! a fraction of the time.
//!
//! - `find_hit_1` / `find_hit_10000`: `find` of a key the session holds
//!   (the clone of the entity included), with 1 or 10,000 rows in the map;
//! - `uow_insert_10000`: 10,000 `add`s and one `commit` (`persist-uow`),
//!   against raw sqlx's hand-written single multi-row INSERT of the same
//!   rows in one transaction (`sqlx-multi`);
//! - `single_inserts_10000` (only with `UOW_BENCH_SINGLES=1`, it is slow):
//!   10,000 awaited `insert`s in one session;
//! - `uow_update_1000`: load 1,000 rows in a session, change one column of
//!   each, commit.
//!
//! - `floor/*` (no database): what any identity map pays for the same hit,
//!   the clone of the `User` alone and a foldhash `HashMap` lookup plus it.
//!
//! Criterion ids are `uow/<backend>/<workload>/<contender>`. Run with
//! `taskset -c 0 cargo bench --bench uow -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use persist_bench::{pg_url, unique_name};
use persist_core::prelude::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};
use tokio::runtime::Runtime;

/// `users(id, name, hair_color NULL)`, as in `anchors`.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "users")]
pub struct User {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub hair_color: Option<String>,
}

const N_INSERT: usize = 10_000;
const N_UPDATE: usize = 1_000;

fn new_users(n: usize) -> Vec<User> {
    (0..n)
        .map(|i| User {
            id: 0,
            name: format!("User {i}"),
            hair_color: Some(if i % 2 == 0 { "black" } else { "brown" }.to_string()),
        })
        .collect()
}

enum Raw {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

struct Bed {
    name: &'static str,
    db: Db,
    raw: Raw,
    cleanup: Option<String>,
    dir: Option<std::path::PathBuf>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(schema) = self.cleanup.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut c = PgConnection::connect(&pg_url()).await.ok()?;
                    sqlx::query(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    )))
                    .execute(&mut c)
                    .await
                    .ok()?;
                    c.close().await.ok()
                })
            })
            .join();
        }
    }
}

async fn sqlite_bed() -> Bed {
    let dir = std::env::temp_dir().join(unique_name());
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("uow.db").display());
    let opts = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .create_if_missing(true);
    let mut raw = SqliteConnection::connect_with(&opts).await.expect("sqlite");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL, hair_color TEXT)")
        .execute(&mut raw)
        .await
        .expect("ddl");
    sqlx::query("CREATE INDEX users_hair_color ON users (hair_color)")
        .execute(&mut raw)
        .await
        .expect("index");
    let db = Db::connect(&url).await.expect("persist connect");
    Bed {
        name: "sqlite",
        db,
        raw: Raw::Sqlite(raw),
        cleanup: None,
        dir: Some(dir),
    }
}

async fn pg_bed() -> Option<Bed> {
    let base = pg_url();
    let mut admin = PgConnection::connect(&base).await.ok()?;
    let name = unique_name();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("schema");
    admin.close().await.ok();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
    let mut raw = PgConnection::connect(&url).await.expect("pg");
    sqlx::query(
        "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, name VARCHAR NOT NULL, hair_color VARCHAR)",
    )
    .execute(&mut raw)
    .await
    .expect("ddl");
    sqlx::query("CREATE INDEX users_hair_color ON users (hair_color)")
        .execute(&mut raw)
        .await
        .expect("index");
    let db = Db::connect(&url).await.expect("persist connect");
    Some(Bed {
        name: "postgres",
        db,
        raw: Raw::Pg(raw),
        cleanup: Some(name),
        dir: None,
    })
}

impl Bed {
    async fn exec(&mut self, sql: &str) {
        match &mut self.raw {
            Raw::Sqlite(c) => sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(c)
                .await
                .map(drop),
            Raw::Pg(c) => sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(c)
                .await
                .map(drop),
        }
        .expect("exec");
    }

    async fn truncate(&mut self) {
        if self.cleanup.is_some() {
            self.exec("TRUNCATE users RESTART IDENTITY").await;
        } else {
            self.exec("DELETE FROM users").await;
            self.exec("DELETE FROM sqlite_sequence").await;
        }
    }

    async fn count(&mut self) -> i64 {
        match &mut self.raw {
            Raw::Sqlite(c) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(c)
                    .await
            }
            Raw::Pg(c) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(c)
                    .await
            }
        }
        .expect("count")
    }

    /// `INSERT INTO users (name, hair_color) VALUES (…), …` of `n` rows.
    fn multi_sql(&self, n: usize) -> Arc<str> {
        let pg = self.cleanup.is_some();
        let mut s = String::from("INSERT INTO users (name, hair_color) VALUES ");
        for i in 0..n {
            if i > 0 {
                s.push_str(", ");
            }
            if pg {
                s.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            } else {
                s.push_str("(?, ?)");
            }
        }
        s.into()
    }

    /// Raw sqlx: one multi-row INSERT of `users` in one transaction.
    async fn sqlx_multi(&mut self, sql: &Arc<str>, users: &[User]) -> u64 {
        macro_rules! go {
            ($c:expr) => {{
                let mut tx = $c.begin().await.expect("begin");
                let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                for u in users {
                    q = q.bind(&u.name).bind(&u.hair_color);
                }
                let n = q.execute(&mut *tx).await.expect("insert").rows_affected();
                tx.commit().await.expect("commit");
                n
            }};
        }
        match &mut self.raw {
            Raw::Sqlite(c) => go!(c),
            Raw::Pg(c) => go!(c),
        }
    }
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, bed: &mut Bed) {
    let b = bed.name;

    // ----- identity-map hit -----
    rt.block_on(bed.truncate());
    {
        let s = rt.block_on(bed.db.session()).expect("session");
        rt.block_on(async {
            s.add_many(new_users(N_INSERT)).expect("add");
            s.commit().await.expect("commit");
        });
    }
    for held in [1usize, N_INSERT] {
        let s = rt.block_on(bed.db.session()).expect("session");
        let k = 1i64;
        let rows = if held == 1 {
            vec![rt.block_on(s.find::<User>(&k)).expect("find").expect("row")]
        } else {
            rt.block_on(s.all::<User>()).expect("all")
        };
        assert_eq!(rows.len(), held);
        assert_eq!(s.identity_map_len(), held);
        let n = s.statement_count();
        let mut g = c.benchmark_group(format!("uow/{b}/find_hit_{held}"));
        g.bench_function("persist", |bn| {
            bn.to_async(rt)
                .iter(|| async { black_box(s.find::<User>(black_box(&k)).await.expect("find")) })
        });
        g.finish();
        assert_eq!(s.statement_count(), n, "an identity-map hit sends no SQL");
        rt.block_on(s.commit()).expect("commit");
    }

    // ----- 10,000 inserts -----
    rt.block_on(bed.truncate());
    let users = new_users(N_INSERT);
    let multi = bed.multi_sql(N_INSERT);
    let db = bed.db.clone();
    let uow = |v: Vec<User>| {
        let db = db.clone();
        async move {
            let s = db.session().await.expect("session");
            s.add_many(v).expect("add_many");
            s.commit().await.expect("commit");
        }
    };
    let before = rt.block_on(bed.count());
    rt.block_on(uow(users.clone()));
    assert_eq!(rt.block_on(bed.count()), before + N_INSERT as i64);
    {
        let mut g = c.benchmark_group(format!("uow/{b}/uow_insert_10000"));
        g.sample_size(10);
        g.bench_function("persist-uow", |bn| {
            bn.to_async(rt)
                .iter_batched(|| users.clone(), &uow, BatchSize::PerIteration)
        });
        let bed_cell = std::cell::RefCell::new(&mut *bed);
        g.bench_function("sqlx-multi", |bn| {
            bn.to_async(rt).iter_custom(|iters| {
                let (bed, users, multi) = (&bed_cell, &users, &multi);
                async move {
                    let mut bed = bed.borrow_mut();
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(bed.sqlx_multi(multi, users).await);
                    }
                    t.elapsed()
                }
            })
        });
        if std::env::var_os("UOW_BENCH_SINGLES").is_some() {
            let singles = |v: Vec<User>| {
                let db = db.clone();
                async move {
                    let s = db.session().await.expect("session");
                    for u in v {
                        black_box(s.insert(u).await.expect("insert"));
                    }
                    s.commit().await.expect("commit");
                }
            };
            g.bench_function("persist-singles", |bn| {
                bn.to_async(rt)
                    .iter_batched(|| users.clone(), &singles, BatchSize::PerIteration)
            });
        }
        g.finish();
    }

    // ----- 1,000 updates -----
    rt.block_on(bed.truncate());
    rt.block_on(uow(new_users(N_UPDATE)));
    let round = std::cell::Cell::new(0u64);
    let update = || {
        let db = db.clone();
        round.set(round.get() + 1);
        let r = round.get();
        async move {
            let s = db.session().await.expect("session");
            let rows = s.all::<User>().await.expect("all");
            assert_eq!(rows.len(), N_UPDATE);
            for mut u in rows {
                u.hair_color = Some(format!("c{r}"));
                s.update(&mut u).expect("update");
            }
            s.commit().await.expect("commit");
        }
    };
    rt.block_on(update());
    {
        let mut g = c.benchmark_group(format!("uow/{b}/uow_update_1000"));
        g.sample_size(20);
        g.bench_function("persist-uow", |bn| bn.to_async(rt).iter(&update));
        g.finish();
    }
}

/// The cost of an identity-map hit that no implementation can avoid: the
/// clone (two `String`s) and its drop, and a plain map lookup before it.
fn bench_floor(c: &mut Criterion) {
    let users: Vec<User> = new_users(N_INSERT)
        .into_iter()
        .enumerate()
        .map(|(i, mut u)| {
            u.id = i as i64 + 1;
            u
        })
        .collect();
    let map: std::collections::HashMap<i64, User, foldhash::fast::RandomState> =
        users.iter().map(|u| (u.id, u.clone())).collect();
    let mut g = c.benchmark_group("uow/floor");
    let one = users[0].clone();
    g.bench_function("clone", |bn| bn.iter(|| black_box(black_box(&one).clone())));
    g.bench_function("hashmap_get_clone", |bn| {
        bn.iter(|| black_box(map.get(black_box(&1)).cloned()))
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    bench_floor(&mut c);
    let only = std::env::var("UOW_BENCH_BACKEND").ok();
    if only.as_deref() != Some("postgres") {
        let mut bed = rt.block_on(sqlite_bed());
        bench_backend(&mut c, &rt, &mut bed);
        rt.block_on(bed.db.close());
    }
    if only.as_deref() != Some("sqlite") {
        match rt.block_on(pg_bed()) {
            Some(mut bed) => {
                bench_backend(&mut c, &rt, &mut bed);
                rt.block_on(bed.db.close());
            }
            None => eprintln!("PostgreSQL unreachable; skipping its benchmarks"),
        }
    }
    c.final_summary();
}
