//! Validated configuration (mesh-model) → the resilience state machines' policies.
//!
//! `mesh-routing` hands out a route's policies as `mesh-model` types (what the
//! YAML said, with Istio's defaults resolved); `mesh-resilience` runs machines
//! configured with its own types. This module is the one place that converts
//! the first into the second.
//!
//! Conversions parse (`retryOn` strings) and check invariants, so they are
//! meant to run **once per route when a route table is loaded**, with the
//! results cached next to the table, never per request. They fail only on
//! input `mesh-model` would already have refused; a failure is a reload error.

use std::time::Duration;

use mesh_model::AbortStatus;
use mesh_resilience::{
    Backoff, Deadlines, FaultAbort, FaultDelay, FaultInjection, InvalidBackoff, InvalidDeadlines,
    InvalidFault, RetryPolicy,
};

/// Why a validated policy could not be turned into a state-machine policy.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PolicyError {
    #[error("retries.backoff: {0}")]
    Backoff(#[from] InvalidBackoff),
    #[error("timeouts: {0}")]
    Deadlines(#[from] InvalidDeadlines),
    #[error("fault: {0}")]
    Fault(#[from] InvalidFault),
}

/// A zero duration disables a timeout in Istio (`timeout: 0s`).
fn positive(d: Option<mesh_model::Duration>) -> Option<Duration> {
    d.map(mesh_model::Duration::as_std).filter(|d| !d.is_zero())
}

/// A route's retry policy, with its route timeout (which spans every attempt
/// and backoff) and per-try timeout folded in as [`Deadlines`].
///
/// `attempts: 0` gives a policy with no retries but the same deadlines.
/// `retryIgnorePreviousHosts` (default true) maps to Envoy's
/// `previous_hosts` predicate. Istio also turns that predicate off for
/// consistent-hash load balancing; the caller applies that, since it depends
/// on the destination's policy, not the route's.
pub(crate) fn retry_policy(
    model: &mesh_model::RetryPolicy,
    route_timeout: Option<mesh_model::Duration>,
) -> Result<RetryPolicy, PolicyError> {
    let deadlines = Deadlines::new(positive(route_timeout), positive(model.per_try_timeout()))?;
    let policy = if model.is_enabled() {
        RetryPolicy::new(model.attempts(), *model.retry_on())
    } else {
        RetryPolicy::disabled()
    };
    Ok(policy
        .with_backoff(Backoff::new(model.backoff_base())?)
        .with_deadlines(deadlines)
        .with_previous_hosts(model.retry_ignore_previous_hosts()))
}

/// A route's fault injection; `None` when neither a delay nor an abort is set.
pub(crate) fn fault(
    model: &mesh_model::FaultInjection,
) -> Result<Option<FaultInjection>, PolicyError> {
    let delay = model
        .delay()
        .map(|d| FaultDelay::new(d.fixed_delay().as_std(), d.percentage()))
        .transpose()?;
    let abort = match model.abort() {
        None => None,
        Some(a) => Some(match a.status() {
            AbortStatus::Http(code) => FaultAbort::http(code, a.percentage())?,
            AbortStatus::Grpc(status) => FaultAbort::grpc(status, a.percentage()),
        }),
    };
    if delay.is_none() && abort.is_none() {
        return Ok(None);
    }
    Ok(Some(FaultInjection::new(delay, abort)?))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mesh_model::{GrpcStatus, RetryOn};
    use mesh_resilience::{AbortKind, FaultAction};
    use mesh_routing::{Action, ClientContext, RequestView, RouteTable};

    use super::{fault, retry_policy};

    const YAML: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /tuned}}]
    timeout: 3s
    retries: {attempts: 4, perTryTimeout: 500ms, retryOn: "5xx,reset,503", retryIgnorePreviousHosts: false}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /off}}]
    timeout: 2s
    retries: {attempts: 0}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /fault}}]
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 12.5}}
      abort: {httpStatus: 418, percentage: {value: 100}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /grpc}}]
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 50}}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"#;

    fn table() -> RouteTable {
        let config = mesh_model::load_str("t.yaml", YAML)
            .into_result()
            .expect("valid config");
        RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles")
    }

    fn with_decision<T>(path: &str, f: impl FnOnce(&mesh_routing::RouteDecision<'_>) -> T) -> T {
        let table = table();
        let req = http::Request::get(format!("http://reviews:9080{path}"))
            .body(())
            .unwrap();
        let decision = table.route(&RequestView::from_request(&req), 0);
        assert!(matches!(decision.action(), Action::Route(_)), "{decision}");
        f(&decision)
    }

    #[test]
    fn default_route_gets_istio_default_retries_and_no_timeouts() {
        let p = with_decision("/", |d| retry_policy(d.retry(), d.timeout()).unwrap());
        assert_eq!(p.num_retries(), 2);
        assert_eq!(*p.retry_on(), RetryOn::istio_default());
        assert_eq!(p.deadlines().route(), None);
        assert_eq!(p.deadlines().per_try(), None);
        assert_eq!(p.backoff().base(), Duration::from_millis(25));
        assert!(p.previous_hosts());
    }

    #[test]
    fn written_retries_and_timeouts_carry_over() {
        let p = with_decision("/tuned", |d| retry_policy(d.retry(), d.timeout()).unwrap());
        assert_eq!(p.num_retries(), 4);
        assert_eq!(*p.retry_on(), "5xx,reset,503".parse::<RetryOn>().unwrap());
        assert_eq!(p.deadlines().route(), Some(Duration::from_secs(3)));
        assert_eq!(p.deadlines().per_try(), Some(Duration::from_millis(500)));
        assert!(!p.previous_hosts());
    }

    #[test]
    fn zero_attempts_disable_retries_but_keep_the_route_timeout() {
        let p = with_decision("/off", |d| retry_policy(d.retry(), d.timeout()).unwrap());
        assert_eq!(p.num_retries(), 0);
        assert_eq!(p.deadlines().route(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn http_fault_converts_with_its_percentages() {
        let f = with_decision("/fault", |d| fault(d.fault().expect("fault")).unwrap())
            .expect("delay and abort");
        let delay = f.delay().expect("delay");
        assert_eq!(delay.fixed_delay(), Duration::from_secs(7));
        assert_eq!(delay.percentage().per_million(), 125_000);
        let abort = f.abort().expect("abort");
        assert_eq!(abort.kind(), AbortKind::Http(http::StatusCode::IM_A_TEAPOT));
        assert_eq!(abort.percentage().per_million(), 1_000_000);
        // 100 % abort: every roll aborts.
        assert!(matches!(
            f.decide(u64::MAX, u64::MAX),
            FaultAction::Abort(_) | FaultAction::DelayThenAbort { .. }
        ));
    }

    #[test]
    fn grpc_fault_converts_by_name() {
        let f =
            with_decision("/grpc", |d| fault(d.fault().expect("fault")).unwrap()).expect("abort");
        assert!(f.delay().is_none());
        let abort = f.abort().expect("abort");
        assert_eq!(abort.kind(), AbortKind::Grpc(GrpcStatus::Unavailable));
        assert_eq!(abort.percentage().per_million(), 500_000);
    }

    #[test]
    fn routes_without_fault_have_none() {
        with_decision("/", |d| assert!(d.fault().is_none()));
    }
}
