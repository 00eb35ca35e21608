//! Every public async operation of a session, cut at every poll (see
//! [`super::harness`]).

use persist_core::prelude::*;

use super::harness::{Op, cut_every_poll};
use crate::common::TestResult;

pub async fn cut_commit_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::Commit).await
}

pub async fn cut_flush_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::Flush).await
}

pub async fn cut_insert_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::Insert).await
}

pub async fn cut_insert_many_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::InsertMany).await
}

pub async fn cut_upsert_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::Upsert).await
}

pub async fn cut_upsert_with_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::UpsertWith).await
}

pub async fn cut_find_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::Find).await
}

pub async fn cut_query_all_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::QueryAll).await
}

pub async fn cut_loader_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::Load).await
}

pub async fn cut_update_all_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::UpdateAll).await
}

pub async fn cut_update_all_expr_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::UpdateAllExpr).await
}

pub async fn cut_delete_all_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::DeleteAll).await
}

pub async fn cut_savepoint_rollback_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::SavepointRollback).await
}

pub async fn cut_savepoint_release_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::SavepointRelease).await
}

pub async fn cut_transaction_at_every_poll(db: Db) -> TestResult {
    cut_every_poll(db, Op::Transaction).await
}
