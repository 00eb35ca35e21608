//! Cutting a future: polled at most N times, then dropped, as a client that
//! goes away or a `timeout` drops it. The fault suite cuts every public
//! operation with it; other crates' suites (the web layer's) include this
//! file to cut theirs.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

/// What became of a future run under [`cut_after`].
pub enum Cut<T> {
    /// It finished within the allowed polls.
    Completed(T),
    /// It was still pending at its last allowed poll and was dropped.
    Cut,
}

/// Polls `fut` at most `polls` times; still pending then, it is dropped
/// (after `linger`, during which it is not polled: a request already sent
/// reaches the server, as when `timeout` fires later than the last poll).
pub async fn cut_after<F: Future>(polls: usize, linger: Duration, fut: F) -> Cut<F::Output> {
    let mut fut = pin!(fut);
    let mut seen = 0;
    let done = poll_fn(|cx| {
        seen += 1;
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if seen >= polls => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match done {
        Some(v) => Cut::Completed(v),
        None => {
            if !linger.is_zero() {
                tokio::time::sleep(linger).await;
            }
            Cut::Cut
        }
    }
}
