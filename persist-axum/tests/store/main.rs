//! `PersistSessionStore` through a real axum router and directly, on every
//! backend (`<backend>::<module>::<test>`), with and without the shared
//! cache as a tier.

#[allow(dead_code)]
#[path = "../../../persist-core/tests/integration/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../../../persist-core/tests/integration/faults/cut.rs"]
mod cut;

mod admin;
mod cached;
mod faults;
mod flow;
mod layered;
mod support;

suite! {
    flow: [
        no_session_no_cookie_no_row,
        bogus_cookie_gets_a_new_empty_session,
        malformed_cookies_get_a_new_empty_session,
        value_set_then_read,
        max_age_and_expiry,
        removing_the_last_value_removes_the_row,
        cycle_id_moves_the_data_and_kills_the_old_id,
        flush_removes_the_session_everywhere,
        undecodable_data_is_a_new_empty_session,
        database_down_is_a_backend_error_and_a_500,
    ],
    admin: [
        concurrent_creates_get_distinct_ids,
        create_retries_an_id_collision,
        delete_expired_is_one_statement,
        revoke_all_for_one_user,
        bound_per_user_deletes_the_oldest,
        custom_table_name,
        id_differing_in_case_is_another_session,
        one_statement_per_call,
        save_after_revoke_does_not_resurrect,
    ],
    layered: [beside_the_persist_layer],
    cached: [
        hot_session_loads_with_no_sql,
        cached_row_past_its_expiry_is_not_served,
        redis_second_db_never_serves_a_dead_id,
    ],
    faults: [
        store_calls_cut_at_every_poll,
        redis_down_the_store_uses_the_database,
    ],
}
