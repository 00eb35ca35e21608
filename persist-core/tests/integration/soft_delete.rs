//! Soft delete: `delete` marks a `#[persist(soft_delete)]` row, every read
//! leaves it out, cascades mark the children, `restore` and
//! `delete_permanently`, and the partial unique index of `unique_live`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use persist_cache::InProcessCache;
use persist_core::prelude::*;
use persist_core::query::count_all;
use persist_core::session::Isolation;
use persist_core::sql::Backend;
use persist_core::sqlx::AssertSqlSafe;

use crate::common::{self, TestResult};
use crate::faults::cut::{Cut, cut_after};

// Two relations read alike to clippy, which takes them for one attribute
// written twice.
#[allow(clippy::duplicated_attributes)]
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_authors")]
#[persist(has_many(SdBook, by = "author_id", on_delete = "cascade"))]
#[persist(has_many(SdNote, by = "author_id", on_delete = "cascade"))]
pub struct SdAuthor {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    #[persist(version)]
    pub version: i64,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_books")]
#[persist(has_many(SdChapter, by = "book_id", on_delete = "cascade"))]
pub struct SdBook {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "SdAuthor")]
    pub author_id: i64,
    pub title: String,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_chapters")]
pub struct SdChapter {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "SdBook")]
    pub book_id: i64,
    pub title: String,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A child without a `soft_delete` column: a soft delete of its author
/// leaves it alone.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_notes")]
pub struct SdNote {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "SdAuthor")]
    pub author_id: i64,
    pub body: String,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_members")]
pub struct SdMember {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique_live)]
    pub email: String,
    #[persist(soft_delete)]
    pub deleted_at: Option<chrono::NaiveDateTime>,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_shelves")]
#[persist(many_to_many(SdBook, through = "SdShelving", by = "shelf_id", to = "book_id"))]
pub struct SdShelf {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
}

/// The join entity of shelves and books, itself soft-deleted.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_shelvings")]
pub struct SdShelving {
    #[persist(primary_key, references = "SdShelf")]
    pub shelf_id: i64,
    #[persist(primary_key, references = "SdBook")]
    pub book_id: i64,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A natural key, for upserts.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "sd_tags")]
pub struct SdTag {
    #[persist(primary_key)]
    pub code: String,
    pub uses: i64,
    #[persist(soft_delete)]
    pub deleted_at: Option<DateTime<Utc>>,
}

type Library = (SdAuthor, SdBook, SdChapter, SdNote);

fn author(name: &str) -> SdAuthor {
    SdAuthor {
        id: 0,
        name: name.into(),
        version: 0,
        deleted_at: None,
    }
}

fn book(author_id: i64, title: &str) -> SdBook {
    SdBook {
        id: 0,
        author_id,
        title: title.into(),
        deleted_at: None,
    }
}

fn chapter(book_id: i64, title: &str) -> SdChapter {
    SdChapter {
        id: 0,
        book_id,
        title: title.into(),
        deleted_at: None,
    }
}

/// An author with two books of two chapters each and a note, committed.
struct Seeded {
    author: SdAuthor,
    books: Vec<SdBook>,
    chapters: Vec<SdChapter>,
    note: SdNote,
}

async fn seed(db: &Db, name: &str) -> Result<Seeded, Error> {
    let s = db.session().await?;
    let a = s.insert(author(name)).await?;
    let books = s
        .insert_many(vec![book(a.id, "b1"), book(a.id, "b2")])
        .await?;
    let mut chapters = Vec::new();
    for b in &books {
        chapters.extend(
            s.insert_many(vec![chapter(b.id, "c1"), chapter(b.id, "c2")])
                .await?,
        );
    }
    let note = s
        .insert(SdNote {
            id: 0,
            author_id: a.id,
            body: "n".into(),
        })
        .await?;
    s.commit().await?;
    Ok(Seeded {
        author: a,
        books,
        chapters,
        note,
    })
}

/// Rows of the tables (soft-deleted or not, and soft-deleted), read with
/// raw SQL, which soft delete does not filter.
async fn raw_counts(db: &Db) -> Result<[(i64, i64); 3], Error> {
    let s = db.session().await?;
    let mut out = [(0, 0); 3];
    out[0] = (
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_authors")
            .one()
            .await?,
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_authors WHERE deleted_at IS NOT NULL")
            .one()
            .await?,
    );
    out[1] = (
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_books")
            .one()
            .await?,
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_books WHERE deleted_at IS NOT NULL")
            .one()
            .await?,
    );
    out[2] = (
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_chapters")
            .one()
            .await?,
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_chapters WHERE deleted_at IS NOT NULL")
            .one()
            .await?,
    );
    s.commit().await?;
    Ok(out)
}

pub async fn delete_marks_the_row_and_every_read_hides_it(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let gone = seed(&db, "gone").await?;
    let kept = seed(&db, "kept").await?;
    let doomed = gone.books[0].clone();

    let s = db.session().await?;
    s.delete(&doomed)?;
    let before = s.statement_count();
    s.flush().await?;
    // One UPDATE of the book, one of its chapters.
    assert_eq!(s.statement_count() - before, 2);
    s.commit().await?;

    // The row is still there, marked.
    let s = db.session().await?;
    let marked: Option<DateTime<Utc>> = s
        .raw_as::<Option<DateTime<Utc>>>(
            "SELECT deleted_at FROM sd_books WHERE title = 'b1' AND deleted_at IS NOT NULL",
        )
        .one()
        .await?;
    assert!(marked.is_some());
    s.commit().await?;
    assert_eq!(raw_counts(&db).await?[1], (4, 1));

    let s = db.session().await?;
    assert_eq!(s.find::<SdBook>(&doomed.id).await?, None);
    assert!(!s.exists::<SdBook>(&doomed.id).await?);
    let many = s
        .find_many::<SdBook>(&[doomed.id, gone.books[1].id])
        .await?;
    assert_eq!(many, vec![gone.books[1].clone()]);
    assert_eq!(s.all::<SdBook>().await?.len(), 3);
    assert_eq!(s.count::<SdBook>().await?, 3);
    let b1s = s
        .query::<SdBook>()
        .filter(SdBook::TITLE.eq("b1"))
        .all()
        .await?;
    assert_eq!(b1s, vec![kept.books[0].clone()]);
    assert_eq!(
        s.query::<SdBook>()
            .filter(SdBook::TITLE.eq("b1"))
            .count()
            .await?,
        1
    );
    assert!(
        !s.query::<SdBook>()
            .filter(SdBook::ID.eq(doomed.id))
            .exists()
            .await?
    );
    let per_title: Vec<(String, i64)> = s
        .query::<SdBook>()
        .select((SdBook::TITLE, count_all()))
        .group_by(SdBook::TITLE)
        .order_by(SdBook::TITLE)
        .all()
        .await?;
    assert_eq!(per_title, vec![("b1".into(), 1), ("b2".into(), 2)]);
    // A loader, a join, a generated finder.
    let related = s
        .load_related::<SdBook, _>(std::slice::from_ref(&gone.author))
        .await?;
    assert_eq!(related, vec![vec![gone.books[1].clone()]]);
    let pairs: Vec<(SdAuthor, Option<SdBook>)> = s
        .query::<SdAuthor>()
        .filter(SdAuthor::ID.eq(gone.author.id))
        .left_join::<SdBook>()
        .all()
        .await?;
    let titles: Vec<Option<i64>> = pairs
        .iter()
        .map(|(_, b)| b.as_ref().map(|b| b.id))
        .collect();
    assert_eq!(titles, vec![Some(gone.books[1].id)]);
    let inner: Vec<(SdChapter, SdBook)> =
        s.query::<SdChapter>().inner_join::<SdBook>().all().await?;
    assert_eq!(inner.len(), 6, "the marked book's chapters are marked too");
    assert!(inner.iter().all(|(_, b)| b.id != doomed.id));
    let found = SdBook::repo(&s)
        .find_all_by_author_id(gone.author.id)
        .await?;
    assert_eq!(found, vec![gone.books[1].clone()]);
    // A soft-deleted row is gone for refresh.
    let mut stale = doomed.clone();
    assert!(matches!(s.refresh(&mut stale).await, Err(Error::NotFound)));
    s.commit().await?;
    Ok(())
}

pub async fn with_deleted_and_only_deleted(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let seeded = seed(&db, "a").await?;
    let s = db.session().await?;
    s.delete(&seeded.books[0])?;
    s.commit().await?;

    let s = db.session().await?;
    let all = s
        .query::<SdBook>()
        .with_deleted()
        .order_by(SdBook::ID)
        .all()
        .await?;
    assert_eq!(all.len(), 2);
    assert!(all[0].deleted_at.is_some() && all[1].deleted_at.is_none());
    let only = s.query::<SdBook>().only_deleted().all().await?;
    assert_eq!(
        only.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![seeded.books[0].id]
    );
    assert_eq!(s.query::<SdBook>().with_deleted().count().await?, 2);
    assert_eq!(s.query::<SdBook>().only_deleted().count().await?, 1);
    assert!(s.query::<SdChapter>().only_deleted().exists().await?);
    assert_eq!(s.query::<SdChapter>().only_deleted().count().await?, 2);
    // A join with_deleted sees the marked rows on both sides.
    let pairs: Vec<(SdChapter, SdBook)> = s
        .query::<SdChapter>()
        .with_deleted()
        .inner_join::<SdBook>()
        .all()
        .await?;
    assert_eq!(pairs.len(), 4);

    // The identity map holds the marked row now, and does not serve it.
    let before = s.statement_count();
    assert_eq!(s.find::<SdBook>(&seeded.books[0].id).await?, None);
    assert!(!s.exists::<SdBook>(&seeded.books[0].id).await?);
    assert_eq!(s.find_many::<SdBook>(&[seeded.books[0].id]).await?, vec![]);
    assert_eq!(s.statement_count(), before, "answered by the identity map");
    s.commit().await?;
    Ok(())
}

pub async fn restore_makes_the_row_visible(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let seeded = seed(&db, "a").await?;
    let s = db.session().await?;
    s.delete(&seeded.author)?;
    s.commit().await?;
    assert_eq!(raw_counts(&db).await?, [(1, 1), (2, 2), (4, 4)]);

    let s = db.session().await?;
    let mut a = s
        .query::<SdAuthor>()
        .with_deleted()
        .filter(SdAuthor::ID.eq(seeded.author.id))
        .one()
        .await?;
    assert!(a.deleted_at.is_some());
    assert_eq!(a.version, 2, "the soft delete bumped the version");
    s.restore(&mut a)?;
    assert_eq!(a.deleted_at, None);
    assert_eq!(s.find::<SdAuthor>(&a.id).await?, Some(a.clone()));
    s.commit().await?;

    let s = db.session().await?;
    let back = s.find::<SdAuthor>(&a.id).await?.ok_or(Error::NotFound)?;
    assert_eq!(back.version, 3);
    // The children the cascade marked stay marked.
    assert_eq!(s.count::<SdBook>().await?, 0);
    // Restoring an entity without a soft_delete column is refused.
    let mut note = seeded.note.clone();
    assert!(matches!(s.restore(&mut note), Err(Error::Invalid(_))));
    s.commit().await?;
    assert_eq!(raw_counts(&db).await?, [(1, 0), (2, 2), (4, 4)]);
    Ok(())
}

pub async fn delete_permanently_removes_the_row(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let seeded = seed(&db, "a").await?;
    let other = seed(&db, "b").await?;
    let s = db.session().await?;
    s.delete(&other.books[0])?;
    s.commit().await?;

    let s = db.session().await?;
    s.delete_permanently(&seeded.author)?;
    // A soft-deleted row can be removed too, by key.
    s.delete_permanently_by_key::<SdBook>(&other.books[0].id)?;
    s.commit().await?;
    // The database's ON DELETE CASCADE removed the author's books,
    // chapters and note.
    assert_eq!(raw_counts(&db).await?, [(1, 0), (1, 0), (2, 0)]);
    let s = db.session().await?;
    assert_eq!(
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_notes")
            .one()
            .await?,
        1
    );
    assert_eq!(s.find::<SdNote>(&seeded.note.id).await?, None);
    s.commit().await?;
    Ok(())
}

pub async fn soft_delete_cascades_two_levels_in_one_flush(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let seeded = seed(&db, "a").await?;
    let kept = seed(&db, "b").await?;

    let s = db.session().await?;
    // The session holds the children.
    let books = s.all::<SdBook>().await?;
    assert_eq!(books.len(), 4);
    assert_eq!(s.all::<SdChapter>().await?.len(), 8);
    assert!(s.find::<SdNote>(&seeded.note.id).await?.is_some());
    s.delete(&seeded.author)?;
    let before = s.statement_count();
    s.flush().await?;
    // The author, its books, their chapters: one statement each.
    assert_eq!(s.statement_count() - before, 3);
    // Not served from the identity map afterwards.
    let before = s.statement_count();
    assert_eq!(s.find::<SdBook>(&seeded.books[0].id).await?, None);
    assert_eq!(s.find::<SdChapter>(&seeded.chapters[3].id).await?, None);
    assert_eq!(s.statement_count() - before, 2, "asked the database");
    // A child without a soft_delete column stays, and is still held.
    let before = s.statement_count();
    assert_eq!(
        s.find::<SdNote>(&seeded.note.id).await?,
        Some(seeded.note.clone())
    );
    assert_eq!(s.statement_count(), before);
    // Its parent is soft-deleted: a loader finds none.
    let parents = s
        .load_parents::<SdAuthor, SdNote>(std::slice::from_ref(&seeded.note))
        .await?;
    assert_eq!(parents, vec![None]);
    // The other author's rows are untouched.
    assert_eq!(
        s.find::<SdBook>(&kept.books[0].id).await?,
        Some(kept.books[0].clone())
    );
    s.commit().await?;
    assert_eq!(raw_counts(&db).await?, [(2, 1), (4, 2), (8, 4)]);
    Ok(())
}

pub async fn delete_all_soft_deletes_cascades_and_counts(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let a = seed(&db, "a").await?;
    let b = seed(&db, "b").await?;
    seed(&db, "c").await?;
    let s = db.session().await?;
    s.delete(&b.books[0])?;
    s.commit().await?;

    let s = db.session().await?;
    let before = s.statement_count();
    let n = s
        .delete_all::<SdAuthor>()
        .filter(SdAuthor::NAME.ne("c"))
        .await?;
    assert_eq!(n, 2);
    // Chapters, books, authors.
    assert_eq!(s.statement_count() - before, 3);
    s.commit().await?;
    assert_eq!(raw_counts(&db).await?, [(3, 2), (6, 4), (12, 8)]);
    let s = db.session().await?;
    assert_eq!(s.count::<SdAuthor>().await?, 1);
    assert_eq!(s.count::<SdNote>().await?, 3, "notes have no soft_delete");
    // Marking again matches nothing: the rows are already marked.
    assert_eq!(
        s.delete_all::<SdBook>()
            .filter(SdBook::AUTHOR_ID.eq(a.author.id))
            .await?,
        0
    );
    // `permanently` deletes, soft-deleted rows too.
    assert_eq!(
        s.delete_all::<SdAuthor>()
            .filter(SdAuthor::NAME.eq("a"))
            .permanently()
            .await?,
        1
    );
    s.commit().await?;
    assert_eq!(raw_counts(&db).await?, [(2, 1), (4, 2), (8, 4)]);
    Ok(())
}

pub async fn update_all_skips_soft_deleted_rows(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let seeded = seed(&db, "a").await?;
    let s = db.session().await?;
    s.delete(&seeded.books[0])?;
    s.commit().await?;

    let s = db.session().await?;
    assert_eq!(s.update_all::<SdBook>().set(SdBook::TITLE, "x").await?, 1);
    assert_eq!(
        s.update_all::<SdBook>()
            .set(SdBook::TITLE, "y")
            .with_deleted()
            .await?,
        2
    );
    s.commit().await?;
    let s = db.session().await?;
    assert_eq!(
        s.raw_as::<i64>("SELECT COUNT(*) FROM sd_books WHERE title = 'y'")
            .one()
            .await?,
        2
    );
    s.commit().await?;
    Ok(())
}

pub async fn stale_soft_delete_is_stale_with_its_key(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    let seeded = seed(&db, "a").await?;
    let old = seeded.author.clone();

    // Another session changed the row since it was read.
    let s = db.session().await?;
    let mut a = s.find::<SdAuthor>(&old.id).await?.ok_or(Error::NotFound)?;
    a.name = "renamed".into();
    s.update(&mut a)?;
    s.commit().await?;

    let s = db.session().await?;
    s.delete(&old)?;
    match s.commit().await {
        Err(Error::Stale { table, key }) => {
            assert_eq!(table, "sd_authors");
            assert_eq!(key, format!("{:?}", old.id));
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    s.rollback().await?;
    assert_eq!(raw_counts(&db).await?, [(1, 0), (2, 0), (4, 0)]);

    // Deleting a row already soft-deleted: by key, a no-op; with the
    // version it was read at, Stale.
    let s = db.session().await?;
    let a = s.find::<SdAuthor>(&old.id).await?.ok_or(Error::NotFound)?;
    s.delete(&a)?;
    s.commit().await?;
    let s = db.session().await?;
    s.delete_by_key::<SdAuthor>(&a.id)?;
    s.commit().await?;
    let s = db.session().await?;
    s.delete(&a)?;
    assert!(matches!(s.commit().await, Err(Error::Stale { .. })));
    s.rollback().await?;
    Ok(())
}

pub async fn shared_cache_does_not_serve_soft_deleted_rows(db: Db) -> TestResult {
    let cache = Arc::new(InProcessCache::new());
    common::with_isolated_db(db.backend(), "sd_cache", |url| async move {
        let cdb = Db::builder()
            .isolation(Isolation::ReadCommitted)
            .sqlite_direct(db.sqlite_direct())
            .cache_arc(cache.clone())
            .cache_entity::<SdAuthor>(Duration::from_secs(60))
            .cache_entity::<SdBook>(Duration::from_secs(60))
            .connect(&url)
            .await?;
        cdb.create_tables::<Library>().await?;
        let seeded = seed(&cdb, "a").await?;
        // Warm the cache.
        let s = cdb.session().await?;
        assert!(s.find::<SdBook>(&seeded.books[0].id).await?.is_some());
        assert!(s.find::<SdAuthor>(&seeded.author.id).await?.is_some());
        s.commit().await?;
        let s = cdb.session().await?;
        assert!(s.find::<SdBook>(&seeded.books[0].id).await?.is_some());
        assert_eq!(s.statement_count(), 0, "served by the cache");
        s.commit().await?;

        // The author's soft delete evicts it and its cascaded books.
        let s = cdb.session().await?;
        s.delete(&seeded.author)?;
        s.commit().await?;
        let s = cdb.session().await?;
        assert_eq!(s.find::<SdAuthor>(&seeded.author.id).await?, None);
        assert_eq!(s.find::<SdBook>(&seeded.books[0].id).await?, None);
        assert!(!s.exists::<SdBook>(&seeded.books[1].id).await?);
        assert_eq!(
            s.find_many::<SdBook>(&[seeded.books[0].id, seeded.books[1].id])
                .await?,
            vec![]
        );
        s.commit().await?;

        // A soft-deleted row in the cache (a committed insert of a marked
        // row puts it) is a miss.
        let s = cdb.session().await?;
        let mut marked = book(seeded.author.id, "marked");
        marked.deleted_at = Some(Utc::now());
        let marked = s.insert(marked).await?;
        s.commit().await?;
        let s = cdb.session().await?;
        assert_eq!(s.find::<SdBook>(&marked.id).await?, None);
        assert!(s.statement_count() > 0, "the cached row was a miss");
        s.commit().await?;
        cdb.close().await;
        Ok(())
    })
    .await
}

pub async fn cut_soft_delete_flush_at_every_poll(db: Db) -> TestResult {
    cut_soft_delete_at_every_poll(db, false).await
}

pub async fn cut_soft_delete_all_at_every_poll(db: Db) -> TestResult {
    cut_soft_delete_at_every_poll(db, true).await
}

/// Cuts the flush of an author's soft delete (or, with `bulk`, a
/// `delete_all` of it) at every poll in turn, until one completes: cut, the
/// author, its books and their chapters are all still live once the
/// session rolls back; completed, all of them are marked.
async fn cut_soft_delete_at_every_poll(db: Db, bulk: bool) -> TestResult {
    db.create_tables::<Library>().await?;
    let mut polls = 1;
    loop {
        assert!(polls < 500, "the flush never completed");
        let seeded = seed(&db, &format!("cut{polls}")).await?;
        let s = db.session().await?;
        // The session holds the author and one book.
        let a = s
            .find::<SdAuthor>(&seeded.author.id)
            .await?
            .ok_or(Error::NotFound)?;
        assert!(s.find::<SdBook>(&seeded.books[0].id).await?.is_some());
        let outcome = if bulk {
            let q = s.delete_all::<SdAuthor>().filter(SdAuthor::ID.eq(a.id));
            cut_after(polls, Duration::ZERO, async { q.await.map(drop) }).await
        } else {
            s.delete(&a)?;
            cut_after(polls, Duration::ZERO, s.flush()).await
        };
        // The marked rows of the author, its books and their chapters.
        let marked = |db: Db, id: i64| async move {
            let o = db.session().await?;
            let mut counts = [0; 3];
            let queries = [
                format!(
                    "SELECT COUNT(*) FROM sd_authors WHERE id = {id} AND deleted_at IS NOT NULL"
                ),
                format!(
                    "SELECT COUNT(*) FROM sd_books WHERE author_id = {id} AND deleted_at IS NOT NULL"
                ),
                format!(
                    "SELECT COUNT(*) FROM sd_chapters c JOIN sd_books b ON c.book_id = b.id \
                     WHERE b.author_id = {id} AND c.deleted_at IS NOT NULL"
                ),
            ];
            for (n, q) in counts.iter_mut().zip(queries) {
                *n = o.raw_as::<i64>(AssertSqlSafe(q)).one().await?;
            }
            o.commit().await?;
            Ok::<_, Error>(counts)
        };
        match outcome {
            Cut::Completed(r) => {
                r?;
                s.commit().await?;
                assert_eq!(marked(db.clone(), a.id).await?, [1, 2, 4]);
                return Ok(());
            }
            Cut::Cut => {
                // Cut mid-flush: the session answers SessionFailed (it had
                // written: its transaction is gone) or goes on with the
                // delete still registered.
                match s.flush().await {
                    Err(Error::SessionFailed) => {}
                    Ok(()) if bulk => {}
                    Ok(()) => assert_eq!(s.find::<SdBook>(&seeded.books[0].id).await?, None),
                    Err(e) => return Err(e),
                }
                s.rollback().await?;
                assert_eq!(marked(db.clone(), a.id).await?, [0, 0, 0], "poll {polls}");
                assert!(
                    s.find::<SdAuthor>(&a.id).await?.is_some(),
                    "usable after rollback"
                );
                s.commit().await?;
            }
        }
        polls += 1;
    }
}

pub async fn unique_live_frees_the_value_of_soft_deleted_rows(db: Db) -> TestResult {
    if db.backend() == Backend::MySql {
        match db.create_tables::<SdMember>().await {
            Err(Error::Invalid(msg)) => {
                assert!(msg.contains("sd_members.email is unique_live"), "{msg}");
                assert!(msg.contains("partial unique index"), "{msg}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        return Ok(());
    }
    db.create_tables::<SdMember>().await?;
    let member = |email: &str| SdMember {
        id: 0,
        email: email.into(),
        deleted_at: None,
    };
    let s = db.session().await?;
    let first = s.insert(member("a@x")).await?;
    s.commit().await?;
    let s = db.session().await?;
    let err = s.insert(member("a@x")).await.expect_err("two live rows");
    assert!(matches!(err, Error::UniqueViolation { .. }), "{err:?}");
    s.rollback().await?;

    let s = db.session().await?;
    s.delete(&first)?;
    s.flush().await?;
    let second = s.insert(member("a@x")).await?;
    s.commit().await?;
    let s = db.session().await?;
    assert_eq!(SdMember::repo(&s).find_by_email("a@x").await?, Some(second));
    assert_eq!(s.query::<SdMember>().with_deleted().count().await?, 2);
    s.commit().await?;
    Ok(())
}

pub async fn many_to_many_leaves_out_soft_deleted_targets_and_links(db: Db) -> TestResult {
    db.create_tables::<Library>().await?;
    db.create_tables::<(SdShelf, SdShelving)>().await?;
    let seeded = seed(&db, "a").await?;
    let more = seed(&db, "b").await?;
    let s = db.session().await?;
    let shelf = s
        .insert(SdShelf {
            id: 0,
            name: "top".into(),
        })
        .await?;
    let books = [&seeded.books[0], &seeded.books[1], &more.books[0]];
    let links: Vec<SdShelving> = books
        .iter()
        .map(|b| SdShelving {
            shelf_id: shelf.id,
            book_id: b.id,
            deleted_at: None,
        })
        .collect();
    s.insert_many(links.clone()).await?;
    // One book soft-deleted, one link soft-deleted.
    s.delete(books[0])?;
    s.delete(&links[1])?;
    s.commit().await?;

    let s = db.session().await?;
    let related = s
        .load_related::<SdBook, _>(std::slice::from_ref(&shelf))
        .await?;
    assert_eq!(related, vec![vec![more.books[0].clone()]]);
    s.commit().await?;
    Ok(())
}

pub async fn upsert_answers_the_row_it_wrote_marked_or_not(db: Db) -> TestResult {
    db.create_tables::<SdTag>().await?;
    let s = db.session().await?;
    let at = Utc::now().trunc_subsecs(3);
    let tag = SdTag {
        code: "t".into(),
        uses: 1,
        deleted_at: Some(at),
    };
    let stored = s
        .upsert_with(tag.clone())
        .on_conflict_set(SdTag::USES, SdTag::USES.add(1))
        .await?;
    assert_eq!(stored, tag, "a marked row is read back");
    let again = s
        .upsert_with(tag.clone())
        .on_conflict_set(SdTag::USES, SdTag::USES.add(1))
        .await?;
    assert_eq!(again.uses, 2);
    s.commit().await?;
    let s = db.session().await?;
    assert_eq!(s.find::<SdTag>(&"t".to_string()).await?, None);
    assert_eq!(s.query::<SdTag>().only_deleted().count().await?, 1);
    s.commit().await?;
    Ok(())
}
