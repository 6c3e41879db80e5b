//! Validated configuration (mesh-model) → the policies the resilience machines run, converted
//! once per route and per cluster when a table is compiled, never per request.
//!
//! Every conversion fails only on input mesh-model would already have refused; a failure is a
//! [`CompileError::Policy`](super::CompileError::Policy), so a configuration the machines
//! cannot run never replaces one that works.

use std::time::Duration;

use mesh_model::AbortStatus;
use mesh_resilience::{
    Backoff, Deadlines, FaultAbort, FaultDelay, FaultInjection, OutlierConfig, PoolLimits,
    RetryBudget, RetryPolicy,
};

/// A zero duration disables a timeout in Istio (`timeout: 0s`).
fn positive(d: Option<mesh_model::Duration>) -> Option<Duration> {
    d.map(mesh_model::Duration::as_std).filter(|d| !d.is_zero())
}

/// A route's retry policy, with its route timeout (which spans every attempt and backoff)
/// and per-try timeout folded in as [`Deadlines`].
///
/// `attempts: 0` gives a policy with no retries but the same deadlines.
/// `retryIgnorePreviousHosts` (default true) maps to Envoy's `previous_hosts` predicate; the
/// decision turns it off for consistent-hash destinations, as Istio does.
pub(crate) fn retry_policy(
    model: &mesh_model::RetryPolicy,
    route_timeout: Option<mesh_model::Duration>,
) -> Result<RetryPolicy, String> {
    let deadlines = Deadlines::new(positive(route_timeout), positive(model.per_try_timeout()))
        .map_err(|e| format!("timeouts: {e}"))?;
    let policy = if model.is_enabled() {
        RetryPolicy::new(model.attempts(), *model.retry_on())
    } else {
        RetryPolicy::disabled()
    };
    let backoff =
        Backoff::new(model.backoff_base()).map_err(|e| format!("retries.backoff: {e}"))?;
    Ok(policy
        .with_backoff(backoff)
        .with_deadlines(deadlines)
        .with_previous_hosts(model.retry_ignore_previous_hosts()))
}

/// A route's fault injection; `None` when neither a delay nor an abort is set.
pub(crate) fn fault(model: &mesh_model::FaultInjection) -> Result<Option<FaultInjection>, String> {
    let delay = model
        .delay()
        .map(|d| FaultDelay::new(d.fixed_delay().as_std(), d.percentage()))
        .transpose()
        .map_err(|e| format!("fault.delay: {e}"))?;
    let abort = match model.abort() {
        None => None,
        Some(a) => Some(match a.status() {
            AbortStatus::Http(code) => {
                FaultAbort::http(code, a.percentage()).map_err(|e| format!("fault.abort: {e}"))?
            }
            AbortStatus::Grpc(status) => FaultAbort::grpc(status, a.percentage()),
        }),
    };
    if delay.is_none() && abort.is_none() {
        return Ok(None);
    }
    FaultInjection::new(delay, abort)
        .map(Some)
        .map_err(|e| format!("fault: {e}"))
}

/// The circuit breakers and retry budget of a cluster: Istio's defaults (every limit
/// 2^32 − 1) where the `connectionPool` block is absent.
pub(crate) fn pool_limits(
    pool: Option<&mesh_model::ConnectionPoolSettings>,
    budget: Option<&mesh_model::RetryBudget>,
) -> Result<PoolLimits, String> {
    let mut limits = PoolLimits::default();
    if let Some(cp) = pool {
        limits = limits
            .with_max_connections(cp.max_connections())
            .with_max_pending_requests(cp.http1_max_pending_requests())
            .with_max_requests(cp.http2_max_requests())
            .with_max_requests_per_connection(cp.max_requests_per_connection())
            .with_max_retries(cp.max_retries());
    }
    if let Some(b) = budget {
        let b = RetryBudget::new(b.percent(), b.min_retry_concurrency())
            .map_err(|e| format!("retryBudget: {e}"))?;
        limits = limits.with_retry_budget(Some(b));
    }
    Ok(limits)
}

/// The outlier detector's configuration.
pub(crate) fn outlier_config(od: &mesh_model::OutlierDetection) -> Result<OutlierConfig, String> {
    let mut builder = OutlierConfig::builder()
        .consecutive_5xx_errors(od.consecutive_5xx_errors())
        .consecutive_gateway_errors(od.consecutive_gateway_errors());
    if od.split_external_local_origin_errors() {
        // The local-origin threshold only exists in split mode (mesh-model fills in its
        // default either way).
        builder = builder
            .split_external_local_origin_errors(true)
            .consecutive_local_origin_failures(od.consecutive_local_origin_failures());
    }
    builder
        .interval(od.interval())
        .base_ejection_time(od.base_ejection_time())
        .max_ejection_percent(od.max_ejection_percent())
        .min_health_percent(od.min_health_percent())
        .http_error_codes(od.http_error_codes().iter().copied())
        .build()
        .map_err(|e| format!("outlierDetection: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mesh_model::{GrpcStatus, RetryOn};
    use mesh_resilience::{AbortKind, FaultAction};

    use crate::{Action, ClientContext, RequestView, RouteTable};

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
  - match: [{uri: {prefix: /hashed}}]
    route: [{destination: {host: reviews, subset: hashed}}]
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: hashed
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"#;

    fn with_decision<T>(path: &str, f: impl FnOnce(&crate::RouteDecision<'_>) -> T) -> T {
        let config = mesh_model::load_str("t.yaml", YAML)
            .into_result()
            .expect("valid config");
        let table = RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles");
        let req = http::Request::get(format!("http://reviews:9080{path}"))
            .body(())
            .unwrap();
        let decision = table.route(&RequestView::from_request(&req), 0);
        assert!(matches!(decision.action(), Action::Route(_)), "{decision}");
        f(&decision)
    }

    #[test]
    fn default_route_gets_istio_default_retries_and_no_timeouts() {
        let (p, default) = with_decision("/", |d| (d.retry_policy(), d.retry_is_istio_default()));
        assert!(default);
        assert_eq!(p.num_retries(), 2);
        assert_eq!(*p.retry_on(), RetryOn::istio_default());
        assert_eq!(p.deadlines().route(), None);
        assert_eq!(p.deadlines().per_try(), None);
        assert_eq!(p.backoff().base(), Duration::from_millis(25));
        assert!(p.previous_hosts());
    }

    #[test]
    fn written_retries_and_timeouts_carry_over() {
        let p = with_decision("/tuned", |d| d.retry_policy());
        assert_eq!(p.num_retries(), 4);
        assert_eq!(*p.retry_on(), "5xx,reset,503".parse::<RetryOn>().unwrap());
        assert_eq!(p.deadlines().route(), Some(Duration::from_secs(3)));
        assert_eq!(p.deadlines().per_try(), Some(Duration::from_millis(500)));
        assert!(!p.previous_hosts());
    }

    #[test]
    fn zero_attempts_disable_retries_but_keep_the_route_timeout() {
        let p = with_decision("/off", |d| d.retry_policy());
        assert_eq!(p.num_retries(), 0);
        assert_eq!(p.deadlines().route(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn consistent_hash_destinations_drop_the_previous_hosts_predicate() {
        assert!(with_decision("/", |d| d.retry_policy().previous_hosts()));
        assert!(!with_decision("/hashed", |d| d
            .retry_policy()
            .previous_hosts()));
    }

    #[test]
    fn http_fault_converts_with_its_percentages() {
        let f = with_decision("/fault", |d| d.fault().cloned()).expect("delay and abort");
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
        let f = with_decision("/grpc", |d| d.fault().cloned()).expect("abort");
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

#[cfg(test)]
mod protocol_tests {
    use mesh_resilience::Protocol;

    use crate::{ClientContext, RequestView, RouteTable};

    #[test]
    fn http2_and_grpc_ports_multiplex_in_the_pool() {
        let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: h2, protocol: HTTP2}
  - {number: 82, name: rpc, protocol: GRPC}
  endpoints: [{address: 10.0.0.1}]
";
        let config = mesh_model::load_str("p.yaml", yaml).into_result().unwrap();
        let table = RouteTable::compile(&config, &ClientContext::new("default")).unwrap();
        let h = http::HeaderMap::new();
        let protocol = |authority: &str| {
            let d = table.route(&RequestView::new("GET", authority, "/", &h), 0);
            table.policy(d.cluster().unwrap()).pool_limits().protocol()
        };
        assert_eq!(protocol("api.example.com:80"), Protocol::Http1);
        let h2 = Protocol::Http2 {
            max_concurrent_streams: 0,
        };
        assert_eq!(protocol("api.example.com:81"), h2);
        assert_eq!(protocol("api.example.com:82"), h2);
    }
}
