//! Test harness: one suite, run on every backend, each test in its own
//! database (SQLite file, PostgreSQL schema, MariaDB database).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use persist_core::prelude::*;
use persist_core::sql::Backend;

pub type TestResult = Result<(), Error>;
pub type TestFn = fn(Db) -> Pin<Box<dyn Future<Output = TestResult> + Send>>;

/// A deadlock must fail a test in seconds, not eat CI's time.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Leftovers of earlier runs older than this are dropped.
const SWEEP_AGE_SECS: u64 = 3600;
const PREFIX: &str = "persist_t_";

fn pg_url() -> String {
    std::env::var("PERSIST_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn mysql_url() -> String {
    std::env::var("PERSIST_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn unique_name(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect();
    format!(
        "{PREFIX}{secs}_{}_{n}_{}",
        std::process::id(),
        short.to_lowercase()
    )
}

fn is_old(name: &str) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    name.strip_prefix(PREFIX)
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|secs| secs + SWEEP_AGE_SECS < now)
}

/// An isolated database for one test, and how to tear it down.
struct Isolated {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(std::path::PathBuf),
    PgSchema(String),
    MySqlDatabase(String),
}

async fn unreachable(backend: &str, e: impl std::fmt::Display) -> Option<Isolated> {
    if in_ci() {
        panic!("{backend} is unreachable and CI=true: {e}");
    }
    eprintln!(
        "\n!!!!! SKIPPING {backend} TEST: server unreachable ({e}). Start it or set CI=true to fail. !!!!!\n"
    );
    None
}

async fn isolate(backend: Backend, test: &str) -> Option<Isolated> {
    let name = unique_name(test);
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            Some(Isolated {
                url: format!("sqlite://{}?mode=rwc", path.display()),
                cleanup: Cleanup::File(path),
            })
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut admin = match sqlx::PgConnection::connect(&pg_url()).await {
                Ok(c) => c,
                Err(e) => return unreachable("PostgreSQL", e).await,
            };
            let old: Vec<(String,)> = sqlx::query_as(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'persist\\_t\\_%'",
            )
            .fetch_all(&mut admin)
            .await
            .expect("list schemas");
            for (s,) in old.into_iter().filter(|(s,)| is_old(s)) {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{s}\" CASCADE"
                )))
                .execute(&mut admin)
                .await;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
                .execute(&mut admin)
                .await
                .expect("create schema");
            let sep = if pg_url().contains('?') { '&' } else { '?' };
            Some(Isolated {
                url: format!("{}{sep}options=-c%20search_path%3D{name}", pg_url()),
                cleanup: Cleanup::PgSchema(name),
            })
        }
        Backend::MySql => {
            use sqlx::Connection;
            let mut admin = match sqlx::MySqlConnection::connect(&mysql_url()).await {
                Ok(c) => c,
                Err(e) => return unreachable("MariaDB/MySQL", e).await,
            };
            let old: Vec<(String,)> = sqlx::query_as(
                "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'persist\\_t\\_%'",
            )
            .fetch_all(&mut admin)
            .await
            .expect("list databases");
            for (s,) in old.into_iter().filter(|(s,)| is_old(s)) {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{s}`"
                )))
                .execute(&mut admin)
                .await;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
                .execute(&mut admin)
                .await
                .expect("create database");
            let base = mysql_url();
            let (prefix, _) = base.rsplit_once('/').expect("mysql url has a database");
            Some(Isolated {
                url: format!("{prefix}/{name}"),
                cleanup: Cleanup::MySqlDatabase(name),
            })
        }
        other => panic!("the test suite has no case for {other:?}"),
    }
}

async fn teardown(c: Cleanup) {
    use sqlx::Connection;
    match c {
        Cleanup::File(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        Cleanup::PgSchema(name) => {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&pg_url()).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&mut admin)
                .await;
            }
        }
        Cleanup::MySqlDatabase(name) => {
            if let Ok(mut admin) = sqlx::MySqlConnection::connect(&mysql_url()).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{name}`"
                )))
                .execute(&mut admin)
                .await;
            }
        }
    }
}

/// Runs `test` against a fresh isolated database of `backend`, on its own
/// runtime (no pool crosses runtimes), with a timeout. `sqlite_direct`
/// picks SQLite's path (direct, or sqlx's fallback); other backends ignore it.
pub fn run(backend: Backend, sqlite_direct: bool, test_name: &str, test: TestFn) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let Some(iso) = isolate(backend, test_name).await else {
            return;
        };
        let path = if sqlite_direct { "direct" } else { "sqlx" };
        let outcome = tokio::time::timeout(TIMEOUT, async {
            let db = Db::builder()
                .max_connections(5)
                .sqlite_direct(sqlite_direct)
                .connect(&iso.url)
                .await?;
            let r = test(db.clone()).await;
            db.close().await;
            r
        })
        .await;
        teardown(iso.cleanup).await;
        match outcome {
            Err(_) => panic!("{test_name} on {backend:?} ({path}) timed out after {TIMEOUT:?}"),
            Ok(Err(e)) => panic!("{test_name} on {backend:?} ({path}) failed: {e:?}"),
            Ok(Ok(())) => {}
        }
    });
}

/// The URL of a fresh isolated database, for tests that open several `Db`s.
pub async fn isolated_url(
    backend: Backend,
    test_name: &str,
) -> Option<(String, impl Future<Output = ()>)> {
    let iso = isolate(backend, test_name).await?;
    Some((iso.url, teardown(iso.cleanup)))
}

/// Runs `test` with the URL of a fresh isolated database of `backend`,
/// then drops that database whatever `test` answered. Where the backend is
/// skipped (unreachable outside CI) the test passes without running.
pub async fn with_isolated_db<F, Fut>(backend: Backend, test_name: &str, test: F) -> TestResult
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let Some((url, teardown)) = isolated_url(backend, test_name).await else {
        return Ok(());
    };
    let outcome = test(url).await;
    teardown.await;
    outcome
}

/// Declares the suite: every listed test, once per backend, named
/// `<backend>::<module>::<test>`. SQLite runs twice: `sqlite` on the direct
/// path (the default), `sqlite_sqlx` through sqlx's driver.
#[macro_export]
macro_rules! suite {
    ($($module:ident: [$($test:ident),* $(,)?]),* $(,)?) => {
        $crate::suite!(@backend sqlite Sqlite true; $($module: [$($test),*]),*);
        $crate::suite!(@backend sqlite_sqlx Sqlite false; $($module: [$($test),*]),*);
        $crate::suite!(@backend postgres Postgres true; $($module: [$($test),*]),*);
        $crate::suite!(@backend mysql MySql true; $($module: [$($test),*]),*);
    };
    (@backend $b:ident $B:ident $direct:literal; $($module:ident: [$($test:ident),*]),*) => {
        mod $b {
            $(
                mod $module {
                    $(
                        #[test]
                        fn $test() {
                            $crate::common::run(
                                ::persist_core::sql::Backend::$B,
                                $direct,
                                concat!(stringify!($module), "::", stringify!($test)),
                                |db| Box::pin($crate::$module::$test(db)),
                            );
                        }
                    )*
                }
            )*
        }
    };
}

/// A `redis-server` of the test's own on a spare port, killed on drop.
pub struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a spare port");
        let mut r = OwnRedis { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "own redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `CLIENT PAUSE <ms> ALL`: every client's commands wait, data stays.
    pub fn pause(&self, ms: u64) {
        let ms = ms.to_string();
        let mut t = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("redis");
        let cmd = format!(
            "*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n${}\r\n{ms}\r\n$3\r\nALL\r\n",
            ms.len()
        );
        std::io::Write::write_all(&mut t, cmd.as_bytes()).expect("send CLIENT PAUSE");
        let mut reply = [0u8; 5];
        std::io::Read::read_exact(&mut t, &mut reply).expect("CLIENT PAUSE reply");
        assert_eq!(&reply, b"+OK\r\n", "CLIENT PAUSE accepted");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
