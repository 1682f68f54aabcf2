//! Waiting for a condition: poll it until it holds or a limit passes. Limits are
//! generous: they catch a hang, they do not measure speed.

use std::time::{Duration, Instant};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(100);

/// Polls `cond` until it holds, failing the test with `what` after `limit` (async
/// tests: the runtime goes on between polls).
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The same for blocking tests.
pub fn eventually_blocking(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Polls an async probe until it gives a value, failing with `what` and whatever
/// `context` says (a process log, say) after `limit`.
pub async fn until<T>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_never_holds_fails_with_its_name() {
        let r = std::panic::catch_unwind(|| {
            eventually_blocking("the impossible", Duration::from_millis(250), || false)
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("the impossible"), "{msg}");
        let mut n = 0;
        eventually_blocking("the third poll", Duration::from_secs(5), || {
            n += 1;
            n == 3
        });
    }
}
