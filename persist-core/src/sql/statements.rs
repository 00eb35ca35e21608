//! SQL text of fixed statement shapes, built once per entity and backend.

use std::sync::Arc;

use crate::model::SqlCache;
use crate::model::sql_cache::{InsertSlots, SHAPES};
use crate::sql::Backend;

/// The fixed statement shapes whose SQL is cached per entity and backend
/// (one slot each in [`SqlCache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Shape {
    SelectAll,
    /// `query().all()` with no filter, order, limit or lock.
    SelectPlain,
    FindByKey,
    InsertOne,
    DeleteByKey,
    DeleteByKeyVersioned,
    Count,
    ExistsByKey,
    /// `delete` of a `#[persist(soft_delete)]` entity: an `UPDATE` setting
    /// the column.
    SoftDeleteByKey,
    SoftDeleteByKeyVersioned,
    /// [`Shape::FindByKey`] that finds a soft-deleted row too.
    FindByKeyWithDeleted,
}

const _: () = assert!(Shape::FindByKeyWithDeleted as usize + 1 == SHAPES);
const _: () = assert!(Backend::MySql as usize + 1 == crate::model::sql_cache::BACKENDS);

/// Most rows one multi-row `INSERT` carries (fewer when the bind limit says
/// so). Fewer, larger statements are faster (10,000 rows of two columns: one
/// statement instead of ten took a flush from 54 to 44 ms on SQLite).
pub(crate) const MAX_INSERT_ROWS: usize = 10_000;

/// Multi-row `INSERT` statements kept per entity and backend, by row count:
/// room for every size [`insert_batches`] uses.
const INSERT_SIZES_KEPT: usize = 32;

/// Batches up to this many rows go out as one statement of their exact
/// size; larger ones are cut into the sizes of [`BATCH_SIZES`].
const EXACT_BATCH_ROWS: usize = 20;

/// The sizes larger batches are cut into: the 1-2-5 series, so that the
/// round numbers programs batch in (100, 1,000, 10,000 rows) go out as one
/// statement, and any count as at most three statements a decade.
const BATCH_SIZES: [usize; 8] = [20, 50, 100, 200, 500, 1_000, 2_000, 5_000];

/// Most rows one multi-row `INSERT` of `meta` carries on `backend`: the
/// bind limit over the insert columns, at most [`MAX_INSERT_ROWS`].
pub(crate) fn max_insert_rows(backend: Backend, meta: &EntityMeta) -> usize {
    let cols = meta.insert_columns().count().max(1);
    (backend.max_binds() / cols).clamp(1, MAX_INSERT_ROWS)
}

/// The sizes of the multi-row `INSERT`s that write `rows` rows, at most
/// `max` a statement: as many statements of `max` rows as fit, then the
/// largest of [`BATCH_SIZES`] that fit, then the exact remainder once it is
/// at most [`EXACT_BATCH_ROWS`]. So a table's flushes use a few dozen
/// statement texts whatever their row counts, and the prepared statements
/// of the driver's cache are reused instead of evicted one size at a time.
pub(crate) fn insert_batches(rows: usize, max: usize) -> impl Iterator<Item = usize> {
    let max = max.max(1);
    let mut left = rows;
    std::iter::from_fn(move || {
        let n = if left >= max {
            max
        } else if left > EXACT_BATCH_ROWS {
            BATCH_SIZES
                .iter()
                .rev()
                .copied()
                .find(|n| *n <= left)
                .unwrap_or(left)
        } else {
            left
        };
        left -= n;
        (n > 0).then_some(n)
    })
}

impl SqlCache {
    /// The multi-row `INSERT` of `rows` rows. The sizes a program uses
    /// recur (batches of the maximum size, and its usual remainders), so the
    /// last few sizes are kept.
    pub(crate) fn insert(
        &self,
        backend: Backend,
        rows: usize,
        build: impl FnOnce() -> String,
    ) -> Arc<str> {
        if rows == 1 {
            return self.get(backend, Shape::InsertOne, build);
        }
        kept_insert(&self.inserts[backend as usize], rows, build)
    }

    /// The multi-row `INSERT … RETURNING` of `rows` rows for MariaDB
    /// ([`insert_returning_mariadb`]), kept as [`SqlCache::insert`] keeps.
    pub(crate) fn insert_mariadb(&self, rows: usize, build: impl FnOnce() -> String) -> Arc<str> {
        kept_insert(&self.mariadb_inserts, rows, build)
    }

    /// The `UPDATE` setting exactly `cols` (entities of up to 128 columns
    /// are cached; wider ones build the statement each time).
    pub(crate) fn update(
        &self,
        backend: Backend,
        cols: &[usize],
        versioned: bool,
        build: impl FnOnce() -> String,
    ) -> Arc<str> {
        if cols.iter().any(|c| *c >= 128) {
            return Arc::from(build());
        }
        let mask = cols.iter().fold(0u128, |m, c| m | (1 << c));
        let mut slots = self.updates[backend as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, sql)) = slots.iter().find(|(m, v, _)| *m == mask && *v == versioned) {
            return sql.clone();
        }
        let sql: Arc<str> = Arc::from(build());
        slots.push((mask, versioned, sql.clone()));
        sql
    }

    /// The batched `UPDATE` of `rows` rows setting exactly `cols`
    /// ([`update_batch`]); the last few shapes are kept (entities of up to
    /// 128 columns).
    pub(crate) fn update_batch(
        &self,
        backend: Backend,
        cols: &[usize],
        versioned: bool,
        rows: usize,
        build: impl FnOnce() -> String,
    ) -> Arc<str> {
        if cols.iter().any(|c| *c >= 128) {
            return Arc::from(build());
        }
        let mask = cols.iter().fold(0u128, |m, c| m | (1 << c));
        let mut slots = self.batch_updates[backend as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((.., sql)) = slots
            .iter()
            .find(|(m, v, n, _)| *m == mask && *v == versioned && *n == rows)
        {
            return sql.clone();
        }
        let sql: Arc<str> = Arc::from(build());
        if slots.len() >= INSERT_SIZES_KEPT {
            slots.remove(0);
        }
        slots.push((mask, versioned, rows, sql.clone()));
        sql
    }

    pub(crate) fn get(
        &self,
        backend: Backend,
        shape: Shape,
        build: impl FnOnce() -> String,
    ) -> Arc<str> {
        self.slots[backend as usize][shape as usize]
            .get_or_init(|| Arc::from(build()))
            .clone()
    }
}

/// The kept statement of `rows` rows in `slots`, built on a miss (the
/// least recently used size makes room).
fn kept_insert(slots: &InsertSlots, rows: usize, build: impl FnOnce() -> String) -> Arc<str> {
    let mut kept = slots.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = kept.iter().position(|(n, _)| *n == rows) {
        let hit = kept.remove(i);
        let sql = hit.1.clone();
        kept.push(hit);
        return sql;
    }
    let sql: Arc<str> = Arc::from(build());
    if kept.len() == INSERT_SIZES_KEPT {
        kept.remove(0);
    }
    kept.push((rows, sql.clone()));
    sql
}

use crate::model::entity::EntityMeta;

/// Writes a comma-separated list of quoted column names.
fn column_list(b: Backend, meta: &EntityMeta, cols: impl Iterator<Item = usize>, out: &mut String) {
    for (n, i) in cols.enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&b.quote(meta.columns[i].name));
    }
}

/// `WHERE k1 = ? AND k2 = ?` over the primary key; returns the next placeholder number.
fn where_key(b: Backend, meta: &EntityMeta, mut n: usize, out: &mut String) -> usize {
    out.push_str(" WHERE ");
    for (j, &i) in meta.primary_key.iter().enumerate() {
        if j > 0 {
            out.push_str(" AND ");
        }
        out.push_str(&b.quote(meta.columns[i].name));
        out.push_str(" = ");
        b.placeholder(n, out);
        n += 1;
    }
    n
}

/// ` <joiner> "deleted_at" IS NULL` for an entity with a
/// `#[persist(soft_delete)]` column (reads see live rows only); nothing
/// without one.
fn live_only(b: Backend, meta: &EntityMeta, joiner: &str, out: &mut String) {
    if let Some(d) = meta.soft_delete {
        out.push_str(joiner);
        out.push_str(&b.quote(meta.columns[d].name));
        out.push_str(" IS NULL");
    }
}

/// Every column of the live rows (no order).
fn select_columns(b: Backend, meta: &EntityMeta) -> String {
    let mut s = String::from("SELECT ");
    column_list(b, meta, 0..meta.columns.len(), &mut s);
    s.push_str(" FROM ");
    s.push_str(&b.quote(meta.table));
    s
}

pub(crate) fn select_all(b: Backend, meta: &EntityMeta) -> String {
    let mut s = select_columns(b, meta);
    live_only(b, meta, " WHERE ", &mut s);
    s
}

pub(crate) fn find_by_key(b: Backend, meta: &EntityMeta) -> String {
    let mut s = select_columns(b, meta);
    where_key(b, meta, 1, &mut s);
    live_only(b, meta, " AND ", &mut s);
    s
}

/// [`find_by_key`] without the soft-delete condition.
pub(crate) fn find_by_key_with_deleted(b: Backend, meta: &EntityMeta) -> String {
    let mut s = select_columns(b, meta);
    where_key(b, meta, 1, &mut s);
    s
}

pub(crate) fn exists_by_key(b: Backend, meta: &EntityMeta) -> String {
    let mut s = String::from("SELECT 1 FROM ");
    s.push_str(&b.quote(meta.table));
    where_key(b, meta, 1, &mut s);
    live_only(b, meta, " AND ", &mut s);
    s
}

pub(crate) fn count(b: Backend, meta: &EntityMeta) -> String {
    let mut s = format!("SELECT COUNT(*) FROM {}", b.quote(meta.table));
    live_only(b, meta, " WHERE ", &mut s);
    s
}

/// `INSERT INTO t (cols) VALUES (…), (…)` for `rows` rows, with `RETURNING`
/// of the auto-increment key where the backend has it.
pub(crate) fn insert(b: Backend, meta: &EntityMeta, rows: usize) -> String {
    let cols: Vec<usize> = meta.insert_columns().collect();
    let mut s = String::from("INSERT INTO ");
    s.push_str(&b.quote(meta.table));
    if cols.is_empty() {
        // Only an auto-increment key: every value comes from the database.
        s.push_str(if b == Backend::MySql {
            " () VALUES ()"
        } else {
            " DEFAULT VALUES"
        });
    } else {
        s.push_str(" (");
        column_list(b, meta, cols.iter().copied(), &mut s);
        s.push_str(") VALUES ");
        let mut n = 1;
        for r in 0..rows {
            if r > 0 {
                s.push_str(", ");
            }
            s.push('(');
            for j in 0..cols.len() {
                if j > 0 {
                    s.push_str(", ");
                }
                b.placeholder(n, &mut s);
                n += 1;
            }
            s.push(')');
        }
    }
    returning_key(b, meta, &mut s);
    s
}

/// MariaDB (10.5+): [`insert`] with `RETURNING` the generated key, which
/// MySQL lacks; the keys are read, not computed from `LAST_INSERT_ID()` and
/// a step the session may have changed.
pub(crate) fn insert_returning_mariadb(meta: &EntityMeta, rows: usize) -> String {
    let b = Backend::MySql;
    let mut s = insert(b, meta, rows);
    if let Some(auto) = meta.auto_increment {
        s.push_str(" RETURNING ");
        s.push_str(&b.quote(meta.columns[auto].name));
    }
    s
}

fn returning_key(b: Backend, meta: &EntityMeta, s: &mut String) {
    if let (Some(auto), true) = (meta.auto_increment, b.has_returning()) {
        s.push_str(" RETURNING ");
        s.push_str(&b.quote(meta.columns[auto].name));
    }
}

/// `UPDATE t SET c = ?, … WHERE key [AND version = ?]` over `cols`.
pub(crate) fn update_columns(
    b: Backend,
    meta: &EntityMeta,
    cols: &[usize],
    versioned: bool,
) -> String {
    let mut s = String::from("UPDATE ");
    s.push_str(&b.quote(meta.table));
    s.push_str(" SET ");
    let mut n = 1;
    for (j, i) in cols.iter().copied().enumerate() {
        if j > 0 {
            s.push_str(", ");
        }
        s.push_str(&b.quote(meta.columns[i].name));
        s.push_str(" = ");
        b.placeholder(n, &mut s);
        n += 1;
    }
    let n = where_key(b, meta, n, &mut s);
    if versioned {
        version_check(b, meta, n, &mut s);
    }
    s
}

/// Most rows one batched `UPDATE` carries (fewer when the bind limit says
/// so). On MySQL the statement is a `CASE` per column, which the server
/// evaluates row by row, so its batches are smaller.
const MAX_UPDATE_ROWS: usize = 5_000;
const MAX_UPDATE_ROWS_MYSQL: usize = 200;

/// Most rows one batched `UPDATE` of `meta` setting `cols` columns carries
/// on `backend` ([`update_batch`]): the bind limit over the binds a row takes.
pub(crate) fn max_update_rows(
    backend: Backend,
    meta: &EntityMeta,
    cols: usize,
    versioned: bool,
) -> usize {
    let keys = meta.primary_key.len();
    let (per_row, cap) = match backend {
        // Each column's `CASE` names the key again; the `IN` list once more.
        Backend::MySql => (cols * (keys + 1) + keys, MAX_UPDATE_ROWS_MYSQL),
        _ => (keys + cols + usize::from(versioned), MAX_UPDATE_ROWS),
    };
    (backend.max_binds() / per_row.max(1)).clamp(1, cap)
}

/// The sizes of the batched `UPDATE`s of `rows` rows, at most `max` a
/// statement (as [`insert_batches`] cuts inserts, so the texts recur).
pub(crate) fn update_batches(rows: usize, max: usize) -> impl Iterator<Item = usize> {
    insert_batches(rows, max)
}

/// Names of the columns of the row list a batched `UPDATE` joins: the key
/// columns, the columns set, the version expected. Prefixed, so that they
/// cannot collide with the table's own.
fn batch_column(kind: &str, j: usize) -> String {
    format!("persist_{kind}{j}")
}

/// One `UPDATE` of `rows` rows of `meta`, each setting `cols` to its own
/// values (and, when `versioned`, only where its version is still the one
/// read), answering the keys of the rows it changed.
///
/// - PostgreSQL: `UPDATE t SET c = v.c … FROM (VALUES (…), …) AS v(…)
///   WHERE t.k = v.k [AND t.version = v.version] RETURNING t.k`. Binds per
///   row: the key, the columns, the version.
/// - SQLite: the same join with the rows in a `WITH v(…) AS (VALUES …)`
///   (SQLite names no columns of a `VALUES` in `FROM`).
/// - MySQL/MariaDB (single-column keys; neither has `UPDATE … RETURNING`):
///   `UPDATE t SET c = CASE k WHEN ? THEN ? … END, … WHERE k IN (…)`. Binds:
///   per column, each row's key and value; then each row's key. The rows
///   are locked and their versions checked first ([`lock_versions`]).
pub(crate) fn update_batch(
    b: Backend,
    meta: &EntityMeta,
    cols: &[usize],
    versioned: bool,
    rows: usize,
) -> String {
    let t = b.quote(meta.table);
    let v = b.quote("persist_v");
    let keys = &meta.primary_key;
    let mut s = String::new();
    if b == Backend::MySql {
        let k = b.quote(meta.columns[keys[0]].name);
        s.push_str("UPDATE ");
        s.push_str(&t);
        s.push_str(" SET ");
        for (j, &c) in cols.iter().enumerate() {
            if j > 0 {
                s.push_str(", ");
            }
            s.push_str(&b.quote(meta.columns[c].name));
            s.push_str(" = CASE ");
            s.push_str(&k);
            for _ in 0..rows {
                s.push_str(" WHEN ? THEN ?");
            }
            s.push_str(" END");
        }
        s.push_str(" WHERE ");
        s.push_str(&k);
        s.push_str(" IN (");
        push_marks(rows, &mut s);
        s.push(')');
        return s;
    }
    let per_row = keys.len() + cols.len() + usize::from(versioned);
    let mut values = String::from("VALUES ");
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            values.push_str(", ");
        }
        values.push('(');
        for j in 0..per_row {
            if j > 0 {
                values.push_str(", ");
            }
            b.placeholder(n, &mut values);
            n += 1;
        }
        values.push(')');
    }
    let mut names: Vec<String> = (0..keys.len()).map(|j| batch_column("k", j)).collect();
    names.extend((0..cols.len()).map(|j| batch_column("c", j)));
    if versioned {
        names.push(batch_column("version", 0));
    }
    let names = names
        .iter()
        .map(|c| b.quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    if b == Backend::Sqlite {
        s.push_str("WITH ");
        s.push_str(&v);
        s.push('(');
        s.push_str(&names);
        s.push_str(") AS (");
        s.push_str(&values);
        s.push_str(") ");
    }
    s.push_str("UPDATE ");
    s.push_str(&t);
    s.push_str(" SET ");
    for (j, &c) in cols.iter().enumerate() {
        if j > 0 {
            s.push_str(", ");
        }
        s.push_str(&b.quote(meta.columns[c].name));
        s.push_str(" = ");
        s.push_str(&v);
        s.push('.');
        s.push_str(&b.quote(&batch_column("c", j)));
    }
    s.push_str(" FROM ");
    if b == Backend::Sqlite {
        s.push_str(&v);
    } else {
        s.push('(');
        s.push_str(&values);
        s.push_str(") AS ");
        s.push_str(&v);
        s.push('(');
        s.push_str(&names);
        s.push(')');
    }
    s.push_str(" WHERE ");
    let on = |s: &mut String, col: usize, name: String| {
        s.push_str(&t);
        s.push('.');
        s.push_str(&b.quote(meta.columns[col].name));
        s.push_str(" = ");
        s.push_str(&v);
        s.push('.');
        s.push_str(&b.quote(&name));
    };
    for (j, &k) in keys.iter().enumerate() {
        if j > 0 {
            s.push_str(" AND ");
        }
        on(&mut s, k, batch_column("k", j));
    }
    if let (true, Some(ver)) = (versioned, meta.version) {
        s.push_str(" AND ");
        on(&mut s, ver, batch_column("version", 0));
    }
    // SQLite's `RETURNING` sees only the table updated, unqualified.
    s.push_str(" RETURNING ");
    for (j, &k) in keys.iter().enumerate() {
        if j > 0 {
            s.push_str(", ");
        }
        if b != Backend::Sqlite {
            s.push_str(&t);
            s.push('.');
        }
        s.push_str(&b.quote(meta.columns[k].name));
    }
    s
}

/// `SELECT k[, CAST(version AS SIGNED)] FROM t WHERE k IN (?, …) FOR UPDATE`
/// (MySQL/MariaDB, single-column keys): locks the rows a batched `UPDATE`
/// is about to write and reads their versions, so that the stale ones are
/// known by key before anything is written.
pub(crate) fn lock_versions(b: Backend, meta: &EntityMeta, versioned: bool, rows: usize) -> String {
    let mut s = String::from("SELECT ");
    s.push_str(&b.quote(meta.columns[meta.primary_key[0]].name));
    if let (true, Some(v)) = (versioned, meta.version) {
        s.push_str(", CAST(");
        s.push_str(&b.quote(meta.columns[v].name));
        s.push_str(" AS SIGNED)");
    }
    s.push_str(" FROM ");
    s.push_str(&b.quote(meta.table));
    s.push_str(" WHERE ");
    s.push_str(&b.quote(meta.columns[meta.primary_key[0]].name));
    s.push_str(" IN (");
    push_marks(rows, &mut s);
    s.push_str(") FOR UPDATE");
    s
}

/// `?, ?, …`: `n` MySQL/SQLite placeholders.
fn push_marks(n: usize, s: &mut String) {
    for r in 0..n {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
}

fn version_check(b: Backend, meta: &EntityMeta, n: usize, s: &mut String) {
    if let Some(v) = meta.version {
        s.push_str(" AND ");
        s.push_str(&b.quote(meta.columns[v].name));
        s.push_str(" = ");
        b.placeholder(n, s);
    }
}

/// `UPDATE t SET deleted_at = ? [, version = version + 1] [, updated_at = ?]
/// WHERE key [AND version = ?] AND deleted_at IS NULL`: the `delete` of a
/// `#[persist(soft_delete)]` entity. Binds: the time (once, or twice with
/// `updated_at`), the key, the version.
pub(crate) fn soft_delete_by_key(b: Backend, meta: &EntityMeta, versioned: bool) -> String {
    let Some(d) = meta.soft_delete else {
        return delete_by_key(b, meta, versioned);
    };
    let mut s = String::from("UPDATE ");
    s.push_str(&b.quote(meta.table));
    s.push_str(" SET ");
    s.push_str(&b.quote(meta.columns[d].name));
    s.push_str(" = ");
    b.placeholder(1, &mut s);
    let mut n = 2;
    if let Some(v) = meta.version {
        let c = b.quote(meta.columns[v].name);
        s.push_str(&format!(", {c} = {c} + 1"));
    }
    if let Some(u) = meta.updated_at {
        s.push_str(", ");
        s.push_str(&b.quote(meta.columns[u].name));
        s.push_str(" = ");
        b.placeholder(n, &mut s);
        n += 1;
    }
    let n = where_key(b, meta, n, &mut s);
    if versioned {
        version_check(b, meta, n, &mut s);
    }
    live_only(b, meta, " AND ", &mut s);
    s
}

pub(crate) fn delete_by_key(b: Backend, meta: &EntityMeta, versioned: bool) -> String {
    let mut s = String::from("DELETE FROM ");
    s.push_str(&b.quote(meta.table));
    let n = where_key(b, meta, 1, &mut s);
    if versioned {
        version_check(b, meta, n, &mut s);
    }
    s
}

/// Insert-or-update on `target` (column indexes). PostgreSQL and SQLite use
/// `ON CONFLICT (target) DO UPDATE`; MySQL uses `ON DUPLICATE KEY UPDATE`,
/// which fires on a conflict with any unique key. The conflict update gives
/// the columns of `sets` their own SQL (expressions over the existing row)
/// and the others the new row's values; with `returning_all` (where the
/// backend has `RETURNING`) the statement answers the whole row as stored,
/// every column in the entity's order, else the generated key if any.
pub(crate) fn upsert(
    b: Backend,
    meta: &EntityMeta,
    target: &[usize],
    sets: &[(usize, String)],
    returning_all: bool,
) -> String {
    let mut s = insert(b, meta, 1);
    if meta.auto_increment.is_some() && b.has_returning() {
        // Re-add RETURNING after the conflict clause.
        let cut = s.rfind(" RETURNING ").unwrap_or(s.len());
        s.truncate(cut);
    }
    let updated: Vec<usize> = meta
        .insert_columns()
        .filter(|i| !target.contains(i) && !meta.columns[*i].primary_key)
        .collect();
    let assign = |i: usize, new_value: &dyn Fn(&str) -> String| {
        let c = b.quote(meta.columns[i].name);
        match sets.iter().find(|(j, _)| *j == i) {
            Some((_, sql)) => format!("{c} = {sql}"),
            None => format!("{c} = {}", new_value(&c)),
        }
    };
    match b {
        Backend::MySql => {
            s.push_str(" ON DUPLICATE KEY UPDATE ");
            let mut parts = Vec::new();
            if let Some(auto) = meta.auto_increment {
                let k = b.quote(meta.columns[auto].name);
                parts.push(format!("{k} = LAST_INSERT_ID({k})"));
            }
            for i in &updated {
                parts.push(assign(*i, &|c| format!("VALUES({c})")));
            }
            if parts.is_empty() {
                let c = b.quote(meta.columns[target[0]].name);
                parts.push(format!("{c} = {c}"));
            }
            s.push_str(&parts.join(", "));
        }
        _ => {
            s.push_str(" ON CONFLICT (");
            column_list(b, meta, target.iter().copied(), &mut s);
            s.push(')');
            s.push_str(" DO UPDATE SET ");
            if updated.is_empty() {
                let c = b.quote(meta.columns[target[0]].name);
                s.push_str(&format!("{c} = excluded.{c}"));
            } else {
                let parts: Vec<String> = updated
                    .iter()
                    .map(|i| assign(*i, &|c| format!("excluded.{c}")))
                    .collect();
                s.push_str(&parts.join(", "));
            }
            if returning_all {
                s.push_str(" RETURNING ");
                column_list(b, meta, 0..meta.columns.len(), &mut s);
            } else {
                returning_key(b, meta, &mut s);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(rows: usize, max: usize) -> Vec<usize> {
        insert_batches(rows, max).collect()
    }

    #[test]
    fn round_counts_are_one_statement() {
        for n in [1, 7, 20, 100, 1_000, 5_000, 10_000] {
            assert_eq!(batches(n, 10_000), [n]);
        }
        assert_eq!(batches(0, 10_000), Vec::<usize>::new());
    }

    #[test]
    fn other_counts_use_the_fixed_sizes() {
        assert_eq!(batches(1_234, 10_000), [1_000, 200, 20, 14]);
        assert_eq!(batches(45, 10_000), [20, 20, 5]);
        assert_eq!(batches(25_000, 10_000), [10_000, 10_000, 5_000]);
        // A bind-limited maximum (a wide entity) is one size more.
        assert_eq!(batches(7_000, 3_276), [3_276, 3_276, 200, 200, 20, 20, 8]);
        for n in 0..3_000 {
            let b = batches(n, 1_000);
            assert_eq!(b.iter().sum::<usize>(), n);
            assert!(
                b.iter()
                    .all(|s| *s == 1_000 || BATCH_SIZES.contains(s) || *s <= EXACT_BATCH_ROWS)
            );
            // At most three statements a decade below the maximum.
            assert!(b.iter().filter(|s| **s < 1_000).count() <= 9, "{n}: {b:?}");
        }
    }
}
