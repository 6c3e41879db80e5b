//! Shared helpers for the integration tests: an anchor instant and a scripted retry driver.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use http::StatusCode;
use mesh_resilience::{
    Admission, ConnectionPool, Outcome, PoolLimits, RetryDecision, RetryPolicy, RetryState,
};

/// The only clock read in the tests: an arbitrary anchor. Every time is `t0() + n ms`.
#[allow(clippy::disallowed_methods)]
pub fn t0() -> Instant {
    Instant::now()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn resp(code: u16) -> Outcome {
    Outcome::response(StatusCode::from_u16(code).unwrap())
}

/// What the scripted driver saw: the time (ms since start) and the decision.
pub type Timeline = Vec<(u64, RetryDecision)>;

/// Plays a request the way a driver would: each attempt starts, runs for `took` ms unless its
/// deadline ([`RetryState::attempt_deadline`]) fires first (then the outcome is a timeout at
/// the deadline), and the decision's backoff is slept. The script supplies one `(took,
/// outcome)` per attempt and `roll` is used for every backoff.
pub fn drive(policy: &RetryPolicy, script: &[(u64, Outcome)], roll: u64) -> (Timeline, RetryState) {
    let mut pool = ConnectionPool::new(PoolLimits::default());
    drive_with_pool(policy, &mut pool, script, roll)
}

pub fn drive_with_pool(
    policy: &RetryPolicy,
    pool: &mut ConnectionPool,
    script: &[(u64, Outcome)],
    roll: u64,
) -> (Timeline, RetryState) {
    let t0 = t0();
    let mut retry = RetryState::new(policy, t0);
    let mut now = t0;
    let mut timeline = Vec::new();
    for &(took, outcome) in script {
        let Ok(Admission::Ready(permit)) = pool.try_acquire_request() else {
            panic!("pool refused an attempt");
        };
        let deadline = retry.attempt_deadline(now);
        let finish = now + ms(took);
        let (at, outcome) = match deadline {
            Some(d) if d <= finish => (d, Outcome::Timeout),
            _ => (finish, outcome),
        };
        now = at;
        let decision = retry.on_outcome(outcome, now, roll, pool);
        let _ = pool.release(permit);
        timeline.push(((now - t0).as_millis() as u64, decision));
        match decision {
            RetryDecision::Retry { after } => now += after,
            RetryDecision::Done(_) => return (timeline, retry),
        }
    }
    panic!("script ran out before the request ended: {timeline:?}");
}
