//! Unit tests of the translation, on the seed's canary and variations of it.

use std::time::Duration as StdDuration;

use mesh_model::MeshConfig;
use mesh_routing::ClientContext;
use serde_json::{json, Value};

use super::*;

mod scopes;
mod tls_modes;

/// Builds the bootstrap for `cfg` as seen by `client`, as istiod writes it (no retry budget).
fn bootstrap(
    cfg: &MeshConfig,
    client: &ClientContext,
    addrs: Addresses,
) -> Result<Bootstrap, String> {
    bootstrap_with(
        cfg,
        client,
        addrs,
        BudgetMode::Istio,
        &tls::TlsOptions::default(),
    )
}

/// The seed's canary (as in `examples/canary/config/canary.yaml`), kept here so the test
/// does not depend on another crate's files.
const CANARY: &str = "\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: api-vs-canary
spec:
  hosts: [api]
  http:
  - name: frontend-to-v2
    match:
    - sourceLabels: {app: frontend}
    route:
    - destination: {host: api, subset: v2}
    retries: {attempts: 3, perTryTimeout: 2s}
    timeout: 5s
  - name: canary-split
    route:
    - destination: {host: api, subset: v1}
      weight: 90
    - destination: {host: api, subset: v2}
      weight: 10
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 'gateway-error,connect-failure,refused-stream'}
    timeout: 5s
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: api-dr
spec:
  host: api
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000}
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool:
        http: {idleTimeout: 10s}
      loadBalancer: {simple: ROUND_ROBIN}
      tls: {mode: ISTIO_MUTUAL}
";
const ENDPOINTS: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api-endpoints
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9001}, labels: {app: api, version: v1}}
  - {address: 127.0.0.1, ports: {http: 9002}, labels: {app: api, version: v1}}
  - {address: 127.0.0.1, ports: {http: 9003}, labels: {app: api, version: v2}}
  - {address: 127.0.0.1, ports: {http: 9004}, labels: {app: api, version: v2}}
";

fn config(extra: &str) -> MeshConfig {
    let mut l = mesh_model::Loader::new();
    l.add_str("canary.yaml", CANARY);
    l.add_str("endpoints.yaml", ENDPOINTS);
    if !extra.is_empty() {
        l.add_str("extra.yaml", extra);
    }
    let loaded = l.finish();
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    loaded.into_config()
}

fn addrs() -> Addresses {
    Addresses {
        listen: "127.0.0.1:15001".parse().unwrap(),
        admin: "127.0.0.1:15000".parse().unwrap(),
    }
}

fn generate(cfg: &MeshConfig, labels: &[(&str, &str)]) -> Value {
    let w = labels
        .iter()
        .fold(ClientContext::new("default"), |c, (k, v)| {
            c.with_label(k, v)
        });
    let boot = bootstrap(cfg, &w, addrs()).unwrap();
    // Round-trip through YAML, as envoy and the tests read it.
    let yaml = serde_yaml::to_string(&boot.value).unwrap();
    serde_yaml::from_str(&yaml).unwrap()
}

#[test]
fn no_retry_budget_unless_asked_for_or_written() {
    let cfg = config("");
    let w = ClientContext::new("default");
    let istio = bootstrap(&cfg, &w, addrs()).unwrap().value;
    let v1 = cluster(&istio, "outbound|8080|v1|api.default.svc.cluster.local");
    assert!(v1["circuit_breakers"]["thresholds"][0]
        .get("retry_budget")
        .is_none());
    let envoy = bootstrap_with(
        &cfg,
        &w,
        addrs(),
        BudgetMode::Envoy,
        &tls::TlsOptions::default(),
    )
    .unwrap()
    .value;
    let v1 = cluster(&envoy, "outbound|8080|v1|api.default.svc.cluster.local");
    let b = &v1["circuit_breakers"]["thresholds"][0]["retry_budget"];
    assert_eq!(b["budget_percent"]["value"], 20.0);
    assert_eq!(b["min_retry_concurrency"], 3);
}

fn cluster<'a>(boot: &'a Value, name: &str) -> &'a Value {
    boot["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn routes(boot: &Value) -> &Vec<Value> {
    let hcm =
        &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let vhs = hcm["route_config"]["virtual_hosts"].as_array().unwrap();
    assert_eq!(vhs.len(), 1);
    assert_eq!(vhs[0]["name"], "api.default.svc.cluster.local:8080");
    let domains = vhs[0]["domains"].as_array().unwrap();
    for d in ["api", "api:8080", "api.default.svc.cluster.local:8080"] {
        assert!(domains.contains(&json!(d)), "{d} missing from {domains:?}");
    }
    vhs[0]["routes"].as_array().unwrap()
}

#[test]
fn canary_split_has_weighted_subset_clusters_and_retry_policy() {
    let boot = generate(&config(""), &[("app", "checkout")]);
    let rs = routes(&boot);
    // The frontend-only rule is dropped for a checkout client, as istiod does.
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert_eq!(r["name"], "canary-split");
    assert_eq!(r["match"]["prefix"], "/");
    let wc = r["route"]["weighted_clusters"]["clusters"]
        .as_array()
        .unwrap();
    assert_eq!(wc.len(), 2);
    assert_eq!(
        wc[0]["name"],
        "outbound|8080|v1|api.default.svc.cluster.local"
    );
    assert_eq!(wc[0]["weight"], 90);
    assert_eq!(
        wc[1]["name"],
        "outbound|8080|v2|api.default.svc.cluster.local"
    );
    assert_eq!(wc[1]["weight"], 10);
    assert_eq!(r["route"]["timeout"], "5s");
    let rp = &r["route"]["retry_policy"];
    assert_eq!(
        rp["retry_on"],
        "gateway-error,connect-failure,refused-stream"
    );
    assert_eq!(rp["num_retries"], 3);
    assert_eq!(rp["per_try_timeout"], "2s");
    assert_eq!(rp["host_selection_retry_max_attempts"], 5);
    assert_eq!(
        rp["retry_host_predicate"][0]["name"],
        "envoy.retry_host_predicates.previous_hosts"
    );
}

#[test]
fn frontend_client_gets_the_source_label_route_only() {
    let boot = generate(&config(""), &[("app", "frontend")]);
    let rs = routes(&boot);
    // For a frontend client the sourceLabels block matches every request: the route table
    // drops the canary split after it (unreachable), and so does the bootstrap.
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0]["name"], "frontend-to-v2");
    assert_eq!(rs[0]["match"], json!({"prefix": "/"}));
    assert_eq!(
        rs[0]["route"]["cluster"],
        "outbound|8080|v2|api.default.svc.cluster.local"
    );
    // Written retries without retryOn get Istio's default conditions.
    let written: mesh_model::RetryOn = rs[0]["route"]["retry_policy"]["retry_on"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(written, mesh_model::RetryOn::istio_default());
    assert!(rs[0]["route"]["retry_policy"]
        .get("retriable_status_codes")
        .is_none());
}

#[test]
fn subset_clusters_have_their_endpoints_breakers_and_outlier_detection() {
    let boot = generate(&config(""), &[]);
    let v1 = cluster(&boot, "outbound|8080|v1|api.default.svc.cluster.local");
    assert_eq!(v1["type"], "STATIC");
    assert_eq!(v1["lb_policy"], "LEAST_REQUEST");
    let eps = v1["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap();
    let ports: Vec<u64> = eps
        .iter()
        .map(|e| {
            e["endpoint"]["address"]["socket_address"]["port_value"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ports, [9001, 9002]);
    let cb = &v1["circuit_breakers"]["thresholds"][0];
    assert_eq!(cb["max_connections"], 100);
    assert_eq!(cb["max_pending_requests"], 10);
    assert_eq!(cb["max_requests"], 1000);
    assert_eq!(cb["max_retries"], u64::from(u32::MAX));
    let od = &v1["outlier_detection"];
    assert_eq!(od["consecutive_5xx"], 5);
    assert_eq!(od["enforcing_consecutive_5xx"], 100);
    assert_eq!(od["enforcing_success_rate"], 0);
    assert_eq!(od["interval"], "10s");
    assert_eq!(od["base_ejection_time"], "30s");
    assert_eq!(od["max_ejection_percent"], 50);
    assert!(od.get("consecutive_gateway_failure").is_none());
    assert_eq!(
        v1["common_lb_config"]["healthy_panic_threshold"]["value"],
        0.0
    );

    // v2 replaces the connection pool wholesale (Istio's subset merge): limits back to
    // 2^32-1, the idle timeout set; its own load balancer; the top-level outlier detection.
    let v2 = cluster(&boot, "outbound|8080|v2|api.default.svc.cluster.local");
    assert_eq!(v2["lb_policy"], "ROUND_ROBIN");
    let cb = &v2["circuit_breakers"]["thresholds"][0];
    for k in [
        "max_connections",
        "max_pending_requests",
        "max_requests",
        "max_retries",
    ] {
        assert_eq!(cb[k], u64::from(u32::MAX), "{k}");
    }
    let opts = &v2["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(opts["common_http_protocol_options"]["idle_timeout"], "10s");
    assert_eq!(v2["outlier_detection"]["consecutive_5xx"], 5);
    let eps = v2["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap();
    assert_eq!(eps.len(), 2);

    // The subset-less cluster holds every endpoint.
    let all = cluster(&boot, "outbound|8080||api.default.svc.cluster.local");
    let eps = all["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap();
    assert_eq!(eps.len(), 4);
}

#[test]
fn listener_and_admin_bind_where_asked_and_only_the_router_runs_without_faults() {
    let boot = generate(&config(""), &[]);
    assert_eq!(
        boot["admin"]["address"]["socket_address"]["port_value"],
        15000
    );
    let l = &boot["static_resources"]["listeners"][0];
    assert_eq!(l["address"]["socket_address"]["address"], "127.0.0.1");
    assert_eq!(l["address"]["socket_address"]["port_value"], 15001);
    let filters = l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        .as_array()
        .unwrap();
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0]["name"], "envoy.filters.http.router");
}

const FAULTY: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-vs-canary}
spec:
  hosts: [api]
  http:
  - name: faulty
    match:
    - uri: {prefix: /slow}
      headers: {x-user: {exact: bob}}
    fault:
      delay: {fixedDelay: 1.5s, percentage: {value: 12.5}}
      abort: {httpStatus: 503, percentage: {value: 1}}
    retries: {attempts: 2, retryOn: '5xx,503'}
    route:
    - destination: {host: api, subset: v1}
  - route:
    - destination: {host: api, subset: v2}
";

#[test]
fn faults_matches_and_status_code_retries_are_translated() {
    let mut l = mesh_model::Loader::new();
    l.add_str("endpoints.yaml", ENDPOINTS);
    l.add_str("faulty.yaml", FAULTY);
    l.add_str(
            "dr.yaml",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: api\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
        );
    let loaded = l.finish();
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let boot = generate(&loaded.into_config(), &[]);
    let rs = routes(&boot);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0]["match"]["prefix"], "/slow");
    assert_eq!(rs[0]["match"]["headers"][0]["name"], "x-user");
    assert_eq!(rs[0]["match"]["headers"][0]["string_match"]["exact"], "bob");
    let f = &rs[0]["typed_per_filter_config"]["envoy.filters.http.fault"];
    assert_eq!(f["delay"]["fixed_delay"], "1.5s");
    assert_eq!(f["delay"]["percentage"]["numerator"], 125_000);
    assert_eq!(f["abort"]["http_status"], 503);
    assert_eq!(f["abort"]["percentage"]["numerator"], 10_000);
    let rp = &rs[0]["route"]["retry_policy"];
    assert_eq!(rp["retry_on"], "5xx,retriable-status-codes");
    assert_eq!(rp["retriable_status_codes"], json!([503]));
    // No timeout written: 0s (disabled), as istiod writes.
    assert_eq!(rs[1]["route"]["timeout"], "0s");
    // No DestinationRule outlier detection: no panic threshold either.
    let v1 = cluster(&boot, "outbound|8080|v1|api.default.svc.cluster.local");
    assert!(v1.get("outlier_detection").is_none());
    assert_eq!(
        v1["circuit_breakers"]["thresholds"][0]["max_connections"],
        u64::from(u32::MAX)
    );
    let filters = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"]
        .as_array()
        .unwrap();
    assert_eq!(filters[0]["name"], "envoy.filters.http.fault");
    assert_eq!(filters[1]["name"], "envoy.filters.http.router");
}

#[test]
fn a_host_without_service_entry_is_a_clear_error() {
    let mut l = mesh_model::Loader::new();
    l.add_str("canary.yaml", CANARY);
    let cfg = l.finish().into_config();
    let w = ClientContext::new("default");
    let err = bootstrap(&cfg, &w, addrs()).unwrap_err();
    assert!(err.contains("ServiceEntry"), "{err}");
}

#[test]
fn durations_use_envoy_notation() {
    assert_eq!(dur(StdDuration::from_secs(5)), "5s");
    assert_eq!(dur(StdDuration::from_millis(1500)), "1.5s");
    assert_eq!(dur(StdDuration::from_micros(250)), "0.00025s");
    assert_eq!(dur(StdDuration::ZERO), "0s");
}

/// Parses Envoy's duration notation back to nanoseconds, exactly.
fn parse_dur(s: &str) -> u128 {
    let s = s.strip_suffix('s').unwrap();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(frac.len() <= 9 && !frac.ends_with('0'), "{s}");
    let frac_ns: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().unwrap()
    };
    secs.parse::<u128>().unwrap() * 1_000_000_000 + frac_ns
}

proptest::proptest! {
    #[test]
    fn durations_round_trip_exactly(ns in 0u64..10_000_000_000_000) {
        let d = StdDuration::from_nanos(ns);
        proptest::prop_assert_eq!(parse_dur(&dur(d)), u128::from(ns));
    }

    #[test]
    fn weighted_clusters_carry_the_virtual_service_weights(w1 in 1u32..100, attempts in 0u32..6) {
        let w2 = 100 - w1;
        let vs = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: api-vs-canary}}\nspec:\n  hosts: [api]\n  http:\n  - name: split\n    retries: {{attempts: {attempts}}}\n    route:\n    - destination: {{host: api, subset: v1}}\n      weight: {w1}\n    - destination: {{host: api, subset: v2}}\n      weight: {w2}\n"
        );
        let mut l = mesh_model::Loader::new();
        l.add_str("endpoints.yaml", ENDPOINTS);
        l.add_str("vs.yaml", &vs);
        l.add_str(
            "dr.yaml",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: api\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
        );
        let loaded = l.finish();
        proptest::prop_assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        let boot = generate(&loaded.into_config(), &[]);
        let r = &routes(&boot)[0]["route"];
        let wc = r["weighted_clusters"]["clusters"].as_array().unwrap();
        proptest::prop_assert_eq!(wc.len(), 2);
        proptest::prop_assert_eq!(wc[0]["weight"].as_u64(), Some(u64::from(w1)));
        proptest::prop_assert_eq!(wc[1]["weight"].as_u64(), Some(u64::from(w2)));
        // attempts: 0 disables retries (no retry_policy); otherwise num_retries = attempts.
        if attempts == 0 {
            proptest::prop_assert!(r.get("retry_policy").is_none());
        } else {
            proptest::prop_assert_eq!(r["retry_policy"]["num_retries"].as_u64(), Some(u64::from(attempts)));
        }
    }
}
