//! History with revisions, the reading side: the versions of a row, a row
//! as it was at a revision or a time, what a revision changed, and the
//! restore of an old version. The writing side is the session's
//! (`session::audit`); see `docs/reference/history.md`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::backend::{AnyConn, Driver, RowMap, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{ChangeKind, Entity, EntityMeta};
use crate::model::value::{RowReader, SqlType};
use crate::session::audit::{self, REVISION_TABLE, Rows, history_table, read_value};
use crate::session::{Session, bind_key};
use crate::sql::Backend;
use crate::sql::statements as sql;

/// A revision: one committed transaction that changed audited entities.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revision {
    /// The revision's id (`persist_revision.id`), increasing in the order
    /// transactions first wrote an audited row.
    pub id: i64,
    /// When the transaction committed, by the application's clock (for the
    /// open transaction: when it first wrote an audited row).
    pub committed_at: DateTime<Utc>,
    /// Who made the changes, as [`Session::set_actor`] said.
    pub actor: Option<String>,
    /// What [`Session::set_revision_info`] said.
    pub info: Option<String>,
}

/// One version of a row, from its history table.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Version<T> {
    /// The revision that wrote it.
    pub revision: Revision,
    /// What the revision did to the row.
    pub kind: ChangeKind,
    /// The row as the revision left it; for a delete, its last values.
    pub value: T,
    /// The columns that differ from the previous version (every column for
    /// the first).
    pub changed: Vec<&'static str>,
}

/// A point of the history: after a revision, or at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum At {
    /// Just after the revision with this id committed.
    Revision(i64),
    /// At this time (revisions committed at or before it).
    Time(DateTime<Utc>),
}

/// A row a revision changed; see [`Session::revision_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevisionChange {
    /// The entity's table.
    pub table: String,
    /// The row's key as text: the value for a one-column key, `(a, b)` for
    /// a composite one.
    pub key: String,
    /// What the revision did to the row.
    pub kind: ChangeKind,
}

/// Decodes `revision, change, committed_at, actor, info, <T's columns>`.
struct HistoryRow<T>(std::marker::PhantomData<fn() -> T>);

impl<T: Entity> RowMap for HistoryRow<T> {
    type Out = (Revision, ChangeKind, T);
    fn map<R: RowReader>(&self, row: &R) -> Result<Self::Out> {
        let revision = revision_of(row)?;
        let code = row
            .string(1)
            .map_err(|e| Error::decode("change", e))?
            .unwrap_or_default();
        let kind = kind_of(&code)?;
        Ok((revision, kind, T::decode_row(row, 5)?))
    }
}

fn kind_of(code: &str) -> Result<ChangeKind> {
    ChangeKind::from_code(code.trim()).ok_or_else(|| {
        Error::decode(
            "change",
            crate::error::msg(format!("unknown change kind {code:?}")),
        )
    })
}

/// Reads columns 0, 2, 3, 4 as a revision (id, committed_at, actor, info).
fn revision_of<R: RowReader>(row: &R) -> Result<Revision> {
    Ok(Revision {
        id: row
            .i64(0)
            .map_err(|e| Error::decode("revision", e))?
            .unwrap_or(0),
        committed_at: row
            .timestamptz(2)
            .map_err(|e| Error::decode("committed_at", e))?
            .unwrap_or_default(),
        actor: row.string(3).map_err(|e| Error::decode("actor", e))?,
        info: row.string(4).map_err(|e| Error::decode("info", e))?,
    })
}

/// Decodes `id, tables, committed_at, actor, info` of `persist_revision`.
struct RevisionRow;

impl RowMap for RevisionRow {
    type Out = (Revision, Option<String>);
    fn map<R: RowReader>(&self, row: &R) -> Result<Self::Out> {
        let tables = row.string(1).map_err(|e| Error::decode("tables", e))?;
        Ok((revision_of(row)?, tables))
    }
}

/// Decodes `change, <key columns>` of a history table.
struct ChangeRow(Vec<SqlType>);

impl RowMap for ChangeRow {
    type Out = (ChangeKind, String);
    fn map<R: RowReader>(&self, row: &R) -> Result<Self::Out> {
        let code = row
            .string(0)
            .map_err(|e| Error::decode("change", e))?
            .unwrap_or_default();
        let mut parts = Vec::with_capacity(self.0.len());
        for (n, ty) in self.0.iter().enumerate() {
            let v = read_value(row, n + 1, *ty).map_err(|e| Error::decode("key", e))?;
            parts.push(value_text(&v));
        }
        let key = match parts.as_slice() {
            [one] => one.clone(),
            _ => format!("({})", parts.join(", ")),
        };
        Ok((kind_of(&code)?, key))
    }
}

/// A key value as text: the value itself, without quotes.
fn value_text(v: &sea_query::Value) -> String {
    use sea_query::Value as V;
    match v {
        V::Bool(Some(x)) => x.to_string(),
        V::SmallInt(Some(x)) => x.to_string(),
        V::Int(Some(x)) => x.to_string(),
        V::BigInt(Some(x)) => x.to_string(),
        V::String(Some(x)) => x.clone(),
        V::Uuid(Some(x)) => x.to_string(),
        V::ChronoDate(Some(x)) => x.to_string(),
        V::ChronoDateTime(Some(x)) => x.to_string(),
        V::ChronoDateTimeUtc(Some(x)) => x.to_rfc3339(),
        other => format!("{other:?}"),
    }
}

/// The key types a revision's `tables` column names.
fn sql_type_named(name: &str) -> Option<SqlType> {
    Some(match name {
        "Bool" => SqlType::Bool,
        "SmallInt" => SqlType::SmallInt,
        "Int" => SqlType::Int,
        "BigInt" => SqlType::BigInt,
        "Text" => SqlType::Text,
        "Blob" => SqlType::Blob,
        "Uuid" => SqlType::Uuid,
        "Date" => SqlType::Date,
        "Timestamp" => SqlType::Timestamp,
        "TimestampTz" => SqlType::TimestampTz,
        _ => return None,
    })
}

/// An audited table a revision wrote, with its key columns and their types.
type TableKeys = (String, Vec<(String, SqlType)>);

/// Parses a revision's `tables`: `table(col:Type,…)` entries joined by `;`.
fn parse_tables(text: &str) -> Result<Vec<TableKeys>> {
    let bad = || {
        Error::Invalid(format!(
            "{REVISION_TABLE}.tables is not understood: {text:?}"
        ))
    };
    let mut out = Vec::new();
    for entry in text.split(';').filter(|e| !e.is_empty()) {
        let (table, rest) = entry.split_once('(').ok_or_else(bad)?;
        let cols = rest.strip_suffix(')').ok_or_else(bad)?;
        let mut keys = Vec::new();
        for c in cols.split(',') {
            let (name, ty) = c.split_once(':').ok_or_else(bad)?;
            keys.push((name.to_owned(), sql_type_named(ty).ok_or_else(bad)?));
        }
        out.push((table.to_owned(), keys));
    }
    Ok(out)
}

/// `SELECT h.revision, h.change, r.committed_at, r.actor, r.info, h.<cols>
/// FROM t_history h JOIN persist_revision r … WHERE <key>`, oldest first.
fn history_select(b: Backend, meta: &EntityMeta) -> String {
    let q = |c: &str| b.quote(c);
    let mut s = format!(
        "SELECT h.{}, h.{}, r.{}, r.{}, r.{}",
        q("revision"),
        q("change"),
        q("committed_at"),
        q("actor"),
        q("info")
    );
    for c in meta.columns {
        s.push_str(", h.");
        s.push_str(&q(c.name));
    }
    s.push_str(&format!(
        " FROM {} h JOIN {} r ON r.{} = h.{} WHERE ",
        q(&history_table(meta)),
        q(REVISION_TABLE),
        q("id"),
        q("revision")
    ));
    for (n, i) in meta.primary_key.iter().enumerate() {
        if n > 0 {
            s.push_str(" AND ");
        }
        s.push_str("h.");
        s.push_str(&q(meta.columns[*i].name));
        s.push_str(" = ");
        b.placeholder(n + 1, &mut s);
    }
    s.push_str(&format!(
        " ORDER BY r.{}, h.{}",
        q("committed_at"),
        q("revision")
    ));
    s
}

fn not_audited(meta: &EntityMeta) -> Error {
    Error::Invalid(format!(
        "{} keeps no history: mark it #[persist(audit)]",
        meta.name
    ))
}

impl Session {
    /// Every version of the row with `key`, oldest first (by commit time,
    /// then revision id), from its history table: each with its revision,
    /// its kind, the row as that revision left it (for a delete, its last
    /// values) and the columns that changed. Registered changes of `T` are
    /// written first, and versions this transaction wrote are included.
    ///
    /// [`Error::Invalid`] if `T` is not `#[persist(audit)]`.
    ///
    /// # Cancel safety
    ///
    /// A read: dropped at any await point, it leaves nothing behind (a
    /// cut autoflush fails the session as a cut flush does).
    pub async fn history<T: Entity>(&self, key: &T::Key) -> Result<Vec<Version<T>>> {
        let meta = T::META;
        if !meta.audit {
            return Err(not_audited(meta));
        }
        let mut guard = self.lock_for_read(meta.table).await?;
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let rows = self.read_history::<T>(conn, key).await?;
        drop(guard);
        let mut out: Vec<Version<T>> = Vec::with_capacity(rows.len());
        for (revision, kind, value) in rows {
            let changed = match out.last() {
                None => meta.columns.iter().map(|c| c.name).collect(),
                Some(prev) => {
                    let mut changed = Vec::new();
                    for (i, c) in meta.columns.iter().enumerate() {
                        let before = crate::session::uow::capture_column(&prev.value, i)?;
                        if before != crate::session::uow::capture_column(&value, i)? {
                            changed.push(c.name);
                        }
                    }
                    changed
                }
            };
            out.push(Version {
                revision,
                kind,
                value,
                changed,
            });
        }
        Ok(out)
    }

    async fn read_history<T: Entity>(
        &self,
        conn: &mut AnyConn,
        key: &T::Key,
    ) -> Result<Vec<(Revision, ChangeKind, T)>> {
        let sql: Arc<str> = history_select(self.backend(), T::META).into();
        let m = HistoryRow::<T>(std::marker::PhantomData);
        Ok(dispatch!(conn, |c, DB| {
            let mut args = <DB as Driver>::Args::default();
            bind_key::<T, _>(key, &mut args)?;
            self.run(Some(T::META), &sql, DB::fetch_all(c, sql.clone(), args, &m))
                .await?
        }))
    }

    /// The row with `key` as it was at `at`: after that revision committed
    /// ([`At::Revision`]), or at that time ([`At::Time`]). `None` if it did
    /// not exist then, or had been deleted. Reads the row's whole history.
    ///
    /// [`Error::NotFound`] for a revision that does not exist.
    ///
    /// # Cancel safety
    ///
    /// As [`history`](Session::history).
    pub async fn as_of<T: Entity>(&self, key: &T::Key, at: At) -> Result<Option<T>> {
        let versions = self.history::<T>(key).await?;
        let until = match at {
            At::Time(t) => (t, i64::MAX),
            At::Revision(id) => {
                let known = versions.iter().find(|v| v.revision.id == id);
                let revision = match known {
                    Some(v) => v.revision.clone(),
                    None => self.revision(id).await?.ok_or(Error::NotFound)?,
                };
                (revision.committed_at, revision.id)
            }
        };
        let last = versions
            .into_iter()
            .rev()
            .find(|v| (v.revision.committed_at, v.revision.id) <= until);
        Ok(last
            .filter(|v| v.kind != ChangeKind::Delete)
            .map(|v| v.value))
    }

    /// The revision with id `id`, if any.
    ///
    /// # Cancel safety
    ///
    /// A read: dropped at any await point, it leaves nothing behind.
    pub async fn revision(&self, id: i64) -> Result<Option<Revision>> {
        Ok(self.read_revision(id).await?.map(|(r, _)| r))
    }

    async fn read_revision(&self, id: i64) -> Result<Option<(Revision, Option<String>)>> {
        let b = self.backend();
        let q = |c: &str| b.quote(c);
        let mut s = format!(
            "SELECT {}, {}, {}, {}, {} FROM {} WHERE {} = ",
            q("id"),
            q("tables"),
            q("committed_at"),
            q("actor"),
            q("info"),
            q(REVISION_TABLE),
            q("id")
        );
        b.placeholder(1, &mut s);
        let sql: Arc<str> = s.into();
        let mut guard = self.lock_for_any_read().await?;
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let found = dispatch!(conn, |c, DB| {
            let args = DB::args_from_values(sea_query::Values(vec![id.into()]));
            self.run(
                None,
                &sql,
                DB::fetch_optional(c, sql.clone(), args, &RevisionRow),
            )
            .await?
        });
        // The open transaction's revision names its tables at commit.
        Ok(found.map(|(r, tables)| {
            let st = self.audit_state();
            let tables = if st.revision() == Some(id) {
                Some(st.tables_text())
            } else {
                tables
            };
            (r, tables)
        }))
    }

    /// Every row the revision `rev` changed, across the audited tables its
    /// transaction wrote, by table then key: each with its table, its key
    /// as text, and what was done to it. Empty for a revision that does not
    /// exist.
    ///
    /// # Cancel safety
    ///
    /// A read: dropped at any await point, it leaves nothing behind.
    pub async fn revision_changes(&self, rev: i64) -> Result<Vec<RevisionChange>> {
        let Some((_, tables)) = self.read_revision(rev).await? else {
            return Ok(Vec::new());
        };
        let b = self.backend();
        let q = |c: &str| b.quote(c);
        let mut tables = parse_tables(tables.as_deref().unwrap_or(""))?;
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (table, keys) in tables {
            let cols: Vec<String> = keys.iter().map(|(c, _)| q(c)).collect();
            let mut s = format!(
                "SELECT {}, {} FROM {} WHERE {} = ",
                q("change"),
                cols.join(", "),
                q(&format!("{table}_history")),
                q("revision")
            );
            b.placeholder(1, &mut s);
            s.push_str(&format!(" ORDER BY {}", cols.join(", ")));
            let sql: Arc<str> = s.into();
            let m = ChangeRow(keys.iter().map(|(_, t)| *t).collect());
            let mut guard = self.lock_unflushed().await?;
            let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
            let rows = dispatch!(conn, |c, DB| {
                let args = DB::args_from_values(sea_query::Values(vec![rev.into()]));
                self.run(None, &sql, DB::fetch_all(c, sql.clone(), args, &m))
                    .await?
            });
            out.extend(rows.into_iter().map(|(kind, key)| RevisionChange {
                table: table.clone(),
                key,
                kind,
            }));
        }
        Ok(out)
    }

    /// Writes the version of the row with `key` that revision `rev` left
    /// back, now, as a new change audited in the current transaction: an
    /// update of the row if it exists (soft-deleted or not), an insert if it
    /// was deleted. The version column is set to the current version + 1
    /// (the last recorded one + 1 for a deleted row), and `updated_at` to
    /// now. Answers the row as restored, which the session then holds.
    ///
    /// [`Error::Invalid`] if `rev` left no version of the row, or deleted it
    /// (restore the version before).
    ///
    /// # Cancel safety
    ///
    /// As every write of a session: dropped at any await point, nothing of
    /// it stays (the connection is discarded and the server rolls back) and
    /// the session answers [`Error::SessionFailed`] until
    /// [`rollback`](Session::rollback).
    pub async fn restore_version<T: Entity>(&self, key: &T::Key, rev: i64) -> Result<T> {
        let meta = T::META;
        let versions = self.history::<T>(key).await?;
        let Some(pos) = versions.iter().position(|v| v.revision.id == rev) else {
            return Err(Error::Invalid(format!(
                "revision {rev} left no version of {} {key:?}",
                meta.name
            )));
        };
        if versions[pos].kind == ChangeKind::Delete {
            return Err(Error::Invalid(format!(
                "revision {rev} deleted {} {key:?}: restore a revision before it",
                meta.name
            )));
        }
        let mut row = versions[pos].value.clone();
        let last_version = versions.last().and_then(|v| v.value.version());
        drop(versions);
        audit::needs_transaction(self, meta)?;
        let mut guard = self.lock().await?;
        let conn = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        self.will_write()?;
        let now = crate::model::value::truncate_micros(Utc::now());
        let out = self
            .step(async {
                let current = self.read_for_update::<T>(conn, key).await?;
                let existed = current.is_some();
                let base = match &current {
                    Some(cur) => cur.version(),
                    None => last_version,
                };
                if let Some(v) = base {
                    row.set_version(v.wrapping_add(1));
                }
                row.stamp_updated(now);
                let b = self.backend();
                let kind = if existed {
                    let cols: Vec<usize> = meta.update_columns().collect();
                    if !cols.is_empty() {
                        let sql: Arc<str> = sql::update_columns(b, meta, &cols, false).into();
                        self.write_row(conn, &sql, &row, &cols, Some(key)).await?;
                    }
                    ChangeKind::Update
                } else {
                    let cols: Vec<usize> = (0..meta.columns.len()).collect();
                    let sql: Arc<str> = insert_all(b, meta).into();
                    self.write_row(conn, &sql, &row, &cols, None).await?;
                    ChangeKind::Insert
                };
                let keys = vec![audit::key_values(meta, key)?];
                audit::record(self, conn, meta, kind, Rows::Keys(keys)).await
            })
            .await;
        self.fail_on_error(&mut guard, out).await?;
        drop(guard);
        self.cache_wrote(meta, vec![format!("{key:?}")], false);
        let mut uow = self.uow();
        uow.detach::<T>(key);
        uow.inserted(std::slice::from_ref(&row));
        Ok(row)
    }

    /// The stored row with `key`, soft-deleted or not, locked where the
    /// backend has row locks.
    async fn read_for_update<T: Entity>(
        &self,
        conn: &mut AnyConn,
        key: &T::Key,
    ) -> Result<Option<T>> {
        let b = self.backend();
        // A soft-deleted row is read too: restoring a version before its
        // delete brings it back.
        let mut s = sql::find_by_key_with_deleted(b, T::META);
        if b != Backend::Sqlite {
            s.push_str(" FOR UPDATE");
        }
        let sql: Arc<str> = s.into();
        Ok(dispatch!(conn, |c, DB| {
            let mut args = <DB as Driver>::Args::default();
            bind_key::<T, _>(key, &mut args)?;
            self.run(
                Some(T::META),
                &sql,
                DB::fetch_optional(c, sql.clone(), args, &crate::backend::Decoded::<T>::NEW),
            )
            .await?
        }))
    }

    /// Runs `sql` binding columns `cols` of `row`, then `key` if given.
    async fn write_row<T: Entity>(
        &self,
        conn: &mut AnyConn,
        sql: &Arc<str>,
        row: &T,
        cols: &[usize],
        key: Option<&T::Key>,
    ) -> Result<()> {
        dispatch!(conn, |c, DB| {
            let mut args = <DB as Driver>::Args::default();
            for i in cols {
                row.bind_column(*i, &mut args)?;
            }
            if let Some(k) = key {
                bind_key::<T, _>(k, &mut args)?;
            }
            self.run(Some(T::META), sql, DB::execute(c, sql.clone(), args))
                .await?;
        });
        Ok(())
    }
}

/// `INSERT INTO t (every column) VALUES (…)`: a restored row keeps its key,
/// a generated one included.
fn insert_all(b: Backend, meta: &EntityMeta) -> String {
    let mut s = format!("INSERT INTO {} (", b.quote(meta.table));
    let cols: Vec<String> = meta.columns.iter().map(|c| b.quote(c.name)).collect();
    s.push_str(&cols.join(", "));
    s.push_str(") VALUES (");
    for n in 1..=cols.len() {
        if n > 1 {
            s.push_str(", ");
        }
        b.placeholder(n, &mut s);
    }
    s.push(')');
    s
}
