//! Batched loading: one statement per relation level, children grouped in
//! the parents' order.

use persist_core::prelude::*;

use crate::common::TestResult;
use crate::rel_model::*;

/// 100 users, user i with i % 4 posts, post j with j % 3 comments.
async fn seed(db: &Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let users = s
        .insert_many((0..100).map(|i| user(&format!("u{i}"))).collect())
        .await?;
    let posts: Vec<Post> = users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| (0..i % 4).map(move |j| post(u.id, &format!("p{i}.{j}"), j as i32)))
        .collect();
    let posts = s.insert_many(posts).await?;
    let comments: Vec<Comment> = posts
        .iter()
        .enumerate()
        .flat_map(|(j, p)| (0..j % 3).map(move |k| comment(p.id, &format!("c{j}.{k}"))))
        .collect();
    s.insert_many(comments).await?;
    s.commit().await?;
    Ok(())
}

pub async fn nested_loading_is_three_selects(db: Db) -> TestResult {
    seed(&db).await?;
    let s = db.session().await?;
    let before = s.statement_count();

    let users = s.all::<User>().await?;
    let posts = users.load::<Post>(&s).await?;
    let flat: Vec<Post> = posts.concat();
    let comments = s.load_related::<Comment, _>(&flat).await?;

    assert_eq!(
        s.statement_count() - before,
        3,
        "users, posts, comments: one SELECT each"
    );
    eprintln!(
        "{:?}: 100 users + posts + comments in {} SELECTs",
        db.backend(),
        s.statement_count() - before
    );
    assert_eq!(users.len(), 100);
    assert_eq!(posts.len(), 100);
    assert_eq!(flat.len(), (0..100).map(|i| i % 4).sum::<usize>());
    for (u, ps) in users.iter().zip(&posts) {
        let i: usize = u.name[1..].parse().expect("u<i>");
        assert_eq!(ps.len(), i % 4, "posts of {}", u.name);
        assert!(ps.iter().all(|p| p.user_id == u.id));
        assert!(
            ps.windows(2).all(|w| w[0].id < w[1].id),
            "key order in a group"
        );
    }
    assert_eq!(comments.len(), flat.len());
    let total: usize = comments.iter().map(Vec::len).sum();
    assert_eq!(total, (0..flat.len()).map(|j| j % 3).sum::<usize>());
    for (p, cs) in flat.iter().zip(&comments) {
        assert!(cs.iter().all(|c| c.post_id == p.id));
    }
    s.rollback().await?;
    Ok(())
}

pub async fn groups_follow_parent_order(db: Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let a = s.insert(user("a")).await?;
    let b = s.insert(user("b")).await?;
    let c = s.insert(user("c")).await?;
    let pa = s.insert(post(a.id, "a1", 0)).await?;
    let pc1 = s.insert(post(c.id, "c1", 0)).await?;
    let pc2 = s.insert(post(c.id, "c2", 0)).await?;

    // Reversed, with a duplicate and a parent without children.
    let parents = [c.clone(), b.clone(), a.clone(), c.clone()];
    let before = s.statement_count();
    let groups = parents.load::<Post>(&s).await?;
    assert_eq!(s.statement_count() - before, 1);
    assert_eq!(
        groups,
        vec![
            vec![pc1.clone(), pc2.clone()],
            vec![],
            vec![pa.clone()],
            vec![pc1, pc2]
        ]
    );

    // No parents: no statement.
    let before = s.statement_count();
    assert!(s.load_related::<Post, User>(&[]).await?.is_empty());
    assert_eq!(s.statement_count(), before);

    // Children seen from the other side: belongs-to.
    let posts = s.all::<Post>().await?;
    let before = s.statement_count();
    let authors = posts.load_parents::<User>(&s).await?;
    assert_eq!(s.statement_count() - before, 1);
    let names: Vec<_> = authors
        .iter()
        .map(|u| u.as_ref().map(|u| u.name.as_str()))
        .collect();
    assert_eq!(names, [Some("a"), Some("c"), Some("c")]);

    // An undeclared has-many through an explicit column.
    let groups = s.load_children_by(Post::USER_ID, &[a.clone(), b]).await?;
    assert_eq!(groups, vec![vec![pa], vec![]]);
    s.rollback().await?;
    Ok(())
}

pub async fn has_one_loads_one(db: Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let a = s.insert(user("a")).await?;
    let b = s.insert(user("b")).await?;
    let pa = s
        .insert(Profile {
            id: 0,
            user_id: a.id,
            bio: "hi".into(),
        })
        .await?;
    let profiles = [a, b].load_one::<Profile>(&s).await?;
    assert_eq!(profiles, vec![Some(pa), None]);
    s.rollback().await?;
    Ok(())
}

pub async fn many_parents_are_chunked(db: Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let users = s
        .insert_many((0..10_050).map(|i| user(&format!("u{i}"))).collect())
        .await?;
    let last = users.last().cloned().expect("users");
    s.insert(post(last.id, "last", 0)).await?;
    let before = s.statement_count();
    let groups = users.load::<Post>(&s).await?;
    // PostgreSQL sends every key as one array bind; the others 10 000 keys
    // per `IN` list.
    let expected = if db.backend() == persist_core::sql::Backend::Postgres {
        1
    } else {
        2
    };
    assert_eq!(
        s.statement_count() - before,
        expected,
        "10 000 keys per IN list"
    );
    assert_eq!(groups.len(), users.len());
    assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 1);
    assert_eq!(groups.last().map(Vec::len), Some(1));
    s.rollback().await?;
    Ok(())
}
