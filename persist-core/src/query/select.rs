//! Projections and aggregates ([`Select`]), and row locks.
//!
//! ```
//! # use persist_core::prelude::*;
//! # use persist_core::query::count_all;
//! # #[derive(Entity, Clone, Debug)]
//! # pub struct Post { #[persist(primary_key)] pub id: i64, pub user_id: i64, pub likes: i32 }
//! # async fn demo(s: &Session) -> Result<(), Error> {
//! // (user_id, number of posts, total likes) for users with more than one post
//! let rows: Vec<(i64, i64, Option<i64>)> = s
//!     .query::<Post>()
//!     .select((Post::USER_ID, count_all(), Post::LIKES.sum()))
//!     .group_by(Post::USER_ID)
//!     .having(count_all().gt(1))
//!     .order_by(Post::USER_ID)
//!     .all()
//!     .await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, SelectStatement, SimpleExpr};

use crate::error::BoxDynError;
use crate::error::{Error, Result};
use crate::model::entity::Entity;
use crate::model::row::Capture;
use crate::model::value::{Binder, Field, RowReader};
use crate::query::column::{Column, Order};
use crate::query::entity_query::{IntoOrder, Query};
use crate::query::relation::{self, RowMap};
use crate::sql::Backend;

/// A row lock requested with [`Query::for_update`] / [`Query::skip_locked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    Update,
    SkipLocked,
}

/// Adds the lock clause (sea-query's SQLite builder writes none: SQLite has
/// no row locks).
pub(crate) fn apply_lock(q: &mut SelectStatement, lock: Option<RowLock>) {
    match lock {
        None => {}
        Some(RowLock::Update) => {
            q.lock(LockType::Update);
        }
        Some(RowLock::SkipLocked) => {
            q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
    }
}

/// Something a [`Select`] can return: a column (`Post::TITLE`), an
/// aggregate (`count_all()`, `Post::LIKES.sum()`) or a tuple of up to eight
/// of them.
pub trait Selectable<E>: Sync {
    /// The Rust value of one row.
    type Output: Send;
    /// Number of SQL expressions selected.
    fn width(&self) -> usize;
    /// Adds the expressions to the statement.
    #[doc(hidden)]
    fn push(&self, b: Backend, q: &mut SelectStatement);
    /// Decodes the value starting at column `at`.
    #[doc(hidden)]
    fn decode<R: RowReader>(&self, row: &R, at: usize) -> Result<Self::Output>;
    /// Binds a decoded value back, column by column (to cache it).
    #[doc(hidden)]
    fn bind_output<B: Binder>(&self, v: &Self::Output, b: &mut B) -> Result<()>;
}

impl<E: Entity, V: Field> Selectable<E> for Column<E, V> {
    type Output = V;
    fn width(&self) -> usize {
        1
    }
    fn push(&self, _b: Backend, q: &mut SelectStatement) {
        q.expr(self.expr());
    }
    fn decode<R: RowReader>(&self, row: &R, at: usize) -> Result<V> {
        crate::__private::decode_field(row, at, self.name())
    }
    fn bind_output<B: Binder>(&self, v: &V, b: &mut B) -> Result<()> {
        v.bind(b).map_err(|e| Error::encode(self.name(), e))
    }
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    CountAll,
    Count,
    SumInt,
    SumFloat,
    Avg,
    Min,
    Max,
}

/// An aggregate over entity `E`'s rows whose Rust value is `O`: made by
/// [`count_all`] and the column methods [`Column::count`], [`Column::sum`],
/// [`Column::avg`], [`Column::min`], [`Column::max`]. Select it, or compare
/// it in [`Select::having`].
pub struct Agg<E, O> {
    func: Func,
    column: Option<(&'static str, &'static str)>,
    _marker: PhantomData<fn() -> (E, O)>,
}

impl<E, O> Clone for Agg<E, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E, O> Copy for Agg<E, O> {}

impl<E, O> std::fmt::Debug for Agg<E, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agg")
            .field("func", &self.func)
            .field("column", &self.column)
            .finish()
    }
}

impl<E, O> Agg<E, O> {
    fn new<V>(func: Func, column: Option<&Column<E, V>>) -> Self
    where
        E: Entity,
    {
        Agg {
            func,
            column: column.map(|c| (E::META.table, c.name())),
            _marker: PhantomData,
        }
    }

    /// The SQL expression; casts make every backend return the same type
    /// (PostgreSQL's `SUM(bigint)` is `numeric`, MySQL's `SUM` and `AVG` are
    /// `DECIMAL`).
    fn expr(&self, b: Backend) -> SimpleExpr {
        let col = || match self.column {
            Some((t, c)) => Expr::col((Alias::new(t), Alias::new(c))),
            None => Expr::cust("*"),
        };
        let cast = |e: SimpleExpr, pg: &str, my: Option<&str>| match (b, my) {
            (Backend::Postgres, _) => e.cast_as(Alias::new(pg)),
            (Backend::MySql, Some(t)) => e.cast_as(Alias::new(t)),
            _ => e,
        };
        match self.func {
            Func::CountAll => Expr::cust("COUNT(*)"),
            Func::Count => col().count(),
            Func::SumInt => cast(col().sum(), "BIGINT", Some("SIGNED")),
            Func::SumFloat => cast(col().sum(), "DOUBLE PRECISION", None),
            Func::Avg => cast(col().avg(), "DOUBLE PRECISION", Some("DOUBLE")),
            Func::Min => col().min(),
            Func::Max => col().max(),
        }
    }

    fn label(&self) -> &'static str {
        match self.func {
            Func::CountAll | Func::Count => "count",
            Func::SumInt | Func::SumFloat => "sum",
            Func::Avg => "avg",
            Func::Min => "min",
            Func::Max => "max",
        }
    }
}

/// `COUNT(*)`: the number of rows (of each group).
pub fn count_all<E: Entity>() -> Agg<E, i64> {
    Agg {
        func: Func::CountAll,
        column: None,
        _marker: PhantomData,
    }
}

/// A column type whose values can be summed and averaged: integers sum to
/// `i64`, floats to `f64`.
pub trait Summable: Field {
    /// The type of the sum.
    type Sum: Field;
    #[doc(hidden)]
    const FLOAT: bool;
}

macro_rules! summable {
    ($sum:ty, $float:expr; $($t:ty),+) => {$(
        impl Summable for $t {
            type Sum = $sum;
            const FLOAT: bool = $float;
        }
    )+};
}

summable!(i64, false; i8, i16, i32, i64, u8, u16, u32);
summable!(f64, true; f32, f64);

impl<T: Summable> Summable for Option<T> {
    type Sum = T::Sum;
    const FLOAT: bool = T::FLOAT;
}

impl<E: Entity, V: Field> Column<E, V> {
    /// `COUNT(column)`: the non-`NULL` values.
    pub fn count(&self) -> Agg<E, i64> {
        Agg::new(Func::Count, Some(self))
    }

    /// `MIN(column)`; `None` over no rows.
    pub fn min(&self) -> Agg<E, Option<V>> {
        Agg::new(Func::Min, Some(self))
    }

    /// `MAX(column)`; `None` over no rows.
    pub fn max(&self) -> Agg<E, Option<V>> {
        Agg::new(Func::Max, Some(self))
    }
}

impl<E: Entity, V: Summable> Column<E, V> {
    /// `SUM(column)`, as `i64` for integers and `f64` for floats; `None`
    /// over no rows.
    pub fn sum(&self) -> Agg<E, Option<V::Sum>> {
        let f = if V::FLOAT {
            Func::SumFloat
        } else {
            Func::SumInt
        };
        Agg::new(f, Some(self))
    }

    /// `AVG(column)` as `f64`; `None` over no rows.
    pub fn avg(&self) -> Agg<E, Option<f64>> {
        Agg::new(Func::Avg, Some(self))
    }
}

/// The value type of an aggregate, for the comparisons of [`Agg`].
pub trait AggValue {
    /// What the aggregate is compared with.
    type Scalar: Field;
    #[doc(hidden)]
    fn decode<R: RowReader>(row: &R, at: usize, label: &str) -> Result<Self>
    where
        Self: Sized;
    #[doc(hidden)]
    fn bind_value<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError>;
}

impl AggValue for i64 {
    type Scalar = i64;
    fn decode<R: RowReader>(row: &R, at: usize, label: &str) -> Result<i64> {
        Ok(row
            .i64(at)
            .map_err(|e| Error::decode(label, e))?
            .unwrap_or(0))
    }
    fn bind_value<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        self.bind(b)
    }
}

impl<T: Field> AggValue for Option<T> {
    type Scalar = T;
    fn decode<R: RowReader>(row: &R, at: usize, label: &str) -> Result<Option<T>> {
        T::decode_opt(row, at).map_err(|e| Error::decode(label, e))
    }
    fn bind_value<B: Binder>(&self, b: &mut B) -> Result<(), BoxDynError> {
        self.bind(b)
    }
}

impl<E: Entity, O: AggValue + Send> Selectable<E> for Agg<E, O> {
    type Output = O;
    fn width(&self) -> usize {
        1
    }
    fn push(&self, b: Backend, q: &mut SelectStatement) {
        q.expr(self.expr(b));
    }
    fn decode<R: RowReader>(&self, row: &R, at: usize) -> Result<O> {
        O::decode(row, at, self.label())
    }
    fn bind_output<B: Binder>(&self, v: &O, b: &mut B) -> Result<()> {
        v.bind_value(b).map_err(|e| Error::encode(self.label(), e))
    }
}

/// A comparison operator of a [`Having`] condition.
#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

struct HavingPart {
    func: Func,
    column: Option<(&'static str, &'static str)>,
    cmp: Cmp,
    value: Result<sea_query::Value>,
}

/// A condition on aggregates for [`Select::having`]:
/// `count_all().gt(1)`, `Post::LIKES.sum().ge(10)`; combine with
/// [`Having::and`].
pub struct Having<E> {
    parts: Vec<HavingPart>,
    _marker: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Having<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Having")
            .field("conditions", &self.parts.len())
            .finish()
    }
}

impl<E> Having<E> {
    /// Both conditions.
    pub fn and(mut self, other: Having<E>) -> Having<E> {
        self.parts.extend(other.parts);
        self
    }
}

impl<E: Entity, O: AggValue> Agg<E, O> {
    fn cmp(&self, cmp: Cmp, v: O::Scalar) -> Having<E> {
        Having {
            parts: vec![HavingPart {
                func: self.func,
                column: self.column,
                cmp,
                value: v.to_value().map_err(|e| Error::encode(self.label(), e)),
            }],
            _marker: PhantomData,
        }
    }

    /// `aggregate = v`.
    pub fn eq(&self, v: impl Into<O::Scalar>) -> Having<E> {
        self.cmp(Cmp::Eq, v.into())
    }

    /// `aggregate <> v`.
    pub fn ne(&self, v: impl Into<O::Scalar>) -> Having<E> {
        self.cmp(Cmp::Ne, v.into())
    }

    /// `aggregate < v`.
    pub fn lt(&self, v: impl Into<O::Scalar>) -> Having<E> {
        self.cmp(Cmp::Lt, v.into())
    }

    /// `aggregate <= v`.
    pub fn le(&self, v: impl Into<O::Scalar>) -> Having<E> {
        self.cmp(Cmp::Le, v.into())
    }

    /// `aggregate > v`.
    pub fn gt(&self, v: impl Into<O::Scalar>) -> Having<E> {
        self.cmp(Cmp::Gt, v.into())
    }

    /// `aggregate >= v`.
    pub fn ge(&self, v: impl Into<O::Scalar>) -> Having<E> {
        self.cmp(Cmp::Ge, v.into())
    }
}

macro_rules! tuple_selectable {
    ($($t:ident $i:tt),+) => {
        impl<EE, $($t: Selectable<EE>),+> Selectable<EE> for ($($t,)+) {
            type Output = ($($t::Output,)+);
            fn width(&self) -> usize {
                0 $(+ self.$i.width())+
            }
            fn push(&self, b: Backend, q: &mut SelectStatement) {
                $(self.$i.push(b, q);)+
            }
            fn decode<R: RowReader>(&self, row: &R, at: usize) -> Result<Self::Output> {
                let mut at = at;
                Ok(($({
                    let v = self.$i.decode(row, at)?;
                    at += self.$i.width();
                    let _ = at;
                    v
                },)+))
            }
            fn bind_output<BB: Binder>(&self, v: &Self::Output, b: &mut BB) -> Result<()> {
                $(self.$i.bind_output(&v.$i, b)?;)+
                Ok(())
            }
        }
    };
}

tuple_selectable!(A 0);
tuple_selectable!(A 0, B 1);
tuple_selectable!(A 0, B 1, C 2);
tuple_selectable!(A 0, B 1, C 2, D 3);
tuple_selectable!(A 0, B 1, C 2, D 3, F 4);
tuple_selectable!(A 0, B 1, C 2, D 3, F 4, G 5);
tuple_selectable!(A 0, B 1, C 2, D 3, F 4, G 5, H 6);
tuple_selectable!(A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7);

/// A projection of a [`Query`]: chosen columns and aggregates instead of
/// whole entities, optionally grouped. Made by [`Query::select`].
#[must_use = "a query does nothing until it is run (`all`, `one`, `optional`)"]
pub struct Select<'s, E, S> {
    query: Query<'s, E>,
    sel: S,
    group_by: Vec<usize>,
    having: Vec<HavingPart>,
}

impl<E, S> std::fmt::Debug for Select<'_, E, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select")
            .field("query", &self.query)
            .field("group_by", &self.group_by)
            .field("having", &self.having.len())
            .finish()
    }
}

impl<'s, E: Entity> Query<'s, E> {
    /// Selects columns and aggregates instead of whole entities:
    /// `.select((Post::USER_ID, count_all()))` returns `(i64, i64)` rows.
    /// The query's filters, order, limit and offset apply.
    pub fn select<S: Selectable<E>>(self, sel: S) -> Select<'s, E, S> {
        Select {
            query: self,
            sel,
            group_by: Vec::new(),
            having: Vec::new(),
        }
    }
}

struct Decode<'a, E, S>(&'a S, PhantomData<fn() -> E>);

impl<E, S: Selectable<E>> RowMap for Decode<'_, E, S> {
    type Out = S::Output;
    fn map<R: RowReader>(&self, row: &R) -> Result<S::Output> {
        self.0.decode(row, 0)
    }
}

impl<'s, E: Entity, S: Selectable<E>> Select<'s, E, S> {
    /// Groups by a column (several calls group by each).
    pub fn group_by<V>(mut self, col: Column<E, V>) -> Self {
        self.group_by.push(col.index());
        self
    }

    /// Keeps the groups whose aggregates match (several calls are combined
    /// with `AND`).
    pub fn having(mut self, h: Having<E>) -> Self {
        self.having.extend(h.parts);
        self
    }

    /// Sorts by a column: `order_by(T::COL)`, `order_by(T::COL.desc())`.
    pub fn order_by(mut self, o: impl IntoOrder<E>) -> Self {
        self.query = self.query.order_by(o);
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.query = self.query.limit(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.query = self.query.offset(n);
        self
    }

    fn statement(&mut self) -> Result<SelectStatement> {
        self.query.check()?;
        let b = self.query.session.backend();
        let meta = E::META;
        let table = Alias::new(meta.table);
        let mut q = sea_query::Query::select();
        self.sel.push(b, &mut q);
        q.from(table.clone());
        q.cond_where(self.query.where_cond());
        for i in &self.group_by {
            q.group_by_col((table.clone(), Alias::new(meta.columns[*i].name)));
        }
        for h in &mut self.having {
            let agg = Agg::<E, i64> {
                func: h.func,
                column: h.column,
                _marker: PhantomData,
            };
            let v = std::mem::replace(&mut h.value, Ok(sea_query::Value::Bool(None)))?;
            let e = agg.expr(b);
            q.and_having(match h.cmp {
                Cmp::Eq => e.eq(v),
                Cmp::Ne => e.ne(v),
                Cmp::Lt => e.lt(v),
                Cmp::Le => e.lte(v),
                Cmp::Gt => e.gt(v),
                Cmp::Ge => e.gte(v),
            });
        }
        for (i, o) in &self.query.order {
            let dir = match o {
                Order::Asc => sea_query::Order::Asc,
                Order::Desc => sea_query::Order::Desc,
            };
            q.order_by((table.clone(), Alias::new(meta.columns[*i].name)), dir);
        }
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

    /// Answers the projection from the shared query cache while `E`'s
    /// table is unchanged since the result was stored, as
    /// [`Query::cached`] does for entities (`.cached()` on the query before
    /// `.select(…)` does the same). The values are stored as the Rust values
    /// decoded, and answered with zero SQL.
    pub fn cached(mut self) -> Self {
        self.query.cached = true;
        self
    }

    /// Every row.
    pub async fn all(mut self) -> Result<Vec<S::Output>> {
        let q = self.statement()?;
        let s = self.query.session;
        let map = Decode(&self.sel, PhantomData);
        if !self.query.cached || s.cache_layer().is_none() {
            return relation::fetch_mapped(s, E::META, &q, &map).await;
        }
        let (sql, values) = s.backend().sea().build_select(&q);
        let key = format!("{}|select|{sql}|{:?}", E::META.table, values.0);
        let sel = &self.sel;
        let encode = |rows: &[S::Output]| {
            crate::cache::encode_projected::<E>(rows.iter().map(|r| {
                let mut c = Capture::default();
                sel.bind_output(r, &mut c)?;
                Ok(c)
            }))
        };
        let decode =
            |bytes: &[u8]| crate::cache::decode_projected::<E, _>(bytes, |row| sel.decode(row, 0));
        let run = || relation::fetch_mapped(s, E::META, &q, &map);
        let (rows, _) = s
            .query_cached_with(key, &[E::META.table], run, encode, decode)
            .await?;
        Ok(rows)
    }

    /// Every row, converted: `.all_into::<Stats>()` for a small struct with
    /// `From<(A, B, …)>`.
    pub async fn all_into<T: From<S::Output>>(self) -> Result<Vec<T>> {
        Ok(self.all().await?.into_iter().map(T::from).collect())
    }

    /// At most one row: `None` for none, [`Error::TooManyRows`] for more.
    pub async fn optional(mut self) -> Result<Option<S::Output>> {
        if self.query.limit.is_none_or(|n| n > 2) {
            self.query.limit = Some(2);
        }
        let mut rows = self.all().await?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(rows.pop()),
            _ => Err(Error::TooManyRows),
        }
    }

    /// Exactly one row: [`Error::NotFound`] for none, [`Error::TooManyRows`]
    /// for more. An aggregate without `group_by` always has one row.
    pub async fn one(self) -> Result<S::Output> {
        self.optional().await?.ok_or(Error::NotFound)
    }
}
