//! Entity lifecycle hooks and session interceptors: when they run, what
//! they see, what they change, and what a veto leaves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use persist_core::model::{BoxDynError, ChangeKind, Hooks};
use persist_core::prelude::*;
use persist_core::session::{ChangeSet, Flush, Interceptor, Origin};

use crate::common::{self, TestResult};
use crate::faults::harness::{Cut, cut_after};

/// What the hooks of every test did, tagged with the test's run id (tests
/// run in parallel; each reads only its own lines).
static LOG: Mutex<Vec<(i64, String)>> = Mutex::new(Vec::new());
static RUNS: AtomicI64 = AtomicI64::new(1);

fn new_run() -> i64 {
    RUNS.fetch_add(1, Ordering::Relaxed)
}

fn log(run: i64, line: String) {
    LOG.lock().unwrap().push((run, line));
}

/// Takes the lines of run `run`, in the order they were logged.
fn take(run: i64) -> Vec<String> {
    let mut all = LOG.lock().unwrap();
    let mine = all
        .iter()
        .filter(|(r, _)| *r == run)
        .map(|(_, l)| l.clone())
        .collect();
    all.retain(|(r, _)| *r != run);
    mine
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hk_owners", hooks)]
#[persist(has_many(HkItem, by = "owner_id", on_delete = "cascade"))]
pub struct HkOwner {
    #[persist(primary_key)]
    pub id: i64,
    pub run: i64,
    pub name: String,
    pub slug: String,
}

impl Hooks for HkOwner {
    fn before_insert(&mut self) -> Result<(), BoxDynError> {
        if self.name == "forbidden" {
            return Err("forbidden name".into());
        }
        self.slug = self.name.to_lowercase().replace(' ', "-");
        log(self.run, format!("before_insert owner {}", self.id));
        Ok(())
    }
    fn before_update(&mut self) -> Result<(), BoxDynError> {
        self.slug = self.name.to_lowercase().replace(' ', "-");
        log(self.run, format!("before_update owner {}", self.id));
        Ok(())
    }
    fn before_delete(&self) -> Result<(), BoxDynError> {
        if self.name == "keep" {
            return Err("owner is kept".into());
        }
        log(self.run, format!("before_delete owner {}", self.id));
        Ok(())
    }
    fn after_commit(&self, kind: ChangeKind) {
        log(self.run, format!("after_commit {kind:?} owner {}", self.id));
    }
    fn after_rollback(&self, kind: ChangeKind) {
        log(
            self.run,
            format!("after_rollback {kind:?} owner {}", self.id),
        );
    }
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hk_items", hooks)]
pub struct HkItem {
    #[persist(primary_key)]
    pub id: i64,
    #[persist(references = "HkOwner")]
    pub owner_id: i64,
    pub run: i64,
    pub label: String,
    #[persist(version)]
    pub version: i64,
}

impl Hooks for HkItem {
    fn before_insert(&mut self) -> Result<(), BoxDynError> {
        log(self.run, format!("before_insert item {}", self.id));
        Ok(())
    }
    fn before_update(&mut self) -> Result<(), BoxDynError> {
        if self.label.trim().is_empty() {
            return Err("an item needs a label".into());
        }
        self.label = self.label.trim().to_owned();
        log(self.run, format!("before_update item {}", self.id));
        Ok(())
    }
    fn before_delete(&self) -> Result<(), BoxDynError> {
        log(self.run, format!("before_delete item {}", self.id));
        Ok(())
    }
    fn after_commit(&self, kind: ChangeKind) {
        log(self.run, format!("after_commit {kind:?} item {}", self.id));
    }
}

/// An entity without hooks, that interceptors add rows of.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hk_notes")]
pub struct HkNote {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub text: String,
}

type Schema = (HkOwner, HkItem, HkNote);

fn owner(run: i64, id: i64, name: &str) -> HkOwner {
    HkOwner {
        id,
        run,
        name: name.into(),
        slug: String::new(),
    }
}

fn item(run: i64, id: i64, owner_id: i64, label: &str) -> HkItem {
    HkItem {
        id,
        owner_id,
        run,
        label: label.into(),
        version: 0,
    }
}

/// The rows of `E` in the database, read by a session of its own.
async fn count_rows<E: Entity>(db: &Db) -> Result<u64, Error> {
    let s = db.session().await?;
    let n = s.count::<E>().await?;
    s.commit().await?;
    Ok(n)
}

fn vetoed_by(e: &Error) -> (&str, String) {
    match e {
        Error::Vetoed { by, source } => (by.as_str(), source.to_string()),
        other => panic!("expected Vetoed, got {other:?}"),
    }
}

pub async fn hooks_run_once_per_change_in_flush_order(db: Db) -> TestResult {
    db.create_tables::<Schema>().await?;
    let run = new_run();
    let s = db.session().await?;
    // Registered child first: the flush writes the owners' table first.
    s.add(item(run, 2, 1, "second"))?;
    s.add(owner(run, 1, "First Owner"))?;
    s.add(item(run, 1, 1, "first"))?;
    s.commit().await?;
    assert_eq!(
        take(run),
        [
            "before_insert owner 1",
            "before_insert item 2",
            "before_insert item 1",
            "after_commit Insert owner 1",
            "after_commit Insert item 2",
            "after_commit Insert item 1",
        ]
    );

    // What the hook changed is what was written.
    let s = db.session().await?;
    let mut o = s.find::<HkOwner>(&1).await?.expect("owner");
    assert_eq!(o.slug, "first-owner");
    // Two updates of one row before the flush: one change, one hook run.
    o.name = "Renamed Owner".into();
    s.update(&mut o)?;
    o.name = "New Name".into();
    s.update(&mut o)?;
    let mut i1 = s.find::<HkItem>(&1).await?.expect("item");
    i1.label = "  padded  ".into();
    s.update(&mut i1)?;
    let i2 = s.find::<HkItem>(&2).await?.expect("item");
    s.delete(&i2)?;
    // An unchanged row registers nothing and runs no hook.
    let mut same = s.find::<HkItem>(&1).await?.expect("held");
    s.update(&mut same)?;
    s.flush().await?;
    assert_eq!(
        take(run),
        [
            "before_update owner 1",
            "before_update item 1",
            "before_delete item 2",
        ]
    );
    // The session holds what the hooks left.
    assert_eq!(
        s.find::<HkItem>(&1).await?.map(|i| i.label).as_deref(),
        Some("padded")
    );
    s.commit().await?;
    assert_eq!(
        take(run),
        [
            "after_commit Update owner 1",
            "after_commit Update item 1",
            "after_commit Delete item 2",
        ]
    );
    let s = db.session().await?;
    let o = s.find::<HkOwner>(&1).await?.expect("owner");
    assert_eq!((o.name.as_str(), o.slug.as_str()), ("New Name", "new-name"));
    assert_eq!(
        s.find::<HkItem>(&1).await?.map(|i| i.label).as_deref(),
        Some("padded")
    );
    assert!(s.find::<HkItem>(&2).await?.is_none());
    s.commit().await?;
    Ok(())
}

pub async fn hook_veto_writes_nothing(db: Db) -> TestResult {
    db.create_tables::<Schema>().await?;
    let run = new_run();
    let s = db.session().await?;
    s.add(owner(run, 1, "fine"))?;
    s.add(owner(run, 2, "forbidden"))?;
    s.add(item(run, 1, 1, "x"))?;
    let before = s.statement_count();
    let err = s.commit().await.expect_err("vetoed");
    assert_eq!(
        vetoed_by(&err),
        ("before_insert of HkOwner", "forbidden name".to_owned())
    );
    assert!(!err.is_retryable());
    assert_eq!(s.statement_count(), before, "no statement after the veto");
    // The session is not failed: its changes are still registered.
    assert!(!s.is_failed());
    s.rollback().await?;
    assert_eq!(count_rows::<HkOwner>(&db).await?, 0);
    s.add(owner(run, 1, "fine"))?;
    s.add(item(run, 1, 1, "x"))?;
    s.commit().await?;
    assert_eq!(count_rows::<HkOwner>(&db).await?, 1);

    // A veto of an update: nothing of the flush is written, the other
    // registered update included.
    let s = db.session().await?;
    let mut o = s.find::<HkOwner>(&1).await?.expect("owner");
    o.name = "Changed".into();
    s.update(&mut o)?;
    let mut i = s.find::<HkItem>(&1).await?.expect("item");
    i.label = "   ".into();
    s.update(&mut i)?;
    let err = s.flush().await.expect_err("vetoed");
    assert_eq!(
        vetoed_by(&err),
        (
            "before_update of HkItem",
            "an item needs a label".to_owned()
        )
    );
    s.rollback().await?;
    let s = db.session().await?;
    assert_eq!(
        s.find::<HkOwner>(&1).await?.map(|o| o.name).as_deref(),
        Some("fine")
    );

    // A veto of a delete.
    let mut keep = owner(run, 3, "keep");
    keep = s.insert(keep).await?;
    s.commit().await?;
    let s = db.session().await?;
    s.delete(&keep)?;
    let err = s.commit().await.expect_err("vetoed");
    assert_eq!(vetoed_by(&err).0, "before_delete of HkOwner");
    s.rollback().await?;
    assert_eq!(count_rows::<HkOwner>(&db).await?, 2);

    // An immediate insert runs its hook before any statement.
    let s = db.session().await?;
    let before = s.statement_count();
    let err = s
        .insert(owner(run, 9, "forbidden"))
        .await
        .expect_err("vetoed");
    assert_eq!(vetoed_by(&err).0, "before_insert of HkOwner");
    assert_eq!(s.statement_count(), before);
    let stored = s.insert(owner(run, 9, "Immediate One")).await?;
    assert_eq!(stored.slug, "immediate-one");
    s.commit().await?;
    assert_eq!(count_rows::<HkOwner>(&db).await?, 3);
    take(run);
    Ok(())
}

pub async fn after_rollback_is_told_what_was_written(db: Db) -> TestResult {
    db.create_tables::<Schema>().await?;
    let run = new_run();
    let s = db.session().await?;
    s.add(owner(run, 1, "one"))?;
    s.flush().await?;
    // Registered but never written: not told.
    s.add(owner(run, 2, "two"))?;
    s.rollback().await?;
    assert_eq!(
        take(run),
        ["before_insert owner 1", "after_rollback Insert owner 1"]
    );
    assert_eq!(count_rows::<HkOwner>(&db).await?, 0);

    // A savepoint rolled back takes its changes out of what commit tells.
    let s = db.session().await?;
    s.add(owner(run, 1, "one"))?;
    s.flush().await?;
    let sp = s.savepoint().await?;
    s.add(owner(run, 2, "two"))?;
    s.flush().await?;
    sp.rollback().await?;
    s.commit().await?;
    assert_eq!(
        take(run),
        [
            "before_insert owner 1",
            "before_insert owner 2",
            "after_commit Insert owner 1",
        ]
    );
    Ok(())
}

/// Records every change set it sees, and what it was told after commit
/// and rollback.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Vec<String>>>>,
    committed: Arc<Mutex<Vec<Vec<String>>>>,
    rolled_back: Arc<Mutex<Vec<Vec<String>>>>,
}

fn lines(set: &ChangeSet) -> Vec<String> {
    set.iter()
        .map(|c| {
            let origin = match c.origin() {
                Origin::Registered => "registered".to_owned(),
                Origin::Immediate => "immediate".to_owned(),
                Origin::Bulk { filter } => format!("bulk where {}", !filter.is_empty()),
                Origin::Cascade { parent, column } => format!("cascade from {parent} by {column}"),
                other => format!("{other:?}"),
            };
            format!(
                "{:?} {} {} [{}] {origin}",
                c.kind(),
                c.table(),
                c.key().unwrap_or("*"),
                c.columns().join(",")
            )
        })
        .collect()
}

impl Interceptor for Recorder {
    fn name(&self) -> &str {
        "Recorder"
    }
    fn before_flush(&self, flush: &mut Flush<'_>) -> Result<(), BoxDynError> {
        self.seen.lock().unwrap().push(lines(flush.changes()));
        Ok(())
    }
    fn after_commit(&self, changes: &ChangeSet) {
        self.committed.lock().unwrap().push(lines(changes));
    }
    fn after_rollback(&self, changes: &ChangeSet) {
        self.rolled_back.lock().unwrap().push(lines(changes));
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
    fn committed(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.committed.lock().unwrap())
    }
    fn rolled_back(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.rolled_back.lock().unwrap())
    }
}

/// Runs `test` on a `Db` of its own, with `interceptor` registered.
async fn with_interceptor<I, F, Fut>(db: &Db, name: &str, interceptor: I, test: F) -> TestResult
where
    I: Interceptor,
    F: FnOnce(Db) -> Fut,
    Fut: std::future::Future<Output = TestResult>,
{
    common::with_isolated_db(db.backend(), name, |url| async move {
        let idb = Db::builder()
            .max_connections(5)
            .sqlite_direct(db.sqlite_direct())
            .interceptor(interceptor)
            .connect(&url)
            .await?;
        idb.create_tables::<Schema>().await?;
        let out = test(idb.clone()).await;
        idb.close().await;
        out
    })
    .await
}

pub async fn interceptor_sees_changes_bulk_writes_and_cascades(db: Db) -> TestResult {
    let rec = Recorder::default();
    let r = rec.clone();
    with_interceptor(&db, "interceptor_sees", rec, |db| async move {
        let run = new_run();
        let s = db.session().await?;
        s.add(owner(run, 1, "one"))?;
        s.add(item(run, 1, 1, "a"))?;
        s.add(item(run, 2, 1, "b"))?;
        s.commit().await?;
        assert_eq!(
            r.seen(),
            [[
                "Insert hk_owners 1 [] registered",
                "Insert hk_items 1 [] registered",
                "Insert hk_items 2 [] registered",
            ]]
        );
        assert_eq!(r.committed().len(), 1);

        let s = db.session().await?;
        let mut i = s.find::<HkItem>(&1).await?.expect("item");
        i.label = "A".into();
        s.update(&mut i)?;
        s.commit().await?;
        assert_eq!(r.seen(), [["Update hk_items 1 [label,version] registered"]]);
        r.committed();

        // A bulk update, then a bulk delete cascading to the items.
        let s = db.session().await?;
        let n = s
            .update_all::<HkItem>()
            .set(HkItem::LABEL, "z")
            .filter(HkItem::OWNER_ID.eq(1))
            .await?;
        assert_eq!(n, 2);
        let n = s.delete_all::<HkOwner>().await?;
        assert_eq!(n, 1);
        s.commit().await?;
        assert_eq!(
            r.seen(),
            [
                vec!["Update hk_items * [label] bulk where true"],
                vec![
                    "Delete hk_owners * [] bulk where false",
                    "Delete hk_items * [] cascade from hk_owners by owner_id",
                ]
            ]
        );
        assert_eq!(
            r.committed(),
            [[
                "Update hk_items * [label] bulk where true",
                "Delete hk_owners * [] bulk where false",
                "Delete hk_items * [] cascade from hk_owners by owner_id",
            ]]
        );
        assert_eq!(count_rows::<HkItem>(&db).await?, 0);

        // A registered delete with a cascade, and an immediate insert.
        let s = db.session().await?;
        let o = s.insert(owner(run, 5, "five")).await?;
        s.insert(item(run, 5, 5, "e")).await?;
        s.delete(&o)?;
        s.rollback().await?;
        assert_eq!(
            r.seen(),
            [
                ["Insert hk_owners 5 [] immediate"],
                ["Insert hk_items 5 [] immediate"],
            ]
        );
        assert_eq!(
            r.rolled_back(),
            [[
                "Insert hk_owners 5 [] immediate",
                "Insert hk_items 5 [] immediate",
            ]]
        );
        let s = db.session().await?;
        let o = s.insert(owner(run, 6, "six")).await?;
        s.delete(&o)?;
        s.commit().await?;
        assert_eq!(
            r.seen()[1],
            [
                "Delete hk_owners 6 [] registered",
                "Delete hk_items * [] cascade from hk_owners by owner_id",
            ]
        );
        take(run);
        Ok(())
    })
    .await
}

/// Adds a note for every owner inserted: rows that join the flush.
struct NoteOnInsert;

impl Interceptor for NoteOnInsert {
    fn before_flush(&self, flush: &mut Flush<'_>) -> Result<(), BoxDynError> {
        let notes: Vec<HkNote> = flush
            .changes()
            .of::<HkOwner>()
            .filter(|(c, _)| c.kind() == ChangeKind::Insert)
            .filter_map(|(_, o)| o)
            .map(|o| HkNote {
                id: 0,
                text: format!("created {}", o.name),
            })
            .collect();
        for n in notes {
            flush.add(n)?;
        }
        Ok(())
    }
}

pub async fn interceptor_adds_rows_to_the_same_flush(db: Db) -> TestResult {
    with_interceptor(&db, "interceptor_adds", NoteOnInsert, |db| async move {
        let run = new_run();
        let s = db.session().await?;
        // Begin the transaction first, so the flush's statements are all
        // that is counted.
        assert_eq!(s.count::<HkNote>().await?, 0);
        for i in 1..=3 {
            s.add(owner(run, i, &format!("o{i}")))?;
        }
        let before = s.statement_count();
        s.flush().await?;
        // One multi-row INSERT for the owners, one for the notes the
        // interceptor added.
        assert_eq!(s.statement_count() - before, 2);
        s.commit().await?;
        let s = db.session().await?;
        let mut notes: Vec<String> = s
            .all::<HkNote>()
            .await?
            .into_iter()
            .map(|n| n.text)
            .collect();
        notes.sort();
        assert_eq!(notes, ["created o1", "created o2", "created o3"]);
        s.commit().await?;
        take(run);
        Ok(())
    })
    .await
}

/// Refuses deletes of owners.
struct NoOwnerDeletes;

impl Interceptor for NoOwnerDeletes {
    fn name(&self) -> &str {
        "NoOwnerDeletes"
    }
    fn before_flush(&self, flush: &mut Flush<'_>) -> Result<(), BoxDynError> {
        if flush
            .changes()
            .iter()
            .any(|c| c.is::<HkOwner>() && c.kind() == ChangeKind::Delete)
        {
            return Err("owners are never deleted".into());
        }
        Ok(())
    }
}

pub async fn interceptor_veto_writes_nothing(db: Db) -> TestResult {
    with_interceptor(&db, "interceptor_veto", NoOwnerDeletes, |db| async move {
        let run = new_run();
        let s = db.session().await?;
        let o = s.insert(owner(run, 1, "one")).await?;
        s.commit().await?;

        let s = db.session().await?;
        s.add(item(run, 1, 1, "written with the delete, so not at all"))?;
        s.delete(&o)?;
        let err = s.commit().await.expect_err("vetoed");
        assert_eq!(
            vetoed_by(&err),
            (
                "interceptor NoOwnerDeletes",
                "owners are never deleted".to_owned()
            )
        );
        assert!(!s.is_failed());
        s.rollback().await?;
        assert_eq!(count_rows::<HkOwner>(&db).await?, 1);
        assert_eq!(count_rows::<HkItem>(&db).await?, 0);

        // A bulk delete is refused before its statement.
        let s = db.session().await?;
        let before = s.statement_count();
        let err = s.delete_all::<HkOwner>().await.expect_err("vetoed");
        assert_eq!(vetoed_by(&err).0, "interceptor NoOwnerDeletes");
        assert_eq!(s.statement_count(), before);
        s.rollback().await?;
        assert_eq!(count_rows::<HkOwner>(&db).await?, 1);
        take(run);
        Ok(())
    })
    .await
}

/// A commit of hooked changes with an interceptor, cut at every poll: the
/// rows are all written or none, and whoever is told of a commit is told
/// only of one that happened.
pub async fn cut_commit_with_hooks_and_interceptor_at_every_poll(db: Db) -> TestResult {
    let rec = Recorder::default();
    let r = rec.clone();
    with_interceptor(&db, "cut_hooks", rec, |db| async move {
        let mut cuts = 0;
        for polls in 1..400 {
            let run = new_run();
            let s = db.session().await?;
            s.delete_all::<HkOwner>().await?;
            s.commit().await?;
            r.committed();
            let s = db.session().await?;
            s.add(owner(run, 1, "one"))?;
            s.add(item(run, 1, 1, "a"))?;
            s.add(item(run, 2, 1, "b"))?;
            let done = cut_after(polls, Duration::ZERO, s.commit()).await;
            drop(s);
            let owners = count_rows::<HkOwner>(&db).await?;
            let items = count_rows::<HkItem>(&db).await?;
            assert!(
                (owners, items) == (0, 0) || (owners, items) == (1, 2),
                "half a flush at {polls}: {owners} owners, {items} items"
            );
            let told = r.committed();
            let hooks_told = take(run)
                .iter()
                .filter(|l| l.starts_with("after_commit"))
                .count();
            match done {
                Cut::Completed(out) => {
                    out?;
                    assert_eq!((owners, items), (1, 2));
                    assert_eq!(told.len(), 1);
                    assert_eq!(hooks_told, 3);
                    break;
                }
                Cut::Cut => {
                    cuts += 1;
                    assert!(told.is_empty(), "told of a cut commit at {polls}");
                    assert_eq!(hooks_told, 0);
                }
            }
        }
        if db.backend() == persist_core::sql::Backend::Postgres {
            assert!(cuts >= 1, "{cuts} cuts");
        }
        Ok(())
    })
    .await
}
