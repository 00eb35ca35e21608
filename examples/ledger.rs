//! `cargo run --example ledger` — on embedded SQLite by default, or on the
//! PostgreSQL database at `$DATABASE_URL`.

#[tokio::main]
async fn main() -> Result<(), persist_core::error::Error> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let mut log = String::new();
    let summary = persist_examples::ledger::run(&url, &mut log).await;
    print!("{log}");
    let summary = summary?;
    println!("done: {summary:?}");
    Ok(())
}
