//! Retries: Envoy's retry state machine for one request.
//!
//! A [`RetryPolicy`] is the validated, `Copy` description of a route's retries (Istio
//! `retries` plus the route `timeout`). Each request gets a [`RetryState`], which answers
//! three questions:
//!
//! * **When must this attempt give up?** [`RetryState::attempt_deadline`]: the earlier of the
//!   route deadline (which spans all attempts and backoff) and `now + perTryTimeout`.
//! * **Which endpoint?** [`RetryState::select_endpoint`]: Envoy's `previous_hosts` predicate,
//!   re-picking up to `host_selection_retry_max_attempts` times to avoid endpoints already
//!   tried.
//! * **Retry or stop?** [`RetryState::on_outcome`] gives a [`RetryDecision`]: retry after a
//!   backoff, or [`Done`](RetryDecision::Done) with the [`DoneReason`].
//!
//! # Envoy's rules, in the order they apply
//!
//! 1. The outcome is checked against `retryOn` ([`RetryOn`]): overflow is never retried; a
//!    per-try timeout is retried only by `5xx`, `gateway-error` or `reset`.
//! 2. `attempts` retries at most: `1 + attempts` attempts in all
//!    ([`DoneReason::AttemptsExhausted`], Envoy flag `URX`).
//! 3. The cluster's concurrent-retry limits (`maxRetries` and the retry budget, held by the
//!    [`ConnectionPool`]) must have room ([`DoneReason::RetryOverflow`], flag `UO`). The slot is
//!    held during the backoff and the retry, and given back at the next decision.
//! 4. The backoff wait is drawn ([`Backoff`]); if the route deadline would pass before it
//!    ends, the request ends with [`DoneReason::RouteTimeout`] (504, flag `UT`).
//!
//! # Driver loop
//!
//! ```
//! use std::time::{Duration, Instant};
//! use http::StatusCode;
//! use mesh_resilience::*;
//!
//! let policy = RetryPolicy::new(2, "5xx".parse()?)
//!     .with_deadlines(Deadlines::new(Some(Duration::from_secs(1)), None)?);
//! let mut pool = ConnectionPool::new(PoolLimits::default());
//! let t0 = Instant::now();
//! let mut retry = RetryState::new(&policy, t0);
//! let mut now = t0;
//! let upstream = [StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK];
//! let mut rolls = 7u64..;
//!
//! let reason = loop {
//!     let _deadline = retry.attempt_deadline(now); // bound the attempt with this
//!     let endpoint = retry.select_endpoint(|| 0); // the load balancer's pick
//!     let Ok(Admission::Ready(permit)) = pool.try_acquire_request() else { unreachable!() };
//!     now += Duration::from_millis(10); // the attempt takes 10 ms
//!     let outcome = Outcome::response(upstream[retry.attempt() as usize - 1]);
//!     let decision = retry.on_outcome(outcome, now, rolls.next().unwrap(), &mut pool);
//!     let _ = pool.release(permit); // (a real driver releases when the body ends)
//!     match decision {
//!         RetryDecision::Retry { after } => now += after,
//!         RetryDecision::Done(reason) => break reason,
//!     }
//! };
//! assert_eq!(reason, DoneReason::Success);
//! assert_eq!(retry.attempt(), 2);
//! assert_eq!(now, t0 + Duration::from_millis(10 + 7 % 25 + 10));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backoff;
mod hosts;
mod on;
mod overrides;

use std::fmt;
use std::time::{Duration, Instant};

pub use backoff::{Backoff, InvalidBackoff};
pub use hosts::{TriedEndpoints, TRIED_ENDPOINTS_CAPACITY};
pub use on::would_retry;
pub use overrides::EnvoyOverrides;

use mesh_model::RetryOn;

use crate::outcome::Outcome;
use crate::pool::{ConnectionPool, Overflow, RetryPermit};
use crate::timeout::{min_deadline, Deadlines};
use on::Verdict;

/// How a route retries: Istio's `retries` block and the route `timeout`, validated.
///
/// `Copy`: each [`RetryState`] takes its own copy, so a state never borrows the route table.
///
/// ```
/// use std::time::Duration;
/// use mesh_model::RetryOn;
/// use mesh_resilience::{Backoff, RetryPolicy};
///
/// // Istio's default when a route has no `retries` block.
/// let d = RetryPolicy::istio_default();
/// assert_eq!(d.num_retries(), 2);
/// assert_eq!(d.retry_on().to_string(),
///     "connect-failure,refused-stream,retriable-status-codes,cancelled,unavailable");
///
/// // `retries: {attempts: 3, retryOn: "5xx", backoff: 50ms, retryIgnorePreviousHosts: false}`
/// let p = RetryPolicy::new(3, "5xx".parse()?)
///     .with_backoff(Backoff::new(Duration::from_millis(50))?)
///     .with_previous_hosts(false);
/// assert_eq!(p.max_attempts(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    num_retries: u32,
    retry_on: RetryOn,
    backoff: Backoff,
    deadlines: Deadlines,
    previous_hosts: bool,
    host_selection_retry_max_attempts: u32,
}

impl RetryPolicy {
    /// Istio always sets Envoy's `host_selection_retry_max_attempts` to 5.
    pub const ISTIO_HOST_SELECTION_RETRY_MAX_ATTEMPTS: u32 = 5;

    /// `num_retries` retries (Istio `attempts`) on `retry_on`, with Istio's other defaults:
    /// 25 ms backoff, no timeouts, previous-hosts avoidance on with 5 host re-selections.
    ///
    /// Istio's `attempts: 0` means no retry policy at all: use [`RetryPolicy::disabled`] (with
    /// `new(0, ..)` a retriable failure ends as [`DoneReason::AttemptsExhausted`], Envoy's
    /// `URX`, instead of [`DoneReason::NotRetriable`]).
    pub fn new(num_retries: u32, retry_on: RetryOn) -> Self {
        Self {
            num_retries,
            retry_on,
            backoff: Backoff::ENVOY_DEFAULT,
            deadlines: Deadlines::NONE,
            previous_hosts: true,
            host_selection_retry_max_attempts: Self::ISTIO_HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        }
    }

    /// Istio's policy for a route without `retries` (istio/istio `retry.go`): 2 retries on
    /// [`RetryOn::istio_default`].
    pub fn istio_default() -> Self {
        Self::new(2, RetryOn::istio_default())
    }

    /// No retries (Istio `attempts: 0`). Timeouts can still be set with
    /// [`with_deadlines`](Self::with_deadlines).
    pub fn disabled() -> Self {
        Self::new(0, RetryOn::empty())
    }

    /// Sets the retry conditions.
    #[must_use]
    pub fn with_retry_on(mut self, retry_on: RetryOn) -> Self {
        self.retry_on = retry_on;
        self
    }

    /// Sets the number of retries (Istio `attempts`).
    #[must_use]
    pub fn with_num_retries(mut self, n: u32) -> Self {
        self.num_retries = n;
        self
    }

    /// Sets the backoff (Istio `backoff` sets the base only: see [`Backoff::new`]).
    #[must_use]
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the route and per-try timeouts.
    #[must_use]
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Whether retries avoid endpoints already tried (Envoy's `previous_hosts` predicate).
    /// Istio turns it off for `retryIgnorePreviousHosts: false` and for destinations that use
    /// consistent hashing.
    #[must_use]
    pub fn with_previous_hosts(mut self, on: bool) -> Self {
        self.previous_hosts = on;
        self
    }

    /// Envoy's `host_selection_retry_max_attempts`: how many times the load balancer may
    /// **re**-pick (so up to this + 1 picks) to avoid a tried endpoint.
    #[must_use]
    pub fn with_host_selection_retry_max_attempts(mut self, n: u32) -> Self {
        self.host_selection_retry_max_attempts = n;
        self
    }

    /// Retries allowed (Istio `attempts`).
    pub fn num_retries(&self) -> u32 {
        self.num_retries
    }

    /// Attempts allowed in all: `1 + num_retries`.
    pub fn max_attempts(&self) -> u64 {
        1 + u64::from(self.num_retries)
    }

    /// The retry conditions.
    pub fn retry_on(&self) -> &RetryOn {
        &self.retry_on
    }

    /// The backoff.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The timeouts.
    pub fn deadlines(&self) -> &Deadlines {
        &self.deadlines
    }

    /// Whether previous-hosts avoidance is on.
    pub fn previous_hosts(&self) -> bool {
        self.previous_hosts
    }

    /// Envoy's `host_selection_retry_max_attempts`.
    pub fn host_selection_retry_max_attempts(&self) -> u32 {
        self.host_selection_retry_max_attempts
    }
}

impl Default for RetryPolicy {
    /// [`RetryPolicy::istio_default`].
    fn default() -> Self {
        Self::istio_default()
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryDecision {
    /// Wait `after` (zero for Envoy's immediate retries), then send the next attempt.
    Retry {
        /// The backoff wait.
        after: Duration,
    },
    /// The request is over.
    Done(DoneReason),
}

/// Why a request ended, and what the driver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DoneReason {
    /// A final response that is not a failure (1xx–4xx, gRPC `OK` or no gRPC status) and that
    /// `retryOn` does not retry. Return it.
    Success,
    /// A failure that `retryOn` does not retry (including every [`Outcome::Overflow`]). Return
    /// the response as is; a transport failure becomes Envoy's local reply (503 with the
    /// reset reason, 503 overflow, or 504 `upstream request timeout` for a per-try timeout).
    NotRetriable,
    /// Retriable, but all `1 + attempts` attempts were used (Envoy flag `URX`). Return the last
    /// result as above.
    AttemptsExhausted,
    /// Retriable, but the cluster's concurrent-retry limit was full (flag `UO`). Return the
    /// last result as above.
    RetryOverflow(Overflow),
    /// The route timeout passed, or would pass before the backoff ends. Answer 504 with body
    /// `upstream request timeout` (flag `UT`). Envoy sends it when its timer fires, at
    /// [`RetryState::route_deadline`]; a driver may answer at once or wait until then.
    RouteTimeout,
}

impl fmt::Display for DoneReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DoneReason::Success => f.write_str("success"),
            DoneReason::NotRetriable => f.write_str("not retriable"),
            DoneReason::AttemptsExhausted => f.write_str("retry limit exceeded"),
            DoneReason::RetryOverflow(o) => write!(f, "retry {o}"),
            DoneReason::RouteTimeout => f.write_str("route timeout"),
        }
    }
}

/// Body of Envoy's 504 when the route (or per-try) timeout fires.
pub const TIMEOUT_BODY: &str = "upstream request timeout";

/// The retry state of one request. See the [module docs](self) for the driver loop.
///
/// It holds no reference and never allocates. If it is dropped after a
/// [`Retry`](RetryDecision::Retry) decision without reporting the next outcome (the caller gave
/// up during the backoff or the retry), call [`RetryState::release`] first so the cluster's
/// retry slot is given back.
#[derive(Debug)]
pub struct RetryState {
    policy: RetryPolicy,
    start: Instant,
    route_deadline: Option<Instant>,
    retries_remaining: u32,
    attempt: u32,
    next_backoff_ms: u64,
    retry_permit: Option<RetryPermit>,
    tried: TriedEndpoints,
    done: Option<DoneReason>,
}

impl RetryState {
    /// A request whose route timeout starts at `start` (Envoy: when the downstream request is
    /// complete; after any injected fault delay).
    pub fn new(policy: &RetryPolicy, start: Instant) -> Self {
        Self {
            policy: *policy,
            start,
            route_deadline: policy.deadlines.route_deadline(start),
            retries_remaining: policy.num_retries,
            attempt: 1,
            next_backoff_ms: policy.backoff.first_interval_ms(),
            retry_permit: None,
            tried: TriedEndpoints::new(),
            done: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// When the route timeout started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The current attempt, 1-based (what Envoy sends as `x-envoy-attempt-count`).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the current attempt is a retry.
    pub fn is_retry(&self) -> bool {
        self.attempt > 1
    }

    /// Retries still allowed by `attempts`.
    pub fn retries_remaining(&self) -> u32 {
        self.retries_remaining
    }

    /// The route deadline, if the route has a timeout.
    pub fn route_deadline(&self) -> Option<Instant> {
        self.route_deadline
    }

    /// The deadline of an attempt that gets its connection at `now`: the earlier of the route
    /// deadline and `now + per-try timeout` (per-try timeouts `>=` the route timeout are
    /// ignored). If it fires before response headers, report [`Outcome::Timeout`].
    pub fn attempt_deadline(&self, now: Instant) -> Option<Instant> {
        min_deadline(
            self.route_deadline,
            self.policy
                .deadlines
                .per_try()
                .and_then(|p| now.checked_add(p)),
        )
    }

    /// How many times the load balancer may pick for this attempt: Envoy's
    /// `hostSelectionRetryCount() + 1`, that is 2 on the first attempt (nothing is avoided
    /// yet, so the first pick is kept) and `host_selection_retry_max_attempts + 1` on retries
    /// (6 with Istio's 5).
    pub fn host_picks(&self) -> u32 {
        let reselections = if self.is_retry() {
            self.policy.host_selection_retry_max_attempts
        } else {
            1
        };
        reselections.saturating_add(1)
    }

    /// Envoy's `shouldSelectAnotherHost`: whether a pick of `endpoint` should be replaced
    /// because this request already tried it (only with previous-hosts avoidance on).
    pub fn should_reselect(&self, endpoint: usize) -> bool {
        self.policy.previous_hosts && self.tried.contains(endpoint)
    }

    /// Records that the current attempt goes to `endpoint` (Envoy's `onHostAttempted`).
    pub fn record_endpoint(&mut self, endpoint: usize) {
        self.tried.record(endpoint);
    }

    /// Runs Envoy's host-selection loop: calls `pick` (the load balancer) up to
    /// [`host_picks`](Self::host_picks) times until it returns an endpoint that should not be
    /// re-selected, keeps the last pick if all were rejected, records it and returns it.
    pub fn select_endpoint(&mut self, mut pick: impl FnMut() -> usize) -> usize {
        let mut chosen = pick();
        for _ in 1..self.host_picks() {
            if !self.should_reselect(chosen) {
                break;
            }
            chosen = pick();
        }
        self.tried.record(chosen);
        chosen
    }

    /// The endpoints tried so far.
    pub fn tried_endpoints(&self) -> &TriedEndpoints {
        &self.tried
    }

    /// Why the request ended, once it has.
    pub fn done_reason(&self) -> Option<DoneReason> {
        self.done
    }

    /// Decides what follows an attempt that ended with `outcome` at `now`, drawing the backoff
    /// from `roll`. `pool` is the destination cluster's pool, which holds the concurrent-retry
    /// limits. Never allocates. Once the request is done, every call returns the same
    /// [`Done`](RetryDecision::Done).
    ///
    /// An outcome reported at or after the route deadline ends the request with
    /// [`DoneReason::RouteTimeout`] if it is a timeout or would be retried; a final response
    /// that arrives then is still returned as it is.
    ///
    /// The retry budget is a share of the cluster's active requests, so the moment the
    /// attempt's [`RequestPermit`](crate::RequestPermit) is released matters slightly: Envoy
    /// decides on a response while its stream still counts as active, and on a reset after the
    /// stream is gone. Deciding before releasing the permit matches the response case.
    pub fn on_outcome(
        &mut self,
        outcome: Outcome,
        now: Instant,
        roll: u64,
        pool: &mut ConnectionPool,
    ) -> RetryDecision {
        if let Some(reason) = self.done {
            return RetryDecision::Done(reason);
        }
        // Envoy releases the retry resource at the start of every decision.
        self.release(pool);

        let past_deadline = self.route_deadline.is_some_and(|d| now >= d);
        if past_deadline && outcome == Outcome::Timeout {
            return self.finish(DoneReason::RouteTimeout);
        }
        let verdict = on::verdict(&self.policy.retry_on, &outcome);
        if verdict == Verdict::No {
            return self.finish(if outcome.is_failure() {
                DoneReason::NotRetriable
            } else {
                DoneReason::Success
            });
        }
        if past_deadline {
            return self.finish(DoneReason::RouteTimeout);
        }
        if self.retries_remaining == 0 {
            return self.finish(DoneReason::AttemptsExhausted);
        }
        self.retries_remaining -= 1;
        let permit = match pool.try_acquire_retry() {
            Ok(p) => p,
            Err(overflow) => return self.finish(DoneReason::RetryOverflow(overflow)),
        };
        let after = if verdict == Verdict::Immediately {
            Duration::ZERO
        } else {
            let ms = roll % self.next_backoff_ms;
            self.next_backoff_ms = self.policy.backoff.next_interval_ms(self.next_backoff_ms);
            Duration::from_millis(ms)
        };
        if let Some(deadline) = self.route_deadline {
            if now.checked_add(after).is_none_or(|t| t >= deadline) {
                pool.release_retry(permit);
                return self.finish(DoneReason::RouteTimeout);
            }
        }
        self.retry_permit = Some(permit);
        self.attempt = self.attempt.saturating_add(1);
        RetryDecision::Retry { after }
    }

    /// Whether the request holds a cluster retry slot (from a [`Retry`](RetryDecision::Retry)
    /// decision until the next outcome): a driver only needs [`release`](Self::release) then.
    pub fn holds_retry_permit(&self) -> bool {
        self.retry_permit.is_some()
    }

    /// Gives back the cluster retry slot held since the last [`Retry`](RetryDecision::Retry),
    /// if any. Call it when abandoning the request between a retry decision and the next
    /// outcome (e.g. the caller's future was dropped during backoff).
    pub fn release(&mut self, pool: &mut ConnectionPool) {
        if let Some(p) = self.retry_permit.take() {
            pool.release_retry(p);
        }
    }

    fn finish(&mut self, reason: DoneReason) -> RetryDecision {
        self.done = Some(reason);
        RetryDecision::Done(reason)
    }
}
