//! A process SIGKILLed mid-flush: the database holds whole committed
//! transactions only, and a new `Db` on it works.
//!
//! The test re-executes its own binary as the child (`current_exe()`, the
//! exact test name, an env var naming the database), which commits batches
//! of rows in a loop until the parent kills it (`Child::kill` is SIGKILL on
//! unix).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use persist_core::prelude::*;

use super::model::*;
use crate::common::{self, TestResult};

/// Set in the child: the database URL it writes to.
const CHILD_URL: &str = "PERSIST_FAULTS_CHILD_URL";
/// Rows per committed transaction.
const BATCH: usize = 20_000;

/// A row of the kill test: no foreign key, so the child needs nothing else.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "kill_rows")]
pub struct KillRow {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub batch: i64,
    pub k: i64,
}

/// Kills the child when the test ends early, however it ends.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn killed_mid_flush_is_all_or_nothing(db: Db) -> TestResult {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return child_commits_forever(&url, db.sqlite_direct()).await;
    }
    common::with_isolated_db(db.backend(), "killed_mid_flush", |url| async move {
        parent(&db, &url).await
    })
    .await
}

/// The child: batch after batch of `BATCH` rows, each one transaction.
async fn child_commits_forever(url: &str, direct: bool) -> TestResult {
    let db = Db::builder().sqlite_direct(direct).connect(url).await?;
    for batch in 0.. {
        let s = db.session().await?;
        s.add_many(
            (0..BATCH as i64)
                .map(|k| KillRow { id: 0, batch, k })
                .collect(),
        )?;
        // Not `println!`: the test harness may capture that.
        say(&format!("flushing batch={batch}"));
        s.commit().await?;
        say(&format!("committed batch={batch}"));
    }
    Ok(())
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn parent(db: &Db, url: &str) -> TestResult {
    let direct = db.sqlite_direct();
    let setup = Db::builder().sqlite_direct(direct).connect(url).await?;
    setup.create_tables::<KillRow>().await?;
    setup.close().await;

    let test = format!(
        "{}::faults::killed_mid_flush_is_all_or_nothing",
        path_name(db)
    );
    let exe = std::env::current_exe().map_err(|e| Error::Invalid(e.to_string()))?;
    let mut landed_mid_flush = 0;
    // Kills at different moments of the child's flushes.
    for (attempt, delay_ms) in [40u64, 250, 700].into_iter().enumerate() {
        let mut child = ChildGuard(
            Command::new(&exe)
                .args([&test, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_URL, url)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| Error::Invalid(format!("re-running the test binary: {e}")))?,
        );
        let stdout = child.0.stdout.take().expect("piped stdout");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the child's second flush (the first batch may have
        // committed already; this one is surely under way).
        let mut last = String::new();
        let started = async {
            while let Some(line) = rx.recv().await {
                let second = line.starts_with("flushing batch=") && line != "flushing batch=0";
                last = line;
                if second || (attempt == 0 && last == "flushing batch=0") {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(40), started)
            .await
            .is_err()
        {
            return Err(violation(format!(
                "the child never started flushing (last line {last:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        // SIGKILL: no destructor, no rollback, no goodbye to the server.
        let _ = child.0.kill();
        let _ = child.0.wait();
        while let Ok(line) = rx.try_recv() {
            last = line;
        }
        if last.starts_with("flushing") {
            landed_mid_flush += 1;
        }
        eprintln!(
            "killed the child {delay_ms} ms into a flush on {}, its last line: {last}",
            path_name(db)
        );

        // What the database holds: whole batches only.
        let after = within(30, "a new Db after the kill", async {
            let fresh = Db::builder().sqlite_direct(direct).connect(url).await?;
            let s = fresh.session().await?;
            let rows = s.query::<KillRow>().order_by(KillRow::ID).all().await?;
            s.rollback().await?;
            // The new Db writes and reads.
            let s = fresh.session().await?;
            s.insert(KillRow {
                id: 0,
                batch: -1 - attempt as i64,
                k: 0,
            })
            .await?;
            s.commit().await?;
            let s = fresh.session().await?;
            let mine = s
                .query::<KillRow>()
                .filter(KillRow::BATCH.eq(-1 - attempt as i64))
                .count()
                .await?;
            s.rollback().await?;
            fresh.close().await;
            Ok((rows, mine))
        })
        .await?;
        let (rows, mine) = after;
        let mut per_batch = std::collections::BTreeMap::<i64, usize>::new();
        for r in rows.iter().filter(|r| r.batch >= 0) {
            *per_batch.entry(r.batch).or_default() += 1;
        }
        let partial: Vec<_> = per_batch.iter().filter(|(_, n)| **n != BATCH).collect();
        assert!(
            partial.is_empty(),
            "after SIGKILL the database holds partial batches (batch, rows): {partial:?}"
        );
        assert_eq!(mine, 1, "a new Db on the same database writes and reads");
        // The next child starts its batches at 0 again: clear them.
        let clean = Db::builder().sqlite_direct(direct).connect(url).await?;
        let s = clean.session().await?;
        s.delete_all::<KillRow>()
            .filter(KillRow::BATCH.ge(0))
            .execute()
            .await?;
        s.commit().await?;
        clean.close().await;
    }
    assert!(
        landed_mid_flush > 0,
        "no kill landed while the child was flushing: the test exercised nothing"
    );
    Ok(())
}
