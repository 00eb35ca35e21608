//! Batched loading of related rows: one query per relation (on PostgreSQL
//! the keys go as one array bind, `= ANY($1)`; elsewhere one query per
//! 10 000 keys, `IN (…)`), never one per parent row.
//!
//! Order: the results follow the input slice (one entry per input row,
//! duplicates included), and the rows of a group come in the [`Ord`] order
//! of their primary key, sorted in memory (numbers by value, text byte by
//! byte, on every backend alike); the statements carry no `ORDER BY`.
//!
//! ```
//! # use persist_core::prelude::*;
//! #[derive(Entity, Clone, Debug)]
//! #[persist(has_many(Post, by = "user_id"))]
//! pub struct User { #[persist(primary_key, auto_increment)] pub id: i64, pub name: String }
//!
//! #[derive(Entity, Clone, Debug)]
//! pub struct Post {
//!     #[persist(primary_key, auto_increment)] pub id: i64,
//!     #[persist(references = "User")] pub user_id: i64,
//!     pub title: String,
//! }
//! # async fn demo(s: &Session) -> Result<(), Error> {
//! let users = s.all::<User>().await?;
//! let posts: Vec<Vec<Post>> = users.load::<Post>(s).await?;   // one SELECT … WHERE user_id = ANY($1) / IN (…)
//! let authors: Vec<Option<User>> = s.load_parents::<User, _>(&posts.concat()).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use sea_query::{Alias, Cond, Expr, ExprTrait, SelectStatement};

use crate::error::{Error, Result};
use crate::model::entity::{BelongsTo, Entity, EntityMeta, Related, RelationKind, RelationMeta};
use crate::model::value::RowReader;
use crate::query::column::Column;
use crate::query::entity_query::{Query, Visibility};
use crate::query::relation::{self, KeyValue, RowMap};
use crate::session::Session;
use crate::session::uow::Merge;
use crate::sql::Backend;

/// Keys per `IN` list: under every backend's bind limit, and small enough
/// that the statement stays cheap to parse. (A PostgreSQL array bind has
/// no such limit: all the keys go in one statement.)
const KEYS_PER_QUERY: usize = 10_000;

/// `values` in the lists of one statement each: one list for an array
/// bind, else lists of at most [`KEYS_PER_QUERY`].
fn parts(b: Backend, values: &[sea_query::Value]) -> std::slice::Chunks<'_, sea_query::Value> {
    let n = if relation::binds_as_array(b, values) {
        values.len().max(1)
    } else {
        KEYS_PER_QUERY
    };
    values.chunks(n)
}

/// Puts each group in the `Ord` order of its rows' keys: the order
/// the loaders promise, kept in memory rather than asked of the database
/// (an `ORDER BY` key there can make the planner walk the key index instead
/// of the foreign key's).
fn sort_groups<C: Entity>(groups: &mut HashMap<KeyValue, Vec<C>>) {
    for g in groups.values_mut() {
        if !g.is_sorted_by(|a, b| a.key() <= b.key()) {
            g.sort_by_cached_key(|c| c.key());
        }
    }
}

fn col_expr(meta: &EntityMeta, col: usize) -> Expr {
    Expr::col((Alias::new(meta.table), Alias::new(meta.columns[col].name)))
}

/// Distinct non-`NULL` key values, in first-seen order, and each input's key.
struct Keys {
    per_row: Vec<KeyValue>,
    /// The distinct keys, in the order of `values`.
    distinct: Vec<KeyValue>,
    values: Vec<sea_query::Value>,
}

impl Keys {
    fn collect<T>(
        rows: &[T],
        key: impl Fn(&T) -> Result<(KeyValue, sea_query::Value)>,
    ) -> Result<Keys> {
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        let mut per_row = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.len());
        let mut distinct = Vec::with_capacity(rows.len());
        for r in rows {
            let (k, v) = key(r)?;
            if k != KeyValue::Null && seen.insert(k.clone()) {
                values.push(v);
                distinct.push(k.clone());
            }
            per_row.push(k);
        }
        Ok(Keys {
            per_row,
            distinct,
            values,
        })
    }

    fn chunks(&self, b: Backend) -> impl Iterator<Item = &[sea_query::Value]> {
        parts(b, &self.values)
    }

    /// Hands each input row the group of its key, in input order (a group
    /// shared by several rows is cloned for all but the last).
    fn distribute<G: Clone + Default>(&self, mut groups: HashMap<KeyValue, G>) -> Vec<G> {
        let mut left: HashMap<&KeyValue, usize> = HashMap::new();
        for k in &self.per_row {
            *left.entry(k).or_default() += 1;
        }
        self.per_row
            .iter()
            .map(|k| {
                let n = left.get_mut(k).map(|n| {
                    *n -= 1;
                    *n
                });
                match n {
                    Some(0) => groups.remove(k).unwrap_or_default(),
                    _ => groups.get(k).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }
}

fn check_relation<C: Entity>(owner: &EntityMeta, rel: &RelationMeta) -> Result<()> {
    let target = (rel.target)();
    let fk_owner = rel.fk_owner();
    if !target.same_as(C::META) || rel.by >= fk_owner.columns.len() {
        return Err(Error::Invalid(format!(
            "relation {} -> {} does not match its metadata",
            owner.name,
            C::META.name
        )));
    }
    Ok(())
}

/// The text a key value has as a cache key (`Debug` of the key type), for
/// the key types whose `Debug` it can tell; `None` for the others.
fn cache_text(k: &KeyValue) -> Option<String> {
    Some(match k {
        KeyValue::Int(i) => i.to_string(),
        KeyValue::Text(t) => format!("{t:?}"),
        KeyValue::Bool(b) => b.to_string(),
        KeyValue::Bytes(b) => format!("{b:?}"),
        KeyValue::Uuid(u) => format!("{u:?}"),
        KeyValue::Date(d) => format!("{d:?}"),
        KeyValue::Null | KeyValue::Other(_) => return None,
    })
}

/// Decodes a target row followed by the join entity's foreign key.
struct WithLink<C> {
    link: usize,
    link_meta: &'static EntityMeta,
    link_col: usize,
    _marker: std::marker::PhantomData<fn() -> C>,
}

impl<C: Entity> RowMap for WithLink<C> {
    type Out = (KeyValue, C);
    fn map<R: RowReader>(&self, row: &R) -> Result<(KeyValue, C)> {
        let c = &self.link_meta.columns[self.link_col];
        let k = relation::read_key(row, self.link, c.sql_type, c.name)?;
        Ok((k, C::decode_row(row, 0)?))
    }
}

impl Session {
    /// The `C` rows related to each of `parents` through the relation `P`
    /// declares (`has_many`, `has_one` or `many_to_many`): one group per
    /// parent, in the order of `parents` (a parent given twice gets its
    /// group twice), each group in the [`Ord`] order of `C`'s key (numbers
    /// by value, text byte by byte rather than by the database's collation;
    /// the same on every backend, sorted in memory, so the statement has no
    /// `ORDER BY`).
    ///
    /// One `SELECT … WHERE fk = ANY($1)` on PostgreSQL, with the distinct
    /// parent keys as one array bind, whatever their number; elsewhere one
    /// `SELECT … WHERE fk IN (…)` per 10 000 distinct keys (a join with the
    /// join entity for a many-to-many): loading users, their posts and the
    /// posts' comments is three statements, however many rows.
    pub async fn load_related<C: Entity, P: Related<C>>(
        &self,
        parents: &[P],
    ) -> Result<Vec<Vec<C>>> {
        let rel = P::RELATION;
        check_relation::<C>(P::META, rel)?;
        match rel.kind {
            RelationKind::HasMany | RelationKind::HasOne => {
                self.children_by_index::<C, P>(rel.by, parents).await
            }
            RelationKind::ManyToMany => self.many_to_many::<C, P>(rel, parents).await,
        }
    }

    /// The `C` row of each of `parents` through a `has_one` (or, of a
    /// `has_many`, the one with the least key in [`Ord`] order), in the
    /// order of `parents`.
    pub async fn load_one<C: Entity, P: Related<C>>(
        &self,
        parents: &[P],
    ) -> Result<Vec<Option<C>>> {
        let groups = self.load_related::<C, P>(parents).await?;
        Ok(groups.into_iter().map(|g| g.into_iter().next()).collect())
    }

    /// The `C` rows whose column `fk` holds each parent's key, grouped in
    /// the order of `parents`, each group in the `Ord` order of `C`'s key
    /// (as [`load_related`](Session::load_related)): a has-many that is not
    /// declared, or one of several to the same entity (`Post::EDITOR_ID`).
    /// One statement (PostgreSQL) or one per 10 000 distinct keys.
    pub async fn load_children_by<C: Entity, V, P: Entity>(
        &self,
        fk: Column<C, V>,
        parents: &[P],
    ) -> Result<Vec<Vec<C>>> {
        self.children_by_index::<C, P>(fk.index(), parents).await
    }

    /// The `P` row each of `children` references through its foreign key to
    /// `P` (`None` for a `NULL` key or a missing row), in the order of
    /// `children`. One statement (PostgreSQL) or one per 10 000 distinct
    /// keys, for the keys the shared cache did not answer.
    pub async fn load_parents<P: Entity, C: BelongsTo<P>>(
        &self,
        children: &[C],
    ) -> Result<Vec<Option<P>>> {
        self.parents_by_index::<P, C>(C::COLUMN, children).await
    }

    /// Like [`load_parents`](Session::load_parents) through an explicit
    /// foreign-key column: for entities with several references to `P`.
    pub async fn load_parents_by<P: Entity, C: Entity, V>(
        &self,
        fk: Column<C, V>,
        children: &[C],
    ) -> Result<Vec<Option<P>>> {
        self.parents_by_index::<P, C>(fk.index(), children).await
    }

    async fn children_by_index<C: Entity, P: Entity>(
        &self,
        fk: usize,
        parents: &[P],
    ) -> Result<Vec<Vec<C>>> {
        let keys = Keys::collect(parents, relation::primary_key::<P>)?;
        let b = self.backend();
        let mut groups: HashMap<KeyValue, Vec<C>> = HashMap::new();
        for part in keys.chunks(b) {
            let cond = Cond::all().add(relation::in_list(b, col_expr(C::META, fk), part.to_vec()));
            let rows = Query::<C>::new(self).filter_cond(Ok(cond)).all().await?;
            for row in rows {
                let (k, _) = relation::column_key(&row, fk)?;
                groups.entry(k).or_default().push(row);
            }
        }
        sort_groups(&mut groups);
        Ok(keys.distribute(groups))
    }

    async fn parents_by_index<P: Entity, C: Entity>(
        &self,
        fk: usize,
        children: &[C],
    ) -> Result<Vec<Option<P>>> {
        if fk >= C::META.columns.len() {
            return Err(Error::Invalid(format!(
                "{} has no column #{fk}",
                C::META.name
            )));
        }
        let keys = Keys::collect(children, |c| relation::column_key(c, fk))?;
        let pk = relation::single_key_column(P::META)?;
        let mut found: HashMap<KeyValue, Option<P>> = HashMap::new();
        let cached = self.caches(P::META);
        if cached {
            // The shared cache first; a key whose text is not the one `find`
            // caches under simply misses (a hit is the row with that key).
            let texts: Vec<String> = keys.distinct.iter().filter_map(cache_text).collect();
            let hits: Vec<P> = self
                .cache_lookup::<P>(&texts)
                .await?
                .into_iter()
                .flatten()
                .collect();
            for row in self.merge_rows(hits, Merge::Track) {
                let (k, _) = relation::primary_key(&row)?;
                found.insert(k, Some(row));
            }
        }
        let pending: Vec<sea_query::Value> = keys
            .distinct
            .iter()
            .zip(&keys.values)
            .filter(|(k, _)| !found.contains_key(*k))
            .map(|(_, v)| v.clone())
            .collect();
        let b = self.backend();
        for part in parts(b, &pending) {
            let cond = Cond::all().add(relation::in_list(b, col_expr(P::META, pk), part.to_vec()));
            let q = Query::<P>::new(self).filter_cond(Ok(cond));
            let rows = self.fetch_putting(q, cached).await?;
            for row in rows {
                let (k, _) = relation::primary_key(&row)?;
                found.insert(k, Some(row));
            }
        }
        Ok(keys.distribute(found))
    }

    /// Runs `q`; with `cached` (`E` is in the shared cache), the rows read
    /// are put in the cache (where that is safe) before they are merged
    /// into the identity map.
    pub(crate) async fn fetch_putting<E: Entity>(
        &self,
        q: Query<'_, E>,
        cached: bool,
    ) -> Result<Vec<E>> {
        if !cached {
            return q.all().await;
        }
        let raw = self.fetch_raw(q).await?;
        self.cache_put_loaded(&raw).await;
        Ok(self.merge_rows(raw, self.default_merge()))
    }

    /// Runs `q` (after the table's autoflush) and answers its rows as read,
    /// not merged into the identity map: for rows to be put in the shared
    /// cache before they are merged.
    pub(crate) async fn fetch_raw<E: Entity>(&self, mut q: Query<'_, E>) -> Result<Vec<E>> {
        q.check()?;
        let (sql, values) = self.backend().sea().build_select(&q.base_select());
        let mut guard = self.lock_for_read(E::META.table).await?;
        crate::session::fetch_entities_merged::<E>(
            self,
            &mut guard,
            Arc::from(sql),
            values.0,
            Merge::Raw,
        )
        .await
    }

    async fn many_to_many<C: Entity, P: Entity>(
        &self,
        rel: &RelationMeta,
        parents: &[P],
    ) -> Result<Vec<Vec<C>>> {
        let Some((through, to)) = rel.through else {
            return Err(Error::Invalid(format!(
                "many-to-many {} -> {} has no join entity",
                P::META.name,
                C::META.name
            )));
        };
        let link = through();
        let keys = Keys::collect(parents, relation::primary_key::<P>)?;
        let pk = relation::single_key_column(C::META)?;
        let map = WithLink::<C> {
            link: C::META.columns.len(),
            link_meta: link,
            link_col: rel.by,
            _marker: std::marker::PhantomData,
        };
        let b = self.backend();
        let mut groups: HashMap<KeyValue, Vec<C>> = HashMap::new();
        for part in keys.chunks(b) {
            let mut q = SelectStatement::new();
            for i in 0..C::META.columns.len() {
                q.expr(col_expr(C::META, i));
            }
            q.expr(col_expr(link, rel.by));
            q.from(Alias::new(C::META.table));
            q.inner_join(
                Alias::new(link.table),
                col_expr(link, to).equals((
                    Alias::new(C::META.table),
                    Alias::new(C::META.columns[pk].name),
                )),
            );
            let mut cond =
                Cond::all().add(relation::in_list(b, col_expr(link, rel.by), part.to_vec()));
            // Soft-deleted targets, and soft-deleted links, are not related.
            for live in [Visibility::Live.cond(C::META), Visibility::Live.cond(link)] {
                cond = cond.add_option(live);
            }
            q.cond_where(cond);
            for (k, row) in relation::fetch_mapped(self, C::META, &q, &map).await? {
                groups.entry(k).or_default().push(row);
            }
        }
        sort_groups(&mut groups);
        Ok(keys.distribute(groups))
    }
}

/// Loaders on a slice of loaded rows: `users.load::<Post>(&s)`.
pub trait Load<T: Entity> {
    /// See [`Session::load_related`].
    fn load<'a, C: Entity>(
        &'a self,
        s: &'a Session,
    ) -> impl Future<Output = Result<Vec<Vec<C>>>> + Send + 'a
    where
        T: Related<C>;

    /// See [`Session::load_one`].
    fn load_one<'a, C: Entity>(
        &'a self,
        s: &'a Session,
    ) -> impl Future<Output = Result<Vec<Option<C>>>> + Send + 'a
    where
        T: Related<C>;

    /// See [`Session::load_parents`].
    fn load_parents<'a, P: Entity>(
        &'a self,
        s: &'a Session,
    ) -> impl Future<Output = Result<Vec<Option<P>>>> + Send + 'a
    where
        T: BelongsTo<P>;
}

impl<T: Entity> Load<T> for [T] {
    fn load<'a, C: Entity>(
        &'a self,
        s: &'a Session,
    ) -> impl Future<Output = Result<Vec<Vec<C>>>> + Send + 'a
    where
        T: Related<C>,
    {
        s.load_related::<C, T>(self)
    }

    fn load_one<'a, C: Entity>(
        &'a self,
        s: &'a Session,
    ) -> impl Future<Output = Result<Vec<Option<C>>>> + Send + 'a
    where
        T: Related<C>,
    {
        s.load_one::<C, T>(self)
    }

    fn load_parents<'a, P: Entity>(
        &'a self,
        s: &'a Session,
    ) -> impl Future<Output = Result<Vec<Option<P>>>> + Send + 'a
    where
        T: BelongsTo<P>,
    {
        s.load_parents::<P, T>(self)
    }
}
