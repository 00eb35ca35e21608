//! The statements of soft deletes: a `#[persist(soft_delete)]` row marked
//! by key, and the `UPDATE`s that follow `on_delete = "cascade"` relations
//! down to children that have a `soft_delete` column (the database's own
//! `ON DELETE CASCADE` never fires: no row is deleted).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_query::{
    Alias, Cond, Expr, ExprTrait, MysqlQueryBuilder, PostgresQueryBuilder, QueryStatementWriter,
    SelectStatement, SqliteQueryBuilder, UpdateStatement,
};

use crate::backend::{AnyConn, Driver, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{ChangeKind, Entity, EntityMeta};
use crate::model::value::{Binder, Field, SqlType};
use crate::session::audit::{self, Rows};
use crate::session::uow::soft_cascades;
use crate::session::{Session, bind_key};
use crate::sql::Backend;
use crate::sql::statements::{self as sql, Shape};

/// The time a soft delete writes, as the database's microseconds keep it.
pub(crate) fn now() -> DateTime<Utc> {
    crate::model::value::truncate_micros(Utc::now())
}

/// `now` as a value of column `col` (`TIMESTAMP` columns hold UTC).
fn time_value(meta: &EntityMeta, col: usize, now: DateTime<Utc>) -> Result<sea_query::Value> {
    match meta.columns[col].sql_type {
        SqlType::Timestamp => now.naive_utc().to_value(),
        _ => now.to_value(),
    }
    .map_err(|e| Error::encode(meta.columns[col].name, e))
}

fn bind_time<B: Binder>(
    meta: &EntityMeta,
    col: usize,
    now: DateTime<Utc>,
    args: &mut B,
) -> Result<()> {
    match meta.columns[col].sql_type {
        SqlType::Timestamp => args.timestamp(now.naive_utc()),
        _ => args.timestamptz(now),
    }
    .map_err(|e| Error::encode(meta.columns[col].name, e))
}

/// Soft-deletes the live row with `key` (checking version `expected`, if
/// given): the rows it marked, 0 for a row gone or already soft-deleted.
pub(crate) async fn soft_delete_by_key<E: Entity>(
    s: &Session,
    conn: &mut AnyConn,
    key: &E::Key,
    expected: Option<i64>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let meta = E::META;
    let Some(d) = meta.soft_delete else {
        return Err(Error::Invalid(format!(
            "{} has no soft_delete column",
            meta.name
        )));
    };
    let b = s.backend();
    let versioned = expected.is_some() && meta.version.is_some();
    let shape = if versioned {
        Shape::SoftDeleteByKeyVersioned
    } else {
        Shape::SoftDeleteByKey
    };
    let sql: Arc<str> =
        E::sql_cache().get(b, shape, || sql::soft_delete_by_key(b, meta, versioned));
    let done = dispatch!(conn, |c, DB| {
        let mut args = <DB as crate::backend::Driver>::Args::default();
        bind_time(meta, d, now, &mut args)?;
        if let Some(u) = meta.updated_at {
            bind_time(meta, u, now, &mut args)?;
        }
        bind_key::<E, _>(key, &mut args)?;
        if let Some(version) = expected.filter(|_| versioned) {
            Binder::i64(&mut args, version).map_err(|e| Error::encode("version", e))?;
        }
        s.run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
            .await
    })?;
    Ok(done.rows_affected)
}

/// Which parent rows a cascade follows from.
pub(crate) enum Parents {
    /// These key values (the parent's single key column).
    Keys(Vec<sea_query::Value>),
    /// The keys a `SELECT` of the parent's key column answers.
    Select(Box<SelectStatement>),
}

impl Parents {
    fn matches(&self, col: Expr) -> Expr {
        match self {
            Parents::Keys(keys) => col.is_in(keys.iter().cloned()),
            Parents::Select(q) => col.in_subquery((**q).clone()),
        }
    }
}

/// `deleted_at IS NULL` on `meta`'s soft-delete column, qualified.
pub(crate) fn live(meta: &EntityMeta) -> Option<Expr> {
    let d = meta.soft_delete?;
    Some(Expr::col((Alias::new(meta.table), Alias::new(meta.columns[d].name))).is_null())
}

/// `UPDATE t SET deleted_at = now [, version = version + 1] [, updated_at =
/// now] WHERE <cond> AND deleted_at IS NULL`.
pub(crate) fn mark_statement(
    meta: &EntityMeta,
    cond: Cond,
    now: DateTime<Utc>,
) -> Result<UpdateStatement> {
    let Some(d) = meta.soft_delete else {
        return Err(Error::Invalid(format!(
            "{} has no soft_delete column",
            meta.name
        )));
    };
    let mut q = sea_query::Query::update();
    q.table(Alias::new(meta.table));
    q.value(Alias::new(meta.columns[d].name), time_value(meta, d, now)?);
    if let Some(v) = meta.version {
        let c = Alias::new(meta.columns[v].name);
        q.value(c.clone(), Expr::col(c).add(1));
    }
    if let Some(u) = meta.updated_at {
        q.value(Alias::new(meta.columns[u].name), time_value(meta, u, now)?);
    }
    q.cond_where(cond.add_option(live(meta)));
    Ok(q)
}

/// The `UPDATE`s that soft-delete the live children (declared
/// `on_delete = "cascade"`, with a `soft_delete` column) of the `parents`
/// of `meta`, and theirs in turn, each with the table it writes: the
/// deepest first, so each level's statement still finds the live rows
/// above it that it follows from.
pub(crate) fn cascade_statements(
    meta: &'static EntityMeta,
    parents: &Parents,
    now: DateTime<Utc>,
) -> Result<Vec<Cascade>> {
    let mut out = Vec::new();
    let mut path = vec![meta.table];
    cascade_into(meta, parents, now, &mut path, &mut out)?;
    Ok(out)
}

/// One level of a soft-delete cascade: the child table, the `UPDATE` that
/// marks its live rows, and the condition naming them (before the mark).
pub(crate) struct Cascade {
    pub(crate) child: &'static EntityMeta,
    pub(crate) statement: UpdateStatement,
    pub(crate) cond: Cond,
}

fn cascade_into(
    meta: &'static EntityMeta,
    parents: &Parents,
    now: DateTime<Utc>,
    path: &mut Vec<&'static str>,
    out: &mut Vec<Cascade>,
) -> Result<()> {
    for (child, col) in soft_cascades(meta) {
        if path.contains(&child.table) {
            continue;
        }
        let fk = Expr::col((Alias::new(child.table), Alias::new(child.columns[col].name)));
        let cond = Cond::all().add(parents.matches(fk));
        if let [pk] = child.primary_key {
            // The live children's keys, for the grandchildren.
            let mut keys = sea_query::Query::select();
            keys.column((Alias::new(child.table), Alias::new(child.columns[*pk].name)));
            keys.from(Alias::new(child.table));
            keys.cond_where(cond.clone().add_option(live(child)));
            path.push(child.table);
            cascade_into(child, &Parents::Select(Box::new(keys)), now, path, out)?;
            path.pop();
        }
        out.push(Cascade {
            child,
            statement: mark_statement(child, cond.clone(), now)?,
            cond,
        });
    }
    Ok(())
}

/// Renders a statement for `b`.
pub(crate) fn build(b: Backend, q: &impl QueryStatementWriter) -> (String, sea_query::Values) {
    match b {
        Backend::Sqlite => q.build(SqliteQueryBuilder),
        Backend::Postgres => q.build(PostgresQueryBuilder),
        Backend::MySql => q.build(MysqlQueryBuilder),
    }
}

/// Runs `q` on `conn`: the rows it changed.
pub(crate) async fn run_update(
    s: &Session,
    conn: &mut AnyConn,
    meta: &'static EntityMeta,
    q: &UpdateStatement,
) -> Result<u64> {
    let (text, values) = build(s.backend(), q);
    let text: Arc<str> = Arc::from(text);
    let done = dispatch!(conn, |c, DB| {
        let args = DB::args_from_values(values);
        s.run(Some(meta), &text, DB::execute(c, text.clone(), args))
            .await
    })?;
    Ok(done.rows_affected)
}

/// Most parent keys one cascade statement carries (under every backend's
/// bind limit, with room for the times).
pub(crate) const KEYS_PER_CASCADE: usize = 10_000;

/// Soft-deletes the live cascade children of the rows of `meta` with
/// `keys` (and theirs), in statements of at most [`KEYS_PER_CASCADE`] keys.
pub(crate) async fn cascade_by_keys(
    s: &Session,
    conn: &mut AnyConn,
    meta: &'static EntityMeta,
    keys: Vec<sea_query::Value>,
    now: DateTime<Utc>,
) -> Result<()> {
    if keys.is_empty() || soft_cascades(meta).next().is_none() {
        return Ok(());
    }
    for part in keys.chunks(KEYS_PER_CASCADE) {
        let parents = Parents::Keys(part.to_vec());
        for c in cascade_statements(meta, &parents, now)? {
            c.run(s, conn, now).await?;
        }
    }
    Ok(())
}

impl Cascade {
    /// Marks the level's rows, and records them in the child's history when
    /// it is audited (by the time written: the rows this statement marked).
    pub(crate) async fn run(
        &self,
        s: &Session,
        conn: &mut AnyConn,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let n = run_update(s, conn, self.child, &self.statement).await?;
        if n > 0 && self.child.audit {
            let marked = marked_at(self.child, self.cond.clone(), now)?;
            audit::record(s, conn, self.child, ChangeKind::Delete, Rows::Cond(marked)).await?;
        }
        Ok(n)
    }
}

/// `cond` restricted to the rows marked at `now` (the rows a soft delete
/// at `now` under `cond` just marked).
pub(crate) fn marked_at(meta: &EntityMeta, cond: Cond, now: DateTime<Utc>) -> Result<Cond> {
    let Some(d) = meta.soft_delete else {
        return Ok(cond);
    };
    let col = Expr::col((Alias::new(meta.table), Alias::new(meta.columns[d].name)));
    Ok(cond.add(col.eq(time_value(meta, d, now)?)))
}
