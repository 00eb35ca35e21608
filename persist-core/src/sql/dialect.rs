//! The dialect: which database a statement is written for, and its limits.

/// The kind of database a [`Db`](crate::db::Db) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite (feature `sqlite`, the default).
    Sqlite = 0,
    /// PostgreSQL (feature `postgres`).
    Postgres = 1,
    /// MySQL or MariaDB (feature `mysql`).
    MySql = 2,
}

impl Backend {
    /// The most bind parameters one statement may carry on this backend
    /// (SQLite's default limit is 32766, PostgreSQL's and MySQL's 65535).
    pub const fn max_binds(self) -> usize {
        match self {
            Backend::Sqlite => 32_766,
            Backend::Postgres | Backend::MySql => 65_535,
        }
    }

    /// Whether `INSERT … RETURNING` gives back generated keys.
    pub const fn has_returning(self) -> bool {
        !matches!(self, Backend::MySql)
    }
}

/// Which sea-query builder renders SQL for a backend.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeaBuilder {
    Sqlite,
    Postgres,
    MySql,
}

impl SeaBuilder {
    pub(crate) fn build_select(
        self,
        q: &sea_query::SelectStatement,
    ) -> (String, sea_query::Values) {
        match self {
            SeaBuilder::Sqlite => q.build(sea_query::SqliteQueryBuilder),
            SeaBuilder::Postgres => q.build(sea_query::PostgresQueryBuilder),
            SeaBuilder::MySql => q.build(sea_query::MysqlQueryBuilder),
        }
    }
}

impl Backend {
    pub(crate) fn sea(self) -> SeaBuilder {
        match self {
            Backend::Sqlite => SeaBuilder::Sqlite,
            Backend::Postgres => SeaBuilder::Postgres,
            Backend::MySql => SeaBuilder::MySql,
        }
    }

    /// Quotes an identifier for this backend.
    pub(crate) fn quote(self, ident: &str) -> String {
        match self {
            Backend::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// The `n`-th (1-based) bind placeholder.
    pub(crate) fn placeholder(self, n: usize, out: &mut String) {
        use std::fmt::Write;
        match self {
            Backend::Postgres => {
                let _ = write!(out, "${n}");
            }
            _ => out.push('?'),
        }
    }
}
