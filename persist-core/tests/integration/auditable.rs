//! Soft delete, history, hooks and interceptors together: a soft delete
//! and the cascade it sets off are in the history and in the change set
//! interceptors see, and a restore is a version of its own.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use persist_core::model::{BoxDynError, ChangeKind, Hooks};
use persist_core::prelude::*;
use persist_core::query::Version;
use persist_core::session::{Flush, Interceptor, Origin};

use crate::common::{self, TestResult};

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "au_projects", audit, hooks)]
#[persist(has_many(AuTask, by = "project_id", on_delete = "cascade"))]
pub struct AuProject {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub archived: bool,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Hooks for AuProject {
    fn before_delete(&self) -> Result<(), BoxDynError> {
        if !self.archived {
            return Err("archive a project before deleting it".into());
        }
        Ok(())
    }
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "au_tasks", audit)]
#[persist(has_many(AuNote, by = "task_id", on_delete = "cascade"))]
pub struct AuTask {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "AuProject")]
    pub project_id: i64,
    pub title: String,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "au_notes", audit)]
pub struct AuNote {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "AuTask")]
    pub task_id: i64,
    pub body: String,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

type Tables = (AuProject, AuTask, AuNote);

fn kinds<T>(versions: &[Version<T>]) -> Vec<ChangeKind> {
    versions.iter().map(|v| v.kind).collect()
}

/// A project with two tasks, the first with a note; committed.
async fn project(db: &Db, name: &str) -> Result<(AuProject, Vec<AuTask>, AuNote), Error> {
    let s = db.session().await?;
    let p = s
        .insert(AuProject {
            id: 0,
            name: name.into(),
            archived: false,
            deleted_at: None,
        })
        .await?;
    let tasks = s
        .insert_many(
            ["a", "b"]
                .iter()
                .map(|t| AuTask {
                    id: 0,
                    project_id: p.id,
                    title: (*t).into(),
                    deleted_at: None,
                })
                .collect(),
        )
        .await?;
    let note = s
        .insert(AuNote {
            id: 0,
            task_id: tasks[0].id,
            body: "n".into(),
            deleted_at: None,
        })
        .await?;
    s.commit().await?;
    Ok((p, tasks, note))
}

/// The last version of each row is a delete with the soft-delete time set,
/// in one revision shared by the whole cascade.
async fn assert_cascade_recorded(
    s: &Session,
    p: &AuProject,
    tasks: &[AuTask],
    note: &AuNote,
) -> TestResult {
    let pv = s.history::<AuProject>(&p.id).await?;
    assert_eq!(kinds(&pv).last(), Some(&ChangeKind::Delete));
    let last = pv.last().expect("a version");
    assert!(last.value.deleted_at.is_some(), "{:?}", last.value);
    let rev = last.revision.id;
    for t in tasks {
        let tv = s.history::<AuTask>(&t.id).await?;
        assert_eq!(kinds(&tv), [ChangeKind::Insert, ChangeKind::Delete]);
        let del = &tv[1];
        assert_eq!(
            del.revision.id, rev,
            "the cascade is in the parent's revision"
        );
        assert!(del.value.deleted_at.is_some());
        assert_eq!(del.changed, ["deleted_at"]);
    }
    let nv = s.history::<AuNote>(&note.id).await?;
    assert_eq!(kinds(&nv), [ChangeKind::Insert, ChangeKind::Delete]);
    assert_eq!(nv[1].revision.id, rev);
    let mut changed: Vec<(String, ChangeKind)> = s
        .revision_changes(rev)
        .await?
        .into_iter()
        .map(|c| (c.table, c.kind))
        .collect();
    changed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        changed,
        [
            ("au_notes".to_owned(), ChangeKind::Delete),
            ("au_projects".to_owned(), ChangeKind::Delete),
            ("au_tasks".to_owned(), ChangeKind::Delete),
            ("au_tasks".to_owned(), ChangeKind::Delete),
        ]
    );
    Ok(())
}

pub async fn soft_delete_cascade_is_in_the_history(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    // By the flush.
    let (mut p, tasks, note) = project(&db, "flushed").await?;
    let s = db.session().await?;
    // The hook vetoes a live project's delete: nothing is marked.
    s.delete(&p)?;
    let err = s.commit().await.expect_err("vetoed");
    assert!(matches!(err, Error::Vetoed { .. }), "{err:?}");
    s.rollback().await?;
    assert_eq!(s.count::<AuTask>().await?, 2);
    p.archived = true;
    s.update(&mut p)?;
    s.commit().await?;
    s.delete(&p)?;
    s.commit().await?;
    assert_eq!(s.count::<AuTask>().await?, 0, "the tasks are hidden");
    assert_cascade_recorded(&s, &p, &tasks, &note).await?;
    s.commit().await?;

    // By a bulk delete.
    let (mut q, tasks, note) = project(&db, "bulk").await?;
    let s = db.session().await?;
    q.archived = true;
    s.update(&mut q)?;
    s.commit().await?;
    let n = s
        .delete_all::<AuProject>()
        .filter(AuProject::NAME.eq("bulk"))
        .await?;
    assert_eq!(n, 1);
    s.commit().await?;
    assert_cascade_recorded(&s, &q, &tasks, &note).await?;

    // A restore is an update of its own; the cascade is not undone.
    let mut back = s
        .query::<AuProject>()
        .with_deleted()
        .filter(AuProject::ID.eq(q.id))
        .one()
        .await?;
    s.restore(&mut back)?;
    s.commit().await?;
    let qv = s.history::<AuProject>(&q.id).await?;
    assert_eq!(
        kinds(&qv),
        [
            ChangeKind::Insert,
            ChangeKind::Update,
            ChangeKind::Delete,
            ChangeKind::Update
        ]
    );
    assert_eq!(qv[3].changed, ["deleted_at"]);
    assert!(qv[3].value.deleted_at.is_none());
    assert_eq!(s.count::<AuTask>().await?, 0);
    s.commit().await?;

    // Restoring the version before a soft delete brings the row back.
    let pv = s.history::<AuProject>(&p.id).await?;
    let before_delete = pv[pv.len() - 2].revision.id;
    assert!(s.find::<AuProject>(&p.id).await?.is_none());
    let back = s.restore_version::<AuProject>(&p.id, before_delete).await?;
    assert!(back.deleted_at.is_none());
    s.commit().await?;
    assert_eq!(
        s.find::<AuProject>(&p.id).await?.map(|p| p.name).as_deref(),
        Some("flushed")
    );
    assert_eq!(
        kinds(&s.history::<AuProject>(&p.id).await?).last(),
        Some(&ChangeKind::Update)
    );
    s.commit().await?;
    Ok(())
}

/// Keeps the change sets it sees, one line per change.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Interceptor for Seen {
    fn before_flush(&self, flush: &mut Flush<'_>) -> Result<(), BoxDynError> {
        let mut seen = self.0.lock().unwrap();
        for c in flush.changes() {
            let origin = match c.origin() {
                Origin::Registered => "registered".to_owned(),
                Origin::Bulk { .. } => "bulk".to_owned(),
                Origin::Cascade { parent, .. } => format!("cascade from {parent}"),
                other => format!("{other:?}"),
            };
            seen.push(format!("{:?} {} {origin}", c.kind(), c.table()));
        }
        Ok(())
    }
}

pub async fn interceptors_see_soft_delete_cascades(db: Db) -> TestResult {
    let seen = Seen::default();
    let lines = seen.0.clone();
    common::with_isolated_db(db.backend(), "soft_cascade_seen", |url| async move {
        let idb = Db::builder()
            .sqlite_direct(db.sqlite_direct())
            .interceptor(seen)
            .connect(&url)
            .await?;
        idb.create_tables::<Tables>().await?;
        let (mut p, _, _) = project(&idb, "p").await?;
        let s = idb.session().await?;
        p.archived = true;
        s.update(&mut p)?;
        s.commit().await?;
        lines.lock().unwrap().clear();
        s.delete(&p)?;
        s.commit().await?;
        s.delete_all::<AuProject>().await?;
        s.commit().await?;
        let cascade = [
            "Delete au_tasks cascade from au_projects",
            "Delete au_notes cascade from au_tasks",
        ];
        let mut expected = vec!["Delete au_projects registered"];
        expected.extend(cascade);
        expected.push("Delete au_projects bulk");
        expected.extend(cascade);
        assert_eq!(*lines.lock().unwrap(), expected);
        idb.close().await;
        Ok(())
    })
    .await
}
