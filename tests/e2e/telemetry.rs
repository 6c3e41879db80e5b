//! Istio's metrics end to end: real backends, a real hyper-util client in the mesh, and
//! `metrics-exporter-prometheus` as the recorder; the exposition text is parsed back and
//! compared with what the backends received.

use std::collections::BTreeMap;
use std::time::Duration;

use mesh_tests::{Action, Backend, Rule, Select};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::ENVOY_HISTOGRAM_BUCKETS;
use mesh_tower::ClientContext;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::support::mesh::{connector_mesh, Client, MeshOptions};
use crate::support::pods::Pods;
use crate::support::requests::{conn_get, fetch, get, send, status_of};
use crate::support::upstream::API;
use crate::support::yaml::{api_rule, conn_entry, conn_rule, virtual_service, V1_V2};

/// The four pods of `api` ([`Pods::four`]), each also labelled `app: api`.
async fn pods() -> Pods {
    Pods::four(&[("app", "api")]).await
}

/// Subsets `v1` and `v2`, a VirtualService with the `http` list items `routes`, and the
/// pods' ServiceEntry.
fn config(pods: &Pods, routes: &str) -> mesh_model::MeshConfig {
    pods.config(&[&api_rule(V1_V2, ""), &virtual_service(&API, routes)])
}

/// The mesh of a client workload `checkout` (seed 11) around the legacy client.
fn mesh(cfg: mesh_model::MeshConfig) -> Client {
    MeshOptions::new()
        .client(
            ClientContext::new("default")
                .with_label("app", "checkout")
                .with_workload_name("checkout"),
        )
        .seed(11)
        .build(cfg)
        .0
}

/// A Prometheus recorder with Envoy's histogram buckets for Istio's metrics, and its handle.
fn recorder() -> (PrometheusRecorder, PrometheusHandle) {
    let r = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Prefix("istio_".to_owned()),
            &ENVOY_HISTOGRAM_BUCKETS,
        )
        .unwrap()
        .build_recorder();
    let h = r.handle();
    (r, h)
}

/// `name{labels} value` lines of the exposition text.
fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let labels = &series[name.len() + 1..series.len() - 1];
            let mut map = BTreeMap::new();
            let mut rest = labels;
            while let Some((k, after)) = rest.split_once("=\"") {
                let (v, tail) = after.split_once('"').unwrap();
                map.insert(k.trim_start_matches(',').to_owned(), v.to_owned());
                rest = tail;
            }
            (map, value.parse().unwrap())
        })
        .collect()
}

/// The samples of `name` summed by the value of `label`.
fn sum_by(text: &str, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (labels, v) in samples(text, name) {
        *out.entry(labels.get(label).cloned().unwrap_or_default())
            .or_default() += v;
    }
    out
}

#[tokio::test]
async fn the_canary_split_counts_what_each_version_received() {
    let (rec, prom) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let pods = pods().await;
    let client = mesh(config(
        &pods,
        "  - route:
    - {destination: {host: api, subset: v1}, weight: 90}
    - {destination: {host: api, subset: v2}, weight: 10}
",
    ));
    for i in 0..200 {
        assert_eq!(status_of(&client, get(&format!("/items/{i}"))).await, 200);
    }
    let text = prom.render();
    let by_version = sum_by(&text, "istio_requests_total", "destination_version");
    let v1 = pods.received("v1") as f64;
    let v2 = pods.received("v2") as f64;
    assert_eq!(v1 + v2, 200.0);
    assert!(v2 > 0.0 && v1 > v2, "{v1} / {v2}");
    assert_eq!(
        by_version,
        BTreeMap::from([("v1".to_owned(), v1), ("v2".to_owned(), v2)])
    );
    // Every label of the v1 series.
    let v1_series: Vec<_> = samples(&text, "istio_requests_total")
        .into_iter()
        .filter(|(l, _)| l["destination_version"] == "v1")
        .collect();
    assert_eq!(v1_series.len(), 1);
    let expected: BTreeMap<String, String> = [
        ("reporter", "source"),
        ("source_workload", "checkout"),
        ("source_canonical_service", "checkout"),
        ("source_canonical_revision", "latest"),
        ("source_workload_namespace", "default"),
        ("source_principal", "unknown"),
        ("source_app", "checkout"),
        ("source_version", ""),
        ("source_cluster", ""),
        ("destination_workload", "unknown"),
        ("destination_workload_namespace", "unknown"),
        ("destination_principal", "unknown"),
        ("destination_app", "api"),
        ("destination_version", "v1"),
        ("destination_service", "api.default.svc.cluster.local"),
        ("destination_canonical_service", "api"),
        ("destination_canonical_revision", "v1"),
        ("destination_service_name", "api.default.svc.cluster.local"),
        ("destination_service_namespace", "unknown"),
        ("destination_cluster", "unknown"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("grpc_response_status", ""),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(v1_series[0].0, expected);
    // The duration histogram: one observation per request, in Envoy's buckets.
    let counts = sum_by(
        &text,
        "istio_request_duration_milliseconds_count",
        "destination_version",
    );
    assert_eq!(counts, by_version);
    let mut les: Vec<String> = samples(&text, "istio_request_duration_milliseconds_bucket")
        .into_iter()
        .filter(|(l, _)| l["destination_version"] == "v1")
        .map(|(l, _)| l["le"].clone())
        .collect();
    les.dedup();
    let mut envoy: Vec<String> = ENVOY_HISTOGRAM_BUCKETS
        .iter()
        .map(|b| b.to_string())
        .collect();
    envoy.push("+Inf".to_owned());
    assert_eq!(les, envoy);
    // Response bytes: each backend answers with its name ("v1-a": 4 bytes).
    let bytes = sum_by(&text, "istio_response_bytes_sum", "destination_version");
    assert_eq!(bytes["v1"], 4.0 * v1);
}

#[tokio::test]
async fn a_failing_v2_reports_urx_and_no_route_nr() {
    let (rec, prom) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let pods = pods().await;
    for b in pods.of_version("v2") {
        b.set_rules([Rule::new(Select::All, Action::Status(503))]);
    }
    let client = mesh(config(
        &pods,
        "  - match: [{uri: {prefix: /v2}}]
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: api, subset: v2}}]
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: api, subset: v1}}]
",
    ));
    for _ in 0..5 {
        assert_eq!(status_of(&client, get("/v2")).await, 503);
        assert_eq!(status_of(&client, get("/v1")).await, 200);
    }
    assert_eq!(status_of(&client, get("/elsewhere")).await, 404);
    assert_eq!(pods.received("v2"), 15, "1 + 2 retries each");
    let text = prom.render();
    let mut got: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for (l, v) in samples(&text, "istio_requests_total") {
        *got.entry((
            l["destination_version"].clone(),
            l["response_code"].clone(),
            l["response_flags"].clone(),
        ))
        .or_default() += v;
    }
    let key = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        got,
        BTreeMap::from([
            (key("v2", "503", "URX"), 5.0),
            (key("v1", "200", "-"), 5.0),
            (key("unknown", "404", "NR"), 1.0),
        ])
    );
}

/// The value of Envoy stat `stat` for the connector tests' cluster, if it was published.
fn cluster_stat(text: &str, stat: &str) -> Option<f64> {
    samples(text, &format!("envoy_cluster_{stat}"))
        .into_iter()
        .find(|(labels, _)| labels["cluster_name"] == "outbound|80||api.conn.test")
        .map(|(_, v)| v)
}

/// `upstream_cx_active` and `upstream_cx_total` from the mesh's own
/// connector, compared with the sockets the backends accepted; none of them for a cluster
/// served by another client.
#[tokio::test]
async fn the_mesh_client_publishes_envoy_connection_stats() {
    let (rec, prom) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let delay = || Rule::new(Select::All, Action::Delay(Duration::from_millis(20)));
    let a = Backend::builder()
        .name("a")
        .rule(delay())
        .start()
        .await
        .unwrap();
    let b = Backend::builder()
        .name("b")
        .rule(delay())
        .start()
        .await
        .unwrap();
    let (client, handle) = connector_mesh(
        &[
            &conn_entry("HTTP", &[a.addr()]),
            &conn_rule("    connectionPool: {tcp: {maxConnections: 2}}\n"),
        ],
        MeshClient::builder(),
    );
    // Before any request no connector keeps connections for the cluster: nothing published.
    handle.record_envoy_stats();
    assert_eq!(cluster_stat(&prom.render(), "upstream_cx_active"), None);

    // Twenty requests at once over at most two sockets.
    let burst = send(&client, 20, 20, |_| conn_get("/")).await;
    assert_eq!(burst.statuses, BTreeMap::from([(200, 20)]), "{burst:?}");
    handle.record_envoy_stats();
    let text = prom.render();
    assert_eq!(a.connections(), 2);
    assert_eq!(cluster_stat(&text, "upstream_cx_total"), Some(2.0));
    assert_eq!(
        cluster_stat(&text, "upstream_cx_active"),
        Some(a.open_connections() as f64)
    );
    assert_eq!(a.open_connections(), 2, "kept alive");

    // `a` leaves the cluster: its idle connections close; `b` gets the next request.
    handle.endpoint_source().publish(
        "api.conn.test",
        vec![
            mesh_tower::routing::endpoints::Endpoint::new(&b.addr().ip().to_string())
                .with_port_mapping(80, b.addr().port()),
        ],
    );
    tokio::time::timeout(Duration::from_secs(30), a.wait_closed(2))
        .await
        .expect("a's connections closed");
    // The connector learns of the close from its connection tasks: wait for them (bounded).
    let mut active = None;
    for _ in 0..300 {
        handle.record_envoy_stats();
        active = cluster_stat(&prom.render(), "upstream_cx_active");
        if active == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(active, Some(0.0));
    let res = fetch(&client, conn_get("/")).await;
    assert_eq!(res.unwrap().0, 200);
    handle.record_envoy_stats();
    let text = prom.render();
    assert_eq!(b.connections(), 1);
    assert_eq!(cluster_stat(&text, "upstream_cx_total"), Some(3.0));
    assert_eq!(cluster_stat(&text, "upstream_cx_active"), Some(1.0));
}
