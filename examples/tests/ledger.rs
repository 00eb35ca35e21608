//! `cargo run --example ledger` runs this logic; this test keeps it working
//! (on embedded SQLite; the integration suite runs the features it uses on
//! every backend).

use std::time::Duration;

use persist_examples::ledger::{Summary, run};

async fn ledger(url: &str) -> (Summary, String) {
    let mut log = String::new();
    let summary = tokio::time::timeout(Duration::from_secs(60), run(url, &mut log))
        .await
        .expect("ledger timed out")
        .unwrap_or_else(|e| panic!("ledger failed: {e}\n{log}"));
    (summary, log)
}

fn check(summary: &Summary, log: &str) {
    assert_eq!(summary.versions, 2, "opened, then the mistake:\n{log}");
    assert_eq!(summary.mistake_by.as_deref(), Some("intern"), "{log}");
    assert_eq!(summary.restored_balance, 10_000, "{log}");
    assert!(summary.refused_close, "{log}");
    // The account and its one entry.
    assert_eq!(summary.closed_rows, 2, "{log}");
    assert!(summary.number_reused, "{log}");
    assert!(log.contains("NoClosingWithMoney refused: account"), "{log}");
}

#[tokio::test]
async fn ledger_runs_on_embedded_sqlite() {
    let (summary, log) = ledger("sqlite::memory:").await;
    check(&summary, &log);
    assert!(log.contains("opened ACC-1 for \"Ada Lovelace\""), "{log}");
}
