//! An instruction-count probe for comparing two builds of persist under
//! callgrind, where wall-clock figures drift on a shared machine: one
//! workload per run, on SQLite (a WAL file, or in memory with `_mem`).
//!
//! ```text
//! cargo build --release --example probe
//! valgrind --tool=callgrind target/release/examples/probe find
//! ```
//!
//! Workloads: `find` (2,000 point lookups in one session), `insert1` (300
//! sessions of one insert and a commit), `scan` (five reads of 10,000 rows),
//! `l2` (1,000 lookups served by the in-process shared cache, a fresh
//! session each), `update` (1,000 updates in one commit). Each runs after the
//! same setup (10,000 rows), so two builds compare by their totals.
use persist_core::prelude::*;
use std::time::Duration;

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "users")]
pub struct U {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub n: i64,
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let path = format!("/tmp/probe_{}.db", std::process::id());
        let url = if which.ends_with("_mem") {
            "sqlite::memory:".to_string()
        } else {
            format!("sqlite://{path}?mode=rwc")
        };
        let mut b = Db::builder();
        if which.starts_with("l2") {
            b = b
                .cache(persist_cache::InProcessCache::new())
                .cache_entity::<U>(Duration::from_secs(600));
        }
        let db = b.connect(&url).await.unwrap();
        db.create_tables::<U>().await.unwrap();
        let s = db.session().await.unwrap();
        s.insert_many(
            (0..10_000)
                .map(|i| U {
                    id: 0,
                    name: format!("u{i}"),
                    n: i,
                })
                .collect(),
        )
        .await
        .unwrap();
        s.commit().await.unwrap();
        if which.starts_with("l2") {
            for k in 1..=200i64 {
                let s = db.session().await.unwrap();
                s.find::<U>(&k).await.unwrap();
                s.commit().await.unwrap();
            }
        }
        let start = std::time::Instant::now();
        match which.trim_end_matches("_mem") {
            "find" => {
                let s = db.session().await.unwrap();
                for k in 1..=2000i64 {
                    s.find::<U>(&k).await.unwrap();
                    s.detach(&U {
                        id: k,
                        name: String::new(),
                        n: 0,
                    });
                }
                s.commit().await.unwrap();
            }
            "insert1" => {
                for i in 0..300 {
                    let s = db.session().await.unwrap();
                    s.insert(U {
                        id: 0,
                        name: format!("x{i}"),
                        n: i,
                    })
                    .await
                    .unwrap();
                    s.commit().await.unwrap();
                }
            }
            "scan" => {
                for _ in 0..5 {
                    let s = db.session().await.unwrap();
                    let v = s.query::<U>().all().await.unwrap();
                    assert!(v.len() >= 10_000);
                    s.commit().await.unwrap();
                }
            }
            "l2" => {
                for r in 0..5 {
                    for k in 1..=200i64 {
                        let s = db.session().await.unwrap();
                        let _ = r;
                        s.find::<U>(&k).await.unwrap();
                        s.commit().await.unwrap();
                    }
                }
            }
            "update" => {
                let s = db.session().await.unwrap();
                let mut v = s.query::<U>().limit(1000).all().await.unwrap();
                for u in v.iter_mut() {
                    u.n += 1;
                    s.update(u).unwrap();
                }
                s.commit().await.unwrap();
            }
            w => panic!("unknown workload {w}"),
        }
        eprintln!("{which}: {:?}", start.elapsed());
        db.close().await;
        let _ = std::fs::remove_file(&path);
    });
}
