//! The [`Entity`] trait that `#[derive(Entity)]` implements, and its metadata.

use std::fmt::Debug;
use std::hash::Hash;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::{BoxDynError, Result};
use crate::model::SqlCache;
use crate::model::value::{Binder, Field, RowReader, SqlType};

/// A struct mapped to one table. Implement it with `#[derive(Entity)]`.
///
/// The methods are used by persist's generated and generic code; users call
/// the session and repository APIs instead.
pub trait Entity: Clone + Send + Sync + Unpin + 'static {
    /// The primary key: the key field's type, or a tuple of them for a
    /// composite key.
    type Key: Key;

    /// Table and column metadata.
    const META: &'static EntityMeta;

    /// This row's primary key.
    fn key(&self) -> Self::Key;

    /// Binds the value of column `col` (an index into `META.columns`).
    fn bind_column<B: Binder>(&self, col: usize, b: &mut B) -> Result<()>;

    /// Decodes a row whose selected columns are `META.columns`, in order,
    /// starting at index `offset`.
    fn decode_row<R: RowReader>(row: &R, offset: usize) -> Result<Self>;

    /// Stores a generated auto-increment key. No-op without one.
    fn set_generated_key(&mut self, id: i64) -> Result<()>;

    /// The optimistic-locking version, if the entity has a `version` field.
    fn version(&self) -> Option<i64>;

    /// Sets the `version` field (no-op without one).
    fn set_version(&mut self, v: i64);

    /// Sets `created_at` (if any) and `updated_at` (if any) to `now`.
    fn stamp_created(&mut self, now: DateTime<Utc>);

    /// Sets `updated_at` (if any) to `now`.
    fn stamp_updated(&mut self, now: DateTime<Utc>);

    /// Per-entity cache of SQL text for fixed statement shapes.
    fn sql_cache() -> &'static SqlCache;

    /// Whether this row is soft-deleted: its `#[persist(soft_delete)]`
    /// column holds a time. Always `false` without one.
    fn is_soft_deleted(&self) -> bool {
        false
    }

    /// Sets the `#[persist(soft_delete)]` column (no-op without one):
    /// `Some(now)` marks the row deleted, `None` restores it.
    fn set_soft_deleted(&mut self, _at: Option<DateTime<Utc>>) {}

    /// Runs the entity's [`Hooks::before_insert`] (with
    /// `#[persist(hooks)]`; otherwise nothing).
    fn run_before_insert(&mut self) -> std::result::Result<(), BoxDynError> {
        Ok(())
    }

    /// Runs the entity's [`Hooks::before_update`].
    fn run_before_update(&mut self) -> std::result::Result<(), BoxDynError> {
        Ok(())
    }

    /// Runs the entity's [`Hooks::before_delete`].
    fn run_before_delete(&self) -> std::result::Result<(), BoxDynError> {
        Ok(())
    }

    /// Runs the entity's [`Hooks::after_commit`].
    fn run_after_commit(&self, _kind: ChangeKind) {}

    /// Runs the entity's [`Hooks::after_rollback`].
    fn run_after_rollback(&self, _kind: ChangeKind) {}
}

/// Lifecycle hooks of an entity, run by the unit of work. Implement it and
/// add `#[persist(hooks)]` to the entity so that persist calls it; every
/// method has a default that does nothing.
///
/// The `before_*` hooks run at the flush, once per registered change, in
/// the order the flush writes (tables parents first; in each, inserts in
/// registration order, then updates by key; deletes after, children's
/// tables first), all of them before the flush's first statement. They may
/// change the row (`before_insert`, `before_update`: what they leave is
/// what is written, and what the session holds afterwards) and may veto the
/// change with an error: the flush then writes nothing and answers
/// [`Error::Vetoed`](crate::error::Error::Vetoed) (from `flush`, `commit`,
/// or the read whose autoflush ran it); the registered changes stay
/// registered, so the session can drop or fix them, or roll back.
///
/// `insert`, `insert_many` and `upsert` write at once and run
/// `before_insert` there. `delete_by_key` of a row the session does not
/// hold has no row to hand over and runs no hook. Bulk writes
/// (`update_all`, `delete_all`) run no per-row hook: they never load the
/// rows. Session interceptors see them
/// ([`Interceptor`](crate::session::Interceptor)).
///
/// `after_commit` and `after_rollback` are notifications, once per change
/// the transaction wrote, after the commit (or the rollback) is done; they
/// cannot run SQL or fail.
#[diagnostic::on_unimplemented(
    message = "`{Self}` declares #[persist(hooks)] but does not implement `Hooks`",
    label = "add `impl persist_core::model::Hooks for {Self}` (every method is optional)"
)]
pub trait Hooks {
    /// Before the row is inserted.
    fn before_insert(&mut self) -> std::result::Result<(), BoxDynError> {
        Ok(())
    }
    /// Before the row is updated (only when the flush has columns to send).
    fn before_update(&mut self) -> std::result::Result<(), BoxDynError> {
        Ok(())
    }
    /// Before the row is deleted (soft-deleted too).
    fn before_delete(&self) -> std::result::Result<(), BoxDynError> {
        Ok(())
    }
    /// After the transaction that wrote this change committed: the row as
    /// written, and what was done to it.
    fn after_commit(&self, _kind: ChangeKind) {}
    /// After the transaction that wrote this change rolled back.
    fn after_rollback(&self, _kind: ChangeKind) {}
}

/// What a change did to a row: what hooks, interceptors and the history
/// are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A new row.
    Insert,
    /// Columns of an existing row changed.
    Update,
    /// The row was deleted (for a soft-delete entity: its `soft_delete`
    /// column set).
    Delete,
}

impl ChangeKind {
    /// The one-letter code the history tables store: `I`, `U` or `D`.
    pub fn code(self) -> &'static str {
        match self {
            ChangeKind::Insert => "I",
            ChangeKind::Update => "U",
            ChangeKind::Delete => "D",
        }
    }

    /// The kind of a history code (`I`, `U`, `D`).
    pub fn from_code(code: &str) -> Option<ChangeKind> {
        match code {
            "I" => Some(ChangeKind::Insert),
            "U" => Some(ChangeKind::Update),
            "D" => Some(ChangeKind::Delete),
            _ => None,
        }
    }
}

/// Metadata of an entity's table.
#[derive(Debug)]
pub struct EntityMeta {
    /// The Rust type's name.
    pub name: &'static str,
    /// Table name.
    pub table: &'static str,
    /// Stored columns, in field order (skipped fields are absent).
    pub columns: &'static [ColumnMeta],
    /// Indexes into `columns` of the primary key, in key order.
    pub primary_key: &'static [usize],
    /// Index of the auto-increment column, if any.
    pub auto_increment: Option<usize>,
    /// Index of the version column, if any.
    pub version: Option<usize>,
    /// Index of the `created_at` column, if any.
    pub created_at: Option<usize>,
    /// Index of the `updated_at` column, if any.
    pub updated_at: Option<usize>,
    /// Relations declared on the entity (`has_many`, `has_one`,
    /// `many_to_many`), in declaration order. Belongs-to relations are the
    /// columns with [`ColumnMeta::references`].
    pub relations: &'static [RelationMeta],
    /// Row TTL in the shared cache when the entity opts in with
    /// `#[persist(cache(ttl = "60s"))]` (see
    /// [`DbBuilder::cache_entity`](crate::db::DbBuilder::cache_entity) for the
    /// run-time way).
    pub cache_ttl: Option<std::time::Duration>,
    /// Index of the `#[persist(soft_delete)]` column, if any: a nullable
    /// timestamp that `delete` sets instead of removing the row, and that
    /// every read filters on.
    pub soft_delete: Option<usize>,
    /// `#[persist(audit)]`: every change is kept in the history table
    /// `<table>_history`, under a revision of its transaction.
    pub audit: bool,
    /// `#[persist(hooks)]`: the entity implements [`Hooks`].
    pub hooks: bool,
}

/// Metadata of one column.
#[derive(Debug)]
pub struct ColumnMeta {
    /// Column name in the database.
    pub name: &'static str,
    /// Rust field name.
    pub field: &'static str,
    /// Storage class.
    pub sql_type: SqlType,
    /// Whether `NULL` is allowed.
    pub nullable: bool,
    /// Part of the primary key.
    pub primary_key: bool,
    /// Has its own unique constraint (`uq_<table>_<column>`).
    pub unique: bool,
    /// Has an index (`ix_<table>_<column>`).
    pub index: bool,
    /// `#[persist(unique_live)]`: unique among the rows not soft-deleted, by
    /// a partial unique index `uq_<table>_<column>` (`… WHERE <soft_delete
    /// column> IS NULL`; PostgreSQL and SQLite).
    pub unique_live: bool,
    /// SQL default expression, if any.
    pub default: Option<&'static str>,
    /// The referenced entity, for a foreign key (`fk_<table>_<column>`).
    pub references: Option<fn() -> &'static EntityMeta>,
}

impl EntityMeta {
    /// Whether this entity has an auto-increment key.
    pub fn has_auto_key(&self) -> bool {
        self.auto_increment.is_some()
    }

    /// The columns an insert writes: all but an auto-increment key.
    pub fn insert_columns(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.columns.len()).filter(move |i| Some(*i) != self.auto_increment)
    }

    /// The columns an update sets: all but the primary key.
    pub fn update_columns(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.columns.len()).filter(move |i| !self.columns[*i].primary_key)
    }

    /// Index of a column by its database name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether `other` describes the same entity (consts holding metadata
    /// may be duplicated in memory, so addresses do not say).
    pub fn same_as(&self, other: &EntityMeta) -> bool {
        self.table == other.table && self.name == other.name
    }

    /// The `ON DELETE` action declared for this entity's foreign-key column
    /// `col`: by the referenced entity's relation whose `by` is that column.
    pub fn on_delete(&self, col: usize) -> OnDelete {
        let Some(parent) = self.columns.get(col).and_then(|c| c.references) else {
            return OnDelete::NoAction;
        };
        parent()
            .relations
            .iter()
            .find(|r| r.by == col && r.fk_owner().same_as(self))
            .map_or(OnDelete::NoAction, |r| r.on_delete)
    }

    /// The relations of this entity whose deletes cascade, with the child
    /// entity (the join entity for a many-to-many) and its foreign-key column:
    /// what a session's delete must also remove from what it holds.
    pub fn cascades(&self) -> impl Iterator<Item = (&'static EntityMeta, usize)> + '_ {
        self.relations
            .iter()
            .filter(|r| r.on_delete == OnDelete::Cascade)
            .map(|r| (r.fk_owner(), r.by))
    }
}

/// The kind of a declared relation; see [`RelationMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelationKind {
    /// `has_many(Child, by = "fk")`: any number of children whose `fk`
    /// column holds this entity's key.
    HasMany,
    /// `has_one(Child, by = "fk")`: at most one such child.
    HasOne,
    /// `many_to_many(Other, through = "Join", by = "fk", to = "other_fk")`:
    /// the `Other` rows linked by rows of `Join`.
    ManyToMany,
}

/// What deleting a parent row does to the rows that reference it: the
/// foreign key's `ON DELETE` action, declared with `on_delete = "…"` on a
/// `has_many`, `has_one` or `many_to_many` (where it applies to the join rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnDelete {
    /// No action (the default): deleting a referenced parent is a
    /// [`ForeignKeyViolation`](crate::error::Error::ForeignKeyViolation).
    #[default]
    NoAction,
    /// `ON DELETE CASCADE`: the children are deleted with the parent.
    Cascade,
    /// `ON DELETE SET NULL`: the children's foreign key becomes `NULL`
    /// (the column must be nullable).
    SetNull,
}

/// A function returning an entity's metadata: how one entity's metadata
/// names another's without a cycle between constants.
pub type MetaFn = fn() -> &'static EntityMeta;

/// A relation declared on an entity with a container attribute.
#[derive(Debug)]
pub struct RelationMeta {
    /// Has-many, has-one or many-to-many.
    pub kind: RelationKind,
    /// The related entity.
    pub target: MetaFn,
    /// Index of the foreign-key column that references the declaring
    /// entity: a column of `target` (has-many, has-one) or of the join
    /// entity (many-to-many).
    pub by: usize,
    /// For many-to-many: the join entity and the index of its column that
    /// references `target`.
    pub through: Option<(MetaFn, usize)>,
    /// The `ON DELETE` action of the foreign key `by`.
    pub on_delete: OnDelete,
}

impl RelationMeta {
    /// The entity whose column `by` is: the join entity of a many-to-many,
    /// else the target.
    pub fn fk_owner(&self) -> &'static EntityMeta {
        match self.through {
            Some((through, _)) => through(),
            None => (self.target)(),
        }
    }
}

/// A relation from `Self` to `C` declared on `Self` (`has_many`, `has_one`
/// or `many_to_many`); implemented by `#[derive(Entity)]`, used by the
/// loaders ([`Session::load_related`](crate::session::Session::load_related)).
pub trait Related<C>: Entity {
    /// The relation's metadata (an element of `Self::META.relations`).
    const RELATION: &'static RelationMeta;
}

/// `Self` references `P` through a foreign-key column (`references = "P"`);
/// implemented by `#[derive(Entity)]` when exactly one field references `P`,
/// used by [`Session::load_parents`](crate::session::Session::load_parents).
pub trait BelongsTo<P>: Entity {
    /// Index of the foreign-key column in `Self::META.columns`.
    const COLUMN: usize;
}

/// A primary-key value: a [`Field`] type, or a tuple of them for composite keys.
///
/// Keys are ordered: a flush writes updates and deletes in key order, so two
/// sessions touching the same rows lock them in the same order.
pub trait Key: Clone + Send + Sync + Debug + Eq + Hash + Ord + 'static {
    /// Number of key columns.
    const ARITY: usize;
    /// Binds the key columns in order.
    fn bind_key<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError>;
    /// The key columns as dynamic values, in order.
    fn to_values(&self) -> Result<Vec<sea_query::Value>, BoxDynError>;
    /// Reads the key from columns `offset..offset + ARITY` of a row.
    fn decode_key<R: RowReader>(r: &R, offset: usize) -> Result<Self, BoxDynError>;
}

impl<T: Field + Clone + Debug + Eq + Hash + Ord> Key for T {
    const ARITY: usize = 1;
    fn bind_key<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        self.bind(b)
    }
    fn to_values(&self) -> Result<Vec<sea_query::Value>, BoxDynError> {
        Ok(vec![self.to_value()?])
    }
    fn decode_key<R: RowReader>(r: &R, offset: usize) -> Result<Self, BoxDynError> {
        T::decode(r, offset)
    }
}

macro_rules! tuple_key {
    ($n:literal; $($t:ident $i:tt),+) => {
        impl<$($t: Field + Clone + Debug + Eq + Hash + Ord),+> Key for ($($t,)+) {
            const ARITY: usize = $n;
            fn bind_key<BB: Binder>(&self, b: &mut BB) -> Result<(), BoxDynError> {
                $(self.$i.bind(b)?;)+
                Ok(())
            }
            fn to_values(&self) -> Result<Vec<sea_query::Value>, BoxDynError> {
                Ok(vec![$(self.$i.to_value()?),+])
            }
            fn decode_key<R: RowReader>(r: &R, offset: usize) -> Result<Self, BoxDynError> {
                Ok(($($t::decode(r, offset + $i)?,)+))
            }
        }
    };
}

tuple_key!(2; A 0, B 1);
tuple_key!(3; A 0, B 1, C 2);
tuple_key!(4; A 0, B 1, C 2, D 3);

/// A list of entity types, as a tuple: `db.create_tables::<(Customer, Account)>()`.
pub trait EntityList {
    /// Metadata of each entity, in the order written.
    fn metas() -> Vec<&'static EntityMeta>;
}

impl<E: Entity> EntityList for E {
    fn metas() -> Vec<&'static EntityMeta> {
        vec![E::META]
    }
}

macro_rules! tuple_list {
    ($($t:ident),+) => {
        impl<$($t: Entity),+> EntityList for ($($t,)+) {
            fn metas() -> Vec<&'static EntityMeta> {
                vec![$($t::META),+]
            }
        }
    };
}

tuple_list!(A);
tuple_list!(A, B);
tuple_list!(A, B, C);
tuple_list!(A, B, C, D);
tuple_list!(A, B, C, D, E);
tuple_list!(A, B, C, D, E, F);
tuple_list!(A, B, C, D, E, F, G);
tuple_list!(A, B, C, D, E, F, G, H);
tuple_list!(A, B, C, D, E, F, G, H, I);
tuple_list!(A, B, C, D, E, F, G, H, I, J);
tuple_list!(A, B, C, D, E, F, G, H, I, J, K);
tuple_list!(A, B, C, D, E, F, G, H, I, J, K, L);

/// An integer field usable as `#[persist(version)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a version column",
    label = "#[persist(version)] needs an integer field"
)]
pub trait VersionField: Copy {
    /// The version as `i64`.
    fn get(self) -> i64;
    /// Sets the version from `i64`, wrapping at the type's bounds: the
    /// version after the maximum is the minimum (0 for unsigned types).
    /// Versions are only compared for equality, so a wrapped version still
    /// tells a concurrent change; one that stopped at the maximum would not.
    fn set(&mut self, v: i64);
}

macro_rules! version_field {
    ($($t:ty),+) => {$(
        impl VersionField for $t {
            fn get(self) -> i64 { self as i64 }
            // Truncation is the wrap: `MAX as i64 + 1` becomes `MIN`.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            fn set(&mut self, v: i64) { *self = v as $t }
        }
    )+};
}

version_field!(i16, i32, i64, u8, u16, u32);

/// A field usable as `#[persist(created_at)]` / `#[persist(updated_at)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a timestamp column",
    label = "created_at/updated_at need DateTime<Utc>, NaiveDateTime or an Option of them"
)]
pub trait TimestampField {
    /// Sets the field to `now`.
    fn stamp(&mut self, now: DateTime<Utc>);
}

impl TimestampField for DateTime<Utc> {
    fn stamp(&mut self, now: DateTime<Utc>) {
        *self = now;
    }
}

impl TimestampField for NaiveDateTime {
    fn stamp(&mut self, now: DateTime<Utc>) {
        *self = now.naive_utc();
    }
}

impl<T: TimestampField + Default> TimestampField for Option<T> {
    fn stamp(&mut self, now: DateTime<Utc>) {
        self.get_or_insert_with(T::default).stamp(now);
    }
}

/// A field usable as `#[persist(soft_delete)]`: a nullable timestamp.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a soft-delete column",
    label = "#[persist(soft_delete)] needs Option<DateTime<Utc>> or Option<NaiveDateTime>"
)]
pub trait SoftDeleteField {
    /// Whether the row is marked deleted.
    fn is_set(&self) -> bool;
    /// Marks the row deleted at `at`, or restores it with `None`.
    fn set(&mut self, at: Option<DateTime<Utc>>);
}

impl SoftDeleteField for Option<DateTime<Utc>> {
    fn is_set(&self) -> bool {
        self.is_some()
    }
    fn set(&mut self, at: Option<DateTime<Utc>>) {
        *self = at;
    }
}

impl SoftDeleteField for Option<NaiveDateTime> {
    fn is_set(&self) -> bool {
        self.is_some()
    }
    fn set(&mut self, at: Option<DateTime<Utc>>) {
        *self = at.map(|t| t.naive_utc());
    }
}

/// An integer field usable as `#[persist(auto_increment)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an auto-increment key",
    label = "#[persist(auto_increment)] needs an integer field"
)]
pub trait AutoKeyField {
    /// Stores a generated key.
    fn set_generated(&mut self, id: i64) -> Result<(), BoxDynError>;
    /// Whether the value is the "not yet generated" zero.
    fn is_unset(&self) -> bool;
}

macro_rules! auto_key_field {
    ($($t:ty),+) => {$(
        impl AutoKeyField for $t {
            fn set_generated(&mut self, id: i64) -> Result<(), BoxDynError> {
                *self = <$t>::try_from(id).map_err(|_| crate::error::msg(format!(
                    "generated key {id} does not fit in {}", stringify!($t))))?;
                Ok(())
            }
            fn is_unset(&self) -> bool { *self == 0 }
        }
    )+};
}

auto_key_field!(i16, i32, i64, u16, u32, u64);

#[cfg(test)]
mod tests {
    use super::VersionField;

    fn bumped<V: VersionField>(mut v: V) -> V {
        let next = v.get().wrapping_add(1);
        v.set(next);
        v
    }

    #[test]
    fn versions_wrap_at_their_bounds() {
        assert_eq!(bumped(i16::MAX - 1), i16::MAX);
        assert_eq!(bumped(i16::MAX), i16::MIN);
        assert_eq!(bumped(i16::MIN), i16::MIN + 1);
        assert_eq!(bumped(i32::MAX), i32::MIN);
        assert_eq!(bumped(i64::MAX), i64::MIN);
        assert_eq!(bumped(u8::MAX), 0);
        assert_eq!(bumped(u16::MAX), 0);
        assert_eq!(bumped(u32::MAX), 0);
        assert_eq!(bumped(7u8), 8);
    }
}
