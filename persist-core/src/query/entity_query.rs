//! Typed queries ([`Query`]).

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use sea_query::{Alias, Cond, Expr, ExprTrait, SelectStatement};

use crate::backend::{Driver, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{Entity, EntityMeta, Key};
use crate::query::column::{Column, Filter, Order};
use crate::query::relation;
use crate::session::{Session, count_of};
use crate::sql::Backend;

/// A query on `E`'s table, built from column constants.
///
/// ```
/// # use persist_core::prelude::*;
/// # #[derive(Entity, Clone, Debug)]
/// # pub struct Account { #[persist(primary_key)] pub id: i64, pub balance_cents: i64 }
/// # async fn demo(s: &Session) -> Result<(), Error> {
/// let rich: Vec<Account> = s
///     .query::<Account>()
///     .filter(Account::BALANCE_CENTS.gt(1_000))
///     .order_by(Account::BALANCE_CENTS.desc())
///     .limit(10)
///     .all()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a query does nothing until it is run (`all`, `one`, `optional`, `count`, …)"]
pub struct Query<'s, E> {
    pub(crate) session: &'s Session,
    pub(crate) cond: Cond,
    /// The first invalid filter value, reported when the query runs.
    pub(crate) error: Option<Error>,
    pub(crate) order: Vec<(usize, Order)>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
    /// Row lock taken by `all` / `one` / `optional` / `stream`.
    pub(crate) lock: Option<crate::query::select::RowLock>,
    /// Rows replace what the session holds (`populate_existing`).
    pub(crate) overwrite: bool,
    /// Answered from the shared query cache when possible (`cached`).
    pub(crate) cached: bool,
    /// Which rows of a `#[persist(soft_delete)]` entity the query sees.
    pub(crate) visibility: Visibility,
    _marker: PhantomData<fn() -> E>,
}

/// Which rows of a `#[persist(soft_delete)]` entity a query sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Visibility {
    /// The rows not soft-deleted (the default).
    #[default]
    Live,
    /// Every row ([`Query::with_deleted`]).
    All,
    /// The soft-deleted rows only ([`Query::only_deleted`]).
    Deleted,
}

impl Visibility {
    /// The condition on `meta`'s soft-delete column, if it has one and the
    /// query does not see every row.
    pub(crate) fn cond(self, meta: &EntityMeta) -> Option<sea_query::SimpleExpr> {
        let d = meta.soft_delete?;
        let col = Expr::col((Alias::new(meta.table), Alias::new(meta.columns[d].name)));
        match self {
            Visibility::Live => Some(col.is_null()),
            Visibility::Deleted => Some(col.is_not_null()),
            Visibility::All => None,
        }
    }
}

impl<E> std::fmt::Debug for Query<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("cond", &self.cond)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("lock", &self.lock)
            .field("visibility", &self.visibility)
            .finish()
    }
}

/// Something [`Query::order_by`] accepts: a column (ascending) or
/// `column.asc()` / `column.desc()`.
pub trait IntoOrder<E> {
    /// The column index and direction.
    fn into_order(self) -> (usize, Order);
}

impl<E, V> IntoOrder<E> for Column<E, V> {
    fn into_order(self) -> (usize, Order) {
        (self.index(), Order::Asc)
    }
}

impl<E, V> IntoOrder<E> for (Column<E, V>, Order) {
    fn into_order(self) -> (usize, Order) {
        (self.0.index(), self.1)
    }
}

impl Session {
    /// A typed query on `E`'s table.
    pub fn query<E: Entity>(&self) -> Query<'_, E> {
        Query::new(self)
    }
}

impl<'s, E: Entity> Query<'s, E> {
    pub(crate) fn new(session: &'s Session) -> Self {
        Query {
            session,
            cond: Cond::all(),
            error: None,
            order: Vec::new(),
            limit: None,
            offset: None,
            lock: None,
            overwrite: false,
            cached: false,
            visibility: Visibility::Live,
            _marker: PhantomData,
        }
    }

    /// Rows read replace what the session's identity map holds for them,
    /// pending edits included (by default, rows the session holds come back
    /// in their in-session state).
    pub fn populate_existing(mut self) -> Self {
        self.overwrite = true;
        self
    }

    /// Locks the selected rows until the session ends (`SELECT … FOR
    /// UPDATE`), so that another session's `for_update` or write of them
    /// waits. PostgreSQL and MySQL/MariaDB only: on SQLite it is a no-op,
    /// since SQLite has no row locks — a write session there already holds
    /// the database's single write lock from its first write.
    pub fn for_update(mut self) -> Self {
        self.lock = Some(crate::query::select::RowLock::Update);
        self
    }

    /// Like [`for_update`](Query::for_update), but rows locked by another
    /// session are skipped instead of waited for (`FOR UPDATE SKIP
    /// LOCKED`): the job-queue pattern. A no-op on SQLite (see `for_update`).
    pub fn skip_locked(mut self) -> Self {
        self.lock = Some(crate::query::select::RowLock::SkipLocked);
        self
    }

    /// Sees every row of a `#[persist(soft_delete)]` entity, the
    /// soft-deleted ones too (by default a query sees only the rows not
    /// soft-deleted). No effect on an entity without a `soft_delete`
    /// column. On a join, both sides see every row.
    pub fn with_deleted(mut self) -> Self {
        self.visibility = Visibility::All;
        self
    }

    /// Sees only the soft-deleted rows of a `#[persist(soft_delete)]`
    /// entity (for a join: of the left side; the right side sees its live
    /// rows). On an entity without a `soft_delete` column, every row.
    pub fn only_deleted(mut self) -> Self {
        self.visibility = Visibility::Deleted;
        self
    }

    /// The query's conditions with its soft-delete visibility.
    pub(crate) fn where_cond(&self) -> Cond {
        match self.visibility.cond(E::META) {
            Some(c) => self.cond.clone().add(c),
            None => self.cond.clone(),
        }
    }

    /// Adds a condition (several filters are combined with `AND`).
    pub fn filter(self, f: Filter<E>) -> Self {
        let b = self.session.backend();
        self.filter_cond(f.into_cond(b))
    }

    /// Restricts to the given primary keys: a single-column key as one
    /// list ([`relation::in_list`]: `= ANY($1)` on PostgreSQL, `IN (…)`
    /// elsewhere), a composite key as `(a = ? AND b = ?) OR …`.
    pub(crate) fn key_in(self, keys: &[E::Key]) -> Self {
        let meta = E::META;
        let cols: Vec<Expr> = meta
            .primary_key
            .iter()
            .map(|i| Expr::col((Alias::new(meta.table), Alias::new(meta.columns[*i].name))))
            .collect();
        if E::Key::ARITY == 1 {
            let values: Result<Vec<_>> = keys
                .iter()
                .map(|k| {
                    k.to_values()
                        .map(|mut v| v.remove(0))
                        .map_err(|e| Error::encode("key", e))
                })
                .collect();
            let b = self.session.backend();
            let c = cols[0].clone();
            return self.filter_cond(values.map(|vs| Cond::all().add(relation::in_list(b, c, vs))));
        }
        let cond = keys.iter().try_fold(Cond::any(), |any, k| {
            let values = k.to_values().map_err(|e| Error::encode("key", e))?;
            let all = cols
                .iter()
                .zip(values)
                .fold(Cond::all(), |all, (c, v)| all.add(c.clone().eq(v)));
            Ok(any.add(all))
        });
        self.filter_cond(cond)
    }

    /// How many of `keys` one [`key_in`](Query::key_in) statement takes:
    /// all of them when they bind as one PostgreSQL array, else as many as
    /// the backend's bind limit allows (at most 10 000).
    pub(crate) fn keys_per_statement(b: Backend, keys: &[E::Key]) -> usize {
        if E::Key::ARITY == 1 && b == Backend::Postgres {
            let values: Vec<sea_query::Value> = keys
                .iter()
                .filter_map(|k| k.to_values().ok()?.into_iter().next())
                .collect();
            if values.len() == keys.len() && relation::binds_as_array(b, &values) {
                return keys.len().max(1);
            }
        }
        (b.max_binds() / E::Key::ARITY).clamp(1, 10_000)
    }

    pub(crate) fn filter_cond(mut self, c: Result<Cond>) -> Self {
        match c {
            Ok(c) => self.cond = std::mem::replace(&mut self.cond, Cond::all()).add(c),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    pub(crate) fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sorts by a column: `order_by(T::COL)`, `order_by(T::COL.desc())`.
    /// Several calls sort by each in turn.
    pub fn order_by(mut self, o: impl IntoOrder<E>) -> Self {
        self.order.push(o.into_order());
        self
    }

    pub(crate) fn order_by_index(mut self, i: usize) -> Self {
        self.order.push((i, Order::Asc));
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    pub(crate) fn base_select(&self) -> SelectStatement {
        let meta = E::META;
        let table = Alias::new(meta.table);
        let mut q = sea_query::Query::select();
        for c in meta.columns {
            q.column((table.clone(), Alias::new(c.name)));
        }
        q.from(table.clone());
        q.cond_where(self.where_cond());
        for (i, o) in &self.order {
            let dir = match o {
                Order::Asc => sea_query::Order::Asc,
                Order::Desc => sea_query::Order::Desc,
            };
            q.order_by((table.clone(), Alias::new(meta.columns[*i].name)), dir);
        }
        if let Some(n) = self.limit {
            q.limit(n);
        }
        if let Some(n) = self.offset {
            if self.limit.is_none() && self.session.backend() != crate::sql::Backend::Postgres {
                // SQLite and MySQL accept OFFSET only after a LIMIT.
                q.limit(i64::MAX as u64);
            }
            q.offset(n);
        }
        q
    }

    /// Answers `all` / `one` / `optional` from the shared query cache when
    /// it holds this query's result (same SQL and parameters) and the table
    /// has not changed since: zero SQL. A commit that writes the table makes
    /// the next run query the database again. Needs a cache on the `Db`
    /// ([`DbBuilder::cache`](crate::db::DbBuilder::cache)); without one, or in a
    /// session that wrote the table, the query simply runs.
    pub fn cached(mut self) -> Self {
        self.cached = true;
        self
    }

    /// Runs `q`; `plain` says it is [`Query::is_plain`]'s statement as built.
    async fn fetch(&self, q: SelectStatement, plain: bool) -> Result<Vec<E>> {
        if self.cached
            && self.lock.is_none()
            && !self.overwrite
            && self.session.cache_layer().is_some()
        {
            let (sql, values) = self.session.backend().sea().build_select(&q);
            let key = format!("{}|{sql}|{:?}", E::META.table, values.0);
            let s = self.session;
            return s
                .query_cached::<E, _, _>(key, || async move {
                    let mut guard = s.lock_for_read(E::META.table).await?;
                    crate::session::fetch_entities_merged::<E>(
                        s,
                        &mut guard,
                        Arc::from(sql),
                        values.0,
                        crate::session::uow::Merge::Raw,
                    )
                    .await
                })
                .await;
        }
        let b = self.session.backend();
        let (sql, values) = if plain {
            // A fixed shape: its SQL is built once per entity and backend.
            let sql = E::sql_cache().get(b, crate::sql::statements::Shape::SelectPlain, || {
                b.sea().build_select(&q).0
            });
            (sql, Vec::new())
        } else {
            let (sql, values) = b.sea().build_select(&q);
            (Arc::from(sql), values.0)
        };
        let mut guard = self.session.lock_for_read(E::META.table).await?;
        let merge = if self.overwrite {
            crate::session::uow::Merge::Overwrite
        } else {
            self.session.default_merge()
        };
        crate::session::fetch_entities_merged::<E>(self.session, &mut guard, sql, values, merge)
            .await
    }

    /// Whether this is the plain `SELECT` of every row (no filter, order,
    /// limit, offset or lock).
    fn is_plain(&self) -> bool {
        self.cond.is_empty()
            && self.visibility == Visibility::Live
            && self.order.is_empty()
            && self.limit.is_none()
            && self.offset.is_none()
            && self.lock.is_none()
    }

    /// All matching rows.
    pub async fn all(mut self) -> Result<Vec<E>> {
        self.check()?;
        let mut q = self.base_select();
        crate::query::select::apply_lock(&mut q, self.lock);
        let plain = self.is_plain();
        self.fetch(q, plain).await
    }

    /// Exactly one row: [`Error::NotFound`] for none, [`Error::TooManyRows`]
    /// for more.
    pub async fn one(self) -> Result<E> {
        self.optional().await?.ok_or(Error::NotFound)
    }

    /// At most one row: `None` for none, [`Error::TooManyRows`] for more.
    pub async fn optional(mut self) -> Result<Option<E>> {
        self.check()?;
        let mut q = self.base_select();
        crate::query::select::apply_lock(&mut q, self.lock);
        if self.limit.is_none_or(|n| n > 2) {
            q.limit(2);
        }
        let mut rows = self.fetch(q, false).await?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(rows.pop()),
            _ => Err(Error::TooManyRows),
        }
    }

    /// Number of matching rows (respecting `limit` / `offset`).
    pub async fn count(mut self) -> Result<u64> {
        self.check()?;
        let inner = self.base_select();
        let mut q = sea_query::Query::select();
        q.expr(Expr::cust("COUNT(*)"));
        if self.limit.is_some() || self.offset.is_some() {
            q.from_subquery(inner, Alias::new("persist_sub"));
        } else {
            q.from(Alias::new(E::META.table));
            q.cond_where(self.where_cond());
        }
        self.scalar(q).await
    }

    /// Whether any row matches.
    pub async fn exists(mut self) -> Result<bool> {
        self.check()?;
        let mut q = self.base_select();
        q.limit(1);
        let mut outer = sea_query::Query::select();
        outer.expr(Expr::cust("COUNT(*)"));
        outer.from_subquery(q, Alias::new("persist_sub"));
        Ok(self.scalar(outer).await? > 0)
    }

    async fn scalar(&self, q: SelectStatement) -> Result<u64> {
        let b = self.session.backend();
        let (sql, values) = b.sea().build_select(&q);
        let sql: Arc<str> = Arc::from(sql);
        let mut guard = self.session.lock_for_read(E::META.table).await?;
        let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        dispatch!(tx, |c, DB| {
            let args = DB::args_from_values(values);
            let n = self
                .session
                .run(
                    Some(E::META),
                    &sql,
                    DB::fetch_optional(c, sql.clone(), args, &crate::backend::FirstInt),
                )
                .await?;
            count_of(n)
        })
    }

    /// The matching rows as a stream, read as they arrive. While the stream
    /// is alive, other calls on the session answer [`Error::SessionBusy`].
    pub fn stream(mut self) -> BoxStream<'s, Result<E>> {
        let session = self.session.clone();
        let checked = self.check();
        let mut q = self.base_select();
        crate::query::select::apply_lock(&mut q, self.lock);
        Box::pin(async_stream::try_stream! {
            checked?;
            let (sql, values) = session.backend().sea().build_select(&q);
            let sql: Arc<str> = Arc::from(sql);
            let mut guard = session.lock_for_read(E::META.table).await?;
            let _busy = Busy::set(&session);
            session.count_stream_statement(&sql);
            let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
            let backend = session.backend();
            let mut rows: BoxStream<'_, Result<E>> = dispatch!(tx, |c, DB| {
                let args = DB::args_from_values(values);
                DB::fetch(c, sql.clone(), args)
                    .map(move |row| {
                        row.map_err(|e| crate::backend::errmap::map(backend, Some(E::META), e))
                            .and_then(|row| E::decode_row(&row, 0))
                    })
                    .boxed()
            });
            while let Some(item) = rows.next().await {
                yield item?;
            }
        })
    }
}

/// Marks a session busy for the life of a stream.
struct Busy(Session);

impl Busy {
    fn set(s: &Session) -> Busy {
        s.inner.streaming.store(true, Ordering::Release);
        Busy(s.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.inner.streaming.store(false, Ordering::Release);
    }
}
