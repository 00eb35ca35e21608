//! Guided examples of persist. Each example's logic lives here as a function,
//! so the test suite runs exactly what `cargo run --example …` runs.

pub mod axum_app;
pub mod ledger;
pub mod quickstart;
