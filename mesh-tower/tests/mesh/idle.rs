//! The stream idle timeout: when it is set, a request that hears nothing from the upstream
//! ends, as Envoy's `stream_idle_timeout` ends it; by default (as an Istio sidecar, which
//! turns it off) such a request waits for the caller.

use std::time::Duration;

use crate::support::*;

/// A client that never answers.
fn silent() -> impl tower::Service<
    Request<mesh_tower::body::ReplayBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(
        |_req: Request<mesh_tower::body::ReplayBody<Full<Bytes>>>| async {
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        },
    )
}

fn plain_route() -> String {
    vs("  - route: [{destination: {host: api.mesh.test}}]\n")
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_ends_after_the_stream_idle_timeout() {
    let layer = MeshLayer::builder()
        .config(config(&[SE, &plain_route()]))
        .stream_idle_timeout(Some(mesh_tower::ENVOY_STREAM_IDLE_TIMEOUT))
        .build()
        .unwrap();
    let svc = layer.layer(silent());
    let started = tokio::time::Instant::now();
    let err = svc.oneshot(get("/")).await.unwrap_err();
    assert_eq!(started.elapsed(), mesh_tower::ENVOY_STREAM_IDLE_TIMEOUT);
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(err.attempts(), 1, "not retried: {err}");
    let res: Response<Full<Bytes>> = err.to_response();
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "stream timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn by_default_a_silent_upstream_is_waited_for_as_under_istio() {
    let layer = MeshLayer::builder()
        .config(config(&[SE, &plain_route()]))
        .build()
        .unwrap();
    let svc = layer.layer(silent());
    let waited = tokio::time::timeout(Duration::from_secs(3600), svc.oneshot(get("/"))).await;
    assert!(waited.is_err(), "still waiting after an hour");
}

#[tokio::test(start_paused = true)]
async fn a_route_timeout_shorter_than_the_idle_timeout_wins() {
    let route = vs("  - timeout: 2s\n    route: [{destination: {host: api.mesh.test}}]\n");
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .stream_idle_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let svc = layer.layer(silent());
    let started = tokio::time::Instant::now();
    let err = svc.oneshot(get("/")).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT, "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_response_body_ends_after_the_idle_timeout() {
    let layer = MeshLayer::builder()
        .config(config(&[SE, &plain_route()]))
        .stream_idle_timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    // Chunks every 300 ms (the idle timer restarts with each), then silence.
    let client = tower::service_fn(
        |_req: Request<mesh_tower::body::ReplayBody<Full<Bytes>>>| async {
            let every = Duration::from_millis(300);
            let body = Trickle::new(every, 3).then_stall();
            Ok::<_, BoxError>(Response::new(body))
        },
    );
    let svc = layer.layer(client);
    let started = tokio::time::Instant::now();
    let mut body = svc.oneshot(get("/")).await.unwrap().into_body();
    let mut chunks = 0;
    let err = loop {
        match body.frame().await {
            Some(Ok(_)) => chunks += 1,
            Some(Err(e)) => break e,
            None => panic!("the body ended before the timeout"),
        }
    };
    assert_eq!(chunks, 3);
    assert_eq!(started.elapsed(), Duration::from_millis(900 + 1000));
    let err = err.downcast::<MeshError>().expect("a MeshError");
    assert!(
        err.is_timeout() && err.status() == StatusCode::REQUEST_TIMEOUT,
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn hung_mirror_copies_without_a_route_timeout_free_their_slots() {
    let layer = MeshLayer::builder()
        .config(config(&[SE, &mirror_route()]))
        .max_concurrent_mirrors(2)
        .stream_idle_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    hung_mirrors_free_their_slots_after(layer, Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn hung_mirror_copies_free_their_slots_with_no_timeout_set_at_all() {
    let layer = MeshLayer::builder()
        .config(config(&[SE, &mirror_route()]))
        .max_concurrent_mirrors(2)
        .build()
        .unwrap();
    hung_mirrors_free_their_slots_after(layer, mesh_tower::MIRROR_TIMEOUT_FALLBACK).await;
}

fn mirror_route() -> String {
    vs("  - mirror: {host: api.mesh.test}\n    route: [{destination: {host: api.mesh.test}}]\n")
}

/// Two mirror slots, taken by copies whose target never answers: a third copy is dropped;
/// once `free_after` has passed, the slots are free again.
async fn hung_mirrors_free_their_slots_after(layer: MeshLayer, free_after: Duration) {
    let handle = layer.handle();
    // The primary answers; mirror copies (Host ending in -shadow) never do.
    let client = tower::service_fn(
        |req: Request<mesh_tower::body::ReplayBody<Full<Bytes>>>| async move {
            let shadow = req
                .headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .is_some_and(|h| h.contains("-shadow"));
            if shadow {
                std::future::pending::<()>().await;
            }
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        },
    );
    let svc = layer.layer(client);
    for _ in 0..2 {
        svc.clone().oneshot(get("/")).await.unwrap();
    }
    svc.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(handle.stats().mirrors_dropped(), 1, "two slots, both held");
    tokio::time::sleep(free_after - Duration::from_secs(1)).await;
    svc.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(
        handle.stats().mirrors_dropped(),
        2,
        "still held just before"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    svc.clone().oneshot(get("/")).await.unwrap();
    let stats = handle.stats();
    assert_eq!(
        (stats.mirrors_sent(), stats.mirrors_dropped()),
        (3, 2),
        "the hung copies gave their slots back"
    );
}
