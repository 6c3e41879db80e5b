//! [`EnvoyOverrides`]: what a trusted caller's `x-envoy-*` request headers change in a
//! route's retry policy and timeouts.

use std::time::Duration;

use http::{HeaderMap, HeaderName};
use mesh_model::{RetryCondition, RetryOn, StatusCodeSet};

use crate::headers::{
    X_ENVOY_MAX_RETRIES, X_ENVOY_RETRIABLE_STATUS_CODES, X_ENVOY_RETRY_GRPC_ON, X_ENVOY_RETRY_ON,
    X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS, X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS,
};
use crate::{Deadlines, RetryPolicy};

/// The retry and timeout headers of one request, read as Envoy's router reads them from a
/// request it considers internal.
///
/// An Istio sidecar considers every request from its own application external and removes
/// these headers unread ([`REMOVED_FROM_EXTERNAL`](crate::headers::REMOVED_FROM_EXTERNAL)), so
/// a driver applies them only when its user says the caller is trusted.
///
/// - `x-envoy-retry-on` and `x-envoy-retry-grpc-on` add conditions to the route's (unknown
///   tokens are ignored, and each header only takes its own kind: HTTP conditions, gRPC
///   conditions).
/// - `x-envoy-max-retries` replaces the number of retries, when some condition is on.
/// - `x-envoy-retriable-status-codes` adds status codes (they count under
///   `retriable-status-codes`).
/// - `x-envoy-upstream-rq-timeout-ms` replaces the route timeout; `0` means none.
/// - `x-envoy-upstream-rq-per-try-timeout-ms` sets the per-try timeout (ignored when it is not
///   below the route timeout, as any per-try timeout is).
///
/// A route without a retry policy gets Envoy's default of one retry when the headers turn a
/// condition on.
///
/// ```
/// use http::{HeaderMap, HeaderName};
/// use mesh_resilience::retry::EnvoyOverrides;
/// use mesh_resilience::{RetryCondition, RetryPolicy};
/// use std::time::Duration;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-envoy-retry-on", "5xx,not-a-condition".parse()?);
/// headers.insert("x-envoy-max-retries", "4".parse()?);
/// headers.insert("x-envoy-upstream-rq-timeout-ms", "250".parse()?);
/// let policy = EnvoyOverrides::from_headers(&headers).apply(RetryPolicy::istio_default());
/// assert!(policy.retry_on().contains(RetryCondition::FiveXx));
/// assert!(policy.retry_on().contains(RetryCondition::ConnectFailure)); // the route's stay
/// assert_eq!(policy.num_retries(), 4);
/// assert_eq!(policy.deadlines().route(), Some(Duration::from_millis(250)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvoyOverrides {
    retry_on: RetryOn,
    max_retries: Option<u32>,
    /// `Some(ZERO)`: the header asked for no route timeout.
    route_timeout: Option<Duration>,
    per_try_timeout: Option<Duration>,
}

impl EnvoyOverrides {
    /// Reads the headers. Values that do not parse are ignored, as Envoy ignores them.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &HeaderName| text(headers, name);
        let mut retry_on = RetryOn::empty();
        for token in text(&X_ENVOY_RETRY_ON).into_iter().flat_map(tokens) {
            match RetryCondition::from_token(token) {
                Some(c) if !is_grpc(c) => retry_on = retry_on.with(c),
                _ => {}
            }
        }
        for token in text(&X_ENVOY_RETRY_GRPC_ON).into_iter().flat_map(tokens) {
            match RetryCondition::from_token(token) {
                Some(c) if is_grpc(c) => retry_on = retry_on.with(c),
                _ => {}
            }
        }
        let mut codes = StatusCodeSet::new();
        for token in text(&X_ENVOY_RETRIABLE_STATUS_CODES)
            .into_iter()
            .flat_map(tokens)
        {
            // Codes outside 100..=599 are never a response's status: nothing to add.
            if let Ok(code) = token.parse::<u16>() {
                codes.insert(code);
            }
        }
        // The header adds codes; it does not turn `retriable-status-codes` on.
        retry_on = retry_on.with_status_codes(&codes);
        let millis = |name| {
            text(name)
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        EnvoyOverrides {
            retry_on,
            max_retries: text(&X_ENVOY_MAX_RETRIES).and_then(|v| v.parse().ok()),
            route_timeout: millis(&X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS),
            per_try_timeout: millis(&X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS)
                .filter(|d| !d.is_zero()),
        }
    }

    /// Whether the headers change nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `policy` as these headers change it.
    #[must_use]
    pub fn apply(&self, policy: RetryPolicy) -> RetryPolicy {
        let route_on = *policy.retry_on();
        let retry_on = route_on.union(self.retry_on);
        let mut num_retries = policy.num_retries();
        if route_on.is_empty() && !retry_on.is_empty() && num_retries == 0 {
            // No route policy: Envoy's default policy allows one retry.
            num_retries = 1;
        }
        if !retry_on.is_empty() {
            if let Some(n) = self.max_retries {
                num_retries = n;
            }
        }
        let d = policy.deadlines();
        let route = match self.route_timeout {
            Some(t) if t.is_zero() => None,
            Some(t) => Some(t),
            None => d.route(),
        };
        let per_try = self.per_try_timeout.or(d.configured_per_try());
        let deadlines = Deadlines::new(route, per_try).unwrap_or(*d);
        policy
            .with_retry_on(retry_on)
            .with_num_retries(num_retries)
            .with_deadlines(deadlines)
    }
}

/// The value of header `name` as text.
fn text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The comma-separated tokens of a header value, trimmed (Envoy splits on `,` and strips
/// whitespace).
fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Whether `c` is one of the gRPC conditions (`x-envoy-retry-grpc-on`'s vocabulary).
fn is_grpc(c: RetryCondition) -> bool {
    matches!(
        c,
        RetryCondition::Cancelled
            | RetryCondition::DeadlineExceeded
            | RetryCondition::Internal
            | RetryCondition::ResourceExhausted
            | RetryCondition::Unavailable
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn apply(pairs: &[(&'static str, &'static str)], policy: RetryPolicy) -> RetryPolicy {
        EnvoyOverrides::from_headers(&headers(pairs)).apply(policy)
    }

    #[test]
    fn no_headers_change_nothing() {
        let o = EnvoyOverrides::from_headers(&headers(&[("x-other", "1")]));
        assert!(o.is_empty());
        let p = RetryPolicy::istio_default();
        assert_eq!(o.apply(p), p);
    }

    #[test]
    fn a_route_without_retries_gets_envoys_one_retry_from_the_header() {
        let p = apply(&[("x-envoy-retry-on", "5xx")], RetryPolicy::disabled());
        assert_eq!(p.num_retries(), 1);
        assert!(p.retry_on().contains(RetryCondition::FiveXx));
    }

    #[test]
    fn max_retries_counts_only_when_some_condition_is_on() {
        let p = apply(&[("x-envoy-max-retries", "7")], RetryPolicy::disabled());
        assert_eq!(p.num_retries(), 0);
        let p = apply(
            &[("x-envoy-max-retries", "7")],
            RetryPolicy::istio_default(),
        );
        assert_eq!(p.num_retries(), 7);
        let p = apply(
            &[("x-envoy-max-retries", "x")],
            RetryPolicy::istio_default(),
        );
        assert_eq!(p.num_retries(), 2, "an unparsable value is ignored");
    }

    #[test]
    fn each_header_takes_its_own_kind_of_condition() {
        let p = apply(
            &[
                ("x-envoy-retry-on", "unavailable, reset ,bogus"),
                ("x-envoy-retry-grpc-on", "5xx,internal"),
            ],
            RetryPolicy::disabled(),
        );
        let on = p.retry_on();
        assert!(on.contains(RetryCondition::Reset));
        assert!(on.contains(RetryCondition::Internal));
        assert!(!on.contains(RetryCondition::Unavailable));
        assert!(!on.contains(RetryCondition::FiveXx));
    }

    #[test]
    fn status_codes_are_added_without_turning_their_condition_on() {
        let p = apply(
            &[("x-envoy-retriable-status-codes", "503,abc,999")],
            RetryPolicy::disabled(),
        );
        assert!(p.retry_on().status_codes().contains(503));
        assert!(!p.retry_on().contains(RetryCondition::RetriableStatusCodes));
        assert_eq!(p.num_retries(), 0, "no condition is on");
    }

    #[test]
    fn timeout_headers_replace_the_routes() {
        let ms = Duration::from_millis;
        let route = RetryPolicy::istio_default()
            .with_deadlines(Deadlines::new(Some(ms(1000)), Some(ms(300))).unwrap());
        let p = apply(&[("x-envoy-upstream-rq-timeout-ms", "0")], route);
        assert_eq!(p.deadlines().route(), None, "0 turns the route timeout off");
        assert_eq!(p.deadlines().per_try(), Some(ms(300)));
        let p = apply(
            &[
                ("x-envoy-upstream-rq-timeout-ms", "200"),
                ("x-envoy-upstream-rq-per-try-timeout-ms", "50"),
            ],
            route,
        );
        assert_eq!(
            (p.deadlines().route(), p.deadlines().per_try()),
            (Some(ms(200)), Some(ms(50)))
        );
        let p = apply(&[("x-envoy-upstream-rq-per-try-timeout-ms", "5000")], route);
        assert_eq!(
            p.deadlines().per_try(),
            None,
            "not below the route timeout: ignored"
        );
    }
}
