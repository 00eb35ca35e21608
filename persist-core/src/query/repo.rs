//! [`Repo`]: the generic repository of an entity on a session.

use std::marker::PhantomData;

use crate::cache::CacheKey;
use crate::error::{Error, Result};
use crate::model::entity::Entity;
use crate::model::row::{Captured, capture_column};
use crate::model::value::Field;
use crate::query::column::Column;
use crate::query::entity_query::Query;
use crate::session::Session;

/// The repository of entity `E` on a session: the session's operations with
/// the entity type fixed.
///
/// `#[derive(Entity)]` generates `E::repo(&s)`, whose repository derefs to
/// this one and adds `find_by_<field>` / `exists_by_<field>` for unique fields
/// and `find_all_by_<field>` for indexed and foreign-key fields.
pub struct Repo<'s, E> {
    session: &'s Session,
    _marker: PhantomData<fn() -> E>,
}

impl Session {
    /// The generic repository of `E` on this session (the generated
    /// `E::repo(&s)` adds finders to it).
    pub fn repo<E: Entity>(&self) -> Repo<'_, E> {
        Repo::new(self)
    }
}

impl<E> Clone for Repo<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Repo<'_, E> {}

impl<E> std::fmt::Debug for Repo<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("entity", &std::any::type_name::<E>())
            .finish()
    }
}

impl<'s, E: Entity> Repo<'s, E> {
    /// The repository of `E` on `session`.
    pub fn new(session: &'s Session) -> Self {
        Repo {
            session,
            _marker: PhantomData,
        }
    }

    /// The session this repository works in.
    pub fn session(&self) -> &'s Session {
        self.session
    }

    /// See [`Session::find`].
    pub async fn find(&self, key: &E::Key) -> Result<Option<E>> {
        self.session.find::<E>(key).await
    }

    /// See [`Session::find_many`].
    pub async fn find_many(&self, keys: &[E::Key]) -> Result<Vec<E>> {
        self.session.find_many::<E>(keys).await
    }

    /// See [`Session::all`].
    pub async fn all(&self) -> Result<Vec<E>> {
        self.session.all::<E>().await
    }

    /// See [`Session::count`].
    pub async fn count(&self) -> Result<u64> {
        self.session.count::<E>().await
    }

    /// See [`Session::exists`].
    pub async fn exists(&self, key: &E::Key) -> Result<bool> {
        self.session.exists::<E>(key).await
    }

    /// See [`Session::insert`].
    pub async fn insert(&self, value: E) -> Result<E> {
        self.session.insert(value).await
    }

    /// See [`Session::insert_many`].
    pub async fn insert_many(&self, values: Vec<E>) -> Result<Vec<E>> {
        self.session.insert_many(values).await
    }

    /// See [`Session::add`].
    pub fn add(&self, value: E) -> Result<()> {
        self.session.add(value)
    }

    /// See [`Session::add_many`].
    pub fn add_many(&self, values: Vec<E>) -> Result<()> {
        self.session.add_many(values)
    }

    /// See [`Session::update`].
    pub fn update(&self, value: &mut E) -> Result<()> {
        self.session.update(value)
    }

    /// See [`Session::delete`].
    pub fn delete(&self, value: &E) -> Result<()> {
        self.session.delete(value)
    }

    /// See [`Session::delete_by_key`].
    pub fn delete_by_key(&self, key: &E::Key) -> Result<()> {
        self.session.delete_by_key::<E>(key)
    }

    /// See [`Session::upsert`].
    pub async fn upsert(&self, value: E) -> Result<E> {
        self.session.upsert(value).await
    }

    /// See [`Session::query`].
    pub fn query(&self) -> Query<'s, E> {
        self.session.query::<E>()
    }

    /// The row whose `col` equals `v` (for unique columns), if any.
    ///
    /// For a `unique` column of a cached entity the shared cache keeps a
    /// unique-key index (the value → the row's key): a hit is answered by
    /// [`find`](Session::find) on that key (identity map → cache →
    /// database) and used only if that row's column still equals `v`;
    /// otherwise — or on a miss — the database answers, and the row and its
    /// index entry are put. No invalidation is needed: a stale index entry
    /// fails the check and is replaced.
    pub async fn find_one_by<V: Field>(&self, col: Column<E, V>, v: V) -> Result<Option<E>> {
        let s = self.session;
        let Some((ck, value)) = s.unique_entry::<E, V>(col.index(), &v) else {
            return self.query().filter(col.eq(v)).optional().await;
        };
        if let Some(row) = self.indexed(&ck, col.index(), &value).await? {
            return Ok(Some(row));
        }
        let mut rows = s.fetch_raw(self.query().filter(col.eq(v)).limit(2)).await?;
        if rows.len() > 1 {
            return Err(Error::TooManyRows);
        }
        let Some(row) = rows.pop() else {
            return Ok(None);
        };
        s.cache_put_loaded(std::slice::from_ref(&row)).await;
        s.cache_unique_put::<E>(&ck, &row).await;
        Ok(s.merge_row(row, s.default_merge()))
    }

    /// The row the unique-index entry `ck` leads to, if its column `col`
    /// still holds `value`.
    async fn indexed(&self, ck: &CacheKey, col: usize, value: &Captured) -> Result<Option<E>> {
        let Some(key) = self.session.cache_unique_key::<E>(ck).await else {
            return Ok(None);
        };
        Ok(self
            .session
            .find::<E>(&key)
            .await?
            .filter(|row| capture_column(row, col).is_ok_and(|c| c == *value)))
    }

    /// Whether a row whose `col` equals `v` exists (for a `unique` column
    /// of a cached entity, a verified hit of the unique-key index of
    /// [`find_one_by`](Repo::find_one_by) answers "yes").
    pub async fn exists_by<V: Field>(&self, col: Column<E, V>, v: V) -> Result<bool> {
        if let Some((ck, value)) = self.session.unique_entry::<E, V>(col.index(), &v)
            && self.indexed(&ck, col.index(), &value).await?.is_some()
        {
            return Ok(true);
        }
        self.query().filter(col.eq(v)).exists().await
    }

    /// Every row whose `col` equals `v`, in key order.
    pub async fn find_all_by<V: Field>(&self, col: Column<E, V>, v: V) -> Result<Vec<E>> {
        let mut q = self.query().filter(col.eq(v));
        for i in E::META.primary_key {
            q = q.order_by_index(*i);
        }
        q.all().await
    }
}
