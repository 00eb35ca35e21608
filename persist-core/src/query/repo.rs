//! [`Repo`]: the generic repository of an entity on a session.

use std::marker::PhantomData;

use crate::error::Result;
use crate::model::entity::Entity;
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
    pub async fn find_one_by<V: Field>(&self, col: Column<E, V>, v: V) -> Result<Option<E>> {
        self.query().filter(col.eq(v)).optional().await
    }

    /// Whether a row whose `col` equals `v` exists.
    pub async fn exists_by<V: Field>(&self, col: Column<E, V>, v: V) -> Result<bool> {
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
