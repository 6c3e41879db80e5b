//! Route and per-try timeouts, with Envoy's `finalTimeout` rule.
//!
//! * The **route timeout** (VirtualService `timeout`) is one deadline for the whole request:
//!   every attempt, every backoff wait and every wait for a connection permit. Envoy starts it
//!   once the downstream request is complete, and it is never re-armed by a retry.
//! * The **per-try timeout** (`retries.perTryTimeout`) bounds one attempt. Envoy arms it when
//!   the attempt gets its connection (after any pool wait) and stops it once response headers
//!   arrive.
//! * A per-try timeout **greater than or equal to** the route timeout is ignored (Envoy's
//!   `finalTimeout` sets it to zero).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mesh_resilience::Deadlines;
//!
//! let t0 = Instant::now();
//! let ms = Duration::from_millis;
//! let d = Deadlines::new(Some(ms(1000)), Some(ms(300)))?;
//! assert_eq!(d.route_deadline(t0), Some(t0 + ms(1000)));
//! // First attempt: bounded by the per-try timeout.
//! assert_eq!(d.attempt_deadline(t0, t0), Some(t0 + ms(300)));
//! // A late attempt: bounded by what is left of the route timeout.
//! assert_eq!(d.attempt_deadline(t0, t0 + ms(800)), Some(t0 + ms(1000)));
//!
//! // perTryTimeout >= timeout: the per-try timeout is dropped.
//! let d = Deadlines::new(Some(ms(1000)), Some(ms(1000)))?;
//! assert_eq!(d.per_try(), None);
//! # Ok::<(), mesh_resilience::InvalidDeadlines>(())
//! ```

use std::time::{Duration, Instant};

/// Why [`Deadlines`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDeadlines {
    /// A zero route timeout. Envoy reads 0 as "disabled", and Istio cannot express it
    /// (durations are at least 1 ms): say `None` for no timeout.
    #[error("route timeout must be positive (use None for no timeout)")]
    ZeroRoute,
    /// A zero per-try timeout (use `None`).
    #[error("per-try timeout must be positive (use None for no per-try timeout)")]
    ZeroPerTry,
}

/// The route (overall) timeout and per-try timeout of a request. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Deadlines {
    route: Option<Duration>,
    per_try: Option<Duration>,
}

impl Deadlines {
    /// No timeouts: Istio's default (a route without `timeout` is not bounded, unlike plain
    /// Envoy's 15 s).
    pub const NONE: Deadlines = Deadlines {
        route: None,
        per_try: None,
    };

    /// Builds the pair; zero durations are refused (say `None`).
    pub fn new(
        route: Option<Duration>,
        per_try: Option<Duration>,
    ) -> Result<Self, InvalidDeadlines> {
        if route == Some(Duration::ZERO) {
            return Err(InvalidDeadlines::ZeroRoute);
        }
        if per_try == Some(Duration::ZERO) {
            return Err(InvalidDeadlines::ZeroPerTry);
        }
        Ok(Self { route, per_try })
    }

    /// The route timeout.
    pub fn route(&self) -> Option<Duration> {
        self.route
    }

    /// The per-try timeout **in effect**: `None` when unset, or when it is `>=` the route
    /// timeout (Envoy's `finalTimeout`).
    pub fn per_try(&self) -> Option<Duration> {
        match (self.per_try, self.route) {
            (Some(p), Some(r)) if p >= r => None,
            (p, _) => p,
        }
    }

    /// The per-try timeout as configured, even if [`per_try`](Self::per_try) ignores it.
    pub fn configured_per_try(&self) -> Option<Duration> {
        self.per_try
    }

    /// `start + route timeout` (`None` without a route timeout, or if the sum would overflow
    /// `Instant`, which is "never").
    pub fn route_deadline(&self, start: Instant) -> Option<Instant> {
        self.route.and_then(|r| start.checked_add(r))
    }

    /// The deadline of an attempt that gets its connection at `now`: the earlier of the route
    /// deadline and `now + per-try timeout`.
    pub fn attempt_deadline(&self, start: Instant, now: Instant) -> Option<Instant> {
        min_deadline(
            self.route_deadline(start),
            self.per_try().and_then(|p| now.checked_add(p)),
        )
    }
}

/// The earlier of two optional deadlines (`None` = no deadline).
pub(crate) fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_timeout_table() {
        let ms = |n| Some(Duration::from_millis(n));
        // (route, per_try, effective per_try)
        let cases = [
            (None, None, None),
            (None, ms(50), ms(50)),
            (ms(100), None, None),
            (ms(100), ms(99), ms(99)),
            (ms(100), ms(100), None),
            (ms(100), ms(101), None),
        ];
        for (route, per_try, want) in cases {
            let d = Deadlines::new(route, per_try).unwrap();
            assert_eq!(d.per_try(), want, "{route:?} {per_try:?}");
            assert_eq!(d.configured_per_try(), per_try);
        }
    }

    #[test]
    fn zero_refused() {
        assert_eq!(
            Deadlines::new(Some(Duration::ZERO), None),
            Err(InvalidDeadlines::ZeroRoute)
        );
        assert_eq!(
            Deadlines::new(None, Some(Duration::ZERO)),
            Err(InvalidDeadlines::ZeroPerTry)
        );
    }

    #[test]
    fn overflow_means_never() {
        let t0 = crate::test_anchor();
        let d = Deadlines::new(Some(Duration::MAX), Some(Duration::MAX)).unwrap();
        assert_eq!(d.route_deadline(t0), None);
        assert_eq!(d.attempt_deadline(t0, t0), None);
    }
}
