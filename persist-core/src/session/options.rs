//! Options of one session: isolation, read-only, identity map, retries.

use crate::sql::Backend;

/// Transaction isolation level, where the backend has a choice.
///
/// SQLite is always serializable and ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Isolation {
    /// `READ UNCOMMITTED`.
    ReadUncommitted,
    /// `READ COMMITTED` (PostgreSQL's default).
    ReadCommitted,
    /// `REPEATABLE READ` (MySQL's default).
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl Isolation {
    /// Reads a level as servers name it (`read committed`, `REPEATABLE-READ`);
    /// an unknown name is taken as the strictest level.
    pub(crate) fn parse(name: &str) -> Isolation {
        let n = name.trim().to_ascii_lowercase().replace(['-', '_'], " ");
        match n.as_str() {
            "read uncommitted" => Isolation::ReadUncommitted,
            "read committed" => Isolation::ReadCommitted,
            "repeatable read" => Isolation::RepeatableRead,
            _ => Isolation::Serializable,
        }
    }

    /// Whether each statement sees what committed before it (no snapshot
    /// held across statements).
    pub(crate) fn per_statement(self) -> bool {
        matches!(self, Isolation::ReadCommitted | Isolation::ReadUncommitted)
    }

    fn sql(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "READ UNCOMMITTED",
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

/// Options for [`Db::session_with`](crate::db::Db::session_with) and
/// [`Db::transaction_with`](crate::db::Db::transaction_with).
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub(crate) isolation: Option<Isolation>,
    pub(crate) read_only: bool,
    pub(crate) identity_map: Option<bool>,
    pub(crate) identity_map_limit: Option<usize>,
    pub(crate) max_retries: Option<u32>,
    pub(crate) autocommit: bool,
}

impl SessionOptions {
    /// Default options: a read-write session with the `Db`'s settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The isolation level of the session's transactions (PostgreSQL and
    /// MySQL; SQLite is always serializable).
    pub fn isolation(mut self, level: Isolation) -> Self {
        self.isolation = Some(level);
        self
    }

    /// A read-only session: `BEGIN READ ONLY` on PostgreSQL, `START
    /// TRANSACTION READ ONLY` on MySQL, and a plain deferred `BEGIN` on
    /// SQLite, where read-write sessions begin with `BEGIN IMMEDIATE` and so
    /// wait for the one write lock even when they only read. On SQLite a
    /// session that only reads uses this so as not to queue behind writers:
    /// in WAL mode it reads its snapshot beside them.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// A read-only session whose statements each run by themselves, outside
    /// any transaction (the database's autocommit): no `BEGIN` and `COMMIT`
    /// round trips around them. Each read sees what was committed when it
    /// ran, with no snapshot held across reads, so two reads may see two
    /// states of the database; the shared cache still serves and fills as
    /// in any session. Meant for one-statement reads on a hot path — a web
    /// session's `load`, a lookup by key. A write in it (a flush, a bulk
    /// write, an upsert, a raw write) and a savepoint are refused with
    /// [`Error::Invalid`](crate::error::Error::Invalid).
    pub fn autocommit_reads(mut self) -> Self {
        self.autocommit = true;
        self.read_only = true;
        self
    }

    /// A session whose statements each run by themselves, outside any
    /// transaction: reads as with [`autocommit_reads`](Self::autocommit_reads),
    /// and writes of **one statement** each — `insert` of one row,
    /// `upsert`, `upsert_with`, `update_all`, `delete_all`, a raw `execute`
    /// — committed by that statement alone, in one round trip. Whatever
    /// needs more than one statement to be all or nothing is refused with
    /// [`Error::Invalid`](crate::error::Error::Invalid): registered changes
    /// (a flush), `insert_many` of several rows, savepoints. So is any write
    /// on a `Db` with a shared cache, which learns of writes at commit.
    ///
    /// With [`Db::transaction_with`](crate::db::Db::transaction_with) it is
    /// a request, not an order: where a transaction is needed to keep
    /// persist's guarantees (the `Db` has a shared cache, or on SQLite the
    /// task's ambient session holds the write lock) the closure runs in one.
    pub fn autocommit(mut self) -> Self {
        self.autocommit = true;
        self
    }

    /// Whether reads by key are served from the identity map (default: the
    /// `Db`'s setting, on unless changed). Off, every read goes to the
    /// database; the session still keeps snapshots for its updates.
    pub fn identity_map(mut self, on: bool) -> Self {
        self.identity_map = Some(on);
        self
    }

    /// The most entries the identity map keeps; beyond it, the oldest clean
    /// entries are evicted (entries with pending changes never are).
    pub fn identity_map_limit(mut self, n: usize) -> Self {
        self.identity_map_limit = Some(n);
        self
    }

    /// How often [`Db::transaction_with`](crate::db::Db::transaction_with)
    /// retries on a retryable error (default: the `Db`'s setting).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// The statement that begins a transaction, when not a plain `BEGIN`.
    pub(crate) fn begin_statement(&self, backend: Backend) -> Option<String> {
        match backend {
            // IMMEDIATE takes the write lock at once: two writers then queue
            // on the busy timeout instead of failing on lock upgrade, which a
            // deferred transaction that has read cannot wait for (SQLite
            // answers `SQLITE_BUSY` / `SQLITE_BUSY_SNAPSHOT` at once).
            Backend::Sqlite => (!self.read_only).then(|| "BEGIN IMMEDIATE".to_owned()),
            Backend::Postgres => {
                let mut s = String::from("BEGIN");
                if let Some(i) = self.isolation {
                    s.push_str(" ISOLATION LEVEL ");
                    s.push_str(i.sql());
                }
                if self.read_only {
                    s.push_str(" READ ONLY");
                }
                (s.len() > 5).then_some(s)
            }
            Backend::MySql => self
                .read_only
                .then(|| "START TRANSACTION READ ONLY".to_owned()),
        }
    }

    /// MySQL sets the isolation of the next transaction with its own statement.
    pub(crate) fn mysql_isolation_statement(&self, backend: Backend) -> Option<String> {
        match (backend, self.isolation) {
            (Backend::MySql, Some(i)) => {
                Some(format!("SET TRANSACTION ISOLATION LEVEL {}", i.sql()))
            }
            _ => None,
        }
    }
}
