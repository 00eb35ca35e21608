//! A flush that updates many rows of one table setting the same columns
//! sends them together (PostgreSQL `UPDATE … FROM (VALUES …)`, SQLite
//! `WITH … UPDATE … FROM`, MySQL `CASE` after a locking read), and still
//! finds each stale row by its own key.

use std::time::Duration;

use persist_core::prelude::*;
use persist_core::sql::Backend;
use persist_core::sqlx::AssertSqlSafe;

use crate::common::TestResult;
use crate::faults::cut::{Cut, cut_after};
use crate::model::{AccountKind, AllTypes, OrderLine};

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "bu_rows")]
pub struct BRow {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    pub n: i64,
    #[persist(version)]
    pub version: i64,
}

/// `count` committed rows named `r<i>`, `n = i`, in id order.
async fn seed(db: &Db, count: usize) -> Result<Vec<BRow>, Error> {
    db.create_tables::<BRow>().await?;
    let s = db.session().await?;
    let rows = (0..count)
        .map(|i| BRow {
            id: 0,
            name: format!("r{i}"),
            n: i as i64,
            version: 0,
        })
        .collect::<Vec<_>>();
    let mut rows = s.insert_many(rows).await?;
    s.commit().await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Every row, in id order, read in a session of its own.
async fn stored(db: &Db) -> Result<Vec<BRow>, Error> {
    let s = db.session().await?;
    let mut rows = s.all::<BRow>().await?;
    s.rollback().await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

fn assert_stale<T: std::fmt::Debug>(r: Result<T, Error>, table: &str, want: &str) {
    match r {
        Err(Error::Stale { table: t, key }) => {
            assert_eq!((t.as_str(), key.as_str()), (table, want), "stale row");
        }
        other => panic!("expected Stale for {want}, got {other:?}"),
    }
}

/// Statements of a batched update of `rows` rows: one on PostgreSQL and
/// SQLite; on MySQL a locking read and a `CASE` update per 200 rows.
fn batch_statements(db: &Db, rows: u64) -> u64 {
    match db.backend() {
        Backend::MySql => 2 * rows.div_ceil(200),
        _ => 1,
    }
}

pub async fn many_updates_are_one_statement(db: Db) -> TestResult {
    let rows = seed(&db, 1_000).await?;
    let s = db.session().await?;
    let mut loaded = s.all::<BRow>().await?;
    assert_eq!(loaded.len(), 1_000);
    for r in &mut loaded {
        r.n += 1_000;
        s.update(r)?;
    }
    let before = s.statement_count();
    s.flush().await?;
    assert_eq!(
        s.statement_count() - before,
        batch_statements(&db, 1_000),
        "1,000 updates of one column"
    );
    // Two sets of changed columns: two batches.
    for (i, r) in loaded.iter_mut().enumerate() {
        if i % 2 == 0 {
            r.name.push('!');
        } else {
            r.n += 1;
        }
        s.update(r)?;
    }
    let before = s.statement_count();
    s.commit().await?;
    assert_eq!(
        s.statement_count() - before,
        2 * batch_statements(&db, 500),
        "500 name changes and 500 n changes"
    );
    let after = stored(&db).await?;
    assert_eq!(after.len(), 1_000);
    for (i, (old, new)) in rows.iter().zip(&after).enumerate() {
        assert_eq!(new.id, old.id);
        assert_eq!(new.version, 3, "two flushes, two bumps");
        if i % 2 == 0 {
            assert_eq!((new.name.clone(), new.n), (format!("r{i}!"), old.n + 1_000));
        } else {
            assert_eq!((new.name.clone(), new.n), (old.name.clone(), old.n + 1_001));
        }
    }
    Ok(())
}

pub async fn stale_rows_are_found_by_key(db: Db) -> TestResult {
    let rows = seed(&db, 10).await?;
    // Rows 3 and 7 change under the copies held below; row 5 disappears.
    let other = db.session().await?;
    for i in [3usize, 7] {
        let mut r = other
            .find::<BRow>(&rows[i].id)
            .await?
            .ok_or(Error::NotFound)?;
        r.n = -1;
        other.update(&mut r)?;
    }
    other.delete_by_key::<BRow>(&rows[5].id)?;
    other.commit().await?;

    let s = db.session().await?;
    for r in &rows {
        let mut r = r.clone();
        r.n += 100;
        s.update(&mut r)?;
    }
    let before = s.statement_count();
    assert_stale(s.flush().await, "bu_rows", &rows[3].id.to_string());
    assert!(
        s.statement_count() - before <= batch_statements(&db, 10),
        "still one batch"
    );
    s.rollback().await?;
    let after = stored(&db).await?;
    assert_eq!(after.len(), 9);
    assert!(
        after
            .iter()
            .all(|r| r.n == -1 || rows.iter().any(|o| o.id == r.id && o.n == r.n)),
        "nothing of the failed flush is left: {after:?}"
    );

    // Without the two changed rows, the gone one is stale by its key.
    let s = db.session().await?;
    for i in [0usize, 1, 5, 9] {
        let mut r = rows[i].clone();
        r.n += 100;
        s.update(&mut r)?;
    }
    assert_stale(s.commit().await, "bu_rows", &rows[5].id.to_string());
    s.rollback().await?;

    // Fresh copies write; the other rows keep their values.
    let s = db.session().await?;
    let mut fresh = s.all::<BRow>().await?;
    for r in &mut fresh {
        r.n += 100;
        s.update(r)?;
    }
    s.commit().await?;
    let after = stored(&db).await?;
    assert_eq!(after.len(), 9);
    for r in &after {
        let was = rows.iter().position(|o| o.id == r.id).expect("kept row");
        let base = if was == 3 || was == 7 { -1 } else { was as i64 };
        let version = if was == 3 || was == 7 { 3 } else { 2 };
        assert_eq!((r.n, r.version), (base + 100, version), "row {was}");
    }
    Ok(())
}

pub async fn every_type_in_a_batch(db: Db) -> TestResult {
    db.create_tables::<AllTypes>().await?;
    let s = db.session().await?;
    let mut rows = Vec::new();
    for i in 0..3 {
        let mut v = crate::types::sample();
        v.a_i64 = i;
        rows.push(v);
    }
    s.insert_many(rows).await?;
    s.commit().await?;

    let s = db.session().await?;
    let mut loaded = s.all::<AllTypes>().await?;
    assert_eq!(loaded.len(), 3);
    for v in &mut loaded {
        v.a_i8 = 1;
        v.a_i16 = 2;
        v.a_i32 = 3;
        v.a_u8 = 4;
        v.a_u16 = 5;
        v.a_u32 = 6;
        v.a_u64 = 7;
        v.a_f32 = -0.5;
        v.a_f64 = 1e-300;
        v.a_bool = false;
        v.a_string = format!("changed {}", v.a_i64);
        v.a_bytes = vec![255, 0, 9];
        v.opt_none = Some("now set".into());
        v.opt_some = None;
        v.opt_int = None;
        v.opt_uuid = Some(uuid::Uuid::from_u128(v.a_i64 as u128 + 1));
        v.ts_utc += chrono::Duration::days(1);
        v.ts_naive += chrono::Duration::days(1);
        v.a_date = chrono::NaiveDate::from_ymd_opt(2030, 6, 1).expect("valid");
        v.a_time = chrono::NaiveTime::from_hms_micro_opt(1, 2, 3, 4).expect("valid");
        v.a_uuid = uuid::Uuid::from_u128(42);
        v.a_json = serde_json::json!({"v": v.a_i64});
        v.prefs.alerts = false;
        v.opt_prefs = Some(v.prefs.clone());
        v.kind = AccountKind::Checking;
        s.update(v)?;
    }
    let before = s.statement_count();
    s.commit().await?;
    assert_eq!(
        s.statement_count() - before,
        batch_statements(&db, 3),
        "three rows, every column, one batch"
    );
    let s = db.session().await?;
    let mut after = s.all::<AllTypes>().await?;
    s.rollback().await?;
    after.sort_by_key(|v| v.a_i64);
    loaded.sort_by_key(|v| v.a_i64);
    assert_eq!(after, loaded);
    Ok(())
}

pub async fn composite_keys_in_a_batch(db: Db) -> TestResult {
    db.create_tables::<OrderLine>().await?;
    let s = db.session().await?;
    let lines = (1..=5)
        .map(|n| OrderLine {
            order_id: 7,
            line_no: n,
            sku: format!("s{n}"),
            qty: n as u32,
        })
        .collect::<Vec<_>>();
    s.insert_many(lines.clone()).await?;
    s.commit().await?;

    // Line 4 is deleted under the copies held below.
    let other = db.session().await?;
    other.delete_by_key::<OrderLine>(&(7, 4))?;
    other.commit().await?;

    let s = db.session().await?;
    for l in &lines {
        let mut l = l.clone();
        l.qty += 10;
        s.update(&mut l)?;
    }
    match s.flush().await {
        Err(Error::Stale { table, key }) => {
            assert_eq!(table, "order_lines");
            assert!(key.contains('4'), "the deleted line's key: {key}");
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    s.rollback().await?;

    let s = db.session().await?;
    for l in lines.iter().filter(|l| l.line_no != 4) {
        let mut l = l.clone();
        l.qty += 10;
        s.update(&mut l)?;
    }
    let before = s.statement_count();
    s.commit().await?;
    // MySQL batches single-column keys only.
    let want = if db.backend() == Backend::MySql { 4 } else { 1 };
    assert_eq!(s.statement_count() - before, want);
    let s = db.session().await?;
    let mut after = s.all::<OrderLine>().await?;
    s.rollback().await?;
    after.sort_by_key(|l| l.line_no);
    let qty: Vec<(i32, u32)> = after.iter().map(|l| (l.line_no, l.qty)).collect();
    assert_eq!(qty, vec![(1, 11), (2, 12), (3, 13), (5, 15)]);
    Ok(())
}

/// How many rows carry `n >= 1000` (the batch below wrote them).
async fn written(db: &Db) -> Result<i64, Error> {
    let s = db.session().await?;
    let n = s
        .raw_as::<(i64,)>(AssertSqlSafe(
            "SELECT COUNT(*) FROM bu_rows WHERE n >= 1000".to_owned(),
        ))
        .one()
        .await?
        .0;
    s.rollback().await?;
    Ok(n)
}

pub async fn cut_batched_commit_at_every_poll(db: Db) -> TestResult {
    seed(&db, 50).await?;
    let mut cuts = 0;
    for polls in 1..2000 {
        let s = db.session().await?;
        let mut rows = s.all::<BRow>().await?;
        for r in &mut rows {
            r.n += 1_000;
            s.update(r)?;
        }
        match cut_after(polls, Duration::ZERO, s.commit()).await {
            Cut::Completed(r) => {
                r?;
                assert_eq!(written(&db).await?, 50);
                assert!(cuts > 0 || db.backend() != Backend::Postgres, "never cut");
                return Ok(());
            }
            Cut::Cut => cuts += 1,
        }
        s.rollback().await?;
        let n = written(&db).await?;
        assert!(n == 0 || n == 50, "cut at poll {polls}: {n} rows written");
        if n == 50 {
            return Ok(());
        }
    }
    panic!("commit never completed");
}
