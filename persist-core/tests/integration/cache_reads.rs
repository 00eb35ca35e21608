//! The shared cache beyond `find`: by-key reads (`find_many`, `exists`,
//! `load_parents`, unique finders), cached projections and joins, eviction
//! after outside writes, and `refresh` — with the in-process and the Redis
//! providers, with Redis down, and with futures dropped mid-way.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use persist_cache::{InProcessCache, RedisCache};
use persist_core::cache::SharedCache;
use persist_core::prelude::*;
use persist_core::query::count_all;
use persist_core::session::Isolation;

use crate::common::{self, OwnRedis, TestResult};

const TTL: Duration = Duration::from_secs(60);

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "cr_authors", has_many(CrBook, by = "author_id"))]
pub struct CrAuthor {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub email: String,
    pub name: String,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "cr_books")]
pub struct CrBook {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "CrAuthor")]
    pub author_id: i64,
    pub title: String,
    pub pages: i32,
}

fn redis_url() -> String {
    std::env::var("PERSIST_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A unique Redis key prefix per test run.
fn prefix(test: &str) -> String {
    format!(
        "persist_cr_{}_{}_{test}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

fn cache_err(e: persist_core::cache::CacheError) -> Error {
    Error::Invalid(e.to_string())
}

async fn redis(test: &str) -> Result<Arc<dyn SharedCache>, Error> {
    let c = RedisCache::connect(redis_url(), prefix(test), TTL)
        .await
        .map_err(cache_err)?;
    Ok(Arc::new(c))
}

/// The two providers every test runs with.
async fn providers(test: &str) -> Result<Vec<(&'static str, Arc<dyn SharedCache>)>, Error> {
    Ok(vec![
        (
            "in_process",
            Arc::new(InProcessCache::new()) as Arc<dyn SharedCache>,
        ),
        ("redis", redis(test).await?),
    ])
}

/// A `Db` on `url` with `cache`, caching both entities.
async fn cached_db(url: &str, cache: Arc<dyn SharedCache>) -> Result<Db, Error> {
    Db::builder()
        .isolation(Isolation::ReadCommitted)
        .cache_arc(cache)
        .cache_entity::<CrAuthor>(TTL)
        .cache_entity::<CrBook>(TTL)
        .connect(url)
        .await
}

/// Runs `body` once per provider, each on a fresh isolated database with
/// the tables created; `body` gets the cached `Db` and the URL.
async fn each_provider<F, Fut>(db: &Db, test: &str, body: F) -> TestResult
where
    F: Fn(Db, String, &'static str) -> Fut,
    Fut: Future<Output = TestResult>,
{
    for (name, cache) in providers(test).await? {
        let body = &body;
        common::with_isolated_db(db.backend(), &format!("{test}_{name}"), |url| async move {
            let cdb = cached_db(&url, cache).await?;
            cdb.create_tables::<(CrAuthor, CrBook)>().await?;
            let r = body(cdb.clone(), url.clone(), name).await;
            cdb.close().await;
            r.map_err(|e| Error::Invalid(format!("{name}: {e}")))
        })
        .await?;
    }
    Ok(())
}

/// Three authors with one book each, committed (and so cached).
async fn seed(db: &Db) -> Result<(Vec<CrAuthor>, Vec<CrBook>), Error> {
    let s = db.session().await?;
    let mut authors = Vec::new();
    for n in ["a", "b", "c"] {
        authors.push(
            s.insert(CrAuthor {
                id: 0,
                email: format!("{n}@x"),
                name: n.to_uppercase(),
            })
            .await?,
        );
    }
    let mut books = Vec::new();
    for (i, a) in authors.iter().enumerate() {
        books.push(
            s.insert(CrBook {
                id: 0,
                author_id: a.id,
                title: format!("book {i}"),
                pages: 100 * (i as i32 + 1),
            })
            .await?,
        );
    }
    s.commit().await?;
    Ok((authors, books))
}

/// What every read path answers, read in one session per path (so that no
/// path's statements are counted for another); with the statements each
/// sent.
#[derive(Debug, PartialEq)]
struct Reads {
    many: Vec<CrAuthor>,
    exists: bool,
    by_email: Option<CrAuthor>,
    parents: Vec<Option<CrAuthor>>,
    pages: Vec<(i64, i64)>,
    join: Vec<(CrAuthor, Option<CrBook>)>,
}

async fn read_all(
    db: &Db,
    authors: &[CrAuthor],
    books: &[CrBook],
) -> Result<(Reads, Vec<u64>), Error> {
    let keys: Vec<i64> = authors.iter().rev().map(|a| a.id).collect();
    let mut counts = Vec::new();
    macro_rules! in_session {
        ($s:ident => $e:expr) => {{
            let $s = db.session().await?;
            let before = $s.statement_count();
            let v = $e;
            counts.push($s.statement_count() - before);
            $s.commit().await?;
            v
        }};
    }
    let many = in_session!(s => s.find_many::<CrAuthor>(&keys).await?);
    let exists = in_session!(s => s.exists::<CrAuthor>(&authors[0].id).await?);
    let by_email =
        in_session!(s => CrAuthor::repo(&s).find_by_email(authors[1].email.as_str()).await?);
    let parents = in_session!(s => s.load_parents::<CrAuthor, _>(books).await?);
    let pages = in_session!(s => s
        .query::<CrBook>()
        .select((CrBook::AUTHOR_ID, CrBook::PAGES.sum()))
        .group_by(CrBook::AUTHOR_ID)
        .order_by(CrBook::AUTHOR_ID)
        .cached()
        .all()
        .await?
        .into_iter()
        .map(|(a, p)| (a, p.unwrap_or(0)))
        .collect::<Vec<_>>());
    let join = in_session!(s => s
        .query::<CrAuthor>()
        .left_join::<CrBook>()
        .cached()
        .all()
        .await?);
    Ok((
        Reads {
            many,
            exists,
            by_email,
            parents,
            pages,
            join,
        },
        counts,
    ))
}

/// What the database holds, read without any cache.
async fn expected(url: &str, authors: &[CrAuthor], books: &[CrBook]) -> Result<Reads, Error> {
    let plain = Db::connect(url).await?;
    let (r, _) = read_all(&plain, authors, books).await?;
    plain.close().await;
    Ok(r)
}

pub async fn warm_cache_reads_send_no_statement(db: Db) -> TestResult {
    each_provider(&db, "cr_warm", |db, url, _| async move {
        let (authors, books) = seed(&db).await?;
        // The first round loads (and puts) what the inserts did not.
        let (first, _) = read_all(&db, &authors, &books).await?;
        let (warm, counts) = read_all(&db, &authors, &books).await?;
        assert_eq!(counts, vec![0; 6], "a warm cache answers every path");
        assert_eq!(warm, first);
        assert_eq!(warm, expected(&url, &authors, &books).await?);
        assert_eq!(
            warm.many.iter().map(|a| a.id).collect::<Vec<_>>(),
            authors.iter().rev().map(|a| a.id).collect::<Vec<_>>(),
            "find_many answers in the order of its keys"
        );

        // Some misses: one statement, for the misses only, in key order.
        db.evict::<CrAuthor>(&authors[1].id)
            .await
            .map_err(cache_err)?;
        let s = db.session().await?;
        let keys = [authors[2].id, authors[1].id, 9_999, authors[0].id];
        let rows = s.find_many::<CrAuthor>(&keys).await?;
        assert_eq!(s.statement_count(), 1, "one statement for the missed key");
        assert_eq!(
            rows.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![authors[2].id, authors[1].id, authors[0].id]
        );
        s.commit().await?;
        let s = db.session().await?;
        s.find_many::<CrAuthor>(&keys[..2]).await?;
        assert_eq!(s.statement_count(), 0, "the missed row was put");
        s.commit().await?;
        Ok(())
    })
    .await
}

pub async fn committed_and_rolled_back_writes_then_cached_reads(db: Db) -> TestResult {
    each_provider(&db, "cr_writes", |db, url, _| async move {
        let (authors, books) = seed(&db).await?;
        read_all(&db, &authors, &books).await?; // warm

        // A rolled-back change is never served.
        let s = db.session().await?;
        let mut a = s
            .find::<CrAuthor>(&authors[1].id)
            .await?
            .ok_or(Error::NotFound)?;
        a.email = "rolled@x".into();
        a.name = "rolled".into();
        s.update(&mut a)?;
        let mut b = s
            .find::<CrBook>(&books[0].id)
            .await?
            .ok_or(Error::NotFound)?;
        b.pages = 1;
        s.update(&mut b)?;
        s.flush().await?;
        s.rollback().await?;
        let (after, _) = read_all(&db, &authors, &books).await?;
        assert_eq!(after, expected(&url, &authors, &books).await?);
        assert_eq!(after.by_email.map(|a| a.name), Some("B".into()));

        // A committed change is served by every path.
        let s = db.session().await?;
        let mut a = s
            .find::<CrAuthor>(&authors[1].id)
            .await?
            .ok_or(Error::NotFound)?;
        a.email = "new@x".into();
        a.name = "new".into();
        s.update(&mut a)?;
        let mut b = s
            .find::<CrBook>(&books[0].id)
            .await?
            .ok_or(Error::NotFound)?;
        b.pages = 7;
        s.update(&mut b)?;
        s.delete_by_key::<CrAuthor>(&authors[0].id)?;
        s.delete(&b)?;
        s.commit().await?;
        let (after, _) = read_all(&db, &authors, &books[1..]).await?;
        let want = expected(&url, &authors, &books[1..]).await?;
        assert_eq!(after, want);
        assert!(!after.exists, "a deleted row is not served");
        assert_eq!(after.many.len(), 2);
        assert_eq!(
            after.parents[0].as_ref().map(|p| p.name.as_str()),
            Some("new")
        );

        // The unique index: the old value finds nothing, the new one the row.
        let s = db.session().await?;
        let repo = CrAuthor::repo(&s);
        assert_eq!(repo.find_by_email("b@x").await?, None);
        assert_eq!(
            repo.find_by_email("new@x").await?.map(|a| a.id),
            Some(authors[1].id)
        );
        s.commit().await?;
        Ok(())
    })
    .await
}

pub async fn evict_and_refresh_after_outside_writes(db: Db) -> TestResult {
    each_provider(&db, "cr_evict", |db, url, _| async move {
        let (authors, books) = seed(&db).await?;
        read_all(&db, &authors, &books).await?; // warm
        let outside = Db::connect(&url).await?;
        let name = |db: Db, id: i64| async move {
            let s = db.session().await?;
            let n = s.find::<CrAuthor>(&id).await?.map(|a| a.name);
            s.commit().await?;
            Ok::<_, Error>(n)
        };

        // A row changed by another program stays cached until evicted.
        let s = outside.session().await?;
        let mut a = s
            .find::<CrAuthor>(&authors[0].id)
            .await?
            .ok_or(Error::NotFound)?;
        a.name = "outside".into();
        s.update(&mut a)?;
        s.commit().await?;
        assert_eq!(
            name(db.clone(), authors[0].id).await?,
            Some("A".into()),
            "stale until evicted"
        );
        db.evict::<CrAuthor>(&authors[0].id)
            .await
            .map_err(cache_err)?;
        assert_eq!(
            name(db.clone(), authors[0].id).await?,
            Some("outside".into())
        );

        // evict_all: every row of the table.
        let s = outside.session().await?;
        s.update_all::<CrAuthor>()
            .set(CrAuthor::NAME, "bulk".to_string())
            .await?;
        s.commit().await?;
        db.evict_all::<CrAuthor>().await.map_err(cache_err)?;
        let s = db.session().await?;
        let names: Vec<String> = s
            .find_many::<CrAuthor>(&authors.iter().map(|a| a.id).collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, vec!["bulk"; 3]);
        s.commit().await?;

        // evict_queries: cached projections and joins of the table.
        let s = outside.session().await?;
        s.update_all::<CrBook>().set(CrBook::PAGES, 5).await?;
        s.commit().await?;
        db.evict_all::<CrBook>().await.map_err(cache_err)?;
        let (stale, _) = read_all(&db, &authors, &books).await?;
        assert_ne!(
            stale.pages,
            vec![(authors[0].id, 5), (authors[1].id, 5), (authors[2].id, 5)]
        );
        db.evict_queries::<CrBook>().await.map_err(cache_err)?;
        let (fresh, _) = read_all(&db, &authors, &books).await?;
        assert_eq!(fresh, expected(&url, &authors, &books).await?);

        // refresh: the next find elsewhere serves what refresh read, with
        // no statement.
        let s = outside.session().await?;
        let mut a = s
            .find::<CrAuthor>(&authors[2].id)
            .await?
            .ok_or(Error::NotFound)?;
        a.name = "refreshed".into();
        s.update(&mut a)?;
        s.commit().await?;
        assert_eq!(
            name(db.clone(), authors[2].id).await?,
            Some("bulk".into()),
            "stale"
        );
        let s = db.session().await?;
        let mut mine = authors[2].clone();
        s.refresh(&mut mine).await?;
        assert_eq!(mine.name, "refreshed");
        s.commit().await?;
        let s = db.session().await?;
        assert_eq!(
            s.find::<CrAuthor>(&authors[2].id).await?.map(|a| a.name),
            Some("refreshed".into())
        );
        assert_eq!(s.statement_count(), 0, "refresh put what it read");
        s.commit().await?;
        outside.close().await;
        Ok(())
    })
    .await
}

pub async fn evict_is_seen_by_another_process_on_redis(db: Db) -> TestResult {
    let pre = prefix("cr_two");
    common::with_isolated_db(db.backend(), "cr_two_processes", |url| async move {
        let one = |p: String| {
            let url = url.clone();
            async move {
                let c = RedisCache::connect(redis_url(), p, TTL)
                    .await
                    .map_err(cache_err)?;
                cached_db(&url, Arc::new(c)).await
            }
        };
        let (db1, db2) = (one(pre.clone()).await?, one(pre.clone()).await?);
        db1.create_tables::<(CrAuthor, CrBook)>().await?;
        let (authors, books) = seed(&db1).await?;
        read_all(&db2, &authors, &books).await?;
        let (_, counts) = read_all(&db2, &authors, &books).await?;
        assert_eq!(counts, vec![0; 6], "the other process is warm");
        let outside = Db::connect(&url).await?;
        let s = outside.session().await?;
        s.update_all::<CrAuthor>()
            .set(CrAuthor::NAME, "outside".to_string())
            .await?;
        s.update_all::<CrBook>().set(CrBook::PAGES, 1).await?;
        s.commit().await?;
        db1.evict_all::<CrAuthor>().await.map_err(cache_err)?;
        db1.evict_all::<CrBook>().await.map_err(cache_err)?;
        db1.evict_queries::<CrAuthor>().await.map_err(cache_err)?;
        db1.evict_queries_of("cr_books").await.map_err(cache_err)?;
        let (seen, _) = read_all(&db2, &authors, &books).await?;
        assert_eq!(seen, expected(&url, &authors, &books).await?);
        assert!(seen.many.iter().all(|a| a.name == "outside"));
        assert!(seen.pages.iter().all(|(_, p)| *p == 1));
        // One key, too.
        let s = outside.session().await?;
        let mut a = s
            .find::<CrAuthor>(&authors[0].id)
            .await?
            .ok_or(Error::NotFound)?;
        a.name = "one".into();
        s.update(&mut a)?;
        s.commit().await?;
        db1.evict::<CrAuthor>(&authors[0].id)
            .await
            .map_err(cache_err)?;
        let s = db2.session().await?;
        assert_eq!(
            s.find::<CrAuthor>(&authors[0].id).await?.map(|a| a.name),
            Some("one".into())
        );
        assert_eq!(s.statement_count(), 1, "evicted in the other process");
        s.commit().await?;
        outside.close().await;
        db1.close().await;
        db2.close().await;
        Ok(())
    })
    .await
}

pub async fn cached_reads_with_redis_down_use_the_database(db: Db) -> TestResult {
    let mut own = OwnRedis::start();
    let cache = RedisCache::builder(own.url(), prefix("cr_down"), TTL)
        .op_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .map_err(cache_err)?;
    let cache: Arc<dyn SharedCache> = Arc::new(cache);
    common::with_isolated_db(db.backend(), "cr_redis_down", |url| async move {
        let db = cached_db(&url, cache).await?;
        db.create_tables::<(CrAuthor, CrBook)>().await?;
        let (authors, books) = seed(&db).await?;
        read_all(&db, &authors, &books).await?;
        own.kill();
        let (down, counts) = read_all(&db, &authors, &books).await?;
        assert_eq!(down, expected(&url, &authors, &books).await?);
        assert!(
            counts.iter().all(|n| *n >= 1),
            "the database answered: {counts:?}"
        );
        let errors = db.cache_metrics().map(|m| m.errors).unwrap_or(0);
        assert!(errors > 0, "the failures were counted");
        assert!(
            db.evict::<CrAuthor>(&authors[0].id).await.is_err(),
            "evict answers the error"
        );
        // refresh still answers from the database.
        let s = db.session().await?;
        let mut a = authors[0].clone();
        s.refresh(&mut a).await?;
        assert_eq!(a, authors[0]);
        s.commit().await?;
        own.restart();
        let (back, _) = read_all(&db, &authors, &books).await?;
        assert_eq!(back, expected(&url, &authors, &books).await?);
        db.close().await;
        Ok(())
    })
    .await
}

/// Polls `fut` at most `polls` times, then drops it; whether it finished.
async fn cut_after<F: Future>(polls: usize, fut: F) -> bool {
    let mut fut = pin!(fut);
    let mut seen = 0;
    std::future::poll_fn(|cx| {
        seen += 1;
        match fut.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(true),
            Poll::Pending if seen >= polls => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

pub async fn dropped_cached_reads_leave_no_wrong_entry(db: Db) -> TestResult {
    each_provider(&db, "cr_cut", |db, url, _| async move {
        let (authors, books) = seed(&db).await?;
        let mut round: i64 = 0;
        for polls in 1..24 {
            // Cold rows, so the reads load and put.
            db.evict_all::<CrAuthor>().await.map_err(cache_err)?;
            db.evict_queries::<CrBook>().await.map_err(cache_err)?;
            let s = db.session().await?;
            let keys: Vec<i64> = authors.iter().map(|a| a.id).collect();
            let done = match polls % 4 {
                0 => cut_after(polls, s.find_many::<CrAuthor>(&keys)).await,
                1 => cut_after(polls, s.load_parents::<CrAuthor, _>(&books)).await,
                2 => {
                    let mut a = authors[0].clone();
                    cut_after(polls, s.refresh(&mut a)).await
                }
                _ => {
                    let q = s.query::<CrBook>().select(count_all()).cached();
                    cut_after(polls, q.one()).await
                }
            };
            drop(s);
            // A commit after the cut: every read must see it.
            round += 1;
            let w = db.session().await?;
            w.update_all::<CrAuthor>()
                .set(CrAuthor::NAME, format!("round {round}"))
                .await?;
            w.add(CrBook {
                id: 0,
                author_id: authors[0].id,
                title: format!("round {round}"),
                pages: 1,
            })?;
            w.commit().await?;
            let s = db.session().await?;
            let names: Vec<String> = s
                .find_many::<CrAuthor>(&keys)
                .await?
                .into_iter()
                .map(|a| a.name)
                .collect();
            assert_eq!(
                names,
                vec![format!("round {round}"); 3],
                "after a cut at poll {polls}"
            );
            let n = s
                .query::<CrBook>()
                .select(count_all())
                .cached()
                .one()
                .await?;
            assert_eq!(n, 3 + round, "after a cut at poll {polls}");
            s.commit().await?;
            let _ = done;
        }
        let plain = expected(&url, &authors, &books).await?;
        let (now, _) = read_all(&db, &authors, &books).await?;
        assert_eq!(now.many, plain.many);
        Ok(())
    })
    .await
}
