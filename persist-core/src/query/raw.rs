//! The raw-SQL escape hatch ([`RawQuery`]).

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::entity::Entity;
use crate::model::value::Field;
use crate::session::{Session, fetch_entities};

impl Session {
    /// A raw SQL query whose rows decode into `E`. The statement must select
    /// `E`'s columns in field order (as `SELECT * FROM t` does on a table
    /// persist created); bind parameters with [`RawQuery::bind`]. Registered
    /// changes are flushed first.
    pub fn raw<E: Entity>(&self, sql: impl sqlx::SqlSafeStr) -> RawQuery<'_, E> {
        RawQuery::new(self, sql)
    }
}

/// A raw SQL statement whose rows decode into `E`; see [`Session::raw`].
#[must_use = "a query does nothing until it is run"]
pub struct RawQuery<'s, E> {
    session: &'s Session,
    sql: Arc<str>,
    values: Result<Vec<sea_query::Value>>,
    _marker: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for RawQuery<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawQuery").field("sql", &self.sql).finish()
    }
}

impl<'s, E: Entity> RawQuery<'s, E> {
    pub(crate) fn new(session: &'s Session, sql: impl sqlx::SqlSafeStr) -> Self {
        let sql = sql.into_sql_str();
        RawQuery {
            session,
            sql: Arc::from(sql.as_str()),
            values: Ok(Vec::new()),
            _marker: PhantomData,
        }
    }

    /// Binds the next parameter (`?` on SQLite and MySQL, `$n` on PostgreSQL).
    pub fn bind<V: Field>(mut self, v: V) -> Self {
        if let Ok(values) = &mut self.values {
            match v.to_value() {
                Ok(v) => values.push(v),
                Err(e) => self.values = Err(Error::encode("raw parameter", e)),
            }
        }
        self
    }

    /// All rows.
    pub async fn all(self) -> Result<Vec<E>> {
        let values = self.values?;
        let mut guard = self.session.lock_for_any_read().await?;
        // A raw statement may write (`UPDATE … RETURNING *`): the tables it
        // names are invalidated at commit.
        self.session.cache_raw_statement(E::META, &self.sql);
        fetch_entities::<E>(self.session, &mut guard, self.sql, values).await
    }

    /// At most one row: `None` for none, [`Error::TooManyRows`] for more.
    pub async fn optional(self) -> Result<Option<E>> {
        let mut rows = self.all().await?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(rows.pop()),
            _ => Err(Error::TooManyRows),
        }
    }

    /// Exactly one row.
    pub async fn one(self) -> Result<E> {
        self.optional().await?.ok_or(Error::NotFound)
    }
}
