//! Typed column constants and the filter expressions built from them.

use std::marker::PhantomData;

use sea_query::{Alias, Cond, Expr, ExprTrait, SimpleExpr};

use crate::error::{Error, Result};
use crate::model::entity::Entity;
use crate::model::value::Field;
use crate::query::relation;
use crate::sql::Backend;

/// A column of entity `E` holding values of type `V`.
///
/// `#[derive(Entity)]` generates one per stored field, named after the field
/// in upper case: `Account::BALANCE_CENTS: Column<Account, i64>`, so
/// `Account::BALANCE_CENTS.gt(100)` type-checks its value.
pub struct Column<E, V> {
    index: usize,
    name: &'static str,
    _marker: PhantomData<fn() -> (E, V)>,
}

impl<E, V> Clone for Column<E, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E, V> Copy for Column<E, V> {}

impl<E, V> std::fmt::Debug for Column<E, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Column").field(&self.name).finish()
    }
}

impl<E, V> Column<E, V> {
    /// A column constant; used by generated code.
    #[doc(hidden)]
    pub const fn new(index: usize, name: &'static str) -> Self {
        Column {
            index,
            name,
            _marker: PhantomData,
        }
    }

    /// Column name in the database.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Index of the column in the entity's metadata.
    pub const fn index(&self) -> usize {
        self.index
    }
}

impl<E: Entity, V> Column<E, V> {
    pub(crate) fn expr(&self) -> Expr {
        Expr::col((Alias::new(E::META.table), Alias::new(self.name)))
    }
}

/// A filter condition on entity `E`, combined with [`Filter::and`],
/// [`Filter::or`] and [`Filter::not`].
///
/// An invalid value (for example a `u64` above `i64::MAX`) is kept and
/// reported as [`Error::Encode`] when the query runs.
pub struct Filter<E> {
    /// The condition as every backend takes it.
    pub(crate) cond: Result<Cond>,
    /// The condition in PostgreSQL's own form, where it has one (a list as
    /// `= ANY($1)`, see [`Column::is_in`]); `None` when it is `cond`.
    /// Never set beside a failed `cond`, whose error it would hide.
    pg: Option<Cond>,
    _marker: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Filter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter").field("cond", &self.cond).finish()
    }
}

impl<E> Filter<E> {
    fn from_cond(cond: Result<Cond>) -> Self {
        Filter {
            cond,
            pg: None,
            _marker: PhantomData,
        }
    }

    fn from_expr(expr: Result<SimpleExpr>) -> Self {
        Self::from_cond(expr.map(|e| Cond::all().add(e)))
    }

    /// The condition for backend `b`.
    pub(crate) fn into_cond(self, b: Backend) -> Result<Cond> {
        match self.pg {
            Some(pg) if b == Backend::Postgres => Ok(pg),
            _ => self.cond,
        }
    }

    /// Combines both forms of two filters with `f`; the PostgreSQL form is
    /// kept only where one of them has its own.
    fn combine(self, other: Filter<E>, f: impl Fn(Cond, Cond) -> Cond) -> Filter<E> {
        let pg = match (&self.cond, &other.cond, self.pg, other.pg) {
            (_, _, None, None) | (Err(_), _, _, _) | (_, Err(_), _, _) => None,
            (Ok(a), Ok(b), pa, pb) => Some(f(
                pa.unwrap_or_else(|| a.clone()),
                pb.unwrap_or_else(|| b.clone()),
            )),
        };
        Filter {
            cond: self.cond.and_then(|a| other.cond.map(|b| f(a, b))),
            pg,
            _marker: PhantomData,
        }
    }

    /// Both conditions.
    pub fn and(self, other: Filter<E>) -> Filter<E> {
        self.combine(other, |a, b| Cond::all().add(a).add(b))
    }

    /// Either condition.
    pub fn or(self, other: Filter<E>) -> Filter<E> {
        self.combine(other, |a, b| Cond::any().add(a).add(b))
    }

    /// The negated condition.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter<E> {
        Filter {
            cond: self.cond.map(|c| c.not()),
            pg: self.pg.map(|c| c.not()),
            _marker: PhantomData,
        }
    }
}

impl<E> std::ops::Not for Filter<E> {
    type Output = Filter<E>;
    fn not(self) -> Filter<E> {
        Filter::not(self)
    }
}

fn value_of<V: Field>(column: &str, v: &V) -> Result<sea_query::Value> {
    v.to_value().map_err(|e| Error::encode(column, e))
}

impl<E: Entity, V: Field> Column<E, V> {
    fn cmp(&self, v: V, f: impl FnOnce(Expr, sea_query::Value) -> SimpleExpr) -> Filter<E> {
        Filter::from_expr(value_of(self.name, &v).map(|v| f(self.expr(), v)))
    }

    /// `column = v`.
    pub fn eq(&self, v: impl Into<V>) -> Filter<E> {
        self.cmp(v.into(), |c, v| c.eq(v))
    }

    /// `column <> v`.
    pub fn ne(&self, v: impl Into<V>) -> Filter<E> {
        self.cmp(v.into(), |c, v| c.ne(v))
    }

    /// `column < v`.
    pub fn lt(&self, v: impl Into<V>) -> Filter<E> {
        self.cmp(v.into(), |c, v| c.lt(v))
    }

    /// `column <= v`.
    pub fn le(&self, v: impl Into<V>) -> Filter<E> {
        self.cmp(v.into(), |c, v| c.lte(v))
    }

    /// `column > v`.
    pub fn gt(&self, v: impl Into<V>) -> Filter<E> {
        self.cmp(v.into(), |c, v| c.gt(v))
    }

    /// `column >= v`.
    pub fn ge(&self, v: impl Into<V>) -> Filter<E> {
        self.cmp(v.into(), |c, v| c.gte(v))
    }

    /// `column IN (…)`; an empty list matches nothing.
    ///
    /// On PostgreSQL a list of non-`NULL` values of one scalar type
    /// (integers, `bool`, floats, text, bytes, UUIDs, dates and times,
    /// decimals) is sent as `column = ANY($1)` with one array bind: one
    /// statement text whatever the list's length, so the prepared statement
    /// is reused, and no limit on the number of values. Other lists, and the
    /// other backends, use `column IN ($1, …, $n)`; both match the same rows.
    pub fn is_in<I>(&self, values: I) -> Filter<E>
    where
        I: IntoIterator,
        I::Item: Into<V>,
    {
        let values: Result<Vec<_>> = values
            .into_iter()
            .map(|v| value_of(self.name, &v.into()))
            .collect();
        let in_list = |vs: Vec<sea_query::Value>| {
            Cond::all().add(relation::in_list(Backend::Sqlite, self.expr(), vs))
        };
        match values {
            Ok(vs) if relation::binds_as_array(Backend::Postgres, &vs) => {
                let pg = Cond::all().add(relation::in_list(
                    Backend::Postgres,
                    self.expr(),
                    vs.clone(),
                ));
                Filter {
                    cond: Ok(in_list(vs)),
                    pg: Some(pg),
                    _marker: PhantomData,
                }
            }
            values => Filter::from_cond(values.map(in_list)),
        }
    }

    /// `column IS NULL`.
    pub fn is_null(&self) -> Filter<E> {
        Filter::from_expr(Ok(self.expr().is_null()))
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(&self) -> Filter<E> {
        Filter::from_expr(Ok(self.expr().is_not_null()))
    }
}

/// Text columns (`String` and `Option<String>`) can be matched with `LIKE`.
pub trait TextColumn {}
impl TextColumn for String {}
impl TextColumn for Option<String> {}

impl<E: Entity, V: Field + TextColumn> Column<E, V> {
    /// `column LIKE pattern` (`%` and `_` wildcards; case sensitivity is the
    /// backend's: case-insensitive for ASCII on SQLite and MySQL's default
    /// collation, case-sensitive on PostgreSQL).
    pub fn like(&self, pattern: impl Into<String>) -> Filter<E> {
        let p: String = pattern.into();
        Filter::from_expr(Ok(self.expr().like(p)))
    }
}

/// Sort direction for [`crate::query::Query::order_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl<E: Entity, V> Column<E, V> {
    /// Ascending order on this column.
    pub fn asc(&self) -> (Column<E, V>, Order) {
        (*self, Order::Asc)
    }

    /// Descending order on this column.
    pub fn desc(&self) -> (Column<E, V>, Order) {
        (*self, Order::Desc)
    }
}
