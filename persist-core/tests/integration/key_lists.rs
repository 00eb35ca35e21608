//! Lists of keys: the loaders, `find_many` and `is_in` answer the right
//! rows for lists of 0, 1, 3 and thousands of keys, with duplicates and
//! `NULL`s; on PostgreSQL a single-column list is one array bind
//! (`= ANY($1)`, one statement whatever its length), elsewhere `IN (…)`.

use persist_core::prelude::*;
use persist_core::sql::Backend;

use crate::common::TestResult;
use crate::uow::{SqlLog, statements_of};

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "kl_shelves")]
#[persist(has_many(KlItem, by = "shelf_code"))]
pub struct KlShelf {
    #[persist(primary_key)]
    pub code: String,
    pub n: i64,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "kl_items")]
#[persist(many_to_many(KlLabel, through = "KlItemLabel", by = "item_id", to = "label_id"))]
pub struct KlItem {
    #[persist(primary_key, auto_increment)]
    pub id: i32,
    #[persist(references = "KlShelf")]
    pub shelf_code: String,
    pub rank: Option<i64>,
    #[persist(references = "KlLabel")]
    pub best_label: Option<i64>,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "kl_labels")]
pub struct KlLabel {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "kl_item_labels")]
pub struct KlItemLabel {
    #[persist(primary_key, references = "KlItem")]
    pub item_id: i32,
    #[persist(primary_key, references = "KlLabel")]
    pub label_id: i64,
}

/// More keys than one `IN` list of the old form took (10 000).
const MANY: usize = 12_000;

fn code(i: usize) -> String {
    format!("s{i:05}")
}

/// `MANY` shelves; shelf i < 300 holds i % 3 items; item j has rank j % 4
/// (`NULL` for 0), its best label j % 3 (`NULL` for 0), and labels
/// 0..(j % 3).
async fn seed(db: &Db) -> Result<(Vec<KlLabel>, Vec<KlItem>), Error> {
    db.create_tables::<(KlShelf, KlLabel, KlItem, KlItemLabel)>()
        .await?;
    let s = db.session().await?;
    s.insert_many(
        (0..MANY)
            .map(|i| KlShelf {
                code: code(i),
                n: i as i64,
            })
            .collect(),
    )
    .await?;
    let labels = s
        .insert_many(
            (0..3)
                .map(|i| KlLabel {
                    id: 0,
                    name: format!("l{i}"),
                })
                .collect(),
        )
        .await?;
    // Items inserted from the last shelf down, so that key order and
    // insertion order differ from shelf order.
    let items: Vec<KlItem> = (0..300)
        .rev()
        .flat_map(|i| (0..i % 3).map(move |_| i))
        .enumerate()
        .map(|(j, i)| KlItem {
            id: 0,
            shelf_code: code(i),
            rank: (j % 4 != 0).then_some((j % 4) as i64),
            best_label: (j % 3 != 0).then(|| labels[j % 3].id),
        })
        .collect();
    let items = s.insert_many(items).await?;
    let links: Vec<KlItemLabel> = items
        .iter()
        .enumerate()
        .flat_map(|(j, it)| {
            labels[..j % 3].iter().rev().map(|l| KlItemLabel {
                item_id: it.id,
                label_id: l.id,
            })
        })
        .collect();
    s.insert_many(links).await?;
    s.commit().await?;
    Ok((labels, items))
}

/// Every `SELECT` `log` saw names its list the backend's way.
fn assert_list_form(b: Backend, sql: &[String]) {
    let selects: Vec<&String> = sql.iter().filter(|q| q.starts_with("SELECT")).collect();
    assert!(!selects.is_empty(), "statements were captured: {sql:?}");
    for q in selects {
        if b == Backend::Postgres {
            assert!(q.contains("= ANY($1)") && !q.contains(" IN ("), "{q}");
        } else {
            assert!(q.contains(" IN (") && !q.contains("ANY("), "{q}");
        }
    }
}

fn shelves_of(codes: &[usize]) -> Vec<KlShelf> {
    codes
        .iter()
        .map(|i| KlShelf {
            code: code(*i),
            n: *i as i64,
        })
        .collect()
}

pub async fn loaders_take_lists_of_every_length(db: Db) -> TestResult {
    let (_, all_items) = seed(&db).await?;
    let b = db.backend();
    let s = db.session().await?;
    let log = SqlLog::new();
    let items_of = |i: usize| -> Vec<i32> {
        let c = code(i);
        let mut ids: Vec<i32> = all_items
            .iter()
            .filter(|it| it.shelf_code == c)
            .map(|it| it.id)
            .collect();
        ids.sort();
        ids
    };

    // 0, 1 and 3 parents (one twice, one without items) and every shelf.
    let every: Vec<usize> = (0..MANY).collect();
    for parents in [vec![], vec![2], vec![5, 4, 5], every] {
        let shelves = shelves_of(&parents);
        let (groups, n) = statements_of(&s, log.run(shelves.load::<KlItem>(&s))).await;
        let groups = groups?;
        assert_eq!(groups.len(), parents.len());
        for (i, g) in parents.iter().zip(&groups) {
            let ids: Vec<i32> = g.iter().map(|it| it.id).collect();
            assert_eq!(ids, items_of(*i), "items of shelf {i}, in key order");
        }
        let expected = match (parents.len(), b) {
            (0, _) => 0,
            (_, Backend::Postgres) => 1,
            (n, _) => n.div_ceil(10_000) as u64,
        };
        assert_eq!(n, expected, "{} parents", parents.len());
    }
    assert_list_form(b, &log.take());

    // Belongs-to through a text key (many children share a parent) and
    // through a nullable key.
    let (parents, n) = statements_of(&s, log.run(all_items.load_parents::<KlShelf>(&s))).await;
    let parents = parents?;
    assert_eq!(n, 1);
    for (it, p) in all_items.iter().zip(&parents) {
        assert_eq!(p.as_ref().map(|p| &p.code), Some(&it.shelf_code));
    }
    let best = s
        .load_parents_by::<KlLabel, _, _>(KlItem::BEST_LABEL, &all_items)
        .await?;
    for (it, l) in all_items.iter().zip(&best) {
        assert_eq!(l.as_ref().map(|l| l.id), it.best_label);
    }
    assert!(best.iter().any(Option::is_none) && best.iter().any(Option::is_some));

    // Many-to-many, groups in the label key order.
    let few = [
        all_items[4].clone(),
        all_items[2].clone(),
        all_items[4].clone(),
    ];
    let (labels, n) = statements_of(&s, log.run(few.load::<KlLabel>(&s))).await;
    let labels = labels?;
    assert_eq!(n, 1);
    let counts: Vec<usize> = labels.iter().map(Vec::len).collect();
    assert_eq!(counts, [1, 2, 1]);
    for g in &labels {
        assert!(g.windows(2).all(|w| w[0].id < w[1].id), "{g:?}");
    }
    let all_labels = all_items.load::<KlLabel>(&s).await?;
    let links: usize = all_labels.iter().map(Vec::len).sum();
    assert_eq!(links, (0..all_items.len()).map(|j| j % 3).sum::<usize>());
    assert_list_form(b, &log.take());
    s.rollback().await?;
    Ok(())
}

pub async fn find_many_and_is_in_take_lists_of_every_length(db: Db) -> TestResult {
    let (_, all_items) = seed(&db).await?;
    let b = db.backend();
    let log = SqlLog::new();
    {
        // find_many: missing keys skipped, duplicates once, in the order given.
        let s = db.session().await?;
        let none: Vec<KlShelf> = s.find_many::<KlShelf>(&[]).await?;
        assert!(none.is_empty());
        let keys = [code(7), "nope".to_owned(), code(3), code(7)];
        let (got, n) = statements_of(&s, log.run(s.find_many::<KlShelf>(&keys))).await;
        let got: Vec<i64> = got?.iter().map(|r| r.n).collect();
        assert_eq!(got, [7, 3]);
        assert_eq!(n, 1);
        s.rollback().await?;

        let s = db.session().await?;
        let keys: Vec<String> = (0..MANY).rev().map(code).collect();
        let (got, n) = statements_of(&s, log.run(s.find_many::<KlShelf>(&keys))).await;
        let got = got?;
        assert_eq!(got.len(), MANY);
        assert!(got.iter().rev().enumerate().all(|(i, r)| r.n == i as i64));
        let expected = if b == Backend::Postgres { 1 } else { 2 };
        assert_eq!(n, expected, "{MANY} keys");
        let ids: Vec<i32> = all_items.iter().map(|it| it.id).collect();
        let (got, n) = statements_of(&s, log.run(s.find_many::<KlItem>(&ids[..1]))).await;
        assert_eq!(got?.len(), 1);
        assert_eq!(n, 1);
        assert_list_form(b, &log.take());
        s.rollback().await?;
    }

    let s = db.session().await?;
    let count = |ranks: &[Option<i64>]| {
        all_items
            .iter()
            .filter(|it| it.rank.is_some() && ranks.contains(&it.rank))
            .count()
    };
    // 0, 1, 3 values, duplicates, and thousands of them.
    let empty: Vec<i32> = Vec::new();
    assert!(
        s.query::<KlItem>()
            .filter(KlItem::ID.is_in(empty))
            .all()
            .await?
            .is_empty()
    );
    let one = s
        .query::<KlItem>()
        .filter(KlItem::ID.is_in([all_items[0].id]))
        .all()
        .await?;
    assert_eq!(one, [all_items[0].clone()]);
    let three = [code(10), code(11), code(10)];
    let rows = log
        .run(
            s.query::<KlShelf>()
                .filter(KlShelf::CODE.is_in(three))
                .all(),
        )
        .await?;
    assert_eq!(rows.iter().map(|r| r.n).collect::<Vec<_>>(), [10, 11]);
    let many: Vec<i64> = (0..MANY as i64).filter(|n| n % 2 == 0).collect();
    let rows = log
        .run(s.query::<KlShelf>().filter(KlShelf::N.is_in(many)).count())
        .await?;
    assert_eq!(rows, (MANY / 2) as u64);
    assert_list_form(b, &log.take());

    // A nullable column: a list without NULL, its negation (rows with NULL
    // are in neither), and a list with NULL, which matches no NULL and
    // whose negation matches nothing, on every backend.
    let ranks = [Some(1), Some(3)];
    let hit = s
        .query::<KlItem>()
        .filter(KlItem::RANK.is_in(ranks))
        .count()
        .await?;
    assert_eq!(hit, count(&ranks) as u64);
    let miss = s
        .query::<KlItem>()
        .filter(!KlItem::RANK.is_in(ranks))
        .count()
        .await?;
    assert_eq!(miss, count(&[Some(2)]) as u64);
    let with_null = [Some(1), None];
    let hit = s
        .query::<KlItem>()
        .filter(KlItem::RANK.is_in(with_null))
        .count()
        .await?;
    assert_eq!(hit, count(&[Some(1)]) as u64);
    let miss = s
        .query::<KlItem>()
        .filter(!KlItem::RANK.is_in(with_null))
        .count()
        .await?;
    assert_eq!(miss, 0);

    // Combined filters, and the same on either side of a join.
    let f = KlItem::RANK
        .is_in([Some(2)])
        .or(KlItem::ID.is_in([all_items[0].id]));
    let either = s
        .query::<KlItem>()
        .filter(f.and(KlItem::RANK.is_not_null()))
        .all()
        .await?;
    let expected: Vec<i32> = all_items
        .iter()
        .filter(|it| it.rank == Some(2) || (it.id == all_items[0].id && it.rank.is_some()))
        .map(|it| it.id)
        .collect();
    let mut got: Vec<i32> = either.iter().map(|it| it.id).collect();
    got.sort();
    assert_eq!(got, expected);
    let pairs = log
        .run(
            s.query::<KlShelf>()
                .inner_join::<KlItem>()
                .filter(KlShelf::CODE.is_in([code(1), code(2), code(4)]))
                .filter(KlItem::RANK.is_in([Some(1), Some(2), Some(3)]))
                .all(),
        )
        .await?;
    let expected: Vec<(String, i32)> = {
        let mut v: Vec<(String, i32)> = all_items
            .iter()
            .filter(|it| [code(1), code(2), code(4)].contains(&it.shelf_code) && it.rank.is_some())
            .map(|it| (it.shelf_code.clone(), it.id))
            .collect();
        v.sort();
        v
    };
    let got: Vec<(String, i32)> = pairs.iter().map(|(l, r)| (l.code.clone(), r.id)).collect();
    assert_eq!(got, expected, "join pairs in key order");
    assert_list_form(b, &log.take());

    if b == Backend::Postgres {
        // More values than a statement has binds (65 535): one array.
        let huge: Vec<i64> = (0..70_000).collect();
        let (n, stmts) = statements_of(
            &s,
            s.query::<KlShelf>().filter(KlShelf::N.is_in(huge)).count(),
        )
        .await;
        assert_eq!(n?, MANY as u64);
        assert_eq!(stmts, 1);
    }
    s.rollback().await?;
    Ok(())
}
