//! Column arithmetic: typed expressions over an entity's numeric columns,
//! for bulk updates ([`UpdateAll::set_expr`](crate::query::UpdateAll::set_expr))
//! and for an upsert's conflict update
//! ([`Upsert::on_conflict_set`](crate::query::Upsert::on_conflict_set)).
//!
//! `Product::STOCK.sub(1)` is `"products"."stock" - ?`: the database
//! computes the new value from the row as it is when the statement runs, so
//! `SET stock = stock - 1 WHERE stock >= 1` needs no read first and loses no
//! concurrent decrement.

use std::marker::PhantomData;

use sea_query::{Alias, Expr, ExprTrait, SimpleExpr};

use crate::error::{Error, Result};
use crate::model::entity::Entity;
use crate::model::value::Binder;
use crate::query::column::Column;
use crate::query::select::Summable;
use crate::sql::Backend;

/// An arithmetic expression over entity `E`'s columns with values of type
/// `V`, built from a column: `Product::STOCK.sub(1)`,
/// `Item::PRICE.mul(2).add(5)`. Operations apply left to right
/// (`(price * 2) + 5`). `NULL` in, `NULL` out, as in SQL.
///
/// Only numeric columns (the [`Summable`] types: integers and floats, and
/// their `Option`s) take arithmetic; the value type is checked as in
/// filters, so `Product::STOCK.sub("one")` does not compile. Integer
/// overflow is the database's error (a constraint or range error), never a
/// silent wrap. Division is not offered: its integer semantics differ
/// between the backends.
pub struct ColumnExpr<E, V> {
    first: Term<V>,
    ops: Vec<(Op, Term<V>)>,
    _marker: PhantomData<fn() -> E>,
}

enum Term<V> {
    Column(&'static str),
    Value(V),
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Add => " + ",
            Op::Sub => " - ",
            Op::Mul => " * ",
        }
    }
}

impl<E, V> std::fmt::Debug for ColumnExpr<E, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let term = |t: &Term<V>| match t {
            Term::Column(c) => (*c).to_owned(),
            Term::Value(_) => "?".to_owned(),
        };
        let mut s = term(&self.first);
        for (op, t) in &self.ops {
            s = format!("({s}{}{})", op.sql(), term(t));
        }
        f.debug_tuple("ColumnExpr").field(&s).finish()
    }
}

impl<E: Entity, V> From<Column<E, V>> for ColumnExpr<E, V> {
    /// The column's own value (`SET a = b` with `set_expr(A, B.into())`).
    fn from(c: Column<E, V>) -> Self {
        ColumnExpr {
            first: Term::Column(c.name()),
            ops: Vec::new(),
            _marker: PhantomData,
        }
    }
}

impl<E: Entity, V: Summable> Column<E, V> {
    /// `column + v`.
    pub fn add(&self, v: impl Into<V>) -> ColumnExpr<E, V> {
        ColumnExpr::from(*self).add(v)
    }

    /// `column - v`.
    pub fn sub(&self, v: impl Into<V>) -> ColumnExpr<E, V> {
        ColumnExpr::from(*self).sub(v)
    }

    /// `column * v`.
    pub fn mul(&self, v: impl Into<V>) -> ColumnExpr<E, V> {
        ColumnExpr::from(*self).mul(v)
    }
}

#[allow(clippy::should_implement_trait)]
impl<E: Entity, V: Summable> ColumnExpr<E, V> {
    fn then(mut self, op: Op, t: Term<V>) -> Self {
        self.ops.push((op, t));
        self
    }

    /// This expression `+ v`.
    pub fn add(self, v: impl Into<V>) -> Self {
        self.then(Op::Add, Term::Value(v.into()))
    }

    /// This expression `- v`.
    pub fn sub(self, v: impl Into<V>) -> Self {
        self.then(Op::Sub, Term::Value(v.into()))
    }

    /// This expression `* v`.
    pub fn mul(self, v: impl Into<V>) -> Self {
        self.then(Op::Mul, Term::Value(v.into()))
    }

    /// This expression `+ column` (another column of the same row and type).
    pub fn add_column(self, c: Column<E, V>) -> Self {
        self.then(Op::Add, Term::Column(c.name()))
    }

    /// This expression `- column`.
    pub fn sub_column(self, c: Column<E, V>) -> Self {
        self.then(Op::Sub, Term::Column(c.name()))
    }
}

impl<E: Entity, V: crate::model::value::Field> ColumnExpr<E, V> {
    /// The expression for sea-query, columns qualified by `E`'s table.
    pub(crate) fn to_sea(&self) -> Result<SimpleExpr> {
        let term = |t: &Term<V>| -> Result<SimpleExpr> {
            Ok(match t {
                Term::Column(c) => Expr::col((Alias::new(E::META.table), Alias::new(*c))),
                Term::Value(v) => {
                    Expr::val(v.to_value().map_err(|e| Error::encode("expression", e))?)
                }
            })
        };
        let mut e = term(&self.first)?;
        for (op, t) in &self.ops {
            let r = term(t)?;
            // Explicit parentheses keep "left to right" whatever the
            // builder's precedence rules.
            let l = Expr::expr(e);
            e = match op {
                Op::Add => l.add(r),
                Op::Sub => l.sub(r),
                Op::Mul => l.mul(r),
            };
            e = SimpleExpr::Tuple(vec![e]);
        }
        Ok(e)
    }

    /// Writes the expression as SQL text, numbering its placeholders from
    /// `*next` (PostgreSQL's `$n`) and advancing it.
    pub(crate) fn write_sql(&self, b: Backend, next: &mut usize, out: &mut String) {
        let table = b.quote(E::META.table);
        let mut term = |t: &Term<V>, out: &mut String| match t {
            Term::Column(c) => {
                out.push_str(&table);
                out.push('.');
                out.push_str(&b.quote(c));
            }
            Term::Value(_) => {
                b.placeholder(*next, out);
                *next += 1;
            }
        };
        out.extend(std::iter::repeat_n('(', self.ops.len()));
        term(&self.first, out);
        for (op, t) in &self.ops {
            out.push_str(op.sql());
            term(t, out);
            out.push(')');
        }
    }

    /// Binds the expression's values, in the order [`write_sql`] numbered
    /// them.
    ///
    /// [`write_sql`]: ColumnExpr::write_sql
    pub(crate) fn bind<B: Binder>(&self, b: &mut B) -> Result<()> {
        let terms = std::iter::once(&self.first).chain(self.ops.iter().map(|(_, t)| t));
        for t in terms {
            if let Term::Value(v) = t {
                v.bind(b).map_err(|e| Error::encode("expression", e))?;
            }
        }
        Ok(())
    }
}
