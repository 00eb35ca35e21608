//! What a flush (or a bulk write) changes, as interceptors and the
//! after-commit notifications see it: [`ChangeSet`], [`Change`], and the
//! [`Interceptor`] trait registered with
//! [`DbBuilder::interceptor`](crate::db::DbBuilder::interceptor).

// Wired into the flush by the next change.
#![allow(dead_code)]

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::{BoxDynError, Result};
use crate::model::entity::{ChangeKind, Entity, EntityMeta};
use crate::session::Session;

/// Where a change came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Registered with `add`, `update` or `delete` and written by the flush.
    Registered,
    /// Written at once by `insert`, `insert_many` or `upsert`.
    Immediate,
    /// A bulk write (`update_all`, `delete_all`): one statement over every
    /// row matching `filter` (its SQL, with placeholders); the rows are not
    /// known one by one.
    Bulk {
        /// The statement's `WHERE` clause as SQL text (empty: every row).
        filter: String,
    },
    /// Done by the database to rows referencing deleted rows, through a
    /// foreign key declared `on_delete = "cascade"` (a delete) or
    /// `"set_null"` (an update of `column`).
    Cascade {
        /// The table whose rows were deleted.
        parent: &'static str,
        /// The referencing column of this change's table.
        column: &'static str,
    },
}

type Notify = fn(&(dyn Any + Send + Sync), ChangeKind, bool);

/// One change of a flush: one row inserted, updated or deleted, or a bulk
/// write or cascade over rows not known one by one.
#[derive(Clone)]
pub struct Change {
    meta: &'static EntityMeta,
    kind: ChangeKind,
    origin: Origin,
    key: Option<String>,
    columns: Vec<&'static str>,
    value: Option<Arc<dyn Any + Send + Sync>>,
    notify: Option<Notify>,
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Change")
            .field("table", &self.meta.table)
            .field("kind", &self.kind)
            .field("origin", &self.origin)
            .field("key", &self.key)
            .field("columns", &self.columns)
            .finish()
    }
}

fn notify_entity<E: Entity>(v: &(dyn Any + Send + Sync), kind: ChangeKind, committed: bool) {
    if let Some(v) = v.downcast_ref::<E>() {
        if committed {
            v.run_after_commit(kind);
        } else {
            v.run_after_rollback(kind);
        }
    }
}

impl Change {
    /// A change of one row of `E`, with the row (as written; for a delete,
    /// as the session last held it, where it did).
    pub(crate) fn row<E: Entity>(
        kind: ChangeKind,
        origin: Origin,
        key: &E::Key,
        columns: Vec<&'static str>,
        value: Option<E>,
    ) -> Change {
        Change {
            meta: E::META,
            kind,
            origin,
            key: Some(format!("{key:?}")),
            columns,
            value: value.map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>),
            notify: E::META.hooks.then_some(notify_entity::<E> as Notify),
        }
    }

    /// A change of rows not known one by one (a bulk write or a cascade).
    pub(crate) fn rows(
        meta: &'static EntityMeta,
        kind: ChangeKind,
        origin: Origin,
        columns: Vec<&'static str>,
    ) -> Change {
        Change {
            meta,
            kind,
            origin,
            key: None,
            columns,
            value: None,
            notify: None,
        }
    }

    /// The changed entity's metadata.
    pub fn meta(&self) -> &'static EntityMeta {
        self.meta
    }

    /// The changed table.
    pub fn table(&self) -> &'static str {
        self.meta.table
    }

    /// Insert, update or delete.
    pub fn kind(&self) -> ChangeKind {
        self.kind
    }

    /// Where the change came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The row's primary key, formatted with `Debug` (`None` for a bulk
    /// write or a cascade).
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The columns written: for an update, those that changed (every
    /// column but the key for a row the session never loaded); for a bulk
    /// update, those it sets; for a `set_null` cascade, the referencing
    /// column. Empty for inserts and deletes.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    /// Whether this change is of entity `E`.
    pub fn is<E: Entity>(&self) -> bool {
        self.meta.same_as(E::META)
    }

    /// The row, when the change is of `E` and of one known row: as the flush
    /// writes it (an insert or update), or as the session last held it (a
    /// delete of a row it had loaded).
    pub fn value<E: Entity>(&self) -> Option<&E> {
        self.value.as_ref()?.downcast_ref::<E>()
    }

    /// Calls the entity's `after_commit` / `after_rollback` hook.
    pub(crate) fn notify_entity(&self, committed: bool) {
        if let (Some(f), Some(v)) = (self.notify, &self.value) {
            f(v.as_ref(), self.kind, committed);
        }
    }
}

/// The changes of one flush (as an interceptor's
/// [`before_flush`](Interceptor::before_flush) sees them), or of a whole
/// transaction (as [`after_commit`](Interceptor::after_commit) does), in
/// the order they are written.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    changes: Vec<Change>,
}

impl ChangeSet {
    pub(crate) fn new(changes: Vec<Change>) -> ChangeSet {
        ChangeSet { changes }
    }

    pub(crate) fn extend(&mut self, other: ChangeSet) {
        self.changes.extend(other.changes);
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.changes.truncate(len);
    }

    /// Every change, in write order.
    pub fn iter(&self) -> std::slice::Iter<'_, Change> {
        self.changes.iter()
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes of one row of `E` each, with the row where the change
    /// carries it.
    pub fn of<E: Entity>(&self) -> impl Iterator<Item = (&Change, Option<&E>)> {
        self.changes
            .iter()
            .filter(|c| c.is::<E>())
            .map(|c| (c, c.value::<E>()))
    }
}

impl<'a> IntoIterator for &'a ChangeSet {
    type Item = &'a Change;
    type IntoIter = std::slice::Iter<'a, Change>;
    fn into_iter(self) -> Self::IntoIter {
        self.changes.iter()
    }
}

/// A session interceptor, registered on the `Db` with
/// [`DbBuilder::interceptor`](crate::db::DbBuilder::interceptor): it sees
/// every flush's whole change set before it is written, every bulk write
/// before it runs, and every transaction's changes after it commits or
/// rolls back. All methods have defaults that do nothing.
///
/// An interceptor may add changes to the flush it sees
/// ([`Flush::add`], [`Flush::update`], [`Flush::delete`]): they are written
/// in the same flush, in its order, and run their entity hooks. It may veto
/// the flush by answering an error: nothing of it is written, and the
/// flush (or the `commit` or read that ran it) answers
/// [`Error::Vetoed`](crate::error::Error::Vetoed).
///
/// With no interceptor registered, persist builds no change set: the cost
/// of the feature is one branch per flush.
pub trait Interceptor: Send + Sync + 'static {
    /// The name errors give (default: the type's name).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Before a flush (or a bulk write, or an immediate `insert`) is
    /// written: `flush.changes()` is what it will write, after the entity
    /// hooks ran.
    fn before_flush(&self, flush: &mut Flush<'_>) -> std::result::Result<(), BoxDynError> {
        let _ = flush;
        Ok(())
    }

    /// After a transaction committed: every change it wrote, in write
    /// order (changes rolled back to a savepoint are not in it). It runs
    /// before `commit()` returns; it cannot run SQL in the transaction (it
    /// is over) or fail.
    fn after_commit(&self, changes: &ChangeSet) {
        let _ = changes;
    }

    /// After a transaction that had written rolled back (by `rollback()`,
    /// a failed flush or a failed commit): what it had written. A session
    /// dropped with its transaction open tells no one: the rollback then
    /// happens when the connection is handed back.
    fn after_rollback(&self, changes: &ChangeSet) {
        let _ = changes;
    }
}

/// What an interceptor's [`before_flush`](Interceptor::before_flush) gets:
/// the change set, and the means to add changes to it.
pub struct Flush<'a> {
    session: &'a Session,
    changes: &'a ChangeSet,
    added: usize,
}

impl fmt::Debug for Flush<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flush")
            .field("changes", &self.changes)
            .field("added", &self.added)
            .finish()
    }
}

impl<'a> Flush<'a> {
    pub(crate) fn new(session: &'a Session, changes: &'a ChangeSet) -> Flush<'a> {
        Flush {
            session,
            changes,
            added: 0,
        }
    }

    /// Whether an interceptor registered changes.
    pub(crate) fn added(&self) -> bool {
        self.added > 0
    }

    /// The changes the flush will write.
    pub fn changes(&self) -> &ChangeSet {
        self.changes
    }

    /// The session being flushed (its id, its backend). Its async
    /// operations cannot run here: the flush holds its connection.
    pub fn session(&self) -> &Session {
        self.session
    }

    /// Registers `value` for insertion in this flush (as
    /// [`Session::add`]).
    pub fn add<E: Entity>(&mut self, value: E) -> Result<()> {
        self.session.add(value)?;
        self.added += 1;
        Ok(())
    }

    /// Registers an update of `value` in this flush (as
    /// [`Session::update`]).
    pub fn update<E: Entity>(&mut self, value: &mut E) -> Result<()> {
        self.session.update(value)?;
        self.added += 1;
        Ok(())
    }

    /// Registers a delete of `value`'s row in this flush (as
    /// [`Session::delete`]).
    pub fn delete<E: Entity>(&mut self, value: &E) -> Result<()> {
        self.session.delete(value)?;
        self.added += 1;
        Ok(())
    }
}
