//! Request hygiene: which authority routes a request and which `Host` goes upstream
//! (userinfo, a trailing root dot, a `Host` header that differs from the URI), and the
//! caller's `x-envoy-*` headers (removed unread, or honoured when the caller is trusted).

use crate::support::*;

/// Routes `/v2` to subset v2 and everything else to v1, so the endpoint a request reaches
/// says whether the VirtualService served it (a passthrough keeps the caller's authority).
fn split() -> String {
    vs("  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: api.mesh.test, subset: v2}}]
  - route: [{destination: {host: api.mesh.test, subset: v1}}]
")
}

fn req(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

#[tokio::test(start_paused = true)]
async fn userinfo_neither_misses_the_virtual_service_nor_goes_upstream() {
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, SUBSETS, &split()], &mock);
    let r = req("http://user:secret@api.mesh.test:8080/v2")
        .body(Full::default())
        .unwrap();
    send(&mut svc, r).await.unwrap();
    let seen = &mock.seen()[0];
    assert_eq!(
        seen.authority(),
        "10.0.0.2:8080",
        "routed by the VirtualService"
    );
    assert_eq!(seen.host(), "api.mesh.test:8080", "no credentials in Host");
}

#[tokio::test(start_paused = true)]
async fn a_passthrough_with_userinfo_sends_neither_host_nor_uri_credentials() {
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE], &mock);
    let r = req("http://user:secret@elsewhere.test:9000/x")
        .body(Full::default())
        .unwrap();
    send(&mut svc, r).await.unwrap();
    let seen = &mock.seen()[0];
    assert_eq!(seen.authority(), "elsewhere.test:9000");
    assert_eq!(seen.host(), "elsewhere.test:9000");
}

#[tokio::test(start_paused = true)]
async fn a_trailing_root_dot_is_the_same_host_and_the_host_is_sent_as_written() {
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, SUBSETS, &split()], &mock);
    let r = req("http://api.mesh.test.:8080/v2")
        .body(Full::default())
        .unwrap();
    send(&mut svc, r).await.unwrap();
    let seen = &mock.seen()[0];
    assert_eq!(
        seen.authority(),
        "10.0.0.2:8080",
        "routed by the VirtualService"
    );
    assert_eq!(seen.host(), "api.mesh.test.:8080");
}

#[tokio::test(start_paused = true)]
async fn the_host_header_routes_and_is_what_goes_upstream() {
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, SUBSETS, &split()], &mock);
    // The URI names an address; the Host header names the service, as when a caller
    // connects by IP: Envoy routes by Host.
    let r = req("http://192.0.2.7:8080/v2")
        .header("host", "api.mesh.test:8080")
        .body(Full::default())
        .unwrap();
    send(&mut svc, r).await.unwrap();
    // The URI names the service, the Host header another name: the Host header decides, so
    // this is a passthrough to the URI's authority with that Host.
    let r = req("http://api.mesh.test:8080/v2")
        .header("host", "other.test")
        .body(Full::default())
        .unwrap();
    send(&mut svc, r).await.unwrap();
    let seen = mock.seen();
    assert_eq!(seen[0].authority(), "10.0.0.2:8080");
    assert_eq!(seen[0].host(), "api.mesh.test:8080");
    assert_eq!(seen[1].authority(), "api.mesh.test:8080");
    assert_eq!(seen[1].host(), "other.test");
}

fn with_envoy_headers(uri: &str, timeout_ms: u32) -> Request<Full<Bytes>> {
    req(uri)
        .header("x-envoy-retry-on", "5xx")
        .header("x-envoy-max-retries", "4")
        .header("x-envoy-upstream-rq-timeout-ms", timeout_ms)
        .header("x-envoy-internal", "true")
        .header("x-envoy-attempt-count", "9")
        .header("x-envoy-force-trace", "true")
        .header("x-envoy-custom", "kept")
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_callers_envoy_control_headers_are_removed_unread() {
    let mock = Mock::always(503);
    let layer = MeshLayer::builder()
        .config(config(&[SE, SUBSETS, &split()]))
        .seed(7)
        .build()
        .unwrap();
    let res = layer
        .layer(mock.clone())
        .oneshot(with_envoy_headers("http://api.mesh.test:8080/", 100))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let seen = mock.seen();
    assert_eq!(
        seen.len(),
        1,
        "503 is not retried by Istio's default policy"
    );
    let names: Vec<&str> = seen[0].headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "x-envoy-custom",
            "host",
            "x-request-id",
            "x-envoy-attempt-count"
        ],
        "only non-control headers go upstream, and the mesh's own x-request-id and attempt count"
    );
    assert_eq!(
        seen[0].headers["x-envoy-attempt-count"], "1",
        "not the caller's 9"
    );
}

#[tokio::test(start_paused = true)]
async fn a_trusted_callers_envoy_headers_change_retries_and_timeouts() {
    let mock = Mock::always(503);
    let layer = MeshLayer::builder()
        .config(config(&[SE, SUBSETS, &split()]))
        .seed(7)
        .trust_envoy_headers(true)
        .build()
        .unwrap();
    let svc = layer.layer(mock.clone());
    let res = svc
        .clone()
        .oneshot(with_envoy_headers("http://api.mesh.test:8080/", 60_000))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let seen = mock.seen();
    assert_eq!(seen.len(), 5, "x-envoy-retry-on: 5xx with 4 retries");
    for s in &seen {
        assert!(s.headers.contains_key("x-envoy-retry-on"));
        assert!(
            !s.headers.contains_key("x-envoy-upstream-rq-timeout-ms"),
            "the timeout header is consumed"
        );
    }

    // The timeout header bounds the request.
    let slow = Mock::new(|_, _| Reply::Slow(Duration::from_secs(1), 200));
    let svc = layer.layer(slow.clone());
    let started = tokio::time::Instant::now();
    let err = svc
        .oneshot(with_envoy_headers("http://api.mesh.test:8080/", 100))
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT, "{err}");
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}
