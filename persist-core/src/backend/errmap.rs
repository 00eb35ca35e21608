//! Turns driver errors into persist's structured constraint errors, the same
//! variant with the same table, columns and constraint name on every backend.
//!
//! persist names every constraint it creates (`pk_<table>`,
//! `uq_<table>_<column>`, `fk_<table>_<column>`), so a constraint name can be
//! turned back into columns, and SQLite's messages (which name columns, not
//! constraints) can be turned into the constraint name.

use sqlx::error::{DatabaseError, ErrorKind};

use crate::error::Error;
use crate::model::entity::EntityMeta;
use crate::sql::Backend;

/// Maps `e`, raised by a statement on `meta`'s table (when known).
pub(crate) fn map(backend: Backend, meta: Option<&EntityMeta>, e: sqlx::Error) -> Error {
    let sqlx::Error::Database(db) = &e else {
        return Error::Database(e);
    };
    let kind = match db.kind() {
        ErrorKind::UniqueViolation => Kind::Unique,
        ErrorKind::ForeignKeyViolation => Kind::ForeignKey,
        ErrorKind::NotNullViolation => Kind::NotNull,
        _ => match mysql_number(db.as_ref()) {
            // MySQL reports a missing value for a NOT NULL column without default as 1364.
            Some(1048 | 1364) => Kind::NotNull,
            Some(1451 | 1452) => Kind::ForeignKey,
            Some(1062) => Kind::Unique,
            _ => return Error::Database(e),
        },
    };
    let fault = match backend {
        Backend::Postgres => postgres(db.as_ref(), meta),
        Backend::MySql => mysql(kind, db.message(), meta),
        Backend::Sqlite => sqlite(kind, db.message(), meta),
    };
    let Fault {
        table,
        columns,
        constraint,
    } = fault;
    match kind {
        Kind::Unique => Error::UniqueViolation {
            table,
            columns,
            constraint,
        },
        Kind::ForeignKey => Error::ForeignKeyViolation {
            table,
            columns,
            constraint,
        },
        Kind::NotNull => Error::NotNullViolation {
            table,
            columns,
            constraint,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Unique,
    ForeignKey,
    NotNull,
}

struct Fault {
    table: String,
    columns: Vec<String>,
    constraint: Option<String>,
}

fn context_table(meta: Option<&EntityMeta>) -> String {
    meta.map(|m| m.table.to_owned()).unwrap_or_default()
}

/// Columns named by one of persist's constraint names on `table`.
fn columns_of(table: &str, constraint: &str, meta: Option<&EntityMeta>) -> Vec<String> {
    if constraint == format!("pk_{table}")
        && let Some(m) = meta.filter(|m| m.table == table)
    {
        return m
            .primary_key
            .iter()
            .map(|i| m.columns[*i].name.to_owned())
            .collect();
    }
    for prefix in ["uq", "fk", "ix"] {
        if let Some(rest) = constraint.strip_prefix(&format!("{prefix}_{table}_")) {
            return vec![rest.to_owned()];
        }
    }
    Vec::new()
}

fn constraint_for_columns(
    kind: Kind,
    table: &str,
    columns: &[String],
    meta: Option<&EntityMeta>,
) -> Option<String> {
    let m = meta.filter(|m| m.table == table)?;
    match kind {
        Kind::Unique => {
            let pk: Vec<&str> = m.primary_key.iter().map(|i| m.columns[*i].name).collect();
            if pk.len() == columns.len() && pk.iter().zip(columns).all(|(a, b)| *a == b) {
                Some(format!("pk_{table}"))
            } else {
                Some(format!("uq_{table}_{}", columns.join("_")))
            }
        }
        Kind::ForeignKey => {
            let fks: Vec<&str> = m
                .columns
                .iter()
                .filter(|c| c.references.is_some())
                .map(|c| c.name)
                .collect();
            match fks.as_slice() {
                [one] => Some(format!("fk_{table}_{one}")),
                _ => None,
            }
        }
        Kind::NotNull => None,
    }
}

#[allow(unused_variables)]
fn postgres(db: &dyn DatabaseError, meta: Option<&EntityMeta>) -> Fault {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let table = pg
            .table()
            .map(str::to_owned)
            .unwrap_or_else(|| context_table(meta));
        let constraint = pg.constraint().map(str::to_owned);
        let columns = match (pg.column(), &constraint) {
            (Some(col), _) => vec![col.to_owned()],
            (None, Some(c)) => columns_of(&table, c, meta),
            (None, None) => Vec::new(),
        };
        return Fault {
            table,
            columns,
            constraint,
        };
    }
    Fault {
        table: context_table(meta),
        columns: Vec::new(),
        constraint: None,
    }
}

#[allow(unused_variables)]
fn mysql_number(db: &dyn DatabaseError) -> Option<u16> {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return Some(my.number());
    }
    None
}

/// The text between the first `open` after `after` and the next `close`.
fn between<'a>(s: &'a str, after: &str, close: char) -> Option<&'a str> {
    let start = s.find(after)? + after.len();
    let rest = &s[start..];
    let end = rest.find(close)?;
    Some(&rest[..end])
}

fn mysql(kind: Kind, message: &str, meta: Option<&EntityMeta>) -> Fault {
    match kind {
        Kind::Unique => {
            let table = context_table(meta);
            // "Duplicate entry 'x' for key 'uq_t_c'" (MySQL 8 writes 't.uq_t_c').
            let key = between(message, "for key '", '\'').unwrap_or_default();
            let key = key.rsplit('.').next().unwrap_or(key);
            let constraint = if key == "PRIMARY" {
                format!("pk_{table}")
            } else {
                key.to_owned()
            };
            let columns = columns_of(&table, &constraint, meta);
            Fault {
                table,
                columns,
                constraint: Some(constraint).filter(|c| !c.is_empty()),
            }
        }
        Kind::ForeignKey => {
            // "… a foreign key constraint fails (`db`.`t`, CONSTRAINT `fk_t_c` FOREIGN KEY (`c`) REFERENCES …"
            let table = between(message, "`.`", '`')
                .map(str::to_owned)
                .unwrap_or_else(|| context_table(meta));
            let constraint = between(message, "CONSTRAINT `", '`').map(str::to_owned);
            let columns = between(message, "FOREIGN KEY (`", ')')
                .map(|cols| {
                    cols.split(", ")
                        .map(|c| c.trim_matches('`').to_owned())
                        .collect()
                })
                .unwrap_or_default();
            Fault {
                table,
                columns,
                constraint,
            }
        }
        Kind::NotNull => {
            // "Column 'c' cannot be null" / "Field 'c' doesn't have a default value"
            let column = between(message, "'", '\'').map(str::to_owned);
            Fault {
                table: context_table(meta),
                columns: column.into_iter().collect(),
                constraint: None,
            }
        }
    }
}

fn sqlite(kind: Kind, message: &str, meta: Option<&EntityMeta>) -> Fault {
    // "UNIQUE constraint failed: t.a, t.b" / "NOT NULL constraint failed: t.c"
    let mut table = context_table(meta);
    let mut columns = Vec::new();
    if let Some((_, list)) = message.split_once("failed: ") {
        for item in list.split(", ") {
            if let Some((t, c)) = item.split_once('.') {
                table = t.to_owned();
                columns.push(c.to_owned());
            }
        }
    }
    if kind == Kind::ForeignKey {
        // SQLite names neither the constraint nor the columns: take them from
        // the schema persist made for the table written to.
        if let Some(m) = meta {
            columns = m
                .columns
                .iter()
                .filter(|c| c.references.is_some())
                .map(|c| c.name.to_owned())
                .collect();
        }
    }
    let constraint = constraint_for_columns(kind, &table, &columns, meta);
    Fault {
        table,
        columns,
        constraint,
    }
}
