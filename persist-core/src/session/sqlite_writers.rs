//! SQLite's one writer: which task's session holds the database's write
//! lock, so that a second write session in the same task fails at once
//! ([`Error::WouldWaitOnItself`]) instead of waiting on itself.

use super::{Inner, Session};
use crate::error::{Error, Result};
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

impl Inner {
    /// Forgets this session's claim on SQLite's write lock.
    pub(super) fn release_sqlite_write(&self) {
        if self.db.backend() != Backend::Sqlite {
            return;
        }
        let id = self.id;
        self.db
            .sqlite_writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, holder)| *holder != id);
    }
}

impl Session {
    /// SQLite: records that this session, in this task, is about to take
    /// the database's write lock (`BEGIN IMMEDIATE`). Another session of the
    /// same task holding it would make this one wait for itself until the
    /// busy timeout: that is refused at once.
    pub(super) fn claim_sqlite_write(&self) -> Result<()> {
        let task = Runner::current();
        let mut writers = self
            .inner
            .db
            .sqlite_writers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if writers
            .iter()
            .any(|(t, id)| *t == task && *id != self.inner.id)
        {
            return Err(Error::WouldWaitOnItself);
        }
        writers.push((task, self.inner.id));
        Ok(())
    }

    /// Forgets this session's claim on SQLite's write lock.
    pub(super) fn release_sqlite_write(&self) {
        self.inner.release_sqlite_write();
    }

    /// SQLite: whether this session holds the database's write lock on
    /// behalf of the running task, so that a new write session of the task
    /// would wait on it.
    pub(crate) fn holds_sqlite_write_here(&self) -> bool {
        if self.backend() != Backend::Sqlite {
            return false;
        }
        let task = Runner::current();
        self.inner
            .db
            .sqlite_writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(t, id)| *t == task && *id == self.inner.id)
    }
}
