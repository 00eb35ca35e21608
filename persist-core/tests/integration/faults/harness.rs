//! The cancellation harness: an operation's future is dropped after its
//! 1st, 2nd, … Nth poll, N growing until the operation completes uncut.
//! Every round starts from fresh rows (a round number of its own), and
//! after each cut checks what a user would notice:
//!
//! - the database is all-or-nothing, nothing written twice: either the same
//!   session's `commit()` succeeds and every registered change is there
//!   exactly once, or the session answers `SessionFailed` to every call until
//!   `rollback()`, after which nothing of the transaction is there;
//!   an abandoned (dropped) session commits nothing;
//! - the pool is clean: a fresh session sees none of the cut session's
//!   uncommitted rows, and its own commit writes exactly its own rows;
//! - the shared cache agrees with the database afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use persist_cache::InProcessCache;
use persist_core::cache::{CacheKey, SharedCache};
use persist_core::prelude::*;
use persist_core::session::{Isolation, Savepoint};

pub use super::cut::{Cut, cut_after};
use super::model::*;
use crate::common::{self, TestResult};

const TTL: Duration = Duration::from_secs(600);
/// A sweep that needs more cut points than this is reported, not run on.
const MAX_POLLS: usize = 20_000;
/// Cut points up to this one are all exercised; beyond it, a sample.
const EVERY_POLL: usize = 100;
/// Each of the three sweeps stays well inside the suite's 60 s timeout.
const SWEEP_BUDGET: Duration = Duration::from_secs(12);
/// A sweep ends when the op completed uncut this many rounds in a row (a
/// driver's worker thread can answer within one poll by chance).
const UNCUT_TO_STOP: usize = 3;
/// Tries of the first cut point before a sweep moves past it. A
/// one-statement op on a loaded machine at times finds the server's answer
/// already read within the poll that sent it (the thread was preempted
/// between write and read): that is chance, not a missing cut point, and a
/// sweep that met it at its only try of poll 1 exercised nothing.
const FIRST_POLL_TRIES: usize = 8;
/// A sweep stops early after this many violations.
const MAX_VIOLATIONS: usize = 8;
/// Rows the op itself writes in `insert_many`: many await points.
const MANY: usize = 2000;

/// The public async operations of a session, each cut at every poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Commit,
    Flush,
    Insert,
    InsertMany,
    Upsert,
    UpsertWith,
    Find,
    QueryAll,
    Load,
    UpdateAll,
    UpdateAllExpr,
    DeleteAll,
    SavepointRollback,
    SavepointRelease,
    Transaction,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Commit => "commit",
            Op::Flush => "flush",
            Op::Insert => "insert",
            Op::InsertMany => "insert_many",
            Op::Upsert => "upsert",
            Op::UpsertWith => "upsert_with",
            Op::Find => "find",
            Op::QueryAll => "query_all",
            Op::Load => "load",
            Op::UpdateAll => "update_all",
            Op::UpdateAllExpr => "update_all_expr",
            Op::DeleteAll => "delete_all",
            Op::SavepointRollback => "savepoint_rollback",
            Op::SavepointRelease => "savepoint_release",
            Op::Transaction => "transaction",
        }
    }

    /// Rows `add`ed before the op: for the flushing ops enough for several
    /// batches, so the flush has await points between statements.
    fn registered(self) -> usize {
        match self {
            Op::Commit | Op::Flush | Op::Transaction => 1000,
            _ => 5,
        }
    }

    /// Rows the round may write: the bound of the cache probe.
    fn rows_written(self) -> i64 {
        let own = match self {
            Op::Insert => 1,
            Op::InsertMany => MANY,
            Op::DeleteAll => 3,
            Op::SavepointRollback | Op::SavepointRelease => 2,
            _ => 0,
        };
        (self.registered() + own + 2) as i64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// The same session commits after the cut.
    Continue,
    /// The cut session is dropped.
    Abandon,
}

#[derive(Clone, Copy, Debug)]
struct Sweep {
    after: After,
    cached: bool,
    max_connections: u32,
    linger: Duration,
}

impl Sweep {
    fn label(&self) -> String {
        let after = match self.after {
            After::Continue => "continue",
            After::Abandon => "abandon",
        };
        let cache = if self.cached { "cached" } else { "uncached" };
        let mut s = format!("{after}-{cache}-max{}", self.max_connections);
        if !self.linger.is_zero() {
            s.push_str(&format!("-linger{}ms", self.linger.as_millis()));
        }
        s
    }
}

/// One connection (the next session surely gets the cut session's), with
/// the shared cache; then a wider pool, and cuts that land after the
/// request reached the server.
const SWEEPS: [Sweep; 3] = [
    Sweep {
        after: After::Continue,
        cached: true,
        max_connections: 1,
        linger: Duration::ZERO,
    },
    Sweep {
        after: After::Abandon,
        cached: true,
        max_connections: 1,
        linger: Duration::ZERO,
    },
    Sweep {
        after: After::Continue,
        cached: false,
        max_connections: 3,
        linger: Duration::from_millis(2),
    },
];

/// What the database must show after a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Committed,
    NotCommitted,
    /// A cut commit may have reached the server's COMMIT: all or nothing.
    Either,
}

struct Env {
    url: String,
    main: Db,
    observer: Db,
    cache: Option<Arc<InProcessCache>>,
    group0: i64,
    base: i64,
    other: i64,
    op: Op,
    sweep: Sweep,
    path: &'static str,
    /// The id of the previous round's "next" row: the cut round's ids lie
    /// above it.
    last_next_id: i64,
    committed: usize,
    failed: usize,
    /// Whether the last round's op was cut (known before its checks).
    last_cut: bool,
}

/// Runs `op` cut at every poll on `db`'s backend, over every sweep, and
/// prints the number of cut points (`cut-points backend=… op=… n=…`).
pub async fn cut_every_poll(db: Db, op: Op) -> TestResult {
    let path = path_name(&db);
    let name = format!("cut_{}", op.name());
    common::with_isolated_db(db.backend(), &name, |url| async move {
        sweep_all(&url, db.sqlite_direct(), path, op).await
    })
    .await
}

async fn sweep_all(url: &str, direct: bool, path: &'static str, op: Op) -> TestResult {
    let observer = observer(url, direct).await?;
    observer.create_tables::<FaultTables>().await?;
    let s = observer.session().await?;
    let g0 = s
        .insert(FaultGroup {
            id: 0,
            name: "g0".into(),
        })
        .await?;
    let base = s.insert(row(g0.id, 0, "base")).await?;
    let other = s.insert(row(g0.id, 0, "other")).await?;
    s.insert(FaultKv {
        k: "kv".into(),
        v: 0,
    })
    .await?;
    s.commit().await?;

    let mut violations = Vec::new();
    let mut most_cuts = 0;
    for (i, sweep) in SWEEPS.iter().enumerate() {
        let cache = sweep.cached.then(|| Arc::new(InProcessCache::new()));
        let mut b = Db::builder()
            .max_connections(sweep.max_connections)
            .sqlite_direct(direct);
        if let Some(c) = &cache {
            b = b
                .cache_arc(c.clone())
                .cache_entity::<FaultRow>(TTL)
                .cache_entity::<FaultKv>(TTL);
        }
        let main = b.connect(url).await?;
        let mut env = Env {
            url: url.to_string(),
            main: main.clone(),
            observer: observer.clone(),
            cache,
            group0: g0.id,
            base: base.id,
            other: other.id,
            op,
            sweep: *sweep,
            path,
            last_next_id: other.id,
            committed: 0,
            failed: 0,
            last_cut: true,
        };
        // A violation is recorded and the sweep goes on (up to a few), so one
        // run shows every kind of failure and the full count of cut points;
        // a hang ends the test at once.
        let mut polls = 1;
        let mut cuts = 0;
        let mut uncut_in_a_row = 0;
        let mut found = 0;
        let mut rounds = 0;
        let mut sampled = false;
        let mut first_poll_tries = 0;
        let started = std::time::Instant::now();
        while uncut_in_a_row < UNCUT_TO_STOP && found < MAX_VIOLATIONS {
            // Unique per round (a retried cut point is a new round).
            let round = (i as i64 + 1) * 1_000_000 + rounds as i64 + 1;
            match run_round(&mut env, round, polls).await {
                Ok(true) => {
                    cuts = polls;
                    uncut_in_a_row = 0;
                }
                Ok(false) if polls == 1 && first_poll_tries + 1 < FIRST_POLL_TRIES => {
                    first_poll_tries += 1;
                    rounds += 1;
                    continue;
                }
                Ok(false) => uncut_in_a_row += 1,
                Err(Error::Invalid(msg)) if msg.starts_with(VIOLATED) => {
                    if env.last_cut {
                        cuts = polls;
                        uncut_in_a_row = 0;
                    } else {
                        uncut_in_a_row += 1;
                    }
                    found += 1;
                    violations.push(msg);
                }
                Err(e) => {
                    let earlier = match violations.first() {
                        Some(v) => format!("; before it: {v}"),
                        None => String::new(),
                    };
                    return Err(Error::Invalid(format!("{}{earlier}", message(&e))));
                }
            }
            ensure!(
                polls < MAX_POLLS,
                "{} on {path} still pending after {MAX_POLLS} polls",
                op.name()
            );
            rounds += 1;
            // Every poll up to EVERY_POLL, then a sample: an op of
            // thousands of await points (a row each) would cost its square.
            // Past the sweep's time budget, doubling reaches the end.
            if started.elapsed() > SWEEP_BUDGET {
                sampled = true;
                polls *= 2;
            } else {
                if polls >= EVERY_POLL {
                    sampled = true;
                }
                polls += 1.max(polls.saturating_sub(EVERY_POLL) / 8);
            }
        }
        most_cuts = most_cuts.max(cuts);
        eprintln!(
            "cut-points backend={path} op={} n={cuts} sweep={} rounds={rounds} every_poll={} committed={} session_failed={}",
            op.name(),
            sweep.label(),
            !sampled,
            env.committed,
            env.failed
        );
        let closed = within(10, "Db::close after a sweep", async {
            main.close().await;
            Ok(())
        })
        .await;
        if let Err(e) = closed {
            let open = server_transactions(url).await;
            return Err(Error::Invalid(format!(
                "{} on {path} ({}): {} (a connection never came back); open on the server: {open}",
                op.name(),
                sweep.label(),
                message(&e)
            )));
        }
    }
    observer.close().await;
    eprintln!("cut-points backend={path} op={} n={most_cuts}", op.name());
    if let Some(first) = violations.first() {
        return Err(Error::Invalid(format!(
            "{} violation(s) of {} on {path}; the first: {first}; the last: {}",
            violations.len(),
            op.name(),
            violations.last().map(String::as_str).unwrap_or("")
        )));
    }
    // SQLite's direct path runs a statement inside the poll that starts
    // it: an op made only of such statements has no await point, and a
    // future without one cannot be cut. Through sqlx, SQLite's worker
    // thread often answers before the first poll ends, so a short op may
    // never be pending. MariaDB's answer to a one-statement op (a
    // savepoint's) is at times read within the poll that sent it, as seen
    // in CI-like runs. PostgreSQL's always waits on the socket.
    if most_cuts == 0 && path != "postgres" {
        eprintln!(
            "cut-points backend={path} op={} n=0: completed at its first poll every time, nothing to cut",
            op.name()
        );
    } else {
        ensure!(
            most_cuts >= 1,
            "{} on {path} completed at its first poll: the harness exercised no cut point",
            op.name()
        );
    }
    Ok(())
}

/// The state a round builds before its op.
struct Prepared {
    group: i64,
    savepoint: Option<Savepoint>,
}

/// Registers the round's work in `s`: the base row updated, a group and a
/// row inserted now (the transaction is open), rows added for the flush,
/// and what the op needs.
async fn prepare(s: &Session, base: i64, op: Op, round: i64) -> Result<Prepared, Error> {
    let mut b = s.find::<FaultRow>(&base).await?.ok_or(Error::NotFound)?;
    b.n = round;
    s.update(&mut b)?;
    let group = s
        .insert(FaultGroup {
            id: 0,
            name: format!("g{round}"),
        })
        .await?
        .id;
    s.insert(row(group, round, "imm")).await?;
    if op == Op::DeleteAll {
        s.insert_many(
            (0..3)
                .map(|i| row(group, round, format!("victim-{i}")))
                .collect(),
        )
        .await?;
    }
    s.add_many(
        (0..op.registered())
            .map(|i| row(group, round, format!("reg-{i}")))
            .collect(),
    )?;
    let savepoint = if matches!(op, Op::SavepointRollback | Op::SavepointRelease) {
        let sp = s.savepoint().await?;
        s.insert(row(group, round, "sp-imm")).await?;
        s.add(row(group, round, "sp-reg"))?;
        Some(sp)
    } else {
        None
    };
    Ok(Prepared { group, savepoint })
}

/// Runs the op on `s`, cut after `polls` polls.
async fn run_op(
    env: &Env,
    s: &Session,
    p: &mut Prepared,
    round: i64,
    polls: usize,
) -> Cut<Result<(), Error>> {
    let linger = env.sweep.linger;
    let g = p.group;
    match env.op {
        Op::Commit => cut_after(polls, linger, s.commit()).await,
        Op::Flush => cut_after(polls, linger, s.flush()).await,
        Op::Insert => {
            cut_after(polls, linger, async {
                s.insert(row(g, round, "op-0")).await.map(drop)
            })
            .await
        }
        Op::InsertMany => {
            let rows = (0..MANY)
                .map(|i| row(g, round, format!("op-{i}")))
                .collect();
            cut_after(polls, linger, async { s.insert_many(rows).await.map(drop) }).await
        }
        Op::Upsert => {
            let kv = FaultKv {
                k: "kv".into(),
                v: round,
            };
            cut_after(polls, linger, async { s.upsert(kv).await.map(drop) }).await
        }
        Op::UpsertWith => {
            let kv = FaultKv {
                k: "kv".into(),
                v: round,
            };
            // The conflict update computes `round` from the stored row.
            cut_after(polls, linger, async {
                s.upsert_with(kv)
                    .on_conflict_set(FaultKv::V, FaultKv::V.mul(0).add(round))
                    .await
                    .map(drop)
            })
            .await
        }
        Op::Find => {
            cut_after(polls, linger, async {
                s.find::<FaultRow>(&env.other).await.map(drop)
            })
            .await
        }
        Op::QueryAll => {
            cut_after(polls, linger, async {
                s.query::<FaultRow>()
                    .filter(FaultRow::ROUND.eq(round))
                    .all()
                    .await
                    .map(drop)
            })
            .await
        }
        Op::Load => {
            let parents = [FaultGroup {
                id: g,
                name: format!("g{round}"),
            }];
            cut_after(polls, linger, async {
                parents.load::<FaultRow>(s).await.map(drop)
            })
            .await
        }
        Op::UpdateAll => {
            cut_after(polls, linger, async {
                s.update_all::<FaultRow>()
                    .set(FaultRow::MARK, 1)
                    .filter(FaultRow::ROUND.eq(round))
                    .execute()
                    .await
                    .map(drop)
            })
            .await
        }
        Op::UpdateAllExpr => {
            cut_after(polls, linger, async {
                s.update_all::<FaultRow>()
                    .set_expr(FaultRow::MARK, FaultRow::MARK.add(1))
                    .filter(FaultRow::ROUND.eq(round))
                    .execute()
                    .await
                    .map(drop)
            })
            .await
        }
        Op::DeleteAll => {
            cut_after(polls, linger, async {
                s.delete_all::<FaultRow>()
                    .filter(
                        FaultRow::ROUND
                            .eq(round)
                            .and(FaultRow::TAG.like("victim-%")),
                    )
                    .execute()
                    .await
                    .map(drop)
            })
            .await
        }
        Op::SavepointRollback | Op::SavepointRelease => {
            let Some(sp) = p.savepoint.take() else {
                return Cut::Completed(Err(violation("no savepoint prepared")));
            };
            if env.op == Op::SavepointRollback {
                cut_after(polls, linger, sp.rollback()).await
            } else {
                cut_after(polls, linger, sp.release()).await
            }
        }
        Op::Transaction => unreachable!("run without a session"),
    }
}

/// The committed values a round starts from.
struct Before {
    base_n: i64,
    kv: i64,
}

async fn read_before(env: &Env) -> Result<Before, Error> {
    let s = env
        .observer
        .session_with(SessionOptions::new().read_only())
        .await?;
    let base_n = s
        .find::<FaultRow>(&env.base)
        .await?
        .ok_or(Error::NotFound)?
        .n;
    let kv = s
        .find::<FaultKv>(&"kv".to_string())
        .await?
        .ok_or(Error::NotFound)?
        .v;
    s.rollback().await?;
    Ok(Before { base_n, kv })
}

/// One round: fresh work, the op cut after `polls` polls, the invariants.
/// Answers whether the op was cut.
async fn run_round(env: &mut Env, round: i64, polls: usize) -> Result<bool, Error> {
    env.last_cut = true;
    let before = read_before(env).await?;
    if env.cache.is_some() {
        // The base row and the kv row are in the shared cache before the
        // round changes them.
        let s = env
            .main
            .session_with(SessionOptions::new().read_only())
            .await?;
        s.find::<FaultRow>(&env.base).await?;
        s.find::<FaultKv>(&"kv".to_string()).await?;
        s.commit().await?;
    }
    let op = env.op;
    let (path, sweep) = (env.path, env.sweep.label());
    let label = || format!("{} on {path} ({sweep}), cut at poll {polls}", op.name());

    let (was_cut, expect) = if op == Op::Transaction {
        let base = env.base;
        let outcome = cut_after(
            polls,
            env.sweep.linger,
            env.main.transaction(move |s| async move {
                prepare(&s, base, Op::Transaction, round).await.map(drop)
            }),
        )
        .await;
        env.last_cut = matches!(outcome, Cut::Cut);
        match outcome {
            Cut::Cut => (true, Expect::Either),
            Cut::Completed(Ok(())) => (false, Expect::Committed),
            Cut::Completed(Err(e)) => {
                return Err(violation(format!("{}: uncut it failed: {e:?}", label())));
            }
        }
    } else {
        let what = format!("{}: preparing the round", label());
        let s = within(15, &what, env.main.session()).await?;
        let prepared = within(15, &what, prepare(&s, env.base, op, round)).await;
        let mut p = match prepared {
            Ok(p) => p,
            Err(e) => {
                let open = server_transactions(&env.url).await;
                return Err(Error::Invalid(format!(
                    "{}; open on the server: {open}",
                    message(&e)
                )));
            }
        };
        let outcome = run_op(env, &s, &mut p, round, polls).await;
        env.last_cut = matches!(outcome, Cut::Cut);
        let was_cut = match outcome {
            Cut::Cut => true,
            Cut::Completed(Ok(())) => false,
            Cut::Completed(Err(e)) => {
                return Err(violation(format!("{}: uncut it failed: {e:?}", label())));
            }
        };
        let expect = match env.sweep.after {
            After::Abandon => {
                drop(p);
                drop(s);
                match (op, was_cut) {
                    (Op::Commit, true) => Expect::Either,
                    (Op::Commit, false) => Expect::Committed,
                    _ => Expect::NotCommitted,
                }
            }
            After::Continue => {
                let committed = tokio::time::timeout(Duration::from_secs(15), s.commit())
                    .await
                    .map_err(|_| violation(format!("{}: commit after the cut hangs", label())))?;
                match committed {
                    Ok(()) => {
                        env.committed += 1;
                        Expect::Committed
                    }
                    Err(Error::SessionFailed) => {
                        env.failed += 1;
                        let find = s.find::<FaultRow>(&env.base).await;
                        ensure!(
                            matches!(find, Err(Error::SessionFailed)),
                            "{}: commit answered SessionFailed, then find answered {find:?}",
                            label()
                        );
                        let add = s.add(row(env.group0, round, "late"));
                        ensure!(
                            matches!(add, Err(Error::SessionFailed)),
                            "{}: commit answered SessionFailed, then add answered {add:?}",
                            label()
                        );
                        within(
                            15,
                            &format!("{}: rollback of a failed session", label()),
                            s.rollback(),
                        )
                        .await?;
                        if op == Op::Commit {
                            Expect::Either
                        } else {
                            Expect::NotCommitted
                        }
                    }
                    Err(e) => {
                        return Err(violation(format!(
                            "{}: the next commit answered {e:?}: neither usable nor SessionFailed",
                            label()
                        )));
                    }
                }
            }
        };
        (was_cut, expect)
    };

    let rows = check_database(env, round, expect, &before, &label()).await?;
    let next_id = check_pool(env, round, &rows, &label()).await?;
    if env.cache.is_some() {
        check_cache(env, &rows, next_id, &label()).await?;
    }
    env.last_next_id = next_id;
    Ok(was_cut)
}

/// `prefix×rows` for each tag prefix, to name what a round left.
fn summary(rows: &[FaultRow]) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        // `reg-17` counts as `reg-`; `sp-imm` stays itself.
        let kind = r.tag.trim_end_matches(|c: char| c.is_ascii_digit());
        *by.entry(kind).or_default() += 1;
    }
    let parts: Vec<String> = by.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    format!("[{}]", parts.join(" "))
}

/// The database is all-or-nothing for the round, nothing twice.
async fn check_database(
    env: &Env,
    round: i64,
    expect: Expect,
    before: &Before,
    label: &str,
) -> Result<Vec<FaultRow>, Error> {
    if expect == Expect::Either {
        settle(env, round).await?;
    }
    // One snapshot for every read of the check.
    let s = env
        .observer
        .session_with(
            SessionOptions::new()
                .read_only()
                .isolation(Isolation::RepeatableRead),
        )
        .await?;
    let rows = round_rows(&s, round).await?;
    let base = s
        .find::<FaultRow>(&env.base)
        .await?
        .ok_or(Error::NotFound)?;
    let kv = s
        .find::<FaultKv>(&"kv".to_string())
        .await?
        .ok_or(Error::NotFound)?;
    let groups = s
        .query::<FaultGroup>()
        .filter(FaultGroup::NAME.eq(format!("g{round}")))
        .count()
        .await?;
    s.rollback().await?;

    let committed = base.n == round;
    let has = summary(&rows);
    match expect {
        Expect::Committed => ensure!(
            committed,
            "{label}: commit succeeded but the base row's update is not in the database (rows {has})"
        ),
        Expect::NotCommitted => ensure!(
            !committed,
            "{label}: the transaction was not committed, yet the base row's update is in the database (rows {has})"
        ),
        Expect::Either => {}
    }
    if !committed {
        ensure!(
            rows.is_empty() && groups == 0,
            "{label}: the base row's update is not in the database, yet {} rows of the same transaction are {has} (half a transaction)",
            rows.len()
        );
        ensure!(
            kv.v == before.kv && base.n == before.base_n,
            "{label}: the transaction is not in the database, but kv v={} (before {}) and base n={} (before {})",
            kv.v,
            before.kv,
            base.n,
            before.base_n
        );
        return Ok(rows);
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.tag.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(3).collect();
    ensure!(
        twice.is_empty(),
        "{label}: written twice: {twice:?}… (rows {has}, {} in all)",
        rows.len()
    );
    ensure!(
        groups == 1,
        "{label}: the group row is there {groups} times"
    );
    let count = |prefix: &str| {
        rows.iter()
            .filter(|r| r.tag.split('-').next() == Some(prefix))
            .count()
    };
    ensure!(
        count("imm") == 1 && count("reg") == env.op.registered(),
        "{label}: committed, but not every change of the transaction is there: rows {has}, {} registered",
        env.op.registered()
    );
    let op_rows = count("op");
    let allowed = match env.op {
        Op::Insert => vec![0, 1],
        Op::InsertMany => vec![0, MANY],
        _ => vec![0],
    };
    ensure!(
        allowed.contains(&op_rows),
        "{label}: the op wrote {op_rows} of its rows (allowed {allowed:?}): half an operation"
    );
    let known = ["imm", "reg", "op", "victim", "sp"];
    ensure!(
        rows.iter()
            .all(|r| known.contains(&r.tag.split('-').next().unwrap_or(""))),
        "{label}: unexpected rows {has}"
    );
    match env.op {
        Op::Upsert | Op::UpsertWith => ensure!(
            kv.v == before.kv || kv.v == round,
            "{label}: upsert left v={} (before {}, wrote {round})",
            kv.v,
            before.kv
        ),
        Op::UpdateAll | Op::UpdateAllExpr => {
            let marked = rows.iter().filter(|r| r.mark == 1).count();
            ensure!(
                marked == 0 || marked == rows.len(),
                "{label}: the bulk update changed {marked} of {} rows",
                rows.len()
            );
        }
        Op::DeleteAll => {
            let victims = count("victim");
            ensure!(
                victims == 0 || victims == 3,
                "{label}: the bulk delete removed {} of 3 rows",
                3 - victims
            );
        }
        Op::SavepointRollback => {
            let (imm, reg) = (
                counts.get("sp-imm").copied().unwrap_or(0),
                counts.get("sp-reg").copied().unwrap_or(0),
            );
            ensure!(
                imm == reg,
                "{label}: after the savepoint rollback the database has sp-imm×{imm} but sp-reg×{reg}: the database and the unit of work disagree on whether it was rolled back"
            );
        }
        Op::SavepointRelease => ensure!(
            count("sp") == 2,
            "{label}: a released savepoint's work is missing: rows {has}"
        ),
        _ => ensure!(count("sp") + count("victim") == 0, "{label}: rows {has}"),
    }
    Ok(rows)
}

/// After a cut commit the server may still be running the `COMMIT` the
/// dropped future sent: waits until what the database shows stops changing.
async fn settle(env: &Env, round: i64) -> Result<(), Error> {
    let state = || async {
        let rows = committed_rows(&env.observer, round).await?.len();
        let s = env
            .observer
            .session_with(SessionOptions::new().read_only())
            .await?;
        let base = s.find::<FaultRow>(&env.base).await?.map(|b| b.n);
        s.rollback().await?;
        Ok::<_, Error>((rows, base))
    };
    let start = std::time::Instant::now();
    let mut last = state().await?;
    loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = state().await?;
        if now == last && start.elapsed() > Duration::from_millis(100) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(3) {
            return Ok(());
        }
        last = now;
    }
}

/// A fresh session sees only committed rows, and its commit writes exactly
/// its own row. Answers the id of that row.
async fn check_pool(env: &Env, round: i64, rows: &[FaultRow], label: &str) -> Result<i64, Error> {
    let (seen, next) = within(15, &format!("{label}: a fresh session afterwards"), async {
        let s = env.main.session().await?;
        let seen = s
            .query::<FaultRow>()
            .filter(FaultRow::ROUND.eq(round))
            .count()
            .await?;
        let next = s.insert(row(env.group0, -round, "next")).await?;
        s.commit().await?;
        Ok((seen, next))
    })
    .await?;
    ensure!(
        seen as usize == rows.len(),
        "{label}: a fresh session sees {seen} rows of the cut round, the database holds {}: it runs inside the cut session's transaction",
        rows.len()
    );
    let after = committed_rows(&env.observer, round).await?;
    ensure!(
        after.len() == rows.len(),
        "{label}: the next session's commit also committed {} rows of the cut session's transaction {}",
        after.len() - rows.len().min(after.len()),
        summary(&after)
    );
    let mine = committed_rows(&env.observer, -round).await?;
    ensure!(
        mine.len() == 1 && mine[0] == next,
        "{label}: the next session committed {mine:?}, not exactly its own row"
    );
    Ok(next.id)
}

/// A `find` through the shared cache answers what the database holds: the
/// rows the round changed, and any row id the round may have used.
async fn check_cache(env: &Env, rows: &[FaultRow], next_id: i64, label: &str) -> Result<(), Error> {
    let Some(cache) = &env.cache else {
        return Ok(());
    };
    let reader = env
        .main
        .session_with(SessionOptions::new().read_only())
        .await?;
    let truth = env
        .observer
        .session_with(SessionOptions::new().read_only())
        .await?;
    let base_db = truth.find::<FaultRow>(&env.base).await?;
    let base_seen = reader.find::<FaultRow>(&env.base).await?;
    ensure!(
        base_seen == base_db,
        "{label}: find through the cache answers {base_seen:?}, the database holds {base_db:?}"
    );
    let kv_db = truth.find::<FaultKv>(&"kv".to_string()).await?;
    let kv_seen = reader.find::<FaultKv>(&"kv".to_string()).await?;
    ensure!(
        kv_seen == kv_db,
        "{label}: find through the cache answers {kv_seen:?}, the database holds {kv_db:?}"
    );
    let by_id: BTreeMap<i64, &FaultRow> = rows.iter().map(|r| (r.id, r)).collect();
    let top = next_id + env.op.rows_written();
    for id in env.last_next_id + 1..=top {
        let key = CacheKey {
            region: "fault_rows".into(),
            key: format!("{id:?}"),
        };
        let cached = cache.get(&key).await.ok().flatten().is_some();
        if !cached && !by_id.contains_key(&id) {
            continue;
        }
        let seen = reader.find::<FaultRow>(&id).await?;
        let held = match by_id.get(&id) {
            Some(r) => Some((*r).clone()),
            None => truth.find::<FaultRow>(&id).await?,
        };
        ensure!(
            seen == held,
            "{label}: find({id}) through the cache answers {seen:?}, the database holds {held:?}"
        );
    }
    reader.rollback().await?;
    truth.rollback().await?;
    Ok(())
}

/// The transactions open on the server (MariaDB) or the sessions in a
/// transaction (PostgreSQL), to name what a hang waits for.
async fn server_transactions(url: &str) -> String {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let Ok(mut c) = sqlx::PgConnection::connect(url).await else {
            return "?".into();
        };
        let rows: Result<Vec<(i32, String, String)>, _> = sqlx::query_as(
            "SELECT pid, COALESCE(state, ''), COALESCE(query, '') FROM pg_stat_activity \
             WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut c)
        .await;
        format!("{rows:?}")
    } else if url.starts_with("mysql") {
        let Ok(mut c) = sqlx::MySqlConnection::connect(url).await else {
            return "?".into();
        };
        let rows: Result<Vec<(i64, String, String, i64)>, _> = sqlx::query_as(
            "SELECT CAST(trx_mysql_thread_id AS SIGNED), CAST(trx_state AS CHAR), \
             CAST(COALESCE(trx_query, '') AS CHAR), CAST(trx_rows_locked AS SIGNED) \
             FROM information_schema.INNODB_TRX",
        )
        .fetch_all(&mut c)
        .await;
        let procs: Result<Vec<(i64, String, String)>, _> = sqlx::query_as(
            "SELECT CAST(ID AS SIGNED), CAST(COMMAND AS CHAR), CAST(COALESCE(INFO, '') AS CHAR) \
             FROM information_schema.PROCESSLIST WHERE DB = DATABASE()",
        )
        .fetch_all(&mut c)
        .await;
        format!("transactions {rows:?}, connections {procs:?}")
    } else {
        "(SQLite)".into()
    }
}

/// An error's text without `Error::Invalid`'s "invalid use: " prefix, for
/// messages that wrap it.
fn message(e: &Error) -> String {
    match e {
        Error::Invalid(m) => m.clone(),
        e => e.to_string(),
    }
}
