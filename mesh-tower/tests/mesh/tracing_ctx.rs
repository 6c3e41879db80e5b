//! Trace context: `x-request-id` generated or kept across attempts and mirrors; W3C and B3
//! headers passed on unchanged; the access-log event.

use std::sync::atomic::{AtomicU64, Ordering};

use mesh_tower::telemetry::{AccessLogLine, ACCESS_LOG_TARGET};

use crate::support::*;

const MIRROR_SE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec:
  hosts: [mirror.mesh.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.9.9.9}
";

fn retried_and_mirrored() -> String {
    vs("  - mirror: {host: mirror.mesh.test}
    mirrorPercentage: {value: 100}
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
")
}

/// Fails the first two attempts at the primary endpoints; the mirror answers 200.
fn flaky() -> Mock {
    Mock::new(|s, _| {
        if s.authority() == "10.9.9.9:8080" {
            return Reply::Status(200);
        }
        Reply::Status(503)
    })
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_generated_request_id_is_the_same_on_every_attempt_and_mirror() {
    let mock = flaky();
    let (mut svc, _) = mesh(&[SE, MIRROR_SE, &retried_and_mirrored()], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), 503);
    settle().await;
    let seen = mock.seen();
    assert_eq!(seen.len(), 4, "three attempts and one mirror copy");
    let ids: Vec<&str> = seen
        .iter()
        .map(|s| s.headers["x-request-id"].to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let id = ids[0];
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "a version-4 UUID: {id}");
    assert!(seen.iter().any(|s| s.authority() == "10.9.9.9:8080"));

    // Another request gets another id.
    send(&mut svc, get("/")).await.unwrap();
    let next = mock.seen().last().unwrap().headers["x-request-id"].clone();
    assert_ne!(next, id);
}

#[tokio::test(start_paused = true)]
async fn the_callers_request_id_and_trace_headers_arrive_unchanged() {
    let mock = flaky();
    let (mut svc, _) = mesh(&[SE, MIRROR_SE, &retried_and_mirrored()], &mock);
    let trace = [
        ("x-request-id", "caller-id-1"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "0"),
        (
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        ),
    ];
    let mut req = get("/");
    for (k, v) in trace {
        req.headers_mut().insert(k, v.parse().unwrap());
    }
    send(&mut svc, req).await.unwrap();
    settle().await;
    let seen = mock.seen();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        for (k, v) in trace {
            assert_eq!(s.headers[k], v, "{k} at {}", s.authority());
            assert_eq!(s.headers.get_all(k).iter().count(), 1);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_request_id_when_generation_is_off() {
    let mock = Mock::always(200);
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .generate_request_id(false)
        .build()
        .unwrap();
    let mut svc = layer.layer(mock.clone());
    send(&mut svc, get("/")).await.unwrap();
    assert!(mock.seen()[0].headers.get("x-request-id").is_none());
}

/// A subscriber that keeps the access-log lines it sees.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<AccessLogLine>>>);

impl tracing::Subscriber for Lines {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        m.target() == ACCESS_LOG_TARGET
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        tracing::span::Id::from_u64(NEXT.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if let Some(line) = AccessLogLine::from_event(event) {
            self.0.lock().unwrap().push(line);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn one_access_log_event_per_request_with_istios_fields() {
    let lines = Lines::default();
    let _sub = tracing::subscriber::set_default(lines.clone());
    let route = vs("  - name: primary
    match: [{uri: {prefix: /items}, name: items}]
    retries: {attempts: 1, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test, subset: v2}}]
");
    let mock = Mock::new(|_, n| {
        if n == 1 {
            Reply::Status(503)
        } else {
            Reply::Slow(Duration::from_millis(40), 200)
        }
    });
    let layer = MeshLayer::builder()
        .config(config(&[SE, SUBSETS, &route]))
        .seed(7)
        .access_log(true)
        .build()
        .unwrap();
    let mut svc = layer.layer(mock.clone());
    let mut req = get("/items/1?x=1");
    req.headers_mut()
        .insert("user-agent", "curl/8.5".parse().unwrap());
    req.headers_mut()
        .insert("x-forwarded-for", "192.0.2.1".parse().unwrap());
    let res = send(&mut svc, req).await.unwrap();
    assert!(
        lines.0.lock().unwrap().is_empty(),
        "logged when the response ends"
    );
    assert_eq!(body_of(res).await, "upstream body");
    // No route: logged at once.
    send(&mut svc, get("/nowhere")).await.unwrap_err();

    let got = lines.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let ok = &got[0];
    let id = mock.seen()[0].headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let expect = [
        ("method", "GET"),
        ("path", "/items/1?x=1"),
        ("protocol", "HTTP/1.1"),
        ("response_code", "200"),
        ("response_flags", "-"),
        ("response_code_details", "via_upstream"),
        ("connection_termination_details", "-"),
        ("upstream_transport_failure_reason", "-"),
        ("bytes_received", "0"),
        ("bytes_sent", "13"),
        ("duration", "40"),
        ("upstream_service_time", "40"),
        ("x_forwarded_for", "192.0.2.1"),
        ("user_agent", "curl/8.5"),
        ("request_id", id.as_str()),
        ("authority", "api.mesh.test:8080"),
        ("upstream_host", "10.0.0.2:8080"),
        ("upstream_cluster", "outbound|8080|v2|api.mesh.test"),
        ("upstream_local_address", "-"),
        ("downstream_local_address", "-"),
        ("downstream_remote_address", "-"),
        ("requested_server_name", "-"),
        ("route_name", "primary.items"),
    ];
    for (k, v) in expect {
        assert_eq!(ok.get(k), Some(v), "{k}");
    }
    let start = ok.get("start_time").unwrap();
    assert!(start.len() == 24 && start.ends_with('Z'), "{start}");
    let text = ok.to_string();
    let after_time = &text[text.find(']').unwrap() + 1..];
    assert_eq!(
        after_time,
        format!(
            " \"GET /items/1?x=1 HTTP/1.1\" 200 - via_upstream - \"-\" 0 13 40 40 \"192.0.2.1\" \"curl/8.5\" \"{id}\" \"api.mesh.test:8080\" \"10.0.0.2:8080\" outbound|8080|v2|api.mesh.test - - - - primary.items"
        )
    );
    let nr = &got[1];
    assert_eq!(nr.get("response_code"), Some("404"));
    assert_eq!(nr.get("response_flags"), Some("NR"));
    assert_eq!(nr.get("response_code_details"), Some("route_not_found"));
    assert_eq!(nr.get("upstream_cluster"), Some("-"));
    assert_eq!(nr.get("route_name"), Some("-"));
    assert_eq!(nr.get("request_id").map(str::len), Some(36));
}
