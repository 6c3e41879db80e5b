//! The `mesh.request` and `mesh.attempt` spans as OpenTelemetry sees them: through
//! `tracing-opentelemetry` into the SDK's in-memory exporter, one client span per request and
//! one child client span per attempt, with the HTTP client semantic conventions' attributes.
//!
//! A test binary of its own: `tracing` caches each callsite's interest process-wide, and a
//! test without a subscriber on another thread of the same binary can register a mesh
//! callsite as uninteresting while a test here installs its subscriber. Here every test
//! installs one before the mesh runs.

// The shared support module reads tokio's paused clock directly, as the `mesh` tests do.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code, unused_imports)]
#[path = "mesh/support.rs"]
mod support;

use std::collections::BTreeMap;

use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::*;

/// Retries 5xx twice at most (three attempts).
fn two_retries() -> String {
    vs("  - name: primary
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
")
}

/// Sends `req` inside an application span `app`, with a tracing-opentelemetry subscriber
/// over an in-memory exporter; returns the status and the finished spans.
async fn traced(mock: &Mock, path: &str) -> (u16, Vec<SpanData>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("mesh-tower-test")));
    let _default = tracing::subscriber::set_default(subscriber);
    let (mut svc, _) = mesh(&[SE, &two_retries()], mock);
    let status = async { send(&mut svc, get(path)).await.unwrap().status().as_u16() }
        .instrument(tracing::info_span!("app"))
        .await;
    (status, exporter.get_finished_spans().unwrap())
}

fn attrs(span: &SpanData) -> BTreeMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
        .collect()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(start_paused = true)]
async fn one_request_span_and_a_child_client_span_per_attempt() {
    let mock = Mock::new(|_, n| Reply::Status(if n < 3 { 503 } else { 200 }));
    let (status, spans) = traced(&mock, "/items?page=2").await;
    assert_eq!(status, 200);
    assert_eq!(mock.count(), 3);

    // The application's span, the mesh's request span and three attempts; all one trace.
    assert_eq!(
        spans.len(),
        5,
        "{:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let app = named(&spans, "app")[0];
    let requests = named(&spans, "GET");
    let trace = app.span_context.trace_id();
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace));

    // The request span: a client span under the application's, named by the method.
    let request = requests
        .iter()
        .find(|s| s.parent_span_id == app.span_context.span_id())
        .expect("the request span is the application span's child");
    assert_eq!(request.span_kind, SpanKind::Client);
    let a = attrs(request);
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["server.address"], "api.mesh.test");
    assert_eq!(a["server.port"], "8080");
    assert_eq!(a["url.full"], "http://api.mesh.test:8080/items?page=2");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["mesh.route"], "http[0] (primary)");
    assert_eq!(a["mesh.virtual_service"], "default/api");
    assert_eq!(a["mesh.cluster"], "outbound|8080||api.mesh.test");
    assert_eq!(a["mesh.response_flags"], "-");
    assert!(!a.contains_key("error.type"), "{a:?}");
    assert!(!a.contains_key("http.request.resend_count"), "{a:?}");
    assert_eq!(request.status, Status::Unset);

    // The attempts: children of the request span, in order, each with its own status.
    let mut attempts: Vec<_> = requests
        .iter()
        .filter(|s| s.parent_span_id == request.span_context.span_id())
        .map(|s| (attrs(s), *s))
        .collect();
    assert_eq!(attempts.len(), 3);
    attempts.sort_by_key(|(a, _)| a["mesh.attempt"].clone());
    let statuses: Vec<&str> = attempts
        .iter()
        .map(|(a, _)| a["http.response.status_code"].as_str())
        .collect();
    assert_eq!(statuses, ["503", "503", "200"]);
    let resends: Vec<Option<&str>> = attempts
        .iter()
        .map(|(a, _)| a.get("http.request.resend_count").map(String::as_str))
        .collect();
    assert_eq!(resends, [None, Some("1"), Some("2")]);
    let errors: Vec<Option<&str>> = attempts
        .iter()
        .map(|(a, _)| a.get("error.type").map(String::as_str))
        .collect();
    assert_eq!(errors, [Some("503"), Some("503"), None]);
    let seen = mock.seen();
    for (i, (a, s)) in attempts.iter().enumerate() {
        assert_eq!(s.span_kind, SpanKind::Client);
        assert_eq!(a["http.request.method"], "GET");
        assert_eq!(a["server.address"], "api.mesh.test");
        assert_eq!(a["url.full"], "http://api.mesh.test:8080/items?page=2");
        assert_eq!(a["mesh.cluster"], "outbound|8080||api.mesh.test");
        // The endpoint each attempt went to, as the backend saw it.
        let peer = format!("{}:{}", a["network.peer.address"], a["network.peer.port"]);
        assert_eq!(peer, seen[i].authority());
        let failed = i < 2;
        assert_eq!(matches!(s.status, Status::Error { .. }), failed, "{i}");
        assert_eq!(a.contains_key("mesh.retry_reason"), failed, "{i}: {a:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_run_out_the_request_span_says_urx() {
    let mock = Mock::always(503);
    let (status, spans) = traced(&mock, "/").await;
    assert_eq!(status, 503);
    let gets = named(&spans, "GET");
    assert_eq!(gets.len(), 4, "one request and three attempts");
    let app = named(&spans, "app")[0];
    let request = gets
        .iter()
        .find(|s| s.parent_span_id == app.span_context.span_id())
        .unwrap();
    let a = attrs(request);
    assert_eq!(a["http.response.status_code"], "503");
    assert_eq!(a["error.type"], "503");
    assert_eq!(a["mesh.response_flags"], "URX");
    assert!(matches!(request.status, Status::Error { .. }));
    let children = gets
        .iter()
        .filter(|s| s.parent_span_id == request.span_context.span_id())
        .count();
    assert_eq!(children, 3);
}

#[tokio::test(start_paused = true)]
async fn a_local_reply_has_no_attempt_span_and_names_its_error() {
    let mock = Mock::always(200);
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("mesh-tower-test")));
    let _default = tracing::subscriber::set_default(subscriber);
    // Only `/known` is routed: anything else is Envoy's 404 `NR`.
    let route = vs("  - match: [{uri: {exact: /known}}]
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/unknown")).await.unwrap_err();
    assert!(err.is_no_route());
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1, "the request span only: no attempt was made");
    let a = attrs(&spans[0]);
    assert_eq!(a["error.type"], "route_not_found");
    assert_eq!(a["mesh.response_flags"], "NR");
    assert!(!a.contains_key("http.response.status_code"), "{a:?}");
    assert_eq!(mock.count(), 0);
}
