//! SQLite's one writer, queued in the process: the read-write sessions
//! that hold or wait for the database's write lock, in the order they asked.
//!
//! A read-write session begins with `BEGIN IMMEDIATE`, which takes the write
//! lock at once. Left to SQLite, a session that finds the lock taken polls
//! it from the busy handler, sleeping 1, 2, 5, 10 … 100 ms between tries, so
//! a reader or writer that arrived just after another writer began waits
//! for the next poll, not for that writer's commit (a read p99.9 of about
//! 55–80 ms where the transactions take 50 µs; see the SQLite section of
//! `docs/reference/sessions.md`). Sessions of one `Db` queue here instead,
//! first come first served, and each is woken the moment the one before it
//! ends its transaction. SQLite's lock stays the authority: the queue only
//! decides who asks next. Writers of other processes (or of read-only
//! sessions that write) still meet the busy handler.
//!
//! The queue also keeps a task from waiting on itself: a second write
//! session in the task (or, outside any, the thread) of a session already
//! holding or waiting for the lock fails at once
//! ([`Error::WouldWaitOnItself`]).

use std::sync::Arc;

use tokio::sync::Notify;

use super::{Inner, Session};
use crate::backend::SQLITE_BUSY_TIMEOUT;
use crate::error::{Error, Result};
use crate::session::shared::Shared;
use crate::sql::Backend;

/// What runs a session's calls: a tokio task, or (outside any, as in
/// `block_on`) a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Runner {
    fn current() -> Runner {
        match tokio::task::try_id() {
            Some(id) => Runner::Task(id),
            None => Runner::Thread(std::thread::current().id()),
        }
    }
}

/// One session's place in the queue for SQLite's write lock; the first
/// holds it (or is about to take it).
#[derive(Debug)]
pub(crate) struct Claim {
    runner: Runner,
    session: u64,
    /// Wakes the session when it comes first.
    turn: Arc<Notify>,
}

/// Removes `session`'s claim; when it was first, the next one's turn has
/// come.
fn remove_claim(db: &Shared, session: u64) {
    let mut queue = db.sqlite_writers.lock().unwrap_or_else(|p| p.into_inner());
    let Some(at) = queue.iter().position(|c| c.session == session) else {
        return;
    };
    queue.remove(at);
    if at == 0
        && let Some(next) = queue.first()
    {
        next.turn.notify_one();
    }
}

/// Whether `session` is first in the queue.
fn is_first(db: &Shared, session: u64) -> bool {
    let queue = db.sqlite_writers.lock().unwrap_or_else(|p| p.into_inner());
    queue.first().is_some_and(|c| c.session == session)
}

/// A claim whose turn has not come: dropped (its future cut), it leaves
/// the queue, so a cut session never holds up the sessions behind it.
struct Waiting<'a> {
    db: &'a Shared,
    session: u64,
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.armed {
            remove_claim(self.db, self.session);
        }
    }
}

impl Inner {
    /// Leaves the queue for SQLite's write lock (the transaction ended, or
    /// never began); the next session's turn comes.
    pub(super) fn release_sqlite_write(&self) {
        if self.db.backend() != Backend::Sqlite {
            return;
        }
        remove_claim(&self.db, self.id);
    }
}

impl Session {
    /// SQLite: queues this session, in this task, for the database's write
    /// lock, and answers when its turn has come (the sessions before it in
    /// the queue ended their transactions), just before `BEGIN IMMEDIATE`.
    /// Another session of the same task in the queue would make this one
    /// wait for itself: that is refused at once.
    ///
    /// The wait is bounded by the busy timeout: past it (a session ahead
    /// holds its transaction that long) the session goes on to `BEGIN
    /// IMMEDIATE` and SQLite's own busy handler, as without the queue.
    pub(super) async fn claim_sqlite_write(&self) -> Result<()> {
        let db = &self.inner.db;
        let session = self.inner.id;
        let task = Runner::current();
        let turn = {
            let mut queue = db.sqlite_writers.lock().unwrap_or_else(|p| p.into_inner());
            if queue
                .iter()
                .any(|c| c.runner == task && c.session != session)
            {
                return Err(Error::WouldWaitOnItself);
            }
            if queue.iter().any(|c| c.session == session) {
                return Ok(());
            }
            let turn = Arc::new(Notify::new());
            queue.push(Claim {
                runner: task,
                session,
                turn: turn.clone(),
            });
            if queue.len() == 1 {
                return Ok(());
            }
            turn
        };
        let mut waiting = Waiting {
            db,
            session,
            armed: true,
        };
        let wait = async {
            // A turn given before this waits is kept by `Notify`.
            while !is_first(db, session) {
                turn.notified().await;
            }
        };
        // Past the timeout the claim stays: the session still leaves the
        // queue when its transaction ends.
        let _ = tokio::time::timeout(SQLITE_BUSY_TIMEOUT, wait).await;
        waiting.armed = false;
        Ok(())
    }

    /// Leaves the queue for SQLite's write lock.
    pub(super) fn release_sqlite_write(&self) {
        self.inner.release_sqlite_write();
    }
}
