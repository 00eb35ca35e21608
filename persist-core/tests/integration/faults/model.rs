//! Entities of the fault tests, and the helpers every fault test shares.

use std::time::Duration;

use persist_core::prelude::*;

/// The parent of a round's rows (a loader reads its children).
#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "fault_groups")]
#[persist(has_many(FaultRow, by = "group_id", on_delete = "cascade"))]
pub struct FaultGroup {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
}

/// A row written by one round of a fault test. No unique key besides the
/// generated id, on purpose: a change written twice shows up as two rows
/// with the same `(round, tag)` instead of a constraint error.
#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "fault_rows")]
pub struct FaultRow {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "FaultGroup")]
    pub group_id: i64,
    pub round: i64,
    pub tag: String,
    pub n: i64,
    pub mark: i64,
}

/// A keyed value for `upsert` (its conflict target is the primary key).
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "fault_kv")]
pub struct FaultKv {
    #[persist(primary_key)]
    pub k: String,
    pub v: i64,
}

/// The server's id of a session's connection, read with raw SQL
/// (`pg_backend_pid()`, `CONNECTION_ID()`); never created as a table.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "fault_backend_pid")]
pub struct BackendPid {
    #[persist(primary_key)]
    pub pid: i64,
}

/// Every table of the fault tests, parents first.
pub type FaultTables = (FaultGroup, FaultRow, FaultKv);

pub fn row(group_id: i64, round: i64, tag: impl Into<String>) -> FaultRow {
    FaultRow {
        id: 0,
        group_id,
        round,
        tag: tag.into(),
        n: 0,
        mark: 0,
    }
}

/// The suite's name of the path `db` runs on: `sqlite` (direct),
/// `sqlite_sqlx`, `postgres`, `mysql`.
pub fn path_name(db: &Db) -> &'static str {
    match db.backend() {
        persist_core::sql::Backend::Sqlite if db.sqlite_direct() => "sqlite",
        persist_core::sql::Backend::Sqlite => "sqlite_sqlx",
        persist_core::sql::Backend::Postgres => "postgres",
        persist_core::sql::Backend::MySql => "mysql",
        other => panic!("the test suite has no case for {other:?}"),
    }
}

/// An invariant of the fault guarantees did not hold.
pub fn violation(msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{VIOLATED}{msg}"))
}

/// How a [`violation`] starts.
pub const VIOLATED: &str = "fault guarantee violated: ";

/// Fails with a violation unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::faults::model::violation(format!($($msg)+)));
        }
    };
}
pub(crate) use ensure;

/// Runs `fut`, failing with `what` if it takes longer than `secs`: a hang
/// after a fault (a lock never released, a connection never given back)
/// must name itself instead of eating the suite's timeout.
pub async fn within<T>(
    secs: u64,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Invalid(format!(
            "fault: {what} did not finish within {secs} s"
        ))),
    }
}

/// Creates the fault tables on `db` and commits one group, `g`: the parent
/// of a test's rows. Answers its key.
pub async fn seed_group(db: &Db) -> Result<i64, Error> {
    db.create_tables::<FaultTables>().await?;
    let s = db.session().await?;
    let g = s
        .insert(FaultGroup {
            id: 0,
            name: "g".into(),
        })
        .await?;
    s.commit().await?;
    Ok(g.id)
}

/// The rows of `round` in key order, read in `s`.
pub async fn round_rows(
    s: &persist_core::session::Session,
    round: i64,
) -> Result<Vec<FaultRow>, Error> {
    s.query::<FaultRow>()
        .filter(FaultRow::ROUND.eq(round))
        .order_by(FaultRow::ID)
        .all()
        .await
}

/// Opens a second `Db` on `url` that reads only committed data (its own
/// connections, no cache): the witness of what the database holds.
pub async fn observer(url: &str, direct: bool) -> Result<Db, Error> {
    Db::builder()
        .max_connections(2)
        .sqlite_direct(direct)
        .connect(url)
        .await
}

/// Every row of `round`, as another connection sees it.
pub async fn committed_rows(observer: &Db, round: i64) -> Result<Vec<FaultRow>, Error> {
    let s = observer
        .session_with(persist_core::session::SessionOptions::new().read_only())
        .await?;
    let rows = round_rows(&s, round).await?;
    s.rollback().await?;
    Ok(rows)
}
