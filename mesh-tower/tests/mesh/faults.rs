//! Faults.

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn fault_abort_never_reaches_the_client() {
    let mock = Mock::always(200);
    let route = vs(
        "  - fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    retries: {attempts: 3, retryOn: retriable-4xx}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, handle) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert!(res.body().is_local());
    assert_eq!(body_of(res).await, "fault filter abort");
    assert_eq!(mock.count(), 0);
    // Never counted by the cluster.
    let stats = handle.stats();
    let api = stats
        .cluster("api.mesh.test", None)
        .expect("a known cluster");
    assert_eq!(
        (api.requests(), api.failures(), api.active_requests()),
        (0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_fault_abort_is_http_200_with_grpc_status() {
    let mock = Mock::always(200);
    let route = vs(
        "  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "grpc-status"), Some("14"));
    assert_eq!(header(&res, "grpc-message"), Some("fault filter abort"));
    assert_eq!(mock.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn fault_delay_waits_then_forwards_and_the_route_timeout_starts_after_it() {
    let mock = Mock::always(200);
    let route = vs(
        "  - fault: {delay: {fixedDelay: 5s, percentage: {value: 100}}}
    timeout: 1s
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let started = tokio::time::Instant::now();
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(mock.count(), 1);
}
