//! The one error type of persist.

use std::fmt;

/// A boxed error from a driver or a conversion, kept as the source of an [`Error`].
pub type BoxDynError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with persist's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in persist.
///
/// The same fault is the same variant on every backend: a duplicate key is
/// [`Error::UniqueViolation`] on SQLite, PostgreSQL and MySQL alike, with the
/// constraint name persist gave it when it created the schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A row that had to exist does not (for example [`crate::query::Query::one`]).
    #[error("row not found")]
    NotFound,

    /// A query that had to return at most one row returned more.
    #[error("expected at most one row, found more")]
    TooManyRows,

    /// A `UNIQUE` or primary-key constraint rejected a write.
    #[error("unique constraint violated on {table}({}){}", columns.join(", "), constraint_suffix(constraint))]
    UniqueViolation {
        /// Table written to.
        table: String,
        /// Columns of the violated constraint, where known.
        columns: Vec<String>,
        /// Name of the constraint, where the backend or the schema tells it.
        constraint: Option<String>,
    },

    /// A foreign-key constraint rejected a write or a delete.
    #[error("foreign key constraint violated on {table}({}){}", columns.join(", "), constraint_suffix(constraint))]
    ForeignKeyViolation {
        /// Table written to.
        table: String,
        /// Referencing columns, where known.
        columns: Vec<String>,
        /// Name of the constraint, where known.
        constraint: Option<String>,
    },

    /// A `NOT NULL` constraint rejected a write.
    #[error("NOT NULL constraint violated on {table}({}){}", columns.join(", "), constraint_suffix(constraint))]
    NotNullViolation {
        /// Table written to.
        table: String,
        /// The column that was NULL.
        columns: Vec<String>,
        /// Name of the constraint, where known.
        constraint: Option<String>,
    },

    /// An optimistic-locking check failed: the row was changed or deleted by
    /// someone else since it was read (its `version` no longer matches).
    #[error("stale row in {table} with key {key}: changed or deleted concurrently")]
    Stale {
        /// Table of the row.
        table: String,
        /// The row's primary key, formatted with `Debug`.
        key: String,
    },

    /// A column value could not be turned into its Rust field.
    #[error("cannot decode column {column}: {source}")]
    Decode {
        /// Column name.
        column: String,
        /// Why.
        #[source]
        source: BoxDynError,
    },

    /// A field value cannot be stored by the backend (for example a `u64`
    /// above `i64::MAX`).
    #[error("cannot encode column {column}: {source}")]
    Encode {
        /// Column name.
        column: String,
        /// Why.
        #[source]
        source: BoxDynError,
    },

    /// A lifecycle hook ([`Hooks`](crate::model::Hooks)) or a session
    /// interceptor ([`Interceptor`](crate::session::Interceptor)) refused a
    /// change. Nothing of the flush (or bulk write) it refused was written,
    /// and the session is not failed: its registered changes stay, to be
    /// fixed, dropped or rolled back. Not retryable.
    #[error("{by} refused the change: {source}")]
    Vetoed {
        /// Who refused: `before_insert of Account`, `interceptor AuditRules`.
        by: String,
        /// The error the hook or interceptor answered.
        #[source]
        source: BoxDynError,
    },

    /// An earlier write of this session failed; the session refuses further
    /// work until it is rolled back.
    #[error("the session failed earlier and must be rolled back")]
    SessionFailed,

    /// The session's connection is gone.
    #[error("the session is closed")]
    SessionClosed,

    /// [`Session::current`](crate::session::Session::current) was called outside a
    /// session scope.
    #[error("no session in scope: run the code inside `Session::scope` or `Db::transaction`")]
    NoSession,

    /// A `stream()` is in progress on this session.
    #[error("the session is busy with a stream in progress")]
    SessionBusy,

    /// SQLite: a write session would wait for a lock the same task already
    /// holds through another session (`db.transaction(…)` or a second
    /// `db.session()` used for writing while a session of the same task has
    /// begun its write transaction). It would wait until the busy timeout;
    /// persist refuses at once. Write in the session already open
    /// ([`Session::current`](crate::session::Session::current) inside a scope), or
    /// commit it first. Not retryable.
    #[error(
        "this task already holds SQLite's write lock through another session; a second write session would wait on itself: use the open session (Session::current) or commit it first"
    )]
    WouldWaitOnItself,

    /// The connection URL names a backend this build does not include.
    #[error("unsupported database URL `{0}` (enable the matching persist-core feature)")]
    UnsupportedUrl(String),

    /// The operation does not fit the entity (for example `upsert` on an
    /// entity without a unique key).
    #[error("invalid use: {0}")]
    Invalid(String),

    /// Any other database or driver error.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn constraint_suffix(constraint: &Option<String>) -> String {
    match constraint {
        Some(name) => format!(" (constraint {name})"),
        None => String::new(),
    }
}

impl Error {
    /// Whether retrying the whole transaction may succeed: serialization
    /// failures and deadlocks (PostgreSQL `40001`/`40P01`, MySQL 1213/1205),
    /// SQLite `BUSY`/`LOCKED`, and [`Error::Stale`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Stale { .. } => true,
            Error::Database(sqlx::Error::Database(db)) => {
                let code = db.code();
                matches!(
                    code.as_deref(),
                    Some("40001" | "40P01" | "1213" | "1205" | "5" | "6" | "261" | "262" | "517")
                ) || is_mysql_retryable(db.as_ref())
            }
            _ => false,
        }
    }

    pub(crate) fn decode(column: &str, source: impl Into<BoxDynError>) -> Self {
        Error::Decode {
            column: column.to_owned(),
            source: source.into(),
        }
    }

    pub(crate) fn encode(column: &str, source: impl Into<BoxDynError>) -> Self {
        Error::Encode {
            column: column.to_owned(),
            source: source.into(),
        }
    }
}

#[allow(unused_variables)]
fn is_mysql_retryable(db: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(my.number(), 1213 | 1205);
    }
    false
}

/// A message as an error source.
#[derive(Debug)]
pub(crate) struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

pub(crate) fn msg(s: impl Into<String>) -> BoxDynError {
    Box::new(Message(s.into()))
}
