//! Upserts whose conflict update computes columns from the existing row:
//! the cart line that adds to its quantity instead of replacing it.

use std::future::IntoFuture;
use std::sync::Arc;

use futures_core::future::BoxFuture;

use crate::backend::{Decoded, Driver, dispatch};
use crate::error::{BoxDynError, Error, Result};
use crate::model::entity::{ChangeKind, Entity, EntityMeta};
use crate::model::value::{Binder, Field, SqlType};
use crate::query::column::Column;
use crate::query::expr::ColumnExpr;
use crate::session::Session;
use crate::session::exec::{GeneratedKey, bind_insert_columns, prepare_insert};
use crate::sql::Backend;

/// The columns an upsert of `meta` conflicts on: the primary key, or, for
/// an auto-increment key, the first `unique` field.
pub(crate) fn upsert_target(meta: &EntityMeta) -> Result<Vec<usize>> {
    if meta.auto_increment.is_none() {
        return Ok(meta.primary_key.to_vec());
    }
    match meta.columns.iter().position(|c| c.unique) {
        Some(i) => Ok(vec![i]),
        None => Err(Error::Invalid(format!(
            "upsert on {} needs a unique field besides its auto-increment key",
            meta.name
        ))),
    }
}

impl Session {
    /// An upsert of `value` whose conflict update can compute columns from
    /// the row already stored ([`Upsert::on_conflict_set`]); awaited, it
    /// answers the row as stored. Without `on_conflict_set` it is
    /// [`Session::upsert`], answering the stored row.
    ///
    /// ```
    /// # use persist_core::prelude::*;
    /// # #[derive(Entity, Clone, Debug)]
    /// # #[persist(table = "cart_lines")]
    /// # pub struct CartLine { #[persist(primary_key)] pub cart_id: i64,
    /// #     #[persist(primary_key)] pub product_id: i64, pub qty: i32 }
    /// # async fn demo(s: &Session) -> Result<(), Error> {
    /// let line = CartLine { cart_id: 7, product_id: 42, qty: 2 };
    /// // First time: inserted with qty 2. Again: the stored qty grows by 2.
    /// let stored = s
    ///     .upsert_with(line.clone())
    ///     .on_conflict_set(CartLine::QTY, CartLine::QTY.add(line.qty))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn upsert_with<E: Entity>(&self, value: E) -> Upsert<'_, E> {
        Upsert {
            session: self,
            value,
            sets: Vec::new(),
        }
    }
}

/// An upsert with computed conflict updates; made by
/// [`Session::upsert_with`]. Awaited (or [`execute`](Upsert::execute)), it
/// answers the row as the database stored it.
///
/// The conflict target is [`Session::upsert`]'s (the primary key, or the
/// first `unique` field of an entity with an auto-increment key), and so
/// is the MySQL caveat: `ON DUPLICATE KEY UPDATE` fires on a conflict with
/// any unique key. Columns not named by `on_conflict_set` take the new
/// row's values, as in a plain upsert.
///
/// # Cancel safety
///
/// As every write of a session: dropped at any await point, the
/// connection is discarded (the server rolls the transaction back) and the
/// session answers [`Error::SessionFailed`] until
/// [`rollback`](Session::rollback). The fault suite cuts it at every poll
/// on every backend.
#[must_use = "an upsert does nothing until it is awaited"]
pub struct Upsert<'s, E> {
    session: &'s Session,
    value: E,
    sets: Vec<(usize, Box<dyn ConflictSet>)>,
}

impl<E> std::fmt::Debug for Upsert<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upsert")
            .field(
                "sets",
                &self.sets.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A conflict-update expression with its value type erased.
trait ConflictSet: Send + Sync {
    fn write_sql(&self, b: Backend, next: &mut usize, out: &mut String);
    fn bind(&self, b: &mut dyn Binder) -> Result<()>;
}

impl<E: Entity, V: Field + Send + Sync> ConflictSet for ColumnExpr<E, V> {
    fn write_sql(&self, b: Backend, next: &mut usize, out: &mut String) {
        ColumnExpr::write_sql(self, b, next, out);
    }
    fn bind(&self, b: &mut dyn Binder) -> Result<()> {
        ColumnExpr::bind(self, &mut DynBinder(b))
    }
}

impl<'s, E: Entity> Upsert<'s, E> {
    /// On conflict, sets `col` to `expr`, computed from the stored row
    /// (`qty = qty + 2`) instead of taking the new row's value.
    pub fn on_conflict_set<V: Field + Send + Sync + 'static>(
        mut self,
        col: Column<E, V>,
        expr: ColumnExpr<E, V>,
    ) -> Self {
        self.sets.retain(|(i, _)| *i != col.index());
        self.sets.push((col.index(), Box::new(expr)));
        self
    }

    /// Runs the upsert; the row as stored.
    pub async fn execute(self) -> Result<E> {
        self.run(true).await
    }

    /// Runs the upsert. With `stored`, answers the row as the database
    /// stored it (`RETURNING` every column, or a read by key where the
    /// backend has no `RETURNING`); without, the value as given with its
    /// generated key ([`Session::upsert`]).
    pub(crate) async fn run(self, stored: bool) -> Result<E> {
        let s = self.session;
        let meta = E::META;
        let target = upsert_target(meta)?;
        if let Some((i, _)) = self
            .sets
            .iter()
            .find(|(i, _)| target.contains(i) || meta.columns[*i].primary_key)
        {
            return Err(Error::Invalid(format!(
                "upsert on {}: the conflict target `{}` cannot be set on conflict",
                meta.name, meta.columns[*i].name
            )));
        }
        let mut value = self.value;
        prepare_insert(std::slice::from_mut(&mut value));
        s.before_immediate(std::slice::from_mut(&mut value))?;
        let b = s.backend();
        let mut next = meta.insert_columns().count() + 1;
        let sets: Vec<(usize, String)> = self
            .sets
            .iter()
            .map(|(i, e)| {
                let mut sql = String::new();
                e.write_sql(b, &mut next, &mut sql);
                (*i, sql)
            })
            .collect();
        let returning_all = stored && b.has_returning();
        let sql: Arc<str> = Arc::from(crate::sql::statements::upsert(
            b,
            meta,
            &target,
            &sets,
            returning_all,
        ));
        crate::session::audit::needs_transaction(s, meta)?;
        let mut guard = s.lock().await?;
        let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
        s.will_write()?;
        // One step from the existence check to the history row: a cut
        // between them would leave a change without its history.
        let out: Result<Option<E>> = s
            .step(async {
                let existed = if meta.audit {
                    Some(target_exists(s, tx, &value, &target).await?)
                } else {
                    None
                };
                let returned: Option<E> = dispatch!(&mut *tx, |c, DB| {
                    let mut args = <DB as Driver>::Args::default();
                    bind_insert_columns(&value, &mut args)?;
                    for (_, e) in &self.sets {
                        e.bind(&mut args)?;
                    }
                    if returning_all {
                        s.run(
                            Some(meta),
                            &sql,
                            DB::fetch_optional(c, sql.clone(), args, &Decoded::<E>::NEW),
                        )
                        .await?
                    } else {
                        if meta.auto_increment.is_some() && b.has_returning() {
                            let id = s
                                .run(
                                    Some(meta),
                                    &sql,
                                    DB::fetch_optional(c, sql.clone(), args, &GeneratedKey(meta)),
                                )
                                .await?;
                            if let Some(id) = id {
                                value.set_generated_key(id)?;
                            }
                        } else {
                            // MySQL: no RETURNING. The generated key is the row's
                            // inserted or updated (`id = LAST_INSERT_ID(id)`).
                            let done = s
                                .run(Some(meta), &sql, DB::execute(c, sql.clone(), args))
                                .await?;
                            if meta.auto_increment.is_some()
                                && let Some(id) = done.last_insert_id.filter(|id| *id > 0)
                            {
                                value.set_generated_key(id as i64)?;
                            }
                        }
                        None
                    }
                });
                if let Some(existed) = existed {
                    use crate::session::audit;
                    let key = returned.as_ref().map_or_else(|| value.key(), |r| r.key());
                    let kind = if existed {
                        ChangeKind::Update
                    } else {
                        ChangeKind::Insert
                    };
                    let keys = vec![audit::key_values(meta, &key)?];
                    audit::record(s, tx, meta, kind, audit::Rows::Keys(keys)).await?;
                }
                Ok(returned)
            })
            .await;
        let returned = s.fail_on_error(&mut guard, out).await?;
        let row = match returned {
            Some(row) => row,
            None if stored => {
                // The generated key or the given one names the row.
                let tx = guard.conn.as_mut().ok_or(Error::SessionClosed)?;
                let read = s.read_by_key_with_deleted::<E>(tx, &value.key()).await;
                s.fail_on_error(&mut guard, read)
                    .await?
                    .ok_or(Error::NotFound)?
            }
            None => value,
        };
        drop(guard);
        s.after_immediate(std::slice::from_ref(&row));
        s.cache_wrote(meta, vec![format!("{:?}", row.key())], false);
        let mut uow = s.uow();
        uow.detach::<E>(&row.key());
        uow.inserted(std::slice::from_ref(&row));
        Ok(row)
    }
}

/// Whether a row with `value`'s conflict target is stored (locked where the
/// backend has row locks): whether an audited upsert updates or inserts.
async fn target_exists<E: Entity>(
    s: &Session,
    conn: &mut crate::backend::AnyConn,
    value: &E,
    target: &[usize],
) -> Result<bool> {
    let b = s.backend();
    let meta = E::META;
    let mut sql = format!("SELECT 1 FROM {} WHERE ", b.quote(meta.table));
    for (n, i) in target.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        sql.push_str(&b.quote(meta.columns[*i].name));
        sql.push_str(" = ");
        b.placeholder(n + 1, &mut sql);
    }
    if b != Backend::Sqlite {
        sql.push_str(" FOR UPDATE");
    }
    let sql: Arc<str> = Arc::from(sql);
    let found = dispatch!(conn, |c, DB| {
        let mut args = <DB as Driver>::Args::default();
        for i in target {
            value.bind_column(*i, &mut args)?;
        }
        s.run(
            Some(meta),
            &sql,
            DB::fetch_optional(c, sql.clone(), args, &crate::backend::AnyRow),
        )
        .await?
    });
    Ok(found.is_some())
}

impl<'s, E: Entity> IntoFuture for Upsert<'s, E> {
    type Output = Result<E>;
    type IntoFuture = BoxFuture<'s, Result<E>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

/// A [`Binder`] behind `dyn`, so that an erased expression binds through
/// the generic [`Field::bind`].
struct DynBinder<'a>(&'a mut dyn Binder);

macro_rules! forward {
    ($($name:ident($t:ty)),* $(,)?) => {$(
        fn $name(&mut self, v: $t) -> Result<(), BoxDynError> {
            self.0.$name(v)
        }
    )*};
}

impl Binder for DynBinder<'_> {
    fn null(&mut self, ty: SqlType) -> Result<(), BoxDynError> {
        self.0.null(ty)
    }
    forward!(
        bool(bool),
        i16(i16),
        i32(i32),
        i64(i64),
        f32(f32),
        f64(f64),
        str(&str),
        bytes(&[u8]),
        json(&serde_json::Value),
        timestamptz(chrono::DateTime<chrono::Utc>),
        timestamp(chrono::NaiveDateTime),
        date(chrono::NaiveDate),
        time(chrono::NaiveTime),
        uuid(uuid::Uuid),
    );
    #[cfg(feature = "decimal")]
    fn decimal(&mut self, v: rust_decimal::Decimal) -> Result<(), BoxDynError> {
        self.0.decimal(v)
    }
}
