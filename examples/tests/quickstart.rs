//! The README's first command runs this logic; this test keeps it working.

use std::time::Duration;

#[tokio::test]
async fn quickstart_runs_on_embedded_sqlite() {
    let mut log = String::new();
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        persist_examples::quickstart::run("sqlite::memory:", &mut log),
    )
    .await
    .expect("quickstart timed out")
    .unwrap_or_else(|e| panic!("quickstart failed: {e}\n{log}"));
    assert_eq!(summary.rich_accounts, 1, "{log}");
    assert!(
        summary.conflict_detected,
        "the stale update must be rejected:\n{log}"
    );
    // 5000 - 1000 (other session) + 200 (re-applied deposit); the stale +200 was never written.
    assert_eq!(summary.final_balance, 4_200, "{log}");
    assert_eq!(summary.final_version, 3, "{log}");
    assert!(log.contains("stale update rejected"), "{log}");
}
