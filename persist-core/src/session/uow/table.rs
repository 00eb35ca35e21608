//! One entity type's part of the unit of work: its identity-map entries
//! and pending rows.

use std::any::Any;
use std::collections::HashSet;

use indexmap::IndexMap;

use crate::error::Result;
use crate::model::entity::{Entity, EntityMeta};
pub(crate) use crate::model::row::capture_column;

/// The state of an identity-map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryState {
    /// As in the database.
    Clean,
    /// Registered for insert (key known).
    New,
    /// Registered for update.
    Dirty,
    /// Registered for delete.
    Deleted,
}

#[derive(Clone)]
pub(crate) struct Entry<E> {
    pub current: E,
    /// The row as last read from or written to the database, for an entry
    /// that is not clean; `None` when the session never loaded it (an update
    /// then writes every column). A clean entry's snapshot is `current`
    /// (not stored twice: loading 10,000 rows clones each once, not twice);
    /// read it through [`Entry::snapshot`].
    pub snapshot: Option<E>,
    pub state: EntryState,
    /// The version an update or delete checks when there is no snapshot.
    pub expected: Option<i64>,
    /// Whether a delete checks the version (`delete_by_key` does not).
    pub check_version: bool,
    /// Registration order (inserts keep it).
    pub seq: u64,
    /// Bumped on every registration, so a flush can tell whether the entry
    /// changed again while it ran.
    pub rev: u64,
}

impl<E> Entry<E> {
    /// The row as last read from or written to the database.
    pub fn snapshot(&self) -> Option<&E> {
        if self.state == EntryState::Clean {
            Some(&self.current)
        } else {
            self.snapshot.as_ref()
        }
    }

    /// Leaves the clean state: the snapshot is kept apart from `current`
    /// from now on, and `current` becomes `value`.
    pub(super) fn leave_clean(&mut self, value: E) {
        if self.state == EntryState::Clean {
            self.snapshot = Some(std::mem::replace(&mut self.current, value));
        } else {
            self.current = value;
        }
    }
}

/// A map keyed by primary keys. Hashing the key is most of the
/// cost of an identity-map hit: foldhash, seeded per map, instead of SipHash.
pub(crate) type KeyMap<K, V> = IndexMap<K, V, foldhash::fast::RandomState>;

/// A pending insert of a row whose key the database generates.
#[derive(Clone)]
pub(crate) struct NewRow<E> {
    pub value: E,
    pub seq: u64,
}

/// What the session holds of one entity type.
pub(crate) struct Table<E: Entity> {
    pub entries: KeyMap<E::Key, Entry<E>>,
    pub new_rows: Vec<NewRow<E>>,
    /// Deletes by key of rows the session holds no value of (with their seq).
    pub key_deletes: KeyMap<E::Key, u64>,
    /// Keys registered for delete with `delete_permanently` (a
    /// `#[persist(soft_delete)]` entity's other deletes only mark the row).
    pub permanent: HashSet<E::Key>,
    /// Registrations since the entries were last counted: zero means no
    /// entry is pending, so a read's autoflush check need not scan a large
    /// identity map. Registering bumps it; a flush recounts it.
    pub marks: usize,
}

impl<E: Entity> Clone for Table<E> {
    fn clone(&self) -> Self {
        Table {
            entries: self.entries.clone(),
            new_rows: self.new_rows.clone(),
            key_deletes: self.key_deletes.clone(),
            permanent: self.permanent.clone(),
            marks: self.marks,
        }
    }
}

/// Type-erased access to a [`Table`].
pub(crate) trait AnyTable: Send + Sync {
    fn meta(&self) -> &'static EntityMeta;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn clone_box(&self) -> Box<dyn AnyTable>;
    fn has_pending(&self) -> bool;
    fn len(&self) -> usize;
    /// Evicts up to `n` clean entries, oldest first; returns how many went.
    fn evict_clean(&mut self, n: usize) -> usize;
    /// Takes the pending work out as a plan (entries stay, marked by `rev`).
    fn plan(&self) -> Result<Option<Box<dyn crate::session::flush::PlanOps>>>;
    /// Forgets the entries whose column `col` holds one of `keys` (captured
    /// text) and returns their own keys: the rows a database cascade deleted.
    fn forget_referencing(&mut self, col: usize, keys: &HashSet<String>) -> Vec<String>;
    /// Forgets every clean entry.
    fn forget_clean(&mut self);
}

impl<E: Entity> AnyTable for Table<E> {
    fn meta(&self) -> &'static EntityMeta {
        E::META
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn clone_box(&self) -> Box<dyn AnyTable> {
        Box::new(self.clone())
    }
    fn has_pending(&self) -> bool {
        !self.new_rows.is_empty()
            || !self.key_deletes.is_empty()
            || (self.marks > 0 && self.entries.values().any(|e| e.state != EntryState::Clean))
    }
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn evict_clean(&mut self, n: usize) -> usize {
        let before = self.entries.len();
        let mut left = n;
        self.entries.retain(|_, e| {
            if left > 0 && e.state == EntryState::Clean {
                left -= 1;
                false
            } else {
                true
            }
        });
        before - self.entries.len()
    }
    fn plan(&self) -> Result<Option<Box<dyn crate::session::flush::PlanOps>>> {
        crate::session::flush::plan_table(self)
    }
    fn forget_referencing(&mut self, col: usize, keys: &HashSet<String>) -> Vec<String> {
        let mut gone = Vec::new();
        self.entries.retain(|_, e| {
            let row = e.snapshot().unwrap_or(&e.current);
            let hit = capture_column(row, col)
                .ok()
                .and_then(|c| crate::session::flush::captured_text(&c))
                .is_some_and(|v| keys.contains(&v));
            if hit
                && E::META.primary_key.len() == 1
                && let Ok(Some(k)) = capture_column(row, E::META.primary_key[0])
                    .map(|c| crate::session::flush::captured_text(&c))
            {
                gone.push(k);
            }
            !hit
        });
        gone
    }
    fn forget_clean(&mut self) {
        self.entries.retain(|_, e| e.state != EntryState::Clean);
    }
}
