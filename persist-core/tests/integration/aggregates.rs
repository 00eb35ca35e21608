//! Projections into tuples and structs, aggregates, group by and having.

use persist_core::prelude::*;
use persist_core::query::count_all;

use crate::common::TestResult;
use crate::rel_model::*;

async fn seed(db: &Db) -> Result<Vec<User>, persist_core::error::Error> {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let users = s.insert_many(vec![user("a"), user("b"), user("c")]).await?;
    let (a, b) = (users[0].id, users[1].id);
    s.insert_many(vec![
        post(a, "a1", 3),
        post(a, "a2", 5),
        post(a, "a3", 10),
        post(b, "b1", 7),
    ])
    .await?;
    s.commit().await?;
    Ok(users)
}

#[derive(Debug, PartialEq)]
struct Stats {
    user_id: i64,
    posts: i64,
    likes: Option<i64>,
}

impl From<(i64, i64, Option<i64>)> for Stats {
    fn from((user_id, posts, likes): (i64, i64, Option<i64>)) -> Self {
        Stats {
            user_id,
            posts,
            likes,
        }
    }
}

pub async fn projections_into_tuples_and_structs(db: Db) -> TestResult {
    let users = seed(&db).await?;
    let s = db.session().await?;
    let rows: Vec<(String, i32)> = s
        .query::<Post>()
        .filter(Post::LIKES.gt(4))
        .order_by(Post::LIKES)
        .select((Post::TITLE, Post::LIKES))
        .all()
        .await?;
    assert_eq!(
        rows,
        [("a2".to_string(), 5), ("b1".into(), 7), ("a3".into(), 10)]
    );

    let title: String = s
        .query::<Post>()
        .filter(Post::LIKES.eq(7))
        .select(Post::TITLE)
        .one()
        .await?;
    assert_eq!(title, "b1");

    let stats: Vec<Stats> = s
        .query::<Post>()
        .select((Post::USER_ID, count_all(), Post::LIKES.sum()))
        .group_by(Post::USER_ID)
        .order_by(Post::USER_ID)
        .all_into()
        .await?;
    assert_eq!(
        stats,
        [
            Stats {
                user_id: users[0].id,
                posts: 3,
                likes: Some(18)
            },
            Stats {
                user_id: users[1].id,
                posts: 1,
                likes: Some(7)
            },
        ]
    );
    s.rollback().await?;
    Ok(())
}

pub async fn aggregates_group_by_having(db: Db) -> TestResult {
    let users = seed(&db).await?;
    let s = db.session().await?;
    let (n, sum, min, max, avg) = s
        .query::<Post>()
        .select((
            count_all(),
            Post::LIKES.sum(),
            Post::LIKES.min(),
            Post::LIKES.max(),
            Post::LIKES.avg(),
        ))
        .one()
        .await?;
    assert_eq!((n, sum, min, max), (4, Some(25), Some(3), Some(10)));
    assert!((avg.expect("avg") - 6.25).abs() < 1e-9);

    // Over no rows: COUNT is 0, the others NULL.
    let empty = s
        .query::<Post>()
        .filter(Post::LIKES.gt(1000))
        .select((
            count_all(),
            Post::LIKES.sum(),
            Post::LIKES.max(),
            Post::LIKES.avg(),
        ))
        .one()
        .await?;
    assert_eq!(empty, (0, None, None, None));

    let busy: Vec<(i64, i64)> = s
        .query::<Post>()
        .select((Post::USER_ID, Post::TITLE.count()))
        .group_by(Post::USER_ID)
        .having(count_all().gt(1).and(Post::LIKES.sum().ge(10)))
        .all()
        .await?;
    assert_eq!(busy, [(users[0].id, 3)]);

    let none: Vec<(i64, i64)> = s
        .query::<Post>()
        .select((Post::USER_ID, count_all()))
        .group_by(Post::USER_ID)
        .having(Post::LIKES.max().lt(5))
        .all()
        .await?;
    assert!(none.is_empty());
    s.rollback().await?;
    Ok(())
}
