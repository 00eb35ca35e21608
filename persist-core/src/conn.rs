//! The life of a connection, in one place, in four verbs: a connection is
//! **acquired** for a session (a parked one, else one from the pool),
//! **released** by the session when it is done with it, and then either
//! **parked** for the next session (it is outside any transaction) or
//! **discarded** (closed) when persist cannot vouch for its state;
//! anything else goes back to sqlx's pool, which pings it before reuse.
//!
//! The invariant every path keeps: a connection handed to a session has no
//! open transaction and a state persist can vouch for. Concretely:
//! - a session that ended its transaction (`commit`, `rollback`) releases
//!   its connection with [`Connections::release`]: parked when it is
//!   outside any transaction, rolled back first otherwise;
//! - a session dropped with its transaction open (every handle gone, with
//!   savepoints open or not) releases it with
//!   [`Connections::release_unfinished`]: every level is rolled back before
//!   any other session can get it;
//! - a connection an operation was cut in the middle of (its future dropped
//!   while it waited on the database) is in a state nobody knows — half a
//!   message sent, a `COMMIT` on its way, sqlx's transaction depth out of
//!   step with the server — and is **discarded**: closed, so the server rolls
//!   back whatever it had open. In-memory SQLite is the one exception (its
//!   database lives only as long as its connections): there the connection
//!   is rolled back on sqlx's worker, which runs every command it was sent to
//!   its end, so its state is known once the worker answers.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx_core::transaction::TransactionManager;

use crate::backend::{AnyConn, AnyPool, Driver, dispatch, dispatch_pool};
use crate::error::Result;

/// Most connections kept parked.
const PARKED_MAX: usize = 4;
/// A connection parked longer goes back to the pool (which tests it) rather
/// than straight to the next session.
const PARKED_FOR: Duration = Duration::from_secs(5);

/// The pool of a `Db` and the connections its sessions gave back.
#[derive(Debug)]
pub(crate) struct Connections {
    pub(crate) pool: AnyPool,
    /// SQLite: statements take the direct path.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    sqlite_direct: bool,
    /// SQLite in memory: the database lives as long as one of its
    /// connections, so none is ever discarded.
    in_memory: bool,
    /// Connections sessions gave back, with when, for the next session:
    /// handing a connection back to sqlx's pool costs a ping (a round trip
    /// on PostgreSQL and MySQL) on every release.
    parked: Mutex<Vec<(AnyConn, Instant)>>,
    /// Sessions waiting for the pool: while any waits, a connection given
    /// back goes to the pool, not to the parking.
    waiting: AtomicUsize,
    /// Connections handed to sessions since the `Db` opened (parked or
    /// from the pool).
    acquired: AtomicU64,
}

impl Drop for Connections {
    fn drop(&mut self) {
        let parked = std::mem::take(self.parked.get_mut().unwrap_or_else(|p| p.into_inner()));
        if parked.is_empty() || tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        // Dropped outside any runtime (the last `Db` of a program that
        // kept it past its runtime): a pooled connection goes back to its
        // pool in a spawned task, which needs one. A runtime of our own runs
        // those drops; its shutdown closes the connections.
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(async move { drop(parked) });
        } else {
            std::mem::forget(parked);
        }
    }
}

impl Connections {
    pub(crate) fn new(pool: AnyPool, sqlite_direct: bool, in_memory: bool) -> Self {
        Connections {
            pool,
            sqlite_direct,
            in_memory,
            parked: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
            acquired: AtomicU64::new(0),
        }
    }

    /// A connection for a session: a parked one if one was given back
    /// lately, else one from the pool. Either is outside any transaction.
    pub(crate) async fn acquire(&self) -> Result<AnyConn> {
        // Counted as waiting before looking at the parking: a connection
        // given back meanwhile either is parked before the look (and found)
        // or sees the count and goes to the pool (see `park`).
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let conn = self.acquire_counted().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        if conn.is_ok() {
            self.acquired.fetch_add(1, Ordering::Relaxed);
        }
        conn
    }

    /// Connections handed to sessions so far.
    pub(crate) fn acquired(&self) -> u64 {
        self.acquired.load(Ordering::Relaxed)
    }

    async fn acquire_counted(&self) -> Result<AnyConn> {
        loop {
            let parked = self.parked().pop();
            match parked {
                Some((conn, at)) if at.elapsed() < PARKED_FOR => return Ok(conn),
                // Back to the pool, which tests it before reuse.
                Some(_) => continue,
                None => break,
            }
        }
        Ok(match &self.pool {
            #[cfg(feature = "sqlite")]
            AnyPool::Sqlite(p) => AnyConn::Sqlite(crate::backend::SqliteConn::new(
                p.acquire().await?,
                self.sqlite_direct,
            )),
            #[cfg(feature = "postgres")]
            AnyPool::Postgres(p) => AnyConn::Postgres(p.acquire().await?),
            #[cfg(feature = "mysql")]
            AnyPool::MySql(p) => AnyConn::MySql(p.acquire().await?),
        })
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, Vec<(AnyConn, Instant)>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes back the connection of a session that ended its transaction
    /// (commit or rollback answered): parked for the next session when it is
    /// outside any transaction, else released unfinished (rolled back, or
    /// discarded).
    pub(crate) fn release(&self, mut conn: AnyConn) {
        if transaction_depth(&mut conn) == 0 {
            self.park(conn);
        } else {
            self.release_unfinished(conn, false);
        }
    }

    /// Keeps `conn`, which is outside any transaction, for the next session.
    /// Beyond [`PARKED_MAX`], or while a session waits for the pool, it goes
    /// back to the pool.
    fn park(&self, conn: AnyConn) {
        let mut parked = self.parked();
        let wanted = self.waiting.load(Ordering::SeqCst) > 0;
        if !wanted && parked.len() < PARKED_MAX && !self.is_closed() {
            parked.push((conn, Instant::now()));
            return;
        }
        drop(parked);
        return_to_pool(conn);
    }

    /// Takes the connection of a session that did not end its transaction:
    /// its last handle was dropped, or (with `cut`) an operation's future was
    /// dropped while it waited on this connection.
    pub(crate) fn release_unfinished(&self, conn: AnyConn, cut: bool) {
        release_unfinished(conn, cut, self.in_memory);
    }

    /// Hands every parked connection back to the pool.
    pub(crate) fn release_parked(&self) {
        let conns = std::mem::take(&mut *self.parked());
        for c in conns {
            return_to_pool(c.0);
        }
    }

    /// How many connections are parked.
    pub(crate) fn parked_len(&self) -> usize {
        self.parked().len()
    }

    /// Whether the pool was closed ([`Connections::close`]).
    pub(crate) fn is_closed(&self) -> bool {
        dispatch_pool!(&self.pool, |p| p.is_closed())
    }

    /// Closes the pool: hands the parked connections back, then waits for
    /// the sessions' connections to come back (callers bound the wait).
    pub(crate) async fn close(&self) {
        self.release_parked();
        dispatch_pool!(&self.pool, |p| p.close().await);
    }

    /// Connections of the pool that are out (held by sessions, parked, or
    /// on their way back): the pool's size less its idle connections.
    pub(crate) fn in_use(&self) -> u32 {
        let (size, idle) = dispatch_pool!(&self.pool, |p| (p.size(), p.num_idle()));
        size.saturating_sub(u32::try_from(idle).unwrap_or(u32::MAX))
    }
}

/// sqlx's transaction depth of `conn` (SQLite's direct path stays locked).
pub(crate) fn transaction_depth(conn: &mut AnyConn) -> usize {
    dispatch!(conn, |c, DB| <DB as Driver>::transaction_depth(c))
}

/// Returns a connection outside any transaction to sqlx's pool (which
/// pings it before anyone else gets it).
fn return_to_pool(conn: AnyConn) {
    drop(conn);
}

/// [`Connections::release_unfinished`], for a connection whose `Db` may be gone
/// (`in_memory` says whether it is an in-memory SQLite database's).
#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
pub(crate) fn release_unfinished(mut conn: AnyConn, cut: bool, in_memory: bool) {
    if !cut && transaction_depth(&mut conn) == 0 {
        return_to_pool(conn);
        return;
    }
    match conn {
        #[cfg(feature = "sqlite")]
        AnyConn::Sqlite(c) => {
            if in_memory {
                rollback_sqlite_worker(c);
            } else {
                // Closing the connection rolls back what it had open.
                drop(c.into_pool_connection().detach());
            }
        }
        #[cfg(feature = "postgres")]
        AnyConn::Postgres(mut c) => {
            if cut {
                c.close_on_drop();
            } else {
                rollback_queued::<sqlx::Postgres>(&mut c);
            }
        }
        #[cfg(feature = "mysql")]
        AnyConn::MySql(mut c) => {
            if cut {
                c.close_on_drop();
            } else {
                rollback_queued::<sqlx::MySql>(&mut c);
            }
        }
    }
}

/// Queues a rollback of every open level of `c`'s transaction; sqlx's pool
/// sends them with the ping it runs before the connection is reused, and
/// closes the connection if either fails. (Only for a connection no
/// operation was cut on: then sqlx's depth is the server's.)
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn rollback_queued<DB: sqlx::Database>(c: &mut DB::Connection) {
    while <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) > 0 {
        <DB as sqlx::Database>::TransactionManager::start_rollback(c);
    }
}

/// In-memory SQLite: rolls back every level on sqlx's worker, which runs
/// each command it was sent to its end (so after a ping its depth is
/// known), then returns the connection to the pool. Needs a runtime; without
/// one the rollbacks are queued on the worker, which runs them in order.
#[cfg(feature = "sqlite")]
fn rollback_sqlite_worker(c: crate::backend::SqliteConn) {
    let mut pc = c.into_pool_connection();
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                let c: &mut sqlx::SqliteConnection = &mut pc;
                // The worker answers the ping after everything queued before.
                if sqlx::Connection::ping(c).await.is_err() {
                    return;
                }
                while <sqlx::Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth(c)
                    > 0
                {
                    if <sqlx::Sqlite as sqlx::Database>::TransactionManager::rollback(c)
                        .await
                        .is_err()
                    {
                        // A rollback the worker cannot run: this database is
                        // past saving; close the connection.
                        drop(pc.detach());
                        return;
                    }
                }
                drop(pc);
            });
        }
        Err(_) => {
            let c: &mut sqlx::SqliteConnection = &mut pc;
            let depth =
                <sqlx::Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth(c);
            for _ in 0..depth {
                <sqlx::Sqlite as sqlx::Database>::TransactionManager::start_rollback(c);
            }
        }
    }
}
