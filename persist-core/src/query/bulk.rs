//! Bulk writes: `UPDATE … WHERE …` and `DELETE … WHERE …` as one statement.
//!
//! ```
//! # use persist_core::prelude::*;
//! # #[derive(Entity, Clone, Debug)]
//! # pub struct Account { #[persist(primary_key)] pub id: i64, pub balance_cents: i64,
//! #     pub frozen: bool, #[persist(version)] pub version: i64 }
//! # async fn demo(s: &Session) -> Result<(), Error> {
//! let frozen: u64 = s
//!     .update_all::<Account>()
//!     .set(Account::FROZEN, true)
//!     .filter(Account::BALANCE_CENTS.lt(0))
//!     .await?;                                   // rows updated; versions bumped
//! let gone: u64 = s.delete_all::<Account>().filter(Account::FROZEN.eq(true)).await?;
//! # Ok(()) }
//! ```

use std::future::IntoFuture;
use std::sync::Arc;

use futures_core::future::BoxFuture;
use sea_query::{
    Alias, Cond, Expr, ExprTrait, MysqlQueryBuilder, PostgresQueryBuilder, QueryStatementWriter,
    SqliteQueryBuilder,
};

use crate::backend::{Driver, dispatch};
use crate::error::{Error, Result};
use crate::model::entity::{ChangeKind, Entity};
use crate::model::value::{Field, SqlType};
use crate::query::column::{Column, Filter};
use crate::query::expr::ColumnExpr;
use crate::session::{Session, audit, soft_delete};
use crate::sql::Backend;

/// `UPDATE` of every row of `E` matching the filters; made by
/// [`Session::update_all`]. Run it with `.await` (or
/// [`execute`](UpdateAll::execute)): the number of rows updated.
///
/// The version column, if `E` has one, is bumped (`version = version + 1`)
/// and `updated_at` set to now, unless `set` names them. Rows loaded before
/// keep their old version: updating them later is [`Error::Stale`].
///
/// For a `#[persist(soft_delete)]` entity the soft-deleted rows are left
/// alone, as every read leaves them out; [`with_deleted`](UpdateAll::with_deleted)
/// updates them too.
#[must_use = "a bulk update does nothing until it is awaited"]
pub struct UpdateAll<'s, E> {
    session: &'s Session,
    sets: Vec<(usize, sea_query::SimpleExpr)>,
    cond: Cond,
    error: Option<Error>,
    with_deleted: bool,
    _marker: std::marker::PhantomData<fn() -> E>,
}

/// `DELETE` of every row of `E` matching the filters; made by
/// [`Session::delete_all`]. Run it with `.await` (or
/// [`execute`](DeleteAll::execute)): the number of rows deleted. Children
/// declared `on_delete = "cascade"` are deleted by the database.
///
/// For a `#[persist(soft_delete)]` entity the matching live rows are marked
/// instead (`UPDATE … SET deleted_at = now WHERE … AND deleted_at IS NULL`),
/// and so are, first, their live children declared `on_delete = "cascade"`
/// that have a `soft_delete` column (and theirs), all in one transaction's
/// statements; the count is of the entity's own rows marked.
/// [`permanently`](DeleteAll::permanently) deletes instead.
#[must_use = "a bulk delete does nothing until it is awaited"]
pub struct DeleteAll<'s, E> {
    session: &'s Session,
    cond: Cond,
    error: Option<Error>,
    permanently: bool,
    _marker: std::marker::PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for UpdateAll<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateAll")
            .field("sets", &self.sets)
            .field("cond", &self.cond)
            .finish()
    }
}

impl<E> std::fmt::Debug for DeleteAll<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteAll")
            .field("cond", &self.cond)
            .finish()
    }
}

impl Session {
    /// A bulk `UPDATE` of `E`'s table: `s.update_all::<T>().set(T::COL,
    /// v).filter(…).await` runs one statement and returns the number of rows
    /// updated. Registered changes are written first; afterwards the session
    /// forgets what it holds of `E`.
    pub fn update_all<E: Entity>(&self) -> UpdateAll<'_, E> {
        UpdateAll {
            session: self,
            sets: Vec::new(),
            cond: Cond::all(),
            error: None,
            with_deleted: false,
            _marker: std::marker::PhantomData,
        }
    }

    /// A bulk `DELETE` of `E`'s table: `s.delete_all::<T>().filter(…).await`
    /// runs one statement and returns the number of rows deleted (without a
    /// filter: every row). Registered changes are written first; afterwards
    /// the session forgets what it holds of `E`.
    pub fn delete_all<E: Entity>(&self) -> DeleteAll<'_, E> {
        DeleteAll {
            session: self,
            cond: Cond::all(),
            error: None,
            permanently: false,
            _marker: std::marker::PhantomData,
        }
    }
}

fn add_cond(cond: &mut Cond, error: &mut Option<Error>, c: Result<Cond>) {
    match c {
        Ok(c) => *cond = std::mem::replace(cond, Cond::all()).add(c),
        Err(e) => {
            error.get_or_insert(e);
        }
    }
}

fn build(b: Backend, q: &impl QueryStatementWriter) -> (String, sea_query::Values) {
    match b {
        Backend::Sqlite => q.build(SqliteQueryBuilder),
        Backend::Postgres => q.build(PostgresQueryBuilder),
        Backend::MySql => q.build(MysqlQueryBuilder),
    }
}

/// Runs a bulk statement after the interceptors and the autoflush and
/// returns the rows affected. `columns` are the columns an update sets
/// (what interceptors are shown).
///
/// For an entity whose writes keep history (`#[persist(audit)]`, or an
/// audited child the database deletes or nulls with the rows), `kind` says
/// what the statement does to the rows matching `cond`, and the same step
/// selects their keys first (locked where the backend has row locks) and
/// records them: after the statement for an update (or a soft delete),
/// before it for a delete (with the children the database will delete).
/// A row a concurrent transaction inserts between the key select and the
/// statement (under `READ COMMITTED`) would be written without history.
async fn execute<E: Entity>(
    s: &Session,
    sql: String,
    values: sea_query::Values,
    (kind, columns): (ChangeKind, Vec<&'static str>),
    cond: Cond,
) -> Result<u64> {
    let recorded = s.before_bulk::<E>(kind, columns, &sql, false)?;
    let sql: Arc<str> = Arc::from(sql);
    let meta = E::META;
    let audited = meta.audit || (kind == ChangeKind::Delete && audit::touches_history(meta));
    if audited {
        audit::needs_transaction(s, meta)?;
    }
    let mut guard = s.lock().await?;
    let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
    s.will_write()?;
    let out = s
        .step(async {
            let keys = if audited {
                audit::matching_keys(s, tx, meta, cond).await?
            } else {
                Vec::new()
            };
            let before = kind == ChangeKind::Delete && meta.soft_delete.is_none();
            if before {
                audit::record_deletes(s, tx, meta, keys.clone()).await?;
            }
            let done = dispatch!(&mut *tx, |c, DB| {
                let args = DB::args_from_values(values);
                s.run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                    .await?
            });
            if !before {
                audit::record(s, tx, meta, kind, audit::Rows::Keys(keys)).await?;
            }
            Ok(done)
        })
        .await;
    // A failed write fails the session, as a failed flush does.
    let done = s.fail_on_error(&mut guard, out).await?;
    drop(guard);
    if let Some(set) = recorded {
        s.record_changes(set);
    }
    s.after_bulk_write::<E>();
    Ok(done.rows_affected)
}

impl<'s, E: Entity> UpdateAll<'s, E> {
    /// Sets `col` to `v` in every matching row.
    pub fn set<V: Field>(mut self, col: Column<E, V>, v: impl Into<V>) -> Self {
        match v.into().to_value() {
            Ok(v) => self.sets.push((col.index(), v.into())),
            Err(e) => {
                self.error.get_or_insert(Error::encode(col.name(), e));
            }
        }
        self
    }

    /// Sets `col` to an expression over the row's own columns, computed by
    /// the database for each row as the statement runs: the atomic
    /// decrement `SET stock = stock - 1`, with no read first.
    ///
    /// ```
    /// # use persist_core::prelude::*;
    /// # #[derive(Entity, Clone, Debug)]
    /// # pub struct Product { #[persist(primary_key)] pub id: i64, pub stock: i32 }
    /// # #[derive(Debug)] enum ShopError { OutOfStock, Db(Error) }
    /// # impl From<Error> for ShopError { fn from(e: Error) -> Self { ShopError::Db(e) } }
    /// # async fn demo(s: &Session, id: i64, qty: i32) -> Result<(), ShopError> {
    /// let taken = s
    ///     .update_all::<Product>()
    ///     .filter(Product::ID.eq(id).and(Product::STOCK.ge(qty)))
    ///     .set_expr(Product::STOCK, Product::STOCK.sub(qty))
    ///     .await?;                       // rows matched: 1, or 0 when short
    /// if taken == 0 {
    ///     return Err(ShopError::OutOfStock);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn set_expr<V: Field>(mut self, col: Column<E, V>, expr: ColumnExpr<E, V>) -> Self {
        match expr.to_sea() {
            Ok(e) => self.sets.push((col.index(), e)),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Restricts the update (several filters are combined with `AND`).
    pub fn filter(mut self, f: Filter<E>) -> Self {
        add_cond(&mut self.cond, &mut self.error, f.cond);
        self
    }

    /// Updates the soft-deleted rows of a `#[persist(soft_delete)]` entity
    /// too (by default they are left alone).
    pub fn with_deleted(mut self) -> Self {
        self.with_deleted = true;
        self
    }

    /// Runs the update; the number of rows it matched, on every backend: a
    /// row set to the value it had is counted (MySQL/MariaDB included).
    pub async fn execute(self) -> Result<u64> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let meta = E::META;
        if self.sets.is_empty() {
            return Err(Error::Invalid(format!(
                "update_all::<{}>() needs at least one `set`",
                meta.name
            )));
        }
        let mut q = sea_query::Query::update();
        q.table(Alias::new(meta.table));
        let named = |i: usize| self.sets.iter().any(|(c, _)| *c == i);
        for (i, v) in &self.sets {
            q.value(Alias::new(meta.columns[*i].name), v.clone());
        }
        if let Some(v) = meta.version.filter(|v| !named(*v)) {
            let c = Alias::new(meta.columns[v].name);
            q.value(c.clone(), Expr::col(c).add(1));
        }
        if let Some(u) = meta.updated_at.filter(|u| !named(*u)) {
            let now = crate::model::value::truncate_micros(chrono::Utc::now());
            let v = match meta.columns[u].sql_type {
                SqlType::Timestamp => now.naive_utc().to_value(),
                _ => now.to_value(),
            }
            .map_err(|e| Error::encode(meta.columns[u].name, e))?;
            q.value(Alias::new(meta.columns[u].name), v);
        }
        // Soft-deleted rows are left alone unless asked for; the history
        // records the rows the statement changes, under the same condition.
        let live = soft_delete::live(meta).filter(|_| !self.with_deleted);
        let cond = self.cond.add_option(live);
        q.cond_where(cond.clone());
        let (sql, values) = build(self.session.backend(), &q);
        let cols = self
            .sets
            .iter()
            .map(|(i, _)| meta.columns[*i].name)
            .collect();
        execute::<E>(self.session, sql, values, (ChangeKind::Update, cols), cond).await
    }
}

impl<'s, E: Entity> DeleteAll<'s, E> {
    /// Deletes the rows (`DELETE`) even for a `#[persist(soft_delete)]`
    /// entity, soft-deleted or not; the database's `ON DELETE CASCADE`
    /// removes their children.
    pub fn permanently(mut self) -> Self {
        self.permanently = true;
        self
    }

    /// Restricts the delete (several filters are combined with `AND`).
    pub fn filter(mut self, f: Filter<E>) -> Self {
        add_cond(&mut self.cond, &mut self.error, f.cond);
        self
    }

    /// Runs the delete; the number of rows deleted (for a
    /// `#[persist(soft_delete)]` entity, marked).
    ///
    /// # Cancel safety
    ///
    /// Its statements (a soft delete's cascade sends several) are one
    /// operation of the session: dropped before they all ran, the session's
    /// transaction is rolled back and the session answers
    /// [`Error::SessionFailed`] until [`rollback`](Session::rollback), so
    /// none of them stays written.
    pub async fn execute(self) -> Result<u64> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if E::META.soft_delete.is_some() && !self.permanently {
            return soft_delete_all::<E>(self.session, self.cond).await;
        }
        let mut q = sea_query::Query::delete();
        q.from_table(Alias::new(E::META.table));
        q.cond_where(self.cond.clone());
        let (sql, values) = build(self.session.backend(), &q);
        execute::<E>(
            self.session,
            sql,
            values,
            (ChangeKind::Delete, Vec::new()),
            self.cond,
        )
        .await
    }
}

/// The soft `delete_all`: the cascade's `UPDATE`s (the deepest children
/// first, each following the live rows above it by a subquery), then the
/// entity's own, after the autoflush, as one operation: a cut between two
/// statements fails the session (its transaction rolls back) rather than
/// leave some marked.
async fn soft_delete_all<E: Entity>(s: &Session, cond: Cond) -> Result<u64> {
    let meta = E::META;
    let now = soft_delete::now();
    let mut statements = Vec::new();
    if let [pk] = meta.primary_key {
        let mut keys = sea_query::Query::select();
        keys.column((Alias::new(meta.table), Alias::new(meta.columns[*pk].name)));
        keys.from(Alias::new(meta.table));
        keys.cond_where(cond.clone().add_option(soft_delete::live(meta)));
        statements = soft_delete::cascade_statements(
            meta,
            &soft_delete::Parents::Select(Box::new(keys)),
            now,
        )?;
    }
    let own = soft_delete::mark_statement(meta, cond.clone(), now)?;
    if !statements.is_empty() {
        s.one_statement_only("a soft delete_all that cascades")?;
    }
    if meta.audit || statements.iter().any(|c| c.child.audit) {
        audit::needs_transaction(s, meta)?;
    }
    let (own_sql, _) = build(s.backend(), &own);
    let recorded = s.before_bulk::<E>(ChangeKind::Delete, Vec::new(), &own_sql, true)?;
    let mut guard = s.lock().await?;
    let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
    s.will_write()?;
    let out = s
        .step(async {
            for c in &statements {
                c.run(s, tx, now).await?;
            }
            let n = soft_delete::run_update(s, tx, meta, &own).await?;
            if n > 0 && meta.audit {
                let marked = soft_delete::marked_at(meta, cond, now)?;
                audit::record(s, tx, meta, ChangeKind::Delete, audit::Rows::Cond(marked)).await?;
            }
            Ok(n)
        })
        .await;
    let marked = s.fail_on_error(&mut guard, out).await?;
    drop(guard);
    if let Some(set) = recorded {
        s.record_changes(set);
    }
    s.after_bulk_write::<E>();
    Ok(marked)
}

impl<'s, E: Entity> IntoFuture for UpdateAll<'s, E> {
    type Output = Result<u64>;
    type IntoFuture = BoxFuture<'s, Result<u64>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

impl<'s, E: Entity> IntoFuture for DeleteAll<'s, E> {
    type Output = Result<u64>;
    type IntoFuture = BoxFuture<'s, Result<u64>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}
