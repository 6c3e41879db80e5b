//! The mesh end to end: real hyper backends on `127.0.0.1:0`, a real hyper-util (or reqwest)
//! client wrapped in `MeshLayer`, the config as YAML. Assertions are about outcomes and what the
//! backends received, never about wall-clock durations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use mesh_tests::{Action, Rule, Select};
use mesh_tower::ClientContext;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::support::mesh::{Client, MeshOptions};
use crate::support::pods::Pods;
use crate::support::requests::{get, local_reply, send, Tally};
use crate::support::upstream::API;
use crate::support::yaml::{api_rule, split, virtual_service, V1_V2};

/// The DestinationRule of these tests: subsets `v1` and `v2`, no traffic policy.
fn dr() -> String {
    api_rule(V1_V2, "")
}

/// The traffic tests' mesh ([`MeshOptions::traffic`]) around the legacy client.
fn mesh(cfg: mesh_model::MeshConfig, seed: u64) -> (Client, mesh_tower::MeshHandle) {
    MeshOptions::traffic(seed).build(cfg)
}

/// 90/10 over 5,000 requests. Tolerance: the v1 count is binomial(5000, 0.9) with a standard
/// deviation of 0.42 percentage points; ±1.5 points is 3.5 standard deviations (and the rolls
/// are seeded, so the run is deterministic anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_90_10_over_5000_requests() {
    let pods = Pods::four(&[]).await;
    let (svc, handle) = mesh(pods.config(&[&split(90, 10, ""), &dr()]), 7);
    let out = send(&svc, 5_000, 32, |i| get(&format!("/split/{i}"))).await;
    assert!(
        out.errors.is_empty(),
        "{:?}",
        &out.errors[..out.errors.len().min(5)]
    );
    assert_eq!(out.statuses.get(&200), Some(&5_000));
    let v1 = out.backend_share("v1");
    assert!((v1 - 0.90).abs() <= 0.015, "v1 share {v1}");
    // Both pods of each subset take part (LEAST_REQUEST by default spreads the load).
    for b in &pods.all {
        assert!(b.count() > 0, "{} received nothing", b.name());
    }
    assert_eq!(
        pods.received("v1") + pods.received("v2"),
        5_000,
        "no request duplicated or lost"
    );
    let stats = handle.stats();
    let total: u64 = stats.clusters().iter().map(|c| c.requests()).sum();
    assert_eq!(total, 5_000);
    assert!(stats.clusters().iter().all(|c| c.active_requests() == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_routing_sends_jason_to_v2() {
    let pods = Pods::four(&[]).await;
    let vs = virtual_service(
        &API,
        "  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: api, subset: v2}
  - route:
    - destination: {host: api, subset: v1}
",
    );
    let (svc, _) = mesh(pods.config(&[&vs, &dr()]), 1);
    let jason = send(&svc, 200, 16, |_| {
        let mut r = get("/reviews");
        r.headers_mut().insert("end-user", "jason".parse().unwrap());
        r
    })
    .await;
    assert_eq!(jason.backend_share("v2"), 1.0, "{:?}", jason.by_backend);
    let others = send(&svc, 200, 16, |_| {
        let mut r = get("/reviews");
        r.headers_mut().insert("end-user", "bob".parse().unwrap());
        r
    })
    .await;
    assert_eq!(others.backend_share("v1"), 1.0, "{:?}", others.by_backend);
}

/// Both v2 pods fail half their requests (seeded, independent). All traffic goes to v2.
/// Without retries the client sees about 50% errors; with `attempts: 3` on `5xx` a request fails
/// only when all four attempts fail: 0.5^4 = 6.25% (binomial sd at n=2000: 0.54 points).
/// Two requests at a time: the retry budget that is on by default (retries in flight at most
/// 20% of active requests, minimum 3) then never refuses a retry; see the next test for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_mask_a_half_failing_v2() {
    let pods = Pods::four(&[]).await;
    for (name, seed) in [("v2-a", 11), ("v2-b", 12)] {
        pods.get(name).set_rules([Rule::new(
            Select::Seeded {
                seed,
                per_million: 500_000,
            },
            Action::Status(503),
        )]);
    }
    let n = 2_000;

    let no_retry = split(0, 100, "    retries: {attempts: 0}\n");
    let (svc, _) = mesh(pods.config(&[&no_retry, &dr()]), 3);
    let out = send(&svc, n, 16, |i| get(&format!("/r/{i}"))).await;
    let failed = out.status(503) as f64 / n as f64;
    assert!(
        (0.44..=0.56).contains(&failed),
        "without retries the client sees ~50% errors, saw {failed}"
    );
    assert_eq!(pods.received("v2"), n as u64, "attempts: 0 never retries");

    pods.reset_counts();
    let with_retry = split(0, 100, "    retries: {attempts: 3, retryOn: 5xx}\n");
    let (svc, handle) = mesh(pods.config(&[&with_retry, &dr()]), 4);
    let out = send(&svc, n, 2, |i| get(&format!("/r/{i}"))).await;
    let failed = out.status(503) as f64 / n as f64;
    assert!(
        (0.03..=0.095).contains(&failed),
        "with 3 retries the client sees ~6.25% errors, saw {failed}"
    );
    let received = pods.received("v2");
    let retries: u64 = handle.stats().clusters().iter().map(|c| c.retries()).sum();
    assert_eq!(
        received,
        n as u64 + retries,
        "every retry reached a backend exactly once"
    );
    assert!(
        received <= 4 * n as u64,
        "never more than 1 + attempts tries per request"
    );
}

/// The default retry budget stops a retry storm: with 32 requests at a time against a v2 that
/// fails half of everything, retries in flight are capped at max(20% of active, 3), so the
/// backends see far fewer than the 1.94 attempts per request that unbudgeted retries would send,
/// and the client sees more errors than with a budget of 100%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_in_retry_budget_caps_a_retry_storm() {
    let pods = Pods::four(&[]).await;
    for (name, seed) in [("v2-a", 31), ("v2-b", 32)] {
        pods.get(name).set_rules([Rule::new(
            Select::Seeded {
                seed,
                per_million: 500_000,
            },
            Action::Status(503),
        )]);
    }
    let n = 2_000;
    let with_retry = split(0, 100, "    retries: {attempts: 3, retryOn: 5xx}\n");
    let budget = Some(mesh_resilience::RetryBudget::default());
    let (svc, _) = MeshOptions::traffic(4)
        .retry_budget(budget)
        .build(pods.config(&[&with_retry, &dr()]));
    let budgeted = send(&svc, n, 32, |i| get(&format!("/b/{i}"))).await;
    let budgeted_attempts = pods.received("v2");
    pods.reset_counts();
    let open_dr = api_rule(
        V1_V2,
        "    retryBudget: {percent: 100, minRetryConcurrency: 1000}\n",
    );
    let (svc, _) = mesh(pods.config(&[&with_retry, &open_dr]), 4);
    let open = send(&svc, n, 32, |i| get(&format!("/b/{i}"))).await;
    let open_attempts = pods.received("v2");
    assert!(
        budgeted_attempts < open_attempts,
        "the budget refused retries: {budgeted_attempts} vs {open_attempts} attempts"
    );
    let failed = |o: &Tally| o.status(503);
    assert!(
        failed(&budgeted) > failed(&open),
        "{} vs {} client errors",
        failed(&budgeted),
        failed(&open)
    );
    assert!(
        (open_attempts as f64 / n as f64) > 1.7,
        "an open budget retries nearly every failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_is_retried_only_when_retry_on_says_so() {
    let pods = Pods::four(&[]).await;
    pods.get("v1-a")
        .set_rules([Rule::new(Select::All, Action::Hang)]);
    pods.get("v1-b")
        .set_rules([Rule::new(Select::All, Action::Hang)]);
    // Default retryOn does not retry a per-try timeout: one attempt, then 504.
    let vs = split(100, 0, "    retries: {attempts: 3, perTryTimeout: 100ms}\n");
    let (svc, _) = mesh(pods.config(&[&vs, &dr()]), 5);
    let err = svc
        .clone()
        .oneshot(get("/slow"))
        .await
        .expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(pods.received("v1"), 1);
    let (status, _, body) = local_reply(&err).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "upstream request timeout");

    // With `reset` in retryOn the per-try timeout is retried: 1 + 3 attempts.
    pods.reset_counts();
    let vs = split(
        100,
        0,
        "    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: reset}\n",
    );
    let (svc, _) = mesh(pods.config(&[&vs, &dr()]), 5);
    let err = svc.oneshot(get("/slow")).await.expect_err("times out");
    assert!(err.is_timeout());
    assert_eq!(pods.received("v1"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_spans_all_attempts() {
    let pods = Pods::four(&[]).await;
    for b in &pods.all {
        b.set_rules([Rule::new(Select::All, Action::Hang)]);
    }
    // 10 attempts of 100 ms each cannot fit in a 250 ms route timeout.
    let vs = split(
        100,
        0,
        "    timeout: 250ms\n    retries: {attempts: 10, perTryTimeout: 100ms, retryOn: reset}\n",
    );
    let (svc, _) = mesh(pods.config(&[&vs, &dr()]), 5);
    let err = svc.oneshot(get("/slow")).await.expect_err("times out");
    assert!(err.is_timeout());
    let tries = pods.received("v1");
    assert!(
        (1..=3).contains(&tries),
        "the route timeout cut the retries short: {tries} attempts"
    );
}

/// One v1 pod fails everything; consecutive 5xx eject it (maxEjectionPercent 50 allows one of
/// two), and once healthy it returns after the ejection time. This test waits ~2.5 s of real
/// time for the ejection to expire: the one real wait in the suite, bounded, with no timing
/// assertion on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_and_brings_back() {
    let pods = Pods::four(&[]).await;
    pods.get("v1-a")
        .set_rules([Rule::new(Select::All, Action::Status(503))]);
    let dr = api_rule(
        V1_V2,
        "    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 50}
",
    );
    let vs = split(100, 0, "    retries: {attempts: 2, retryOn: 5xx}\n");
    let (svc, handle) = mesh(pods.config(&[&vs, &dr]), 9);
    let out = send(&svc, 200, 1, |i| get(&format!("/o/{i}"))).await;
    assert_eq!(
        out.statuses.get(&200),
        Some(&200),
        "retries to the healthy pod hide the failures"
    );
    let failing = pods.get("v1-a").count();
    assert!(
        failing <= 4,
        "ejected after 3 consecutive 5xx; it received {failing}"
    );
    let stats = handle.stats();
    let v1 = stats
        .cluster("api.default.svc.cluster.local", Some("v1"))
        .expect("v1 cluster");
    assert_eq!(v1.ejections(), 1);

    pods.get("v1-a").clear_rules();
    pods.get("v1-a").reset_counts();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let out = send(&svc, 100, 1, |i| get(&format!("/back/{i}"))).await;
    assert_eq!(out.statuses.get(&200), Some(&100));
    assert!(
        pods.get("v1-a").count() >= 30,
        "the pod is back in rotation: {}",
        pods.get("v1-a").count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_overflow_is_a_503_with_x_envoy_overloaded() {
    let pods = Pods::four(&[]).await;
    for b in &pods.all {
        b.set_rules([Rule::new(
            Select::All,
            Action::DelayThenStatus(Duration::from_millis(300), 200),
        )]);
    }
    let dr = api_rule(
        V1_V2,
        "    connectionPool: {http: {http2MaxRequests: 1, http1MaxPendingRequests: 1}}\n",
    );
    let (svc, handle) = mesh(pods.config(&[&split(100, 0, ""), &dr]), 2);
    let out = send(&svc, 6, 6, |i| get(&format!("/p/{i}"))).await;
    for e in &out.errors {
        assert!(e.is_overflow(), "{e}");
        let (status, headers, _) = local_reply(e).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers["x-envoy-overloaded"], "true");
    }
    let overflows = out.errors.len();
    assert!(
        overflows >= 3,
        "one active, one pending, the rest overflow: {overflows}"
    );
    assert_eq!(
        pods.received("v1") as usize,
        6 - overflows,
        "overflowed requests never reach a backend"
    );
    let v1 = handle.stats();
    let v1 = v1
        .cluster("api.default.svc.cluster.local", Some("v1"))
        .unwrap();
    assert_eq!(v1.overflows() as usize, overflows);
    assert_eq!(v1.active_requests(), 0);
    assert_eq!(v1.pending_requests(), 0);
}

/// 50% aborts over 2,000 requests: sd 1.1 points, tolerance ±5 points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_at_its_percentage() {
    let pods = Pods::four(&[]).await;
    let vs = split(
        100,
        0,
        "    fault: {abort: {httpStatus: 418, percentage: {value: 50}}}\n",
    );
    let (svc, _) = mesh(pods.config(&[&vs, &dr()]), 21);
    let n = 2_000;
    let out = send(&svc, n, 16, |i| get(&format!("/f/{i}"))).await;
    let aborted = out.status(418);
    assert!(
        (aborted as f64 / n as f64 - 0.5).abs() <= 0.05,
        "aborted {aborted}"
    );
    assert_eq!(
        pods.received("v1") as usize,
        n - aborted,
        "an aborted request never reaches a backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_copies_reach_the_mirror_with_shadow_host() {
    let pods = Pods::four(&[]).await;
    let vs = split(100, 0, "    mirror: {host: api, subset: v2}\n");
    let (svc, _) = mesh(pods.config(&[&vs, &dr()]), 4);
    let out = send(&svc, 50, 4, |i| get(&format!("/m/{i}"))).await;
    assert_eq!(out.statuses.get(&200), Some(&50));
    // Mirrors are fire-and-forget: wait (bounded) for the copies to land.
    for _ in 0..100 {
        if pods.received("v2") >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pods.received("v2"), 50);
    let hosts: Vec<String> = pods
        .of_version("v2")
        .flat_map(|b| b.received())
        .filter_map(|r| r.host().map(str::to_owned))
        .collect();
    assert!(hosts.iter().all(|h| h == "api-shadow:8080"), "{hosts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_direct_response_rewrite_and_headers() {
    let pods = Pods::four(&[]).await;
    let vs = virtual_service(
        &API,
        "  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: new.example.com}
  - match: [{uri: {exact: /health}}]
    directResponse: {status: 200, body: {string: ok}}
    headers: {response: {set: {content-type: text/plain}}}
  - match: [{uri: {prefix: /v1/}}]
    rewrite: {uri: /v2/}
    headers:
      request: {set: {x-mesh: 'yes'}, remove: [x-drop]}
      response: {add: {x-served-by: mesh}}
    route:
    - destination: {host: api, subset: v1}
",
    );
    let (svc, _) = mesh(pods.config(&[&vs, &dr()]), 1);

    let res = svc.clone().oneshot(get("/old")).await.unwrap();
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    // Envoy's host_redirect swaps the host portion only; the request's port stays.
    assert_eq!(res.headers()["location"], "http://new.example.com:8080/new");

    let res = svc.clone().oneshot(get("/health")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    assert_eq!(
        pods.received("v1") + pods.received("v2"),
        0,
        "answered locally"
    );

    let mut req = get("/v1/items?q=1");
    req.headers_mut()
        .insert("x-drop", "secret".parse().unwrap());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-served-by"], "mesh");
    let seen = pods
        .all
        .iter()
        .flat_map(|b| b.received())
        .next()
        .expect("one request reached v1");
    assert_eq!(seen.path, "/v2/items?q=1");
    assert_eq!(
        seen.host(),
        Some("api:8080"),
        "Host keeps the request's authority"
    );
    assert_eq!(
        seen.headers.get("x-mesh").map(|v| v.to_str().unwrap()),
        Some("yes")
    );
    assert!(seen.headers.get("x-drop").is_none());
}

/// Reloading 90/10 -> 0/100 under continuous load: no request fails because of the reload, and
/// after it every request goes to v2. The load loop is bounded in count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_shifts_weights_under_load_without_failures() {
    let pods = Pods::four(&[]).await;
    let (svc, handle) = mesh(pods.config(&[&split(90, 10, ""), &dr()]), 13);
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = JoinSet::new();
    for w in 0..8 {
        let svc = svc.clone();
        let stop = stop.clone();
        load.spawn(async move {
            let mut failures = Vec::new();
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < 5_000 {
                match svc.clone().oneshot(get(&format!("/l/{w}/{sent}"))).await {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.into_body().collect().await;
                    }
                    Ok(res) => failures.push(res.status().to_string()),
                    Err(e) => failures.push(e.to_string()),
                }
                sent += 1;
            }
            (sent, failures)
        });
    }
    // Let traffic flow, reload (an invalid config first, which must not take effect), go on.
    while pods.received("v1") < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = std::env::temp_dir().join(format!("mesh-e2e-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("api.yaml");
    let pods_file = dir.join("pods.yaml");
    std::fs::write(&pods_file, pods.service_entry()).unwrap();
    // An invalid config (a negative weight, which istiod refuses) is refused and the old one
    // keeps serving.
    std::fs::write(
        &file,
        format!(
            "{}---\n{}",
            split(0, 100, "").replace("weight: 100", "weight: -5"),
            dr()
        ),
    )
    .unwrap();
    let err = handle
        .reload_files(&[&file, &pods_file])
        .expect_err("a negative weight is refused");
    assert!(err.to_string().contains("-5"), "{err}");
    let v1_before = pods.received("v1");
    while pods.received("v1") < v1_before + 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    std::fs::write(&file, format!("{}---\n{}", split(0, 100, ""), dr())).unwrap();
    handle
        .reload_files(&[&file, &pods_file])
        .expect("valid reload");
    let v1_at_reload = pods.received("v1");
    while pods.received("v2") < 1_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    while let Some(r) = load.join_next().await {
        let (n, failures) = r.unwrap();
        assert!(
            failures.is_empty(),
            "failures during reload: {:?}",
            &failures[..failures.len().min(5)]
        );
        sent += n;
    }
    // Requests already routed before the swap may still land on v1 (at most the 8 in flight).
    assert!(
        pods.received("v1") <= v1_at_reload + 8,
        "after the reload v1 gets no new traffic"
    );
    assert_eq!(
        pods.received("v1") + pods.received("v2"),
        sent as u64,
        "nothing lost or duplicated"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same stack over reqwest through the adapter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_client_through_the_mesh() {
    let pods = Pods::four(&[]).await;
    let (svc, _) = MeshOptions::new()
        .client(ClientContext::new("default"))
        .seed(1)
        .build_around(
            pods.config(&[&split(0, 100, ""), &dr()]),
            mesh_tower::client::ReqwestService::with_mesh_defaults().unwrap(),
        );
    for i in 0..20 {
        let res = svc.clone().oneshot(get(&format!("/rq/{i}"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["x-backend"]
            .to_str()
            .unwrap()
            .starts_with("v2"));
    }
    assert_eq!(pods.received("v2"), 20);
}
