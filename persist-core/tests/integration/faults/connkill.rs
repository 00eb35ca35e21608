//! The server kills the session's connection from another connection
//! (PostgreSQL `pg_terminate_backend`, MariaDB `KILL`) mid-transaction and
//! mid-commit: the error surfaces, nothing partial is in the database, and
//! the pool recovers. No meaning on SQLite (no server).

use std::time::{Duration, Instant};

use persist_core::prelude::*;
use persist_core::sql::Backend;

use super::model::*;
use crate::common::{self, TestResult};

/// The server's id of `s`'s connection (the session's transaction begins
/// with this statement if it had not).
async fn backend_pid(s: &Session) -> Result<i64, Error> {
    let sql = match s.backend() {
        Backend::Postgres => "SELECT CAST(pg_backend_pid() AS BIGINT) AS pid",
        _ => "SELECT CAST(CONNECTION_ID() AS SIGNED) AS pid",
    };
    Ok(s.raw::<BackendPid>(sql).one().await?.pid)
}

/// A connection of its own to the test's database, outside persist.
enum Admin {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
}

impl Admin {
    async fn connect(backend: Backend, url: &str) -> Result<Admin, Error> {
        use sqlx::Connection;
        Ok(match backend {
            Backend::Postgres => Admin::Pg(sqlx::PgConnection::connect(url).await?),
            _ => Admin::My(sqlx::MySqlConnection::connect(url).await?),
        })
    }

    async fn kill(&mut self, pid: i64) -> Result<(), Error> {
        match self {
            Admin::Pg(c) => {
                sqlx::query("SELECT pg_terminate_backend($1)")
                    .bind(pid as i32)
                    .execute(&mut *c)
                    .await?;
            }
            Admin::My(c) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("KILL {pid}")))
                    .execute(&mut *c)
                    .await?;
            }
        }
        Ok(())
    }

    /// What the backend `pid` is running now, if it is running a statement.
    async fn running(&mut self, pid: i64) -> Result<Option<String>, Error> {
        Ok(match self {
            Admin::Pg(c) => sqlx::query_as::<_, (String,)>(
                "SELECT query FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
            )
            .bind(pid as i32)
            .fetch_optional(&mut *c)
            .await?
            .map(|(q,)| q),
            Admin::My(c) => sqlx::query_as::<_, (Option<String>,)>(
                "SELECT CAST(INFO AS CHAR) FROM information_schema.PROCESSLIST WHERE ID = ?",
            )
            .bind(pid)
            .fetch_optional(&mut *c)
            .await?
            .and_then(|(q,)| q),
        })
    }

    /// Waits until the backend `pid` is gone.
    async fn wait_gone(&mut self, pid: i64) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let alive = match self {
                Admin::Pg(c) => {
                    sqlx::query_as::<_, (i64,)>(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1",
                    )
                    .bind(pid as i32)
                    .fetch_one(&mut *c)
                    .await?
                    .0
                }
                Admin::My(c) => {
                    sqlx::query_as::<_, (i64,)>(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                    )
                    .bind(pid)
                    .fetch_one(&mut *c)
                    .await?
                    .0
                }
            };
            if alive == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(violation(format!("backend {pid} still alive after KILL")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A fresh database, a `Db` of at most two connections on it (a dead one
/// kept would surely be reused), an admin connection, and a group row.
async fn with_server_db<F, Fut>(db: &Db, test: &str, body: F) -> TestResult
where
    F: FnOnce(Db, Db, Admin, i64) -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    if db.backend() == Backend::Sqlite {
        eprintln!("{test}: SQLite has no server to kill a connection; nothing to test");
        return Ok(());
    }
    common::with_isolated_db(db.backend(), test, |url| async move {
        let main = Db::builder().max_connections(2).connect(&url).await?;
        let g = seed_group(&main).await?;
        let witness = observer(&url, true).await?;
        let admin = Admin::connect(db.backend(), &url).await?;
        let r = body(main.clone(), witness.clone(), admin, g).await;
        witness.close().await;
        within(10, "Db::close after a killed connection", async {
            main.close().await;
            Ok(())
        })
        .await?;
        r
    })
    .await
}

/// New sessions on `main` work: a few in a row, more than its connections.
async fn pool_recovers(main: &Db, witness: &Db, g: i64, round: i64) -> TestResult {
    for i in 0..4 {
        within(15, "a new session after the kill", async {
            let s = main.session().await?;
            s.insert(row(g, round, format!("after-{i}"))).await?;
            s.commit().await
        })
        .await?;
    }
    let rows = committed_rows(witness, round).await?;
    assert_eq!(
        rows.len(),
        4,
        "new sessions after the kill commit their rows"
    );
    Ok(())
}

pub async fn connection_killed_mid_transaction(db: Db) -> TestResult {
    with_server_db(
        &db,
        "connection_killed_mid_transaction",
        |main, witness, mut admin, g| async move {
            // The next call after the kill is a write, then a commit alone.
            for (round, next_is_insert) in [(1, true), (2, false)] {
                let s = main.session().await?;
                s.insert(row(g, round, "written")).await?;
                let pid = backend_pid(&s).await?;
                s.add_many((0..10).map(|i| row(g, round, format!("reg-{i}"))).collect())?;
                admin.kill(pid).await?;
                admin.wait_gone(pid).await?;

                if next_is_insert {
                    let next = s.insert(row(g, round, "next")).await;
                    assert!(
                        next.is_err(),
                        "an insert on a killed connection answered {next:?}"
                    );
                }
                let commit = within(15, "commit on a killed connection", async {
                    Ok(s.commit().await)
                })
                .await?;
                let rows = committed_rows(&witness, round).await?;
                let tags: Vec<_> = rows.iter().map(|r| r.tag.as_str()).collect();
                assert!(
                    commit.is_err(),
                    "commit after the server killed the transaction's connection succeeded; the database holds {tags:?} (the transaction's first row died with the connection)"
                );
                assert!(
                    rows.is_empty(),
                    "half a transaction committed after a kill: {tags:?}"
                );
                // The session is usable again after rollback.
                let _ = s.rollback().await;
                within(15, "the same session after rollback", async {
                    s.insert(row(g, round + 10, "again")).await?;
                    s.commit().await
                })
                .await?;
                pool_recovers(&main, &witness, g, round + 20).await?;
            }
            Ok(())
        },
    )
    .await
}

pub async fn connection_killed_mid_commit(db: Db) -> TestResult {
    with_server_db(
        &db,
        "connection_killed_mid_commit",
        |main, witness, mut admin, g| async move {
            // The flush of 20,000 rows inside commit, killed once an INSERT runs.
            let mut caught = false;
            for round in 1..=3 {
                let s = main.session().await?;
                let pid = backend_pid(&s).await?;
                s.add_many(
                    (0..20_000)
                        .map(|i| row(g, round, format!("r{i}")))
                        .collect(),
                )?;
                let commit = tokio::spawn({
                    let s = s.clone();
                    async move { s.commit().await }
                });
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut killed = false;
                while !commit.is_finished() && Instant::now() < deadline {
                    if let Some(q) = admin.running(pid).await?
                        && q.to_ascii_uppercase().starts_with("INSERT")
                    {
                        admin.kill(pid).await?;
                        killed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let out = within(20, "a commit whose connection was killed", async {
                    Ok(commit.await.expect("the commit task does not panic"))
                })
                .await?;
                let rows = committed_rows(&witness, round).await?;
                if !killed {
                    eprintln!("round {round}: the flush finished before it could be killed");
                    let _ = s.rollback().await;
                    continue;
                }
                caught = true;
                assert!(
                    rows.is_empty() || rows.len() == 20_000,
                    "a commit killed mid-flush left {} of 20,000 rows",
                    rows.len()
                );
                assert!(
                    out.is_err() || rows.len() == 20_000,
                    "commit answered Ok but the database holds {} rows",
                    rows.len()
                );
                let _ = s.rollback().await;
                pool_recovers(&main, &witness, g, round + 100).await?;
                break;
            }
            assert!(caught, "never caught the commit's flush running to kill it");

            if main.backend() == Backend::Postgres {
                killed_in_commit_statement(&main, &witness, &mut admin, g).await?;
            }
            Ok(())
        },
    )
    .await
}

/// PostgreSQL: `COMMIT` itself held by a deferred constraint trigger that
/// sleeps, and the backend killed while it runs.
async fn killed_in_commit_statement(
    main: &Db,
    witness: &Db,
    admin: &mut Admin,
    g: i64,
) -> TestResult {
    let Admin::Pg(c) = admin else {
        return Ok(());
    };
    for sql in [
        "CREATE FUNCTION fault_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.tag = 'slow-commit' THEN PERFORM pg_sleep(5); END IF; RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER fault_slow_commit AFTER INSERT ON fault_rows \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fault_slow_commit()",
    ] {
        sqlx::query(sql).execute(&mut *c).await?;
    }
    let round = 500;
    let s = main.session().await?;
    let pid = backend_pid(&s).await?;
    s.insert(row(g, round, "first")).await?;
    s.add(row(g, round, "slow-commit"))?;
    let commit = tokio::spawn({
        let s = s.clone();
        async move { s.commit().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut killed = false;
    while Instant::now() < deadline && !commit.is_finished() {
        if admin.running(pid).await?.as_deref() == Some("COMMIT") {
            admin.kill(pid).await?;
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(killed, "COMMIT was never seen running");
    let out = within(20, "a COMMIT whose connection was killed", async {
        Ok(commit.await.expect("the commit task does not panic"))
    })
    .await?;
    let rows = committed_rows(witness, round).await?;
    assert!(
        out.is_err(),
        "commit answered Ok though its COMMIT was killed"
    );
    assert!(rows.is_empty(), "a killed COMMIT left {} rows", rows.len());
    let _ = s.rollback().await;
    pool_recovers(main, witness, g, round + 1).await
}
