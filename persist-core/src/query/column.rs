//! Typed column constants and the filter expressions built from them.

use std::marker::PhantomData;

use sea_query::{Alias, Cond, Expr, ExprTrait, SimpleExpr};

use crate::error::{Error, Result};
use crate::model::entity::Entity;
use crate::model::value::Field;

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
    pub(crate) cond: Result<Cond>,
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
            _marker: PhantomData,
        }
    }

    fn from_expr(expr: Result<SimpleExpr>) -> Self {
        Self::from_cond(expr.map(|e| Cond::all().add(e)))
    }

    /// Both conditions.
    pub fn and(self, other: Filter<E>) -> Filter<E> {
        Self::from_cond(
            self.cond
                .and_then(|a| other.cond.map(|b| Cond::all().add(a).add(b))),
        )
    }

    /// Either condition.
    pub fn or(self, other: Filter<E>) -> Filter<E> {
        Self::from_cond(
            self.cond
                .and_then(|a| other.cond.map(|b| Cond::any().add(a).add(b))),
        )
    }

    /// The negated condition.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter<E> {
        Self::from_cond(self.cond.map(|c| c.not()))
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
    pub fn is_in<I>(&self, values: I) -> Filter<E>
    where
        I: IntoIterator,
        I::Item: Into<V>,
    {
        let values: Result<Vec<_>> = values
            .into_iter()
            .map(|v| value_of(self.name, &v.into()))
            .collect();
        Filter::from_expr(values.map(|vs| {
            if vs.is_empty() {
                // `IN ()` is not valid SQL everywhere; an always-false test is.
                Expr::val(1).eq(0)
            } else {
                self.expr().is_in(vs)
            }
        }))
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
