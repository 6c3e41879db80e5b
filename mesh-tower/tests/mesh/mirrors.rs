//! Mirrors.

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn mirror_copy_goes_to_the_mirror_cluster_with_a_shadow_host() {
    let mirror_se = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec:
  hosts: [mirror.mesh.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.9.9.9}
";
    let route = vs("  - mirror: {host: mirror.mesh.test}
    mirrorPercentage: {value: 100}
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::new(|s, _| {
        Reply::Status(if s.authority() == "10.9.9.9:8080" {
            500
        } else {
            200
        })
    });
    let (mut svc, handle) = mesh(&[SE, mirror_se, &route], &mock);
    let req = Request::post("http://api.mesh.test:8080/m")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "the mirror's 500 never reaches the caller"
    );
    // Let the spawned copy run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    let copy = seen
        .iter()
        .find(|s| s.authority() == "10.9.9.9:8080")
        .expect("mirror copy");
    assert_eq!(copy.host(), "api.mesh.test-shadow:8080");
    assert_eq!(copy.body, "payload");
    assert_eq!(copy.path(), "/m");
    let primary = seen
        .iter()
        .find(|s| s.authority() != "10.9.9.9:8080")
        .unwrap();
    assert_eq!(primary.host(), "api.mesh.test:8080");
    assert_eq!(handle.stats().mirrors_sent(), 1);
}

#[tokio::test(start_paused = true)]
async fn mirrors_beyond_the_limit_are_dropped_and_never_delay_the_primary() {
    let route = vs("  - mirror: {host: api.mesh.test}
    route: [{destination: {host: api.mesh.test}}]
");
    // Mirror copies hang; the primary answers at once.
    let mock = Mock::new(|s, _| {
        if s.host().ends_with("-shadow:8080") {
            Reply::Slow(Duration::from_secs(3600), 200)
        } else {
            Reply::Status(200)
        }
    });
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .max_concurrent_mirrors(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(mock.clone());
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        assert_eq!(send(&mut svc, get("/")).await.unwrap().status(), 200);
        assert_eq!(started.elapsed(), Duration::ZERO);
        tokio::task::yield_now().await;
    }
    let stats = handle.stats();
    assert_eq!((stats.mirrors_sent(), stats.mirrors_dropped()), (1, 2));
}
