//! persist against the anchors (issue 6): a replica of Diesel's
//! `diesel_bench` schema, seed and workloads, plus persist's own (point
//! lookup, identity-map hit, L2 hit, unit-of-work insert and update), on
//! three backends:
//! - `sqlite`: a WAL file, `synchronous=NORMAL`;
//! - `sqlite_memory`: one named in-memory database per run
//!   (`file:<name>?mode=memory&cache=shared`), every contender connected to
//!   it; the benchmark's own raw connection keeps it alive for the run;
//! - `postgres`: a schema of its own on 127.0.0.1.
//!
//! Contenders, all in this process and run:
//! - `persist`: the session API (`query`, `left_join`, the batched relation
//!   loader `load`, `insert_many`, `find`, `insert`), reads inside one
//!   session held for the whole benchmark (its intended use); writes in a
//!   session per iteration (BEGIN … COMMIT included, a session is one
//!   transaction);
//! - `persist-autocommit` (`insert_1`, PostgreSQL only for now: on SQLite
//!   repeated autocommit writes hang on persist's direct path): the same
//!   `insert_many` in a session opened with
//!   `SessionOptions::default().autocommit()`, one statement committed by
//!   itself (no BEGIN / COMMIT); such a session refuses several rows, which
//!   `insert_100` / `insert_1000` assert;
//! - `persist-uow`: the unit of work (`add_many` + `commit`; `update` +
//!   `commit`);
//! - `persist-sqlx` (cargo feature `sqlite-direct-toggle`, SQLite only):
//!   persist with `DbBuilder::sqlite_direct(false)`, reads through sqlx
//!   instead of the raw SQLite handle;
//! - `sqlx`: hand-written SQL and `FromRow` on ONE connection (no pool),
//!   prepared statements cached by sqlx; the reference of every ratio;
//! - `sqlx-pool1`: the same SQL through a `Pool` of `max_connections(1)`
//!   (default pool options otherwise);
//! - `diesel` (sync, its own connection, statement cache on);
//! - `sea-orm` (2.0, on the same sqlx 0.9, a pool of one);
//! - `rusqlite` (SQLite only): `prepare_cached` statements on one connection;
//! - `tokio-postgres` (PostgreSQL only): statements prepared once;
//! - `sqlx-tx`, `diesel-tx`, `sea-orm-tx`, `rusqlite-tx`,
//!   `tokio-postgres-tx`: the same reads (`trivial_N`, `medium_N`,
//!   `associations`, `find_by_key`) inside ONE transaction begun before the
//!   contender's measurement and committed after it, as persist's session
//!   is (sqlx: `Connection::begin` and `&mut *tx` as the executor; Diesel:
//!   its transaction manager's `BEGIN` / `COMMIT` on its connection; SeaORM:
//!   `db.begin()`, the `DatabaseTransaction` as the connection; rusqlite and
//!   tokio-postgres: `BEGIN` / `COMMIT` on their connection). The plain
//!   names read in autocommit: on a SQLite WAL file each such read takes
//!   and drops a snapshot, which a held transaction does not. A held read
//!   transaction ends before the next contender starts, so it never blocks
//!   the seeding writes of later groups (on `sqlite_memory`'s shared cache
//!   its table locks would).
//!
//! Fairness: one current-thread tokio runtime for every async contender; the
//! tables are truncated and re-seeded before each workload and size (and
//! before each contender of the 10,000-row writes); every contender's result
//! is checked once (row counts) outside the timed loop.
//!
//! Workload names follow the issue (`trivial_N`, `medium_N`, `insert_N`,
//! `associations`, `find_by_key`, `find_by_key_identity_map`,
//! `find_by_key_l2`, `uow_update_1000`, `uow_insert_10000`,
//! `single_inserts_10000`, plus `multi_insert_10000` for raw sqlx's
//! hand-written multi-row insert of the same rows). Criterion ids are
//! `<backend>/<workload>/<contender>`.
//!
//! Run with `bash bench/run.sh` (short settings), or
//! `cargo bench --bench anchors -- --warm-up-time 0.5 --measurement-time 2`.

use std::cell::Cell;
use std::collections::HashMap;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkGroup, Criterion, measurement::WallTime};
use persist_bench::{Rng, pg_url, unique_name};
use persist_cache::InProcessCache;
use persist_core::prelude::*;
use sea_orm::TransactionTrait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row, SqliteConnection, SqlitePool};
use tokio::runtime::Runtime;

// ----- schema (diesel_bench) -------------------------------------------------

/// `users(id, name, hair_color NULL)`.
#[derive(Entity, sqlx::FromRow, Clone, Debug, PartialEq)]
#[persist(table = "users", has_many(Post, by = "user_id"))]
pub struct User {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub hair_color: Option<String>,
}

/// `posts(id, user_id, title, body NULL)`.
#[derive(Entity, sqlx::FromRow, Clone, Debug, PartialEq)]
#[persist(table = "posts", has_many(Comment, by = "post_id"))]
pub struct Post {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "User")]
    pub user_id: i64,
    pub title: String,
    pub body: Option<String>,
}

/// `comments(id, post_id, text)`.
#[derive(Entity, sqlx::FromRow, Clone, Debug, PartialEq)]
#[persist(table = "comments")]
pub struct Comment {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "Post")]
    pub post_id: i64,
    pub text: String,
}

/// A user with its posts, each post with its comments.
type Family<U, P, C> = (U, Vec<(P, Vec<C>)>);

/// Users, each with its posts, each post with its comments.
type Tree = Vec<Family<User, Post, Comment>>;

const SQLITE_DDL: &[&str] = &[
    "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL, hair_color TEXT)",
    "CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, user_id INTEGER NOT NULL, title TEXT NOT NULL, body TEXT)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, post_id INTEGER NOT NULL, text TEXT NOT NULL)",
    "CREATE INDEX users_hair_color ON users (hair_color)",
    "CREATE INDEX posts_user_id ON posts (user_id)",
    "CREATE INDEX comments_post_id ON comments (post_id)",
];

const PG_DDL: &[&str] = &[
    // diesel_bench uses SERIAL / INTEGER (int4); when the suite was written
    // persist's insert path read a generated key as INT8 whatever the field
    // type (fixed since), so the keys here are BIGSERIAL / BIGINT and the
    // Rust fields i64, for every contender.
    "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, name VARCHAR NOT NULL, hair_color VARCHAR)",
    "CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, title VARCHAR NOT NULL, body TEXT)",
    "CREATE TABLE comments (id BIGSERIAL PRIMARY KEY, post_id BIGINT NOT NULL, text TEXT NOT NULL)",
    "CREATE INDEX users_hair_color ON users (hair_color)",
    "CREATE INDEX posts_user_id ON posts (user_id)",
    "CREATE INDEX comments_post_id ON comments (post_id)",
];

/// diesel_bench's seed: `User {i}`, `i` from 0, black for even `i`.
fn new_users(n: usize) -> Vec<User> {
    (0..n)
        .map(|i| User {
            id: 0,
            name: format!("User {i}"),
            hair_color: Some(if i % 2 == 0 { "black" } else { "brown" }.to_string()),
        })
        .collect()
}

/// The associations workload's shape (diesel_bench): users, posts per user,
/// comments per post.
const ASSOC_USERS: usize = 100;
const ASSOC_POSTS: usize = 10;
const ASSOC_COMMENTS: usize = 10;

const TRIVIAL_SQL: &str = "SELECT id, name, hair_color FROM users";
const MEDIUM_SQL_SQLITE: &str = "SELECT users.id, users.name, users.hair_color, posts.id, posts.user_id, posts.title, posts.body \
     FROM users LEFT JOIN posts ON posts.user_id = users.id WHERE users.hair_color = ?";
const MEDIUM_SQL_PG: &str = "SELECT users.id, users.name, users.hair_color, posts.id, posts.user_id, posts.title, posts.body \
     FROM users LEFT JOIN posts ON posts.user_id = users.id WHERE users.hair_color = $1";
const FIND_SQL_SQLITE: &str = "SELECT id, name, hair_color FROM users WHERE id = ?";
const FIND_SQL_PG: &str = "SELECT id, name, hair_color FROM users WHERE id = $1";
const SINGLE_INSERT_SQLITE: &str = "INSERT INTO users (name, hair_color) VALUES (?, ?)";
const SINGLE_INSERT_PG: &str = "INSERT INTO users (name, hair_color) VALUES ($1, $2)";
const UPDATE_SQLITE: &str = "UPDATE users SET hair_color = ? WHERE id = ?";
const UPDATE_PG: &str = "UPDATE users SET hair_color = $1 WHERE id = $2";
const POSTS_BY_USER: &str = "SELECT id, user_id, title, body FROM posts WHERE user_id";
const COMMENTS_BY_POST: &str = "SELECT id, post_id, text FROM comments WHERE post_id";
const POSTS_BY_USER_PG: &str = "SELECT id, user_id, title, body FROM posts WHERE user_id = ANY($1)";
const COMMENTS_BY_POST_PG: &str = "SELECT id, post_id, text FROM comments WHERE post_id = ANY($1)";

/// `{head} IN (?, ?, …)` with `n` placeholders (SQLite).
fn in_list(head: &str, n: usize) -> String {
    let mut s = String::with_capacity(head.len() + 6 + 3 * n);
    s.push_str(head);
    s.push_str(" IN (");
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ", ?" });
    }
    s.push(')');
    s
}

/// Groups comments under their posts and posts under their users, in the
/// users' order (what a hand-written three-query loader does).
fn group_tree(users: Vec<User>, posts: Vec<Post>, comments: Vec<Comment>) -> Tree {
    let mut by_post: HashMap<i64, Vec<Comment>> = HashMap::with_capacity(posts.len());
    for c in comments {
        by_post.entry(c.post_id).or_default().push(c);
    }
    let mut by_user: HashMap<i64, Vec<(Post, Vec<Comment>)>> = HashMap::with_capacity(users.len());
    for p in posts {
        let cs = by_post.remove(&p.id).unwrap_or_default();
        by_user.entry(p.user_id).or_default().push((p, cs));
    }
    users
        .into_iter()
        .map(|u| {
            let ps = by_user.remove(&u.id).unwrap_or_default();
            (u, ps)
        })
        .collect()
}

/// Counts of a loaded tree: (users, posts, comments), checking that every
/// child sits under its parent.
fn tree_counts<U, P, C>(
    tree: &[Family<U, P, C>],
    user_id: impl Fn(&U) -> i64,
    post_ids: impl Fn(&P) -> (i64, i64),
    comment_post: impl Fn(&C) -> i64,
) -> (usize, usize, usize) {
    let (mut np, mut nc) = (0, 0);
    for (u, ps) in tree {
        for (p, cs) in ps {
            let (pid, uid) = post_ids(p);
            assert_eq!(uid, user_id(u), "post under its user");
            assert!(
                cs.iter().all(|c| comment_post(c) == pid),
                "comment under its post"
            );
            np += 1;
            nc += cs.len();
        }
    }
    (tree.len(), np, nc)
}

const ASSOC_COUNTS: (usize, usize, usize) = (
    ASSOC_USERS,
    ASSOC_USERS * ASSOC_POSTS,
    ASSOC_USERS * ASSOC_POSTS * ASSOC_COMMENTS,
);

/// `INSERT INTO users (name, hair_color) VALUES (…), (…)` for `n` rows.
fn multi_insert_sql(b: Backend, n: usize) -> Arc<str> {
    let mut s = String::from("INSERT INTO users (name, hair_color) VALUES ");
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        if b.is_sqlite() {
            s.push_str("(?, ?)");
        } else {
            s.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
        }
    }
    s.into()
}

/// A left-join row decoded by hand (what a `FromRow` user writes).
struct Joined(User, Option<Post>);

impl<'r, R: Row> sqlx::FromRow<'r, R> for Joined
where
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let user = User {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            hair_color: row.try_get(2)?,
        };
        let post = match row.try_get::<Option<i64>, _>(3)? {
            None => None,
            Some(id) => Some(Post {
                id,
                user_id: row.try_get(4)?,
                title: row.try_get(5)?,
                body: row.try_get(6)?,
            }),
        };
        Ok(Joined(user, post))
    }
}

// ----- scratch databases -------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    SqliteMemory,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::SqliteMemory => "sqlite_memory",
            Backend::Postgres => "postgres",
        }
    }

    fn is_sqlite(self) -> bool {
        self != Backend::Postgres
    }
}

/// One raw sqlx connection, per backend.
enum Raw {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// Raw sqlx's connection as the read contenders take it: the bench's own
/// connection ([`Raw::conn`], autocommit) or a transaction held open on it
/// ([`RawTx::conn`], `&mut *tx`).
enum RawMut<'a> {
    Sqlite(&'a mut SqliteConnection),
    Pg(&'a mut PgConnection),
}

/// A transaction open on raw sqlx's connection (`Connection::begin`).
enum RawTx<'a> {
    Sqlite(sqlx::Transaction<'a, sqlx::Sqlite>),
    Pg(sqlx::Transaction<'a, sqlx::Postgres>),
}

impl Raw {
    /// The connection itself: every statement autocommits.
    fn conn(&mut self) -> RawMut<'_> {
        match self {
            Raw::Sqlite(c) => RawMut::Sqlite(c),
            Raw::Pg(c) => RawMut::Pg(c),
        }
    }

    /// `BEGIN` on the connection; [`RawTx::commit`] ends it.
    async fn begin(&mut self) -> RawTx<'_> {
        match self {
            Raw::Sqlite(c) => RawTx::Sqlite(c.begin().await.expect("begin")),
            Raw::Pg(c) => RawTx::Pg(c.begin().await.expect("begin")),
        }
    }
}

impl RawTx<'_> {
    /// The transaction as an executor (`&mut *tx`).
    fn conn(&mut self) -> RawMut<'_> {
        match self {
            RawTx::Sqlite(tx) => RawMut::Sqlite(tx),
            RawTx::Pg(tx) => RawMut::Pg(tx),
        }
    }

    async fn commit(self) {
        match self {
            RawTx::Sqlite(tx) => tx.commit().await,
            RawTx::Pg(tx) => tx.commit().await,
        }
        .expect("commit");
    }
}

/// A raw sqlx pool of one connection, per backend.
enum Pool1 {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// A scratch database and every contender's connection to it.
struct Bed {
    backend: Backend,
    /// What persist connects with (also the L2 contender's `Db`).
    url: String,
    db: Db,
    /// persist reading SQLite through sqlx (`sqlite_direct(false)`).
    #[cfg(feature = "sqlite-direct-toggle")]
    via_sqlx: Option<Db>,
    raw: Raw,
    pool1: Pool1,
    lite: Option<rusqlite::Connection>,
    diesel: Dsl,
    sea: sea_orm::DatabaseConnection,
    tp: Option<Tp>,
    cleanup: Cleanup,
}

enum Cleanup {
    /// An in-memory database: gone with its last connection.
    None,
    Dir(std::path::PathBuf),
    PgSchema(String),
}

impl Drop for Bed {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::PgSchema(name) => {
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut c = PgConnection::connect(&pg_url()).await.ok()?;
                        sqlx::query(AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
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
}

/// persist's `Db` with `sqlite_direct(false)`: reads through sqlx.
#[cfg(feature = "sqlite-direct-toggle")]
async fn via_sqlx(url: &str) -> Option<Db> {
    Some(
        Db::builder()
            .sqlite_direct(false)
            .connect(url)
            .await
            .expect("persist connect (sqlite_direct(false))"),
    )
}

/// The SQLite file (WAL, `synchronous=NORMAL`) or, with `memory`, one
/// named in-memory database with a shared cache, so that every contender's
/// connection (and every connection of persist's pool) sees the same data.
/// `raw` is opened first and lives as long as the bed, which keeps the
/// in-memory database alive.
async fn sqlite_bed(memory: bool) -> Bed {
    let name = unique_name();
    let (url, opts, lite_path, cleanup) = if memory {
        // sqlx opens `file:<name>` with SQLITE_OPEN_URI | MEMORY | SHAREDCACHE;
        // rusqlite and Diesel open the same URI.
        let uri = format!("file:{name}?mode=memory&cache=shared");
        let url = format!("sqlite:{uri}");
        let opts = SqliteConnectOptions::from_str(&url).expect("url");
        (url, opts, uri, Cleanup::None)
    } else {
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("anchors.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let opts = SqliteConnectOptions::from_str(&url)
            .expect("url")
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .create_if_missing(true);
        (url, opts, file.display().to_string(), Cleanup::Dir(dir))
    };
    let mut raw = SqliteConnection::connect_with(&opts).await.expect("sqlite");
    for ddl in SQLITE_DDL {
        sqlx::query(*ddl).execute(&mut raw).await.expect("ddl");
    }
    // persist opens a file database in WAL mode with synchronous=NORMAL, and
    // an in-memory one (`mode=memory`) with a pool of one connection.
    let db = Db::connect(&url).await.expect("persist connect");
    let lite = rusqlite::Connection::open(&lite_path).expect("rusqlite");
    if !memory {
        lite.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        lite.pragma_update(None, "synchronous", "NORMAL")
            .expect("sync");
    }
    lite.busy_timeout(Duration::from_secs(10)).expect("busy");
    let mut d = <diesel::SqliteConnection as diesel::Connection>::establish(&lite_path)
        .expect("diesel sqlite");
    diesel::connection::SimpleConnection::batch_execute(
        &mut d,
        if memory {
            "PRAGMA busy_timeout = 10000;"
        } else {
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;"
        },
    )
    .expect("diesel pragmas");
    let pool = sqlx::pool::PoolOptions::<sqlx::Sqlite>::new()
        .max_connections(1)
        .min_connections(1)
        .connect_with(opts.clone())
        .await
        .expect("sea pool");
    let sea = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
    let pool1 = sqlx::pool::PoolOptions::<sqlx::Sqlite>::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("sqlx pool of one");
    Bed {
        backend: if memory {
            Backend::SqliteMemory
        } else {
            Backend::Sqlite
        },
        #[cfg(feature = "sqlite-direct-toggle")]
        via_sqlx: via_sqlx(&url).await,
        url,
        db,
        raw: Raw::Sqlite(raw),
        pool1: Pool1::Sqlite(pool1),
        lite: Some(lite),
        diesel: Dsl::Sqlite(d),
        sea,
        tp: None,
        cleanup,
    }
}

async fn pg_bed() -> Option<Bed> {
    let base = pg_url();
    let mut admin = match PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("PostgreSQL at {base} unreachable ({e}); skipping the postgres benchmarks");
            return None;
        }
    };
    let name = unique_name();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("schema");
    admin.close().await.ok();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
    let cleanup = Cleanup::PgSchema(name);
    let mut raw = PgConnection::connect(&url).await.expect("pg");
    for ddl in PG_DDL {
        sqlx::query(*ddl).execute(&mut raw).await.expect("ddl");
    }
    let db = Db::connect(&url).await.expect("persist connect");
    let d = <diesel::PgConnection as diesel::Connection>::establish(&url).expect("diesel pg");
    let pool = sqlx::pool::PoolOptions::<sqlx::Postgres>::new()
        .max_connections(1)
        .min_connections(1)
        .connect(&url)
        .await
        .expect("sea pool");
    let sea = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
    let pool1 = sqlx::pool::PoolOptions::<sqlx::Postgres>::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("sqlx pool of one");
    Some(Bed {
        backend: Backend::Postgres,
        #[cfg(feature = "sqlite-direct-toggle")]
        via_sqlx: None,
        tp: Some(tp_connect(&url).await),
        url,
        db,
        raw: Raw::Pg(raw),
        pool1: Pool1::Pg(pool1),
        lite: None,
        diesel: Dsl::Pg(d),
        sea,
        cleanup,
    })
}

impl Bed {
    async fn exec(&mut self, sql: String) {
        match &mut self.raw {
            Raw::Sqlite(c) => sqlx::query(AssertSqlSafe(sql)).execute(c).await.map(|_| ()),
            Raw::Pg(c) => sqlx::query(AssertSqlSafe(sql)).execute(c).await.map(|_| ()),
        }
        .expect("exec");
    }

    /// Empties the three tables (ids restart at 1).
    async fn truncate(&mut self) {
        if self.backend.is_sqlite() {
            for t in ["comments", "posts", "users"] {
                self.exec(format!("DELETE FROM {t}")).await;
            }
            self.exec("DELETE FROM sqlite_sequence".into()).await;
        } else {
            self.exec("TRUNCATE comments, posts, users RESTART IDENTITY".into())
                .await;
        }
    }

    async fn analyze(&mut self) {
        if self.backend.is_sqlite() {
            self.exec("ANALYZE".into()).await;
        } else {
            self.exec("ANALYZE users, posts, comments".into()).await;
        }
    }

    /// diesel_bench's seed: `n` users, `User {i}`, black / brown alternating.
    async fn seed_users(&mut self, n: usize) {
        self.truncate().await;
        let sql = if self.backend.is_sqlite() {
            format!(
                "WITH RECURSIVE seq(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM seq WHERE g < {n} - 1) \
                 INSERT INTO users (name, hair_color) \
                 SELECT 'User ' || g, CASE WHEN g % 2 = 0 THEN 'black' ELSE 'brown' END FROM seq ORDER BY g"
            )
        } else {
            format!(
                "INSERT INTO users (name, hair_color) \
                 SELECT 'User ' || g, CASE WHEN g % 2 = 0 THEN 'black' ELSE 'brown' END \
                 FROM generate_series(0, {n} - 1) AS g ORDER BY g"
            )
        };
        self.exec(sql).await;
        self.analyze().await;
    }

    /// The associations seed: [`ASSOC_USERS`] users, [`ASSOC_POSTS`] posts
    /// each (`Post {j} by user {id}`, no body), [`ASSOC_COMMENTS`] comments
    /// per post.
    async fn seed_blog(&mut self) {
        self.seed_users(ASSOC_USERS).await;
        let (posts, comments) = if self.backend.is_sqlite() {
            let seq = |n: usize| {
                format!(
                    "WITH RECURSIVE seq(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM seq WHERE g < {n} - 1) "
                )
            };
            (
                format!(
                    "{}INSERT INTO posts (user_id, title, body) \
                     SELECT users.id, 'Post ' || g || ' by user ' || users.id, NULL \
                     FROM users, seq ORDER BY users.id, g",
                    seq(ASSOC_POSTS)
                ),
                format!(
                    "{}INSERT INTO comments (post_id, text) \
                     SELECT posts.id, 'Comment ' || g || ' on post ' || posts.id \
                     FROM posts, seq ORDER BY posts.id, g",
                    seq(ASSOC_COMMENTS)
                ),
            )
        } else {
            (
                format!(
                    "INSERT INTO posts (user_id, title, body) \
                     SELECT users.id, 'Post ' || g || ' by user ' || users.id, NULL \
                     FROM users, generate_series(0, {} - 1) AS g ORDER BY users.id, g",
                    ASSOC_POSTS
                ),
                format!(
                    "INSERT INTO comments (post_id, text) \
                     SELECT posts.id, 'Comment ' || g || ' on post ' || posts.id \
                     FROM posts, generate_series(0, {} - 1) AS g ORDER BY posts.id, g",
                    ASSOC_COMMENTS
                ),
            )
        };
        self.exec(posts).await;
        self.exec(comments).await;
        self.analyze().await;
    }

    async fn count_users(&mut self) -> i64 {
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

    /// persist's `Db`s for the read workloads: `persist`, and `persist-sqlx`
    /// where it is built.
    fn persist_dbs(&self) -> Vec<(&'static str, &Db)> {
        #[allow(unused_mut)]
        let mut v = vec![("persist", &self.db)];
        #[cfg(feature = "sqlite-direct-toggle")]
        if let Some(db) = &self.via_sqlx {
            v.push(("persist-sqlx", db));
        }
        v
    }
}

// ----- contenders ---------------------------------------------------------------

async fn sqlx_trivial(raw: RawMut<'_>) -> Vec<User> {
    match raw {
        RawMut::Sqlite(c) => sqlx::query_as::<_, User>(TRIVIAL_SQL).fetch_all(c).await,
        RawMut::Pg(c) => sqlx::query_as::<_, User>(TRIVIAL_SQL).fetch_all(c).await,
    }
    .expect("trivial")
}

async fn sqlx_medium(raw: RawMut<'_>) -> Vec<Joined> {
    match raw {
        RawMut::Sqlite(c) => {
            sqlx::query_as::<_, Joined>(MEDIUM_SQL_SQLITE)
                .bind("black")
                .fetch_all(c)
                .await
        }
        RawMut::Pg(c) => {
            sqlx::query_as::<_, Joined>(MEDIUM_SQL_PG)
                .bind("black")
                .fetch_all(c)
                .await
        }
    }
    .expect("medium")
}

async fn sqlx_find(raw: RawMut<'_>, id: i64) -> Option<User> {
    match raw {
        RawMut::Sqlite(c) => {
            sqlx::query_as::<_, User>(FIND_SQL_SQLITE)
                .bind(id)
                .fetch_optional(c)
                .await
        }
        RawMut::Pg(c) => {
            sqlx::query_as::<_, User>(FIND_SQL_PG)
                .bind(id)
                .fetch_optional(c)
                .await
        }
    }
    .expect("find")
}

/// One multi-row INSERT of `users` (autocommit).
async fn sqlx_multi_insert(raw: &mut Raw, sql: &Arc<str>, users: &[User]) -> u64 {
    macro_rules! go {
        ($c:expr) => {{
            let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
            for u in users {
                q = q.bind(&u.name).bind(&u.hair_color);
            }
            q.execute($c).await.map(|r| r.rows_affected())
        }};
    }
    match raw {
        Raw::Sqlite(c) => go!(c),
        Raw::Pg(c) => go!(c),
    }
    .expect("insert")
}

/// `users` inserted in one transaction: one multi-row statement
/// (`multi = Some(sql)`) or one awaited INSERT per row.
async fn sqlx_insert_tx(raw: &mut Raw, multi: Option<&Arc<str>>, users: &[User]) -> u64 {
    macro_rules! go {
        ($c:expr, $single:expr) => {{
            let mut tx = $c.begin().await.expect("begin");
            let mut n = 0;
            match multi {
                Some(sql) => {
                    let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
                    for u in users {
                        q = q.bind(&u.name).bind(&u.hair_color);
                    }
                    n += q.execute(&mut *tx).await.expect("insert").rows_affected();
                }
                None => {
                    for u in users {
                        n += sqlx::query($single)
                            .bind(&u.name)
                            .bind(&u.hair_color)
                            .execute(&mut *tx)
                            .await
                            .expect("insert")
                            .rows_affected();
                    }
                }
            }
            tx.commit().await.expect("commit");
            n
        }};
    }
    match raw {
        Raw::Sqlite(c) => go!(c, SINGLE_INSERT_SQLITE),
        Raw::Pg(c) => go!(c, SINGLE_INSERT_PG),
    }
}

/// Three queries (users; their posts; the posts' comments) grouped in memory.
async fn sqlx_assoc(raw: RawMut<'_>) -> Tree {
    let (users, posts, comments) = match raw {
        RawMut::Sqlite(c) => {
            let users = sqlx::query_as::<_, User>(TRIVIAL_SQL)
                .fetch_all(&mut *c)
                .await
                .expect("users");
            let mut q =
                sqlx::query_as::<_, Post>(AssertSqlSafe(in_list(POSTS_BY_USER, users.len())));
            for u in &users {
                q = q.bind(u.id);
            }
            let posts = q.fetch_all(&mut *c).await.expect("posts");
            let mut q =
                sqlx::query_as::<_, Comment>(AssertSqlSafe(in_list(COMMENTS_BY_POST, posts.len())));
            for p in &posts {
                q = q.bind(p.id);
            }
            let comments = q.fetch_all(&mut *c).await.expect("comments");
            (users, posts, comments)
        }
        RawMut::Pg(c) => {
            let users = sqlx::query_as::<_, User>(TRIVIAL_SQL)
                .fetch_all(&mut *c)
                .await
                .expect("users");
            let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
            let posts = sqlx::query_as::<_, Post>(POSTS_BY_USER_PG)
                .bind(&ids)
                .fetch_all(&mut *c)
                .await
                .expect("posts");
            let ids: Vec<i64> = posts.iter().map(|p| p.id).collect();
            let comments = sqlx::query_as::<_, Comment>(COMMENTS_BY_POST_PG)
                .bind(&ids)
                .fetch_all(&mut *c)
                .await
                .expect("comments");
            (users, posts, comments)
        }
    };
    group_tree(users, posts, comments)
}

/// In one transaction: load every user, then one `UPDATE users SET
/// hair_color = ? WHERE id = ?` per user.
async fn sqlx_update_all(raw: &mut Raw, color: &str) -> usize {
    macro_rules! go {
        ($c:expr, $update:expr) => {{
            let mut tx = $c.begin().await.expect("begin");
            let users = sqlx::query_as::<_, User>(TRIVIAL_SQL)
                .fetch_all(&mut *tx)
                .await
                .expect("load");
            for u in &users {
                sqlx::query($update)
                    .bind(color)
                    .bind(u.id)
                    .execute(&mut *tx)
                    .await
                    .expect("update");
            }
            tx.commit().await.expect("commit");
            users.len()
        }};
    }
    match raw {
        Raw::Sqlite(c) => go!(c, UPDATE_SQLITE),
        Raw::Pg(c) => go!(c, UPDATE_PG),
    }
}

async fn pool1_trivial(p: &Pool1) -> Vec<User> {
    match p {
        Pool1::Sqlite(p) => sqlx::query_as::<_, User>(TRIVIAL_SQL).fetch_all(p).await,
        Pool1::Pg(p) => sqlx::query_as::<_, User>(TRIVIAL_SQL).fetch_all(p).await,
    }
    .expect("trivial")
}

async fn pool1_medium(p: &Pool1) -> Vec<Joined> {
    match p {
        Pool1::Sqlite(p) => {
            sqlx::query_as::<_, Joined>(MEDIUM_SQL_SQLITE)
                .bind("black")
                .fetch_all(p)
                .await
        }
        Pool1::Pg(p) => {
            sqlx::query_as::<_, Joined>(MEDIUM_SQL_PG)
                .bind("black")
                .fetch_all(p)
                .await
        }
    }
    .expect("medium")
}

async fn pool1_find(p: &Pool1, id: i64) -> Option<User> {
    match p {
        Pool1::Sqlite(p) => {
            sqlx::query_as::<_, User>(FIND_SQL_SQLITE)
                .bind(id)
                .fetch_optional(p)
                .await
        }
        Pool1::Pg(p) => {
            sqlx::query_as::<_, User>(FIND_SQL_PG)
                .bind(id)
                .fetch_optional(p)
                .await
        }
    }
    .expect("find")
}

fn lite_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        hair_color: r.get(2)?,
    })
}

fn lite_trivial(c: &rusqlite::Connection) -> Vec<User> {
    let mut st = c.prepare_cached(TRIVIAL_SQL).expect("prepare");
    st.query_map([], lite_user)
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

fn lite_medium(c: &rusqlite::Connection) -> Vec<(User, Option<Post>)> {
    let mut st = c.prepare_cached(MEDIUM_SQL_SQLITE).expect("prepare");
    st.query_map(["black"], |r| {
        let user = lite_user(r)?;
        let post = match r.get::<_, Option<i64>>(3)? {
            None => None,
            Some(id) => Some(Post {
                id,
                user_id: r.get(4)?,
                title: r.get(5)?,
                body: r.get(6)?,
            }),
        };
        Ok((user, post))
    })
    .expect("query")
    .collect::<rusqlite::Result<_>>()
    .expect("rows")
}

fn lite_find(c: &rusqlite::Connection, id: i64) -> Option<User> {
    let mut st = c.prepare_cached(FIND_SQL_SQLITE).expect("prepare");
    let mut rows = st.query([id]).expect("query");
    rows.next()
        .expect("row")
        .map(|r| lite_user(r).expect("decode"))
}

fn lite_multi_insert(c: &rusqlite::Connection, sql: &str, users: &[User]) -> usize {
    let mut st = c.prepare_cached(sql).expect("prepare");
    let params = users.iter().flat_map(|u| {
        [
            &u.name as &dyn rusqlite::ToSql,
            &u.hair_color as &dyn rusqlite::ToSql,
        ]
    });
    st.execute(rusqlite::params_from_iter(params))
        .expect("insert")
}

fn lite_post(r: &rusqlite::Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: r.get(0)?,
        user_id: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
    })
}

fn lite_comment(r: &rusqlite::Row<'_>) -> rusqlite::Result<Comment> {
    Ok(Comment {
        id: r.get(0)?,
        post_id: r.get(1)?,
        text: r.get(2)?,
    })
}

fn lite_assoc(c: &rusqlite::Connection) -> Tree {
    let users = lite_trivial(c);
    let posts: Vec<Post> = {
        let mut st = c
            .prepare_cached(&in_list(POSTS_BY_USER, users.len()))
            .expect("prepare");
        st.query_map(
            rusqlite::params_from_iter(users.iter().map(|u| u.id)),
            lite_post,
        )
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
    };
    let comments: Vec<Comment> = {
        let mut st = c
            .prepare_cached(&in_list(COMMENTS_BY_POST, posts.len()))
            .expect("prepare");
        st.query_map(
            rusqlite::params_from_iter(posts.iter().map(|p| p.id)),
            lite_comment,
        )
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
    };
    group_tree(users, posts, comments)
}

/// In one transaction: load every user, then one UPDATE per user.
fn lite_update_all(c: &rusqlite::Connection, color: &str) -> usize {
    let tx = c.unchecked_transaction().expect("begin");
    let users = lite_trivial(&tx);
    {
        let mut st = tx.prepare_cached(UPDATE_SQLITE).expect("prepare");
        for u in &users {
            st.execute(rusqlite::params![color, u.id]).expect("update");
        }
    }
    tx.commit().expect("commit");
    users.len()
}

/// One INSERT per user, in one transaction.
fn lite_single_inserts(c: &rusqlite::Connection, users: &[User]) -> usize {
    let tx = c.unchecked_transaction().expect("begin");
    let mut n = 0;
    {
        let mut st = tx.prepare_cached(SINGLE_INSERT_SQLITE).expect("prepare");
        for u in users {
            n += st
                .execute(rusqlite::params![u.name, u.hair_color])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    n
}

// ----- Diesel (sync) --------------------------------------------------------------

mod dsl {
    diesel::table! {
        users (id) {
            id -> BigInt,
            name -> Text,
            hair_color -> Nullable<Text>,
        }
    }
    diesel::table! {
        posts (id) {
            id -> BigInt,
            user_id -> BigInt,
            title -> Text,
            body -> Nullable<Text>,
        }
    }
    diesel::table! {
        comments (id) {
            id -> BigInt,
            post_id -> BigInt,
            text -> Text,
        }
    }
    diesel::joinable!(posts -> users (user_id));
    diesel::joinable!(comments -> posts (post_id));
    diesel::allow_tables_to_appear_in_same_query!(users, posts, comments);

    /// A row of `users` for Diesel.
    #[derive(diesel::Queryable, diesel::Identifiable, Debug)]
    #[diesel(table_name = users)]
    #[allow(dead_code)]
    pub struct DUser {
        pub id: i64,
        pub name: String,
        pub hair_color: Option<String>,
    }

    /// A row of `posts` for Diesel.
    #[derive(diesel::Queryable, diesel::Identifiable, diesel::Associations, Debug)]
    #[diesel(table_name = posts, belongs_to(DUser, foreign_key = user_id))]
    #[allow(dead_code)]
    pub struct DPost {
        pub id: i64,
        pub user_id: i64,
        pub title: String,
        pub body: Option<String>,
    }

    /// A row of `comments` for Diesel.
    #[derive(diesel::Queryable, diesel::Identifiable, diesel::Associations, Debug)]
    #[diesel(table_name = comments, belongs_to(DPost, foreign_key = post_id))]
    #[allow(dead_code)]
    pub struct DComment {
        pub id: i64,
        pub post_id: i64,
        pub text: String,
    }

    /// A new user for Diesel's batch insert.
    #[derive(diesel::Insertable)]
    #[diesel(table_name = users)]
    pub struct NewUser<'a> {
        pub name: &'a str,
        pub hair_color: Option<&'a str>,
    }
}

/// Diesel's connection, per backend.
enum Dsl {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

macro_rules! with_dsl {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            Dsl::Sqlite($c) => $body,
            Dsl::Pg($c) => $body,
        }
    };
}

fn dsl_trivial(conn: &mut Dsl) -> Vec<dsl::DUser> {
    use diesel::prelude::*;
    with_dsl!(conn, |c| dsl::users::table.load::<dsl::DUser>(c)).expect("diesel trivial")
}

fn dsl_medium(conn: &mut Dsl) -> Vec<(dsl::DUser, Option<dsl::DPost>)> {
    use diesel::prelude::*;
    with_dsl!(conn, |c| dsl::users::table
        .left_join(dsl::posts::table)
        .filter(dsl::users::hair_color.eq("black"))
        .load::<(dsl::DUser, Option<dsl::DPost>)>(c))
    .expect("diesel medium")
}

fn dsl_find(conn: &mut Dsl, id: i64) -> Option<dsl::DUser> {
    use diesel::prelude::*;
    with_dsl!(conn, |c| dsl::users::table
        .find(id)
        .first::<dsl::DUser>(c)
        .optional())
    .expect("diesel find")
}

fn dsl_insert(conn: &mut Dsl, users: &[dsl::NewUser<'_>]) -> usize {
    use diesel::prelude::*;
    with_dsl!(conn, |c| diesel::insert_into(dsl::users::table)
        .values(users)
        .execute(c))
    .expect("diesel insert")
}

/// diesel_bench's associations: `belonging_to` twice, then `grouped_by`.
fn dsl_assoc(conn: &mut Dsl) -> Vec<Family<dsl::DUser, dsl::DPost, dsl::DComment>> {
    use diesel::prelude::*;
    with_dsl!(conn, |c| (|| {
        let users = dsl::users::table.load::<dsl::DUser>(c)?;
        let posts = dsl::DPost::belonging_to(&users).load::<dsl::DPost>(c)?;
        let comments = dsl::DComment::belonging_to(&posts).load::<dsl::DComment>(c)?;
        let comments = comments.grouped_by(&posts);
        let posts = posts.into_iter().zip(comments).grouped_by(&users);
        Ok::<_, diesel::result::Error>(users.into_iter().zip(posts).collect())
    })())
    .expect("diesel associations")
}

/// In one transaction: load every user, then one `update(..).set(..)` per user.
fn dsl_update_all(conn: &mut Dsl, color: &str) -> usize {
    use diesel::prelude::*;
    with_dsl!(conn, |c| c.transaction(|c| {
        let users = dsl::users::table.load::<dsl::DUser>(c)?;
        for u in &users {
            diesel::update(dsl::users::table.find(u.id))
                .set(dsl::users::hair_color.eq(color))
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(users.len())
    }))
    .expect("diesel update")
}

/// One INSERT per user, in one transaction.
fn dsl_single_inserts(conn: &mut Dsl, users: &[dsl::NewUser<'_>]) -> usize {
    use diesel::prelude::*;
    with_dsl!(conn, |c| c.transaction(|c| {
        let mut n = 0;
        for u in users {
            n += diesel::insert_into(dsl::users::table)
                .values(u)
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(n)
    }))
    .expect("diesel single inserts")
}

fn dsl_new_users(users: &[User]) -> Vec<dsl::NewUser<'_>> {
    users
        .iter()
        .map(|u| dsl::NewUser {
            name: &u.name,
            hair_color: u.hair_color.as_deref(),
        })
        .collect()
}

/// Begins a transaction on Diesel's connection (its transaction manager's
/// `BEGIN`), for the in-transaction reads; [`dsl_commit`] ends it.
fn dsl_begin(conn: &mut Dsl) {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    with_dsl!(conn, |c| AnsiTransactionManager::begin_transaction(c)).expect("diesel begin");
}

fn dsl_commit(conn: &mut Dsl) {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    with_dsl!(conn, |c| AnsiTransactionManager::commit_transaction(c)).expect("diesel commit");
}

/// `BEGIN` or `COMMIT` on rusqlite's connection, for the in-transaction reads.
fn lite_tx(c: &rusqlite::Connection, sql: &str) {
    c.execute_batch(sql).expect(sql);
}

/// `BEGIN` or `COMMIT` on tokio-postgres's client, for the in-transaction reads.
fn tp_tx(rt: &Runtime, tp: &Tp, sql: &str) {
    rt.block_on(tp.client.batch_execute(sql)).expect(sql);
}

// ----- SeaORM 2.0 (on the same sqlx, a pool of one) --------------------------------

mod sea_user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub hair_color: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::sea_post::Entity")]
        Posts,
    }

    impl Related<super::sea_post::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Posts.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod sea_post {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "posts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: i64,
        pub title: String,
        pub body: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::sea_user::Entity",
            from = "Column::UserId",
            to = "super::sea_user::Column::Id"
        )]
        User,
        #[sea_orm(has_many = "super::sea_comment::Entity")]
        Comments,
    }

    impl Related<super::sea_user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl Related<super::sea_comment::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Comments.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod sea_comment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "comments")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub post_id: i64,
        pub text: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::sea_post::Entity",
            from = "Column::PostId",
            to = "super::sea_post::Column::Id"
        )]
        Post,
    }

    impl Related<super::sea_post::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Post.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

async fn sea_trivial(db: &impl sea_orm::ConnectionTrait) -> Vec<sea_user::Model> {
    use sea_orm::EntityTrait;
    sea_user::Entity::find().all(db).await.expect("sea trivial")
}

async fn sea_medium(
    db: &impl sea_orm::ConnectionTrait,
) -> Vec<(sea_user::Model, Option<sea_post::Model>)> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    sea_user::Entity::find()
        .find_also_related(sea_post::Entity)
        .filter(sea_user::Column::HairColor.eq("black"))
        .all(db)
        .await
        .expect("sea medium")
}

async fn sea_find(db: &impl sea_orm::ConnectionTrait, id: i64) -> Option<sea_user::Model> {
    use sea_orm::EntityTrait;
    sea_user::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("sea find")
}

fn sea_active(users: &[User]) -> Vec<sea_user::ActiveModel> {
    use sea_orm::ActiveValue::{NotSet, Set};
    users
        .iter()
        .map(|u| sea_user::ActiveModel {
            id: NotSet,
            name: Set(u.name.clone()),
            hair_color: Set(u.hair_color.clone()),
        })
        .collect()
}

async fn sea_insert(db: &sea_orm::DatabaseConnection, models: Vec<sea_user::ActiveModel>) -> u64 {
    use sea_orm::EntityTrait;
    sea_user::Entity::insert_many(models)
        .exec_without_returning(db)
        .await
        .expect("sea insert")
}

/// `load_many` twice (one query per level), nested by hand.
async fn sea_assoc(
    db: &impl sea_orm::ConnectionTrait,
) -> Vec<Family<sea_user::Model, sea_post::Model, sea_comment::Model>> {
    use sea_orm::{EntityTrait, LoaderTrait};
    let users = sea_user::Entity::find().all(db).await.expect("sea users");
    let posts = users
        .load_many(sea_post::Entity, db)
        .await
        .expect("sea posts");
    let lens: Vec<usize> = posts.iter().map(Vec::len).collect();
    let flat: Vec<sea_post::Model> = posts.into_iter().flatten().collect();
    let comments = flat
        .load_many(sea_comment::Entity, db)
        .await
        .expect("sea comments");
    let mut pc = flat.into_iter().zip(comments);
    users
        .into_iter()
        .zip(lens)
        .map(|(u, n)| (u, pc.by_ref().take(n).collect()))
        .collect()
}

/// In one transaction: load every user, then `ActiveModel::update` per user.
async fn sea_update_all(db: &sea_orm::DatabaseConnection, color: &str) -> usize {
    use sea_orm::ActiveValue::Set;
    use sea_orm::{ActiveModelTrait, EntityTrait};
    let txn = db.begin().await.expect("sea begin");
    let users = sea_user::Entity::find().all(&txn).await.expect("sea load");
    let n = users.len();
    for u in users {
        let mut m: sea_user::ActiveModel = u.into();
        m.hair_color = Set(Some(color.to_owned()));
        m.update(&txn).await.expect("sea update");
    }
    txn.commit().await.expect("sea commit");
    n
}

/// One `insert(..).exec_without_returning` per user, in one transaction.
async fn sea_single_inserts(
    db: &sea_orm::DatabaseConnection,
    models: Vec<sea_user::ActiveModel>,
) -> u64 {
    use sea_orm::EntityTrait;
    let txn = db.begin().await.expect("sea begin");
    let mut n = 0;
    for m in models {
        n += sea_user::Entity::insert(m)
            .exec_without_returning(&txn)
            .await
            .expect("sea insert");
    }
    txn.commit().await.expect("sea commit");
    n
}

// ----- tokio-postgres (PostgreSQL's raw floor) ---------------------------------------

/// A tokio-postgres client with its statements prepared once.
struct Tp {
    client: tokio_postgres::Client,
    trivial: tokio_postgres::Statement,
    medium: tokio_postgres::Statement,
    find: tokio_postgres::Statement,
    posts_by_user: tokio_postgres::Statement,
    comments_by_post: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    single_insert: tokio_postgres::Statement,
}

async fn tp_connect(url: &str) -> Tp {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("tokio-postgres");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let trivial = client.prepare(TRIVIAL_SQL).await.expect("prepare");
    let medium = client.prepare(MEDIUM_SQL_PG).await.expect("prepare");
    let find = client.prepare(FIND_SQL_PG).await.expect("prepare");
    let posts_by_user = client.prepare(POSTS_BY_USER_PG).await.expect("prepare");
    let comments_by_post = client.prepare(COMMENTS_BY_POST_PG).await.expect("prepare");
    let update = client.prepare(UPDATE_PG).await.expect("prepare");
    let single_insert = client.prepare(SINGLE_INSERT_PG).await.expect("prepare");
    Tp {
        client,
        trivial,
        medium,
        find,
        posts_by_user,
        comments_by_post,
        update,
        single_insert,
    }
}

fn tp_user(r: &tokio_postgres::Row) -> User {
    User {
        id: r.get(0),
        name: r.get(1),
        hair_color: r.get(2),
    }
}

async fn tp_trivial(tp: &Tp) -> Vec<User> {
    let rows = tp.client.query(&tp.trivial, &[]).await.expect("trivial");
    rows.iter().map(tp_user).collect()
}

async fn tp_medium(tp: &Tp) -> Vec<(User, Option<Post>)> {
    let rows = tp
        .client
        .query(&tp.medium, &[&"black"])
        .await
        .expect("medium");
    rows.iter()
        .map(|r| {
            let post = r.get::<_, Option<i64>>(3).map(|id| Post {
                id,
                user_id: r.get(4),
                title: r.get(5),
                body: r.get(6),
            });
            (tp_user(r), post)
        })
        .collect()
}

async fn tp_find(tp: &Tp, id: i64) -> Option<User> {
    tp.client
        .query_opt(&tp.find, &[&id])
        .await
        .expect("find")
        .map(|r| tp_user(&r))
}

async fn tp_insert(tp: &Tp, st: &tokio_postgres::Statement, users: &[User]) -> u64 {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = users
        .iter()
        .flat_map(|u| [&u.name as _, &u.hair_color as _])
        .collect();
    tp.client.execute(st, &params).await.expect("insert")
}

async fn tp_assoc(tp: &Tp) -> Tree {
    let users = tp_trivial(tp).await;
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let posts: Vec<Post> = tp
        .client
        .query(&tp.posts_by_user, &[&ids])
        .await
        .expect("posts")
        .iter()
        .map(|r| Post {
            id: r.get(0),
            user_id: r.get(1),
            title: r.get(2),
            body: r.get(3),
        })
        .collect();
    let ids: Vec<i64> = posts.iter().map(|p| p.id).collect();
    let comments: Vec<Comment> = tp
        .client
        .query(&tp.comments_by_post, &[&ids])
        .await
        .expect("comments")
        .iter()
        .map(|r| Comment {
            id: r.get(0),
            post_id: r.get(1),
            text: r.get(2),
        })
        .collect();
    group_tree(users, posts, comments)
}

/// In one transaction: load every user, then one UPDATE per user.
async fn tp_update_all(tp: &Tp, color: &str) -> usize {
    tp.client.batch_execute("BEGIN").await.expect("begin");
    let users = tp_trivial(tp).await;
    for u in &users {
        tp.client
            .execute(&tp.update, &[&color, &u.id])
            .await
            .expect("update");
    }
    tp.client.batch_execute("COMMIT").await.expect("commit");
    users.len()
}

/// One INSERT per user, in one transaction.
async fn tp_single_inserts(tp: &Tp, users: &[User]) -> u64 {
    tp.client.batch_execute("BEGIN").await.expect("begin");
    let mut n = 0;
    for u in users {
        n += tp
            .client
            .execute(&tp.single_insert, &[&u.name, &u.hair_color])
            .await
            .expect("insert");
    }
    tp.client.batch_execute("COMMIT").await.expect("commit");
    n
}

/// Users, posts and comments through persist's batched relation loader:
/// `users.load::<Post>()` then `posts.load::<Comment>()`, one SELECT each.
async fn persist_assoc(s: &Session) -> Tree {
    let users = s.query::<User>().all().await.expect("users");
    let posts = users.load::<Post>(s).await.expect("posts");
    let lens: Vec<usize> = posts.iter().map(Vec::len).collect();
    let flat: Vec<Post> = posts.into_iter().flatten().collect();
    let comments = flat.load::<Comment>(s).await.expect("comments");
    let mut pc = flat.into_iter().zip(comments);
    users
        .into_iter()
        .zip(lens)
        .map(|(u, n)| (u, pc.by_ref().take(n).collect()))
        .collect()
}

/// In one session: load every user, change `hair_color` on each through
/// the unit of work (`update`), one `commit`.
async fn persist_update_all(db: &Db, color: &str) -> usize {
    let s = db.session().await.expect("session");
    let mut users = s.query::<User>().all().await.expect("load");
    for u in &mut users {
        u.hair_color = Some(color.to_owned());
        s.update(u).expect("update");
    }
    s.commit().await.expect("commit");
    users.len()
}

// ----- benchmarks ---------------------------------------------------------------

fn group<'a>(
    c: &'a mut Criterion,
    b: Backend,
    workload: &str,
    samples: usize,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(format!("{}/{workload}", b.name()));
    g.sample_size(samples);
    g
}

/// Benchmarks `$body` on raw sqlx's one connection (`$r: &mut Raw`, or
/// `&mut RawTx` for a transaction open on it), borrowed for the whole
/// measurement. Everything else `$body` names must
/// be a reference or `Copy`.
macro_rules! bench_raw {
    ($g:expr, $rt:expr, $name:expr, $raw:expr, |$r:ident| $body:expr) => {{
        let cell: Cell<Option<&mut _>> = Cell::new(Some($raw));
        $g.bench_function($name, |bn| {
            bn.to_async($rt).iter_custom(|iters| {
                let cell = &cell;
                async move {
                    let conn = cell.take().expect("the raw connection is free");
                    let t = Instant::now();
                    {
                        let $r = &mut *conn;
                        for _ in 0..iters {
                            black_box($body);
                        }
                    }
                    let elapsed = t.elapsed();
                    cell.set(Some(conn));
                    elapsed
                }
            })
        });
    }};
}

/// Benchmarks a persist read, `$body` with `$s: &Session`, inside ONE
/// session held across the measurement (committed after it); `$check` sees
/// the first result (`$out`), outside the timed loop.
macro_rules! bench_session {
    ($g:expr, $rt:expr, $name:expr, $db:expr, |$s:ident| $body:expr, |$out:ident| $check:expr) => {{
        let session = $rt.block_on($db.session()).expect("session");
        {
            let $s = &session;
            let $out = $rt.block_on(async { $body });
            $check;
            $g.bench_function($name, |bn| {
                bn.to_async($rt).iter(|| async { black_box($body) })
            });
        }
        $rt.block_on(session.commit()).expect("commit");
    }};
}

/// A new hair colour per call, so every update changes every row.
fn next_color(n: &Cell<u64>) -> String {
    n.set(n.get() + 1);
    format!("colour {}", n.get())
}

fn bench_backend(c: &mut Criterion, rt: &Runtime, bed: &mut Bed) {
    let b = bed.backend;

    // trivial: all users into Vec<User>.
    for size in [1usize, 100, 10_000] {
        rt.block_on(bed.seed_users(size));
        let samples = if size >= 10_000 { 20 } else { 50 };
        let mut g = group(c, b, &format!("trivial_{size}"), samples);
        for (name, db) in bed.persist_dbs() {
            bench_session!(
                g,
                rt,
                name,
                db,
                |s| s.query::<User>().all().await.expect("persist trivial"),
                |out| assert_eq!(out.len(), size)
            );
        }
        assert_eq!(rt.block_on(sqlx_trivial(bed.raw.conn())).len(), size);
        bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| sqlx_trivial(raw.conn())
            .await);
        {
            let p = &bed.pool1;
            assert_eq!(rt.block_on(pool1_trivial(p)).len(), size);
            g.bench_function("sqlx-pool1", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(pool1_trivial(p).await) })
            });
        }
        assert_eq!(dsl_trivial(&mut bed.diesel).len(), size);
        g.bench_function("diesel", |bn| {
            bn.iter(|| black_box(dsl_trivial(&mut bed.diesel)))
        });
        {
            let sea = &bed.sea;
            assert_eq!(rt.block_on(sea_trivial(sea)).len(), size);
            g.bench_function("sea-orm", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(sea_trivial(sea).await) })
            });
        }
        if let Some(tp) = &bed.tp {
            assert_eq!(rt.block_on(tp_trivial(tp)).len(), size);
            g.bench_function("tokio-postgres", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_trivial(tp).await) })
            });
        }
        if let Some(lite) = &bed.lite {
            assert_eq!(lite_trivial(lite).len(), size);
            g.bench_function("rusqlite", |bn| bn.iter(|| black_box(lite_trivial(lite))));
        }
        // The same reads inside one transaction each, begun before the
        // contender's measurement and committed after it, as persist's
        // session is (`<contender>-tx`).
        {
            let mut tx = rt.block_on(bed.raw.begin());
            assert_eq!(rt.block_on(sqlx_trivial(tx.conn())).len(), size);
            bench_raw!(g, rt, "sqlx-tx", &mut tx, |raw| sqlx_trivial(raw.conn())
                .await);
            rt.block_on(tx.commit());
        }
        dsl_begin(&mut bed.diesel);
        assert_eq!(dsl_trivial(&mut bed.diesel).len(), size);
        g.bench_function("diesel-tx", |bn| {
            bn.iter(|| black_box(dsl_trivial(&mut bed.diesel)))
        });
        dsl_commit(&mut bed.diesel);
        {
            let txn = rt.block_on(bed.sea.begin()).expect("sea begin");
            assert_eq!(rt.block_on(sea_trivial(&txn)).len(), size);
            g.bench_function("sea-orm-tx", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(sea_trivial(&txn).await) })
            });
            rt.block_on(txn.commit()).expect("sea commit");
        }
        if let Some(tp) = &bed.tp {
            tp_tx(rt, tp, "BEGIN");
            assert_eq!(rt.block_on(tp_trivial(tp)).len(), size);
            g.bench_function("tokio-postgres-tx", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_trivial(tp).await) })
            });
            tp_tx(rt, tp, "COMMIT");
        }
        if let Some(lite) = &bed.lite {
            lite_tx(lite, "BEGIN");
            assert_eq!(lite_trivial(lite).len(), size);
            g.bench_function("rusqlite-tx", |bn| {
                bn.iter(|| black_box(lite_trivial(lite)))
            });
            lite_tx(lite, "COMMIT");
        }
        g.finish();
    }

    // medium: users LEFT JOIN posts WHERE hair_color = 'black'.
    for size in [1usize, 100, 10_000] {
        rt.block_on(bed.seed_users(size));
        let expect = size.div_ceil(2);
        let samples = if size >= 10_000 { 20 } else { 50 };
        let mut g = group(c, b, &format!("medium_{size}"), samples);
        for (name, db) in bed.persist_dbs() {
            bench_session!(
                g,
                rt,
                name,
                db,
                |s| s
                    .query::<User>()
                    .left_join::<Post>()
                    .filter(User::HAIR_COLOR.eq("black".to_string()))
                    .all()
                    .await
                    .expect("persist medium"),
                |out| assert_eq!(out.len(), expect)
            );
        }
        let rows = rt.block_on(sqlx_medium(bed.raw.conn()));
        assert_eq!(rows.len(), expect);
        assert!(
            rows.iter()
                .all(|Joined(u, p)| u.hair_color.as_deref() == Some("black") && p.is_none())
        );
        bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| sqlx_medium(raw.conn())
            .await);
        {
            let p = &bed.pool1;
            assert_eq!(rt.block_on(pool1_medium(p)).len(), expect);
            g.bench_function("sqlx-pool1", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(pool1_medium(p).await) })
            });
        }
        assert_eq!(dsl_medium(&mut bed.diesel).len(), expect);
        g.bench_function("diesel", |bn| {
            bn.iter(|| black_box(dsl_medium(&mut bed.diesel)))
        });
        {
            let sea = &bed.sea;
            assert_eq!(rt.block_on(sea_medium(sea)).len(), expect);
            g.bench_function("sea-orm", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(sea_medium(sea).await) })
            });
        }
        if let Some(tp) = &bed.tp {
            assert_eq!(rt.block_on(tp_medium(tp)).len(), expect);
            g.bench_function("tokio-postgres", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_medium(tp).await) })
            });
        }
        if let Some(lite) = &bed.lite {
            assert_eq!(lite_medium(lite).len(), expect);
            g.bench_function("rusqlite", |bn| bn.iter(|| black_box(lite_medium(lite))));
        }
        // In one transaction each, as persist's session is (see trivial).
        {
            let mut tx = rt.block_on(bed.raw.begin());
            assert_eq!(rt.block_on(sqlx_medium(tx.conn())).len(), expect);
            bench_raw!(g, rt, "sqlx-tx", &mut tx, |raw| sqlx_medium(raw.conn())
                .await);
            rt.block_on(tx.commit());
        }
        dsl_begin(&mut bed.diesel);
        assert_eq!(dsl_medium(&mut bed.diesel).len(), expect);
        g.bench_function("diesel-tx", |bn| {
            bn.iter(|| black_box(dsl_medium(&mut bed.diesel)))
        });
        dsl_commit(&mut bed.diesel);
        {
            let txn = rt.block_on(bed.sea.begin()).expect("sea begin");
            assert_eq!(rt.block_on(sea_medium(&txn)).len(), expect);
            g.bench_function("sea-orm-tx", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(sea_medium(&txn).await) })
            });
            rt.block_on(txn.commit()).expect("sea commit");
        }
        if let Some(tp) = &bed.tp {
            tp_tx(rt, tp, "BEGIN");
            assert_eq!(rt.block_on(tp_medium(tp)).len(), expect);
            g.bench_function("tokio-postgres-tx", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_medium(tp).await) })
            });
            tp_tx(rt, tp, "COMMIT");
        }
        if let Some(lite) = &bed.lite {
            lite_tx(lite, "BEGIN");
            assert_eq!(lite_medium(lite).len(), expect);
            g.bench_function("rusqlite-tx", |bn| bn.iter(|| black_box(lite_medium(lite))));
            lite_tx(lite, "COMMIT");
        }
        g.finish();
    }

    // insert: N users in one multi-row statement.
    for size in [1usize, 100, 1_000] {
        rt.block_on(bed.truncate());
        let users = new_users(size);
        let sql = multi_insert_sql(b, size);
        let samples = if size >= 1_000 { 20 } else { 50 };
        let mut g = group(c, b, &format!("insert_{size}"), samples);
        {
            let db = &bed.db;
            let persist_insert = move |v: Vec<User>| async move {
                let s = db.session().await.expect("session");
                let out = s.insert_many(v).await.expect("insert_many");
                s.commit().await.expect("commit");
                out
            };
            let out = rt.block_on(persist_insert(users.clone()));
            assert_eq!(out.len(), size);
            assert!(out.iter().all(|u| u.id > 0));
            g.bench_function("persist", |bn| {
                bn.to_async(rt).iter_batched(
                    || users.clone(),
                    persist_insert,
                    BatchSize::SmallInput,
                )
            });
        }
        {
            // The same `insert_many` in an autocommit session: the
            // statement commits alone, no BEGIN / COMMIT around it. Only a
            // one-row insert is one statement there; several rows need a
            // transaction and are refused.
            let db = &bed.db;
            let autocommit = move |v: Vec<User>| async move {
                let s = db
                    .session_with(SessionOptions::default().autocommit())
                    .await
                    .expect("session");
                let out = s.insert_many(v).await;
                s.commit().await.expect("commit");
                out
            };
            // On SQLite, autocommit sessions writing one after another
            // through persist's direct path hang (a sqlx worker waits for
            // its connection, whose raw handle is still locked), so the
            // contender runs on PostgreSQL only until that is fixed.
            if size == 1 && b.is_sqlite() {
                eprintln!(
                    "{}/insert_1/persist-autocommit skipped: autocommit writes hang on SQLite's direct path",
                    b.name()
                );
            } else if size == 1 {
                let out = rt.block_on(autocommit(users.clone()));
                let out = out.expect("insert_many (autocommit)");
                assert_eq!(out.len(), size);
                assert!(out.iter().all(|u| u.id > 0));
                g.bench_function("persist-autocommit", |bn| {
                    bn.to_async(rt).iter_batched(
                        || users.clone(),
                        |v| async move { autocommit(v).await.expect("insert_many (autocommit)") },
                        BatchSize::SmallInput,
                    )
                });
            } else {
                let out = rt.block_on(autocommit(users.clone()));
                assert!(
                    matches!(out, Err(Error::Invalid(_))),
                    "an autocommit session refuses a write of several rows: {out:?}"
                );
            }
        }
        {
            let before = rt.block_on(bed.count_users());
            assert_eq!(
                rt.block_on(sqlx_multi_insert(&mut bed.raw, &sql, &users)),
                size as u64
            );
            assert_eq!(rt.block_on(bed.count_users()), before + size as i64);
            let (sql, users) = (&sql, &users);
            bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| sqlx_multi_insert(
                raw, sql, users
            )
            .await);
        }
        {
            let nu = dsl_new_users(&users);
            assert_eq!(dsl_insert(&mut bed.diesel, &nu), size);
            g.bench_function("diesel", |bn| {
                bn.iter(|| black_box(dsl_insert(&mut bed.diesel, &nu)))
            });
        }
        {
            let sea = &bed.sea;
            assert_eq!(
                rt.block_on(sea_insert(sea, sea_active(&users))),
                size as u64
            );
            g.bench_function("sea-orm", |bn| {
                bn.to_async(rt).iter_batched(
                    || sea_active(&users),
                    |m| sea_insert(sea, m),
                    BatchSize::SmallInput,
                )
            });
        }
        if let Some(tp) = &bed.tp {
            let st = rt.block_on(tp.client.prepare(&sql)).expect("prepare");
            assert_eq!(rt.block_on(tp_insert(tp, &st, &users)), size as u64);
            g.bench_function("tokio-postgres", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_insert(tp, &st, &users).await) })
            });
        }
        if let Some(lite) = &bed.lite {
            assert_eq!(lite_multi_insert(lite, &sql, &users), size);
            g.bench_function("rusqlite", |bn| {
                bn.iter(|| black_box(lite_multi_insert(lite, &sql, &users)))
            });
        }
        g.finish();
    }

    // associations: 100 users, their 1,000 posts, the posts' 10,000
    // comments; three queries and grouping in memory.
    {
        rt.block_on(bed.seed_blog());
        let mut g = group(c, b, "associations", 20);
        let ids = |u: &User| u.id;
        let pids = |p: &Post| (p.id, p.user_id);
        let cpid = |c: &Comment| c.post_id;
        bench_session!(
            g,
            rt,
            "persist",
            &bed.db,
            |s| persist_assoc(s).await,
            |out| assert_eq!(tree_counts(&out, ids, pids, cpid), ASSOC_COUNTS)
        );
        let tree = rt.block_on(sqlx_assoc(bed.raw.conn()));
        assert_eq!(tree_counts(&tree, ids, pids, cpid), ASSOC_COUNTS);
        bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| sqlx_assoc(raw.conn())
            .await);
        {
            let tree = dsl_assoc(&mut bed.diesel);
            assert_eq!(
                tree_counts(
                    &tree,
                    |u: &dsl::DUser| u.id,
                    |p: &dsl::DPost| (p.id, p.user_id),
                    |c: &dsl::DComment| c.post_id
                ),
                ASSOC_COUNTS
            );
            g.bench_function("diesel", |bn| {
                bn.iter(|| black_box(dsl_assoc(&mut bed.diesel)))
            });
        }
        {
            let sea = &bed.sea;
            let tree = rt.block_on(sea_assoc(sea));
            assert_eq!(
                tree_counts(
                    &tree,
                    |u: &sea_user::Model| u.id,
                    |p: &sea_post::Model| (p.id, p.user_id),
                    |c: &sea_comment::Model| c.post_id
                ),
                ASSOC_COUNTS
            );
            g.bench_function("sea-orm", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(sea_assoc(sea).await) })
            });
        }
        if let Some(tp) = &bed.tp {
            let tree = rt.block_on(tp_assoc(tp));
            assert_eq!(tree_counts(&tree, ids, pids, cpid), ASSOC_COUNTS);
            g.bench_function("tokio-postgres", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_assoc(tp).await) })
            });
        }
        if let Some(lite) = &bed.lite {
            let tree = lite_assoc(lite);
            assert_eq!(tree_counts(&tree, ids, pids, cpid), ASSOC_COUNTS);
            g.bench_function("rusqlite", |bn| bn.iter(|| black_box(lite_assoc(lite))));
        }
        // In one transaction each, as persist's session is (see trivial).
        {
            let mut tx = rt.block_on(bed.raw.begin());
            let tree = rt.block_on(sqlx_assoc(tx.conn()));
            assert_eq!(tree_counts(&tree, ids, pids, cpid), ASSOC_COUNTS);
            bench_raw!(g, rt, "sqlx-tx", &mut tx, |raw| sqlx_assoc(raw.conn())
                .await);
            rt.block_on(tx.commit());
        }
        {
            dsl_begin(&mut bed.diesel);
            let tree = dsl_assoc(&mut bed.diesel);
            assert_eq!(
                tree_counts(
                    &tree,
                    |u: &dsl::DUser| u.id,
                    |p: &dsl::DPost| (p.id, p.user_id),
                    |c: &dsl::DComment| c.post_id
                ),
                ASSOC_COUNTS
            );
            g.bench_function("diesel-tx", |bn| {
                bn.iter(|| black_box(dsl_assoc(&mut bed.diesel)))
            });
            dsl_commit(&mut bed.diesel);
        }
        {
            let txn = rt.block_on(bed.sea.begin()).expect("sea begin");
            let tree = rt.block_on(sea_assoc(&txn));
            assert_eq!(
                tree_counts(
                    &tree,
                    |u: &sea_user::Model| u.id,
                    |p: &sea_post::Model| (p.id, p.user_id),
                    |c: &sea_comment::Model| c.post_id
                ),
                ASSOC_COUNTS
            );
            g.bench_function("sea-orm-tx", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(sea_assoc(&txn).await) })
            });
            rt.block_on(txn.commit()).expect("sea commit");
        }
        if let Some(tp) = &bed.tp {
            tp_tx(rt, tp, "BEGIN");
            let tree = rt.block_on(tp_assoc(tp));
            assert_eq!(tree_counts(&tree, ids, pids, cpid), ASSOC_COUNTS);
            g.bench_function("tokio-postgres-tx", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_assoc(tp).await) })
            });
            tp_tx(rt, tp, "COMMIT");
        }
        if let Some(lite) = &bed.lite {
            lite_tx(lite, "BEGIN");
            let tree = lite_assoc(lite);
            assert_eq!(tree_counts(&tree, ids, pids, cpid), ASSOC_COUNTS);
            g.bench_function("rusqlite-tx", |bn| bn.iter(|| black_box(lite_assoc(lite))));
            lite_tx(lite, "COMMIT");
        }
        g.finish();
    }

    // find_by_key (a key not yet in the session), the identity-map hit and
    // the L2 hit.
    const ROWS: usize = 10_000;
    rt.block_on(bed.seed_users(ROWS));
    let mut keys: Vec<i64> = (1..=ROWS as i64).collect();
    let mut rng = Rng::new(0x5eed);
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    {
        let mut g = group(c, b, "find_by_key", 50);
        for (name, db) in bed.persist_dbs() {
            let keys = &keys;
            let s = rt.block_on(db.session()).expect("session");
            let first = rt
                .block_on(s.find::<User>(&keys[0]))
                .expect("find")
                .expect("row");
            assert_eq!(first.id, keys[0]);
            s.clear();
            let next = Cell::new(0usize);
            g.bench_function(name, |bn| {
                bn.to_async(rt).iter_custom(|iters| {
                    let (s, next) = (&s, &next);
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            if next.get() == keys.len() {
                                // Every key is in the session now: forget them (untimed).
                                s.clear();
                                next.set(0);
                            }
                            let k = keys[next.get()];
                            next.set(next.get() + 1);
                            let t = Instant::now();
                            black_box(s.find::<User>(&k).await.expect("find"));
                            total += t.elapsed();
                        }
                        total
                    }
                })
            });
            rt.block_on(s.commit()).expect("commit");
        }
        {
            assert_eq!(
                rt.block_on(sqlx_find(bed.raw.conn(), keys[0]))
                    .map(|u| u.id),
                Some(keys[0])
            );
            let next = Cell::new(0usize);
            let (next, keys) = (&next, &keys);
            bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| {
                let k = keys[next.get() % keys.len()];
                next.set(next.get() + 1);
                sqlx_find(raw.conn(), k).await
            });
        }
        {
            let p = &bed.pool1;
            assert_eq!(
                rt.block_on(pool1_find(p, keys[0])).map(|u| u.id),
                Some(keys[0])
            );
            let next = Cell::new(0usize);
            let keys = &keys;
            g.bench_function("sqlx-pool1", |bn| {
                bn.to_async(rt).iter(|| {
                    let k = keys[next.get() % keys.len()];
                    next.set(next.get() + 1);
                    async move { black_box(pool1_find(p, k).await) }
                })
            });
        }
        {
            assert_eq!(
                dsl_find(&mut bed.diesel, keys[0]).map(|u| u.id),
                Some(keys[0])
            );
            let mut next = 0usize;
            let d = &mut bed.diesel;
            g.bench_function("diesel", |bn| {
                bn.iter(|| {
                    let k = keys[next % keys.len()];
                    next += 1;
                    black_box(dsl_find(d, k))
                })
            });
        }
        {
            let sea = &bed.sea;
            assert_eq!(
                rt.block_on(sea_find(sea, keys[0])).map(|u| u.id),
                Some(keys[0])
            );
            let next = Cell::new(0usize);
            g.bench_function("sea-orm", |bn| {
                bn.to_async(rt).iter(|| {
                    let k = keys[next.get() % keys.len()];
                    next.set(next.get() + 1);
                    async move { black_box(sea_find(sea, k).await) }
                })
            });
        }
        if let Some(tp) = &bed.tp {
            assert_eq!(
                rt.block_on(tp_find(tp, keys[0])).map(|u| u.id),
                Some(keys[0])
            );
            let next = Cell::new(0usize);
            let keys = &keys;
            g.bench_function("tokio-postgres", |bn| {
                bn.to_async(rt).iter(|| {
                    let k = keys[next.get() % keys.len()];
                    next.set(next.get() + 1);
                    async move { black_box(tp_find(tp, k).await) }
                })
            });
        }
        if let Some(lite) = &bed.lite {
            assert_eq!(lite_find(lite, keys[0]).map(|u| u.id), Some(keys[0]));
            let mut next = 0usize;
            g.bench_function("rusqlite", |bn| {
                bn.iter(|| {
                    let k = keys[next % keys.len()];
                    next += 1;
                    black_box(lite_find(lite, k))
                })
            });
        }
        // In one transaction each, as persist's session is (see trivial).
        {
            let mut tx = rt.block_on(bed.raw.begin());
            assert_eq!(
                rt.block_on(sqlx_find(tx.conn(), keys[0])).map(|u| u.id),
                Some(keys[0])
            );
            let next = Cell::new(0usize);
            let (next, keys) = (&next, &keys);
            bench_raw!(g, rt, "sqlx-tx", &mut tx, |raw| {
                let k = keys[next.get() % keys.len()];
                next.set(next.get() + 1);
                sqlx_find(raw.conn(), k).await
            });
            rt.block_on(tx.commit());
        }
        {
            dsl_begin(&mut bed.diesel);
            assert_eq!(
                dsl_find(&mut bed.diesel, keys[0]).map(|u| u.id),
                Some(keys[0])
            );
            let mut next = 0usize;
            let d = &mut bed.diesel;
            g.bench_function("diesel-tx", |bn| {
                bn.iter(|| {
                    let k = keys[next % keys.len()];
                    next += 1;
                    black_box(dsl_find(d, k))
                })
            });
            dsl_commit(&mut bed.diesel);
        }
        {
            let txn = rt.block_on(bed.sea.begin()).expect("sea begin");
            assert_eq!(
                rt.block_on(sea_find(&txn, keys[0])).map(|u| u.id),
                Some(keys[0])
            );
            let next = Cell::new(0usize);
            let t = &txn;
            g.bench_function("sea-orm-tx", |bn| {
                bn.to_async(rt).iter(|| {
                    let k = keys[next.get() % keys.len()];
                    next.set(next.get() + 1);
                    async move { black_box(sea_find(t, k).await) }
                })
            });
            rt.block_on(txn.commit()).expect("sea commit");
        }
        if let Some(tp) = &bed.tp {
            tp_tx(rt, tp, "BEGIN");
            assert_eq!(
                rt.block_on(tp_find(tp, keys[0])).map(|u| u.id),
                Some(keys[0])
            );
            let next = Cell::new(0usize);
            let keys = &keys;
            g.bench_function("tokio-postgres-tx", |bn| {
                bn.to_async(rt).iter(|| {
                    let k = keys[next.get() % keys.len()];
                    next.set(next.get() + 1);
                    async move { black_box(tp_find(tp, k).await) }
                })
            });
            tp_tx(rt, tp, "COMMIT");
        }
        if let Some(lite) = &bed.lite {
            lite_tx(lite, "BEGIN");
            assert_eq!(lite_find(lite, keys[0]).map(|u| u.id), Some(keys[0]));
            let mut next = 0usize;
            g.bench_function("rusqlite-tx", |bn| {
                bn.iter(|| {
                    let k = keys[next % keys.len()];
                    next += 1;
                    black_box(lite_find(lite, k))
                })
            });
            lite_tx(lite, "COMMIT");
        }
        g.finish();
    }
    {
        let mut g = group(c, b, "find_by_key_identity_map", 100);
        let s = rt.block_on(bed.db.session()).expect("session");
        let k = keys[0];
        let first = rt.block_on(s.find::<User>(&k)).expect("find").expect("row");
        let n = s.statement_count();
        assert_eq!(
            rt.block_on(s.find::<User>(&k)).expect("find").as_ref(),
            Some(&first)
        );
        assert_eq!(s.statement_count(), n, "an identity-map hit sends no SQL");
        g.bench_function("persist", |bn| {
            bn.to_async(rt)
                .iter(|| async { black_box(s.find::<User>(&k).await.expect("find")) })
        });
        assert_eq!(s.statement_count(), n, "the timed loop sent no SQL");
        rt.block_on(s.commit()).expect("commit");
        g.finish();
    }
    {
        // A second persist Db on the same database with an in-process L2
        // (`persist-cache`'s InProcessCache) caching `User`: a fresh session
        // per lookup, so the identity map never answers; every key of the
        // hot set is in the L2 before the measurement.
        const HOT: usize = 1_000;
        let hot = &keys[..HOT];
        let l2 = rt
            .block_on(
                Db::builder()
                    .cache(InProcessCache::new())
                    .cache_entity::<User>(Duration::from_secs(600))
                    .connect(&bed.url),
            )
            .expect("persist connect (L2)");
        let lookup = |k: i64| {
            let l2 = &l2;
            async move {
                let s = l2.session().await.expect("session");
                let row = s.find::<User>(&k).await.expect("find");
                s.commit().await.expect("commit");
                row
            }
        };
        for &k in hot {
            assert_eq!(rt.block_on(lookup(k)).map(|u| u.id), Some(k));
        }
        let before = l2.statement_count();
        assert_eq!(rt.block_on(lookup(hot[1])).map(|u| u.id), Some(hot[1]));
        assert_eq!(l2.statement_count(), before, "an L2 hit sends no SQL");
        let mut g = group(c, b, "find_by_key_l2", 100);
        let next = Cell::new(0usize);
        g.bench_function("persist", |bn| {
            bn.to_async(rt).iter(|| {
                let k = hot[next.get() % HOT];
                next.set(next.get() + 1);
                let lookup = &lookup;
                async move { black_box(lookup(k).await) }
            })
        });
        g.finish();
        assert_eq!(l2.statement_count(), before, "the timed loop sent no SQL");
        rt.block_on(l2.close());
    }

    // uow_update_1000: in one transaction, load 1,000 users and change
    // `hair_color` on each (persist: the unit of work, one commit).
    {
        const N: usize = 1_000;
        rt.block_on(bed.seed_users(N));
        let color = Cell::new(0u64);
        let color = &color;
        let mut g = group(c, b, "uow_update_1000", 10);
        {
            let db = &bed.db;
            assert_eq!(rt.block_on(persist_update_all(db, &next_color(color))), N);
            g.bench_function("persist-uow", |bn| {
                bn.to_async(rt).iter(|| {
                    let c = next_color(color);
                    async move { black_box(persist_update_all(db, &c).await) }
                })
            });
        }
        {
            let last = next_color(color);
            assert_eq!(rt.block_on(sqlx_update_all(&mut bed.raw, &last)), N);
            assert_eq!(
                rt.block_on(sqlx_trivial(bed.raw.conn()))
                    .iter()
                    .filter(|u| u.hair_color.as_deref() == Some(last.as_str()))
                    .count(),
                N,
                "every row updated"
            );
            bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| {
                let c = next_color(color);
                sqlx_update_all(raw, &c).await
            });
        }
        {
            assert_eq!(dsl_update_all(&mut bed.diesel, &next_color(color)), N);
            let d = &mut bed.diesel;
            g.bench_function("diesel", |bn| {
                bn.iter(|| black_box(dsl_update_all(d, &next_color(color))))
            });
        }
        {
            let sea = &bed.sea;
            assert_eq!(rt.block_on(sea_update_all(sea, &next_color(color))), N);
            g.bench_function("sea-orm", |bn| {
                bn.to_async(rt).iter(|| {
                    let c = next_color(color);
                    async move { black_box(sea_update_all(sea, &c).await) }
                })
            });
        }
        if let Some(tp) = &bed.tp {
            assert_eq!(rt.block_on(tp_update_all(tp, &next_color(color))), N);
            g.bench_function("tokio-postgres", |bn| {
                bn.to_async(rt).iter(|| {
                    let c = next_color(color);
                    async move { black_box(tp_update_all(tp, &c).await) }
                })
            });
        }
        if let Some(lite) = &bed.lite {
            assert_eq!(lite_update_all(lite, &next_color(color)), N);
            g.bench_function("rusqlite", |bn| {
                bn.iter(|| black_box(lite_update_all(lite, &next_color(color))))
            });
        }
        g.finish();
    }

    // 10,000 inserts: unit of work vs awaited single inserts vs one
    // multi-row statement; the table is emptied before each contender.
    {
        const N: usize = 10_000;
        let users = new_users(N);
        let multi = multi_insert_sql(b, N);
        let db = bed.db.clone();
        let db = &db;
        let uow = move |v: Vec<User>| async move {
            let s = db.session().await.expect("session");
            s.add_many(v).expect("add_many");
            s.commit().await.expect("commit");
        };
        let singles = move |v: Vec<User>| async move {
            let s = db.session().await.expect("session");
            for u in v {
                black_box(s.insert(u).await.expect("insert"));
            }
            s.commit().await.expect("commit");
        };
        let counted = |bed: &mut Bed, n: i64| {
            assert_eq!(rt.block_on(bed.count_users()), n, "rows inserted");
            rt.block_on(bed.truncate());
        };

        rt.block_on(bed.truncate());
        rt.block_on(uow(users.clone()));
        counted(bed, N as i64);
        let mut g = group(c, b, "uow_insert_10000", 10);
        g.bench_function("persist-uow", |bn| {
            bn.to_async(rt)
                .iter_batched(|| users.clone(), uow, BatchSize::PerIteration)
        });
        g.finish();
        rt.block_on(bed.truncate());

        let mut g = group(c, b, "single_inserts_10000", 10);
        rt.block_on(singles(users.clone()));
        counted(bed, N as i64);
        g.bench_function("persist", |bn| {
            bn.to_async(rt)
                .iter_batched(|| users.clone(), singles, BatchSize::PerIteration)
        });
        rt.block_on(bed.truncate());
        assert_eq!(
            rt.block_on(sqlx_insert_tx(&mut bed.raw, None, &users)),
            N as u64
        );
        counted(bed, N as i64);
        {
            let users = &users;
            bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| sqlx_insert_tx(
                raw, None, users
            )
            .await);
        }
        rt.block_on(bed.truncate());
        {
            let nu = dsl_new_users(&users);
            assert_eq!(dsl_single_inserts(&mut bed.diesel, &nu), N);
            counted(bed, N as i64);
            g.bench_function("diesel", |bn| {
                bn.iter(|| black_box(dsl_single_inserts(&mut bed.diesel, &nu)))
            });
            rt.block_on(bed.truncate());
        }
        {
            assert_eq!(
                rt.block_on(sea_single_inserts(&bed.sea, sea_active(&users))),
                N as u64
            );
            counted(bed, N as i64);
            let sea = &bed.sea;
            g.bench_function("sea-orm", |bn| {
                bn.to_async(rt).iter_batched(
                    || sea_active(&users),
                    |m| sea_single_inserts(sea, m),
                    BatchSize::PerIteration,
                )
            });
            rt.block_on(bed.truncate());
        }
        if bed.tp.is_some() {
            let tp = bed.tp.as_ref().expect("tokio-postgres");
            assert_eq!(rt.block_on(tp_single_inserts(tp, &users)), N as u64);
            counted(bed, N as i64);
            let tp = bed.tp.as_ref().expect("tokio-postgres");
            g.bench_function("tokio-postgres", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(tp_single_inserts(tp, &users).await) })
            });
            rt.block_on(bed.truncate());
        }
        if bed.lite.is_some() {
            let lite = bed.lite.as_ref().expect("rusqlite");
            assert_eq!(lite_single_inserts(lite, &users), N);
            counted(bed, N as i64);
            let lite = bed.lite.as_ref().expect("rusqlite");
            g.bench_function("rusqlite", |bn| {
                bn.iter(|| black_box(lite_single_inserts(lite, &users)))
            });
            rt.block_on(bed.truncate());
        }
        g.finish();

        let mut g = group(c, b, "multi_insert_10000", 10);
        assert_eq!(
            rt.block_on(sqlx_insert_tx(&mut bed.raw, Some(&multi), &users)),
            N as u64
        );
        counted(bed, N as i64);
        {
            let (users, multi) = (&users, &multi);
            bench_raw!(g, rt, "sqlx", &mut bed.raw, |raw| sqlx_insert_tx(
                raw,
                Some(multi),
                users
            )
            .await);
        }
        g.finish();
        rt.block_on(bed.truncate());
    }
}

fn anchors(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for memory in [false, true] {
        let mut bed = rt.block_on(sqlite_bed(memory));
        bench_backend(c, &rt, &mut bed);
        rt.block_on(bed.db.close());
        drop(bed);
    }
    if let Some(mut bed) = rt.block_on(pg_bed()) {
        bench_backend(c, &rt, &mut bed);
        rt.block_on(bed.db.close());
        drop(bed);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    anchors(&mut c);
    c.final_summary();
}
