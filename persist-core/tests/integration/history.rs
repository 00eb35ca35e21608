//! History with revisions (`#[persist(audit)]`): every change kept in
//! `<table>_history` under the revision of its transaction, read back as
//! versions, as of a revision or a time, by revision, and restored.

use std::time::Duration;

use persist_core::model::ChangeKind;
use persist_core::prelude::*;
use persist_core::query::{At, Version};
use persist_core::sqlx::AssertSqlSafe;

use crate::common::TestResult;
use crate::faults::cut::{Cut, cut_after};

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hx_accounts", audit)]
pub struct HAccount {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub balance: i64,
    #[persist(version)]
    pub version: i64,
}

/// `HAccount` without history, to compare statement counts.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hx_plain")]
pub struct HPlain {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub balance: i64,
    #[persist(version)]
    pub version: i64,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hx_parents", audit)]
#[persist(has_many(HChild, by = "parent_id", on_delete = "cascade"))]
#[persist(has_many(HLabel, by = "owner_id", on_delete = "set_null"))]
pub struct HParent {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hx_children", audit)]
pub struct HChild {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "HParent")]
    pub parent_id: i64,
    pub note: String,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hx_labels", audit)]
pub struct HLabel {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "HParent")]
    pub owner_id: Option<i64>,
    pub text: String,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hx_kv", audit)]
pub struct HKv {
    #[persist(primary_key)]
    pub k: String,
    pub v: i64,
}

/// A composite key.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "hx_lines", audit)]
pub struct HLine {
    #[persist(primary_key)]
    pub order_id: i64,
    #[persist(primary_key)]
    pub line: i32,
    pub qty: i32,
}

type Tables = (HAccount, HPlain, HParent, HChild, HLabel, HKv, HLine);

fn account(name: &str, balance: i64) -> HAccount {
    HAccount {
        id: 0,
        name: name.into(),
        balance,
        version: 0,
    }
}

fn kinds<T>(versions: &[Version<T>]) -> Vec<ChangeKind> {
    versions.iter().map(|v| v.kind).collect()
}

/// One number read by raw SQL in a fresh session.
async fn count(db: &Db, sql: &str) -> Result<i64, Error> {
    let s = db.session().await?;
    let n = s.raw_as::<i64>(AssertSqlSafe(sql.to_owned())).one().await?;
    s.rollback().await?;
    Ok(n)
}

pub async fn insert_update_delete_are_versions(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    // Creating the tables again changes nothing.
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let a = s.insert(account("a", 10)).await?;
    s.commit().await?;
    let mut a2 = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    a2.balance = 25;
    s.update(&mut a2)?;
    s.commit().await?;
    let a3 = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    s.delete(&a3)?;
    s.commit().await?;

    let versions = s.history::<HAccount>(&a.id).await?;
    assert_eq!(
        kinds(&versions),
        [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Delete]
    );
    let values: Vec<(i64, i64)> = versions
        .iter()
        .map(|v| (v.value.balance, v.value.version))
        .collect();
    // The update bumped the version; the delete keeps the last values.
    assert_eq!(values, [(10, 1), (25, 2), (25, 2)]);
    assert_eq!(versions[0].changed, ["id", "name", "balance", "version"]);
    assert_eq!(versions[1].changed, ["balance", "version"]);
    assert!(versions[2].changed.is_empty());
    let ids: Vec<i64> = versions.iter().map(|v| v.revision.id).collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    s.rollback().await?;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        3
    );
    // The history table goes with drop_tables; the revision table stays.
    db.drop_tables::<Tables>().await?;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        3
    );
    Ok(())
}

pub async fn bulk_update_records_the_values_the_database_computed(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let rows = s
        .insert_many(vec![account("a", 10), account("b", 20), account("c", 30)])
        .await?;
    s.commit().await?;
    let n = s
        .update_all::<HAccount>()
        .filter(HAccount::BALANCE.ge(20))
        .set_expr(HAccount::BALANCE, HAccount::BALANCE.add(5))
        .await?;
    assert_eq!(n, 2);
    s.commit().await?;
    let untouched = s.history::<HAccount>(&rows[0].id).await?;
    assert_eq!(kinds(&untouched), [ChangeKind::Insert]);
    let b = s.history::<HAccount>(&rows[1].id).await?;
    assert_eq!(kinds(&b), [ChangeKind::Insert, ChangeKind::Update]);
    assert_eq!((b[1].value.balance, b[1].value.version), (25, 2));
    assert_eq!(b[1].changed, ["balance", "version"]);
    // One revision for the three inserts, one for the bulk update.
    assert_eq!(b[0].revision.id, untouched[0].revision.id);
    s.rollback().await?;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        2
    );
    Ok(())
}

pub async fn delete_by_key_and_delete_all_keep_the_last_values(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let rows = s
        .insert_many(vec![account("a", 1), account("b", 2), account("c", 3)])
        .await?;
    s.commit().await?;
    // A row the session never loaded, deleted by key.
    let s = db.session().await?;
    s.delete_by_key::<HAccount>(&rows[0].id)?;
    s.commit().await?;
    let n = s
        .delete_all::<HAccount>()
        .filter(HAccount::BALANCE.ge(2))
        .await?;
    assert_eq!(n, 2);
    s.commit().await?;
    for (row, balance) in rows.iter().zip([1, 2, 3]) {
        let versions = s.history::<HAccount>(&row.id).await?;
        assert_eq!(kinds(&versions), [ChangeKind::Insert, ChangeKind::Delete]);
        assert_eq!(versions[1].value.balance, balance);
        assert_eq!(versions[1].value.name, row.name);
    }
    s.rollback().await?;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM hx_accounts_history").await?,
        6
    );
    Ok(())
}

pub async fn cascaded_children_are_recorded(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let p = s
        .insert(HParent {
            id: 0,
            name: "p".into(),
        })
        .await?;
    let q = s
        .insert(HParent {
            id: 0,
            name: "q".into(),
        })
        .await?;
    let kids = s
        .insert_many(
            [(p.id, "x"), (p.id, "y"), (q.id, "z")]
                .iter()
                .map(|(parent_id, note)| HChild {
                    id: 0,
                    parent_id: *parent_id,
                    note: (*note).into(),
                })
                .collect(),
        )
        .await?;
    let label = s
        .insert(HLabel {
            id: 0,
            owner_id: Some(p.id),
            text: "l".into(),
        })
        .await?;
    s.commit().await?;
    // By the flush, then by a bulk delete.
    s.delete_by_key::<HParent>(&p.id)?;
    s.commit().await?;
    assert_eq!(s.delete_all::<HParent>().await?, 1);
    s.commit().await?;
    for kid in &kids {
        let versions = s.history::<HChild>(&kid.id).await?;
        assert_eq!(kinds(&versions), [ChangeKind::Insert, ChangeKind::Delete]);
        assert_eq!(versions[1].value, *kid);
    }
    let x = s.history::<HChild>(&kids[0].id).await?;
    let pv = s.history::<HParent>(&p.id).await?;
    assert_eq!(
        x[1].revision.id, pv[1].revision.id,
        "in the parent's revision"
    );
    // Nulled by SET NULL: an update, with the foreign key NULL.
    let l = s.history::<HLabel>(&label.id).await?;
    assert_eq!(kinds(&l), [ChangeKind::Insert, ChangeKind::Update]);
    assert_eq!(l[1].value.owner_id, None);
    assert_eq!(l[1].changed, ["owner_id"]);
    assert_eq!(l[1].revision.id, pv[1].revision.id);
    s.rollback().await?;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM hx_children").await?, 0);
    Ok(())
}

pub async fn rollback_leaves_no_revision(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    s.set_actor("nobody");
    let a = s.insert(account("a", 1)).await?;
    s.add(HKv {
        k: "k".into(),
        v: 1,
    })?;
    s.flush().await?;
    assert_eq!(s.history::<HAccount>(&a.id).await?.len(), 1, "own writes");
    s.rollback().await?;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM hx_accounts_history").await?,
        0
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM hx_kv_history").await?, 0);
    // The actor went with the transaction.
    s.insert(account("b", 2)).await?;
    s.commit().await?;
    let b = s.query::<HAccount>().one().await?;
    let v = s.history::<HAccount>(&b.id).await?;
    assert_eq!(v[0].revision.actor, None);
    Ok(())
}

pub async fn insert_many_and_upsert_are_recorded(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let rows = s
        .insert_many((0..5).map(|i| account(&format!("n{i}"), i)).collect())
        .await?;
    s.upsert(HKv {
        k: "a".into(),
        v: 1,
    })
    .await?;
    s.commit().await?;
    s.upsert(HKv {
        k: "a".into(),
        v: 2,
    })
    .await?;
    s.commit().await?;
    for r in &rows {
        let v = s.history::<HAccount>(&r.id).await?;
        assert_eq!(kinds(&v), [ChangeKind::Insert]);
        assert_eq!(v[0].value, *r);
    }
    let kv = s.history::<HKv>(&"a".to_string()).await?;
    assert_eq!(kinds(&kv), [ChangeKind::Insert, ChangeKind::Update]);
    let vs: Vec<i64> = kv.iter().map(|v| v.value.v).collect();
    assert_eq!(vs, [1, 2]);
    Ok(())
}

pub async fn one_revision_per_transaction_with_actor_and_info(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let mut a = s.insert(account("a", 1)).await?;
    // Set after the first write: stored all the same.
    s.set_actor("alice");
    a.balance = 2;
    s.update(&mut a)?;
    s.flush().await?;
    let mut a = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    a.balance = 3;
    s.update(&mut a)?;
    s.flush().await?;
    s.set_revision_info(r#"{"request":"r-1"}"#);
    s.commit().await?;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        1
    );
    let v = s.history::<HAccount>(&a.id).await?;
    // One version per row and revision: the last state, still an insert.
    assert_eq!(kinds(&v), [ChangeKind::Insert]);
    assert_eq!((v[0].value.balance, v[0].value.version), (3, 3));
    assert_eq!(v[0].revision.actor.as_deref(), Some("alice"));
    assert_eq!(v[0].revision.info.as_deref(), Some(r#"{"request":"r-1"}"#));
    let r = s.revision(v[0].revision.id).await?.ok_or(Error::NotFound)?;
    assert_eq!(r, v[0].revision);
    assert_eq!(s.revision(r.id + 100).await?, None);
    Ok(())
}

pub async fn as_of_every_revision_and_between(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let a = s.insert(account("a", 1)).await?;
    s.commit().await?;
    for balance in [2, 3] {
        let mut cur = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
        cur.balance = balance;
        s.update(&mut cur)?;
        s.commit().await?;
    }
    let last = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    s.delete(&last)?;
    s.commit().await?;
    let versions = s.history::<HAccount>(&a.id).await?;
    assert_eq!(versions.len(), 4);
    let expect = [Some(1), Some(2), Some(3), None];
    for (v, want) in versions.iter().zip(expect) {
        let got = s
            .as_of::<HAccount>(&a.id, At::Revision(v.revision.id))
            .await?;
        assert_eq!(
            got.map(|r| r.balance),
            want,
            "at revision {}",
            v.revision.id
        );
        let at = s
            .as_of::<HAccount>(&a.id, At::Time(v.revision.committed_at))
            .await?;
        assert_eq!(at.map(|r| r.balance), want);
    }
    for pair in versions.windows(2) {
        let (t0, t1) = (pair[0].revision.committed_at, pair[1].revision.committed_at);
        if t1 - t0 > chrono::Duration::microseconds(1) {
            let mid = t0 + (t1 - t0) / 2;
            let got = s.as_of::<HAccount>(&a.id, At::Time(mid)).await?;
            assert_eq!(got.map(|r| r.balance), Some(pair[0].value.balance));
        }
    }
    let before = versions[0].revision.committed_at - chrono::Duration::seconds(1);
    assert_eq!(s.as_of::<HAccount>(&a.id, At::Time(before)).await?, None);
    let missing = s.as_of::<HAccount>(&a.id, At::Revision(-5)).await;
    assert!(matches!(missing, Err(Error::NotFound)), "{missing:?}");
    Ok(())
}

pub async fn revision_changes_span_three_entities(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let a = s.insert(account("a", 1)).await?;
    let p = s
        .insert(HParent {
            id: 0,
            name: "p".into(),
        })
        .await?;
    s.commit().await?;
    let mut a = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    a.balance = 9;
    s.update(&mut a)?;
    s.delete_by_key::<HParent>(&p.id)?;
    s.add(HKv {
        k: "x".into(),
        v: 1,
    })?;
    s.commit().await?;
    let rev = s.history::<HKv>(&"x".to_string()).await?[0].revision.id;
    let changes = s.revision_changes(rev).await?;
    let got: Vec<(&str, &str, ChangeKind)> = changes
        .iter()
        .map(|c| (c.table.as_str(), c.key.as_str(), c.kind))
        .collect();
    let (aid, pid) = (a.id.to_string(), p.id.to_string());
    assert_eq!(
        got,
        [
            ("hx_accounts", aid.as_str(), ChangeKind::Update),
            ("hx_kv", "x", ChangeKind::Insert),
            ("hx_parents", pid.as_str(), ChangeKind::Delete),
        ]
    );
    assert!(s.revision_changes(rev + 100).await?.is_empty());
    Ok(())
}

pub async fn restore_updated_and_deleted_rows(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let a = s.insert(account("a", 1)).await?;
    s.commit().await?;
    let mut cur = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    cur.name = "changed".into();
    cur.balance = 50;
    s.update(&mut cur)?;
    s.commit().await?;
    let first = s.history::<HAccount>(&a.id).await?[0].revision.id;

    // An updated row: back to its first version, with the next version.
    let restored = s.restore_version::<HAccount>(&a.id, first).await?;
    assert_eq!((restored.name.as_str(), restored.balance), ("a", 1));
    assert_eq!(restored.version, 3);
    s.commit().await?;
    let s2 = db.session().await?;
    assert_eq!(s2.find::<HAccount>(&a.id).await?, Some(restored.clone()));
    let v = s2.history::<HAccount>(&a.id).await?;
    assert_eq!(
        kinds(&v),
        [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Update]
    );
    assert_eq!(v[2].value, restored);
    s2.rollback().await?;

    // A deleted row comes back with its key, as an insert.
    let gone = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    s.delete(&gone)?;
    s.commit().await?;
    let v = s.history::<HAccount>(&a.id).await?;
    let err = s
        .restore_version::<HAccount>(&a.id, v[3].revision.id)
        .await
        .expect_err("a delete");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let back = s
        .restore_version::<HAccount>(&a.id, v[1].revision.id)
        .await?;
    assert_eq!(
        (back.id, back.name.as_str(), back.version),
        (a.id, "changed", 4)
    );
    s.commit().await?;
    // The session holds it like any row: a later update checks its version.
    let mut held = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    held.balance = 51;
    s.update(&mut held)?;
    s.commit().await?;
    let v = s.history::<HAccount>(&a.id).await?;
    assert_eq!(v.len(), 6);
    assert_eq!(v[4].kind, ChangeKind::Insert);
    assert_eq!((v[5].value.balance, v[5].value.version), (51, 5));
    s.rollback().await?;
    Ok(())
}

pub async fn audited_flush_sends_one_history_statement(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let plain = |i: i64| HPlain {
        id: 0,
        name: format!("n{i}"),
        balance: i,
        version: 0,
    };
    let s = db.session().await?;
    s.add_many((0..100).map(plain).collect())?;
    let before = s.statement_count();
    s.flush().await?;
    let plain_flush = s.statement_count() - before;
    let before = s.statement_count();
    s.commit().await?;
    assert_eq!(s.statement_count() - before, 0);

    let before = s.statement_count();
    s.add_many((0..100).map(|i| account(&format!("n{i}"), i)).collect())?;
    s.flush().await?;
    // The plain statements, the revision row, one history INSERT … SELECT.
    assert_eq!(s.statement_count() - before, plain_flush + 2);
    let before = s.statement_count();
    s.add_many((0..100).map(|i| account(&format!("m{i}"), i)).collect())?;
    s.flush().await?;
    assert_eq!(
        s.statement_count() - before,
        plain_flush + 1,
        "same revision"
    );
    let before = s.statement_count();
    s.commit().await?;
    // The revision completed at commit.
    assert_eq!(s.statement_count() - before, 1);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM hx_accounts_history").await?,
        200
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        1
    );
    Ok(())
}

pub async fn composite_keys_and_savepoints(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let line = |order_id, line, qty| HLine {
        order_id,
        line,
        qty,
    };
    s.add_many(vec![line(1, 1, 5), line(1, 2, 6), line(2, 1, 7)])?;
    s.commit().await?;
    // The transaction's first audited write, in a savepoint rolled back:
    // the revision row goes with it, and commit writes it again.
    let sp = s.savepoint().await?;
    s.delete_by_key::<HLine>(&(1, 2))?;
    s.flush().await?;
    sp.rollback().await?;
    let n = s
        .update_all::<HLine>()
        .set_expr(HLine::QTY, HLine::QTY.add(1))
        .filter(HLine::ORDER_ID.eq(1))
        .await?;
    assert_eq!(n, 2);
    s.commit().await?;
    let v = s.history::<HLine>(&(1, 2)).await?;
    assert_eq!(kinds(&v), [ChangeKind::Insert, ChangeKind::Update]);
    assert_eq!(v[1].value.qty, 7);
    let changes = s.revision_changes(v[1].revision.id).await?;
    let got: Vec<(&str, ChangeKind)> = changes.iter().map(|c| (c.key.as_str(), c.kind)).collect();
    assert_eq!(
        got,
        [
            ("(1, 1)", ChangeKind::Update),
            ("(1, 2)", ChangeKind::Update)
        ]
    );
    assert!(s.revision(v[1].revision.id).await?.is_some());
    assert_eq!(s.history::<HLine>(&(2, 1)).await?.len(), 1);
    s.rollback().await?;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        2
    );
    Ok(())
}

pub async fn autocommit_session_refuses_audited_writes(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let w = db.session_with(SessionOptions::new().autocommit()).await?;
    let refused = |r: Result<(), Error>| assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    refused(w.insert(account("a", 1)).await.map(drop));
    refused(
        w.upsert(HKv {
            k: "k".into(),
            v: 1,
        })
        .await
        .map(drop),
    );
    refused(
        w.update_all::<HAccount>()
            .set(HAccount::BALANCE, 2)
            .await
            .map(drop),
    );
    refused(w.delete_all::<HParent>().await.map(drop));
    // Not audited: one statement, as ever.
    w.insert(HPlain {
        id: 0,
        name: "p".into(),
        balance: 1,
        version: 0,
    })
    .await?;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM hx_accounts").await?, 0);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM persist_revision").await?,
        0
    );
    Ok(())
}

/// The row, its history rows and its revision, read in one statement (one
/// snapshot).
async fn kv_state(db: &Db, n: usize) -> Result<(i64, i64, i64), Error> {
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM hx_kv WHERE k = 'k{n}'), \
         (SELECT COUNT(*) FROM hx_kv_history WHERE k = 'k{n}'), \
         (SELECT COUNT(*) FROM persist_revision WHERE actor = 'r{n}')"
    );
    let s = db.session().await?;
    let got = s
        .raw_as::<(i64, i64, i64)>(AssertSqlSafe(sql))
        .one()
        .await?;
    s.rollback().await?;
    Ok(got)
}

pub async fn cut_audited_commit_at_every_poll(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let mut cuts = 0;
    for polls in 1..2000 {
        let s = db.session().await?;
        s.set_actor(format!("r{polls}"));
        s.add(HKv {
            k: format!("k{polls}"),
            v: polls as i64,
        })?;
        match cut_after(polls, Duration::ZERO, s.commit()).await {
            Cut::Completed(r) => {
                r?;
                assert_eq!(kv_state(&db, polls).await?, (1, 1, 1));
                // SQLite's direct path and a loaded MariaDB or sqlx driver can
                // finish within one poll; PostgreSQL always leaves one pending.
                assert!(
                    cuts > 0 || db.backend() != persist_core::sql::Backend::Postgres,
                    "never cut"
                );
                return Ok(());
            }
            Cut::Cut => cuts += 1,
        }
        // All or nothing, and the session is usable after a rollback.
        s.rollback().await?;
        let state = kv_state(&db, polls).await?;
        assert!(
            state == (0, 0, 0) || state == (1, 1, 1),
            "cut at poll {polls}: {state:?}"
        );
        s.find::<HKv>(&format!("k{polls}")).await?;
        s.rollback().await?;
    }
    panic!("commit never completed");
}

pub async fn cut_history_reads_and_restore_at_every_poll(db: Db) -> TestResult {
    db.create_tables::<Tables>().await?;
    let s = db.session().await?;
    let a = s.insert(account("a", 1)).await?;
    s.commit().await?;
    let mut cur = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
    cur.balance = 2;
    s.update(&mut cur)?;
    s.commit().await?;
    let versions = s.history::<HAccount>(&a.id).await?;
    let (r1, r2) = (versions[0].revision.id, versions[1].revision.id);
    s.rollback().await?;
    let rows = "SELECT COUNT(*) FROM hx_accounts_history";

    // Reads: cut anywhere, the session answers the same afterwards.
    macro_rules! sweep_read {
        ($s:ident => $fut:expr, $check:expr) => {
            for polls in 1..500 {
                let $s = db.session().await?;
                match cut_after(polls, Duration::ZERO, $fut).await {
                    Cut::Completed(r) => {
                        let check = $check;
                        check(r?);
                        break;
                    }
                    Cut::Cut => {
                        assert_eq!($s.history::<HAccount>(&a.id).await?.len(), 2);
                        $s.rollback().await?;
                    }
                }
            }
        };
    }
    sweep_read!(s => s.history::<HAccount>(&a.id), |v: Vec<Version<HAccount>>| {
        assert_eq!(v.len(), 2)
    });
    sweep_read!(s => s.as_of::<HAccount>(&a.id, At::Revision(r1)), |v: Option<HAccount>| {
        assert_eq!(v.map(|v| v.balance), Some(1))
    });
    sweep_read!(s => s.revision_changes(r2), |v: Vec<persist_core::query::RevisionChange>| {
        assert_eq!(v.len(), 1)
    });
    sweep_read!(s => s.revision(r2), |v: Option<persist_core::query::Revision>| {
        assert_eq!(v.map(|r| r.id), Some(r2))
    });

    // The restore: cut, nothing of it stays; completed, it is all there.
    let mut cuts = 0;
    for polls in 1..2000 {
        let s = db.session().await?;
        match cut_after(
            polls,
            Duration::ZERO,
            s.restore_version::<HAccount>(&a.id, r1),
        )
        .await
        {
            Cut::Completed(r) => {
                assert_eq!(r?.balance, 1);
                s.commit().await?;
                // SQLite's direct path and a loaded MariaDB or sqlx driver can
                // finish within one poll; PostgreSQL always leaves one pending.
                assert!(
                    cuts > 0 || db.backend() != persist_core::sql::Backend::Postgres,
                    "never cut"
                );
                assert_eq!(count(&db, rows).await?, 3);
                let s = db.session().await?;
                let now = s.find::<HAccount>(&a.id).await?.ok_or(Error::NotFound)?;
                assert_eq!((now.balance, now.version), (1, 3));
                return Ok(());
            }
            Cut::Cut => cuts += 1,
        }
        // Cut in its read, the session goes on (with nothing written); cut
        // in its write, it has failed.
        match s.commit().await {
            Ok(()) | Err(Error::SessionFailed) => {}
            Err(e) => panic!("cut at poll {polls}: {e:?}"),
        }
        s.rollback().await?;
        assert_eq!(count(&db, rows).await?, 2, "cut at poll {polls}");
    }
    panic!("restore never completed");
}
