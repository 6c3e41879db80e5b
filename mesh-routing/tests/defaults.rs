//! Istio's defaults, as istiod writes them into Envoy's configuration, checked one by one
//! against what a compiled table gives for a configuration that leaves them unset. Each row
//! of the table in mesh-tower's crate docs ("Defaults") that `mesh-routing` decides has its
//! case here.

mod common;

use std::time::Duration;

use common::{get, headers, table};
use mesh_model::RetryCondition;
use mesh_routing::lb::LoadBalancer;
use mesh_routing::ClientContext;

/// A service with a VirtualService that sets nothing but the route, and a DestinationRule
/// for another host that sets only an (empty of thresholds) outlier-detection block.
const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.test, od.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.test]
  http:
  - route: [{destination: {host: api.test}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od, namespace: default}
spec:
  host: od.test
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5}
"#;

#[test]
fn a_route_without_retries_or_timeout_gets_istios_defaults() {
    let t = table(CONFIG, &ClientContext::new("default"));
    let h = headers(&[]);
    let d = t.route(&get("api.test:8080", "/", &h), 0);
    let retry = d.retry_policy();
    // retry.go DefaultPolicy: 2 retries ...
    assert_eq!(retry.num_retries(), 2);
    assert_eq!(retry.max_attempts(), 3);
    // ... on connect-failure, refused-stream, unavailable, cancelled and
    // retriable-status-codes with no code (503 is not retried since Istio 1.24) ...
    let on = retry.retry_on();
    for c in [
        RetryCondition::ConnectFailure,
        RetryCondition::RefusedStream,
        RetryCondition::Unavailable,
        RetryCondition::Cancelled,
        RetryCondition::RetriableStatusCodes,
    ] {
        assert!(on.contains(c), "{c:?} in {on}");
    }
    for c in [
        RetryCondition::FiveXx,
        RetryCondition::GatewayError,
        RetryCondition::Reset,
        RetryCondition::Retriable4xx,
    ] {
        assert!(!on.contains(c), "{c:?} not in {on}");
    }
    assert!(!on.status_codes().contains(503), "503 is not retried");
    // ... with the previous-hosts predicate and 5 host selection attempts ...
    assert!(retry.previous_hosts());
    assert_eq!(retry.host_selection_retry_max_attempts(), 5);
    // ... Envoy's backoff (25 ms base, 250 ms max) ...
    assert_eq!(retry.backoff().base(), Duration::from_millis(25));
    assert_eq!(retry.backoff().max(), Duration::from_millis(250));
    // ... no per-try timeout, and the route timeout disabled (istiod writes 0s).
    assert_eq!(retry.deadlines().per_try(), None);
    assert_eq!(retry.deadlines().route(), None);
    assert!(d.timeout().is_none());
    assert!(d.retry_is_istio_default());
}

#[test]
fn a_cluster_without_a_destination_rule_gets_istios_defaults() {
    let t = table(CONFIG, &ClientContext::new("default"));
    let h = headers(&[]);
    let d = t.route(&get("api.test:8080", "/", &h), 0);
    let p = d.policy();
    assert_eq!(p.source(), None, "no DestinationRule applies");
    // cluster_traffic_policy.go defaultLBAlgorithm: LEAST_REQUEST.
    assert_eq!(p.load_balancer(), LoadBalancer::LeastRequest);
    // getDefaultCircuitBreakerThresholds: every limit 2^32 - 1; no retry budget.
    let limits = p.pool_limits();
    assert_eq!(limits.max_connections(), u32::MAX);
    assert_eq!(limits.max_pending_requests(), u32::MAX);
    assert_eq!(limits.max_requests(), u32::MAX);
    assert_eq!(limits.max_retries(), u32::MAX);
    assert_eq!(limits.max_requests_per_connection(), 0, "unlimited");
    assert!(limits.retry_budget().is_none());
    // The mesh's connectTimeout (10 s); no idle timeout written (Envoy's 1 h applies).
    let pool = mesh_model::ConnectionPoolSettings::default();
    assert_eq!(pool.connect_timeout(), Duration::from_secs(10));
    assert_eq!(pool.upstream_idle_timeout(), None);
    // No outlier detection without the block.
    assert!(p.outlier().is_none());
}

#[test]
fn an_outlier_detection_block_gets_envoys_defaults_and_no_panic_mode() {
    let t = table(CONFIG, &ClientContext::new("default"));
    let h = headers(&[]);
    let d = t.route(&get("od.test:8080", "/", &h), 0);
    let od = d.policy().outlier().expect("the block is applied");
    assert_eq!(od.consecutive_5xx(), Some(5));
    assert_eq!(od.consecutive_gateway_errors(), None, "gateway errors off");
    assert_eq!(od.interval(), Duration::from_secs(10));
    assert_eq!(od.base_ejection_time(), Duration::from_secs(30));
    assert_eq!(od.max_ejection_time(), Duration::from_secs(300));
    assert_eq!(od.max_ejection_percent(), 10);
    // istiod writes healthy_panic_threshold 0 with outlier detection: no panic mode.
    assert_eq!(od.min_health_percent(), 0);
}
