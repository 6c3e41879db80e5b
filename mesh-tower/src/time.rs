//! The one clock of the crate.
//!
//! Every deadline and measurement goes through [`now`], which reads tokio's
//! clock: tests run with `#[tokio::test(start_paused = true)]` control it
//! exactly, and production code gets the monotonic clock.

/// The current instant on tokio's clock (pausable in tests). The crate's `clippy.toml`
/// forbids every other clock read.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// The wall clock, for the access log's start time only (never for deadlines).
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let start = super::now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(super::now() - start, Duration::from_secs(3600));
    }
}
