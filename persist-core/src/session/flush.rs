//! The flush: registered changes written in one ordered, batched pass.
//!
//! Order: tables by their foreign keys, parents first; in each, inserts in
//! registration order (self-referencing rows after the rows they point to),
//! then updates by key. Deletes follow, children's tables first, by key
//! (rows referenced by other deleted rows last).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_core::future::BoxFuture;

use crate::backend::{AnyConn, Driver, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{ChangeKind, Entity, EntityMeta, Key, OnDelete};
use crate::session::audit::Rows;
use crate::session::changes::{Change, Origin, vetoed};
use crate::session::uow::{
    AnyTable, Captured, EntryState, Table, Uow, capture_column, changed_columns,
};
use crate::session::{Session, audit, bind_key, insert_rows, soft_delete};
use crate::sql::Backend;
use crate::sql::statements::{self as sql, Shape};

/// The pending work of one table, taken out of the unit of work.
pub(crate) trait PlanOps: Send {
    fn meta(&self) -> &'static EntityMeta;
    fn has_inserts(&self) -> bool;
    fn has_deletes(&self) -> bool;
    fn run_inserts<'a>(
        &'a mut self,
        s: &'a Session,
        conn: &'a mut AnyConn,
    ) -> BoxFuture<'a, Result<()>>;
    fn run_updates<'a>(
        &'a mut self,
        s: &'a Session,
        conn: &'a mut AnyConn,
    ) -> BoxFuture<'a, Result<()>>;
    fn run_deletes<'a>(
        &'a mut self,
        s: &'a Session,
        conn: &'a mut AnyConn,
    ) -> BoxFuture<'a, Result<()>>;
    /// Records the history of what the plan wrote or deletes, at `stage`
    /// (see [`audit::Stage`]).
    fn record_history<'a>(
        &'a self,
        s: &'a Session,
        conn: &'a mut AnyConn,
        stage: audit::Stage,
    ) -> BoxFuture<'a, Result<()>>;
    /// Marks what was written as clean in the unit of work.
    fn apply(self: Box<Self>, uow: &mut Uow);
    /// The keys deleted (as captured text; single-column keys only), for
    /// following `ON DELETE CASCADE` in the identity map.
    fn deleted_keys(&self) -> Vec<String>;
    /// The keys (`Debug` text) of the rows updated or deleted, and whether
    /// any were deleted: what the shared cache must forget.
    fn written_keys(&self) -> (Vec<String>, bool);
    /// The inserted rows (key text, encoded row), for the shared cache to
    /// take after commit.
    fn inserted_rows(&self) -> Vec<(String, Vec<u8>)>;
    /// Runs the entity's `before_insert` / `before_update` hooks on the
    /// rows to write (or, with `deletes`, `before_delete` on the rows to
    /// delete), in write order. A hook's error is the flush's veto.
    fn run_hooks(&mut self, deletes: bool) -> Result<()>;
    /// Appends the plan's changes (inserts and updates, or with `deletes`
    /// the deletes and the cascades they set off), in write order. With
    /// `take`, the rows are moved into the changes instead of cloned: the
    /// plan is spent (a commit's flush, after its bookkeeping).
    fn describe(&mut self, deletes: bool, take: bool, out: &mut Vec<Change>) -> Result<()>;
}

struct Insert<E: Entity> {
    /// `None` for a row whose key the database generates.
    key: Option<E::Key>,
    seq: u64,
    rev: u64,
    value: E,
}

struct Update<E: Entity> {
    key: E::Key,
    rev: u64,
    value: E,
    snapshot: Option<E>,
    expected: Option<i64>,
}

struct Delete<E: Entity> {
    key: E::Key,
    /// `None` for a delete by key of a row the session never held.
    rev: Option<u64>,
    seq: u64,
    expected: Option<i64>,
    /// The foreign-key value of a self-referencing table, for ordering.
    parent: Option<String>,
    /// The row as the session holds it (`None` for a delete by key of a
    /// row it never held): what `before_delete` and interceptors see.
    value: Option<E>,
    /// A `DELETE` even for a `#[persist(soft_delete)]` entity
    /// (`delete_permanently`).
    permanent: bool,
}

/// A row to insert, once the plan is ordered: its value lives in
/// [`TablePlan::values`], at the same index, so the batch binds it in place.
struct Inserted<E: Entity> {
    key: Option<E::Key>,
    seq: u64,
    rev: u64,
}

struct TablePlan<E: Entity> {
    inserts: Vec<Inserted<E>>,
    /// The values of `inserts`, in order; generated keys are written here.
    values: Vec<E>,
    updates: Vec<Update<E>>,
    deletes: Vec<Delete<E>>,
}

/// The column of `meta` that references its own table, if any.
fn self_reference(meta: &EntityMeta) -> Option<usize> {
    if meta.primary_key.len() != 1 {
        return None;
    }
    meta.columns
        .iter()
        .position(|c| c.references.is_some_and(|r| r().table == meta.table))
}

pub(crate) fn captured_text(c: &Captured) -> Option<String> {
    match c {
        Captured::Null(_) => None,
        other => Some(format!("{other:?}")),
    }
}

/// Takes the pending work of `t` as a plan (or `None` when there is none).
pub(crate) fn plan_table<E: Entity>(t: &Table<E>) -> Result<Option<Box<dyn PlanOps>>> {
    let meta = E::META;
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    for (key, e) in &t.entries {
        match e.state {
            EntryState::Clean => {}
            EntryState::New => inserts.push(Insert {
                key: Some(key.clone()),
                seq: e.seq,
                rev: e.rev,
                value: e.current.clone(),
            }),
            EntryState::Dirty => updates.push(Update {
                key: key.clone(),
                rev: e.rev,
                value: e.current.clone(),
                snapshot: e.snapshot.clone(),
                expected: if e.check_version { e.expected } else { None },
            }),
            EntryState::Deleted => deletes.push(Delete {
                key: key.clone(),
                rev: Some(e.rev),
                seq: e.seq,
                expected: if e.check_version { e.expected } else { None },
                parent: None,
                value: Some(e.snapshot().unwrap_or(&e.current).clone()),
                permanent: t.permanent.contains(key),
            }),
        }
    }
    for r in &t.new_rows {
        inserts.push(Insert {
            key: None,
            seq: r.seq,
            rev: 0,
            value: r.value.clone(),
        });
    }
    for (key, seq) in &t.key_deletes {
        deletes.push(Delete {
            key: key.clone(),
            rev: None,
            seq: *seq,
            expected: None,
            parent: None,
            value: None,
            permanent: t.permanent.contains(key),
        });
    }
    if inserts.is_empty() && updates.is_empty() && deletes.is_empty() {
        return Ok(None);
    }
    inserts.sort_by_key(|i| i.seq);
    updates.sort_by(|a, b| a.key.cmp(&b.key));
    deletes.sort_by(|a: &Delete<E>, b: &Delete<E>| a.key.cmp(&b.key));
    if let Some(fk) = self_reference(meta) {
        inserts = order_self_referencing_inserts(meta, fk, inserts)?;
        for d in &mut deletes {
            if let Some(e) = t.entries.get(&d.key) {
                let row = e.snapshot().unwrap_or(&e.current);
                d.parent = captured_text(&capture_column(row, fk)?);
            }
        }
        deletes = order_self_referencing_deletes::<E>(meta, deletes)?;
    }
    let (inserts, values) = inserts
        .into_iter()
        .map(|i| {
            let row = Inserted {
                key: i.key,
                seq: i.seq,
                rev: i.rev,
            };
            (row, i.value)
        })
        .unzip();
    Ok(Some(Box::new(TablePlan {
        inserts,
        values,
        updates,
        deletes,
    })))
}

impl<E: Entity> TablePlan<E> {
    /// The keys soft-deleted (as captured text; single-column keys only),
    /// for following the soft cascade in the identity map.
    fn soft_deleted_keys(&self) -> Vec<String> {
        if E::META.soft_delete.is_none() || E::META.primary_key.len() != 1 {
            return Vec::new();
        }
        self.deletes
            .iter()
            .filter(|d| !d.permanent)
            .filter_map(|d| {
                d.key
                    .to_values()
                    .ok()
                    .and_then(|v| v.first().map(value_text))
            })
            .collect()
    }
}

fn key_text<E: Entity>(row: &E) -> Result<Option<String>> {
    let pk = E::META.primary_key[0];
    Ok(captured_text(&capture_column(row, pk)?))
}

/// Inserts rows referenced by other pending rows of the same table first,
/// otherwise keeping registration order.
fn order_self_referencing_inserts<E: Entity>(
    meta: &EntityMeta,
    fk: usize,
    rows: Vec<Insert<E>>,
) -> Result<Vec<Insert<E>>> {
    let mut keys: HashMap<String, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if r.key.is_some()
            && let Some(k) = key_text(&r.value)?
        {
            keys.insert(k, i);
        }
    }
    let mut parent: Vec<Vec<usize>> = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let p = captured_text(&capture_column(&r.value, fk)?).and_then(|v| keys.get(&v).copied());
        parent.push(p.filter(|p| *p != i).into_iter().collect());
    }
    let (order, cycle) = dependency_order(&parent);
    if !cycle.is_empty() {
        let keys: Vec<String> = cycle
            .iter()
            .map(|i| format!("{:?}", rows[*i].key))
            .collect();
        return Err(Error::Invalid(format!(
            "rows of {} reference each other in a cycle ({}); insert one with a NULL {} first",
            meta.table,
            keys.join(", "),
            meta.columns[fk].name
        )));
    }
    Ok(in_order(rows, order))
}

/// Deletes rows referenced by other deleted rows of the same table last.
fn order_self_referencing_deletes<E: Entity>(
    meta: &EntityMeta,
    rows: Vec<Delete<E>>,
) -> Result<Vec<Delete<E>>> {
    let by_key: HashMap<String, usize> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.key
                .to_values()
                .ok()
                .and_then(|v| v.first().map(|v| (value_text(v), i)))
        })
        .collect();
    // Reverse dependency: a row waits for the rows that reference it.
    let mut waits_for: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    for (i, d) in rows.iter().enumerate() {
        if let Some(p) = d.parent.as_ref().and_then(|p| by_key.get(p)).copied()
            && p != i
        {
            waits_for[p].push(i);
        }
    }
    let (order, cycle) = dependency_order(&waits_for);
    if !cycle.is_empty() {
        return Err(Error::Invalid(format!(
            "rows of {} to delete reference each other in a cycle",
            meta.table
        )));
    }
    Ok(in_order(rows, order))
}

/// The text a key column captures as, from a dynamic key value.
fn value_text(v: &sea_query::Value) -> String {
    use sea_query::Value as V;
    let c = match v {
        V::SmallInt(Some(x)) => Captured::I16(*x),
        V::Int(Some(x)) => Captured::I32(*x),
        V::BigInt(Some(x)) => Captured::I64(*x),
        V::String(Some(x)) => Captured::Str(x.clone()),
        V::Uuid(Some(x)) => Captured::Uuid(*x),
        other => return format!("{other:?}"),
    };
    format!("{c:?}")
}

/// Orders items so each comes after the items it waits for, keeping the
/// given order otherwise: in passes, each taking (in index order) every
/// item whose waits are done. Answers the order, and the items left over
/// because they wait for each other in a cycle (empty if none). The one
/// ordering of the flush: tables by foreign key, and the rows of a
/// self-referencing table.
fn dependency_order(waits_for: &[Vec<usize>]) -> (Vec<usize>, Vec<usize>) {
    let mut done = vec![false; waits_for.len()];
    let mut order = Vec::with_capacity(waits_for.len());
    while order.len() < waits_for.len() {
        let before = order.len();
        for (i, waits) in waits_for.iter().enumerate() {
            if !done[i] && waits.iter().all(|w| done[*w]) {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            let left = (0..waits_for.len()).filter(|i| !done[*i]).collect();
            return (order, left);
        }
    }
    (order, Vec::new())
}

/// `items` rearranged as `order` (a permutation of their indexes) says.
fn in_order<T>(items: Vec<T>, order: Vec<usize>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

impl<E: Entity> PlanOps for TablePlan<E> {
    fn meta(&self) -> &'static EntityMeta {
        E::META
    }

    fn has_inserts(&self) -> bool {
        !self.inserts.is_empty()
    }

    fn has_deletes(&self) -> bool {
        !self.deletes.is_empty()
    }

    fn run_inserts<'a>(
        &'a mut self,
        s: &'a Session,
        conn: &'a mut AnyConn,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Batches of a few fixed sizes, so that the statements (persist's
            // SQL text and the driver's prepared statements) are reused.
            let max = sql::max_insert_rows(s.backend(), E::META);
            let mut rest = &mut self.values[..];
            for n in sql::insert_batches(rest.len(), max) {
                let (part, tail) = std::mem::take(&mut rest).split_at_mut(n);
                insert_rows(s, conn, part).await?;
                rest = tail;
            }
            Ok(())
        })
    }

    fn run_updates<'a>(
        &'a mut self,
        s: &'a Session,
        conn: &'a mut AnyConn,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let meta = E::META;
            let b = s.backend();
            // Updates setting the same columns (and checking versions alike)
            // go out together, in key order within each group.
            let mut groups: Vec<UpdateGroup<'_, E>> = Vec::new();
            for u in &self.updates {
                let cols = match &u.snapshot {
                    Some(snap) => changed_columns(snap, &u.value, false)?,
                    None => meta.update_columns().collect(),
                };
                if cols.is_empty() {
                    continue;
                }
                let versioned = meta.version.is_some() && u.expected.is_some();
                match groups
                    .iter_mut()
                    .find(|(c, v, _)| *v == versioned && *c == cols)
                {
                    Some((.., rows)) => rows.push(u),
                    None => groups.push((cols, versioned, vec![u])),
                }
            }
            // MySQL's batched form joins on a single key column.
            let batchable = b != Backend::MySql || E::Key::ARITY == 1;
            for (cols, versioned, rows) in &groups {
                if rows.len() == 1 || !batchable {
                    for u in rows {
                        update_one(s, conn, cols, *versioned, u).await?;
                    }
                    continue;
                }
                let max = sql::max_update_rows(b, meta, cols.len(), *versioned);
                let mut rest = &rows[..];
                for n in sql::update_batches(rest.len(), max) {
                    let (part, tail) = rest.split_at(n);
                    if n == 1 {
                        update_one(s, conn, cols, *versioned, part[0]).await?;
                    } else {
                        update_batch(s, conn, cols, *versioned, part).await?;
                    }
                    rest = tail;
                }
            }
            Ok(())
        })
    }

    fn run_deletes<'a>(
        &'a mut self,
        s: &'a Session,
        conn: &'a mut AnyConn,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let meta = E::META;
            let b = s.backend();
            // A `#[persist(soft_delete)]` row is marked, not deleted; the
            // live children it cascades to are marked after it.
            let now = soft_delete::now();
            let mut marked = Vec::new();
            for d in &self.deletes {
                let versioned = meta.version.is_some() && d.expected.is_some();
                if meta.soft_delete.is_some() && !d.permanent {
                    let expected = d.expected.filter(|_| versioned);
                    let n = soft_delete::soft_delete_by_key::<E>(s, conn, &d.key, expected, now)
                        .await?;
                    if versioned && n == 0 {
                        return Err(stale::<E>(&d.key));
                    }
                    if n > 0 && E::Key::ARITY == 1 {
                        marked.extend(d.key.to_values().map_err(|e| Error::encode("key", e))?);
                    }
                    continue;
                }
                let shape = if versioned {
                    Shape::DeleteByKeyVersioned
                } else {
                    Shape::DeleteByKey
                };
                let sql: Arc<str> =
                    E::sql_cache().get(b, shape, || sql::delete_by_key(b, meta, versioned));
                let expected = d.expected.filter(|_| versioned);
                let done = execute_keyed::<E>(s, conn, &sql, &[], None, &d.key, expected).await?;
                if versioned && done.rows_affected == 0 {
                    return Err(stale::<E>(&d.key));
                }
            }
            soft_delete::cascade_by_keys(s, conn, meta, marked, now).await
        })
    }

    fn record_history<'a>(
        &'a self,
        s: &'a Session,
        conn: &'a mut AnyConn,
        stage: audit::Stage,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let meta = E::META;
            if !audit::touches_history(meta) {
                return Ok(());
            }
            let keys = |k: &E::Key| audit::key_values(meta, k);
            match stage {
                audit::Stage::Written if meta.audit => {
                    let inserted = self.values.iter().map(|v| keys(&v.key()));
                    let inserted = inserted.collect::<Result<Vec<_>>>()?;
                    audit::record(s, conn, meta, ChangeKind::Insert, Rows::Keys(inserted)).await?;
                    let mut updated = Vec::new();
                    for u in &self.updates {
                        // Updates with nothing to send were skipped.
                        let sent = match &u.snapshot {
                            Some(snap) => !changed_columns(snap, &u.value, false)?.is_empty(),
                            None => true,
                        };
                        if sent {
                            updated.push(keys(&u.key)?);
                        }
                    }
                    audit::record(s, conn, meta, ChangeKind::Update, Rows::Keys(updated)).await
                }
                audit::Stage::Written => Ok(()),
                // A soft delete is an UPDATE: the values to keep are the
                // ones it sets.
                _ if (stage == audit::Stage::AfterDeletes) != meta.soft_delete.is_some() => Ok(()),
                _ => {
                    let deleted = self.deletes.iter().map(|d| keys(&d.key));
                    let deleted = deleted.collect::<Result<Vec<_>>>()?;
                    if meta.soft_delete.is_some() {
                        audit::record(s, conn, meta, ChangeKind::Delete, Rows::Keys(deleted)).await
                    } else {
                        audit::record_deletes(s, conn, meta, deleted).await
                    }
                }
            }
        })
    }

    fn written_keys(&self) -> (Vec<String>, bool) {
        let mut keys: Vec<String> = Vec::new();
        keys.extend(self.updates.iter().map(|u| format!("{:?}", u.key)));
        keys.extend(self.deletes.iter().map(|d| format!("{:?}", d.key)));
        (keys, !self.deletes.is_empty())
    }

    fn inserted_rows(&self) -> Vec<(String, Vec<u8>)> {
        self.values
            .iter()
            .filter_map(|v| {
                let bytes = crate::cache::encode_row(v).ok()?;
                Some((format!("{:?}", v.key()), bytes))
            })
            .collect()
    }

    fn run_hooks(&mut self, deletes: bool) -> Result<()> {
        let name = E::META.name;
        if deletes {
            for v in self.deletes.iter().filter_map(|d| d.value.as_ref()) {
                v.run_before_delete()
                    .map_err(|e| vetoed("before_delete", name, e))?;
            }
            return Ok(());
        }
        for v in &mut self.values {
            v.run_before_insert()
                .map_err(|e| vetoed("before_insert", name, e))?;
        }
        for u in &mut self.updates {
            // Only a row with columns to send is updated.
            let changes = match &u.snapshot {
                Some(snap) => !changed_columns(snap, &u.value, false)?.is_empty(),
                None => true,
            };
            if changes {
                u.value
                    .run_before_update()
                    .map_err(|e| vetoed("before_update", name, e))?;
            }
        }
        Ok(())
    }

    fn describe(&mut self, deletes: bool, take: bool, out: &mut Vec<Change>) -> Result<()> {
        let meta = E::META;
        if deletes {
            let soft = meta.soft_delete.is_some();
            let hard_too = self.deletes.iter().any(|d| !soft || d.permanent);
            let soft_too = soft && self.deletes.iter().any(|d| !d.permanent);
            let rows: Vec<(E::Key, Option<E>)> = if take {
                std::mem::take(&mut self.deletes)
                    .into_iter()
                    .map(|d| (d.key, d.value))
                    .collect()
            } else {
                self.deletes
                    .iter()
                    .map(|d| (d.key.clone(), d.value.clone()))
                    .collect()
            };
            for (key, value) in rows {
                out.push(Change::row::<E>(
                    ChangeKind::Delete,
                    Origin::Registered,
                    &key,
                    Vec::new(),
                    value,
                ));
            }
            if hard_too {
                describe_cascades(meta, false, out);
            }
            if soft_too {
                describe_cascades(meta, true, out);
            }
            return Ok(());
        }
        let values = if take {
            std::mem::take(&mut self.values)
        } else {
            self.values.clone()
        };
        for v in values {
            let key = v.key();
            out.push(Change::row::<E>(
                ChangeKind::Insert,
                Origin::Registered,
                &key,
                Vec::new(),
                Some(v),
            ));
        }
        let names = |cols: Vec<usize>| -> Vec<&'static str> {
            cols.into_iter().map(|i| meta.columns[i].name).collect()
        };
        let updates: Vec<(E::Key, Option<E>, E)> = if take {
            std::mem::take(&mut self.updates)
                .into_iter()
                .map(|u| (u.key, u.snapshot, u.value))
                .collect()
        } else {
            self.updates
                .iter()
                .map(|u| (u.key.clone(), u.snapshot.clone(), u.value.clone()))
                .collect()
        };
        for (key, snapshot, value) in updates {
            let cols = match &snapshot {
                Some(snap) => changed_columns(snap, &value, false)?,
                None => meta.update_columns().collect(),
            };
            if cols.is_empty() {
                continue;
            }
            out.push(Change::row::<E>(
                ChangeKind::Update,
                Origin::Registered,
                &key,
                names(cols),
                Some(value),
            ));
        }
        Ok(())
    }

    fn deleted_keys(&self) -> Vec<String> {
        if E::META.primary_key.len() != 1 {
            return Vec::new();
        }
        // Soft deletes leave the row: the database cascades nothing.
        let soft = E::META.soft_delete.is_some();
        self.deletes
            .iter()
            .filter(|d| !soft || d.permanent)
            .filter_map(|d| {
                d.key
                    .to_values()
                    .ok()
                    .and_then(|v| v.first().map(value_text))
            })
            .collect()
    }

    fn apply(self: Box<Self>, uow: &mut Uow) {
        let soft_deleted = self.soft_deleted_keys();
        let t = uow.table::<E>();
        // The rows with generated keys leave `new_rows` (rows added while the
        // flush ran stay): one pass, not one per row.
        let mut written: Vec<u64> = self
            .inserts
            .iter()
            .filter(|i| i.key.is_none())
            .map(|i| i.seq)
            .collect();
        if !written.is_empty() {
            written.sort_unstable();
            t.new_rows
                .retain(|r| written.binary_search(&r.seq).is_err());
            t.entries.reserve(written.len());
        }
        for (ins, value) in self.inserts.into_iter().zip(self.values) {
            match ins.key {
                None => {
                    let key = value.key();
                    t.entries.insert(
                        key,
                        crate::session::uow::Entry {
                            current: value,
                            snapshot: None,
                            state: EntryState::Clean,
                            expected: None,
                            check_version: true,
                            seq: ins.seq,
                            rev: 0,
                        },
                    );
                }
                Some(key) => {
                    if let Some(e) = t.entries.get_mut(&key) {
                        mark_written(e, ins.rev, value);
                    }
                }
            }
        }
        for u in self.updates {
            if let Some(e) = t.entries.get_mut(&u.key) {
                mark_written(e, u.rev, u.value);
            }
        }
        for d in self.deletes {
            match d.rev {
                Some(rev) => {
                    if t.entries
                        .get(&d.key)
                        .is_some_and(|e| e.rev == rev && e.state == EntryState::Deleted)
                    {
                        t.entries.shift_remove(&d.key);
                    }
                }
                None => {
                    if t.key_deletes.get(&d.key) == Some(&d.seq) {
                        t.key_deletes.shift_remove(&d.key);
                    }
                }
            }
        }
        // What is still pending: entries registered again while the flush ran.
        t.marks = t
            .entries
            .values()
            .filter(|e| e.state != EntryState::Clean)
            .count();
        t.permanent
            .retain(|k| t.entries.contains_key(k) || t.key_deletes.contains_key(k));
        uow.cascade_soft_deleted(E::META, soft_deleted);
    }
}

/// Runs a keyed `UPDATE` or `DELETE`: binds columns `cols` of `value`, then
/// the key, then the version to check (if any).
async fn execute_keyed<E: Entity>(
    s: &Session,
    conn: &mut AnyConn,
    sql: &Arc<str>,
    cols: &[usize],
    value: Option<&E>,
    key: &E::Key,
    expected: Option<i64>,
) -> Result<crate::backend::Done> {
    dispatch!(conn, |c, DB| {
        let mut args = <DB as crate::backend::Driver>::Args::default();
        if let Some(v) = value {
            for i in cols {
                v.bind_column(*i, &mut args)?;
            }
        }
        bind_key::<E, _>(key, &mut args)?;
        if let Some(version) = expected {
            crate::model::value::Binder::i64(&mut args, version)
                .map_err(|e| Error::encode("version", e))?;
        }
        s.run(Some(E::META), sql, DB::execute(c, sql.clone(), args))
            .await
    })
}

/// Updates of one table that set the same columns (and check versions
/// alike): the columns, whether versions are checked, the rows in key order.
type UpdateGroup<'a, E> = (Vec<usize>, bool, Vec<&'a Update<E>>);

/// One keyed `UPDATE` of `u`'s changed columns `cols`.
async fn update_one<E: Entity>(
    s: &Session,
    conn: &mut AnyConn,
    cols: &[usize],
    versioned: bool,
    u: &Update<E>,
) -> Result<()> {
    let b = s.backend();
    let sql = E::sql_cache().update(b, cols, versioned, || {
        sql::update_columns(b, E::META, cols, versioned)
    });
    let expected = u.expected.filter(|_| versioned);
    let done = execute_keyed(s, conn, &sql, cols, Some(&u.value), &u.key, expected).await?;
    if done.rows_affected == 0 {
        return Err(stale::<E>(&u.key));
    }
    Ok(())
}

/// One `UPDATE` of several rows setting the same columns `cols`, each to
/// its own values ([`sql::update_batch`]). A row whose version no longer
/// matches (or that is gone) is [`Error::Stale`] with its own key, the
/// first such in key order: the keys of the rows written come back
/// (`RETURNING`) and the missing ones are stale. On MySQL, which has no
/// `UPDATE … RETURNING`, the rows are locked and their versions read first.
async fn update_batch<E: Entity>(
    s: &Session,
    conn: &mut AnyConn,
    cols: &[usize],
    versioned: bool,
    rows: &[&Update<E>],
) -> Result<()> {
    let meta = E::META;
    let b = s.backend();
    let n = rows.len();
    let sql = E::sql_cache().update_batch(b, cols, versioned, n, || {
        sql::update_batch(b, meta, cols, versioned, n)
    });
    let key_error = |e| Error::encode("key", e);
    if b == Backend::MySql {
        let lock = sql::lock_versions(b, meta, versioned, n);
        let lock: Arc<str> = Arc::from(lock);
        let found = dispatch!(&mut *conn, |c, DB| {
            let mut args = <DB as crate::backend::Driver>::Args::default();
            for u in rows {
                u.key.bind_key(&mut args).map_err(key_error)?;
            }
            s.run(
                Some(meta),
                &lock,
                DB::fetch_all(
                    c,
                    lock.clone(),
                    args,
                    &KeyVersion::<E>(versioned, PhantomData),
                ),
            )
            .await?
        });
        let found: HashMap<E::Key, Option<i64>> = found.into_iter().collect();
        for u in rows {
            match found.get(&u.key) {
                Some(v) if !versioned || *v == u.expected => {}
                _ => return Err(stale::<E>(&u.key)),
            }
        }
        dispatch!(&mut *conn, |c, DB| {
            let mut args = <DB as crate::backend::Driver>::Args::default();
            for &col in cols {
                for u in rows {
                    u.key.bind_key(&mut args).map_err(key_error)?;
                    u.value.bind_column(col, &mut args)?;
                }
            }
            for u in rows {
                u.key.bind_key(&mut args).map_err(key_error)?;
            }
            s.run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                .await?;
        });
        return Ok(());
    }
    let written = dispatch!(&mut *conn, |c, DB| {
        let mut args = <DB as crate::backend::Driver>::Args::default();
        for u in rows {
            u.key.bind_key(&mut args).map_err(key_error)?;
            for &col in cols {
                u.value.bind_column(col, &mut args)?;
            }
            if versioned {
                let version = u.expected.unwrap_or_default();
                crate::model::value::Binder::i64(&mut args, version)
                    .map_err(|e| Error::encode("version", e))?;
            }
        }
        s.run(
            Some(meta),
            &sql,
            DB::fetch_all(c, sql.clone(), args, &KeyVersion::<E>(false, PhantomData)),
        )
        .await?
    });
    if written.len() < n {
        let written: std::collections::HashSet<E::Key> =
            written.into_iter().map(|(k, _)| k).collect();
        if let Some(u) = rows.iter().find(|u| !written.contains(&u.key)) {
            return Err(stale::<E>(&u.key));
        }
    }
    Ok(())
}

/// Reads a row's key and, when the flag says so, the version after it.
struct KeyVersion<E>(bool, PhantomData<fn() -> E>);

impl<E: Entity> crate::backend::RowMap for KeyVersion<E> {
    type Out = (E::Key, Option<i64>);
    fn map<R: crate::model::value::RowReader + crate::backend::RowColumns>(
        &self,
        row: &R,
    ) -> Result<Self::Out> {
        let key = E::Key::decode_key(row, 0).map_err(|e| Error::decode("key", e))?;
        let version = if self.0 {
            row.i64(E::Key::ARITY)
                .map_err(|e| Error::decode("version", e))?
        } else {
            None
        };
        Ok((key, version))
    }
}

/// Records that `written` is now in the database; an entry registered
/// again while the flush ran keeps its newer change.
fn mark_written<E: Entity>(e: &mut crate::session::uow::Entry<E>, rev: u64, written: E) {
    if e.rev == rev {
        e.current = written;
        e.snapshot = None;
        e.state = EntryState::Clean;
    } else {
        if matches!(e.state, EntryState::New | EntryState::Clean) {
            // Registered again while the flush ran (an undone update leaves
            // it clean): what the session holds differs from what was
            // written, so it stays to be written.
            e.state = EntryState::Dirty;
        }
        e.snapshot = Some(written);
    }
}

/// Appends what deleting rows of `meta` does to the rows referencing them:
/// the database deletes them (`on_delete = "cascade"`) or nulls their
/// foreign key (`"set_null"`). A soft delete (`soft`) marks the live
/// children that have a `soft_delete` column, and their children in turn
/// (deleted, as the change set says), and touches no other.
pub(crate) fn describe_cascades(meta: &'static EntityMeta, soft: bool, out: &mut Vec<Change>) {
    if soft {
        describe_soft_cascades(meta, &mut vec![meta.table], out);
        return;
    }
    for r in meta.relations {
        let child = r.fk_owner();
        let column = child.columns[r.by].name;
        let origin = Origin::Cascade {
            parent: meta.table,
            column,
        };
        match r.on_delete {
            OnDelete::Cascade => {
                out.push(Change::rows(child, ChangeKind::Delete, origin, Vec::new()))
            }
            OnDelete::SetNull => out.push(Change::rows(
                child,
                ChangeKind::Update,
                origin,
                vec![column],
            )),
            _ => {}
        }
    }
}

fn describe_soft_cascades(
    meta: &'static EntityMeta,
    path: &mut Vec<&'static str>,
    out: &mut Vec<Change>,
) {
    for (child, col) in crate::session::uow::soft_cascades(meta) {
        if path.contains(&child.table) {
            continue;
        }
        out.push(Change::rows(
            child,
            ChangeKind::Delete,
            Origin::Cascade {
                parent: meta.table,
                column: child.columns[col].name,
            },
            Vec::new(),
        ));
        if child.primary_key.len() == 1 {
            path.push(child.table);
            describe_soft_cascades(child, path, out);
            path.pop();
        }
    }
}

fn stale<E: Entity>(key: &E::Key) -> Error {
    Error::Stale {
        table: E::META.table.to_owned(),
        key: format!("{key:?}"),
    }
}

/// Orders plans parents first by their tables' foreign keys.
pub(crate) fn order_plans(plans: Vec<Box<dyn PlanOps>>) -> Result<Vec<Box<dyn PlanOps>>> {
    let tables: Vec<&'static str> = plans.iter().map(|p| p.meta().table).collect();
    let parents: Vec<Vec<usize>> = plans
        .iter()
        .map(|p| {
            let m = p.meta();
            m.columns
                .iter()
                .filter_map(|c| c.references)
                .map(|r| r().table)
                .filter(|t| *t != m.table)
                .filter_map(|t| tables.iter().position(|x| *x == t))
                .collect()
        })
        .collect();
    let (mut order, stuck) = dependency_order(&parents);
    if stuck
        .iter()
        .any(|i| plans[*i].has_inserts() || plans[*i].has_deletes())
    {
        let names: Vec<&str> = stuck.iter().map(|i| tables[*i]).collect();
        return Err(Error::Invalid(format!(
            "cannot order the flush: foreign keys form a cycle among {}",
            names.join(", ")
        )));
    }
    // Only updates in a cycle: any order is safe for them.
    order.extend(stuck);
    Ok(in_order(plans, order))
}

/// Builds the plans of every table with pending work.
pub(crate) fn plans(uow: &Uow) -> Result<Vec<Box<dyn PlanOps>>> {
    let mut out = Vec::new();
    for t in uow.tables() {
        let t: &dyn AnyTable = t.as_ref();
        if t.has_pending()
            && let Some(p) = t.plan()?
        {
            out.push(p);
        }
    }
    order_plans(out)
}
