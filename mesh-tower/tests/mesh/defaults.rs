//! The builder's defaults are Istio's (the "Defaults" table of the crate docs): what a mesh
//! built with nothing but a configuration does to a request and its response.

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_mesh_with_no_options_behaves_as_an_istio_sidecar() {
    let mock = Mock::always(503);
    let layer = MeshLayer::builder()
        .config(config(&[SE]))
        .seed(7)
        .build()
        .expect("builds");
    let mut svc = layer.layer(mock.clone());
    let res = send(&mut svc, get("/")).await.unwrap();
    // Istio's default retry policy does not retry a 503 (since 1.24): one attempt, and the
    // 503 comes back as the upstream sent it.
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let seen = mock.seen();
    assert_eq!(seen.len(), 1, "a 503 is not retried by default");
    // include_request_attempt_count on every virtual host: the upstream sees the count ...
    assert_eq!(seen[0].headers["x-envoy-attempt-count"], "1");
    // ... and not the response (include_attempt_count_in_response is not set).
    assert!(res.headers().get("x-envoy-attempt-count").is_none());
    // generate_request_id: a version-4 UUID.
    let id = seen[0].headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "4", "a version-4 UUID: {id}");
}

#[tokio::test(start_paused = true)]
async fn without_a_route_timeout_a_slow_upstream_is_waited_for() {
    // The route timeout is disabled and the stream idle timeout is off (istiod writes 0s for
    // sidecars): an upstream that takes an hour still answers.
    let mock = Mock::new(|_, _| Reply::Slow(std::time::Duration::from_secs(3600), 200));
    let (mut svc, _) = mesh(&[SE], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
