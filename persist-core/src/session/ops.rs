//! The operations of a session: reads through the identity map, immediate
//! inserts, and registered changes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::exec::prepare_insert;
use super::{Session, bind_key, count_of, fetch_entities};
use crate::backend::{AnyConn, AnyRow, Decoded, Driver, FirstInt, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::Entity;
use crate::session::uow::{Lookup, Merge};
use crate::sql::statements::{self as sql, Shape};

/// Turns autoflush back on when dropped; see [`Session::no_autoflush`].
#[derive(Debug)]
#[must_use = "autoflush is back on as soon as the guard is dropped"]
pub struct AutoflushGuard {
    session: Session,
    previous: bool,
}

impl Drop for AutoflushGuard {
    fn drop(&mut self) {
        self.session
            .inner
            .autoflush
            .store(self.previous, Ordering::Release);
    }
}

impl Session {
    pub(crate) fn default_merge(&self) -> Merge {
        if self.uow().identity_map {
            Merge::Track
        } else {
            Merge::Fresh
        }
    }

    /// Passes rows read from the database through the identity map.
    pub(crate) fn merge_rows<E: Entity>(&self, rows: Vec<E>, merge: Merge) -> Vec<E> {
        if merge == Merge::Raw {
            return rows;
        }
        let mut uow = self.uow();
        let out: Vec<E> = rows
            .into_iter()
            .filter_map(|r| uow.loaded(r, merge))
            .collect();
        uow.enforce_limit();
        out
    }

    /// [`merge_rows`](Session::merge_rows) for one row.
    pub(crate) fn merge_row<E: Entity>(&self, row: E, merge: Merge) -> Option<E> {
        if merge == Merge::Raw {
            return Some(row);
        }
        let mut uow = self.uow();
        let out = uow.loaded(row, merge);
        uow.enforce_limit();
        out
    }

    // ----- the identity map and autoflush -----------------------------------

    /// Turns autoflush off until the guard is dropped: reads no longer write
    /// registered changes first (they may then miss them). For bulk work.
    pub fn no_autoflush(&self) -> AutoflushGuard {
        let previous = self.inner.autoflush.swap(false, Ordering::AcqRel);
        AutoflushGuard {
            session: self.clone(),
            previous,
        }
    }

    /// Forgets every entry of the identity map *and* every registered change
    /// not yet flushed (call [`flush`](Session::flush) first to keep them).
    /// For long batch jobs.
    pub fn clear(&self) {
        self.uow().clear();
    }

    /// Forgets `value`'s entry and any change registered for it. Returns
    /// whether the session held it.
    pub fn detach<E: Entity>(&self, value: &E) -> bool {
        self.uow().detach::<E>(&value.key())
    }

    /// Whether the session holds `value`'s row (loaded, inserted or
    /// registered).
    pub fn contains<E: Entity>(&self, value: &E) -> bool {
        !matches!(self.uow().lookup::<E>(&value.key()), Lookup::Missing)
    }

    /// Number of rows in the identity map.
    pub fn identity_map_len(&self) -> usize {
        self.uow().len()
    }

    // ----- reads -------------------------------------------------------------

    /// The row with primary key `key`, if any. A composite key is a tuple:
    /// `s.find::<OrderLine>(&(order_id, line_no))`.
    ///
    /// With the identity map on, a key the session already loaded, inserted
    /// or registered comes back from the map with no SQL, in its in-session
    /// state; a key registered for delete is not found.
    pub async fn find<E: Entity>(&self, key: &E::Key) -> Result<Option<E>> {
        self.check_open()?;
        if let Some(held) = self.held::<E>(key) {
            return Ok(held);
        }
        if let Some(found) = self.find_cached::<E>(key).await? {
            return Ok(found);
        }
        self.load_by_key::<E>(key, self.default_merge()).await
    }

    /// Reads the row with `key` from the database, unmerged.
    pub(crate) async fn load_by_key_raw<E: Entity>(&self, key: &E::Key) -> Result<Option<E>> {
        self.load_by_key::<E>(key, Merge::Raw).await
    }

    /// What the identity map answers for `key`: `Some(Some(row))` for a row
    /// it holds, `Some(None)` for a key registered for delete, `None` when
    /// the database must answer (key not held, or the map is off).
    fn held<E: Entity>(&self, key: &E::Key) -> Option<Option<E>> {
        let uow = self.uow();
        if !uow.identity_map {
            return None;
        }
        match uow.lookup::<E>(key) {
            Lookup::Found(v) => Some(Some(v)),
            Lookup::Deleted => Some(None),
            Lookup::Missing => None,
        }
    }

    async fn load_by_key<E: Entity>(&self, key: &E::Key, merge: Merge) -> Result<Option<E>> {
        let mut guard = self.lock_for_read(E::META.table).await?;
        let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        let row = self.read_by_key::<E>(tx, key).await?;
        Ok(row.and_then(|r| self.merge_row(r, merge)))
    }

    /// Reads the row with `key` on `conn` (in the session's transaction),
    /// unmerged.
    pub(crate) async fn read_by_key<E: Entity>(
        &self,
        conn: &mut AnyConn,
        key: &E::Key,
    ) -> Result<Option<E>> {
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::FindByKey, || sql::find_by_key(b, E::META));
        Ok(dispatch!(conn, |c, DB| {
            let mut args = <DB as crate::backend::Driver>::Args::default();
            bind_key::<E, _>(key, &mut args)?;
            self.run(
                Some(E::META),
                &sql,
                DB::fetch_optional(c, sql.clone(), args, &Decoded::<E>::NEW),
            )
            .await?
        }))
    }

    /// [`read_by_key`](Session::read_by_key), finding a soft-deleted row
    /// too (an upsert reads back the row it wrote, marked or not).
    pub(crate) async fn read_by_key_with_deleted<E: Entity>(
        &self,
        conn: &mut AnyConn,
        key: &E::Key,
    ) -> Result<Option<E>> {
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::FindByKeyWithDeleted, || {
            sql::find_by_key_with_deleted(b, E::META)
        });
        Ok(dispatch!(conn, |c, DB| {
            let mut args = <DB as crate::backend::Driver>::Args::default();
            bind_key::<E, _>(key, &mut args)?;
            self.run(
                Some(E::META),
                &sql,
                DB::fetch_optional(c, sql.clone(), args, &Decoded::<E>::NEW),
            )
            .await?
        }))
    }

    /// Reads `value`'s row again from the database and replaces what the
    /// session holds (pending edits of it included: they are dropped, not
    /// written). [`Error::NotFound`] if the row is gone.
    ///
    /// For a cached entity the shared cache then holds what it read: the
    /// row is put where a `find`'s load could be (the transaction has not
    /// written the table, and the key was not invalidated since it began),
    /// else the key is evicted (as for a row that is gone), so the next
    /// read anywhere loads it from the database.
    pub async fn refresh<E: Entity>(&self, value: &mut E) -> Result<()> {
        self.check_open()?;
        // Drop this row's pending change first, so that the autoflush before
        // the read does not write what the refresh is meant to discard.
        let key = value.key();
        self.uow().detach::<E>(&key);
        let fresh = self.load_by_key::<E>(&key, Merge::Overwrite).await?;
        if self.caches(E::META) {
            self.cache_refreshed::<E>(&key, fresh.as_ref()).await;
        }
        match fresh {
            Some(fresh) => {
                *value = fresh;
                Ok(())
            }
            None => Err(Error::NotFound),
        }
    }

    /// The rows with the given keys, in the order of `keys` (missing keys are
    /// skipped, duplicates returned once). Keys the identity map holds are
    /// served from it; the others are read in one statement per chunk of
    /// keys under the bind limit (a single-column key on PostgreSQL: one
    /// statement, `key = ANY($1)` with the keys as one array bind). For a cached entity the shared cache
    /// answers next, in one call for all the keys left
    /// ([`SharedCache::get_many`](crate::cache::SharedCache::get_many)), under
    /// the rules of [`find`](Session::find); only the keys it misses are read
    /// from the database, and those rows are put. (Unlike `find`, concurrent
    /// misses of the same keys are not coalesced.)
    pub async fn find_many<E: Entity>(&self, keys: &[E::Key]) -> Result<Vec<E>> {
        self.check_open()?;
        let mut found: HashMap<E::Key, Option<E>> = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        if self.uow().identity_map {
            let uow = self.uow();
            for k in keys {
                match uow.lookup::<E>(k) {
                    Lookup::Found(v) => {
                        found.insert(k.clone(), Some(v));
                    }
                    Lookup::Deleted => {
                        found.insert(k.clone(), None);
                    }
                    Lookup::Missing => missing.push(k.clone()),
                }
            }
        } else {
            missing.extend(keys.iter().cloned());
        }
        missing.sort();
        missing.dedup();
        let cached = self.caches(E::META);
        if cached && !missing.is_empty() {
            let texts: Vec<String> = missing.iter().map(|k| format!("{k:?}")).collect();
            let hits = self.cache_lookup::<E>(&texts).await?;
            let mut rows = Vec::new();
            let mut rest = Vec::new();
            for (k, hit) in missing.into_iter().zip(hits) {
                match hit {
                    Some(row) => rows.push(row),
                    None => rest.push(k),
                }
            }
            for row in self.merge_rows(rows, Merge::Track) {
                found.insert(row.key(), Some(row));
            }
            missing = rest;
        }
        let chunk = crate::query::Query::<E>::keys_per_statement(self.backend(), &missing);
        for part in missing.chunks(chunk) {
            let q = self.query::<E>().key_in(part);
            let rows = self.fetch_putting(q, cached).await?;
            for row in rows {
                found.insert(row.key(), Some(row));
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for k in keys {
            if let Some(Some(row)) = found.remove(k) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Every row of the table, in key order.
    pub async fn all<E: Entity>(&self) -> Result<Vec<E>> {
        let mut guard = self.lock_for_read(E::META.table).await?;
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::SelectAll, || {
            let mut s = sql::select_all(b, E::META);
            s.push_str(" ORDER BY ");
            let keys: Vec<String> = E::META
                .primary_key
                .iter()
                .map(|i| b.quote(E::META.columns[*i].name))
                .collect();
            s.push_str(&keys.join(", "));
            s
        });
        fetch_entities::<E>(self, &mut guard, sql, Vec::new()).await
    }

    /// Number of rows in the table (after writing its registered changes).
    pub async fn count<E: Entity>(&self) -> Result<u64> {
        let mut guard = self.lock_for_read(E::META.table).await?;
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::Count, || sql::count(b, E::META));
        let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        dispatch!(tx, |c, DB| {
            let n = self
                .run(
                    Some(E::META),
                    &sql,
                    DB::fetch_optional(c, sql.clone(), Default::default(), &FirstInt),
                )
                .await?;
            count_of(n)
        })
    }

    /// Whether a row with primary key `key` exists (answered from the
    /// identity map when it holds the key, then, for a cached entity, from
    /// the shared cache when it holds the row, under the rules of
    /// [`find`](Session::find)).
    pub async fn exists<E: Entity>(&self, key: &E::Key) -> Result<bool> {
        self.check_open()?;
        if let Some(held) = self.held::<E>(key) {
            return Ok(held.is_some());
        }
        // A cached row answers "yes"; a miss asks the database (nothing is
        // put: the statement reads no row).
        if self.caches(E::META)
            && let [Some(_)] = self.cache_lookup::<E>(&[format!("{key:?}")]).await?[..]
        {
            return Ok(true);
        }
        let mut guard = self.lock_for_read(E::META.table).await?;
        let b = self.backend();
        let sql = E::sql_cache().get(b, Shape::ExistsByKey, || sql::exists_by_key(b, E::META));
        let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        dispatch!(tx, |c, DB| {
            let mut args = <DB as crate::backend::Driver>::Args::default();
            bind_key::<E, _>(key, &mut args)?;
            let row = self
                .run(
                    Some(E::META),
                    &sql,
                    DB::fetch_optional(c, sql.clone(), args, &AnyRow),
                )
                .await?;
            Ok(row.is_some())
        })
    }

    // ----- immediate writes ----------------------------------------------------

    /// Inserts `value` now (after writing registered changes) and returns it
    /// as stored: with its generated key, `version` (1 if it was 0) and
    /// timestamps filled in.
    pub async fn insert<E: Entity>(&self, value: E) -> Result<E> {
        let mut out = self.insert_many(vec![value]).await?;
        out.pop().ok_or(Error::NotFound)
    }

    /// Inserts all `values` now in multi-row `INSERT`s of a few fixed sizes
    /// under the bind limit, and returns them with generated keys
    /// (PostgreSQL and SQLite: `RETURNING`; MySQL: `LAST_INSERT_ID()` plus
    /// consecutive ids).
    pub async fn insert_many<E: Entity>(&self, values: Vec<E>) -> Result<Vec<E>> {
        if values.len() > 1 {
            self.one_statement_only("insert_many of several rows")?;
        }
        let mut values = values;
        prepare_insert(&mut values);
        self.before_immediate(&mut values)?;
        let mut guard = self.lock().await?;
        let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        self.will_write()?;
        // One step for all chunks: a cut between two leaves rows the
        // session does not know of.
        let out = self
            .step(super::exec::insert_rows_audited(self, tx, &mut values))
            .await;
        self.fail_on_error(&mut guard, out).await?;
        self.after_immediate(&values);
        self.cache_wrote(E::META, Vec::new(), false);
        if self.caches(E::META) {
            let rows = values
                .iter()
                .filter_map(|v| Some((format!("{:?}", v.key()), crate::cache::encode_row(v).ok()?)))
                .collect();
            self.cache_inserted(E::META, rows);
        }
        self.uow().inserted(&values);
        Ok(values)
    }

    /// Inserts `value`, or updates the existing row with the same key, now.
    ///
    /// The conflict target is the primary key; for an entity with an
    /// auto-increment key it is the first `unique` field instead. On
    /// PostgreSQL and SQLite (`ON CONFLICT (target) DO UPDATE`) a conflict on
    /// any *other* unique key is an [`Error::UniqueViolation`]. On MySQL
    /// (`ON DUPLICATE KEY UPDATE`) a conflict on *any* unique key updates
    /// that row. The version is written as given, not checked.
    pub async fn upsert<E: Entity>(&self, value: E) -> Result<E> {
        self.upsert_with(value).run(false).await
    }

    // ----- registered changes ----------------------------------------------------

    /// Registers `value` for insertion at the next flush (batched with the
    /// other rows of its table). Use it when the key is known or not needed;
    /// [`Session::insert`] returns generated keys. Adding a key the session
    /// already holds is [`Error::UniqueViolation`] at once; adding a key
    /// registered for delete turns both into one update.
    pub fn add<E: Entity>(&self, value: E) -> Result<()> {
        self.add_many(vec![value])
    }

    /// Registers several values for insertion at the next flush.
    pub fn add_many<E: Entity>(&self, values: Vec<E>) -> Result<()> {
        self.check_open()?;
        let mut values = values;
        prepare_insert(&mut values);
        let mut uow = self.uow();
        for v in values {
            uow.add(v)?;
        }
        Ok(())
    }

    /// Registers an update of `value`. At flush, only the columns that differ
    /// from the snapshot the session took when it loaded the row are sent;
    /// an unchanged value registers nothing and sends nothing. A value the
    /// session never loaded updates every column.
    ///
    /// With a `version` field, `value` gets the bumped version at once and
    /// the flush checks the version it had; `updated_at` is set to now. A
    /// version mismatch at flush is [`Error::Stale`].
    pub fn update<E: Entity>(&self, value: &mut E) -> Result<()> {
        self.check_open()?;
        let now = crate::model::value::truncate_micros(chrono::Utc::now());
        self.uow().update(value, now)
    }

    /// Registers a delete of `value`'s row (checking its version, if any).
    ///
    /// For a `#[persist(soft_delete)]` entity the flush marks the row
    /// instead of removing it (`UPDATE … SET deleted_at = now`), soft-deletes
    /// its live children declared `on_delete = "cascade"` that have a
    /// `soft_delete` column too, and every read stops seeing them. See
    /// [`delete_permanently`](Session::delete_permanently) and
    /// [`restore`](Session::restore), and the reference's "Soft delete".
    pub fn delete<E: Entity>(&self, value: &E) -> Result<()> {
        self.check_open()?;
        self.uow().delete::<E>(value.key(), Some(value), false);
        Ok(())
    }

    /// Registers a delete of the row with `key`, without a version check
    /// (for a `#[persist(soft_delete)]` entity: a soft delete, as
    /// [`delete`](Session::delete)).
    pub fn delete_by_key<E: Entity>(&self, key: &E::Key) -> Result<()> {
        self.check_open()?;
        self.uow().delete::<E>(key.clone(), None, false);
        Ok(())
    }

    /// Registers a real `DELETE` of `value`'s row (checking its version, if
    /// any), soft-deleted or not, for a `#[persist(soft_delete)]` entity; the
    /// database's own `ON DELETE CASCADE` then removes the children. For an
    /// entity without a `soft_delete` column it is [`delete`](Session::delete).
    pub fn delete_permanently<E: Entity>(&self, value: &E) -> Result<()> {
        self.check_open()?;
        self.uow().delete::<E>(value.key(), Some(value), true);
        Ok(())
    }

    /// Registers a real `DELETE` of the row with `key`, without a version
    /// check: [`delete_permanently`](Session::delete_permanently) by key.
    pub fn delete_permanently_by_key<E: Entity>(&self, key: &E::Key) -> Result<()> {
        self.check_open()?;
        self.uow().delete::<E>(key.clone(), None, true);
        Ok(())
    }

    /// Registers an update that clears `value`'s `#[persist(soft_delete)]`
    /// column (checking and bumping its version, as
    /// [`update`](Session::update) does): after the flush the row is seen by
    /// every read again. Read the row with
    /// [`with_deleted`](crate::query::Query::with_deleted) first. Children a
    /// cascade soft-deleted with it stay soft-deleted: restore them too if
    /// they should come back. [`Error::Invalid`] for an entity without a
    /// `soft_delete` column.
    pub fn restore<E: Entity>(&self, value: &mut E) -> Result<()> {
        self.check_open()?;
        if E::META.soft_delete.is_none() {
            return Err(Error::Invalid(format!(
                "{} has no #[persist(soft_delete)] column: there is nothing to restore",
                E::META.name
            )));
        }
        value.set_soft_deleted(None);
        self.update(value)
    }
}
