//! The unit of work's memory: the identity map and the changes registered in
//! a session, per entity type.
//!
//! Each entry holds the row as the session last read or wrote it (the
//! snapshot), its current in-session value, and its state. Registrations
//! (`add`, `update`, `delete`) only change entries; `flush` takes a plan out
//! of them, runs it, and applies the outcome back.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::model::entity::{Entity, EntityMeta};
pub(crate) use crate::model::row::Captured;
pub(crate) use crate::model::row::capture_column;

mod table;

pub(crate) use table::{AnyTable, Entry, EntryState, KeyMap, NewRow, Table};

/// How rows read from the database meet what the session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// Identity map on: a key the session holds comes back in its
    /// in-session state (pending edits win).
    Track,
    /// Identity map off: the database row comes back; clean entries take
    /// it as their new snapshot, pending edits stay pending.
    Fresh,
    /// `refresh` / `populate_existing`: the database row replaces whatever
    /// the session held, pending edits included.
    Overwrite,
    /// The rows as read, not merged (the caller merges them later).
    Raw,
}

/// What a lookup in the identity map found.
pub(crate) enum Lookup<E> {
    /// The in-session value.
    Found(E),
    /// Registered for delete: not found, without asking the database.
    Deleted,
    /// Not in the session.
    Missing,
}

/// The identity map and registered changes of a session.
pub(crate) struct Uow {
    tables: Vec<Box<dyn AnyTable>>,
    index: HashMap<TypeId, usize, foldhash::fast::RandomState>,
    seq: u64,
    /// Whether reads by key are served from the map.
    pub identity_map: bool,
    /// Most entries kept; only clean ones are evicted.
    pub limit: Option<usize>,
}

impl Clone for Uow {
    fn clone(&self) -> Self {
        Uow {
            tables: self.tables.iter().map(|t| t.clone_box()).collect(),
            index: self.index.clone(),
            seq: self.seq,
            identity_map: self.identity_map,
            limit: self.limit,
        }
    }
}

impl Uow {
    pub fn new(identity_map: bool, limit: Option<usize>) -> Self {
        Uow {
            tables: Vec::new(),
            index: HashMap::default(),
            seq: 0,
            identity_map,
            limit,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn table<E: Entity>(&mut self) -> &mut Table<E> {
        let i = match self.index.get(&TypeId::of::<E>()) {
            Some(i) => *i,
            None => {
                self.tables.push(Box::new(Table::<E> {
                    entries: KeyMap::default(),
                    new_rows: Vec::new(),
                    key_deletes: KeyMap::default(),
                    permanent: HashSet::new(),
                    marks: 0,
                }));
                self.index.insert(TypeId::of::<E>(), self.tables.len() - 1);
                self.tables.len() - 1
            }
        };
        self.tables[i]
            .as_any_mut()
            .downcast_mut::<Table<E>>()
            .expect("table of its own type")
    }

    pub fn table_ref<E: Entity>(&self) -> Option<&Table<E>> {
        let i = *self.index.get(&TypeId::of::<E>())?;
        self.tables[i].as_any().downcast_ref::<Table<E>>()
    }

    pub fn tables(&self) -> &[Box<dyn AnyTable>] {
        &self.tables
    }

    /// Whether anything is registered for the table named `table`.
    pub fn has_pending_in(&self, table: &str) -> bool {
        self.tables
            .iter()
            .any(|t| t.meta().table == table && t.has_pending())
    }

    pub fn has_pending(&self) -> bool {
        self.tables.iter().any(|t| t.has_pending())
    }

    /// Number of entries in the identity map.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }

    /// Forgets everything: entries and registrations.
    pub fn clear(&mut self) {
        self.tables.clear();
        self.index.clear();
    }

    /// Forgets the clean entries of `E`'s table and of the tables a delete
    /// of it cascades to (after a bulk write, which may have changed any).
    pub fn forget<E: Entity>(&mut self) {
        let mut tables = vec![E::META];
        let mut i = 0;
        while i < tables.len() {
            for (child, _) in tables[i].cascades() {
                if !tables.iter().any(|t| t.table == child.table) {
                    tables.push(child);
                }
            }
            i += 1;
        }
        for t in &mut self.tables {
            if tables.iter().any(|m| m.table == t.meta().table) {
                t.forget_clean();
            }
        }
    }

    /// Follows `ON DELETE CASCADE` from rows of `meta`'s table with `keys`
    /// (captured text): the session forgets the children the database
    /// deleted with them, and theirs in turn.
    pub fn cascade_deleted(&mut self, meta: &'static EntityMeta, keys: Vec<String>) {
        let mut work = vec![(meta, keys)];
        while let Some((parent, keys)) = work.pop() {
            if keys.is_empty() {
                continue;
            }
            let keys: HashSet<String> = keys.into_iter().collect();
            for (child, col) in parent.cascades() {
                for t in &mut self.tables {
                    if t.meta().table == child.table {
                        let gone = t.forget_referencing(col, &keys);
                        work.push((child, gone));
                    }
                }
            }
        }
    }

    /// Follows a soft delete of rows of `meta`'s table with `keys`
    /// (captured text) down its `on_delete = "cascade"` relations to
    /// children that have a `soft_delete` column, as the flush did in the
    /// database: the session forgets them, and theirs in turn. Children
    /// without one stay (the soft delete did nothing to them).
    pub fn cascade_soft_deleted(&mut self, meta: &'static EntityMeta, keys: Vec<String>) {
        let mut work = vec![(meta, keys)];
        while let Some((parent, keys)) = work.pop() {
            if keys.is_empty() {
                continue;
            }
            let keys: HashSet<String> = keys.into_iter().collect();
            for (child, col) in soft_cascades(parent) {
                for t in &mut self.tables {
                    if t.meta().table == child.table {
                        let gone = t.forget_referencing(col, &keys);
                        work.push((child, gone));
                    }
                }
            }
        }
    }

    /// Keeps the map under its limit by evicting clean entries.
    pub fn enforce_limit(&mut self) {
        let Some(limit) = self.limit else { return };
        let mut excess = self.len().saturating_sub(limit);
        for t in &mut self.tables {
            if excess == 0 {
                break;
            }
            excess -= t.evict_clean(excess);
        }
    }

    pub fn lookup<E: Entity>(&self, key: &E::Key) -> Lookup<E> {
        let Some(t) = self.table_ref::<E>() else {
            return Lookup::Missing;
        };
        // Deletes by key are rare: skip hashing the key for an empty map.
        if !t.key_deletes.is_empty() && t.key_deletes.contains_key(key) {
            return Lookup::Deleted;
        }
        match t.entries.get(key) {
            Some(e) if e.state == EntryState::Deleted => Lookup::Deleted,
            // A soft-deleted row (read with `with_deleted`) is not found by key.
            Some(e) if e.current.is_soft_deleted() => Lookup::Deleted,
            Some(e) => Lookup::Found(e.current.clone()),
            None => Lookup::Missing,
        }
    }

    /// Merges a row read from the database and returns what the caller
    /// sees, or `None` for a key registered for delete.
    pub fn loaded<E: Entity>(&mut self, row: E, merge: Merge) -> Option<E> {
        let seq = self.next_seq();
        let t = self.table::<E>();
        let key = row.key();
        if t.key_deletes.contains_key(&key) {
            if merge != Merge::Overwrite {
                return None;
            }
            t.key_deletes.shift_remove(&key);
        }
        match t.entries.get_mut(&key) {
            Some(e) if merge == Merge::Overwrite || e.state == EntryState::Clean => {
                e.current = row.clone();
                e.snapshot = None;
                e.state = EntryState::Clean;
                e.rev += 1;
                Some(row)
            }
            Some(e) if e.state == EntryState::Deleted => None,
            // Pending edits win over what the database says.
            Some(e) if merge == Merge::Track => Some(e.current.clone()),
            Some(_) => Some(row),
            None => {
                t.entries.insert(
                    key,
                    Entry {
                        current: row.clone(),
                        snapshot: None,
                        state: EntryState::Clean,
                        expected: None,
                        check_version: true,
                        seq,
                        rev: 0,
                    },
                );
                Some(row)
            }
        }
    }

    /// Records rows just written by an immediate insert as clean.
    pub fn inserted<E: Entity>(&mut self, rows: &[E]) {
        for row in rows {
            let seq = self.next_seq();
            self.table::<E>().entries.insert(
                row.key(),
                Entry {
                    current: row.clone(),
                    snapshot: None,
                    state: EntryState::Clean,
                    expected: None,
                    check_version: true,
                    seq,
                    rev: 0,
                },
            );
        }
    }

    /// Registers an insert.
    pub fn add<E: Entity>(&mut self, value: E) -> Result<()> {
        let seq = self.next_seq();
        let t = self.table::<E>();
        t.marks += 1;
        if E::META.auto_increment.is_some() {
            t.new_rows.push(NewRow { value, seq });
            return Ok(());
        }
        let key = value.key();
        if t.key_deletes.shift_remove(&key).is_some() {
            // A delete by key and an insert of that key become one update of
            // every column (the session never saw the old row).
            t.entries.insert(
                key,
                Entry {
                    current: value,
                    snapshot: None,
                    state: EntryState::Dirty,
                    expected: None,
                    check_version: false,
                    seq,
                    rev: 0,
                },
            );
            return Ok(());
        }
        match t.entries.get_mut(&key) {
            Some(e) if e.state == EntryState::Deleted => {
                // A delete and an insert of one key become one update (of
                // the version the deleted row had).
                let mut value = value;
                if let Some(v) = e.expected {
                    value.set_version(v.wrapping_add(1));
                }
                e.current = value;
                e.state = EntryState::Dirty;
                e.rev += 1;
                Ok(())
            }
            Some(_) => Err(Error::UniqueViolation {
                table: E::META.table.to_owned(),
                columns: E::META
                    .primary_key
                    .iter()
                    .map(|i| E::META.columns[*i].name.to_owned())
                    .collect(),
                constraint: Some(format!("pk_{}", E::META.table)),
            }),
            None => {
                t.entries.insert(
                    key,
                    Entry {
                        current: value,
                        snapshot: None,
                        state: EntryState::New,
                        expected: None,
                        check_version: true,
                        seq,
                        rev: 0,
                    },
                );
                Ok(())
            }
        }
    }

    /// Registers an update of `value`, setting in it the version and
    /// `updated_at` the flush will write. An update that changes nothing
    /// (compared with the snapshot) registers nothing.
    pub fn update<E: Entity>(&mut self, value: &mut E, now: DateTime<Utc>) -> Result<()> {
        let seq = self.next_seq();
        let t = self.table::<E>();
        t.marks += 1;
        let key = value.key();
        match t.entries.get_mut(&key) {
            Some(e) if e.state == EntryState::Deleted => Err(Error::Invalid(format!(
                "{} with key {key:?} was deleted in this session and cannot be updated",
                E::META.name
            ))),
            Some(e) if e.state == EntryState::New => {
                // Still an insert: the new values are what will be inserted.
                e.current = value.clone();
                e.rev += 1;
                Ok(())
            }
            Some(e) => {
                // The version to check is the one `value` carries, so a
                // value edited from a client's copy is checked against it;
                // a version this session bumped itself keeps the original.
                let own_bump =
                    e.state == EntryState::Dirty && e.current.version() == value.version();
                let expected = if own_bump {
                    e.expected
                } else {
                    value.version()
                };
                if let Some(snap) = e.snapshot()
                    && expected == snap.version()
                    && changed_columns(snap, value, true)?.is_empty()
                {
                    // Nothing but bookkeeping differs: no statement.
                    if let Some(v) = snap.version() {
                        value.set_version(v);
                    }
                    if let Some(snap) = e.snapshot.take() {
                        // A pending change undone: back to the snapshot.
                        e.current = snap;
                    }
                    e.state = EntryState::Clean;
                    e.rev += 1;
                    return Ok(());
                }
                if let Some(v) = expected {
                    value.set_version(v.wrapping_add(1));
                }
                value.stamp_updated(now);
                e.leave_clean(value.clone());
                e.expected = expected;
                e.check_version = true;
                e.state = EntryState::Dirty;
                e.rev += 1;
                Ok(())
            }
            None => {
                let expected = value.version();
                if let Some(v) = expected {
                    value.set_version(v.wrapping_add(1));
                }
                value.stamp_updated(now);
                t.entries.insert(
                    key,
                    Entry {
                        current: value.clone(),
                        snapshot: None,
                        state: EntryState::Dirty,
                        expected,
                        check_version: true,
                        seq,
                        rev: 0,
                    },
                );
                Ok(())
            }
        }
    }

    /// Registers a delete of the row with `key`; `value` (when given) tells
    /// the version to check. With `permanent`, a `#[persist(soft_delete)]`
    /// entity's row is removed (`DELETE`) instead of marked.
    pub fn delete<E: Entity>(&mut self, key: E::Key, value: Option<&E>, permanent: bool) {
        let seq = self.next_seq();
        let t = self.table::<E>();
        t.marks += 1;
        if permanent && E::META.soft_delete.is_some() {
            t.permanent.insert(key.clone());
        } else if !t.permanent.is_empty() {
            t.permanent.remove(&key);
        }
        match t.entries.get_mut(&key) {
            Some(e) if e.state == EntryState::New => {
                // Never written: forgetting it is the whole delete.
                t.entries.shift_remove(&key);
            }
            Some(e) => {
                if let Some(v) = value {
                    // As for updates: the version the value carries, unless
                    // it is this session's own pending bump.
                    let own_bump =
                        e.state == EntryState::Dirty && e.current.version() == v.version();
                    if !own_bump {
                        e.expected = v.version();
                    } else if e.snapshot().is_some() && e.expected.is_none() {
                        e.expected = e.snapshot().and_then(|s| s.version());
                    }
                } else if e.expected.is_none() {
                    e.expected = e.snapshot().and_then(|s| s.version());
                }
                e.check_version = value.is_some();
                if e.state == EntryState::Clean {
                    // Kept for a later `add` of the key, which becomes an
                    // update of the changed columns.
                    e.snapshot = Some(e.current.clone());
                }
                e.state = EntryState::Deleted;
                e.rev += 1;
            }
            None => match value {
                Some(v) => {
                    t.entries.insert(
                        key,
                        Entry {
                            current: v.clone(),
                            snapshot: None,
                            state: EntryState::Deleted,
                            expected: v.version(),
                            check_version: true,
                            seq,
                            rev: 0,
                        },
                    );
                }
                None => {
                    t.key_deletes.insert(key, seq);
                }
            },
        }
    }

    /// Removes `key` from the session: its entry and any pending change.
    pub fn detach<E: Entity>(&mut self, key: &E::Key) -> bool {
        let t = self.table::<E>();
        t.permanent.remove(key);
        let deleted = t.key_deletes.shift_remove(key).is_some();
        t.entries.shift_remove(key).is_some() || deleted
    }
}

/// The relations a soft delete of `meta`'s rows follows: its
/// `on_delete = "cascade"` ones to another table that has a `soft_delete`
/// column (a self-referencing cascade is not followed), with the child and
/// its foreign-key column.
pub(crate) fn soft_cascades(
    meta: &'static EntityMeta,
) -> impl Iterator<Item = (&'static EntityMeta, usize)> {
    meta.cascades()
        .filter(move |(child, _)| child.soft_delete.is_some() && child.table != meta.table)
}

/// Indexes of the non-key columns whose values differ between `old` and
/// `new`. With `ignore_bookkeeping`, the version and `updated_at` columns
/// are left out (they change because of the update, not the user).
pub(crate) fn changed_columns<E: Entity>(
    old: &E,
    new: &E,
    ignore_bookkeeping: bool,
) -> Result<Vec<usize>> {
    let meta = E::META;
    let mut out = Vec::new();
    for i in meta.update_columns() {
        if ignore_bookkeeping && (Some(i) == meta.version || Some(i) == meta.updated_at) {
            continue;
        }
        if capture_column(old, i)? != capture_column(new, i)? {
            out.push(i);
        }
    }
    Ok(out)
}
