//! The unit of work: flush order from foreign keys, batched inserts,
//! changed-columns updates (asserted on the SQL sent), optimistic locking,
//! the failed state, savepoints, retries under contention, the ambient
//! session, isolation, and a property test against an in-memory model.
//!
//! SQL is captured from the `persist.statement` spans by a small
//! `tracing-subscriber` layer ([`SqlLog`]); statements are counted with
//! `Session::statement_count` / `Db::statement_count` (which leave out
//! `BEGIN`, `COMMIT`, `ROLLBACK` and savepoint statements).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use persist_core::prelude::*;
use persist_core::session::Isolation;
use persist_core::sql::Backend;
use tracing::Instrument;

use crate::common::TestResult;

// ----- entities ------------------------------------------------------------

/// A parent with a key the application chooses (so children can be added
/// before it).
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "uow_parents")]
pub struct Parent {
    #[persist(primary_key)]
    pub id: i64,
    pub name: String,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "uow_children")]
pub struct Child {
    #[persist(primary_key)]
    pub id: i64,
    #[persist(references = "Parent")]
    pub parent_id: i64,
    pub label: String,
}

/// Self-reference: a member's manager is a member.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "uow_staff")]
pub struct Staff {
    #[persist(primary_key)]
    pub id: i64,
    pub name: String,
    #[persist(references = "Staff")]
    pub manager_id: Option<i64>,
}

/// Versioned, application-chosen key.
#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "uow_items")]
pub struct Item {
    #[persist(primary_key)]
    pub id: i64,
    pub name: String,
    pub qty: i64,
    pub note: String,
    #[persist(version)]
    pub version: i64,
}

/// Unversioned, so an update sets exactly the columns that changed.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "uow_metrics")]
pub struct Metric {
    #[persist(primary_key)]
    pub id: i64,
    pub label: String,
    pub value: i64,
    pub note: String,
}

/// A bank account of the transfer test.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "uow_vaults")]
pub struct Vault {
    #[persist(primary_key)]
    pub id: i64,
    pub balance: i64,
    #[persist(version)]
    pub version: i64,
}

/// One transfer, recorded in the transaction that makes it.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "uow_ledger")]
pub struct Transfer {
    #[persist(primary_key)]
    pub id: i64,
    #[persist(references = "Vault")]
    pub from_id: i64,
    pub to_id: i64,
    pub amount: i64,
}

pub fn item(id: i64, name: &str, qty: i64) -> Item {
    Item {
        id,
        name: name.into(),
        qty,
        note: "n".into(),
        version: 0,
    }
}

fn parent(id: i64) -> Parent {
    Parent {
        id,
        name: format!("p{id}"),
    }
}

fn child(id: i64, parent_id: i64) -> Child {
    Child {
        id,
        parent_id,
        label: format!("c{id}"),
    }
}

fn staff(id: i64, manager_id: Option<i64>) -> Staff {
    Staff {
        id,
        name: format!("s{id}"),
        manager_id,
    }
}

/// Commits `items` in a session of their own.
pub async fn seed_items(db: &Db, items: Vec<Item>) -> Result<(), Error> {
    let s = db.session().await?;
    s.add_many(items)?;
    s.commit().await
}

/// Every row of `E`, read in a read-only session of its own.
pub async fn stored<E: Entity>(db: &Db) -> Result<Vec<E>, Error> {
    let r = db.session_with(SessionOptions::new().read_only()).await?;
    let rows = r.all::<E>().await?;
    r.rollback().await?;
    Ok(rows)
}

/// One row of `E`, read in a read-only session of its own.
pub async fn stored_one<E: Entity>(db: &Db, key: &E::Key) -> Result<Option<E>, Error> {
    let r = db.session_with(SessionOptions::new().read_only()).await?;
    let row = r.find::<E>(key).await?;
    r.rollback().await?;
    Ok(row)
}

/// The statements `s` sends while running `f`.
pub async fn statements_of<T>(s: &Session, f: impl Future<Output = T>) -> (T, u64) {
    let before = s.statement_count();
    let out = f.await;
    (out, s.statement_count() - before)
}

// ----- SQL capture -----------------------------------------------------------

/// Records the SQL of the `persist.statement` spans opened inside
/// [`SqlLog::run`] (matched by span ancestry, so tests running in parallel
/// do not see each other's statements).
pub struct SqlLog {
    id: u64,
}

const CAPTURE_SPAN: &str = "persist_test_capture";

struct CaptureId(u64);

fn sql_logs() -> &'static Mutex<HashMap<u64, Vec<String>>> {
    static LOGS: OnceLock<Mutex<HashMap<u64, Vec<String>>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

#[derive(Default)]
struct Fields {
    sql: Option<String>,
    capture: Option<u64>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "sql" {
            self.sql = Some(value.to_owned());
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "capture_id" {
            self.capture = Some(value);
        }
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "capture_id" {
            self.capture = u64::try_from(value).ok();
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "sql" {
            self.sql = Some(format!("{value:?}"));
        }
    }
}

struct CaptureLayer;

fn wanted(meta: &tracing::Metadata<'_>) -> bool {
    (meta.is_span() && (meta.name() == "persist.statement" || meta.name() == CAPTURE_SPAN))
        || meta.target() == NOTICE_TARGET
}

/// Where sqlx logs PostgreSQL's notices.
const NOTICE_TARGET: &str = "sqlx::postgres::notice";

/// The text of every PostgreSQL notice logged in this process since the
/// capturing subscriber was installed ([`SqlLog::new`]).
pub fn pg_notices() -> &'static Mutex<Vec<String>> {
    static NOTICES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    NOTICES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Collects an event's fields as text.
#[derive(Default)]
struct EventText(String);

impl tracing::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl<S> tracing_subscriber::Layer<S> for CaptureLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if wanted(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        wanted(meta)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == NOTICE_TARGET {
            let mut text = EventText::default();
            event.record(&mut text);
            let mut notices = pg_notices().lock().unwrap_or_else(|p| p.into_inner());
            notices.push(text.0);
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let Some(span) = ctx.span(id) else { return };
        if attrs.metadata().name() == CAPTURE_SPAN {
            if let Some(n) = fields.capture {
                span.extensions_mut().insert(CaptureId(n));
            }
            return;
        }
        let Some(sql) = fields.sql else { return };
        for ancestor in span.scope().skip(1) {
            if let Some(c) = ancestor.extensions().get::<CaptureId>() {
                let mut logs = sql_logs().lock().unwrap_or_else(|p| p.into_inner());
                logs.entry(c.0).or_default().push(sql);
                return;
            }
        }
    }
}

impl SqlLog {
    /// Installs the capturing subscriber (once per process) and starts a log.
    pub fn new() -> SqlLog {
        static INSTALL: OnceLock<()> = OnceLock::new();
        INSTALL.get_or_init(|| {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry().with(CaptureLayer);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global tracing subscriber in the suite");
        });
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        sql_logs()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Vec::new());
        SqlLog { id }
    }

    /// Runs `f`, recording the SQL it sends.
    pub async fn run<F: Future>(&self, f: F) -> F::Output {
        f.instrument(tracing::info_span!(
            "persist_test_capture",
            capture_id = self.id
        ))
        .await
    }

    /// The statements recorded since the last `take`.
    pub fn take(&self) -> Vec<String> {
        let mut logs = sql_logs().lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(logs.entry(self.id).or_default())
    }
}

impl Drop for SqlLog {
    fn drop(&mut self) {
        sql_logs()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(|c| c == '"' || c == '`').to_owned()
}

/// `("INSERT" | "UPDATE" | "DELETE" | "SELECT", table)` of a statement.
pub fn shape(sql: &str) -> (String, String) {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let verb = words.first().map(|w| w.to_uppercase()).unwrap_or_default();
    let table = match verb.as_str() {
        "INSERT" | "DELETE" => words.get(2),
        "UPDATE" => words.get(1),
        _ => words
            .iter()
            .position(|w| w.eq_ignore_ascii_case("FROM"))
            .and_then(|i| words.get(i + 1)),
    };
    (verb, table.map(|t| unquote(t)).unwrap_or_default())
}

/// The columns an `UPDATE` sets, in order.
pub fn set_columns(sql: &str) -> Vec<String> {
    let start = sql.find(" SET ").expect("an UPDATE") + 5;
    // A batched UPDATE joins its rows (`FROM (VALUES …)`) before `WHERE`.
    let end = sql[start..]
        .find(" FROM ")
        .or_else(|| sql[start..].find(" WHERE "))
        .map(|i| start + i)
        .expect("an UPDATE with a WHERE");
    sql[start..end]
        .split(", ")
        .map(|a| unquote(a.split(" = ").next().unwrap_or(a)))
        .collect()
}

/// The `WHERE` clause of a statement.
fn where_clause(sql: &str) -> &str {
    sql.find(" WHERE ").map(|i| &sql[i..]).unwrap_or("")
}

/// Bind placeholders in a statement (`?` or `$n`).
pub fn placeholders(sql: &str) -> usize {
    sql.chars().filter(|c| *c == '?' || *c == '$').count()
}

fn shapes(sql: &[String]) -> Vec<(String, String)> {
    sql.iter().map(|s| shape(s)).collect()
}

fn pair(verb: &str, table: &str) -> (String, String) {
    (verb.to_owned(), table.to_owned())
}

fn assert_stale(r: Result<(), Error>, table: &str, key: &str) {
    match r {
        Err(Error::Stale { table: t, key: k }) => {
            assert_eq!((t.as_str(), k.as_str()), (table, key));
        }
        other => panic!("expected Stale on {table} {key}, got {other:?}"),
    }
}

// ----- flush order and batching ------------------------------------------------

/// Whether MySQL inserts rows with generated keys one at a time
/// (`innodb_autoinc_lock_mode` 2 hands out no consecutive ids).
async fn one_by_one(db: &Db, s: &Session) -> Result<bool, Error> {
    Ok(db.backend() == Backend::MySql
        && s.raw::<crate::model::IntRow>("SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED)")
            .one()
            .await?
            .value
            >= 2)
}

pub async fn flush_inserts_in_fixed_batch_sizes(db: Db) -> TestResult {
    use crate::model::Note;
    db.create_tables::<Note>().await?;
    let s = db.session().await?;
    let one_by_one = one_by_one(&db, &s).await?;
    s.rollback().await?;
    let log = SqlLog::new();
    let notes = |from: usize, to: usize| -> Vec<Note> {
        (from..to)
            .map(|i| Note {
                id: 0,
                body: format!("n{i}"),
            })
            .collect()
    };
    // 1,234 rows: not one statement of 1,234 rows (a size no other flush
    // may use again) but sizes every flush of the table shares.
    s.add_many(notes(0, 1_234))?;
    let (r, n) = statements_of(&s, log.run(s.flush())).await;
    r?;
    let rows: Vec<usize> = log.take().iter().map(|q| placeholders(q)).collect();
    if one_by_one {
        assert_eq!(n, 1_234);
    } else if db.sqlite_direct() {
        // SQLite's direct path cuts batches into 50-row statements.
        let mut expected = vec![50; 24];
        expected.extend([20, 14]);
        assert_eq!(rows, expected, "rows of each INSERT");
        assert_eq!(n, 26);
    } else {
        assert_eq!(rows, [1_000, 200, 20, 14], "rows of each INSERT");
        assert_eq!(n, 4);
    }
    // Every row is in the identity map under its generated key.
    assert_eq!(s.identity_map_len(), 1_234);
    // A round count is one statement; the same sizes come back.
    s.add_many(notes(1_234, 2_234))?;
    let (r, n) = statements_of(&s, log.run(s.commit())).await;
    r?;
    if !one_by_one {
        let sizes: Vec<usize> = log.take().iter().map(|q| placeholders(q)).collect();
        if db.sqlite_direct() {
            assert_eq!(n, 20);
            assert_eq!(sizes, [50; 20]);
        } else {
            assert_eq!(n, 1);
            assert_eq!(sizes, [1_000]);
        }
    }
    assert_eq!(s.identity_map_len(), 0, "commit empties the map");
    let stored = stored::<Note>(&db).await?;
    assert_eq!(stored.len(), 2_234);
    for (i, n) in stored.iter().enumerate() {
        assert_eq!(n.body, format!("n{i}"), "keys follow registration order");
    }
    Ok(())
}

pub async fn flush_then_find_generated_keys(db: Db) -> TestResult {
    use crate::model::Note;
    db.create_tables::<Note>().await?;
    let s = db.session().await?;
    s.add_many(
        (0..50)
            .map(|i| Note {
                id: 0,
                body: format!("n{i}"),
            })
            .collect(),
    )?;
    s.flush().await?;
    let ids: Vec<i64> = s.all::<Note>().await?.iter().map(|n| n.id).collect();
    assert_eq!(ids.len(), 50);
    // The flushed rows were registered under the keys the database chose:
    // finding them sends nothing.
    for (i, id) in ids.iter().enumerate() {
        let (found, n) = statements_of(&s, s.find::<Note>(id)).await;
        assert_eq!((found?.map(|n| n.body), n), (Some(format!("n{i}")), 0));
    }
    // Adding more after the flush: only the new rows go out next.
    s.add(Note {
        id: 0,
        body: "late".into(),
    })?;
    let (r, n) = statements_of(&s, s.commit()).await;
    r?;
    assert_eq!(n, 1);
    assert_eq!(stored::<Note>(&db).await?.len(), 51);
    Ok(())
}

pub async fn parents_first_one_batched_child_insert(db: Db) -> TestResult {
    db.create_tables::<(Parent, Child)>().await?;
    let s = db.session().await?;
    // Children registered before their parents (keys known): the flush
    // orders by the foreign key.
    let children: Vec<Child> = (1..=10).map(|i| child(i, 1 + i % 2)).collect();
    s.add_many(children[..5].to_vec())?;
    s.add(parent(2))?;
    s.add_many(children[5..].to_vec())?;
    s.add(parent(1))?;

    let log = SqlLog::new();
    let (r, n) = statements_of(&s, log.run(s.flush())).await;
    r?;
    let sql = log.take();
    assert_eq!(n, 2, "one INSERT per table: {sql:#?}");
    assert_eq!(
        shapes(&sql),
        [
            pair("INSERT", "uow_parents"),
            pair("INSERT", "uow_children")
        ]
    );
    assert_eq!(placeholders(&sql[0]), 2 * 2, "both parents in one INSERT");
    assert_eq!(placeholders(&sql[1]), 10 * 3, "ten children in one INSERT");

    // The flushed rows are in the identity map.
    let (found, n) = statements_of(&s, s.find::<Child>(&3)).await;
    assert_eq!((found?, n), (Some(children[2].clone()), 0));
    s.commit().await?;

    assert_eq!(stored::<Child>(&db).await?, children);
    assert_eq!(stored::<Parent>(&db).await?, vec![parent(1), parent(2)]);

    // The same at commit, with no explicit flush: two statements in all.
    let s = db.session().await?;
    s.add(child(11, 3))?;
    s.add(child(12, 3))?;
    s.add(parent(3))?;
    let before = db.statement_count();
    log.run(s.commit()).await?;
    assert_eq!(db.statement_count() - before, 2);
    assert_eq!(
        shapes(&log.take()),
        [
            pair("INSERT", "uow_parents"),
            pair("INSERT", "uow_children")
        ]
    );
    assert_eq!(stored::<Child>(&db).await?.len(), 12);
    Ok(())
}

pub async fn children_deleted_before_parents(db: Db) -> TestResult {
    db.create_tables::<(Parent, Child)>().await?;
    let s = db.session().await?;
    s.add_many(vec![parent(1), parent(2), parent(3)])?;
    s.add_many((1..=6).map(|i| child(i, 1 + i % 2)).collect())?;
    s.add(child(7, 3))?;
    s.commit().await?;

    let s = db.session().await?;
    // Parents registered first, then their children.
    let p1 = s.find::<Parent>(&1).await?.ok_or(Error::NotFound)?;
    let p2 = s.find::<Parent>(&2).await?.ok_or(Error::NotFound)?;
    s.delete(&p1)?;
    s.delete(&p2)?;
    // A read of another table does not flush the parents' deletes (which
    // would fail while children still point at them).
    let kids = s.all::<Child>().await?;
    assert_eq!(kids.len(), 7);
    for c in kids.iter().filter(|c| c.parent_id != 3) {
        s.delete(c)?;
    }
    // By key, without loading: parent first, then its child.
    s.delete_by_key::<Parent>(&3)?;
    s.delete_by_key::<Child>(&7)?;

    let log = SqlLog::new();
    let (r, n) = statements_of(&s, log.run(s.flush())).await;
    r?;
    let sql = shapes(&log.take());
    assert_eq!(n, 10);
    let mut expected = vec![pair("DELETE", "uow_children"); 7];
    expected.extend(vec![pair("DELETE", "uow_parents"); 3]);
    assert_eq!(sql, expected, "children's deletes first");
    s.commit().await?;
    assert!(stored::<Child>(&db).await?.is_empty());
    assert!(stored::<Parent>(&db).await?.is_empty());
    Ok(())
}

pub async fn self_referencing_rows(db: Db) -> TestResult {
    db.create_tables::<Staff>().await?;
    let s = db.session().await?;
    // Reports before their managers: 3 → 2 → 1, and 4 → 1.
    s.add(staff(3, Some(2)))?;
    s.add(staff(2, Some(1)))?;
    s.add(staff(4, Some(1)))?;
    s.add(staff(1, None))?;
    let log = SqlLog::new();
    let (r, n) = statements_of(&s, log.run(s.flush())).await;
    r?;
    assert_eq!(n, 1, "one multi-row INSERT, managers first in it");
    assert_eq!(shapes(&log.take()), [pair("INSERT", "uow_staff")]);
    s.commit().await?;
    let all = stored::<Staff>(&db).await?;
    assert_eq!(
        all,
        vec![
            staff(1, None),
            staff(2, Some(1)),
            staff(3, Some(2)),
            staff(4, Some(1))
        ]
    );

    // Adding a report to a manager added later in the same flush, again.
    let s = db.session().await?;
    s.add(staff(6, Some(5)))?;
    s.add(staff(5, Some(3)))?;
    s.commit().await?;

    // Deleting managers registered before their reports.
    let s = db.session().await?;
    let rows = s.all::<Staff>().await?;
    assert_eq!(rows.len(), 6);
    for r in &rows {
        s.delete(r)?;
    }
    let (r, n) = statements_of(&s, log.run(s.flush())).await;
    r?;
    assert_eq!(n, 6);
    assert!(
        shapes(&log.take())
            .iter()
            .all(|p| *p == pair("DELETE", "uow_staff"))
    );
    s.commit().await?;
    assert!(stored::<Staff>(&db).await?.is_empty());

    // A cycle among new rows is an error naming the table, before any SQL.
    let s = db.session().await?;
    s.add(staff(7, Some(8)))?;
    s.add(staff(8, Some(7)))?;
    let (r, n) = statements_of(&s, s.flush()).await;
    match r {
        Err(Error::Invalid(msg)) => assert!(msg.contains("uow_staff"), "{msg}"),
        other => panic!("expected a cycle error, got {other:?}"),
    }
    assert_eq!(n, 0);
    s.rollback().await?;
    Ok(())
}

pub async fn delete_then_add_is_one_update(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    seed_items(&db, vec![item(1, "old", 1)]).await?;

    let s = db.session().await?;
    let old = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    s.delete(&old)?;
    assert_eq!(
        s.find::<Item>(&1).await?,
        None,
        "a deleted key is not found"
    );
    s.add(item(1, "new", 2))?;
    let log = SqlLog::new();
    let (r, n) = statements_of(&s, log.run(s.flush())).await;
    r?;
    let sql = log.take();
    assert_eq!(n, 1, "{sql:#?}");
    assert_eq!(shape(&sql[0]), pair("UPDATE", "uow_items"));
    assert_eq!(set_columns(&sql[0]), ["name", "qty", "version"]);
    assert!(
        where_clause(&sql[0]).contains("version"),
        "the delete's version check is kept: {}",
        sql[0]
    );
    s.commit().await?;
    let row = stored_one::<Item>(&db, &1).await?.ok_or(Error::NotFound)?;
    assert_eq!((row.name.as_str(), row.qty, row.version), ("new", 2, 2));

    // By key, of a row the session never loaded: one UPDATE of every column.
    let s = db.session().await?;
    s.delete_by_key::<Item>(&1)?;
    let mut third = item(1, "third", 3);
    third.note = "m".into();
    s.add(third)?;
    let (r, n) = statements_of(&s, log.run(s.commit())).await;
    r?;
    let sql = log.take();
    assert_eq!(n, 1, "{sql:#?}");
    assert_eq!(shape(&sql[0]), pair("UPDATE", "uow_items"));
    assert_eq!(set_columns(&sql[0]), ["name", "qty", "note", "version"]);
    let row = stored_one::<Item>(&db, &1).await?.ok_or(Error::NotFound)?;
    assert_eq!(
        (row.name.as_str(), row.qty, row.note.as_str()),
        ("third", 3, "m")
    );
    assert_eq!(stored::<Item>(&db).await?.len(), 1);
    Ok(())
}

// ----- updates -------------------------------------------------------------------

pub async fn unchanged_update_sends_nothing(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    seed_items(&db, vec![item(1, "a", 1)]).await?;

    let s = db.session().await?;
    let loaded = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    let mut same = loaded.clone();
    s.update(&mut same)?;
    assert_eq!(same, loaded, "no bump for an unchanged entity");
    // Changed and changed back before the flush: nothing either.
    let mut v = loaded.clone();
    v.qty = 50;
    s.update(&mut v)?;
    assert_eq!(v.version, 2);
    v.qty = 1;
    s.update(&mut v)?;
    assert_eq!(v.version, 1);
    let before = db.statement_count();
    s.flush().await?;
    s.commit().await?;
    assert_eq!(
        db.statement_count(),
        before,
        "no statement at flush or commit"
    );
    assert_eq!(stored_one::<Item>(&db, &1).await?, Some(loaded));
    Ok(())
}

pub async fn update_sets_only_changed_columns(db: Db) -> TestResult {
    db.create_tables::<(Item, Metric)>().await?;
    seed_items(&db, vec![item(1, "a", 1)]).await?;
    let s = db.session().await?;
    s.add(Metric {
        id: 1,
        label: "l".into(),
        value: 1,
        note: "n".into(),
    })?;
    s.commit().await?;

    let log = SqlLog::new();
    let s = db.session().await?;
    let mut it = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    it.qty = 5;
    s.update(&mut it)?;
    log.run(s.flush()).await?;
    let sql = log.take();
    assert_eq!(sql.len(), 1, "{sql:#?}");
    assert_eq!(shape(&sql[0]), pair("UPDATE", "uow_items"));
    assert_eq!(set_columns(&sql[0]), ["qty", "version"], "{}", sql[0]);
    let w = where_clause(&sql[0]);
    assert!(w.contains("id") && w.contains("version"), "{}", sql[0]);

    it.name = "b".into();
    it.note = "m".into();
    s.update(&mut it)?;
    log.run(s.flush()).await?;
    let sql = log.take();
    assert_eq!(sql.len(), 1, "{sql:#?}");
    assert_eq!(
        set_columns(&sql[0]),
        ["name", "note", "version"],
        "{}",
        sql[0]
    );

    // Unversioned: exactly the changed column.
    let mut m = s.find::<Metric>(&1).await?.ok_or(Error::NotFound)?;
    m.value = 2;
    s.update(&mut m)?;
    log.run(s.commit()).await?;
    let sql = log.take();
    assert_eq!(sql.len(), 1, "{sql:#?}");
    assert_eq!(shape(&sql[0]), pair("UPDATE", "uow_metrics"));
    assert_eq!(set_columns(&sql[0]), ["value"], "{}", sql[0]);

    let row = stored_one::<Item>(&db, &1).await?.ok_or(Error::NotFound)?;
    assert_eq!(
        (row.name.as_str(), row.qty, row.note.as_str(), row.version),
        ("b", 5, "m", 3)
    );
    assert_eq!(
        stored_one::<Metric>(&db, &1).await?.map(|m| m.value),
        Some(2)
    );

    // A value the session never loaded updates every column.
    let s = db.session().await?;
    let mut detached = row.clone();
    detached.qty = 6;
    s.update(&mut detached)?;
    log.run(s.commit()).await?;
    let sql = log.take();
    assert_eq!(sql.len(), 1, "{sql:#?}");
    assert_eq!(set_columns(&sql[0]), ["name", "qty", "note", "version"]);
    assert_eq!(
        stored_one::<Item>(&db, &1)
            .await?
            .map(|i| (i.qty, i.version)),
        Some((6, 4))
    );

    // Unversioned and never loaded, with the values the row already has: the
    // UPDATE matches the row (found rows, not changed rows, on MySQL), so it
    // is not mistaken for a stale one.
    let s = db.session().await?;
    let mut same = stored_one::<Metric>(&db, &1)
        .await?
        .ok_or(Error::NotFound)?;
    s.update(&mut same)?;
    s.commit().await?;
    assert_eq!(stored_one::<Metric>(&db, &1).await?, Some(same));
    Ok(())
}

pub async fn stale_version_on_update_and_delete(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    seed_items(&db, vec![item(1, "a", 1), item(2, "b", 2)]).await?;
    let old1 = stored_one::<Item>(&db, &1).await?.ok_or(Error::NotFound)?;
    let old2 = stored_one::<Item>(&db, &2).await?.ok_or(Error::NotFound)?;
    // Both rows change after the copies were read.
    let s = db.session().await?;
    for k in [1, 2] {
        let mut v = s.find::<Item>(&k).await?.ok_or(Error::NotFound)?;
        v.qty += 10;
        s.update(&mut v)?;
    }
    s.commit().await?;

    let s = db.session().await?;
    let mut upd = old1.clone();
    upd.qty = 99;
    s.update(&mut upd)?;
    assert_stale(s.flush().await, "uow_items", "1");
    assert!(matches!(s.commit().await, Err(Error::SessionFailed)));
    s.rollback().await?;

    s.delete(&old2)?;
    assert_stale(s.commit().await, "uow_items", "2");
    s.rollback().await?;
    let rows = stored::<Item>(&db).await?;
    assert_eq!(
        rows.iter()
            .map(|r| (r.id, r.qty, r.version))
            .collect::<Vec<_>>(),
        [(1, 11, 2), (2, 12, 2)],
        "nothing of the stale writes"
    );

    // A row deleted since it was read is stale too.
    let current2 = rows[1].clone();
    let s = db.session().await?;
    s.delete_by_key::<Item>(&2)?;
    s.commit().await?;
    let s = db.session().await?;
    let mut gone = current2.clone();
    gone.qty = 0;
    s.update(&mut gone)?;
    assert_stale(s.commit().await, "uow_items", "2");
    s.rollback().await?;

    if db.backend() == Backend::Sqlite {
        // One writer at a time: a session that holds its snapshot cannot
        // overlap another writer's commit (BEGIN IMMEDIATE). The detached
        // copies above cover the check.
        return Ok(());
    }
    // Two open sessions: the one that read first loses.
    let a = db.session().await?;
    let mut a1 = a.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    let b = db.session().await?;
    let mut b1 = b.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    b1.qty = 7;
    b.update(&mut b1)?;
    b.commit().await?;
    a1.qty = 8;
    a.update(&mut a1)?;
    assert_stale(a.flush().await, "uow_items", "1");
    a.rollback().await?;

    let a = db.session().await?;
    let a1 = a.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    let b = db.session().await?;
    let mut b1 = b.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    b1.note = "changed".into();
    b.update(&mut b1)?;
    b.commit().await?;
    a.delete(&a1)?;
    assert_stale(a.commit().await, "uow_items", "1");
    a.rollback().await?;
    let row = stored_one::<Item>(&db, &1).await?.ok_or(Error::NotFound)?;
    assert_eq!((row.qty, row.note.as_str(), row.version), (7, "changed", 4));
    Ok(())
}

// ----- failure ---------------------------------------------------------------------

pub async fn failed_flush_refused_until_rollback(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    seed_items(&db, vec![item(1, "a", 1), item(3, "c", 3)]).await?;

    let s = db.session().await?;
    let mut one = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    one.qty = 100;
    s.update(&mut one)?;
    s.add(item(2, "b", 2))?;
    // Key 3 exists, but the session never loaded it: the INSERT fails.
    s.add(item(3, "dup", 3))?;
    match s.commit().await {
        Err(Error::UniqueViolation { table, .. }) => assert_eq!(table, "uow_items"),
        other => panic!("expected UniqueViolation, got {other:?}"),
    }
    assert!(s.is_failed());
    assert!(matches!(s.commit().await, Err(Error::SessionFailed)));
    assert!(matches!(s.flush().await, Err(Error::SessionFailed)));
    assert!(matches!(
        s.find::<Item>(&1).await,
        Err(Error::SessionFailed)
    ));
    assert!(matches!(s.add(item(9, "x", 9)), Err(Error::SessionFailed)));
    assert!(matches!(s.update(&mut one), Err(Error::SessionFailed)));
    assert!(matches!(s.savepoint().await, Err(Error::SessionFailed)));

    // Rolled back at once: the database holds nothing of it, and (on SQLite)
    // the write lock is free for another session.
    let rows = stored::<Item>(&db).await?;
    assert_eq!(
        rows.iter().map(|r| (r.id, r.qty)).collect::<Vec<_>>(),
        [(1, 1), (3, 3)]
    );
    let other = db.session().await?;
    other.add(item(4, "d", 4))?;
    other.commit().await?;

    s.rollback().await?;
    assert!(!s.is_failed());
    assert_eq!(s.identity_map_len(), 0);
    // Re-applying the edits (without the bad row) commits.
    let mut one = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    assert_eq!(
        (one.qty, one.version),
        (1, 1),
        "the failed update left nothing"
    );
    one.qty = 100;
    s.update(&mut one)?;
    s.add(item(2, "b", 2))?;
    s.commit().await?;
    let rows = stored::<Item>(&db).await?;
    assert_eq!(
        rows.iter()
            .map(|r| (r.id, r.qty, r.version))
            .collect::<Vec<_>>(),
        [(1, 100, 2), (2, 2, 1), (3, 3, 1), (4, 4, 1)]
    );
    Ok(())
}

// ----- savepoints -------------------------------------------------------------------

pub async fn savepoint_rollback_drops_later_registrations(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    seed_items(&db, vec![item(1, "a", 1)]).await?;

    let s = db.session().await?;
    let mut one = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    s.add(item(2, "b", 2))?;
    let sp = s.savepoint().await?;
    s.add(item(3, "c", 3))?;
    one.qty = 10;
    s.update(&mut one)?;
    let two = s.find::<Item>(&2).await?.ok_or(Error::NotFound)?;
    s.delete(&two)?;
    sp.rollback().await?;
    // Back to the state at the savepoint: 2 still to insert, 3 never added,
    // 1 unchanged.
    assert_eq!(s.find::<Item>(&2).await?.map(|i| i.qty), Some(2));
    assert_eq!(s.find::<Item>(&1).await?.map(|i| i.qty), Some(1));
    assert_eq!(s.find::<Item>(&3).await?, None);

    // Writes flushed after the savepoint are undone in the database too.
    let sp = s.savepoint().await?;
    s.add(item(4, "d", 4))?;
    s.flush().await?;
    assert_eq!(s.count::<Item>().await?, 3);
    sp.rollback().await?;
    assert_eq!(s.find::<Item>(&4).await?, None);
    assert_eq!(s.count::<Item>().await?, 2, "1 and 2 (re-flushed)");

    // Release keeps what came after.
    let sp = s.savepoint().await?;
    s.add(item(5, "e", 5))?;
    sp.release().await?;
    s.commit().await?;
    let ids: Vec<i64> = stored::<Item>(&db).await?.iter().map(|i| i.id).collect();
    assert_eq!(ids, [1, 2, 5]);
    Ok(())
}

pub async fn nested_savepoints(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    let s = db.session().await?;
    s.add(item(1, "a", 1))?;
    let outer = s.savepoint().await?;
    s.add(item(2, "b", 2))?;
    let middle = s.savepoint().await?;
    s.add(item(3, "c", 3))?;
    s.flush().await?;
    let inner = s.savepoint().await?;
    s.add(item(4, "d", 4))?;
    inner.rollback().await?;
    assert_eq!(s.find::<Item>(&4).await?, None);
    assert!(s.find::<Item>(&3).await?.is_some());
    middle.rollback().await?;
    assert_eq!(s.find::<Item>(&3).await?, None);
    assert!(s.find::<Item>(&2).await?.is_some());
    let again = s.savepoint().await?;
    s.add(item(5, "e", 5))?;
    let deeper = s.savepoint().await?;
    s.add(item(6, "f", 6))?;
    // Rolling back the outer one ends the inner ones with it.
    again.rollback().await?;
    assert!(matches!(deeper.rollback().await, Err(Error::Invalid(_))));
    assert_eq!(s.find::<Item>(&5).await?, None);
    assert_eq!(s.find::<Item>(&6).await?, None);
    outer.release().await?;
    s.commit().await?;
    let ids: Vec<i64> = stored::<Item>(&db).await?.iter().map(|i| i.id).collect();
    assert_eq!(ids, [1, 2]);
    Ok(())
}

pub async fn savepoint_of_an_ended_transaction_is_refused(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    let s = db.session().await?;
    s.add(item(1, "a", 1))?;
    let old = s.savepoint().await?;
    s.commit().await?;

    // A new transaction with a savepoint at the same depth: the old handle
    // must not roll back (or release) the new one.
    s.add(item(2, "b", 2))?;
    let new = s.savepoint().await?;
    s.add(item(3, "c", 3))?;
    assert!(matches!(old.rollback().await, Err(Error::Invalid(_))));
    assert!(
        s.find::<Item>(&3).await?.is_some(),
        "the new savepoint's registrations survive"
    );
    new.rollback().await?;
    assert_eq!(s.find::<Item>(&3).await?, None);

    let old = s.savepoint().await?;
    s.rollback().await?;
    let new = s.savepoint().await?;
    s.add(item(4, "d", 4))?;
    assert!(matches!(old.release().await, Err(Error::Invalid(_))));
    new.rollback().await?;
    assert_eq!(s.find::<Item>(&4).await?, None);
    s.add(item(5, "e", 5))?;
    s.commit().await?;
    let ids: Vec<i64> = stored::<Item>(&db).await?.iter().map(|i| i.id).collect();
    assert_eq!(ids, [1, 5]);
    Ok(())
}

// ----- concurrency ----------------------------------------------------------------------

const VAULTS: i64 = 8;
const TRANSFERS: i64 = 32;
const START: i64 = 1_000;

pub async fn concurrent_bank_transfers(db: Db) -> TestResult {
    db.create_tables::<(Vault, Transfer)>().await?;
    let s = db.session().await?;
    s.add_many(
        (1..=VAULTS)
            .map(|id| Vault {
                id,
                balance: START,
                version: 0,
            })
            .collect(),
    )?;
    s.commit().await?;

    let tasks: Vec<_> = (0..TRANSFERS)
        .map(|t| {
            let db = db.clone();
            let from = 1 + t % VAULTS;
            let to = 1 + (t * 3 + 1) % VAULTS;
            let to = if to == from { 1 + to % VAULTS } else { to };
            let amount = 1 + t % 7;
            tokio::spawn(async move {
                db.transaction_with(SessionOptions::new().max_retries(200), |s| async move {
                    let mut a = s.find::<Vault>(&from).await?.ok_or(Error::NotFound)?;
                    tokio::task::yield_now().await;
                    let mut b = s.find::<Vault>(&to).await?.ok_or(Error::NotFound)?;
                    a.balance -= amount;
                    b.balance += amount;
                    s.update(&mut a)?;
                    s.update(&mut b)?;
                    s.add(Transfer {
                        id: t,
                        from_id: from,
                        to_id: to,
                        amount,
                    })?;
                    Ok::<_, Error>(t)
                })
                .await
            })
        })
        .collect();
    let mut committed = 0;
    let mut attempts = 0;
    let mut ids = Vec::new();
    for task in tasks {
        let c = tokio::time::timeout(Duration::from_secs(50), task)
            .await
            .expect("transfer finished in time")
            .expect("task")?;
        assert!(c.attempts >= 1);
        committed += 1;
        attempts += c.attempts;
        ids.push(c.value);
    }
    ids.sort_unstable();
    assert_eq!(committed, TRANSFERS);
    assert_eq!(ids, (0..TRANSFERS).collect::<Vec<_>>());
    eprintln!(
        "bank transfers on {:?}: {committed} committed in {attempts} attempts",
        db.backend()
    );

    let vaults = stored::<Vault>(&db).await?;
    let ledger = stored::<Transfer>(&db).await?;
    assert_eq!(
        vaults.iter().map(|v| v.balance).sum::<i64>(),
        VAULTS * START
    );
    assert_eq!(ledger.len() as i64, TRANSFERS, "every transfer once");
    assert_eq!(
        ledger.iter().map(|t| t.id).collect::<Vec<_>>(),
        (0..TRANSFERS).collect::<Vec<_>>()
    );
    for v in &vaults {
        let out: i64 = ledger
            .iter()
            .filter(|t| t.from_id == v.id)
            .map(|t| t.amount)
            .sum();
        let inc: i64 = ledger
            .iter()
            .filter(|t| t.to_id == v.id)
            .map(|t| t.amount)
            .sum();
        assert_eq!(
            v.balance,
            START - out + inc,
            "vault {} applied exactly once",
            v.id
        );
        let touched = ledger
            .iter()
            .filter(|t| t.from_id == v.id || t.to_id == v.id)
            .count() as i64;
        assert_eq!(v.version, 1 + touched, "one version bump per transfer");
    }
    Ok(())
}

/// A second read-write session waits for the first on SQLite (`BEGIN
/// IMMEDIATE` takes the write lock at the first statement) and does not on
/// the others (different rows); a read-only session reads beside a writer
/// everywhere.
pub async fn writers_queue_on_sqlite_readers_do_not(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    seed_items(&db, vec![item(1, "a", 1), item(2, "b", 2)]).await?;
    let a = db.session().await?;
    let mut one = a.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    one.qty = 10;
    a.update(&mut one)?;
    a.flush().await?;

    // A reader sees the committed state at once.
    let reader = db.session_with(SessionOptions::new().read_only()).await?;
    let seen = tokio::time::timeout(Duration::from_secs(5), reader.find::<Item>(&1))
        .await
        .expect("a read-only session does not wait for the writer")?;
    assert_eq!(
        seen.map(|i| i.qty),
        Some(1),
        "uncommitted write not visible"
    );
    reader.rollback().await?;

    let db2 = db.clone();
    let b = tokio::spawn(async move {
        let s = db2.session().await?;
        let mut two = s.find::<Item>(&2).await?.ok_or(Error::NotFound)?;
        two.qty = 20;
        s.update(&mut two)?;
        s.commit().await
    });
    if db.backend() == Backend::Sqlite {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!b.is_finished(), "the second writer waits on SQLite");
        a.commit().await?;
        tokio::time::timeout(Duration::from_secs(20), b)
            .await
            .expect("the second writer goes on after the first commits")
            .expect("task")?;
    } else {
        // Row locks: a writer of another row does not wait.
        tokio::time::timeout(Duration::from_secs(20), b)
            .await
            .expect("the second writer does not wait for the first")
            .expect("task")?;
        a.commit().await?;
    }
    let qty: Vec<i64> = stored::<Item>(&db).await?.iter().map(|i| i.qty).collect();
    assert_eq!(qty, [10, 20]);
    Ok(())
}

async fn add_through_ambient_session(id: i64) -> Result<(), Error> {
    // No session parameter: the ambient one.
    Session::current()?.add(item(id, "ambient", id))
}

pub async fn current_session_in_scope(db: Db) -> TestResult {
    db.create_tables::<Item>().await?;
    assert!(matches!(Session::current(), Err(Error::NoSession)));
    assert!(matches!(
        add_through_ambient_session(1).await,
        Err(Error::NoSession)
    ));

    db.transaction(|s| async move {
        add_through_ambient_session(1).await?;
        let cur = Session::current()?;
        // The same session: what it registered, this one sees.
        assert!(s.find::<Item>(&1).await?.is_some());
        assert_eq!(cur.statement_count(), s.statement_count());
        Ok::<_, Error>(())
    })
    .await?;

    let s = db.session().await?;
    s.scope(async {
        add_through_ambient_session(2).await?;
        // A spawned task does not inherit the scope.
        let spawned = tokio::spawn(async { Session::current().map(|_| ()) });
        let r = tokio::time::timeout(Duration::from_secs(10), spawned)
            .await
            .expect("spawned task finished")
            .expect("task");
        assert!(matches!(r, Err(Error::NoSession)));
        Ok::<_, Error>(())
    })
    .await?;
    assert!(matches!(Session::current(), Err(Error::NoSession)));
    s.commit().await?;
    let ids: Vec<i64> = stored::<Item>(&db).await?.iter().map(|i| i.id).collect();
    assert_eq!(ids, [1, 2]);
    Ok(())
}

pub async fn isolation_option_accepted(db: Db) -> TestResult {
    use crate::model::TextRow;
    db.create_tables::<Item>().await?;
    seed_items(&db, vec![item(1, "a", 1)]).await?;
    let opts = SessionOptions::new().isolation(Isolation::Serializable);
    let s = db.session_with(opts.clone()).await?;
    let mut v = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
    let level = match db.backend() {
        Backend::Postgres => Some(
            s.raw::<TextRow>("SELECT current_setting('transaction_isolation')")
                .one()
                .await?
                .value,
        ),
        Backend::MySql => Some(
            s.raw::<TextRow>(
                "SELECT CAST(trx_isolation_level AS CHAR) FROM information_schema.innodb_trx \
                 WHERE trx_mysql_thread_id = CONNECTION_ID()",
            )
            .one()
            .await?
            .value,
        ),
        Backend::Sqlite => None,
        other => panic!("the test suite has no case for {other:?}"),
    };
    if let Some(level) = level {
        assert_eq!(level.to_lowercase().replace('-', " "), "serializable");
    }
    v.qty = 2;
    s.update(&mut v)?;
    s.commit().await?;

    // Through transaction_with too, each try in that isolation.
    let c = db
        .transaction_with(opts, |s| async move {
            let mut v = s.find::<Item>(&1).await?.ok_or(Error::NotFound)?;
            v.qty += 1;
            s.update(&mut v)?;
            Ok::<_, Error>(v.qty)
        })
        .await?;
    assert_eq!((c.value, c.attempts), (3, 1));

    // Other levels are accepted too.
    for level in [Isolation::ReadCommitted, Isolation::RepeatableRead] {
        let s = db
            .session_with(SessionOptions::new().isolation(level))
            .await?;
        assert!(s.find::<Item>(&1).await?.is_some());
        s.rollback().await?;
    }
    Ok(())
}

// ----- property test ---------------------------------------------------------------------

/// One step of a random session.
#[derive(Clone, Debug)]
enum Op {
    Add(i64, i64),
    Update(i64, i64),
    Delete(i64),
    Find(i64),
    Query,
    Count,
    Flush,
    Savepoint,
    RollbackTo(usize),
    Release(usize),
    Commit,
    Rollback,
}

fn op_strategy() -> impl proptest::strategy::Strategy<Value = Op, Tree: Send> {
    use proptest::strategy::Strategy;
    (0u8..20, 1i64..=6, 0i64..100).prop_map(|(kind, key, v)| match kind {
        0..=3 => Op::Add(key, v),
        4..=6 => Op::Update(key, v),
        7..=8 => Op::Delete(key),
        9 => Op::Find(key),
        10 => Op::Query,
        11 => Op::Count,
        12..=13 => Op::Flush,
        14..=15 => Op::Savepoint,
        16 => Op::RollbackTo(v as usize),
        17 => Op::Release(v as usize),
        18 => Op::Commit,
        _ => Op::Rollback,
    })
}

type Model = BTreeMap<i64, (String, i64)>;

async fn check_db(db: &Db, model: &Model, step: usize) -> Result<(), String> {
    let rows = stored::<Item>(db)
        .await
        .map_err(|e| format!("step {step}: reading back: {e:?}"))?;
    let got: Model = rows.into_iter().map(|r| (r.id, (r.name, r.qty))).collect();
    if &got != model {
        return Err(format!(
            "step {step}: database {got:?} differs from the model {model:?}"
        ));
    }
    Ok(())
}

fn e(step: usize, op: &Op) -> impl Fn(Error) -> String + use<> {
    let at = format!("step {step} ({op:?})");
    move |err| format!("{at}: {err:?}")
}

async fn run_ops(db: &Db, s: &Session, seeded: Model, ops: &[Op]) -> Result<(), String> {
    let mut committed = seeded;
    let mut view = committed.clone();
    let mut saves: Vec<(persist_core::session::Savepoint, Model)> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Add(k, v) => {
                if !view.contains_key(k) {
                    let name = format!("a{v}");
                    s.add(item(*k, &name, *v)).map_err(e(step, op))?;
                    view.insert(*k, (name, *v));
                }
            }
            Op::Update(k, v) => {
                if view.contains_key(k) {
                    let mut it = s
                        .find::<Item>(k)
                        .await
                        .map_err(e(step, op))?
                        .ok_or_else(|| format!("step {step} ({op:?}): not found"))?;
                    if v % 2 == 0 {
                        it.qty = *v;
                    } else {
                        it.name = format!("u{v}");
                    }
                    s.update(&mut it).map_err(e(step, op))?;
                    view.insert(*k, (it.name, it.qty));
                }
            }
            Op::Delete(k) => {
                if view.contains_key(k) {
                    let it = s
                        .find::<Item>(k)
                        .await
                        .map_err(e(step, op))?
                        .ok_or_else(|| format!("step {step} ({op:?}): not found"))?;
                    s.delete(&it).map_err(e(step, op))?;
                    view.remove(k);
                }
            }
            Op::Find(k) => {
                let got = s.find::<Item>(k).await.map_err(e(step, op))?;
                let got = got.map(|i| (i.name, i.qty));
                if got.as_ref() != view.get(k) {
                    return Err(format!(
                        "step {step} ({op:?}): session has {got:?}, model {:?}",
                        view.get(k)
                    ));
                }
            }
            Op::Query => {
                let rows = s
                    .query::<Item>()
                    .filter(Item::QTY.ge(0_i64))
                    .order_by(Item::ID)
                    .all()
                    .await
                    .map_err(e(step, op))?;
                let got: Model = rows.into_iter().map(|r| (r.id, (r.name, r.qty))).collect();
                if got != view {
                    return Err(format!(
                        "step {step} ({op:?}): query has {got:?}, model {view:?}"
                    ));
                }
            }
            Op::Count => {
                let n = s.count::<Item>().await.map_err(e(step, op))?;
                if n as usize != view.len() {
                    return Err(format!(
                        "step {step} ({op:?}): count {n}, model {}",
                        view.len()
                    ));
                }
            }
            Op::Flush => s.flush().await.map_err(e(step, op))?,
            Op::Savepoint => {
                if saves.len() < 4 {
                    let sp = s.savepoint().await.map_err(e(step, op))?;
                    saves.push((sp, view.clone()));
                }
            }
            Op::RollbackTo(i) => {
                if !saves.is_empty() {
                    let i = i % saves.len();
                    let mut ended = saves.split_off(i);
                    let (sp, saved) = ended.remove(0);
                    sp.rollback().await.map_err(e(step, op))?;
                    view = saved;
                }
            }
            Op::Release(i) => {
                if !saves.is_empty() {
                    let i = i % saves.len();
                    let mut ended = saves.split_off(i);
                    let (sp, _) = ended.remove(0);
                    sp.release().await.map_err(e(step, op))?;
                }
            }
            Op::Commit => {
                saves.clear();
                s.commit().await.map_err(e(step, op))?;
                committed = view.clone();
                check_db(db, &committed, step).await?;
            }
            Op::Rollback => {
                saves.clear();
                s.rollback().await.map_err(e(step, op))?;
                view = committed.clone();
                check_db(db, &committed, step).await?;
            }
        }
    }
    saves.clear();
    s.commit()
        .await
        .map_err(|err| format!("final commit: {err:?}"))?;
    check_db(db, &view, ops.len()).await
}

/// One generated case, on empty tables.
async fn run_case(db: &Db, ops: &[Op]) -> Result<(), String> {
    let fresh = async {
        db.drop_tables::<Item>().await?;
        db.create_tables::<Item>().await
    };
    fresh
        .await
        .map_err(|e| format!("resetting the table: {e:?}"))?;
    // Three committed rows to start from, so updates and deletes of rows
    // the session loads (snapshot diffs, version checks) come early.
    let seeded: Model = (1..=3).map(|k| (k, (format!("s{k}"), k))).collect();
    let rows = seeded
        .iter()
        .map(|(k, (name, qty))| item(*k, name, *qty))
        .collect();
    seed_items(db, rows)
        .await
        .map_err(|e| format!("seeding: {e:?}"))?;
    let s = db
        .session()
        .await
        .map_err(|e| format!("opening a session: {e:?}"))?;
    let out = run_ops(db, &s, seeded, ops).await;
    let _ = s.rollback().await;
    out
}

/// Random sequences of add / update / delete / find / query / count / flush / savepoint /
/// rollback-to-savepoint / release / commit / rollback on one session,
/// checked against a `BTreeMap` model (in-session reads after every `find`,
/// the database after every commit and rollback). Cases are generated and
/// shrunk with proptest's runner inside the async test, so the harness's
/// timeout and isolated database apply.
pub async fn random_sessions_match_model(db: Db) -> TestResult {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, TestRunner};

    let cases = std::env::var("PERSIST_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let config = Config {
        cases,
        max_shrink_iters: 100,
        failure_persistence: None,
        ..Config::default()
    };
    let max_shrink = config.max_shrink_iters;
    let strategy = proptest::collection::vec(op_strategy(), 1..40);
    let mut runner = TestRunner::new(config);
    for _ in 0..cases {
        let mut tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let Err(first) = run_case(&db, &tree.current()).await else {
            continue;
        };
        eprintln!(
            "property failed on {:?}: {first}\n{:#?}\nshrinking…",
            db.backend(),
            tree.current()
        );
        let mut best = (tree.current(), first);
        let mut failing = true;
        for _ in 0..max_shrink {
            let moved = if failing {
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !moved {
                break;
            }
            match run_case(&db, &tree.current()).await {
                Err(e) => {
                    best = (tree.current(), e);
                    failing = true;
                }
                Ok(()) => failing = false,
            }
        }
        panic!(
            "session diverged from the model on {:?}: {}\nminimal ops: {:#?}",
            db.backend(),
            best.1,
            best.0
        );
    }
    eprintln!(
        "property test on {:?}: {cases} cases, {} statements",
        db.backend(),
        db.statement_count()
    );
    Ok(())
}
