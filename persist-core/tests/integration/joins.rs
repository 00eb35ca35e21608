//! Joins in typed queries.

use persist_core::prelude::*;

use crate::common::TestResult;
use crate::rel_model::*;

async fn seed(db: &Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let users = s
        .insert_many(vec![user("ann"), user("bob"), user("cy"), user("dee")])
        .await?;
    let mut posts = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for j in 0..(i % 3) {
            posts.push(post(u.id, &format!("{}-{j}", u.name), (i * 10 + j) as i32));
        }
    }
    s.insert_many(posts).await?;
    s.commit().await?;
    Ok(())
}

pub async fn left_join_matches_loader(db: Db) -> TestResult {
    seed(&db).await?;
    let s = db.session().await?;
    let before = s.statement_count();
    let pairs: Vec<(User, Option<Post>)> = s.query::<User>().left_join::<Post>().all().await?;
    assert_eq!(s.statement_count() - before, 1);

    let users = s.all::<User>().await?;
    let groups = users.load::<Post>(&s).await?;
    let mut expected = Vec::new();
    for (u, ps) in users.iter().zip(groups) {
        if ps.is_empty() {
            expected.push((u.clone(), None));
        }
        for p in ps {
            expected.push((u.clone(), Some(p)));
        }
    }
    assert_eq!(pairs, expected);
    assert!(
        pairs.iter().any(|(_, p)| p.is_none()),
        "users without posts are kept"
    );

    // The same pairs from the child's side, through the foreign key.
    let back: Vec<(Post, User)> = s.query::<Post>().inner_join::<User>().all().await?;
    let flipped: Vec<(User, Option<Post>)> = back.into_iter().map(|(p, u)| (u, Some(p))).collect();
    let with_posts: Vec<_> = expected.into_iter().filter(|(_, p)| p.is_some()).collect();
    assert_eq!(flipped, with_posts);
    s.rollback().await?;
    Ok(())
}

pub async fn inner_join_filters_both_sides(db: Db) -> TestResult {
    seed(&db).await?;
    let s = db.session().await?;
    let pairs: Vec<(User, Post)> = s
        .query::<User>()
        .inner_join::<Post>()
        .filter(User::NAME.ne("bob"))
        .filter(Post::LIKES.ge(20))
        .order_by(Post::LIKES.desc())
        .all()
        .await?;
    let got: Vec<_> = pairs
        .iter()
        .map(|(u, p)| (u.name.as_str(), p.title.as_str()))
        .collect();
    assert_eq!(got, [("cy", "cy-1"), ("cy", "cy-0")]);

    let limited = s
        .query::<User>()
        .left_join::<Post>()
        .order_by(User::NAME.desc())
        .limit(2)
        .offset(1)
        .all()
        .await?;
    let got: Vec<_> = limited
        .iter()
        .map(|(u, p)| (u.name.as_str(), p.as_ref().map(|p| p.title.as_str())))
        .collect();
    assert_eq!(got[0].0, "cy");
    assert_eq!(got.len(), 2);

    // Explicit join columns, and entities with no link.
    let explicit = s
        .query::<User>()
        .inner_join_on::<Post, _, _>(User::ID, Post::USER_ID)
        .all()
        .await?;
    assert_eq!(explicit.len(), 3);
    let err = s
        .query::<User>()
        .left_join::<Tag>()
        .all()
        .await
        .expect_err("no link");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    s.rollback().await?;
    Ok(())
}
