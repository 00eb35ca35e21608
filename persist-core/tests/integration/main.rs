//! The integration suite: written once, run on SQLite, PostgreSQL and
//! MariaDB/MySQL (`<backend>::<module>::<test>`).

mod common;
mod crud;
mod errors;
mod model;
mod query;
mod schema;
mod sessions;
mod smoke;
mod types;
mod versioning;

suite! {
    smoke: [roundtrip],
    crud: [
        insert_returns_generated_key,
        insert_many_returns_keys_in_order,
        insert_many_big_batch_is_chunked,
        find_and_find_many,
        all_count_exists,
        add_is_written_before_next_read,
        add_is_written_at_commit,
        update_writes_changed_columns,
        delete_and_delete_by_key,
        upsert_inserts_then_updates,
        composite_key_crud,
        generated_finders,
    ],
    query: [
        comparisons,
        is_in_and_like,
        null_checks,
        and_or_not,
        order_limit_offset,
        count_and_exists,
        one_and_optional,
        stream_yields_all_and_blocks_session,
        raw_sql_decodes_entity,
    ],
    errors: [
        unique_violation_names_constraint,
        duplicate_primary_key,
        foreign_key_violation,
        not_null_violation,
        encode_error_for_u64_above_i64_max,
        decode_error_for_out_of_range_value,
        session_failed_after_flush_error,
        failed_session_leaves_nothing,
    ],
    sessions: [
        commit_persists,
        rollback_discards,
        dropping_last_handle_rolls_back,
        transaction_commits_on_ok,
        transaction_rolls_back_on_err,
        statement_counters,
        closed_after_commit,
        sessions_see_each_others_data_after_commit,
        one_connection_per_session,
        concurrent_calls_on_one_session,
    ],
    versioning: [
        update_bumps_version,
        stale_update_of_detached_row,
        stale_update_of_concurrent_session,
        stale_delete,
        transaction_retries_stale,
        concurrent_increments_retry_until_done,
    ],
    schema: [
        create_tables_twice_is_fine,
        parents_created_first,
        drop_tables_removes,
        constraint_names_in_catalog,
    ],
    types: [all_types_round_trip, filters_on_every_type],
}
