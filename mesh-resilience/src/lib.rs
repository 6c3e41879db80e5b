//! Envoy-exact resilience policies as pure state machines: retries, backoff, deadlines,
//! connection-pool limits, outlier detection, fault injection and mirroring, with the
//! semantics Istio configures Envoy with.
//!
//! # What it does
//!
//! Each machine takes the facts of the moment as arguments and returns a decision as plain
//! data. The decisions are Envoy's own: `retryOn` conditions and their quirks (a per-try
//! timeout is retried only by `5xx`, `gateway-error` or `reset`; overflow is never retried),
//! full-jitter backoff as Envoy's code computes it, a route timeout that spans every attempt
//! and backoff, concurrent-retry limits, circuit-breaker overflow, consecutive-error
//! ejection with Envoy ≥ 1.27's ejection cap, and per-million fault and mirror sampling.
//!
//! | Machine | Input | Decision |
//! |---|---|---|
//! | [`RetryState`] ([`retry`]) | [`Outcome`], `now`, roll | [`RetryDecision`]: retry after a backoff, or done with a [`DoneReason`] |
//! | [`Deadlines`] ([`timeout`]) | request start, `now` | the deadline of the next attempt |
//! | [`ConnectionPool`] ([`pool`]) | admission requests, releases | [`Admission`] or [`Overflow`] |
//! | [`OutlierDetector`] ([`outlier`]) | endpoint, [`Outcome`], `now` | [`OutlierEvent`]s, ejected/available endpoints |
//! | [`FaultInjection`] ([`fault`]) | two rolls | [`FaultAction`] |
//! | [`MirrorPolicy`] ([`mirror`]) | roll | mirror or not |
//!
//! # What it never does
//!
//! No I/O, no clock reads (time is an [`Instant`](std::time::Instant) argument; the crate's
//! `clippy.toml` forbids `Instant::now`), no randomness (random rolls are `u64` arguments), no
//! async, no threads, no sleeping, no logging. Decisions never fail and never allocate (a test
//! with a counting allocator checks it); errors exist only in constructors. So every behaviour
//! is testable to the millisecond with `t0 + Duration::from_millis(n)`.
//!
//! # How a driver uses it
//!
//! A driver (the `mesh-tower` crate, or your own) owns the clock, the random numbers, the
//! client and the waiting. Per request, in Envoy's filter order:
//!
//! 1. **Fault**: [`FaultInjection::decide`] with two rolls. Sleep the delay; answer an abort
//!    directly (it is never retried and never reaches the pool or the outlier detector).
//! 2. **Mirror**: [`MirrorPolicy::should_mirror`] per mirror; fire and forget.
//! 3. **Retry loop**: [`RetryState::new`] with the route's [`RetryPolicy`] and the current time
//!    (after the fault delay). For each attempt:
//!    - pick an endpoint with [`RetryState::select_endpoint`], skipping ones the
//!      [`OutlierDetector`] reports unavailable ([`OutlierDetector::is_available`]);
//!    - get a permit from the cluster's [`ConnectionPool`] (waiting while pending; an
//!      [`Overflow`] becomes [`Outcome::Overflow`]);
//!    - bound the attempt by [`RetryState::attempt_deadline`] and classify what happens into
//!      an [`Outcome`];
//!    - [`OutlierDetector::record`] it (after [`OutlierDetector::sweep`] when due);
//!    - [`RetryState::on_outcome`]: sleep and loop on `Retry { after }`, or finish on
//!      `Done(reason)`;
//!    - give the pool permit back when the response body ends.
//!
//! # Example
//!
//! One request to a two-endpoint cluster: endpoint 0 is down, endpoint 1 answers.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use http::StatusCode;
//! use mesh_resilience::*;
//!
//! let t0 = Instant::now();
//! let ms = Duration::from_millis;
//! let policy = RetryPolicy::new(2, "connect-failure,5xx".parse()?)
//!     .with_deadlines(Deadlines::new(Some(ms(1000)), Some(ms(200)))?);
//! let mut pool = ConnectionPool::new(PoolLimits::default());
//! let mut outliers = OutlierDetector::new(
//!     OutlierConfig::builder().consecutive_5xx_errors(1).max_ejection_percent(50).build()?,
//!     ["10.0.0.1:8080", "10.0.0.2:8080"],
//!     t0,
//! );
//!
//! let mut retry = RetryState::new(&policy, t0);
//! let mut now = t0;
//! let mut lb = [0usize, 0, 1].into_iter(); // the load balancer's picks
//! let reason = loop {
//!     let endpoint = retry.select_endpoint(|| lb.next().unwrap());
//!     let Ok(Admission::Ready(permit)) = pool.try_acquire_request() else { unreachable!() };
//!     assert_eq!(retry.attempt_deadline(now), Some(now + ms(200)));
//!     now += ms(5);
//!     let outcome = if endpoint == 0 {
//!         Outcome::ConnectFailure
//!     } else {
//!         Outcome::response(StatusCode::OK)
//!     };
//!     let event = outliers.record(endpoint, outcome, now);
//!     let decision = retry.on_outcome(outcome, now, 42, &mut pool);
//!     let _ = pool.release(permit);
//!     if endpoint == 0 {
//!         assert!(matches!(event, Some(OutlierEvent::Ejected { endpoint: 0, .. })));
//!     }
//!     match decision {
//!         RetryDecision::Retry { after } => now += after,
//!         RetryDecision::Done(reason) => break reason,
//!     }
//! };
//! assert_eq!(reason, DoneReason::Success);
//! // The retry avoided endpoint 0: the second pick (0 again) was re-picked to 1.
//! assert_eq!(retry.tried_endpoints().iter().collect::<Vec<_>>(), vec![0, 1]);
//! assert_eq!(now, t0 + ms(5 + 42 % 25 + 5));
//! assert!(!outliers.is_available(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Differences from Envoy and Istio
//!
//! Each is documented where it applies:
//! - pending requests are those waiting for a connection permit, not for connection setup,
//!   and `maxRequestsPerConnection` above 1 is not enforced ([`pool`]);
//! - outlier state survives configuration changes ([`OutlierDetector::set_config`]);
//!   `outlierDetectionHttpErrorCodes` filters responses only ([`outlier`]);
//! - requests never arrive as early data, so a retriable 425 is always retried at once;
//! - request headers that change retries (`x-envoy-retry-on`, `x-envoy-max-retries`, …)
//!   are read by [`retry::EnvoyOverrides`] only when a driver trusts its caller (an Istio
//!   sidecar never does); hedging, `Retry-After` backoff and success-rate ejection are not
//!   implemented.
//!
//! MSRV: the workspace's `rust-version` (a rolling policy of at least six months old).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod fault;
pub mod headers;
pub mod mirror;
pub mod outcome;
pub mod outlier;
pub mod pool;
pub mod retry;
pub mod rng;
pub mod timeout;

/// The vocabulary this crate shares with `mesh-model`, which owns it (re-exported so that a
/// driver needs one import).
pub use mesh_model::{GrpcStatus, Percentage, RetryCondition, RetryOn, StatusCodeSet};

pub use fault::{
    AbortKind, FaultAbort, FaultAction, FaultDelay, FaultInjection, InvalidFault, FAULT_ABORT_BODY,
};
pub use mirror::MirrorPolicy;
pub use outcome::Outcome;
pub use outlier::{
    EjectionReason, InvalidOutlierConfig, OutlierConfig, OutlierConfigBuilder, OutlierDetector,
    OutlierEvent,
};
pub use pool::{
    Admission, ConnectionPool, InvalidRetryBudget, Overflow, PendingTicket, PoolLimits, Protocol,
    RequestPermit, RetryBudget, RetryPermit, DEFAULT_MAX_CONCURRENT_STREAMS, OVERFLOW_BODY,
    UNLIMITED,
};
pub use retry::{
    Backoff, DoneReason, InvalidBackoff, RetryDecision, RetryPolicy, RetryState, TriedEndpoints,
    TIMEOUT_BODY,
};
pub use timeout::{
    format_grpc_timeout, is_grpc_request, parse_grpc_timeout, Deadlines, InvalidDeadlines,
    GRPC_TIMEOUT,
};

/// The one clock read in the unit tests: an arbitrary anchor; every test time is
/// `anchor + n ms`, so nothing depends on the real clock.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_anchor() -> std::time::Instant {
    std::time::Instant::now()
}

/// Compiles and runs the README example as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
