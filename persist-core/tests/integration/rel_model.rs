//! Entities with relations: users → posts → comments, tags through a join
//! entity, a has-one profile, a self-referencing employee, and a job queue.

use persist_core::prelude::*;

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "users")]
#[persist(has_many(Post, by = "user_id", on_delete = "cascade"))]
#[persist(has_one(Profile, by = "user_id", on_delete = "cascade"))]
pub struct User {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
}

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "posts")]
#[persist(has_many(Comment, by = "post_id", on_delete = "cascade"))]
#[persist(many_to_many(
    Tag,
    through = "PostTag",
    by = "post_id",
    to = "tag_id",
    on_delete = "cascade"
))]
pub struct Post {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "User")]
    pub user_id: i64,
    pub title: String,
    pub likes: i32,
    #[persist(version)]
    pub version: i64,
}

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "comments")]
pub struct Comment {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(references = "Post")]
    pub post_id: i64,
    pub body: String,
}

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "tags")]
#[persist(many_to_many(Post, through = "PostTag", by = "tag_id", to = "post_id"))]
pub struct Tag {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique)]
    pub label: String,
}

/// The join entity of posts and tags.
#[derive(Entity, Clone, Debug, PartialEq)]
#[persist(table = "post_tags")]
pub struct PostTag {
    #[persist(primary_key, references = "Post")]
    pub post_id: i64,
    #[persist(primary_key, references = "Tag")]
    pub tag_id: i64,
}

#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "profiles")]
pub struct Profile {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    #[persist(unique, references = "User")]
    pub user_id: i64,
    pub bio: String,
}

/// Self-reference: an employee's manager is an employee.
#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "employees")]
#[persist(has_many(Employee, by = "manager_id", on_delete = "set_null"))]
pub struct Employee {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub name: String,
    #[persist(references = "Employee")]
    pub manager_id: Option<i64>,
}

/// A job queue row, for row locking.
#[derive(Entity, Clone, Debug, PartialEq, Default)]
#[persist(table = "jobs")]
pub struct Job {
    #[persist(primary_key, auto_increment)]
    pub id: i64,
    pub state: String,
    #[persist(version)]
    pub version: i64,
}

/// Every relation table, parents first.
pub type Blog = (User, Profile, Post, Comment, Tag, PostTag);

pub fn user(name: &str) -> User {
    User {
        id: 0,
        name: name.into(),
    }
}

pub fn post(user_id: i64, title: &str, likes: i32) -> Post {
    Post {
        user_id,
        title: title.into(),
        likes,
        ..Default::default()
    }
}

pub fn comment(post_id: i64, body: &str) -> Comment {
    Comment {
        id: 0,
        post_id,
        body: body.into(),
    }
}
