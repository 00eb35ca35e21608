//! Savepoints: nested partial rollbacks of a session's transaction.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx_core::transaction::TransactionManager;

use super::Session;
use crate::backend::dispatch;
use crate::error::{Error, Result};

/// A savepoint in a session's transaction, made by [`Session::savepoint`].
///
/// [`rollback`](Savepoint::rollback) undoes what the database did since the
/// savepoint *and* drops the registrations made since it;
/// [`release`](Savepoint::release) keeps both. Savepoints nest; ending an outer one
/// ends the inner ones with it. A savepoint dropped without either is kept
/// until the transaction ends.
#[must_use = "a savepoint is ended with `rollback` or `release`"]
#[derive(Debug)]
pub struct Savepoint {
    session: Session,
    /// The transaction depth the savepoint created (2 for the first).
    depth: usize,
    /// Tells this savepoint from a later one at the same depth (after the
    /// transaction or an outer savepoint ended it).
    id: u64,
}

/// Ids of savepoints, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Session {
    /// Sets a savepoint. Registered changes are not flushed: the savepoint
    /// remembers them, and rolling back to it restores them as they were.
    pub async fn savepoint(&self) -> Result<Savepoint> {
        if self.inner.options.autocommit {
            return Err(Error::Invalid(
                "a session of autocommit reads has no transaction to set a savepoint in".into(),
            ));
        }
        let mut guard = self.lock_unflushed().await?;
        let snapshot = self.uow().clone();
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let depth: Result<usize> = self
            .step(async {
                Ok(dispatch!(conn, |c, DB| {
                    let c = <DB as crate::backend::Driver>::sqlx(c);
                    <DB as sqlx::Database>::TransactionManager::begin(c, None).await?;
                    <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c)
                }))
            })
            .await;
        let depth = depth?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let cache_mark = self.cache_savepoint();
        let changes = self.changes_recorded();
        let mut stack = self.savepoint_stack();
        stack.truncate(depth.saturating_sub(2));
        stack.push((id, snapshot, cache_mark, changes));
        Ok(Savepoint {
            session: self.clone(),
            depth,
            id,
        })
    }
}

impl Savepoint {
    /// Fails unless this savepoint is still open: a commit, a rollback or
    /// the end of an outer savepoint ended it, and a newer savepoint may
    /// now sit at its depth.
    fn check_open(&self) -> Result<()> {
        let open = self
            .session
            .savepoint_stack()
            .get(self.depth.wrapping_sub(2))
            .is_some_and(|(id, ..)| *id == self.id);
        if open {
            Ok(())
        } else {
            Err(Error::Invalid("the savepoint has already ended".into()))
        }
    }

    /// Rolls the database and the session's registrations back to this
    /// savepoint, and ends it.
    pub async fn rollback(self) -> Result<()> {
        let s = &self.session;
        s.check_open()?;
        self.check_open()?;
        let mut guard = s.lock_unflushed().await?;
        self.check_open()?;
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let target = self.depth;
        let rolled: Result<()> = s
            .step(async {
                dispatch!(conn, |c, DB| {
                    let c = <DB as crate::backend::Driver>::sqlx(c);
                    if <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c) < target
                    {
                        return Err(Error::Invalid("the savepoint has already ended".into()));
                    }
                    while <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c)
                        >= target
                    {
                        <DB as sqlx::Database>::TransactionManager::rollback(c).await?;
                    }
                });
                Ok(())
            })
            .await;
        rolled?;
        let mut stack = s.savepoint_stack();
        let index = target - 2;
        if let Some((_, snapshot, cache_mark, changes)) = stack.get(index).cloned() {
            *s.uow() = snapshot;
            // What the cache would have been told of the rolled-back
            // writes is forgotten with them, and so are their changes.
            s.cache_rollback_to(cache_mark);
            s.changes_rolled_back_to(changes);
        }
        stack.truncate(index);
        Ok(())
    }

    /// Keeps what happened since the savepoint and ends it.
    pub async fn release(self) -> Result<()> {
        let s = &self.session;
        s.check_open()?;
        self.check_open()?;
        let mut guard = s.lock_unflushed().await?;
        self.check_open()?;
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let target = self.depth;
        let released: Result<()> = s
            .step(async {
                dispatch!(conn, |c, DB| {
                    let c = <DB as crate::backend::Driver>::sqlx(c);
                    while <DB as sqlx::Database>::TransactionManager::get_transaction_depth(c)
                        >= target
                    {
                        <DB as sqlx::Database>::TransactionManager::commit(c).await?;
                    }
                });
                Ok(())
            })
            .await;
        released?;
        s.savepoint_stack().truncate(target - 2);
        Ok(())
    }
}
