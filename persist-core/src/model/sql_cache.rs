//! The per-entity store of SQL text. Its contents are written by the SQL
//! layer ([`crate::sql`]); the store lives with the entity's metadata so
//! that a lookup is an index into a `static`, not a map search.

use std::sync::{Arc, Mutex, OnceLock};

/// Statement shapes kept per entity and backend (the SQL layer's `Shape`).
pub(crate) const SHAPES: usize = 11;

/// Cached multi-row `INSERT` statements, by row count.
pub(crate) type InsertSlots = Mutex<Vec<(usize, Arc<str>)>>;

/// Cached `UPDATE` statements, by the set of columns they set.
pub(crate) type UpdateSlots = Mutex<Vec<(u128, bool, Arc<str>)>>;
/// Cached batched `UPDATE` statements, by the columns they set, whether
/// they check versions, and their row count.
pub(crate) type BatchUpdateSlots = Mutex<Vec<(u128, bool, usize, Arc<str>)>>;
pub(crate) const BACKENDS: usize = 3;

/// Per-entity cache of SQL text, one slot per backend and statement shape.
///
/// `#[derive(Entity)]` places one in a `static` per entity, so a lookup is an
/// index, not a map search.
#[derive(Debug)]
pub struct SqlCache {
    pub(crate) slots: [[OnceLock<Arc<str>>; SHAPES]; BACKENDS],
    pub(crate) updates: [UpdateSlots; BACKENDS],
    pub(crate) inserts: [InsertSlots; BACKENDS],
    pub(crate) batch_updates: [BatchUpdateSlots; BACKENDS],
    /// MariaDB's multi-row `INSERT … RETURNING` (MySQL's slot above has no
    /// `RETURNING`).
    pub(crate) mariadb_inserts: InsertSlots,
}

impl SqlCache {
    /// An empty cache (a `const fn`, for statics).
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        SqlCache {
            slots: [const { [const { OnceLock::new() }; SHAPES] }; BACKENDS],
            updates: [const { Mutex::new(Vec::new()) }; BACKENDS],
            inserts: [const { Mutex::new(Vec::new()) }; BACKENDS],
            batch_updates: [const { Mutex::new(Vec::new()) }; BACKENDS],
            mariadb_inserts: Mutex::new(Vec::new()),
        }
    }
}
