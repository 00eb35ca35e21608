//! What a flush (or a bulk write) changes, as interceptors and the
//! after-commit notifications see it: [`ChangeSet`], [`Change`], and the
//! [`Interceptor`] trait registered with
//! [`DbBuilder::interceptor`](crate::db::DbBuilder::interceptor).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::{BoxDynError, Error, Result};
use crate::model::entity::{ChangeKind, Entity, EntityMeta};
use crate::session::Session;
use crate::session::flush::{self, PlanOps};

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
    /// write or a cascade). Before the write (as `before_flush` sees it), a
    /// key the database generates is not known yet and shows as the row
    /// holds it (`0`); the changes `after_commit` gets have it.
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

/// The error of a `before_*` hook that refused a change.
pub(crate) fn vetoed(hook: &str, entity: &str, source: BoxDynError) -> Error {
    Error::Vetoed {
        by: format!("{hook} of {entity}"),
        source,
    }
}

/// Rows written at once (`insert`, `insert_many`, `upsert`) as changes.
fn immediate<E: Entity>(values: &[E]) -> ChangeSet {
    ChangeSet::new(
        values
            .iter()
            .map(|v| {
                Change::row::<E>(
                    ChangeKind::Insert,
                    Origin::Immediate,
                    &v.key(),
                    Vec::new(),
                    Some(v.clone()),
                )
            })
            .collect(),
    )
}

/// The changes of `plans` in write order: inserts and updates parents
/// first, then deletes children first. With `hooked_only`, only those of
/// entities with hooks (what their after-commit hooks need).
fn describe(plans: &mut [Box<dyn PlanOps>], hooked_only: bool, take: bool) -> Result<ChangeSet> {
    let mut out = Vec::new();
    let wanted = |p: &dyn PlanOps| !hooked_only || p.meta().hooks;
    for p in plans.iter_mut().filter(|p| wanted(p.as_ref())) {
        p.describe(false, take, &mut out)?;
    }
    for p in plans.iter_mut().rev().filter(|p| wanted(p.as_ref())) {
        p.describe(true, take, &mut out)?;
    }
    Ok(ChangeSet::new(out))
}

impl Session {
    /// Whether an interceptor is registered on the session's `Db`.
    pub(crate) fn intercepts(&self) -> bool {
        !self.inner.db.interceptors.is_empty()
    }

    /// Before a flush writes: the interceptors see its changes (and may add
    /// some, which re-plans it), then the entity hooks run in write order.
    /// Answers whether anyone listens to the transaction's changes (then
    /// [`Session::written`] records them once written), or the veto.
    pub(crate) fn before_writing(&self, plans: &mut Vec<Box<dyn PlanOps>>) -> Result<bool> {
        let intercepts = self.intercepts();
        if intercepts {
            let set = describe(plans, false, false)?;
            if self.intercept(&set)? {
                *plans = flush::plans(&self.uow())?;
            }
        }
        let hooks = plans.iter().any(|p| p.meta().hooks);
        if hooks {
            for p in plans.iter_mut().filter(|p| p.meta().hooks) {
                p.run_hooks(false)?;
            }
            for p in plans.iter_mut().rev().filter(|p| p.meta().hooks) {
                p.run_hooks(true)?;
            }
        }
        Ok(intercepts || hooks)
    }

    /// After a flush wrote `plans`: their changes (with the keys the
    /// database generated) are kept for the end of the transaction. With
    /// `take`, the plans' rows move into them (the plans are spent).
    pub(crate) fn written(&self, plans: &mut [Box<dyn PlanOps>], take: bool) -> Result<()> {
        let set = describe(plans, !self.intercepts(), take)?;
        self.record_changes(set);
        Ok(())
    }

    /// Shows `set` to every interceptor, in registration order; answers
    /// whether they registered changes, or the first veto.
    pub(crate) fn intercept(&self, set: &ChangeSet) -> Result<bool> {
        let mut flush = Flush::new(self, set);
        for i in &self.inner.db.interceptors.0 {
            i.before_flush(&mut flush).map_err(|source| Error::Vetoed {
                by: format!("interceptor {}", i.name()),
                source,
            })?;
        }
        Ok(flush.added())
    }

    /// Before rows are inserted at once (`insert`, `insert_many`,
    /// `upsert`): their `before_insert` hooks, then the interceptors.
    /// Changes an interceptor registers are written by the autoflush
    /// before the insert.
    pub(crate) fn before_immediate<E: Entity>(&self, values: &mut [E]) -> Result<()> {
        if E::META.hooks {
            for v in values.iter_mut() {
                v.run_before_insert()
                    .map_err(|e| vetoed("before_insert", E::META.name, e))?;
            }
        }
        if self.intercepts() {
            self.intercept(&immediate(values))?;
        }
        Ok(())
    }

    /// After rows were inserted at once: recorded for the end of the
    /// transaction, if anyone listens.
    pub(crate) fn after_immediate<E: Entity>(&self, values: &[E]) {
        if E::META.hooks || self.intercepts() {
            self.record_changes(immediate(values));
        }
    }

    /// Before a bulk write of `E` runs (its statement `sql`, whose `WHERE`
    /// clause is the filter): the interceptors see it, with the cascades a
    /// delete (`soft`: a soft delete) sets off. Changes they register are
    /// written by the autoflush before the statement. Answers the changes
    /// to record once it ran.
    pub(crate) fn before_bulk<E: Entity>(
        &self,
        kind: ChangeKind,
        columns: Vec<&'static str>,
        sql: &str,
        soft: bool,
    ) -> Result<Option<ChangeSet>> {
        if !self.intercepts() {
            return Ok(None);
        }
        // (An empty filter renders as `WHERE TRUE`.)
        let filter = sql
            .split_once(" WHERE ")
            .map(|(_, w)| w.trim())
            .filter(|w| !w.eq_ignore_ascii_case("TRUE"))
            .unwrap_or_default()
            .to_owned();
        let mut out = vec![Change::rows(
            E::META,
            kind,
            Origin::Bulk { filter },
            columns,
        )];
        if kind == ChangeKind::Delete {
            flush::describe_cascades(E::META, soft, &mut out);
        }
        let set = ChangeSet::new(out);
        self.intercept(&set)?;
        Ok(Some(set))
    }

    /// Keeps written changes for the end of the transaction.
    pub(crate) fn record_changes(&self, set: ChangeSet) {
        if !set.is_empty() {
            self.changes_lock().extend(set);
        }
    }

    fn changes_lock(&self) -> std::sync::MutexGuard<'_, ChangeSet> {
        self.inner.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets (and answers) the transaction's recorded changes.
    pub(crate) fn take_changes(&self) -> ChangeSet {
        std::mem::take(&mut *self.changes_lock())
    }

    /// Number of changes recorded so far (a savepoint's mark).
    pub(crate) fn changes_recorded(&self) -> usize {
        self.changes_lock().len()
    }

    /// Forgets the changes recorded after a savepoint rolled back to.
    pub(crate) fn changes_rolled_back_to(&self, mark: usize) {
        self.changes_lock().truncate(mark);
    }

    /// The transaction ended: tells the entity hooks and the interceptors
    /// what it wrote, and whether it committed.
    pub(crate) fn changes_ended(&self, committed: bool) {
        let set = self.take_changes();
        if set.is_empty() {
            return;
        }
        for c in &set {
            c.notify_entity(committed);
        }
        for i in &self.inner.db.interceptors.0 {
            if committed {
                i.after_commit(&set);
            } else {
                i.after_rollback(&set);
            }
        }
    }
}
