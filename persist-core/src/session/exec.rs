//! Statement execution shared by the session's operations and the flush.

use std::sync::Arc;

use super::{Guard, Session};
use crate::backend::{AnyConn, Decoded, Driver, FirstInt, RowMap, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{Entity, Key};
use crate::model::value::{Binder, RowReader};
use crate::session::uow::Merge;
use crate::sql::Backend;
use crate::sql::statements::{self as sql, MAX_INSERT_ROWS};

/// Sets the timestamps and the initial version of rows about to be inserted.
pub(crate) fn prepare_insert<E: Entity>(values: &mut [E]) {
    let now = crate::model::value::truncate_micros(chrono::Utc::now());
    for v in values {
        v.stamp_created(now);
        if v.version() == Some(0) {
            v.set_version(1);
        }
    }
}

pub(crate) fn bind_key<E: Entity, B: Binder>(key: &E::Key, b: &mut B) -> Result<()> {
    key.bind_key(b).map_err(|e| Error::Encode {
        column: E::META
            .primary_key
            .iter()
            .map(|i| E::META.columns[*i].name)
            .collect::<Vec<_>>()
            .join(", "),
        source: e,
    })
}

pub(crate) fn bind_insert_columns<E: Entity, B: Binder>(value: &E, b: &mut B) -> Result<()> {
    for i in E::META.insert_columns() {
        value.bind_column(i, b)?;
    }
    Ok(())
}

/// Reads a generated key returned by `RETURNING`, in the key column's own
/// width (PostgreSQL answers an `integer` key as INT4, which sqlx will not
/// read as `i64`).
pub(crate) fn generated_key<R: RowReader>(
    meta: &crate::model::entity::EntityMeta,
    r: &R,
) -> Result<i64> {
    let ty = meta.auto_increment.map(|i| meta.columns[i].sql_type);
    let key = match ty {
        Some(crate::model::value::SqlType::SmallInt) => r.i16(0).map(|v| v.map(i64::from)),
        Some(crate::model::value::SqlType::Int) => r.i32(0).map(|v| v.map(i64::from)),
        _ => r.i64(0),
    };
    Ok(key.map_err(|e| Error::decode("key", e))?.unwrap_or(0))
}

/// Reads the generated key a `RETURNING` row carries.
pub(crate) struct GeneratedKey(pub(crate) &'static crate::model::entity::EntityMeta);

impl RowMap for GeneratedKey {
    type Out = i64;
    fn map<R: RowReader>(&self, row: &R) -> Result<i64> {
        generated_key(self.0, row)
    }
}

/// A count read by [`FirstInt`](crate::backend::FirstInt): absent is an error.
pub(crate) fn count_of(n: Option<i64>) -> Result<u64> {
    Ok(n.ok_or(Error::NotFound)?.max(0) as u64)
}

/// Runs a query returning `E` rows with dynamic arguments; the rows pass
/// through the identity map.
pub(crate) async fn fetch_entities<E: Entity>(
    s: &Session,
    guard: &mut Guard,
    sql: Arc<str>,
    values: Vec<sea_query::Value>,
) -> Result<Vec<E>> {
    fetch_entities_merged(s, guard, sql, values, s.default_merge()).await
}

/// [`fetch_entities`] with an explicit way of merging rows the session holds.
pub(crate) async fn fetch_entities_merged<E: Entity>(
    s: &Session,
    guard: &mut Guard,
    sql: Arc<str>,
    values: Vec<sea_query::Value>,
    merge: Merge,
) -> Result<Vec<E>> {
    let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
    let rows: Vec<E> = dispatch!(tx, |c, DB| {
        let args = DB::args_from_values(sea_query::Values(values));
        s.run(
            Some(E::META),
            &sql,
            DB::fetch_all(c, sql.clone(), args, &Decoded::<E>::NEW),
        )
        .await?
    });
    Ok(s.merge_rows(rows, merge))
}

/// Rows one `INSERT` carries on SQLite's direct path.
const SQLITE_DIRECT_INSERT_ROWS: usize = 50;

/// Inserts rows in multi-row statements (as few as the bind limit and
/// [`MAX_INSERT_ROWS`] allow: one round trip each) and stores generated keys
/// in them.
///
/// Keys are read where the server returns them (`RETURNING` on PostgreSQL,
/// SQLite and MariaDB). MySQL's come from `LAST_INSERT_ID()` (the first
/// row's) plus the session's `auto_increment_increment`, read when a
/// statement carries more than one row: a session can change it. A
/// statement that wrote, or returned keys for, other than the rows it sent
/// is an error, and no key of it is stored.
pub(crate) async fn insert_rows<E: Entity>(
    s: &Session,
    conn: &mut AnyConn,
    values: &mut [E],
) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let meta = E::META;
    let b = s.backend();
    let ncols = meta.insert_columns().count();
    let auto = meta.auto_increment.is_some();
    let db = &s.inner.db;
    let mariadb = b == Backend::MySql && db.mysql_returning;
    // MySQL hands out consecutive ids to one multi-row insert only with
    // `innodb_autoinc_lock_mode` below 2; otherwise insert one row at a time.
    let one_by_one = ncols == 0 || (auto && b == Backend::MySql && !db.mysql_consecutive_ids);
    let per_stmt = if one_by_one {
        1
    } else if b == Backend::Sqlite && db.sqlite_direct {
        // The direct path prepares its statements once per transaction:
        // preparing a 1,000-row INSERT costs more than stepping a 50-row one
        // twenty times (no round trips to save on SQLite). 1,000 rows of
        // three columns: 716 µs in one statement, 567 µs in 50-row ones.
        SQLITE_DIRECT_INSERT_ROWS.min((b.max_binds() / ncols).max(1))
    } else {
        (b.max_binds() / ncols).clamp(1, MAX_INSERT_ROWS)
    };
    // MySQL's step, read once: no statement of the caller's runs between
    // the chunks.
    let mut step = None;
    for chunk in values.chunks_mut(per_stmt) {
        let size = chunk.len();
        // One row's key is `LAST_INSERT_ID()` whatever the step.
        let returning = auto && (b.has_returning() || (mariadb && size > 1));
        let sql = if returning && b == Backend::MySql {
            E::sql_cache().insert_mariadb(size, || sql::insert_returning_mariadb(meta, size))
        } else {
            E::sql_cache().insert(b, size, || sql::insert(b, meta, size))
        };
        if auto && !returning && size > 1 && step.is_none() {
            step = Some(session_increment(s, conn).await?);
        }
        dispatch!(&mut *conn, |c, DB| {
            let mut args = <DB as crate::backend::Driver>::Args::default();
            for v in chunk.iter() {
                bind_insert_columns(v, &mut args)?;
            }
            if returning {
                let mut ids = s
                    .run(
                        Some(meta),
                        &sql,
                        DB::fetch_all(c, sql.clone(), args, &GeneratedKey(meta)),
                    )
                    .await?;
                check_written(meta, size, ids.len() as u64)?;
                // RETURNING order is not guaranteed; ids are handed out in
                // VALUES order, so sorted ids match the rows in order.
                ids.sort_unstable();
                for (v, id) in chunk.iter_mut().zip(ids) {
                    v.set_generated_key(id)?;
                }
            } else {
                let done = s
                    .run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                    .await?;
                check_written(meta, size, done.rows_affected)?;
                if auto {
                    let first = done.last_insert_id.unwrap_or(0) as i64;
                    let step = step.unwrap_or(1);
                    for (n, v) in chunk.iter_mut().enumerate() {
                        v.set_generated_key(first + n as i64 * step)?;
                    }
                }
            }
        });
    }
    Ok(())
}

/// [`insert_rows`], then the history of the rows for an audited entity
/// (one statement per chunk of keys): what an immediate insert runs, in
/// one step.
pub(crate) async fn insert_rows_audited<E: Entity>(
    s: &Session,
    conn: &mut AnyConn,
    values: &mut [E],
) -> Result<()> {
    use crate::session::audit;
    audit::needs_transaction(s, E::META)?;
    insert_rows(s, conn, values).await?;
    if E::META.audit {
        let keys = values.iter().map(|v| audit::key_values(E::META, &v.key()));
        let keys = keys.collect::<Result<Vec<_>>>()?;
        let kind = crate::model::entity::ChangeKind::Insert;
        audit::record(s, conn, E::META, kind, audit::Rows::Keys(keys)).await?;
    }
    Ok(())
}

/// An `INSERT` of `sent` rows answered `written` (rows or returned keys).
fn check_written(meta: &crate::model::entity::EntityMeta, sent: usize, written: u64) -> Result<()> {
    if written == sent as u64 {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "an INSERT of {sent} rows into {} answered {written}: its generated keys cannot be matched to the rows",
        meta.table
    )))
}

/// The session's `auto_increment_increment` (MySQL), the step between the
/// ids of one multi-row insert.
async fn session_increment(s: &Session, conn: &mut AnyConn) -> Result<i64> {
    const SQL: &str = "SELECT CAST(@@session.auto_increment_increment AS SIGNED)";
    let step = dispatch!(&mut *conn, |c, DB| {
        let sql: Arc<str> = Arc::from(SQL);
        s.run(
            None,
            SQL,
            DB::fetch_optional(c, sql, Default::default(), &FirstInt),
        )
        .await?
    });
    Ok(step.unwrap_or(1).max(1))
}
