//! What history and interceptors cost the unit of work, on PostgreSQL (a
//! schema of its own) and SQLite (a WAL file): the same writes of the same
//! rows, with and without them.
//!
//! - `insert_1000`: 1,000 `add`s and one `commit`;
//! - `uow_update_1000`: load 1,000 rows in a session, change one column of
//!   each, commit.
//!
//! Contenders: `plain` (an entity without history, a `Db` without
//! interceptors), `audit` (the same columns with `#[persist(audit)]`: its
//! history rows and the transaction's revision are written in the same
//! transaction), `noop-interceptor` (the plain entity on a `Db` with one
//! interceptor that does nothing).
//!
//! Criterion ids are `audit/<backend>/<workload>/<contender>`. Run with
//! `taskset -c 0 cargo bench --bench audit -- --warm-up-time 1 --measurement-time 3`
//! (or through `bench/run.sh` with `BENCHES=audit`).

use std::cell::Cell;
use std::time::Duration;

use criterion::Criterion;
use persist_bench::{pg_url, unique_name};
use persist_core::prelude::*;
use persist_core::session::Interceptor;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
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

/// The same columns, with history.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "audited_users", audit)]
pub struct AuditedUser {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub hair_color: Option<String>,
}

/// An interceptor that does nothing: the cost of having one.
struct Noop;

impl Interceptor for Noop {}

const N: usize = 1_000;

/// A row of `User` or `AuditedUser`, made, read and changed alike.
trait Row: Entity {
    fn new(i: usize) -> Self;
    fn paint(&mut self, color: String);
    /// The first `N` rows by key.
    fn first(s: &Session) -> persist_core::query::Query<'_, Self>;
}

impl Row for User {
    fn new(i: usize) -> Self {
        User {
            id: 0,
            name: format!("User {i}"),
            hair_color: Some("black".into()),
        }
    }
    fn paint(&mut self, color: String) {
        self.hair_color = Some(color);
    }
    fn first(s: &Session) -> persist_core::query::Query<'_, Self> {
        s.query::<User>().order_by(User::ID).limit(N as u64)
    }
}

impl Row for AuditedUser {
    fn new(i: usize) -> Self {
        AuditedUser {
            id: 0,
            name: format!("User {i}"),
            hair_color: Some("black".into()),
        }
    }
    fn paint(&mut self, color: String) {
        self.hair_color = Some(color);
    }
    fn first(s: &Session) -> persist_core::query::Query<'_, Self> {
        s.query::<AuditedUser>()
            .order_by(AuditedUser::ID)
            .limit(N as u64)
    }
}

struct Bed {
    name: &'static str,
    /// No interceptor.
    db: Db,
    /// One no-op interceptor, on the same database.
    intercepted: Db,
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

async fn open(url: &str) -> (Db, Db) {
    let db = Db::connect(url).await.expect("persist connect");
    let intercepted = Db::builder()
        .interceptor(Noop)
        .connect(url)
        .await
        .expect("persist connect");
    db.create_tables::<(User, AuditedUser)>()
        .await
        .expect("tables");
    (db, intercepted)
}

async fn sqlite_bed() -> Bed {
    let dir = std::env::temp_dir().join(unique_name());
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("audit.db").display());
    let (db, intercepted) = open(&url).await;
    Bed {
        name: "sqlite",
        db,
        intercepted,
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
    let (db, intercepted) = open(&url).await;
    Some(Bed {
        name: "postgres",
        db,
        intercepted,
        cleanup: Some(name),
        dir: None,
    })
}

async fn insert<T: Row>(db: &Db) {
    let s = db.session().await.expect("session");
    s.add_many((0..N).map(T::new).collect()).expect("add");
    s.commit().await.expect("commit");
}

async fn update<T: Row>(db: &Db, round: usize) {
    let s = db.session().await.expect("session");
    let rows = T::first(&s).all().await.expect("rows");
    assert_eq!(rows.len(), N);
    for mut u in rows {
        u.paint(format!("c{round}"));
        s.update(&mut u).expect("update");
    }
    s.commit().await.expect("commit");
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, bed: &Bed) {
    let b = bed.name;
    let (db, intercepted) = (&bed.db, &bed.intercepted);
    {
        let mut g = c.benchmark_group(format!("audit/{b}/insert_1000"));
        g.sample_size(20);
        g.bench_function("plain", |bn| bn.to_async(rt).iter(|| insert::<User>(db)));
        g.bench_function("audit", |bn| {
            bn.to_async(rt).iter(|| insert::<AuditedUser>(db))
        });
        g.bench_function("noop-interceptor", |bn| {
            bn.to_async(rt).iter(|| insert::<User>(intercepted))
        });
        g.finish();
    }
    let round = Cell::new(0);
    let next = || {
        round.set(round.get() + 1);
        round.get()
    };
    {
        let mut g = c.benchmark_group(format!("audit/{b}/uow_update_1000"));
        g.sample_size(20);
        g.bench_function("plain", |bn| {
            bn.to_async(rt).iter(|| update::<User>(db, next()))
        });
        g.bench_function("audit", |bn| {
            bn.to_async(rt).iter(|| update::<AuditedUser>(db, next()))
        });
        g.bench_function("noop-interceptor", |bn| {
            bn.to_async(rt).iter(|| update::<User>(intercepted, next()))
        });
        g.finish();
    }
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
    let only = std::env::var("AUDIT_BENCH_BACKEND").ok();
    if only.as_deref() != Some("postgres") {
        let bed = rt.block_on(sqlite_bed());
        bench_backend(&mut c, &rt, &bed);
        rt.block_on(async {
            bed.db.close().await;
            bed.intercepted.close().await;
        });
    }
    if only.as_deref() != Some("sqlite") {
        match rt.block_on(pg_bed()) {
            Some(bed) => {
                bench_backend(&mut c, &rt, &bed);
                rt.block_on(async {
                    bed.db.close().await;
                    bed.intercepted.close().await;
                });
            }
            None => eprintln!("PostgreSQL unreachable; skipping its benchmarks"),
        }
    }
    c.final_summary();
}
