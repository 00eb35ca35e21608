//! History with revisions, the writing side: every change of an entity
//! marked `#[persist(audit)]` is copied to its history table
//! `<table>_history`, in the same transaction, under the revision of that
//! transaction (a row of `persist_revision`).
//!
//! - The revision row is inserted at the transaction's first audited write
//!   (its id is needed by the history rows) and completed just before
//!   `COMMIT` (time, actor, info, the tables it touched). A rollback takes
//!   both away with the rest of the transaction.
//! - History rows are written by `INSERT INTO t_history … SELECT … FROM t
//!   WHERE <key> IN (…)`: one statement per table and kind of change (keys
//!   chunked under the bind limit), after inserts and updates (so that the
//!   database's own values — bumped versions, `set_expr` — are what is
//!   kept), before deletes (the last values of the rows, including rows
//!   deleted by key that the session never loaded).
//! - A history table is keyed by (revision, entity key): one version per
//!   row and transaction. A row written several times in one transaction
//!   keeps its last state; its kind stays `I` when the transaction
//!   inserted it.
//! - Rows of audited children that the database deletes (`ON DELETE
//!   CASCADE`) or nulls (`SET NULL`) with their parent are recorded before
//!   the parent's delete, recursively.

use sea_query::{Alias, Cond, Expr, ExprTrait, SelectStatement};

use crate::backend::{AnyConn, Driver, FirstInt, RowMap, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{ChangeKind, ColumnMeta, EntityMeta, OnDelete};
use crate::model::value::{RowReader, SqlType};
use crate::session::{Guard, Session};
use crate::sql::Backend;

/// The revision table's name.
pub(crate) const REVISION_TABLE: &str = "persist_revision";

/// The revision table, described as an entity so that the schema builder
/// creates it as it creates any table.
pub(crate) static REVISION: EntityMeta = EntityMeta {
    name: "Revision",
    table: REVISION_TABLE,
    columns: &[
        column("id", SqlType::BigInt, false, true),
        column("committed_at", SqlType::TimestampTz, false, false),
        column("actor", SqlType::Text, true, false),
        column("info", SqlType::Text, true, false),
        column("tables", SqlType::Text, true, false),
    ],
    primary_key: &[0],
    auto_increment: Some(0),
    version: None,
    created_at: None,
    updated_at: None,
    relations: &[],
    cache_ttl: None,
    soft_delete: None,
    audit: false,
    hooks: false,
};

const fn column(name: &'static str, sql_type: SqlType, nullable: bool, pk: bool) -> ColumnMeta {
    ColumnMeta {
        name,
        field: name,
        sql_type,
        nullable,
        primary_key: pk,
        unique: false,
        unique_live: false,
        index: false,
        default: None,
        references: None,
    }
}

/// The name of `meta`'s history table.
pub(crate) fn history_table(meta: &EntityMeta) -> String {
    format!("{}_history", meta.table)
}

/// Rows of history per statement at most (besides the bind limit): a
/// statement's text stays a reasonable size.
const MAX_KEYS: usize = 10_000;

/// Nesting of cascades followed at most (a self-referencing cascade could
/// go on for as long as the data does).
const MAX_CASCADE_DEPTH: usize = 8;

/// The history state of a session's transaction.
#[derive(Debug, Default)]
pub(crate) struct AuditState {
    /// The id of the transaction's revision, once it has one.
    revision: Option<i64>,
    actor: Option<String>,
    info: Option<String>,
    /// The audited tables written, with their key columns (for
    /// `revision_changes`).
    tables: Vec<&'static EntityMeta>,
}

impl AuditState {
    /// The id of the open transaction's revision, once it has one.
    pub(crate) fn revision(&self) -> Option<i64> {
        self.revision
    }

    /// The tables the open transaction wrote, as the revision will store them.
    pub(crate) fn tables_text(&self) -> String {
        tables_text(&self.tables)
    }
}

/// When a flush plan records history: after its inserts and updates,
/// before its deletes, or after them (a soft delete: the `UPDATE` that
/// marks the rows sets the values to keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Written,
    BeforeDeletes,
    AfterDeletes,
}

impl Session {
    /// Names who makes the changes of the current transaction: stored in its
    /// revision (see [`Session::history`]). Set before or after the first
    /// write; the transaction's end (commit or rollback) clears it.
    pub fn set_actor(&self, actor: impl Into<String>) {
        self.audit_state().actor = Some(actor.into());
    }

    /// Free-form information (a request id, a JSON document) stored in the
    /// revision of the current transaction, as [`set_actor`](Session::set_actor).
    pub fn set_revision_info(&self, info: impl Into<String>) {
        self.audit_state().info = Some(info.into());
    }

    pub(crate) fn audit_state(&self) -> std::sync::MutexGuard<'_, AuditState> {
        self.inner.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Completes the transaction's revision, if it has one, just before
    /// `COMMIT`: its time, actor, info and tables. A failure rolls back.
    pub(crate) async fn complete_revision(&self, guard: &mut Guard) -> Result<()> {
        let (id, actor, info, tables) = {
            let st = self.audit_state();
            let Some(id) = st.revision else {
                return Ok(());
            };
            (
                id,
                st.actor.clone(),
                st.info.clone(),
                tables_text(&st.tables),
            )
        };
        let now = crate::model::value::truncate_micros(chrono::Utc::now());
        let b = self.backend();
        let q = |c: &str| b.quote(c);
        let mut set = format!("UPDATE {} SET ", q(REVISION_TABLE));
        let mut n = 1;
        for (i, c) in ["committed_at", "actor", "info", "tables"]
            .iter()
            .enumerate()
        {
            if i > 0 {
                set.push_str(", ");
            }
            set.push_str(&q(c));
            set.push_str(" = ");
            b.placeholder(n, &mut set);
            n += 1;
        }
        set.push_str(&format!(" WHERE {} = ", q("id")));
        b.placeholder(n, &mut set);
        let values = vec![
            now.into(),
            actor.clone().into(),
            info.clone().into(),
            tables.clone().into(),
            id.into(),
        ];
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let out = self
            .step(async {
                let done = execute(self, conn, set, values).await?;
                if done == 0 {
                    // A savepoint rolled back took the revision row away
                    // (and the history rows written before it): the history
                    // written since still names the id.
                    let sql = revision_insert(b, true);
                    let values = vec![id.into(), now.into(), actor.into(), info.into()];
                    execute(self, conn, sql, values).await?;
                    let mut sql = format!("UPDATE {} SET {} = ", q(REVISION_TABLE), q("tables"));
                    b.placeholder(1, &mut sql);
                    sql.push_str(&format!(" WHERE {} = ", q("id")));
                    b.placeholder(2, &mut sql);
                    execute(self, conn, sql, vec![tables.into(), id.into()]).await?;
                }
                Ok(())
            })
            .await;
        if out.is_err() {
            self.fail(guard).await;
        }
        out
    }

    /// The transaction's revision id, inserting its row at the first call.
    async fn revision_id(&self, conn: &mut AnyConn, meta: &'static EntityMeta) -> Result<i64> {
        let (known, actor, info) = {
            let mut st = self.audit_state();
            if !st.tables.iter().any(|m| m.same_as(meta)) {
                st.tables.push(meta);
            }
            (st.revision, st.actor.clone(), st.info.clone())
        };
        if let Some(id) = known {
            return Ok(id);
        }
        let b = self.backend();
        let sql = revision_insert(b, false);
        let now = crate::model::value::truncate_micros(chrono::Utc::now());
        let values = sea_query::Values(vec![now.into(), actor.into(), info.into()]);
        let id = dispatch!(conn, |c, DB| {
            let args = DB::args_from_values(values);
            let sql: std::sync::Arc<str> = sql.into();
            if b.has_returning() {
                self.run(
                    Some(&REVISION),
                    &sql,
                    DB::fetch_optional(c, sql.clone(), args, &FirstInt),
                )
                .await?
                .ok_or(Error::NotFound)?
            } else {
                let done = self
                    .run(Some(&REVISION), &sql, DB::execute(c, sql.clone(), args))
                    .await?;
                done.last_insert_id.ok_or(Error::NotFound)? as i64
            }
        });
        self.audit_state().revision = Some(id);
        Ok(id)
    }
}

/// `INSERT INTO persist_revision`: with `with_id`, the id given first;
/// otherwise generated (and returned where the backend can).
fn revision_insert(b: Backend, with_id: bool) -> String {
    let q = |c: &str| b.quote(c);
    let cols: &[&str] = if with_id {
        &["id", "committed_at", "actor", "info"]
    } else {
        &["committed_at", "actor", "info"]
    };
    let mut s = format!("INSERT INTO {} (", q(REVISION_TABLE));
    s.push_str(&cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", "));
    s.push_str(") VALUES (");
    for n in 1..=cols.len() {
        if n > 1 {
            s.push_str(", ");
        }
        b.placeholder(n, &mut s);
    }
    s.push(')');
    if !with_id && b.has_returning() {
        s.push_str(&format!(" RETURNING {}", q("id")));
    }
    s
}

/// The `tables` column of a revision: `table(key:Type,…)` entries joined
/// by `;`, what [`revision_changes`](Session::revision_changes) reads the
/// keys back with.
fn tables_text(tables: &[&'static EntityMeta]) -> String {
    tables
        .iter()
        .map(|m| {
            let keys: Vec<String> = m
                .primary_key
                .iter()
                .map(|i| format!("{}:{:?}", m.columns[*i].name, m.columns[*i].sql_type))
                .collect();
            format!("{}({})", m.table, keys.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Runs one statement with dynamic values; the rows it affected.
async fn execute(
    s: &Session,
    conn: &mut AnyConn,
    sql: String,
    values: Vec<sea_query::Value>,
) -> Result<u64> {
    let sql: std::sync::Arc<str> = sql.into();
    let done = dispatch!(conn, |c, DB| {
        let args = DB::args_from_values(sea_query::Values(values));
        s.run(Some(&REVISION), &sql, DB::execute(c, sql.clone(), args))
            .await?
    });
    Ok(done.rows_affected)
}

/// Which rows of a table to record.
#[derive(Debug, Clone)]
pub(crate) enum Rows {
    /// By key: each key's column values, in key order.
    Keys(Vec<Vec<sea_query::Value>>),
    /// Every row matching a condition over the table's columns.
    Cond(Cond),
}

/// Whether writing `meta`'s rows can write history: it is audited, or
/// deleting its rows reaches an audited table through `ON DELETE`.
pub(crate) fn touches_history(meta: &EntityMeta) -> bool {
    fn reach(meta: &EntityMeta, depth: usize) -> bool {
        meta.audit
            || (depth < MAX_CASCADE_DEPTH
                && meta
                    .relations
                    .iter()
                    .any(|r| r.on_delete != OnDelete::NoAction && reach(r.fk_owner(), depth + 1)))
    }
    reach(meta, 0)
}

/// Records history for the rows of `meta` matching `rows`, as changes of
/// `kind`, with their values as the database holds them now: one
/// `INSERT … SELECT` per chunk of keys (one for a condition). Does nothing
/// for an entity that is not audited. The caller runs it in the same step
/// as the write it records.
pub(crate) async fn record(
    s: &Session,
    conn: &mut AnyConn,
    meta: &'static EntityMeta,
    kind: ChangeKind,
    rows: Rows,
) -> Result<()> {
    record_with(s, conn, meta, kind, rows, None).await
}

async fn record_with(
    s: &Session,
    conn: &mut AnyConn,
    meta: &'static EntityMeta,
    kind: ChangeKind,
    rows: Rows,
    nulled: Option<usize>,
) -> Result<()> {
    if !meta.audit {
        return Ok(());
    }
    let b = s.backend();
    let conds: Vec<Cond> = match rows {
        Rows::Keys(keys) if keys.is_empty() => return Ok(()),
        Rows::Keys(keys) => keys
            .chunks(chunk_size(b, meta))
            .map(|part| key_cond(meta, part))
            .collect(),
        Rows::Cond(c) => vec![c],
    };
    let rev = s.revision_id(conn, meta).await?;
    for cond in conds {
        let (sql, values) = history_insert(b, meta, rev, kind, cond, nulled);
        let sql: std::sync::Arc<str> = sql.into();
        dispatch!(&mut *conn, |c, DB| {
            let args = DB::args_from_values(values);
            s.run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                .await?;
        });
    }
    Ok(())
}

/// Records the rows of `meta` with `keys` as deleted, and the rows of
/// audited tables the database will delete or null with them: call it
/// before the `DELETE`.
pub(crate) async fn record_deletes(
    s: &Session,
    conn: &mut AnyConn,
    meta: &'static EntityMeta,
    keys: Vec<Vec<sea_query::Value>>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let has_cascades = meta.primary_key.len() == 1
        && meta
            .relations
            .iter()
            .any(|r| r.on_delete != OnDelete::NoAction && touches_history(r.fk_owner()));
    if has_cascades {
        for part in keys.chunks(chunk_size(s.backend(), meta)) {
            let mut parents = sea_query::Query::select();
            parents
                .column(col(meta, meta.primary_key[0]))
                .from(Alias::new(meta.table))
                .cond_where(key_cond(meta, part));
            Box::pin(record_cascades(s, &mut *conn, meta, parents, 0)).await?;
        }
    }
    record(s, conn, meta, ChangeKind::Delete, Rows::Keys(keys)).await
}

/// Records the rows that deleting `meta`'s rows selected by `parents` (a
/// select of their key) deletes or nulls in other tables.
async fn record_cascades(
    s: &Session,
    conn: &mut AnyConn,
    meta: &'static EntityMeta,
    parents: SelectStatement,
    depth: usize,
) -> Result<()> {
    for r in meta.relations {
        let child = r.fk_owner();
        if r.on_delete == OnDelete::NoAction || !touches_history(child) {
            continue;
        }
        let cond = Cond::all().add(Expr::col(col(child, r.by)).in_subquery(parents.clone()));
        match r.on_delete {
            OnDelete::SetNull => {
                // The children's values after the parent's delete: the same,
                // with the foreign key NULL (the database changes nothing else).
                record_with(
                    s,
                    &mut *conn,
                    child,
                    ChangeKind::Update,
                    Rows::Cond(cond),
                    Some(r.by),
                )
                .await?;
            }
            _ => {
                if depth + 1 < MAX_CASCADE_DEPTH && child.primary_key.len() == 1 {
                    let mut sub = sea_query::Query::select();
                    sub.column(col(child, child.primary_key[0]))
                        .from(Alias::new(child.table))
                        .cond_where(cond.clone());
                    Box::pin(record_cascades(s, &mut *conn, child, sub, depth + 1)).await?;
                }
                record(s, &mut *conn, child, ChangeKind::Delete, Rows::Cond(cond)).await?;
            }
        }
    }
    Ok(())
}

/// A column of `meta`, qualified by its table.
fn col(meta: &EntityMeta, i: usize) -> (Alias, Alias) {
    (Alias::new(meta.table), Alias::new(meta.columns[i].name))
}

/// Keys per history statement: under the bind limit (one bind is the
/// revision).
fn chunk_size(b: Backend, meta: &EntityMeta) -> usize {
    ((b.max_binds() - 1) / meta.primary_key.len().max(1)).clamp(1, MAX_KEYS)
}

/// `<key> IN (…)` for single-column keys, an `OR` of `AND`s for composite
/// ones.
pub(crate) fn key_cond(meta: &EntityMeta, keys: &[Vec<sea_query::Value>]) -> Cond {
    if let [pk] = meta.primary_key {
        return Cond::all()
            .add(Expr::col(col(meta, *pk)).is_in(keys.iter().filter_map(|k| k.first().cloned())));
    }
    let mut any = Cond::any();
    for k in keys {
        let mut all = Cond::all();
        for (i, v) in meta.primary_key.iter().zip(k) {
            all = all.add(Expr::col(col(meta, *i)).eq(v.clone()));
        }
        any = any.add(all);
    }
    any
}

/// `INSERT INTO t_history (revision, change, cols…) SELECT ?, 'K', cols…
/// FROM t WHERE cond`, replacing the version the transaction already wrote
/// of a row (an insert stays an insert).
fn history_insert(
    b: Backend,
    meta: &EntityMeta,
    rev: i64,
    kind: ChangeKind,
    cond: Cond,
    nulled: Option<usize>,
) -> (String, sea_query::Values) {
    let mut q = sea_query::Query::select();
    q.expr(Expr::val(rev))
        .expr(Expr::cust(format!("'{}'", kind.code())));
    for (i, c) in meta.columns.iter().enumerate() {
        if nulled == Some(i) {
            q.expr(Expr::cust("NULL"));
        } else {
            q.column((Alias::new(meta.table), Alias::new(c.name)));
        }
    }
    q.from(Alias::new(meta.table)).cond_where(cond);
    let (select, values) = b.sea().build_select(&q);
    let quote = |c: &str| b.quote(c);
    let history = quote(&history_table(meta));
    let mut cols = vec![quote("revision"), quote("change")];
    cols.extend(meta.columns.iter().map(|c| quote(c.name)));
    let mut sql = format!("INSERT INTO {history} ({}) {select}", cols.join(", "));
    let change = quote("change");
    match b {
        Backend::MySql => {
            sql.push_str(&format!(
                " ON DUPLICATE KEY UPDATE {history}.{change} = IF({history}.{change} = 'I' AND VALUES({change}) = 'U', 'I', VALUES({change}))"
            ));
            for c in meta.columns.iter().filter(|c| !c.primary_key) {
                let c = quote(c.name);
                sql.push_str(&format!(", {history}.{c} = VALUES({c})"));
            }
        }
        _ => {
            let mut target = vec![quote("revision")];
            target.extend(
                meta.primary_key
                    .iter()
                    .map(|i| quote(meta.columns[*i].name)),
            );
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {change} = CASE WHEN {history}.{change} = 'I' AND excluded.{change} = 'U' THEN 'I' ELSE excluded.{change} END",
                target.join(", ")
            ));
            for c in meta.columns.iter().filter(|c| !c.primary_key) {
                let c = quote(c.name);
                sql.push_str(&format!(", {c} = excluded.{c}"));
            }
        }
    }
    (sql, values)
}

/// Reads the key columns of `meta` (selected first, in key order) as
/// dynamic values.
pub(crate) struct KeyValues(pub(crate) &'static EntityMeta);

impl RowMap for KeyValues {
    type Out = Vec<sea_query::Value>;
    fn map<R: RowReader>(&self, row: &R) -> Result<Self::Out> {
        self.0
            .primary_key
            .iter()
            .enumerate()
            .map(|(n, i)| {
                let c = &self.0.columns[*i];
                read_value(row, n, c.sql_type).map_err(|e| Error::decode(c.name, e))
            })
            .collect()
    }
}

/// Reads column `i` of a row as a dynamic value of type `ty` (the types a
/// key can have).
pub(crate) fn read_value<R: RowReader>(
    row: &R,
    i: usize,
    ty: SqlType,
) -> std::result::Result<sea_query::Value, crate::error::BoxDynError> {
    use sea_query::Value as V;
    Ok(match ty {
        SqlType::Bool => V::Bool(row.bool(i)?),
        SqlType::SmallInt => V::SmallInt(row.i16(i)?),
        SqlType::Int => V::Int(row.i32(i)?),
        SqlType::BigInt => V::BigInt(row.i64(i)?),
        SqlType::Text => V::String(row.string(i)?),
        SqlType::Blob => V::Bytes(row.bytes(i)?),
        SqlType::Uuid => V::Uuid(row.uuid(i)?),
        SqlType::Date => V::ChronoDate(row.date(i)?),
        SqlType::Timestamp => V::ChronoDateTime(row.timestamp(i)?),
        SqlType::TimestampTz => V::ChronoDateTimeUtc(row.timestamptz(i)?),
        other => {
            return Err(crate::error::msg(format!(
                "a key column of type {other:?} cannot be read back from history"
            )));
        }
    })
}

/// Selects the keys of `meta`'s rows matching `cond`, locked for update
/// where the backend has row locks: the rows a bulk write will change.
pub(crate) async fn matching_keys(
    s: &Session,
    conn: &mut AnyConn,
    meta: &'static EntityMeta,
    cond: Cond,
) -> Result<Vec<Vec<sea_query::Value>>> {
    let mut q = sea_query::Query::select();
    for i in meta.primary_key {
        q.column(col(meta, *i));
    }
    q.from(Alias::new(meta.table)).cond_where(cond);
    if s.backend() != Backend::Sqlite {
        q.lock(sea_query::LockType::Update);
    }
    let (sql, values) = s.backend().sea().build_select(&q);
    let sql: std::sync::Arc<str> = sql.into();
    let m = KeyValues(meta);
    Ok(dispatch!(conn, |c, DB| {
        let args = DB::args_from_values(values);
        s.run(Some(meta), &sql, DB::fetch_all(c, sql.clone(), args, &m))
            .await?
    }))
}

/// A key's column values, for [`Rows::Keys`].
pub(crate) fn key_values<K: crate::model::entity::Key>(
    meta: &EntityMeta,
    key: &K,
) -> Result<Vec<sea_query::Value>> {
    key.to_values().map_err(|e| {
        let cols: Vec<&str> = meta
            .primary_key
            .iter()
            .map(|i| meta.columns[*i].name)
            .collect();
        Error::encode(&cols.join(", "), e)
    })
}

/// Refuses an audited write in an autocommit session: the write, its
/// history and its revision must commit together.
pub(crate) fn needs_transaction(s: &Session, meta: &EntityMeta) -> Result<()> {
    if touches_history(meta) {
        s.one_statement_only(&format!("writing the audited entity {}", meta.name))?;
    }
    Ok(())
}
