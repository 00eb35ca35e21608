//! The request layer through a real axum router, on SQLite (direct and
//! sqlx paths), PostgreSQL and MariaDB/MySQL (`<backend>::<module>::<test>`).

#[allow(dead_code)]
#[path = "../../../persist-core/tests/integration/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../../../persist-core/tests/integration/faults/cut.rs"]
mod cut;

mod app;
mod contended;
mod faults;
mod outcomes;

suite! {
    outcomes: [
        commit_on_2xx_and_3xx,
        rollback_on_4xx_and_5xx,
        commit_error_replaces_the_response,
        handler_errors_use_the_layers_mapper,
        request_without_database_takes_no_connection,
        session_current_is_the_requests_session,
        read_only_get_cannot_write,
        isolation_is_the_layers,
        route_without_layer_is_a_500,
        span_records_statements_and_outcome,
        on_session_names_the_revision,
    ],
    faults: [
        panic_rolls_back,
        dropped_request_leaves_nothing_and_no_connection,
        cut_at_every_poll,
        killed_connection_is_a_500_and_keeps_nothing,
    ],
    contended: [
        checkout_in_transactions_sells_exactly_the_stock,
        transaction_after_the_request_wrote_does_not_wait_on_itself,
        idempotent_request_is_retried_on_a_stale_row,
        post_is_never_retried,
    ],
}
