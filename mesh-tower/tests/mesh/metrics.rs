//! Istio's standard metrics, read back from `metrics-util`'s debugging recorder.

use std::collections::BTreeMap as Map;

use mesh_tower::ClientContext;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::support::*;

/// Endpoints with the labels of Kubernetes pods behind `reviews`: v1 and v2.
const REVIEWS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [api.mesh.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {app: reviews, version: v1}}
  - {address: 10.0.0.2, labels: {app: reviews, version: v2, topology.istio.io/cluster: east}}
";

fn recorder() -> (DebuggingRecorder, Snapshotter) {
    let r = DebuggingRecorder::new();
    let s = r.snapshotter();
    (r, s)
}

fn client() -> ClientContext {
    ClientContext::new("shop")
        .with_label("app", "frontend")
        .with_label("version", "v7")
        .with_workload_name("frontend-v7")
        .with_cluster_id("Kubernetes")
}

fn mesh_for(docs: &[&str], mock: &Mock) -> Mesh<Mock> {
    let layer = MeshLayer::builder()
        .config(config(docs))
        .client(client())
        .seed(7)
        .build()
        .expect("builds");
    layer.layer(mock.clone())
}

/// One metric series: its labels and value.
#[derive(Debug)]
struct Series {
    labels: Map<String, String>,
    value: Value,
}

#[derive(Debug)]
enum Value {
    Count(u64),
    Values(Vec<f64>),
    Gauge(f64),
}

fn value_of(v: &DebugValue) -> Value {
    match v {
        DebugValue::Counter(n) => Value::Count(*n),
        DebugValue::Gauge(g) => Value::Gauge(g.into_inner()),
        DebugValue::Histogram(h) => Value::Values(h.iter().map(|x| x.into_inner()).collect()),
    }
}

/// Every metric recorded so far (a snapshot drains the recorder: take one per test).
type Taken = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

fn take(snapshot: &Snapshotter) -> Taken {
    snapshot.snapshot().into_vec()
}

fn series(taken: &Taken, name: &str) -> Vec<Series> {
    taken
        .iter()
        .filter(|(k, ..)| k.key().name() == name)
        .map(|(k, _, _, value)| Series {
            value: value_of(value),
            labels: k
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect(),
        })
        .collect()
}

fn count(s: &Series) -> u64 {
    match &s.value {
        Value::Count(n) => *n,
        other => panic!("not a counter: {other:?}"),
    }
}

fn values(s: &Series) -> Vec<f64> {
    match &s.value {
        Value::Values(v) => v.clone(),
        other => panic!("not a histogram: {other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Map<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn requests_total_counts_each_request_with_istios_labels() {
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let route = vs("  - match: [{headers: {x-v2: {exact: \"1\"}}}]
    route: [{destination: {host: api.mesh.test, subset: v2}}]
  - route: [{destination: {host: api.mesh.test, subset: v1}}]
");
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_millis(250), 200));
    let mut svc = mesh_for(&[REVIEWS, SUBSETS, &route], &mock);
    for i in 0..10 {
        let mut req = get("/r");
        if i % 5 == 0 {
            req.headers_mut().insert("x-v2", "1".parse().unwrap());
        }
        let res = send(&mut svc, req).await.unwrap();
        assert_eq!(body_of(res).await, "upstream body");
    }
    assert_eq!(mock.count(), 10);

    let snap = take(&snap);
    let totals = series(&snap, "istio_requests_total");
    assert_eq!(totals.len(), 2, "{totals:#?}");
    let by_version: Map<&str, u64> = totals
        .iter()
        .map(|s| (s.labels["destination_version"].as_str(), count(s)))
        .collect();
    assert_eq!(by_version, Map::from([("v1", 8), ("v2", 2)]));

    let v2 = totals
        .iter()
        .find(|s| s.labels["destination_version"] == "v2")
        .unwrap();
    assert_eq!(
        v2.labels,
        labels(&[
            ("reporter", "source"),
            ("source_workload", "frontend-v7"),
            ("source_canonical_service", "frontend"),
            ("source_canonical_revision", "v7"),
            ("source_workload_namespace", "shop"),
            ("source_principal", "unknown"),
            ("source_app", "frontend"),
            ("source_version", "v7"),
            ("source_cluster", "Kubernetes"),
            ("destination_workload", "unknown"),
            ("destination_workload_namespace", "unknown"),
            ("destination_principal", "unknown"),
            ("destination_app", "reviews"),
            ("destination_version", "v2"),
            ("destination_service", "api.mesh.test"),
            ("destination_canonical_service", "reviews"),
            ("destination_canonical_revision", "v2"),
            // A ServiceEntry's service is named by its host.
            ("destination_service_name", "api.mesh.test"),
            ("destination_service_namespace", "unknown"),
            ("destination_cluster", "east"),
            ("request_protocol", "http"),
            ("response_code", "200"),
            ("grpc_response_status", ""),
            ("response_flags", "-"),
            ("connection_security_policy", "unknown"),
        ])
    );

    // Durations on the paused clock: exactly the upstream's 250 ms; body sizes: 13 bytes.
    let durations = series(&snap, "istio_request_duration_milliseconds");
    let all: Vec<f64> = durations.iter().flat_map(values).collect();
    assert_eq!(all, vec![250.0; 10]);
    let sizes: Vec<f64> = series(&snap, "istio_response_bytes")
        .iter()
        .flat_map(values)
        .collect();
    assert_eq!(sizes, vec![13.0; 10]);
    let requests: Vec<f64> = series(&snap, "istio_request_bytes")
        .iter()
        .flat_map(values)
        .collect();
    assert_eq!(requests, vec![0.0; 10]);
}

/// A destination that answers in more ways than the mesh keeps handles for in its fixed slots:
/// every outcome is still its own series, counted exactly.
#[tokio::test(start_paused = true)]
async fn many_outcomes_of_one_destination_are_each_counted() {
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    // The status is the last path segment: `/s/204` answers 204.
    let mock =
        Mock::new(|s, _| Reply::Status(s.path().rsplit('/').next().unwrap().parse().unwrap()));
    let mut svc = mesh_for(&[REVIEWS, &route], &mock);
    let codes: Vec<u16> = (200..230).chain(400..430).collect();
    // A snapshot drains the recorder: each round's snapshot holds that round's requests.
    for round in 1..=3 {
        for code in &codes {
            let res = send(&mut svc, get(&format!("/s/{code}"))).await.unwrap();
            assert_eq!(res.status().as_u16(), *code);
            body_of(res).await;
        }
        let taken = take(&snap);
        let mut by_code = Map::new();
        for s in series(&taken, "istio_requests_total") {
            // Summed over the two destinations (v1 and v2 endpoints).
            *by_code
                .entry(s.labels["response_code"].clone())
                .or_default() += count(&s);
        }
        let want: Map<String, u64> = codes.iter().map(|c| (c.to_string(), 1)).collect();
        assert_eq!(by_code, want, "after round {round}");
    }
}

#[tokio::test(start_paused = true)]
async fn failures_carry_code_and_flags() {
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";
    let route = vs("  - match: [{uri: {prefix: /v2}}]
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test, subset: v2}}]
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: api.mesh.test, subset: v1}}]
");
    let mock = Mock::new(|s, _| {
        Reply::Status(if s.authority() == "10.0.0.2:8080" {
            503
        } else {
            200
        })
    });
    let mut svc = mesh_for(&[REVIEWS, dr, &route], &mock);
    // v2 fails: three attempts, then the last 503 with URX.
    let res = send(&mut svc, get("/v2")).await.unwrap();
    assert_eq!(res.status(), 503);
    body_of(res).await;
    // v1 holds its only pool slot while a second request overflows.
    let held = send(&mut svc, get("/v1")).await.unwrap();
    let err = send(&mut svc, get("/v1")).await.unwrap_err();
    assert!(err.is_overflow());
    body_of(held).await;
    // No route.
    assert!(send(&mut svc, get("/none"))
        .await
        .unwrap_err()
        .is_no_route());

    let snap = take(&snap);
    let totals = series(&snap, "istio_requests_total");
    let outcome: Map<(String, String, String), u64> = totals
        .iter()
        .map(|s| {
            (
                (
                    s.labels["destination_version"].clone(),
                    s.labels["response_code"].clone(),
                    s.labels["response_flags"].clone(),
                ),
                count(s),
            )
        })
        .collect();
    let key = |v: &str, c: &str, f: &str| (v.to_owned(), c.to_owned(), f.to_owned());
    assert_eq!(
        outcome,
        Map::from([
            (key("v2", "503", "URX"), 1),
            (key("v1", "200", "-"), 1),
            // Refused before an endpoint was picked: no destination labels.
            (key("unknown", "503", "UO"), 1),
            (key("unknown", "404", "NR"), 1),
        ])
    );
    let nr = totals
        .iter()
        .find(|s| s.labels["response_flags"] == "NR")
        .unwrap();
    assert_eq!(nr.labels["destination_service"], "unknown");
    assert_eq!(nr.labels["destination_service_name"], "unknown");
    let uo = totals
        .iter()
        .find(|s| s.labels["response_flags"] == "UO")
        .unwrap();
    assert_eq!(uo.labels["destination_service"], "api.mesh.test");
    assert_eq!(uo.labels["destination_canonical_revision"], "latest");
    // The overflow reply's body is Envoy's text.
    let overflow_bytes = series(&snap, "istio_response_bytes")
        .into_iter()
        .find(|s| s.labels["response_flags"] == "UO")
        .map(|s| values(&s))
        .unwrap();
    assert_eq!(
        overflow_bytes,
        vec![err.to_response::<Full<Bytes>>().headers()["content-length"]
            .to_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()]
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_requests_report_the_grpc_status() {
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let route = vs("  - route: [{destination: {host: api.mesh.test, subset: v1}}]\n");
    let mock = Mock::new(|s, _| match s.path() {
        "/ok" => Reply::WithHeaders(200, vec![("grpc-status", "0")]),
        "/missing" => Reply::WithHeaders(200, vec![("grpc-status", "5")]),
        _ => Reply::Status(503),
    });
    let mut svc = mesh_for(&[REVIEWS, SUBSETS, &route], &mock);
    for path in ["/ok", "/missing", "/down"] {
        let mut req = get(path);
        req.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        let res = send(&mut svc, req).await.unwrap();
        body_of(res).await;
    }
    let snap = take(&snap);
    let got: Map<(String, String), (String, u64)> = series(&snap, "istio_requests_total")
        .iter()
        .map(|s| {
            (
                (
                    s.labels["response_code"].clone(),
                    s.labels["grpc_response_status"].clone(),
                ),
                (s.labels["request_protocol"].clone(), count(s)),
            )
        })
        .collect();
    let g = |c: &str, s: &str| (c.to_owned(), s.to_owned());
    let one = ("grpc".to_owned(), 1);
    assert_eq!(
        got,
        Map::from([
            (g("200", "0"), one.clone()),
            (g("200", "5"), one.clone()),
            // No grpc-status: inferred from 503 (UNAVAILABLE).
            (g("503", "14"), one),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_dropped_before_its_end_is_dc() {
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let route = vs("  - route: [{destination: {host: api.mesh.test, subset: v1}}]\n");
    let mock = Mock::always(200);
    let mut svc = mesh_for(&[REVIEWS, SUBSETS, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    let before = take(&snap);
    assert!(
        series(&before, "istio_requests_total")
            .iter()
            .all(|s| count(s) == 0),
        "not yet: the body is unread"
    );
    drop(res);
    let snap = take(&snap);
    let totals = series(&snap, "istio_requests_total");
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].labels["response_flags"], "DC");
}

#[tokio::test(start_paused = true)]
async fn no_metrics_when_turned_off() {
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    let mock = Mock::always(200);
    let layer = MeshLayer::builder()
        .config(config(&[REVIEWS, &route]))
        .metrics(false)
        .build()
        .unwrap();
    let mut svc = layer.layer(mock.clone());
    let res = send(&mut svc, get("/")).await.unwrap();
    body_of(res).await;
    assert!(series(&take(&snap), "istio_requests_total").is_empty());
}

#[tokio::test(start_paused = true)]
async fn envoy_cluster_stats_are_published_under_envoys_names() {
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let route = vs("  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test, subset: v1}}]
  - match: [{uri: {prefix: /down}}]
    retries: {attempts: 1, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test, subset: v2}}]
  - match: [{uri: {prefix: /slow}}]
    retries: {attempts: 1, perTryTimeout: 1s, retryOn: 5xx}
    timeout: 1500ms
    route: [{destination: {host: api.mesh.test, subset: v2}}]
");
    let flaky = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mock = Mock::new(move |s, _| match s.path() {
        "/flaky" => {
            let n = flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Reply::Status(if n == 0 { 503 } else { 200 })
        }
        "/down" => Reply::Status(503),
        _ => Reply::Slow(Duration::from_secs(5), 200),
    });
    let layer = MeshLayer::builder()
        .config(config(&[REVIEWS, SUBSETS, &route]))
        .seed(7)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(mock.clone());
    body_of(send(&mut svc, get("/flaky")).await.unwrap()).await;
    body_of(send(&mut svc, get("/down")).await.unwrap()).await;
    let slow = send(&mut svc, get("/slow")).await.unwrap_err();
    // The first attempt hits its per-try timeout, the retry the route timeout.
    assert_eq!(slow.response_flags().to_string(), "UT");
    handle.record_envoy_stats();
    let taken = take(&snap);
    let stat = |name: &str, cluster: &str| -> f64 {
        let s = series(&taken, &format!("envoy_cluster_{name}"))
            .into_iter()
            .find(|s| s.labels["cluster_name"] == cluster)
            .unwrap_or_else(|| panic!("{name} of {cluster}"));
        assert_eq!(s.labels.len(), 1);
        match s.value {
            Value::Count(n) => n as f64,
            Value::Gauge(g) => g,
            Value::Values(_) => panic!("histogram"),
        }
    };
    let v1 = "outbound|8080|v1|api.mesh.test";
    let v2 = "outbound|8080|v2|api.mesh.test";
    assert_eq!(stat("upstream_rq_total", v1), 2.0);
    assert_eq!(stat("upstream_rq_retry", v1), 1.0);
    assert_eq!(stat("upstream_rq_retry_success", v1), 1.0);
    assert_eq!(stat("upstream_rq_retry_limit_exceeded", v1), 0.0);
    // /down: 2 attempts, limit exceeded; /slow: 2 attempts, one per-try timeout, then the route's.
    assert_eq!(stat("upstream_rq_total", v2), 4.0);
    assert_eq!(stat("upstream_rq_retry", v2), 2.0);
    assert_eq!(stat("upstream_rq_retry_limit_exceeded", v2), 1.0);
    assert_eq!(stat("upstream_rq_per_try_timeout", v2), 1.0);
    assert_eq!(stat("upstream_rq_timeout", v2), 1.0);
    assert_eq!(stat("upstream_rq_pending_overflow", v2), 0.0);
    assert_eq!(stat("upstream_rq_active", v2), 0.0);
    assert_eq!(stat("membership_total", v2), 1.0);
    assert_eq!(stat("membership_healthy", v2), 1.0);
    assert_eq!(stat("outlier_detection_ejections_active", v2), 0.0);
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", Some("v2")).unwrap();
    assert_eq!(
        (
            c.per_try_timeouts(),
            c.route_timeouts(),
            c.retry_limit_exceeded()
        ),
        (1, 1, 1)
    );
}
