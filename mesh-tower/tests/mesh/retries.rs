//! Retries.

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn retries_gateway_error_then_succeeds() {
    let mock = Mock::new(|_, n| Reply::Status(if n < 3 { 503 } else { 200 }));
    let route = vs("  - retries: {attempts: 3, retryOn: gateway-error}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, handle) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/x")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-envoy-attempt-count"), Some("3"));
    assert_eq!(body_of(res).await, "upstream body");
    let seen = mock.seen();
    assert_eq!(seen.len(), 3);
    let counts: Vec<_> = seen
        .iter()
        .map(|s| {
            s.headers["x-envoy-attempt-count"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(counts, ["1", "2", "3"]);
    // A retry prefers the endpoint not yet tried.
    assert_ne!(seen[0].authority(), seen[1].authority());
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(
        (c.requests(), c.retries(), c.failures(), c.successes()),
        (3, 2, 2, 1)
    );
    assert_eq!(c.active_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn non_retriable_status_is_returned_at_once() {
    let mock = Mock::always(500);
    let route = vs("  - retries: {attempts: 3, retryOn: gateway-error}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(mock.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_never_exceed_one_plus_retries_and_last_response_is_returned() {
    for attempts in [0u32, 1, 2, 4] {
        let mock = Mock::new(|_, _| Reply::WithHeaders(503, vec![("x-last", "yes")]));
        let retries = if attempts == 0 {
            "{attempts: 0}".to_owned()
        } else {
            format!("{{attempts: {attempts}, retryOn: 5xx}}")
        };
        let route = vs(&format!(
            "  - retries: {retries}
    route: [{{destination: {{host: api.mesh.test}}}}]
"
        ));
        let (mut svc, _) = mesh(&[SE, &route], &mock);
        let res = send(&mut svc, get("/")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&res, "x-last"), Some("yes"));
        assert_eq!(
            body_of(res).await,
            "upstream body",
            "the upstream's own response"
        );
        assert_eq!(mock.count(), 1 + attempts as usize);
    }
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_is_retried_only_when_retry_on_says_so() {
    // `5xx` covers per-try timeouts: 1 + 2 attempts, then the timeout error.
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs(
        "  - retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, handle) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(mock.count(), 3);
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        handle
            .stats()
            .cluster("api.mesh.test", None)
            .unwrap()
            .timeouts(),
        3
    );

    // `connect-failure` does not: one attempt.
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs(
        "  - retries: {attempts: 2, perTryTimeout: 100ms, retryOn: connect-failure}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let started = tokio::time::Instant::now();
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(mock.count(), 1);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn route_timeout_spans_every_attempt_and_backoff() {
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs("  - timeout: 250ms
    retries: {attempts: 5, perTryTimeout: 100ms, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let started = tokio::time::Instant::now();
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_timeout());
    assert!(
        started.elapsed() <= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!((2..=3).contains(&mock.count()), "{}", mock.count());
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.into_body().collect().await.unwrap().to_bytes(),
        "upstream request timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn passthrough_uses_istio_default_retries() {
    // No VirtualService covers the host: the request goes out unchanged, and
    // Istio's default policy retries a connect failure.
    let mock = Mock::new(|_, n| {
        if n == 1 {
            Reply::Refused
        } else {
            Reply::Status(200)
        }
    });
    let (mut svc, _) = mesh(&[SE], &mock);
    let req = Request::get("http://elsewhere.test:9000/a?b=c")
        .body(Full::default())
        .unwrap();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].uri.to_string(), "http://elsewhere.test:9000/a?b=c");

    // ... but not a 503 (not among the default conditions).
    let mock = Mock::always(503);
    let (mut svc, _) = mesh(&[SE], &mock);
    let req = Request::get("http://elsewhere.test/")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&mut svc, req).await.unwrap().status(), 503);
    assert_eq!(mock.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn connect_failures_exhausted_give_the_upstream_error() {
    let mock = Mock::new(|_, _| Reply::Refused);
    let route = vs("  - retries: {attempts: 2, retryOn: connect-failure}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_upstream() && err.is_connect(), "{err:?}");
    assert_eq!(mock.count(), 3);
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = reply.into_body().collect().await.unwrap().to_bytes();
    assert!(text.ends_with(b"retried and the latest reset reason: remote connection failure"));
}

#[tokio::test(start_paused = true)]
async fn a_body_larger_than_the_replay_cap_is_never_retried() {
    let mock = Mock::always(503);
    let route = vs("  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .replay_cap(8)
        .build()
        .unwrap();
    let mut svc = layer.layer(mock.clone());
    let req = Request::post("http://api.mesh.test:8080/")
        .body(Full::new(Bytes::from_static(
            b"a body of more than eight bytes",
        )))
        .unwrap();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(mock.count(), 1);
    assert_eq!(mock.seen()[0].body, "a body of more than eight bytes");

    // A small body is replayed whole on every attempt.
    let req = Request::post("http://api.mesh.test:8080/")
        .body(Full::new(Bytes::from_static(b"tiny")))
        .unwrap();
    send(&mut svc, req).await.unwrap();
    let seen = mock.seen();
    assert_eq!(seen.len(), 1 + 4);
    assert!(seen[1..]
        .iter()
        .all(|s| s.body == "tiny" && s.method == "POST"));
}
