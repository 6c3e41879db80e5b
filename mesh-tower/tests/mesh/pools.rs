//! Pools.

use crate::support::*;

const ONE_REQUEST: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
";

#[tokio::test(start_paused = true)]
async fn overflow_until_the_first_response_body_is_dropped() {
    let mock = Mock::always(200);
    let route = vs("  - retries: {attempts: 3, retryOn: 5xx,reset}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, handle) = mesh(&[SE, ONE_REQUEST, &route], &mock);
    let first = send(&mut svc, get("/1")).await.unwrap();
    let stats = handle.stats();
    assert_eq!(
        stats
            .cluster("api.mesh.test", None)
            .unwrap()
            .active_requests(),
        1
    );

    let err = send(&mut svc, get("/2")).await.unwrap_err();
    assert!(err.is_overflow());
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers()["x-envoy-overloaded"], "true");
    assert_eq!(mock.count(), 1, "overflow is never retried");

    drop(first);
    let third = send(&mut svc, get("/3")).await.unwrap();
    assert_eq!(third.status(), 200);
    let body = body_of(third).await;
    assert_eq!(body, "upstream body");
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.overflows(), 1);
    assert_eq!(
        c.active_requests(),
        0,
        "reading the body to its end released the permit"
    );
    assert_eq!(stats.totals().overflows, 1);
}

#[tokio::test(start_paused = true)]
async fn pending_request_waits_for_a_permit_then_proceeds() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
";
    let mock = Mock::always(200);
    let (svc, handle) = mesh(&[SE, dr], &mock);
    let first = svc.clone().oneshot(get("/1")).await.unwrap();
    let waiting = tokio::spawn(svc.clone().oneshot(get("/2")));
    tokio::task::yield_now().await;
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!((c.active_requests(), c.pending_requests()), (1, 1));
    // A third overflows the pending queue.
    assert!(svc
        .clone()
        .oneshot(get("/3"))
        .await
        .unwrap_err()
        .is_overflow());
    drop(first);
    let second = waiting.await.unwrap().unwrap();
    assert_eq!(second.status(), 200);
    drop(second);
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!((c.active_requests(), c.pending_requests()), (0, 0));
}
