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

/// The `grpc-timeout` request header.
pub const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// Whether a request is gRPC by its `content-type` (Envoy's `isGrpcRequestHeaders`:
/// `application/grpc`, `application/grpc+proto`, `application/grpc;...`).
pub fn is_grpc_request(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .map(http::HeaderValue::as_bytes)
        .and_then(|ct| ct.strip_prefix(b"application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

/// A `grpc-timeout` value (1 to 8 digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`); `None`
/// for anything else, which Envoy treats as no timeout.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A duration as Envoy writes `grpc-timeout` (`toGrpcTimeout`): whole milliseconds in the
/// finest unit that fits in 8 digits (`m`, then `S`, `M`, `H`).
pub fn format_grpc_timeout(d: Duration) -> http::HeaderValue {
    const MAX: u128 = 99_999_999;
    let ms = d.as_millis();
    let (n, unit) = if ms <= MAX {
        (ms, 'm')
    } else if ms / 1000 <= MAX {
        (ms / 1000, 'S')
    } else if ms / 60_000 <= MAX {
        (ms / 60_000, 'M')
    } else {
        ((ms / 3_600_000).min(MAX), 'H')
    };
    http::HeaderValue::try_from(format!("{n}{unit}"))
        .unwrap_or_else(|_| http::HeaderValue::from_static("99999999H"))
}

impl Deadlines {
    /// The deadlines of a gRPC request under Istio, which writes `max_grpc_timeout` on every
    /// route (the route timeout, or 0 without one): Envoy's global timeout becomes the
    /// caller's `grpc-timeout` (none when missing or zero), capped by the route timeout when
    /// there is one. The per-try timeout is kept (and ignored if not below the result).
    #[must_use]
    pub fn for_grpc(self, grpc_timeout: Option<Duration>) -> Deadlines {
        let caller = grpc_timeout.filter(|d| !d.is_zero());
        let route = match (caller, self.route) {
            (Some(c), Some(r)) => Some(c.min(r)),
            (Some(c), None) => Some(c),
            (None, r) => r,
        };
        Deadlines {
            route,
            per_try: self.per_try,
        }
    }

    /// The `grpc-timeout` Envoy sends upstream for a gRPC request with these deadlines: the
    /// per-try timeout in effect, else the route timeout; `None` when neither is set.
    pub fn upstream_grpc_timeout(&self) -> Option<Duration> {
        self.per_try().or(self.route)
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
    fn grpc_timeout_values() {
        let p = |s: &str| parse_grpc_timeout(s.as_bytes());
        assert_eq!(p("100m"), Some(Duration::from_millis(100)));
        assert_eq!(p("2S"), Some(Duration::from_secs(2)));
        assert_eq!(p("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(p("5u"), Some(Duration::from_micros(5)));
        assert_eq!(p("123456789m"), None, "at most 8 digits");
        assert_eq!(p("m"), None);
        assert_eq!(p("10x"), None);
        assert_eq!(p("-1S"), None);
        assert_eq!(format_grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(200_000)),
            "200000S",
            "milliseconds past 8 digits become seconds"
        );
        let mut h = http::HeaderMap::new();
        assert!(!is_grpc_request(&h));
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_grpc_request(&h), grpc, "{ct}");
        }
    }

    #[test]
    fn grpc_deadline_is_the_callers_capped_by_the_route() {
        let ms = |n| Some(Duration::from_millis(n));
        // (route, per_try, grpc-timeout, route after, upstream grpc-timeout)
        let cases = [
            (None, None, None, None, None),
            (None, None, ms(300), ms(300), ms(300)),
            (ms(1000), None, ms(300), ms(300), ms(300)),
            (ms(1000), None, ms(3000), ms(1000), ms(1000)),
            (ms(1000), None, None, ms(1000), ms(1000)),
            (None, ms(100), ms(300), ms(300), ms(100)),
            (None, None, Some(Duration::ZERO), None, None),
        ];
        for (route, per_try, grpc, want, upstream) in cases {
            let d = Deadlines::new(route, per_try).unwrap().for_grpc(grpc);
            assert_eq!(d.route(), want, "{route:?} {per_try:?} {grpc:?}");
            assert_eq!(d.upstream_grpc_timeout(), upstream);
        }
    }

    #[test]
    fn overflow_means_never() {
        let t0 = crate::test_anchor();
        let d = Deadlines::new(Some(Duration::MAX), Some(Duration::MAX)).unwrap();
        assert_eq!(d.route_deadline(t0), None);
        assert_eq!(d.attempt_deadline(t0, t0), None);
    }
}
