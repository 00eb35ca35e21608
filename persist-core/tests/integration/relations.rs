//! Declared relations: many-to-many through a join entity, self-reference,
//! and cascades emitted as the foreign keys' `ON DELETE`.

use persist_core::prelude::*;

use crate::common::TestResult;
use crate::rel_model::*;

pub async fn many_to_many_through_join_entity(db: Db) -> TestResult {
    db.create_tables::<Blog>().await?;
    let s = db.session().await?;
    let u = s.insert(user("a")).await?;
    let posts = s
        .insert_many(vec![
            post(u.id, "p1", 0),
            post(u.id, "p2", 0),
            post(u.id, "p3", 0),
        ])
        .await?;
    let tags = s
        .insert_many(
            ["rust", "sql", "orm"]
                .iter()
                .map(|l| Tag {
                    id: 0,
                    label: (*l).into(),
                })
                .collect(),
        )
        .await?;
    let link = |p: usize, t: usize| PostTag {
        post_id: posts[p].id,
        tag_id: tags[t].id,
    };
    s.insert_many(vec![link(0, 0), link(0, 1), link(1, 1), link(0, 2)])
        .await?;

    let before = s.statement_count();
    let by_post = posts.load::<Tag>(&s).await?;
    assert_eq!(s.statement_count() - before, 1, "one join per level");
    let labels = |g: &Vec<Tag>| g.iter().map(|t| t.label.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&by_post[0]), ["rust", "sql", "orm"]);
    assert_eq!(labels(&by_post[1]), ["sql"]);
    assert!(by_post[2].is_empty());

    // And back, from the other side of the join entity.
    let by_tag = tags.load::<Post>(&s).await?;
    let titles = |g: &Vec<Post>| g.iter().map(|p| p.title.clone()).collect::<Vec<_>>();
    assert_eq!(titles(&by_tag[0]), ["p1"]);
    assert_eq!(titles(&by_tag[1]), ["p1", "p2"]);
    assert_eq!(titles(&by_tag[2]), ["p1"]);
    s.commit().await?;

    // Deleting a post cascades to its join rows, not to the tags.
    let s = db.session().await?;
    s.delete(&posts[0])?;
    s.flush().await?;
    assert_eq!(s.count::<PostTag>().await?, 1);
    assert_eq!(s.count::<Tag>().await?, 3);
    s.rollback().await?;
    Ok(())
}

pub async fn self_reference_employee_manager(db: Db) -> TestResult {
    db.create_tables::<Employee>().await?;
    let s = db.session().await?;
    let boss = s
        .insert(Employee {
            id: 0,
            name: "boss".into(),
            manager_id: None,
        })
        .await?;
    let mid = s
        .insert(Employee {
            id: 0,
            name: "mid".into(),
            manager_id: Some(boss.id),
        })
        .await?;
    let staff = s
        .insert_many(
            ["x", "y"]
                .iter()
                .map(|n| Employee {
                    id: 0,
                    name: (*n).into(),
                    manager_id: Some(mid.id),
                })
                .collect(),
        )
        .await?;

    let everyone = s.query::<Employee>().order_by(Employee::ID).all().await?;
    let before = s.statement_count();
    let managers = everyone.load_parents::<Employee>(&s).await?;
    assert_eq!(s.statement_count() - before, 1);
    let names: Vec<_> = managers
        .iter()
        .map(|m| m.as_ref().map(|m| m.name.as_str()))
        .collect();
    assert_eq!(names, [None, Some("boss"), Some("mid"), Some("mid")]);

    let reports = everyone.load::<Employee>(&s).await?;
    assert_eq!(reports[0], vec![mid.clone()]);
    assert_eq!(reports[1], staff);
    assert!(reports[2].is_empty() && reports[3].is_empty());

    // on_delete = "set_null": deleting the middle manager orphans the staff.
    s.delete_by_key::<Employee>(&mid.id)?;
    let left = s
        .query::<Employee>()
        .filter(Employee::MANAGER_ID.is_null())
        .count()
        .await?;
    assert_eq!(left, 3);
    s.commit().await?;
    Ok(())
}

pub async fn cascade_delete_removes_children(db: Db) -> TestResult {
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
    s.insert(Profile {
        id: 0,
        user_id: a.id,
        bio: String::new(),
    })
    .await?;
    s.commit().await?;

    // users -> posts -> comments and users -> profile cascade in the database.
    let s = db.session().await?;
    // The session holds the children too; the cascade reaches them there.
    let held_post = s.find::<Post>(&pa.id).await?;
    assert!(held_post.is_some());
    let held_comments = s.all::<Comment>().await?;
    assert_eq!(held_comments.len(), 3);
    s.delete(&a)?;
    s.flush().await?;
    let before = s.statement_count();
    assert_eq!(
        s.find::<Post>(&pa.id).await?,
        None,
        "a cascaded child is not served from the identity map"
    );
    assert_eq!(
        s.find::<Comment>(&held_comments[0].id).await?,
        None,
        "nor its own children"
    );
    assert_eq!(
        s.statement_count(),
        before + 2,
        "both lookups went to the database"
    );
    assert_eq!(
        s.find::<Post>(&pb.id).await?,
        Some(pb.clone()),
        "other rows stay"
    );
    s.commit().await?;
    let s = db.session().await?;
    assert_eq!(s.all::<Post>().await?, vec![pb.clone()]);
    let bodies: Vec<_> = s
        .all::<Comment>()
        .await?
        .into_iter()
        .map(|c| c.body)
        .collect();
    assert_eq!(bodies, ["z"]);
    assert_eq!(s.count::<Profile>().await?, 0);
    s.rollback().await?;

    // Without a cascade, deleting a referenced row is still refused.
    let s = db.session().await?;
    let t = s
        .insert(Tag {
            id: 0,
            label: "t".into(),
        })
        .await?;
    s.insert(PostTag {
        post_id: pb.id,
        tag_id: t.id,
    })
    .await?;
    s.delete(&t)?;
    let err = s.flush().await.expect_err("tag is referenced");
    assert!(matches!(err, Error::ForeignKeyViolation { .. }), "{err:?}");
    s.rollback().await?;
    Ok(())
}
