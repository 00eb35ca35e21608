//! How SQLite sessions begin, under a mixed load on a WAL file: reader
//! tasks each open a session, `find` one row by key and commit, in a loop;
//! writer tasks run `db.transaction` closures that `find` a row, change it
//! and commit (read, then write: the case a deferred begin must upgrade).
//!
//! Three set-ups, each run for the same time:
//! - `immediate`: readers and writers use default sessions (`BEGIN
//!   IMMEDIATE`): every session queues for the write lock;
//! - `deferred`: both use deferred sessions (`SessionOptions::read_only()`,
//!   a plain `BEGIN` on SQLite, which lets a transaction write): readers
//!   never queue, a writer takes the lock at its first write and fails
//!   there (`SQLITE_BUSY` / `SQLITE_BUSY_SNAPSHOT`) when another writer
//!   holds it or committed since its read; `db.transaction` reruns it;
//! - `ro_readers`: readers use `read_only()`, writers default sessions.
//!
//! Run pinned to one core, in ABBA order (each set-up twice, mirrored):
//! `taskset -c 0 cargo bench --bench sqlite_begin` (environment:
//! `SECONDS_EACH`, default 3; `READERS`, default 4; `WRITERS`, default 2;
//! `WRITE_ROWS`, rows a write transaction changes, default 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use persist_core::prelude::*;

/// The rows read and written.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "items")]
pub struct Item {
    #[persist(primary_key)]
    pub id: i64,
    pub name: String,
    pub n: i64,
}

const ROWS: i64 = 1_000;

#[derive(Clone, Copy, Debug)]
enum Setup {
    Immediate,
    Deferred,
    RoReaders,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Immediate => "immediate",
            Setup::Deferred => "deferred",
            Setup::RoReaders => "ro_readers",
        }
    }
    fn reader_options(self) -> SessionOptions {
        match self {
            Setup::Immediate => SessionOptions::new(),
            Setup::Deferred | Setup::RoReaders => SessionOptions::new().read_only(),
        }
    }
    fn writer_options(self) -> SessionOptions {
        match self {
            Setup::Immediate | Setup::RoReaders => SessionOptions::new(),
            Setup::Deferred => SessionOptions::new().read_only(),
        }
    }
}

#[derive(Default)]
struct Outcome {
    reads: u64,
    read_latencies: Vec<Duration>,
    writes: u64,
    write_latencies: Vec<Duration>,
    attempts: u64,
    failed_writes: u64,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift, seeded per task: the keys read and written.
fn next_key(state: &mut u64) -> i64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % ROWS as u64) as i64 + 1
}

async fn run(db: &Db, setup: Setup, load: Load) -> Outcome {
    let Load {
        readers,
        writers,
        write_rows,
        each,
    } = load;
    let stop = Arc::new(AtomicU64::new(0));
    let mut read_tasks = Vec::new();
    for r in 0..readers {
        let (db, stop) = (db.clone(), stop.clone());
        read_tasks.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (r + 1);
            let mut lat = Vec::new();
            while stop.load(Ordering::Relaxed) == 0 {
                let key = next_key(&mut seed);
                let t = Instant::now();
                let s = db
                    .session_with(setup.reader_options())
                    .await
                    .expect("session");
                let row = s.find::<Item>(&key).await.expect("find");
                s.commit().await.expect("commit");
                lat.push(t.elapsed());
                assert!(row.is_some());
            }
            lat
        }));
    }
    let mut write_tasks = Vec::new();
    for w in 0..writers {
        let (db, stop) = (db.clone(), stop.clone());
        write_tasks.push(tokio::spawn(async move {
            let mut seed = 0xD1B5_4A32_D192_ED03 ^ (w + 1);
            let (mut lat, mut attempts, mut failed) = (Vec::new(), 0u64, 0u64);
            while stop.load(Ordering::Relaxed) == 0 {
                let keys: Vec<i64> = (0..write_rows).map(|_| next_key(&mut seed)).collect();
                let t = Instant::now();
                let done = db
                    .transaction_with(setup.writer_options(), |s| {
                        let keys = keys.clone();
                        async move {
                            for key in keys {
                                let mut item =
                                    s.find::<Item>(&key).await?.ok_or(Error::NotFound)?;
                                item.n += 1;
                                s.update(&mut item)?;
                            }
                            Ok::<(), Error>(())
                        }
                    })
                    .await;
                match done {
                    Ok(c) => {
                        attempts += u64::from(c.attempts);
                        lat.push(t.elapsed());
                    }
                    Err(e) if e.is_retryable() => {
                        attempts += u64::from(db_max_retries() + 1);
                        failed += 1;
                    }
                    Err(e) => panic!("write failed: {e}"),
                }
            }
            (lat, attempts, failed)
        }));
    }
    tokio::time::sleep(each).await;
    stop.store(1, Ordering::Relaxed);
    let mut out = Outcome::default();
    for t in read_tasks {
        let lat = t.await.expect("reader");
        out.reads += lat.len() as u64;
        out.read_latencies.extend(lat);
    }
    for t in write_tasks {
        let (lat, attempts, failed) = t.await.expect("writer");
        out.writes += lat.len() as u64;
        out.write_latencies.extend(lat);
        out.attempts += attempts;
        out.failed_writes += failed;
    }
    out
}

/// The load of one run.
#[derive(Clone, Copy)]
struct Load {
    readers: u64,
    writers: u64,
    write_rows: u64,
    each: Duration,
}

/// `DbBuilder::max_retries`' default.
fn db_max_retries() -> u32 {
    3
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn main() {
    let load = Load {
        readers: env("READERS", 4),
        writers: env("WRITERS", 2),
        write_rows: env("WRITE_ROWS", 1).max(1),
        each: Duration::from_secs(env("SECONDS_EACH", 3)),
    };
    let (readers, writers, each) = (load.readers, load.writers, load.each);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("sqlite-begin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.join("begin.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.create_tables::<Item>().await.expect("schema");
        let s = db.session().await.expect("session");
        s.insert_many(
            (1..=ROWS)
                .map(|id| Item { id, name: format!("item {id}"), n: 0 })
                .collect(),
        )
        .await
        .expect("seed");
        s.commit().await.expect("seed commit");

        println!(
            "{readers} readers (session + find + commit), {writers} writers (db.transaction: find + update of {} rows), {} s each, WAL file",
            load.write_rows,
            each.as_secs()
        );
        println!(
            "{:<11} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>7}",
            "setup",
            "reads/s",
            "writes/s",
            "read p50",
            "read p99",
            "read p99.9",
            "write p50",
            "write p99",
            "tries/w",
            "failed"
        );
        let order = [
            Setup::Immediate,
            Setup::Deferred,
            Setup::RoReaders,
            Setup::RoReaders,
            Setup::Deferred,
            Setup::Immediate,
        ];
        for setup in order {
            let mut o = run(&db, setup, load).await;
            let secs = each.as_secs_f64();
            let tries = if o.writes + o.failed_writes == 0 {
                0.0
            } else {
                o.attempts as f64 / (o.writes + o.failed_writes) as f64
            };
            println!(
                "{:<11} {:>9.0} {:>9.0} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?} {:>9.2} {:>7}",
                setup.name(),
                o.reads as f64 / secs,
                o.writes as f64 / secs,
                pct(&mut o.read_latencies, 0.50),
                pct(&mut o.read_latencies, 0.99),
                pct(&mut o.read_latencies, 0.999),
                pct(&mut o.write_latencies, 0.50),
                pct(&mut o.write_latencies, 0.99),
                tries,
                o.failed_writes,
            );
        }
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
