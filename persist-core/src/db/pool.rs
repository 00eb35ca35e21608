//! The `Db`'s sqlx pool, for code that wants sqlx itself (a library taking
//! a `PgPool`, `sqlx::query!` checked at compile time, `LISTEN`, `COPY`).
//!
//! Work done through the pool runs outside every session: in its own
//! transaction (or none), uncounted by [`Db::statement_count`], and unseen
//! by the shared cache. A write through it leaves cached rows and query
//! results of the tables it touched as they were until they expire: evict
//! them from the shared cache after such a write (the `Db`'s evict calls),
//! or write through a session ([`Session::execute`]), which invalidates
//! them at commit.
//!
//! [`Session::execute`]: crate::session::Session::execute

use super::Db;
use crate::backend::AnyPool;

impl Db {
    /// The pool of connections sessions are served from, handed to sqlx
    /// once the connections persist keeps for the next session (parked)
    /// are back in it.
    fn pool(&self) -> &AnyPool {
        self.inner.conns.release_parked();
        &self.inner.conns.pool
    }

    /// The sqlx pool of a SQLite database; `None` on another backend.
    ///
    /// Work through the pool runs outside every session (its own
    /// transaction, not counted by [`Db::statement_count`]) and past the
    /// shared cache: after writing through it, evict what it changed from
    /// the cache, or write through a session
    /// ([`Session::execute`](crate::session::Session::execute)), which
    /// invalidates at commit.
    ///
    /// ```
    /// # async fn demo(db: &persist_core::db::Db) -> Result<(), sqlx::Error> {
    /// if let Some(pool) = db.sqlite_pool() {
    ///     let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM accounts")
    ///         .fetch_one(pool)
    ///         .await?;
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match self.pool() {
            AnyPool::Sqlite(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The sqlx pool of a PostgreSQL database; `None` on another backend.
    ///
    /// Work through the pool runs outside every session (its own
    /// transaction, not counted by [`Db::statement_count`]) and past the
    /// shared cache: after writing through it, evict what it changed from
    /// the cache, or write through a session
    /// ([`Session::execute`](crate::session::Session::execute)), which
    /// invalidates at commit.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match self.pool() {
            AnyPool::Postgres(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The sqlx pool of a MySQL or MariaDB database; `None` on another
    /// backend.
    ///
    /// Work through the pool runs outside every session (its own
    /// transaction, not counted by [`Db::statement_count`]) and past the
    /// shared cache: after writing through it, evict what it changed from
    /// the cache, or write through a session
    /// ([`Session::execute`](crate::session::Session::execute)), which
    /// invalidates at commit.
    #[cfg(feature = "mysql")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    pub fn mysql_pool(&self) -> Option<&sqlx::MySqlPool> {
        match self.pool() {
            AnyPool::MySql(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}
