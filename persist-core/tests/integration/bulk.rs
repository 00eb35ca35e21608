//! Bulk update and delete: one statement, the row count, versions bumped.

use persist_core::prelude::*;

use crate::common::TestResult;
use crate::rel_model::*;

pub async fn update_all_bumps_versions_and_counts(db: Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let u = s.insert(user("a")).await?;
    let posts = s
        .insert_many((0..5).map(|i| post(u.id, &format!("p{i}"), i)).collect())
        .await?;
    assert!(posts.iter().all(|p| p.version == 1));
    s.commit().await?;

    let s = db.session().await?;
    let before = s.statement_count();
    let n = s
        .update_all::<Post>()
        .set(Post::TITLE, "hot")
        .set(Post::LIKES, 100)
        .filter(Post::LIKES.ge(3))
        .await?;
    assert_eq!(n, 2);
    assert_eq!(s.statement_count() - before, 1, "one statement");
    let all = s.query::<Post>().order_by(Post::ID).all().await?;
    let got: Vec<_> = all
        .iter()
        .map(|p| (p.title.as_str(), p.likes, p.version))
        .collect();
    assert_eq!(
        got,
        [
            ("p0", 0, 1),
            ("p1", 1, 1),
            ("p2", 2, 1),
            ("hot", 100, 2),
            ("hot", 100, 2)
        ]
    );
    s.commit().await?;

    // A copy read before the bulk update is stale now.
    let s = db.session().await?;
    let mut old = posts[4].clone();
    old.title = "late".into();
    s.update(&mut old)?;
    let err = s.commit().await.expect_err("stale");
    assert!(matches!(err, Error::Stale { .. }), "{err:?}");

    // No filter: every row; no match: zero.
    let s = db.session().await?;
    assert_eq!(s.update_all::<Post>().set(Post::LIKES, 0).await?, 5);
    let none = s
        .update_all::<Post>()
        .set(Post::LIKES, 1)
        .filter(Post::TITLE.eq("nope"))
        .execute()
        .await?;
    assert_eq!(none, 0);
    let err = s.update_all::<Post>().await.expect_err("no set");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    s.rollback().await?;
    Ok(())
}

pub async fn delete_all_counts_and_cascades(db: Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let a = s.insert(user("a")).await?;
    let b = s.insert(user("b")).await?;
    let pa = s.insert(post(a.id, "a1", 0)).await?;
    let pb = s.insert(post(b.id, "b1", 0)).await?;
    s.insert_many(vec![
        comment(pa.id, "x"),
        comment(pa.id, "y"),
        comment(pb.id, "z"),
    ])
    .await?;
    // A registered change is written before the bulk statement.
    s.add(comment(pb.id, "w"))?;
    let before = s.statement_count();
    let n = s
        .delete_all::<Comment>()
        .filter(Comment::BODY.eq("w"))
        .await?;
    assert_eq!(n, 1);
    assert_eq!(
        s.statement_count() - before,
        2,
        "the pending insert, then the delete"
    );

    let n = s.delete_all::<User>().filter(User::NAME.eq("a")).await?;
    assert_eq!(n, 1);
    assert_eq!(s.count::<Post>().await?, 1, "posts of a cascaded");
    assert_eq!(s.count::<Comment>().await?, 1, "and their comments");
    s.commit().await?;
    Ok(())
}
