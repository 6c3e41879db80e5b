//! Outlier detection.

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn failing_endpoint_is_ejected_then_returns() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
";
    let route = vs("  - retries: {attempts: 0}
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::new(|s, _| {
        Reply::Status(if s.authority() == "10.0.0.1:8080" {
            500
        } else {
            200
        })
    });
    let (mut svc, handle) = mesh(&[SE, dr, &route], &mock);
    for _ in 0..4 {
        let _ = send(&mut svc, get("/")).await.unwrap();
    }
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.ejections(), 1);
    assert_eq!(c.ejected_endpoints(), 1);
    assert!(c
        .endpoints()
        .iter()
        .any(|(a, _, ejected)| a == "10.0.0.1:8080" && *ejected));

    // While ejected, every request goes to the healthy endpoint.
    let before = mock.count();
    for _ in 0..6 {
        assert_eq!(send(&mut svc, get("/")).await.unwrap().status(), 200);
    }
    assert!(mock.seen()[before..]
        .iter()
        .all(|s| s.authority() == "10.0.0.2:8080"));

    // After baseEjectionTime, the next sweep brings it back.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let _ = send(&mut svc, get("/")).await.unwrap();
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.ejected_endpoints(), 0);
    let before = mock.count();
    for _ in 0..2 {
        let _ = send(&mut svc, get("/")).await.unwrap();
    }
    assert!(mock.seen()[before..]
        .iter()
        .any(|s| s.authority() == "10.0.0.1:8080"));
}

/// After outlier detection ejects one of two endpoints, retries keep going to the one left
/// (previous-hosts avoidance falls back to the last pick, as Envoy does), and the default retry
/// budget, a limit on *concurrent* retries held through the backoff, lets every request retry
/// when requests arrive one after another but only `max(20% of active, 3)` of a burst. This is
/// why a closed-loop comparison of a fast and a slow client with the same budget shows more
/// retries per request for the slow one: the budget is spent per unit of time, not per request.
#[tokio::test(start_paused = true)]
async fn retries_continue_on_the_endpoint_left_after_an_ejection() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    retryBudget: {percent: 20, minRetryConcurrency: 3}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
";
    let route = vs("  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    // 10.0.0.1 always fails; 10.0.0.2 fails every first attempt and answers retries after
    // 10 ms (so that retries of a burst overlap).
    let mock = Mock::new(|s, _| {
        let first = s
            .headers
            .get("x-envoy-attempt-count")
            .is_some_and(|v| v == "1");
        if s.authority() == "10.0.0.1:8080" || first {
            Reply::Status(503)
        } else {
            Reply::Slow(Duration::from_millis(10), 200)
        }
    });
    let (mut svc, handle) = mesh(&[SE, dr, &route], &mock);

    // One request after another: the retry slot is always free.
    for i in 0..20 {
        let res = send(&mut svc, get(&format!("/seq/{i}"))).await.unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        drop(body_of(res).await);
    }
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.ejections(), 1, "10.0.0.1 is ejected");
    assert_eq!(c.ejected_endpoints(), 1);
    let seen = mock.seen();
    let last_on_ejected = seen
        .iter()
        .rposition(|s| s.authority() == "10.0.0.1:8080")
        .unwrap();
    let after: Vec<&Seen> = seen[last_on_ejected + 1..].iter().collect();
    assert!(after.iter().all(|s| s.authority() == "10.0.0.2:8080"));
    let retries_after = after
        .iter()
        .filter(|s| s.headers["x-envoy-attempt-count"] != "1")
        .count();
    assert!(
        retries_after >= 15,
        "the endpoint left gets the retries: {retries_after}"
    );
    assert_eq!(stats.totals().retries, (seen.len() - 20) as u64);
    assert_eq!(c.active_requests(), 0);

    // A burst of 16 at once: each first attempt fails at the same instant, and only
    // max(20% x active, 3) = 3 of them get a concurrent-retry slot of the rule's budget.
    let before = mock.count();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let mut svc = svc.clone();
        tasks.spawn(async move {
            let res = send(&mut svc, get(&format!("/burst/{i}"))).await.unwrap();
            let status = res.status().as_u16();
            drop(body_of(res).await);
            status
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(s) = tasks.join_next().await {
        *statuses.entry(s.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(statuses, BTreeMap::from([(200, 3), (503, 13)]));
    assert_eq!(mock.count() - before, 16 + 3);
    assert!(mock.seen()[before..]
        .iter()
        .all(|s| s.authority() == "10.0.0.2:8080"));
}
