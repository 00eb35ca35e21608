//! The integration suite: written once, run on SQLite, PostgreSQL and
//! MariaDB/MySQL (`<backend>::<module>::<test>`).

mod aggregates;
mod auditable;
mod batched_updates;
mod bulk;
mod cache;
mod cache_reads;
mod common;
mod crud;
mod custom_types;
mod errors;
mod faults;
mod guarantees;
mod history;
mod hooks;
mod identity;
mod joins;
mod key_lists;
mod loaders;
mod locking;
mod model;
mod query;
mod raw;
mod regressions_small;
mod rel_model;
mod relations;
mod schema;
mod sessions;
mod shop;
mod smoke;
mod soft_delete;
mod sqlite_begin;
mod sqlite_direct;
mod sqlite_statements;
mod types;
mod uow;
mod versioning;

suite! {
    batched_updates: [
        many_updates_are_one_statement,
        stale_rows_are_found_by_key,
        every_type_in_a_batch,
        composite_keys_in_a_batch,
        cut_batched_commit_at_every_poll,
    ],
    auditable: [
        soft_delete_cascade_is_in_the_history,
        interceptors_see_soft_delete_cascades,
    ],
    hooks: [
        hooks_run_once_per_change_in_flush_order,
        hook_veto_writes_nothing,
        after_rollback_is_told_what_was_written,
        interceptor_sees_changes_bulk_writes_and_cascades,
        interceptor_adds_rows_to_the_same_flush,
        interceptor_veto_writes_nothing,
        cut_commit_with_hooks_and_interceptor_at_every_poll,
    ],
    history: [
        insert_update_delete_are_versions,
        bulk_update_records_the_values_the_database_computed,
        delete_by_key_and_delete_all_keep_the_last_values,
        cascaded_children_are_recorded,
        rollback_leaves_no_revision,
        insert_many_and_upsert_are_recorded,
        one_revision_per_transaction_with_actor_and_info,
        as_of_every_revision_and_between,
        revision_changes_span_three_entities,
        restore_updated_and_deleted_rows,
        audited_flush_sends_one_history_statement,
        cut_audited_commit_at_every_poll,
        cut_history_reads_and_restore_at_every_poll,
        autocommit_session_refuses_audited_writes,
        composite_keys_and_savepoints,
    ],
    shop: [
        app_error_rolls_back_and_comes_out,
        app_error_after_a_stale_row_is_retried,
        stale_at_commit_is_retried_with_app_errors,
        app_error_after_a_unique_violation_is_not_retried,
        atomic_decrement_sells_exactly_the_stock,
        checkout_sends_no_read,
        expressions_chain_and_count_matched_rows,
        expression_overflow_is_an_error,
        upsert_adds_to_the_stored_quantity,
        upsert_on_a_unique_field_answers_the_stored_row,
        upsert_refuses_to_set_its_target,
    ],
    smoke: [roundtrip],
    soft_delete: [
        delete_marks_the_row_and_every_read_hides_it,
        with_deleted_and_only_deleted,
        restore_makes_the_row_visible,
        delete_permanently_removes_the_row,
        soft_delete_cascades_two_levels_in_one_flush,
        delete_all_soft_deletes_cascades_and_counts,
        update_all_skips_soft_deleted_rows,
        stale_soft_delete_is_stale_with_its_key,
        shared_cache_does_not_serve_soft_deleted_rows,
        cut_soft_delete_flush_at_every_poll,
        cut_soft_delete_all_at_every_poll,
        unique_live_frees_the_value_of_soft_deleted_rows,
        many_to_many_leaves_out_soft_deleted_targets_and_links,
        upsert_answers_the_row_it_wrote_marked_or_not,
    ],
    cache_reads: [
        warm_cache_reads_send_no_statement,
        committed_and_rolled_back_writes_then_cached_reads,
        evict_and_refresh_after_outside_writes,
        evict_is_seen_by_another_process_on_redis,
        cached_reads_with_redis_down_use_the_database,
        dropped_cached_reads_leave_no_wrong_entry,
    ],
    cache: [
        insert_commit_then_cached,
        rollback_leaves_cache_unchanged,
        uncommitted_update_is_invisible,
        bulk_update_evicts,
        slow_loader_cannot_put_back_old_row,
        concurrent_misses_load_once,
        malformed_cached_value_is_a_miss,
        query_cache_until_a_write_commits,
        two_processes_share_redis,
        redis_outage_falls_back_to_the_database,
        derive_attribute_opts_in,
    ],
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
        i32_auto_keys_come_back,
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
    guarantees: [
        savepoint_rollback_never_reaches_the_cache,
        set_null_children_are_invalidated,
        raw_write_invalidates_rows_and_queries,
        cached_reads_lose_no_update,
        second_write_session_in_a_task,
        cut_commit_still_invalidates_the_cache,
        close_wait_is_bounded,
        isolation_is_read_from_the_server,
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
    sqlite_begin: [
        read_only_reader_does_not_queue_behind_an_open_writer,
        default_reader_queues_until_the_writer_commits,
        default_sessions_that_read_then_write_take_turns,
        a_session_cut_while_waiting_holds_up_nobody,
    ],
    sessions: [
        commit_persists,
        rollback_discards,
        dropping_last_handle_rolls_back,
        transaction_commits_on_ok,
        transaction_rolls_back_on_err,
        statement_counters,
        reusable_after_commit,
        sessions_see_each_others_data_after_commit,
        one_connection_per_session,
        concurrent_calls_on_one_session,
        transaction_inside_a_scope,
        autocommit_reads_see_each_commit_and_refuse_writes,
        autocommit_read_cut_at_every_poll,
        autocommit_writes_commit_one_statement_each,
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
        leading_key_column_gets_no_extra_index,
        create_tables_again_logs_no_notices,
    ],
    types: [all_types_round_trip, filters_on_every_type],
    custom_types: [
        newtypes_round_trip_and_filter,
        db_enum_stores_serde_names,
        decimal_round_trip_and_filters,
        decimal_through_shared_cache,
    ],
    relations: [
        many_to_many_through_join_entity,
        self_reference_employee_manager,
        cascade_delete_removes_children,
    ],
    loaders: [
        nested_loading_is_three_selects,
        groups_follow_parent_order,
        has_one_loads_one,
        many_parents_are_chunked,
    ],
    joins: [left_join_matches_loader, inner_join_filters_both_sides],
    key_lists: [loaders_take_lists_of_every_length, find_many_and_is_in_take_lists_of_every_length],
    aggregates: [projections_into_tuples_and_structs, aggregates_group_by_having],
    bulk: [update_all_bumps_versions_and_counts, delete_all_counts_and_cascades],
    locking: [for_update_blocks_second_session, skip_locked_skips_locked_rows],
    uow: [
        parents_first_one_batched_child_insert,
        flush_inserts_in_fixed_batch_sizes,
        flush_then_find_generated_keys,
        children_deleted_before_parents,
        self_referencing_rows,
        delete_then_add_is_one_update,
        unchanged_update_sends_nothing,
        update_sets_only_changed_columns,
        stale_version_on_update_and_delete,
        failed_flush_refused_until_rollback,
        savepoint_rollback_drops_later_registrations,
        nested_savepoints,
        savepoint_of_an_ended_transaction_is_refused,
        writers_queue_on_sqlite_readers_do_not,
        concurrent_bank_transfers,
        current_session_in_scope,
        isolation_option_accepted,
        random_sessions_match_model,
    ],
    regressions_small: [
        many_distinct_statements_then_close,
        multi_row_insert_keys_follow_the_session_increment,
        small_version_wraps_and_still_detects_lost_updates,
        huge_cache_durations_work,
        cached_rows_of_another_layout_are_misses,
        shared_cache_across_a_layout_change,
    ],
    identity: [
        in_session_state_without_sql,
        refresh_detach_clear,
        identity_map_limit_evicts_only_clean,
        identity_map_off,
        autoflush_before_query,
        rollback_discards_and_empties_map,
        statement_counts,
    ],
    raw: [
        execute_counts_rows_commits_and_rolls_back,
        execute_failure_is_mapped_and_fails_the_session,
        raw_as_tuples_nulls_and_shape_errors,
        raw_from_row_struct,
        raw_writes_invalidate_the_cache_at_commit,
        cut_raw_at_every_poll,
        sqlx_pool_is_reachable,
    ],
    faults: [
        cut_commit_at_every_poll,
        cut_flush_at_every_poll,
        cut_insert_at_every_poll,
        cut_insert_many_at_every_poll,
        cut_upsert_at_every_poll,
        cut_upsert_with_at_every_poll,
        cut_find_at_every_poll,
        cut_query_all_at_every_poll,
        cut_loader_at_every_poll,
        cut_update_all_at_every_poll,
        cut_update_all_expr_at_every_poll,
        cut_delete_all_at_every_poll,
        cut_savepoint_rollback_at_every_poll,
        cut_savepoint_release_at_every_poll,
        cut_transaction_at_every_poll,
        abandoned_savepoint_transaction_is_not_committed_by_next_session,
        commit_retried_after_timeout_writes_each_row_once,
        panic_in_transaction_with_savepoint_commits_nothing,
        killed_mid_flush_is_all_or_nothing,
        connection_killed_mid_transaction,
        connection_killed_mid_commit,
        redis_stopped_and_paused_during_commits,
    ],
}
