//! Raw SQL beyond entities: statements without rows (`execute`), rows
//! decoded into tuples of fields (`raw_as`) and into `sqlx::FromRow`
//! structs (`raw_from_row`), the shared cache after raw writes, cuts, and
//! the `Db`'s sqlx pool.

use std::sync::Arc;
use std::time::Duration;

use persist_cache::InProcessCache;
use persist_core::prelude::*;
use persist_core::session::Isolation;
use persist_core::sql::Backend;
use persist_core::sqlx::AssertSqlSafe;

use crate::common::{self, TestResult};
use crate::faults::harness::{Cut, cut_after};
use crate::model::AccountKind;

const TTL: Duration = Duration::from_secs(600);

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "raw_notes")]
pub struct Note {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub title: String,
    pub body: Option<String>,
    pub kind: AccountKind,
}

fn note(title: &str, body: Option<&str>) -> Note {
    Note {
        id: 0,
        title: title.into(),
        body: body.map(Into::into),
        kind: AccountKind::Savings,
    }
}

/// `sql` with its `?` placeholders as the backend writes them (`$1`, `$2`,
/// … on PostgreSQL).
fn sql(b: Backend, sql: &str) -> AssertSqlSafe<String> {
    if b != Backend::Postgres {
        return AssertSqlSafe(sql.to_owned());
    }
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    AssertSqlSafe(out)
}

async fn titles(db: &Db) -> Result<Vec<String>, Error> {
    let s = db.session().await?;
    let t = s
        .raw_as::<String>("SELECT title FROM raw_notes ORDER BY title")
        .all()
        .await?;
    s.commit().await?;
    Ok(t)
}

/// `execute` answers the rows affected, runs after the autoflush in the
/// session's transaction (one statement each), and its rows are there
/// after commit, not after rollback.
pub async fn execute_counts_rows_commits_and_rolls_back(db: Db) -> TestResult {
    db.create_tables::<Note>().await?;
    let b = db.backend();
    let insert =
        "INSERT INTO raw_notes (title, body, kind) VALUES (?, ?, 'savings'), (?, NULL, 'checking')";

    let s = db.session().await?;
    let n = s
        .execute(sql(b, insert))
        .bind("a".to_string())
        .bind(Some("body a".to_string()))
        .bind("b".to_string())
        .await?;
    assert_eq!(n, 2);
    assert_eq!(s.statement_count(), 1, "one statement");
    // A registered row is written before the raw statement, which sees it.
    s.add(note("c", None))?;
    let before = s.statement_count();
    let n = s
        .execute(sql(b, "UPDATE raw_notes SET body = ? WHERE body IS NULL"))
        .bind("filled".to_string())
        .run()
        .await?;
    assert_eq!(n, 2, "b and the flushed c");
    assert_eq!(
        s.statement_count(),
        before + 2,
        "the flush, then the update"
    );
    let n = s
        .execute(sql(b, "DELETE FROM raw_notes WHERE title = ?"))
        .bind("nobody".to_string())
        .await?;
    assert_eq!(n, 0);
    s.commit().await?;
    assert_eq!(titles(&db).await?, ["a", "b", "c"]);
    let s = db.session().await?;
    let filled = s
        .raw_as::<i64>(sql(b, "SELECT COUNT(*) FROM raw_notes WHERE body = ?"))
        .bind("filled".to_string())
        .one()
        .await?;
    assert_eq!(filled, 2);
    s.commit().await?;

    let s = db.session().await?;
    let n = s.execute("DELETE FROM raw_notes").await?;
    assert_eq!(n, 3);
    s.execute(sql(
        b,
        "INSERT INTO raw_notes (title, kind) VALUES (?, 'savings')",
    ))
    .bind("d".to_string())
    .await?;
    s.rollback().await?;
    assert_eq!(titles(&db).await?, ["a", "b", "c"], "rolled back");
    Ok(())
}

/// A failing statement answers the mapped error and fails the session: the
/// transaction is rolled back, nothing of it stays, and the session answers
/// `SessionFailed` until `rollback`.
pub async fn execute_failure_is_mapped_and_fails_the_session(db: Db) -> TestResult {
    db.create_tables::<Note>().await?;
    let b = db.backend();
    let s = db.session().await?;
    s.insert(note("taken", None)).await?;
    s.commit().await?;

    let s = db.session().await?;
    s.insert(note("in this transaction", None)).await?;
    let e = s
        .execute(sql(
            b,
            "INSERT INTO raw_notes (title, kind) VALUES (?, 'savings')",
        ))
        .bind("taken".to_string())
        .await
        .expect_err("duplicate title");
    let Error::UniqueViolation {
        table, constraint, ..
    } = &e
    else {
        panic!("expected UniqueViolation, got {e:?}");
    };
    // A raw statement names no entity: the table and constraint are what
    // the database's message tells.
    assert!(
        table == "raw_notes" || constraint.as_deref() == Some("uq_raw_notes_title"),
        "{e:?}"
    );
    assert!(s.is_failed());
    assert!(matches!(
        s.raw_as::<i64>("SELECT COUNT(*) FROM raw_notes")
            .one()
            .await,
        Err(Error::SessionFailed)
    ));
    assert!(matches!(
        s.execute("DELETE FROM raw_notes").await,
        Err(Error::SessionFailed)
    ));
    s.rollback().await?;
    assert_eq!(titles(&db).await?, ["taken"], "nothing of the failed one");

    // A statement the database refuses is its error, mapped as any other.
    let s = db.session().await?;
    let e = s
        .execute("UPDATE no_such_table SET x = 1")
        .await
        .expect_err("no such table");
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    assert!(s.is_failed());
    s.rollback().await?;
    Ok(())
}

/// Rows decode into tuples of fields through persist's own decoding
/// (NULLs into `Option`, a `DbEnum`, a single scalar), in the session's
/// transaction; a row of another shape is `Error::Decode` naming the
/// column.
pub async fn raw_as_tuples_nulls_and_shape_errors(db: Db) -> TestResult {
    db.create_tables::<Note>().await?;
    let b = db.backend();
    let s = db.session().await?;
    s.insert_many(vec![note("a", Some("x")), note("b", None)])
        .await?;
    // Uncommitted, registered: flushed before the raw query, which sees it.
    s.add(note("c", None))?;

    let before = s.statement_count();
    let rows: Vec<(String, Option<String>, AccountKind)> = s
        .raw_as("SELECT title, body, kind FROM raw_notes ORDER BY title")
        .all()
        .await?;
    assert_eq!(
        rows,
        [
            ("a".into(), Some("x".into()), AccountKind::Savings),
            ("b".into(), None, AccountKind::Savings),
            ("c".into(), None, AccountKind::Savings),
        ]
    );
    assert_eq!(s.statement_count(), before + 2, "the flush, then the query");

    let one: (String, Option<String>) = s
        .raw_as(sql(b, "SELECT title, body FROM raw_notes WHERE title = ?"))
        .bind("b".to_string())
        .one()
        .await?;
    assert_eq!(one, ("b".into(), None));
    let none = s
        .raw_as::<(String,)>(sql(b, "SELECT title FROM raw_notes WHERE title = ?"))
        .bind("zzz".to_string())
        .optional()
        .await?;
    assert_eq!(none, None);
    let many = s
        .raw_as::<String>("SELECT title FROM raw_notes")
        .optional()
        .await;
    assert!(matches!(many, Err(Error::TooManyRows)), "{many:?}");
    assert!(matches!(
        s.raw_as::<String>("SELECT title FROM raw_notes WHERE 1 = 0")
            .one()
            .await,
        Err(Error::NotFound)
    ));

    // Too many columns: the first one not read is named.
    let e = s
        .raw_as::<(String, Option<String>)>("SELECT title, body, kind FROM raw_notes")
        .all()
        .await
        .expect_err("three columns into two");
    assert!(
        matches!(&e, Error::Decode { column, .. } if column == "kind"),
        "{e:?}"
    );
    // Too few: the position of the first missing one.
    let e = s
        .raw_as::<(String, Option<String>, AccountKind)>("SELECT title, body FROM raw_notes")
        .all()
        .await
        .expect_err("two columns into three");
    assert!(
        matches!(&e, Error::Decode { column, .. } if column == "#3"),
        "{e:?}"
    );
    // A column of the wrong type.
    let e = s
        .raw_as::<(String, i64)>("SELECT title, title AS label FROM raw_notes")
        .all()
        .await
        .expect_err("text into an integer");
    assert!(
        matches!(&e, Error::Decode { column, .. } if column == "label"),
        "{e:?}"
    );
    // NULL into a field that is not an Option.
    let e = s
        .raw_as::<(String, String)>("SELECT title, body FROM raw_notes ORDER BY title")
        .all()
        .await
        .expect_err("NULL into String");
    assert!(
        matches!(&e, Error::Decode { column, .. } if column == "body"),
        "{e:?}"
    );
    // A read that fails does not fail the session.
    assert!(!s.is_failed());
    s.commit().await?;
    assert_eq!(titles(&db).await?, ["a", "b", "c"]);
    Ok(())
}

#[derive(persist_core::sqlx::FromRow, Debug, PartialEq)]
struct NoteRow {
    id: i64,
    title: String,
    body: Option<String>,
}

#[derive(persist_core::sqlx::FromRow, Debug)]
#[allow(dead_code)]
struct Missing {
    title: String,
    missing: String,
}

/// Rows decode into a `sqlx::FromRow` struct, in the session's
/// transaction (on SQLite's direct path through sqlx's own connection);
/// persist's statements go on working after it, and a missing column is
/// `Error::Decode` naming it.
pub async fn raw_from_row_struct(db: Db) -> TestResult {
    db.create_tables::<Note>().await?;
    let b = db.backend();
    let s = db.session().await?;
    let a = s.insert(note("a", Some("x"))).await?;
    let c = s.insert(note("c", None)).await?;

    let before = s.statement_count();
    let rows: Vec<NoteRow> = s
        .raw_from_row("SELECT id, title, body FROM raw_notes ORDER BY title")
        .all()
        .await?;
    assert_eq!(s.statement_count(), before + 1);
    assert_eq!(
        rows,
        [
            NoteRow {
                id: a.id,
                title: "a".into(),
                body: Some("x".into()),
            },
            NoteRow {
                id: c.id,
                title: "c".into(),
                body: None,
            },
        ],
        "the transaction's own uncommitted rows"
    );
    let one: NoteRow = s
        .raw_from_row(sql(b, "SELECT id, title, body FROM raw_notes WHERE id = ?"))
        .bind(c.id)
        .one()
        .await?;
    assert_eq!(one.title, "c");
    assert_eq!(
        s.raw_from_row::<NoteRow>(sql(b, "SELECT id, title, body FROM raw_notes WHERE id = ?"))
            .bind(-1i64)
            .optional()
            .await?,
        None
    );
    // persist's own statements after sqlx's, in the same transaction.
    s.insert(note("b", None)).await?;
    assert_eq!(
        s.find::<Note>(&a.id).await?.map(|n| n.title),
        Some("a".into())
    );
    assert_eq!(
        s.raw_as::<i64>("SELECT COUNT(*) FROM raw_notes")
            .one()
            .await?,
        3
    );

    let e = s
        .raw_from_row::<Missing>("SELECT title FROM raw_notes")
        .all()
        .await
        .expect_err("no column `missing`");
    assert!(
        matches!(&e, Error::Decode { column, .. } if column == "missing"),
        "{e:?}"
    );
    let e = s
        .raw_from_row::<NoteRow>("SELECT title AS id, title, body FROM raw_notes")
        .all()
        .await
        .expect_err("text into i64");
    assert!(
        matches!(&e, Error::Decode { column, .. } if column == "id"),
        "{e:?}"
    );
    s.commit().await?;
    assert_eq!(titles(&db).await?, ["a", "b", "c"]);
    Ok(())
}

/// A raw write — `execute`, or a raw query that writes (`DELETE …
/// RETURNING`) — invalidates at commit the rows and query results the
/// shared cache holds of the tables it names; rolled back, it changes
/// nothing there.
pub async fn raw_writes_invalidate_the_cache_at_commit(db: Db) -> TestResult {
    let b = db.backend();
    let direct = db.sqlite_direct();
    common::with_isolated_db(b, "raw_writes_cache", |url| async move {
        let cache = Arc::new(InProcessCache::new());
        let db = Db::builder()
            .sqlite_direct(direct)
            .cache_arc(cache)
            .cache_entity::<Note>(TTL)
            .isolation(Isolation::ReadCommitted)
            .connect(&url)
            .await?;
        db.create_tables::<Note>().await?;
        let s = db.session().await?;
        let a = s.insert(note("a", None)).await?;
        let z = s.insert(note("z", None)).await?;
        s.commit().await?;
        // Warm the row and query caches (the query first; see the
        // guarantees tests), then check both answer without SQL.
        for _ in 0..2 {
            let s = db.session().await?;
            assert_eq!(s.query::<Note>().cached().all().await?.len(), 2);
            assert!(s.find::<Note>(&a.id).await?.is_some());
            s.commit().await?;
        }
        let s = db.session().await?;
        assert_eq!(s.query::<Note>().cached().all().await?.len(), 2);
        assert!(s.find::<Note>(&a.id).await?.is_some());
        assert_eq!(s.statement_count(), 0, "both from the cache");
        s.commit().await?;

        // Rolled back: the cache still answers.
        let s = db.session().await?;
        s.execute(sql(b, "UPDATE raw_notes SET body = ? WHERE id = ?"))
            .bind("rolled back".to_string())
            .bind(a.id)
            .await?;
        s.rollback().await?;
        let s = db.session().await?;
        assert_eq!(s.find::<Note>(&a.id).await?.and_then(|n| n.body), None);
        assert_eq!(s.statement_count(), 0, "still from the cache");
        s.commit().await?;

        // Committed: the next reads go to the database and see it.
        let s = db.session().await?;
        let n = s
            .execute(sql(b, "UPDATE raw_notes SET body = ? WHERE id = ?"))
            .bind("raw".to_string())
            .bind(a.id)
            .await?;
        assert_eq!(n, 1);
        s.commit().await?;
        let s = db.session().await?;
        let row = s.find::<Note>(&a.id).await?;
        assert_eq!(row.and_then(|n| n.body).as_deref(), Some("raw"));
        let all = s.query::<Note>().cached().all().await?;
        assert_eq!(all.iter().filter(|n| n.body.is_some()).count(), 1);
        assert_eq!(s.statement_count(), 2, "row and query from the database");
        s.commit().await?;

        // A raw query that writes: DELETE … RETURNING (SQLite, PostgreSQL,
        // MariaDB).
        let s = db.session().await?;
        let gone: Vec<(i64, String)> = s
            .raw_as(sql(
                b,
                "DELETE FROM raw_notes WHERE id = ? RETURNING id, title",
            ))
            .bind(z.id)
            .all()
            .await?;
        assert_eq!(gone, [(z.id, "z".to_string())]);
        s.commit().await?;
        let s = db.session().await?;
        assert_eq!(s.find::<Note>(&z.id).await?, None, "row invalidated");
        let left = s.query::<Note>().cached().all().await?;
        assert_eq!(left.len(), 1, "query result invalidated");
        s.commit().await?;
        db.close().await;
        Ok(())
    })
    .await
}

/// A raw future dropped at any poll leaves the session's connection clean:
/// with one connection, the next session gets it, sees nothing of the cut
/// statement, and commits its own row once. The cut session answers
/// `SessionFailed` until `rollback` if the cut statement may have written,
/// and goes on otherwise.
pub async fn cut_raw_at_every_poll(db: Db) -> TestResult {
    let b = db.backend();
    let direct = db.sqlite_direct();
    common::with_isolated_db(b, "cut_raw", |url| async move {
        let db = Db::builder()
            .max_connections(1)
            .sqlite_direct(direct)
            .connect(&url)
            .await?;
        db.create_tables::<Note>().await?;
        for op in 0..3 {
            let mut uncut = 0;
            let mut polls = 1;
            let mut cuts = 0;
            // A driver's worker thread can answer within one poll by chance
            // (a loaded machine): the first cut point gets a few tries.
            let mut first_tries = 0;
            let mut rounds = 0;
            while uncut < 3 && polls < 500 {
                rounds += 1;
                let round = format!("op{op}-poll{polls}-round{rounds}");
                let s = db.session().await?;
                let cut = {
                    let fut = async {
                        match op {
                            0 => s
                                .execute(sql(
                                    b,
                                    "INSERT INTO raw_notes (title, kind) VALUES (?, 'savings')",
                                ))
                                .bind(round.clone())
                                .await
                                .map(drop),
                            1 => s
                                .raw_as::<(i64, String)>(sql(
                                    b,
                                    "INSERT INTO raw_notes (title, kind) VALUES (?, 'savings') RETURNING id, title",
                                ))
                                .bind(round.clone())
                                .all()
                                .await
                                .map(drop),
                            _ => s
                                .raw_from_row::<NoteRow>("SELECT id, title, body FROM raw_notes")
                                .all()
                                .await
                                .map(drop),
                        }
                    };
                    cut_after(polls, Duration::ZERO, fut).await
                };
                let writes = op < 2;
                match cut {
                    Cut::Completed(r) => {
                        r?;
                        if polls == 1 && first_tries < 8 {
                            first_tries += 1;
                            polls -= 1; // the same cut point again
                        } else {
                            uncut += 1;
                        }
                        s.commit().await?;
                    }
                    Cut::Cut => {
                        uncut = 0;
                        cuts = polls;
                        match s.commit().await {
                            Ok(()) => {}
                            Err(Error::SessionFailed) if writes => {
                                assert!(matches!(
                                    s.raw_as::<i64>("SELECT 1").one().await,
                                    Err(Error::SessionFailed)
                                ));
                                s.rollback().await?;
                            }
                            Err(e) => return Err(e),
                        }
                        // Nothing of the cut statement stays.
                        let t = db.session().await?;
                        let n = t
                            .raw_as::<i64>(sql(b, "SELECT COUNT(*) FROM raw_notes WHERE title = ?"))
                            .bind(round.clone())
                            .one()
                            .await?;
                        assert_eq!(n, 0, "{round}: the cut statement left a row");
                        t.commit().await?;
                    }
                }
                drop(s);
                // The connection is clean: a fresh session writes its own
                // row once, outside any leftover transaction.
                let check = format!("{round}-after");
                let t = db.session().await?;
                t.execute(sql(b, "INSERT INTO raw_notes (title, kind) VALUES (?, 'savings')"))
                    .bind(check.clone())
                    .await?;
                t.commit().await?;
                let t = db.session().await?;
                let n = t
                    .raw_as::<i64>(sql(b, "SELECT COUNT(*) FROM raw_notes WHERE title = ?"))
                    .bind(check)
                    .one()
                    .await?;
                assert_eq!(n, 1);
                t.commit().await?;
                polls += 1;
            }
            assert!(cuts > 0, "op {op} was never cut");
            println!("cut-points backend={b:?} direct={direct} raw-op={op} n={cuts}");
        }
        db.close().await;
        Ok(())
    })
    .await
}

/// The `Db`'s sqlx pool: `Some` for its own backend, and it reads what
/// sessions committed (outside every session: not counted).
pub async fn sqlx_pool_is_reachable(db: Db) -> TestResult {
    db.create_tables::<Note>().await?;
    let s = db.session().await?;
    s.insert(note("a", None)).await?;
    s.commit().await?;
    let before = db.statement_count();
    let n: i64 = match db.backend() {
        Backend::Sqlite => {
            let pool = db.sqlite_pool().expect("a SQLite pool");
            assert!(db.pg_pool().is_none() && db.mysql_pool().is_none());
            persist_core::sqlx::query_scalar("SELECT COUNT(*) FROM raw_notes")
                .fetch_one(pool)
                .await?
        }
        Backend::Postgres => {
            let pool = db.pg_pool().expect("a PostgreSQL pool");
            assert!(db.sqlite_pool().is_none() && db.mysql_pool().is_none());
            persist_core::sqlx::query_scalar("SELECT COUNT(*) FROM raw_notes")
                .fetch_one(pool)
                .await?
        }
        _ => {
            let pool = db.mysql_pool().expect("a MySQL pool");
            assert!(db.sqlite_pool().is_none() && db.pg_pool().is_none());
            persist_core::sqlx::query_scalar("SELECT COUNT(*) FROM raw_notes")
                .fetch_one(pool)
                .await?
        }
    };
    assert_eq!(n, 1);
    assert_eq!(
        db.statement_count(),
        before,
        "the pool's statements are not persist's"
    );
    Ok(())
}
