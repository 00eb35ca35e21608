//! persist against the anchors (issue 6): a replica of Diesel's
//! `diesel_bench` schema, seed and workloads, plus persist's own (point
//! lookup, identity-map hit, unit-of-work insert), on SQLite (a WAL file,
//! `synchronous=NORMAL`) and PostgreSQL (a schema of its own on 127.0.0.1).
//!
//! Contenders, all in this process and run:
//! - `persist`: the session API (`query`, `left_join`, `insert_many`,
//!   `find`, `insert`), reads inside one session held for the whole
//!   benchmark (its intended use); writes in a session per iteration
//!   (BEGIN … COMMIT included, a session is one transaction);
//! - `persist-uow`: `add_many` + `commit` (unit of work);
//! - `sqlx`: hand-written SQL and `FromRow` on ONE connection (no pool),
//!   prepared statements cached by sqlx; the reference of every ratio;
//! - `diesel` (sync, its own connection, statement cache on);
//! - `sea-orm` (2.0, on the same sqlx 0.9, a pool of one);
//! - `rusqlite` (SQLite only): `prepare_cached` statements on one connection;
//! - `tokio-postgres` (PostgreSQL only): statements prepared once.
//!
//! Fairness: one current-thread tokio runtime for every async contender; the
//! tables are truncated and re-seeded before each workload and size; every
//! contender's result is checked once (row counts) outside the timed loop.
//!
//! Workload names follow the issue (`trivial_N`, `medium_N`, `insert_N`,
//! `find_by_key`, `find_by_key_identity_map`, `uow_insert_10000`,
//! `single_inserts_10000`, plus `multi_insert_10000` for raw sqlx's
//! hand-written multi-row insert of the same rows). Criterion ids are
//! `<backend>/<workload>/<contender>`.
//!
//! Run with `bash bench/run.sh` (short settings), or
//! `cargo bench --bench anchors -- --warm-up-time 1 --measurement-time 2`.

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkGroup, Criterion, measurement::WallTime};
use persist_bench::{Rng, pg_url, unique_name};
use persist_core::{Db, Entity};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row, SqliteConnection};
use tokio::runtime::Runtime;

// ----- schema (diesel_bench) -------------------------------------------------

/// `users(id, name, hair_color NULL)`.
#[derive(Entity, sqlx::FromRow, Clone, Debug, PartialEq)]
#[persist(table = "users")]
pub struct User {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub hair_color: Option<String>,
}

/// `posts(id, user_id, title, body NULL)`.
#[derive(Entity, sqlx::FromRow, Clone, Debug, PartialEq)]
#[persist(table = "posts")]
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

const SQLITE_DDL: &[&str] = &[
    "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name TEXT NOT NULL, hair_color TEXT)",
    "CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, user_id INTEGER NOT NULL, title TEXT NOT NULL, body TEXT)",
    "CREATE TABLE comments (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, post_id INTEGER NOT NULL, text TEXT NOT NULL)",
    "CREATE INDEX users_hair_color ON users (hair_color)",
    "CREATE INDEX posts_user_id ON posts (user_id)",
];

const PG_DDL: &[&str] = &[
    // diesel_bench uses SERIAL / INTEGER (int4); persist's insert path decodes a
    // generated key as INT8 whatever the field type (a bug, see BENCHMARKS.md),
    // so the keys here are BIGSERIAL / BIGINT and the Rust fields i64.
    "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, name VARCHAR NOT NULL, hair_color VARCHAR)",
    "CREATE TABLE posts (id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, title VARCHAR NOT NULL, body TEXT)",
    "CREATE TABLE comments (id BIGSERIAL PRIMARY KEY, post_id BIGINT NOT NULL, text TEXT NOT NULL)",
    "CREATE INDEX users_hair_color ON users (hair_color)",
    "CREATE INDEX posts_user_id ON posts (user_id)",
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

const TRIVIAL_SQL: &str = "SELECT id, name, hair_color FROM users";
const MEDIUM_SQL_SQLITE: &str = "SELECT users.id, users.name, users.hair_color, posts.id, posts.user_id, posts.title, posts.body \
     FROM users LEFT JOIN posts ON posts.user_id = users.id WHERE users.hair_color = ?";
const MEDIUM_SQL_PG: &str = "SELECT users.id, users.name, users.hair_color, posts.id, posts.user_id, posts.title, posts.body \
     FROM users LEFT JOIN posts ON posts.user_id = users.id WHERE users.hair_color = $1";
const FIND_SQL_SQLITE: &str = "SELECT id, name, hair_color FROM users WHERE id = ?";
const FIND_SQL_PG: &str = "SELECT id, name, hair_color FROM users WHERE id = $1";
const SINGLE_INSERT_SQLITE: &str = "INSERT INTO users (name, hair_color) VALUES (?, ?)";
const SINGLE_INSERT_PG: &str = "INSERT INTO users (name, hair_color) VALUES ($1, $2)";

/// `INSERT INTO users (name, hair_color) VALUES (…), (…)` for `n` rows.
fn multi_insert_sql(b: Backend, n: usize) -> Arc<str> {
    let mut s = String::from("INSERT INTO users (name, hair_color) VALUES ");
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        match b {
            Backend::Sqlite => s.push_str("(?, ?)"),
            Backend::Postgres => s.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2)),
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
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// One raw sqlx connection, per backend.
enum Raw {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// A scratch database and every contender's connection to it.
struct Bed {
    backend: Backend,
    db: Db,
    raw: Raw,
    lite: Option<rusqlite::Connection>,
    diesel: Dsl,
    sea: sea_orm::DatabaseConnection,
    tp: Option<Tp>,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    PgSchema(String),
}

impl Drop for Bed {
    fn drop(&mut self) {
        match &self.cleanup {
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

async fn sqlite_bed() -> Bed {
    let dir = std::env::temp_dir().join(unique_name());
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("anchors.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let opts = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .create_if_missing(true);
    let mut raw = SqliteConnection::connect_with(&opts).await.expect("sqlite");
    for ddl in SQLITE_DDL {
        sqlx::query(*ddl).execute(&mut raw).await.expect("ddl");
    }
    // persist opens a file database in WAL mode with synchronous=NORMAL.
    let db = Db::connect(&url).await.expect("persist connect");
    let lite = rusqlite::Connection::open(&file).expect("rusqlite");
    lite.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    lite.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    lite.busy_timeout(Duration::from_secs(10)).expect("busy");
    let mut d =
        <diesel::SqliteConnection as diesel::Connection>::establish(&file.display().to_string())
            .expect("diesel sqlite");
    diesel::connection::SimpleConnection::batch_execute(
        &mut d,
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
    )
    .expect("diesel pragmas");
    let pool = sqlx::pool::PoolOptions::<sqlx::Sqlite>::new()
        .max_connections(1)
        .min_connections(1)
        .connect_with(opts.clone())
        .await
        .expect("sea pool");
    let sea = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
    Bed {
        diesel: Dsl::Sqlite(d),
        sea,
        tp: None,
        backend: Backend::Sqlite,
        db,
        raw: Raw::Sqlite(raw),
        lite: Some(lite),
        cleanup: Cleanup::Dir(dir),
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
    Some(Bed {
        diesel: Dsl::Pg(d),
        sea,
        tp: Some(tp_connect(&url).await),
        backend: Backend::Postgres,
        db,
        raw: Raw::Pg(raw),
        lite: None,
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
        match self.backend {
            Backend::Sqlite => {
                for t in ["comments", "posts", "users"] {
                    self.exec(format!("DELETE FROM {t}")).await;
                }
                self.exec("DELETE FROM sqlite_sequence".into()).await;
            }
            Backend::Postgres => {
                self.exec("TRUNCATE comments, posts, users RESTART IDENTITY".into())
                    .await;
            }
        }
    }

    /// diesel_bench's seed: `n` users, `User {i}`, black / brown alternating.
    async fn seed_users(&mut self, n: usize) {
        self.truncate().await;
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "WITH RECURSIVE seq(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM seq WHERE g < {n} - 1) \
                 INSERT INTO users (name, hair_color) \
                 SELECT 'User ' || g, CASE WHEN g % 2 = 0 THEN 'black' ELSE 'brown' END FROM seq ORDER BY g"
            ),
            Backend::Postgres => format!(
                "INSERT INTO users (name, hair_color) \
                 SELECT 'User ' || g, CASE WHEN g % 2 = 0 THEN 'black' ELSE 'brown' END \
                 FROM generate_series(0, {n} - 1) AS g ORDER BY g"
            ),
        };
        self.exec(sql).await;
        match self.backend {
            Backend::Sqlite => self.exec("ANALYZE".into()).await,
            Backend::Postgres => self.exec("ANALYZE users".into()).await,
        }
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
}

// ----- contenders ---------------------------------------------------------------

async fn sqlx_trivial(raw: &mut Raw) -> Vec<User> {
    match raw {
        Raw::Sqlite(c) => sqlx::query_as::<_, User>(TRIVIAL_SQL).fetch_all(c).await,
        Raw::Pg(c) => sqlx::query_as::<_, User>(TRIVIAL_SQL).fetch_all(c).await,
    }
    .expect("trivial")
}

async fn sqlx_medium(raw: &mut Raw) -> Vec<Joined> {
    match raw {
        Raw::Sqlite(c) => {
            sqlx::query_as::<_, Joined>(MEDIUM_SQL_SQLITE)
                .bind("black")
                .fetch_all(c)
                .await
        }
        Raw::Pg(c) => {
            sqlx::query_as::<_, Joined>(MEDIUM_SQL_PG)
                .bind("black")
                .fetch_all(c)
                .await
        }
    }
    .expect("medium")
}

async fn sqlx_find(raw: &mut Raw, id: i64) -> Option<User> {
    match raw {
        Raw::Sqlite(c) => {
            sqlx::query_as::<_, User>(FIND_SQL_SQLITE)
                .bind(id)
                .fetch_optional(c)
                .await
        }
        Raw::Pg(c) => {
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
    diesel::allow_tables_to_appear_in_same_query!(users, posts, comments);

    /// A row of `users` for Diesel.
    #[derive(diesel::Queryable, Debug)]
    #[allow(dead_code)]
    pub struct DUser {
        pub id: i64,
        pub name: String,
        pub hair_color: Option<String>,
    }

    /// A row of `posts` for Diesel.
    #[derive(diesel::Queryable, Debug)]
    #[allow(dead_code)]
    pub struct DPost {
        pub id: i64,
        pub user_id: i64,
        pub title: String,
        pub body: Option<String>,
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

fn dsl_new_users(users: &[User]) -> Vec<dsl::NewUser<'_>> {
    users
        .iter()
        .map(|u| dsl::NewUser {
            name: &u.name,
            hair_color: u.hair_color.as_deref(),
        })
        .collect()
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
    }

    impl Related<super::sea_user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

async fn sea_trivial(db: &sea_orm::DatabaseConnection) -> Vec<sea_user::Model> {
    use sea_orm::EntityTrait;
    sea_user::Entity::find().all(db).await.expect("sea trivial")
}

async fn sea_medium(
    db: &sea_orm::DatabaseConnection,
) -> Vec<(sea_user::Model, Option<sea_post::Model>)> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    sea_user::Entity::find()
        .find_also_related(sea_post::Entity)
        .filter(sea_user::Column::HairColor.eq("black"))
        .all(db)
        .await
        .expect("sea medium")
}

async fn sea_find(db: &sea_orm::DatabaseConnection, id: i64) -> Option<sea_user::Model> {
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

// ----- tokio-postgres (PostgreSQL's raw floor) ---------------------------------------

/// A tokio-postgres client with its statements prepared once.
struct Tp {
    client: tokio_postgres::Client,
    trivial: tokio_postgres::Statement,
    medium: tokio_postgres::Statement,
    find: tokio_postgres::Statement,
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
    Tp {
        client,
        trivial,
        medium,
        find,
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

fn bench_backend(c: &mut Criterion, rt: &Runtime, bed: &mut Bed) {
    let b = bed.backend;

    // trivial: all users into Vec<User>.
    for size in [1usize, 100, 10_000] {
        rt.block_on(bed.seed_users(size));
        let samples = if size >= 10_000 { 20 } else { 50 };
        let mut g = group(c, b, &format!("trivial_{size}"), samples);
        {
            let s = rt.block_on(bed.db.session()).expect("session");
            let got = rt
                .block_on(s.query::<User>().all())
                .expect("persist trivial");
            assert_eq!(got.len(), size);
            g.bench_function("persist", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(s.query::<User>().all().await.expect("q")) })
            });
            rt.block_on(s.commit()).expect("commit");
        }
        assert_eq!(rt.block_on(sqlx_trivial(&mut bed.raw)).len(), size);
        {
            let raw = RefCell::new(&mut bed.raw);
            g.bench_function("sqlx", |bn| {
                bn.to_async(rt).iter_custom(|iters| {
                    let raw = &raw;
                    async move {
                        let mut raw = raw.borrow_mut();
                        let raw: &mut Raw = &mut raw;
                        let t = Instant::now();
                        for _ in 0..iters {
                            black_box(sqlx_trivial(raw).await);
                        }
                        t.elapsed()
                    }
                })
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
        g.finish();
    }

    // medium: users LEFT JOIN posts WHERE hair_color = 'black'.
    for size in [1usize, 100, 10_000] {
        rt.block_on(bed.seed_users(size));
        let expect = size.div_ceil(2);
        let samples = if size >= 10_000 { 20 } else { 50 };
        let mut g = group(c, b, &format!("medium_{size}"), samples);
        {
            let s = rt.block_on(bed.db.session()).expect("session");
            let medium = || {
                s.query::<User>()
                    .left_join::<Post>()
                    .filter(User::HAIR_COLOR.eq("black".to_string()))
                    .all()
            };
            let got = rt.block_on(medium()).expect("persist medium");
            assert_eq!(got.len(), expect);
            g.bench_function("persist", |bn| {
                bn.to_async(rt)
                    .iter(|| async { black_box(medium().await.expect("q")) })
            });
            rt.block_on(s.commit()).expect("commit");
        }
        let rows = rt.block_on(sqlx_medium(&mut bed.raw));
        assert_eq!(rows.len(), expect);
        assert!(
            rows.iter()
                .all(|Joined(u, p)| u.hair_color.as_deref() == Some("black") && p.is_none())
        );
        {
            let raw = RefCell::new(&mut bed.raw);
            g.bench_function("sqlx", |bn| {
                bn.to_async(rt).iter_custom(|iters| {
                    let raw = &raw;
                    async move {
                        let mut raw = raw.borrow_mut();
                        let raw: &mut Raw = &mut raw;
                        let t = Instant::now();
                        for _ in 0..iters {
                            black_box(sqlx_medium(raw).await);
                        }
                        t.elapsed()
                    }
                })
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
            let before = rt.block_on(bed.count_users());
            assert_eq!(
                rt.block_on(sqlx_multi_insert(&mut bed.raw, &sql, &users)),
                size as u64
            );
            assert_eq!(rt.block_on(bed.count_users()), before + size as i64);
            let raw = RefCell::new(&mut bed.raw);
            g.bench_function("sqlx", |bn| {
                bn.to_async(rt).iter_custom(|iters| {
                    let raw = &raw;
                    let (sql, users) = (&sql, &users);
                    async move {
                        let mut raw = raw.borrow_mut();
                        let raw: &mut Raw = &mut raw;
                        let t = Instant::now();
                        for _ in 0..iters {
                            black_box(sqlx_multi_insert(raw, sql, users).await);
                        }
                        t.elapsed()
                    }
                })
            });
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

    // find_by_key (a key not yet in the session) and the identity-map hit.
    const ROWS: usize = 10_000;
    rt.block_on(bed.seed_users(ROWS));
    let mut keys: Vec<i64> = (1..=ROWS as i64).collect();
    let mut rng = Rng::new(0x5eed);
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    {
        let mut g = group(c, b, "find_by_key", 50);
        {
            let db = &bed.db;
            let keys = &keys;
            let s = rt.block_on(db.session()).expect("session");
            let first = rt
                .block_on(s.find::<User>(&keys[0]))
                .expect("find")
                .expect("row");
            assert_eq!(first.id, keys[0]);
            s.clear();
            let next = Cell::new(0usize);
            g.bench_function("persist", |bn| {
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
                rt.block_on(sqlx_find(&mut bed.raw, keys[0])).map(|u| u.id),
                Some(keys[0])
            );
            let raw = RefCell::new(&mut bed.raw);
            let next = Cell::new(0usize);
            g.bench_function("sqlx", |bn| {
                bn.to_async(rt).iter_custom(|iters| {
                    let (raw, next, keys) = (&raw, &next, &keys);
                    async move {
                        let mut raw = raw.borrow_mut();
                        let raw: &mut Raw = &mut raw;
                        let t = Instant::now();
                        for _ in 0..iters {
                            let k = keys[next.get() % keys.len()];
                            next.set(next.get() + 1);
                            black_box(sqlx_find(raw, k).await);
                        }
                        t.elapsed()
                    }
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

    // 10,000 inserts: unit of work vs awaited single inserts vs one multi-row statement.
    {
        const N: usize = 10_000;
        rt.block_on(bed.truncate());
        let users = new_users(N);
        let multi = multi_insert_sql(b, N);
        let before = rt.block_on(bed.count_users());
        let db = &bed.db;
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
        rt.block_on(uow(users.clone()));
        rt.block_on(singles(users.clone()));
        let bed_raw = &mut bed.raw;
        assert_eq!(
            rt.block_on(sqlx_insert_tx(bed_raw, Some(&multi), &users)),
            N as u64
        );
        assert_eq!(rt.block_on(sqlx_insert_tx(bed_raw, None, &users)), N as u64);
        let after = rt.block_on(async {
            match bed_raw {
                Raw::Sqlite(c) => {
                    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                        .fetch_one(c)
                        .await
                }
                Raw::Pg(c) => {
                    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                        .fetch_one(c)
                        .await
                }
            }
            .expect("count")
        });
        assert_eq!(after, before + 4 * N as i64);

        let mut g = group(c, b, "uow_insert_10000", 10);
        g.bench_function("persist-uow", |bn| {
            bn.to_async(rt)
                .iter_batched(|| users.clone(), uow, BatchSize::PerIteration)
        });
        g.finish();
        let mut g = group(c, b, "single_inserts_10000", 10);
        g.bench_function("persist", |bn| {
            bn.to_async(rt)
                .iter_batched(|| users.clone(), singles, BatchSize::PerIteration)
        });
        {
            let raw = RefCell::new(&mut *bed_raw);
            g.bench_function("sqlx", |bn| {
                bn.to_async(rt).iter_custom(|iters| {
                    let (raw, users) = (&raw, &users);
                    async move {
                        let mut raw = raw.borrow_mut();
                        let raw: &mut Raw = &mut raw;
                        let t = Instant::now();
                        for _ in 0..iters {
                            black_box(sqlx_insert_tx(raw, None, users).await);
                        }
                        t.elapsed()
                    }
                })
            });
        }
        g.finish();
        let mut g = group(c, b, "multi_insert_10000", 10);
        {
            let raw = RefCell::new(&mut *bed_raw);
            g.bench_function("sqlx", |bn| {
                bn.to_async(rt).iter_custom(|iters| {
                    let (raw, users, multi) = (&raw, &users, &multi);
                    async move {
                        let mut raw = raw.borrow_mut();
                        let raw: &mut Raw = &mut raw;
                        let t = Instant::now();
                        for _ in 0..iters {
                            black_box(sqlx_insert_tx(raw, Some(multi), users).await);
                        }
                        t.elapsed()
                    }
                })
            });
        }
        g.finish();
    }
}

fn anchors(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut bed = rt.block_on(sqlite_bed());
    bench_backend(c, &rt, &mut bed);
    rt.block_on(bed.db.close());
    drop(bed);
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
