//! Web sessions kept by persist: [`PersistSessionStore`], a
//! [`tower_sessions::SessionStore`] on a persist entity, in SQLite,
//! PostgreSQL or MySQL/MariaDB, served from persist's shared cache when the
//! `Db` has one.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use persist_axum::PersistSessionStore;
//! use persist_core::prelude::*;
//! use tower_sessions::{Session as WebSession, SessionManagerLayer};
//!
//! async fn visits(web: WebSession) -> String {
//!     let n: u64 = web.get("visits").await.ok().flatten().unwrap_or(0);
//!     let _ = web.insert("visits", n + 1).await;
//!     format!("visit {}", n + 1)
//! }
//!
//! # async fn demo() -> Result<(), Error> {
//! let db = Db::connect("sqlite://app.db?mode=rwc").await?;
//! let store = PersistSessionStore::new(db).principal_key("user_id");
//! store.create_table().await?;
//! let app: Router = Router::new()
//!     .route("/", get(visits))
//!     .layer(SessionManagerLayer::new(store));
//! # Ok(()) }
//! ```
//!
//! # The table
//!
//! [`SessionRecord`] (`persist_sessions`) holds one row per session:
//!
//! | column | SQLite | PostgreSQL | MySQL/MariaDB | |
//! |---|---|---|---|---|
//! | `id` | text | text | varchar(255) | primary key (`pk_…`) |
//! | `data` | blob | bytea | longblob | not null |
//! | `expires_at` | datetime | timestamptz | datetime(6) | not null, index `ix_<table>_expires_at` |
//! | `principal` | text | text | varchar(255) | null, index `ix_<table>_principal` |
//!
//! [`PersistSessionStore::create_table`] creates it (`if not exists`); in an
//! application with versioned migrations, write those columns in a
//! migration instead. Another table name: declare it with
//! [`session_table!`](crate::session_table) and build the store with
//! [`PersistSessionStore::with_table`].
//!
//! # Encoding
//!
//! The data map is stored as MessagePack (`rmp-serde`), as tower-sessions'
//! own stores do: smaller than JSON and faster to decode. A row whose data
//! does not decode (written by an older version, say) loads as no session:
//! the user gets a new, empty one — never an error page, never anyone
//! else's data — and a warning is logged.
//!
//! # What each call costs
//!
//! - `create`: one `INSERT`, in its own transaction. A taken id (the
//!   database's [`Error::UniqueViolation`]) draws a fresh id and inserts
//!   again, up to 8 times; there is no "check, then insert" race.
//! - `save`: one `UPDATE` by key. tower-sessions saves only sessions it
//!   loaded; one deleted while its request ran (revoked, over the bound,
//!   swept, flushed by another request) matches no row and is **not**
//!   written back — an upsert would bring a revoked session back to life.
//!   Its cookie then loads no session. A session whose last value was
//!   removed is deleted instead (one `DELETE`): tower-sessions saves it
//!   with its id and no data, and an empty session keeps no row.
//! - `load`: one `SELECT` by key in a read-only session, or nothing at all
//!   when the shared cache holds the row. An expired row is never
//!   answered, from the database or the cache.
//! - `delete`: one `DELETE` by key.
//!
//! Each of these is one statement and one round trip: reads run in a
//! session of [autocommit reads](SessionOptions::autocommit_reads), writes
//! in [`Db::transaction_with`] with
//! [`autocommit`](SessionOptions::autocommit) (retried on deadlocks and
//! SQLite busy) — no `BEGIN`/`COMMIT` around them. With a shared cache,
//! writes run in a transaction (`BEGIN`, the statement, `COMMIT`): the cache
//! learns of them at commit, and `save` and `delete` go through the unit of
//! work so that exactly their key is invalidated. With the per-principal
//! bound, a save is a transaction of two or three statements.
//!
//! # Principals: "log out everywhere"
//!
//! With [`principal_key`](PersistSessionStore::principal_key) the store
//! copies one value of the session data (`session.insert("user_id", 42)`)
//! into the `principal` column at every save. Then
//! [`sessions_of`](PersistSessionStore::sessions_of) lists a user's live
//! sessions, [`revoke_all`](PersistSessionStore::revoke_all) and
//! [`revoke_all_except`](PersistSessionStore::revoke_all_except) end them in
//! one statement, and
//! [`max_sessions_per_principal`](PersistSessionStore::max_sessions_per_principal)
//! bounds how many a user keeps: saving one deletes the user's oldest
//! others beyond the bound, in the same transaction.
//!
//! # The cache tier
//!
//! When the `Db` was built with a shared cache (`Db::builder().cache(…)`),
//! the store registers its table for caching
//! ([`Db::cache_entity`], 5 minutes by default, see
//! [`cache_ttl`](PersistSessionStore::cache_ttl)): a hot session is loaded
//! with no SQL. The database stays the source of truth: a row reaches the
//! cache only after its transaction commits, and a deleted or cycled id is
//! invalidated before the call that deleted it returns (across processes
//! too, with `persist_cache::RedisCache`).
//!
//! # Expired sessions
//!
//! `load` never answers an expired session; the rows stay until
//! [`ExpiredDeletion::delete_expired`] (one `DELETE … WHERE expires_at <
//! now`) removes them. tower-sessions' `continuously_delete_expired` runs it
//! on a period:
//!
//! ```no_run
//! # use persist_axum::PersistSessionStore;
//! use tower_sessions::ExpiredDeletion;
//! # async fn demo(store: PersistSessionStore) {
//! let sweeper = tokio::spawn(
//!     store.clone().continuously_delete_expired(tokio::time::Duration::from_secs(60)),
//! );
//! # }
//! ```
//!
//! # Reading the session record in a request's unit of work
//!
//! A handler behind [`PersistLayer`](crate::PersistLayer) can read the row
//! in its own persist session: `s.find::<SessionRecord>(&id.to_string())`.
//! It sees what the store saved before this request; the request's own
//! changes to the web session are saved by tower-sessions after the
//! handler returns, in the store's own transaction.
//!
//! Put the session layer outside the persist layer, so tower-sessions
//! saves after the request's transaction has ended:
//!
//! ```no_run
//! # use axum::Router;
//! # use persist_axum::{PersistLayer, PersistSessionStore};
//! # use tower_sessions::SessionManagerLayer;
//! # fn demo(db: persist_core::prelude::Db, routes: Router) -> Router {
//! routes
//!     .layer(PersistLayer::new(db.clone()))                          // inner
//!     .layer(SessionManagerLayer::new(PersistSessionStore::new(db))) // outer
//! # }
//! ```
//!
//! In the other order, the store writes while the request's transaction is
//! still open: on PostgreSQL and MySQL in a transaction of its own beside
//! it; on SQLite, once the request has written (and so holds the one write
//! lock), inside the request's transaction (see [`Db::transaction`]), so
//! the web session's change then commits or rolls back with the request.
//!
//! # MySQL/MariaDB and the case of ids
//!
//! Session ids are base64, where case matters; MySQL's default collation
//! compares `varchar` without case. `load` answers a row only when its id
//! equals the cookie's exactly, and `create` retries an id that collides
//! in any case, so no cookie loads another session. Bulk filters on the
//! id (`revoke_all_except`'s `keep`, the per-principal bound) still compare
//! by the column's collation; a migration that declares `id` with a
//! binary collation (`utf8mb4_bin`) makes every comparison exact.
//!
//! # Failures
//!
//! A database that cannot be reached answers
//! `tower_sessions::session_store::Error::Backend` (and tower-sessions
//! answers the request with a 500); nothing panics. With a cache tier, a
//! session the cache holds is still served while the database is away (it
//! is what the database committed); every write, and every load the cache
//! misses, fails. A cookie that is not a
//! session id, or names no live session, gets a new empty session.

mod record;

pub use record::{SessionRecord, SessionTable};

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use persist_core::db::Db;
use persist_core::error::Error;
use persist_core::session::{Session, SessionOptions};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;
use tower_sessions::{ExpiredDeletion, SessionStore};

/// How often `create` draws a new id after a collision before giving up.
const CREATE_TRIES: usize = 8;

/// How long a session row stays in the shared cache by default.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// A [`tower_sessions::SessionStore`] kept in a persist entity
/// ([`SessionRecord`] unless another [`SessionTable`] is named).
///
/// See the [module docs](self) for the table, the costs and the options.
pub struct PersistSessionStore<T: SessionTable = SessionRecord> {
    db: Db,
    config: Arc<Config>,
    _table: PhantomData<fn() -> T>,
}

#[derive(Debug, Clone)]
struct Config {
    principal_key: Option<String>,
    max_per_principal: Option<usize>,
}

impl<T: SessionTable> Clone for PersistSessionStore<T> {
    fn clone(&self) -> Self {
        PersistSessionStore {
            db: self.db.clone(),
            config: self.config.clone(),
            _table: PhantomData,
        }
    }
}

impl<T: SessionTable> std::fmt::Debug for PersistSessionStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistSessionStore")
            .field("table", &T::META.table)
            .field("principal_key", &self.config.principal_key)
            .field("max_per_principal", &self.config.max_per_principal)
            .finish_non_exhaustive()
    }
}

/// A live session of a principal, as [`PersistSessionStore::sessions_of`]
/// lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSession {
    /// The session's id (what its cookie holds).
    pub id: Id,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

impl PersistSessionStore<SessionRecord> {
    /// A store on `db`, in the table `persist_sessions`. When `db` has a
    /// shared cache, sessions are cached for 5 minutes
    /// ([`cache_ttl`](Self::cache_ttl) changes it).
    pub fn new(db: Db) -> Self {
        Self::with_table(db)
    }
}

impl<T: SessionTable> PersistSessionStore<T> {
    /// A store on `db`, in the table of `T` (declared with
    /// [`session_table!`](crate::session_table)).
    pub fn with_table(db: Db) -> Self {
        // Without a provider there is nothing to register; that is not an
        // error for a store, which then reads from the database.
        let _ = db.cache_entity::<T>(DEFAULT_CACHE_TTL);
        PersistSessionStore {
            db,
            config: Arc::new(Config {
                principal_key: None,
                max_per_principal: None,
            }),
            _table: PhantomData,
        }
    }

    /// How long a session row stays in the `Db`'s shared cache (a no-op
    /// when the `Db` has none). The registration is the `Db`'s, for the
    /// table: every store on that `Db` and table shares it.
    pub fn cache_ttl(self, ttl: Duration) -> Self {
        let _ = self.db.cache_entity::<T>(ttl);
        self
    }

    /// The data key whose value (a string, or a number, stringified) is
    /// stored as the session's principal at every `create` and `save`:
    /// after `session.insert("user_id", 42)`, the principal is `"42"`.
    pub fn principal_key(mut self, key: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).principal_key = Some(key.into());
        self
    }

    /// Keeps at most `n` sessions per principal: saving (or creating) a
    /// session with a principal deletes that principal's other sessions
    /// beyond the `n - 1` that expire last, in the same transaction. The
    /// session being saved is always kept. `n = 0` is taken as 1.
    ///
    /// Two sessions of one principal saved at the same moment may leave
    /// `n + 1` until the next save.
    pub fn max_sessions_per_principal(mut self, n: usize) -> Self {
        Arc::make_mut(&mut self.config).max_per_principal = Some(n.max(1));
        self
    }

    /// The database the store writes to.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Creates the table of `T` (`if not exists`), with its indexes.
    ///
    /// # Cancel safety
    ///
    /// As [`Db::create_tables`]: each statement is `if not exists`, so a
    /// call dropped midway is completed by calling it again.
    pub async fn create_table(&self) -> Result<(), Error> {
        self.db.create_tables::<(T,)>().await
    }

    /// The principal's live sessions, the one expiring first first. One
    /// `SELECT`, in a session of autocommit reads.
    ///
    /// # Cancel safety
    ///
    /// A read: dropped at any await point it changed nothing, and its
    /// connection is closed rather than handed on in an unknown state.
    pub async fn sessions_of(&self, principal: &str) -> Result<Vec<LiveSession>, Error> {
        let s = self.read_session().await?;
        let rows = s
            .query::<T>()
            .filter(
                T::principal_column()
                    .eq(principal.to_owned())
                    .and(T::expires_at_column().gt(Utc::now())),
            )
            .select((T::id_column(), T::expires_at_column()))
            .order_by(T::expires_at_column())
            .all()
            .await;
        let rows = end_read(&s, rows).await?;
        Ok(rows
            .into_iter()
            .filter(|(id, _)| !id.is_empty())
            .filter_map(|(id, at)| {
                Some(LiveSession {
                    id: id.parse().ok()?,
                    expires_at: to_offset(at)?,
                })
            })
            .collect())
    }

    /// Ends every session of `principal` ("log out everywhere"): one bulk
    /// `DELETE`; answers the rows removed. Their cookies load no session
    /// from now on, from the database or the cache.
    ///
    /// # Cancel safety
    ///
    /// One statement: dropped at any await point, either every session of
    /// the principal is gone or none is (the call can simply be repeated);
    /// the cache is never left serving a deleted one.
    pub async fn revoke_all(&self, principal: &str) -> Result<u64, Error> {
        let principal = principal.to_owned();
        self.write_one(|s| {
            let principal = principal.clone();
            async move {
                s.delete_all::<T>()
                    .filter(T::principal_column().eq(principal))
                    .await
            }
        })
        .await
    }

    /// Ends every session of `principal` but `keep` (the one the user is
    /// on): one bulk `DELETE`; answers the rows removed.
    ///
    /// # Cancel safety
    ///
    /// As [`revoke_all`](Self::revoke_all): all of them or none.
    pub async fn revoke_all_except(&self, principal: &str, keep: &Id) -> Result<u64, Error> {
        let principal = principal.to_owned();
        let keep = keep.to_string();
        self.write_one(|s| {
            let (principal, keep) = (principal.clone(), keep.clone());
            async move {
                s.delete_all::<T>()
                    .filter(
                        T::principal_column()
                            .eq(principal)
                            .and(T::id_column().ne(keep)),
                    )
                    .await
            }
        })
        .await
    }

    /// A session for one read: no transaction, one round trip per
    /// statement ([`SessionOptions::autocommit_reads`]).
    async fn read_session(&self) -> Result<Session, Error> {
        self.db
            .session_with(SessionOptions::new().autocommit_reads())
            .await
    }

    /// Runs a one-statement write in [`Db::transaction_with`], in autocommit
    /// where it can (no `BEGIN`/`COMMIT` round trips; a transaction when the
    /// `Db` has a shared cache, which learns of writes at commit).
    async fn write_one<F, Fut, V>(&self, f: F) -> Result<V, Error>
    where
        F: FnMut(Session) -> Fut,
        Fut: std::future::Future<Output = Result<V, Error>>,
    {
        self.db
            .transaction_with(SessionOptions::new().autocommit(), f)
            .await
            .map(|c| c.value)
    }

    /// Whether the `Db` has a shared cache (writes by key then go through
    /// the unit of work, which invalidates exactly the keys they wrote).
    fn cached(&self) -> bool {
        self.db.cache_metrics().is_some()
    }

    /// The row for `record`: its id, encoded data, expiry and principal.
    fn row(&self, record: &Record) -> Result<T, Error> {
        let data = rmp_serde::to_vec(&record.data).map_err(|e| encode_error("data", e))?;
        let expires_at = to_chrono(record.expiry_date)
            .ok_or_else(|| encode_error("expires_at", "the expiry is out of range"))?;
        let principal = self
            .config
            .principal_key
            .as_deref()
            .and_then(|key| record.data.get(key))
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        Ok(T::new_row(
            record.id.to_string(),
            data,
            expires_at,
            principal,
        ))
    }

    /// Writes `row` in a transaction: an insert (`create`) or an update of
    /// the existing row, then the principal's bound.
    async fn write(&self, row: T, insert: bool) -> Result<(), Error> {
        let max = self.config.max_per_principal;
        if max.is_none() || row.principal().is_none() {
            if insert {
                return self
                    .write_one(|s| {
                        let row = row.clone();
                        async move { s.insert(row).await.map(drop) }
                    })
                    .await;
            }
            if !self.cached() {
                // One `UPDATE … WHERE id = ?`: no row matched is a session
                // deleted meanwhile (see `save`), not an error to retry.
                let n = self
                    .write_one(|s| {
                        let row = row.clone();
                        async move {
                            s.update_all::<T>()
                                .set(T::data_column(), row.data().to_vec())
                                .set(T::expires_at_column(), row.expires_at())
                                .set(T::principal_column(), row.principal().map(str::to_owned))
                                .filter(T::id_column().eq(row.id().to_owned()))
                                .await
                        }
                    })
                    .await?;
                return if n == 0 {
                    Err(Error::Stale {
                        table: T::META.table.to_owned(),
                        key: format!("{:?}", row.id()),
                    })
                } else {
                    Ok(())
                };
            }
        }
        self.db
            .transaction(|s| {
                let row = row.clone();
                async move {
                    let principal = row.principal().map(str::to_owned);
                    let id = row.id().to_owned();
                    if insert {
                        s.insert(row).await?;
                    } else {
                        // An update, not an upsert: a session deleted
                        // while its request ran (revoked, trimmed, swept)
                        // stays deleted. No row matched is `Stale`.
                        let mut row = row;
                        s.update(&mut row)?;
                        s.flush().await?;
                    }
                    if let (Some(max), Some(principal)) = (max, principal) {
                        trim::<T>(&s, &principal, &id, max).await?;
                    }
                    Ok::<_, Error>(())
                }
            })
            .await
    }
}

/// Deletes `principal`'s sessions beyond the `max - 1` others that expire
/// last, keeping `current`: a `SELECT` of ids, and a `DELETE` when some are
/// over.
async fn trim<T: SessionTable>(
    s: &Session,
    principal: &str,
    current: &str,
    max: usize,
) -> Result<(), Error> {
    let others: Vec<(String, DateTime<Utc>)> = s
        .query::<T>()
        .filter(
            T::principal_column()
                .eq(principal.to_owned())
                .and(T::id_column().ne(current.to_owned())),
        )
        .select((T::id_column(), T::expires_at_column()))
        .order_by(T::expires_at_column().desc())
        .all()
        .await?;
    let over: Vec<String> = others
        .into_iter()
        .skip(max.saturating_sub(1))
        .map(|(id, _)| id)
        .collect();
    if !over.is_empty() {
        s.delete_all::<T>()
            .filter(T::id_column().is_in(over))
            .await?;
    }
    Ok(())
}

/// Ends a read-only session and answers what it read (or the first error).
async fn end_read<V>(s: &Session, read: Result<V, Error>) -> Result<V, Error> {
    match read {
        Ok(v) => {
            s.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = s.rollback().await;
            Err(e)
        }
    }
}

fn to_chrono(t: OffsetDateTime) -> Option<DateTime<Utc>> {
    let nanos = t.unix_timestamp_nanos();
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    DateTime::from_timestamp(secs, sub)
}

fn to_offset(t: DateTime<Utc>) -> Option<OffsetDateTime> {
    let nanos = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

fn encode_error(column: &str, source: impl Into<persist_core::error::BoxDynError>) -> Error {
    Error::Encode {
        column: column.to_owned(),
        source: source.into(),
    }
}

fn backend(e: Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl<T: SessionTable> SessionStore for PersistSessionStore<T> {
    /// One `INSERT`; on an id another session holds, a fresh id and
    /// another `INSERT` (at most 8 tries).
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_TRIES {
            let row = self.row(record).map_err(backend)?;
            match self.write(row, true).await {
                Ok(()) => return Ok(()),
                Err(Error::UniqueViolation { .. }) => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
        Err(session_store::Error::Backend(format!(
            "no free session id after {CREATE_TRIES} tries"
        )))
    }

    /// One `UPDATE` (and the principal's bound, if set); a row deleted
    /// meanwhile is not brought back. A session whose
    /// last value was removed is deleted instead: an empty session is no
    /// session, and keeps no row.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        if record.data.is_empty() {
            return self.delete(&record.id).await;
        }
        let row = self.row(record).map_err(backend)?;
        match self.write(row, false).await {
            Err(Error::Stale { .. }) => {
                tracing::debug!(
                    table = T::META.table,
                    "session deleted while its request ran; not written back"
                );
                Ok(())
            }
            other => other.map_err(backend),
        }
    }

    /// The live session with this id: from the shared cache when it holds
    /// it, else one `SELECT`. An expired row, or one whose data does not
    /// decode, is no session.
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let key = id.to_string();
        let s = self.read_session().await.map_err(backend)?;
        let found = s.find::<T>(&key).await;
        let Some(row) = end_read(&s, found).await.map_err(backend)? else {
            return Ok(None);
        };
        // MySQL's default collation compares text without case: only the
        // exact id is this session.
        if row.id() != key || row.expires_at() <= Utc::now() {
            return Ok(None);
        }
        let data: HashMap<String, serde_json::Value> = match rmp_serde::from_slice(row.data()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(
                    table = T::META.table,
                    error = %e,
                    "session data does not decode; answering no session"
                );
                return Ok(None);
            }
        };
        let Some(expiry_date) = to_offset(row.expires_at()) else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    /// One `DELETE` by key.
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let key = id.to_string();
        if !self.cached() {
            return self
                .write_one(|s| {
                    let key = key.clone();
                    async move {
                        s.delete_all::<T>()
                            .filter(T::id_column().eq(key))
                            .await
                            .map(drop)
                    }
                })
                .await
                .map_err(backend);
        }
        // With a cache, by key through the unit of work, which invalidates
        // that one key (a bulk delete would invalidate the whole table).
        self.db
            .transaction(|s| {
                let key = key.clone();
                async move { s.delete_by_key::<T>(&key) }
            })
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl<T: SessionTable> ExpiredDeletion for PersistSessionStore<T> {
    /// One `DELETE … WHERE expires_at < now`.
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.write_one(|s| async move {
            s.delete_all::<T>()
                .filter(T::expires_at_column().le(Utc::now()))
                .await
        })
        .await
        .map(drop)
        .map_err(backend)
    }
}
