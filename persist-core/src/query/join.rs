//! Joins in typed queries: `s.query::<User>().left_join::<Post>()`.
//!
//! ```
//! # use persist_core::prelude::*;
//! # #[derive(Entity, Clone, Debug)]
//! # pub struct User { #[persist(primary_key)] pub id: i64, pub name: String }
//! # #[derive(Entity, Clone, Debug)]
//! # pub struct Post { #[persist(primary_key)] pub id: i64,
//! #     #[persist(references = "User")] pub user_id: i64, pub title: String }
//! # async fn demo(s: &Session) -> Result<(), Error> {
//! let pairs: Vec<(User, Option<Post>)> = s
//!     .query::<User>()
//!     .left_join::<Post>()
//!     .filter(User::NAME.like("A%"))
//!     .filter(Post::TITLE.ne("draft"))
//!     .all()
//!     .await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use sea_query::{Alias, Cond, Expr, ExprTrait, SelectStatement};

use crate::error::{Error, Result};
use crate::model::entity::{Entity, EntityMeta, RelationKind};
use crate::model::value::RowReader;
use crate::query::column::{Column, Filter, Order};
use crate::query::entity_query::{IntoOrder, Query, Visibility};
use crate::query::relation::{self, KeyValue, RowMap};
use crate::sql::Backend;

/// How a join treats left rows without a match; see [`LeftJoin`] and
/// [`InnerJoin`].
pub trait JoinKind: Send + Sync + 'static {
    /// The right-hand value of a result pair.
    type Out<R: Send>: Send;
    #[doc(hidden)]
    const LEFT: bool;
    #[doc(hidden)]
    fn wrap<R: Send>(r: Option<R>) -> Result<Self::Out<R>>;
    #[doc(hidden)]
    fn right<R: Send>(r: &Self::Out<R>) -> Option<&R>;
}

/// `LEFT JOIN`: every left row, with `Some(right)` or `None`.
#[derive(Debug)]
pub struct LeftJoin;

/// `INNER JOIN`: only left rows with a match.
#[derive(Debug)]
pub struct InnerJoin;

impl JoinKind for LeftJoin {
    type Out<R: Send> = Option<R>;
    const LEFT: bool = true;
    fn wrap<R: Send>(r: Option<R>) -> Result<Option<R>> {
        Ok(r)
    }
    fn right<R: Send>(r: &Option<R>) -> Option<&R> {
        r.as_ref()
    }
}

impl JoinKind for InnerJoin {
    type Out<R: Send> = R;
    const LEFT: bool = false;
    fn wrap<R: Send>(r: Option<R>) -> Result<R> {
        r.ok_or_else(|| Error::Invalid("inner join returned a row without its right side".into()))
    }
    fn right<R: Send>(r: &R) -> Option<&R> {
        Some(r)
    }
}

/// Marks a filter or order on the left entity (inferred; not written).
#[derive(Debug)]
pub struct OnLeft;
/// Marks a filter or order on the right entity (inferred; not written).
#[derive(Debug)]
pub struct OnRight;

/// A filter on either side of a join: `Filter<L>` or `Filter<R>`.
pub trait JoinFilter<L, R, Side> {
    #[doc(hidden)]
    fn into_cond(self, b: Backend) -> Result<Cond>;
}

impl<L, R> JoinFilter<L, R, OnLeft> for Filter<L> {
    fn into_cond(self, b: Backend) -> Result<Cond> {
        Filter::into_cond(self, b)
    }
}

impl<L, R> JoinFilter<L, R, OnRight> for Filter<R> {
    fn into_cond(self, b: Backend) -> Result<Cond> {
        Filter::into_cond(self, b)
    }
}

/// A sort key on either side of a join: a column of `L` or `R`, or its
/// `.asc()` / `.desc()`.
pub trait JoinOrder<L, R, Side> {
    #[doc(hidden)]
    fn into_join_order(self) -> (bool, usize, Order);
}

impl<L, R, T: IntoOrder<L>> JoinOrder<L, R, OnLeft> for T {
    fn into_join_order(self) -> (bool, usize, Order) {
        let (i, o) = self.into_order();
        (true, i, o)
    }
}

impl<L, R, T: IntoOrder<R>> JoinOrder<L, R, OnRight> for T {
    fn into_join_order(self) -> (bool, usize, Order) {
        let (i, o) = self.into_order();
        (false, i, o)
    }
}

/// A query on `L` joined with `R`, returning `(L, K::Out<R>)` pairs; made
/// by [`Query::left_join`], [`Query::inner_join`] and their `_on` forms.
#[must_use = "a query does nothing until it is run (`all`)"]
pub struct JoinQuery<'s, L, R, K> {
    query: Query<'s, L>,
    /// `left.column = right.column`.
    on: Result<(usize, usize)>,
    /// `(left side?, column, direction)`.
    order: Vec<(bool, usize, Order)>,
    _marker: PhantomData<fn() -> (R, K)>,
}

impl<L, R, K> std::fmt::Debug for JoinQuery<'_, L, R, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinQuery")
            .field("query", &self.query)
            .field("on", &self.on)
            .finish()
    }
}

/// The join columns `(left, right)` from the relations and foreign keys
/// the two entities declare.
fn resolve_on(l: &'static EntityMeta, r: &'static EntityMeta) -> Result<(usize, usize)> {
    if l.same_as(r) {
        return Err(Error::Invalid(format!(
            "a self-join of {} is not supported; use `load_parents` / `load_related`",
            l.name
        )));
    }
    let mut found: Vec<(usize, usize)> = Vec::new();
    let direct = |owner: &EntityMeta, other: &EntityMeta| -> Vec<usize> {
        owner
            .relations
            .iter()
            .filter(|rel| rel.kind != RelationKind::ManyToMany && (rel.target)().same_as(other))
            .map(|rel| rel.by)
            .collect()
    };
    let refs = |owner: &EntityMeta, other: &EntityMeta| -> Vec<usize> {
        owner
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.references.is_some_and(|t| t().same_as(other)))
            .map(|(i, _)| i)
            .collect()
    };
    let (lpk, rpk) = (
        relation::single_key_column(l)?,
        relation::single_key_column(r)?,
    );
    // Declared relations first; foreign keys alone only when they are the
    // only link.
    for by in direct(l, r) {
        found.push((lpk, by));
    }
    for by in direct(r, l) {
        found.push((by, rpk));
    }
    if found.is_empty() {
        for c in refs(r, l) {
            found.push((lpk, c));
        }
        for c in refs(l, r) {
            found.push((c, rpk));
        }
    }
    found.dedup();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Invalid(format!(
            "{} and {} have no relation or foreign key to join on; use `left_join_on` / `inner_join_on`",
            l.name, r.name
        ))),
        _ => Err(Error::Invalid(format!(
            "{} and {} are linked by several foreign keys; choose one with `left_join_on` / `inner_join_on`",
            l.name, r.name
        ))),
    }
}

impl<'s, L: Entity> Query<'s, L> {
    /// `LEFT JOIN` with `R` on the relation or foreign key that links the
    /// two entities: rows `(L, Option<R>)`, a left row once per match.
    pub fn left_join<R: Entity>(self) -> JoinQuery<'s, L, R, LeftJoin> {
        JoinQuery::new(self, resolve_on(L::META, R::META))
    }

    /// `INNER JOIN` with `R` on the relation or foreign key that links the
    /// two entities: rows `(L, R)`.
    pub fn inner_join<R: Entity>(self) -> JoinQuery<'s, L, R, InnerJoin> {
        JoinQuery::new(self, resolve_on(L::META, R::META))
    }

    /// `LEFT JOIN` with `R` on `left = right`.
    pub fn left_join_on<R: Entity, A, B>(
        self,
        left: Column<L, A>,
        right: Column<R, B>,
    ) -> JoinQuery<'s, L, R, LeftJoin> {
        JoinQuery::new(self, Ok((left.index(), right.index())))
    }

    /// `INNER JOIN` with `R` on `left = right`.
    pub fn inner_join_on<R: Entity, A, B>(
        self,
        left: Column<L, A>,
        right: Column<R, B>,
    ) -> JoinQuery<'s, L, R, InnerJoin> {
        JoinQuery::new(self, Ok((left.index(), right.index())))
    }
}

/// The types a [`PairMap`] decodes, as a marker.
type Pair<L, R, K> = fn() -> (L, R, K);

struct PairMap<L, R, K> {
    right_at: usize,
    right_key: usize,
    _marker: PhantomData<Pair<L, R, K>>,
}

impl<L: Entity, R: Entity, K: JoinKind> RowMap for PairMap<L, R, K> {
    type Out = (L, K::Out<R>);
    fn map<Row: RowReader>(&self, row: &Row) -> Result<Self::Out> {
        let left = L::decode_row(row, 0)?;
        let key = &R::META.columns[self.right_key];
        let k = relation::read_key(row, self.right_at + self.right_key, key.sql_type, key.name)?;
        let right = if k == KeyValue::Null {
            None
        } else {
            Some(R::decode_row(row, self.right_at)?)
        };
        Ok((left, K::wrap(right)?))
    }
}

impl<'s, L: Entity, R: Entity, K: JoinKind> JoinQuery<'s, L, R, K> {
    fn new(query: Query<'s, L>, on: Result<(usize, usize)>) -> Self {
        let on = on.and_then(|(l, r)| {
            if l < L::META.columns.len() && r < R::META.columns.len() {
                Ok((l, r))
            } else {
                Err(Error::Invalid("join column out of range".into()))
            }
        });
        JoinQuery {
            query,
            on,
            order: Vec::new(),
            _marker: PhantomData,
        }
    }

    /// Adds a condition on either side: `User::NAME.eq(…)` or
    /// `Post::TITLE.like(…)` (several filters are combined with `AND`). A
    /// condition on the right side of a left join also drops the left rows
    /// without a match, as in SQL.
    pub fn filter<Side>(mut self, f: impl JoinFilter<L, R, Side>) -> Self {
        let b = self.query.session.backend();
        self.query = self.query.filter_cond(f.into_cond(b));
        self
    }

    /// Sorts by a column of either side; several calls sort by each in
    /// turn, and pairs equal on all of them come in no particular order.
    ///
    /// Without any `order_by`, pairs come in the order of the left key,
    /// then the right key (a left row without a match, `None`, has only
    /// that one pair), as the key types' [`Ord`] compares them: numbers by
    /// value, text and bytes byte by byte (not by the database's
    /// collation), the same on every backend. That order is made in memory
    /// after the rows are read, so the database sorts nothing; only with a
    /// [`limit`](JoinQuery::limit) or [`offset`](JoinQuery::offset), where
    /// the database must choose which pairs to answer, does the statement
    /// carry `ORDER BY` left key, right key (in the database's own order
    /// for text keys).
    pub fn order_by<Side>(mut self, o: impl JoinOrder<L, R, Side>) -> Self {
        self.order.push(o.into_join_order());
        self
    }

    /// At most `n` rows (pairs).
    pub fn limit(mut self, n: u64) -> Self {
        self.query = self.query.limit(n);
        self
    }

    /// Skips the first `n` rows (pairs).
    pub fn offset(mut self, n: u64) -> Self {
        self.query = self.query.offset(n);
        self
    }

    fn statement(&mut self) -> Result<SelectStatement> {
        self.query.check()?;
        let (lc, rc) = std::mem::replace(&mut self.on, Ok((0, 0)))?;
        let (lm, rm) = (L::META, R::META);
        let (lt, rt) = (Alias::new(lm.table), Alias::new(rm.table));
        let col = |t: &Alias, m: &EntityMeta, i: usize| {
            Expr::col((t.clone(), Alias::new(m.columns[i].name)))
        };
        let mut q = sea_query::Query::select();
        for i in 0..lm.columns.len() {
            q.expr(col(&lt, lm, i));
        }
        for i in 0..rm.columns.len() {
            q.expr(col(&rt, rm, i));
        }
        q.from(lt.clone());
        let mut on =
            Cond::all().add(col(&lt, lm, lc).equals((rt.clone(), Alias::new(rm.columns[rc].name))));
        // The right side's soft-deleted rows are left out by the join itself,
        // so a left join gives `None` for them.
        let right = match self.query.visibility {
            Visibility::All => Visibility::All,
            _ => Visibility::Live,
        };
        if let Some(live) = right.cond(rm) {
            on = on.add(live);
        }
        if K::LEFT {
            q.left_join(rt.clone(), on);
        } else {
            q.inner_join(rt.clone(), on);
        }
        q.cond_where(self.query.where_cond());
        let mut order: Vec<(bool, usize, Order)> = self
            .query
            .order
            .iter()
            .map(|(i, o)| (true, *i, *o))
            .collect();
        order.extend(self.order.iter().copied());
        // Without an order of the caller's, the key order is made in memory
        // (see `order_by`) unless a window of rows must be chosen by it.
        let paged = self.query.limit.is_some() || self.query.offset.is_some();
        if order.is_empty() && paged {
            order.extend(lm.primary_key.iter().map(|i| (true, *i, Order::Asc)));
            order.extend(rm.primary_key.iter().map(|i| (false, *i, Order::Asc)));
        }
        for (left, i, o) in order {
            let dir = match o {
                Order::Asc => sea_query::Order::Asc,
                Order::Desc => sea_query::Order::Desc,
            };
            let (t, m) = if left { (&lt, lm) } else { (&rt, rm) };
            q.order_by((t.clone(), Alias::new(m.columns[i].name)), dir);
        }
        let b = self.query.session.backend();
        if let Some(n) = self.query.limit {
            q.limit(n);
        }
        if let Some(n) = self.query.offset {
            if self.query.limit.is_none() && b != Backend::Postgres {
                // SQLite and MySQL accept OFFSET only after a LIMIT.
                q.limit(i64::MAX as u64);
            }
            q.offset(n);
        }
        Ok(q)
    }

    /// Answers the join from the shared query cache while neither table
    /// changed since the result was stored (the stamps of both are checked),
    /// as [`Query::cached`] does for one entity; `.cached()` on the query
    /// before the join does the same. The pairs are not merged into the
    /// identity map (as the join's own rows are not).
    pub fn cached(mut self) -> Self {
        self.query.cached = true;
        self
    }

    /// Whether the pairs are put in key order in memory: no order of the
    /// caller's and no window (see [`order_by`](JoinQuery::order_by)).
    fn sorts_in_memory(&self) -> bool {
        self.query.order.is_empty()
            && self.order.is_empty()
            && self.query.limit.is_none()
            && self.query.offset.is_none()
    }

    /// Every matching pair, in one statement, in the order
    /// [`order_by`](JoinQuery::order_by) describes.
    pub async fn all(mut self) -> Result<Vec<(L, K::Out<R>)>> {
        let in_memory = self.sorts_in_memory();
        let q = self.statement()?;
        let right_key = relation::single_key_column(R::META)?;
        let map = PairMap::<L, R, K> {
            right_at: L::META.columns.len(),
            right_key,
            _marker: PhantomData,
        };
        let s = self.query.session;
        let run = || async {
            let mut rows = relation::fetch_mapped(s, L::META, &q, &map).await?;
            if in_memory {
                // PostgreSQL's hash and merge joins mostly answer in the left
                // scan's order already: check before sorting.
                let key = |(l, r): &(L, K::Out<R>)| (l.key(), K::right(r).map(Entity::key));
                if !rows.is_sorted_by(|a, b| key(a) <= key(b)) {
                    rows.sort_by_cached_key(key);
                }
            }
            Ok(rows)
        };
        if !self.query.cached || s.cache_layer().is_none() {
            return run().await;
        }
        let (sql, values) = s.backend().sea().build_select(&q);
        let key = format!(
            "{}+{}|join|{sql}|{:?}",
            L::META.table,
            R::META.table,
            values.0
        );
        let encode = |rows: &[(L, K::Out<R>)]| {
            crate::cache::encode_pairs::<L, R>(rows.iter().map(|(l, r)| (l, K::right(r))))
        };
        let decode = |bytes: &[u8]| {
            crate::cache::decode_pairs::<L, R>(bytes)?
                .into_iter()
                .map(|(l, r)| Ok((l, K::wrap(r)?)))
                .collect()
        };
        let (rows, _) = s
            .query_cached_with(key, &[L::META.table, R::META.table], run, encode, decode)
            .await?;
        Ok(rows)
    }
}
