//! Exactly what the policy says, and no more: the backends count what they receive. A failure the
//! policy does not retry is sent once; a retried request carries a byte-identical body each time;
//! a body over the replay cap is never sent twice; mirror copies never change the primary's
//! outcome.

use std::time::Duration;

use http::StatusCode;
use mesh_tests::{body_hash, Action, Backend, Rule, Select};
use mesh_tower::ClientContext;
use tower::ServiceExt;

use crate::support::leak::assert_no_leak;
use crate::support::mesh::{mesh, MeshOptions};
use crate::support::requests::{drain, full, get, pattern, streamed};
use crate::support::yaml::{api_entry, api_rule, config_for, load, route_to, V1_V2_V3};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_connect_failure_only_is_sent_once() {
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::Status(503)))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    retries: {attempts: 3, retryOn: connect-failure}\n",
    ));
    for i in 0..20 {
        let res = svc
            .clone()
            .oneshot(get(&format!("/once/{i}")))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["x-envoy-attempt-count"], "1");
        let _ = drain(res.into_body()).await;
    }
    assert_eq!(b.count(), 20, "one attempt per request");
    let stats = assert_no_leak(&handle).await;
    assert_eq!(stats.cluster("api", Some("v1")).unwrap().retries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_with_gateway_error_is_sent_once() {
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::Status(500)))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    retries: {attempts: 3, retryOn: gateway-error}\n",
    ));
    for i in 0..20 {
        let res = svc.clone().oneshot(get(&format!("/gw/{i}"))).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let _ = drain(res.into_body()).await;
    }
    assert_eq!(b.count(), 20, "gateway-error is 502/503/504 only");
    // A 502 is retried: 1 + 3 attempts.
    b.set_rules([Rule::new(Select::All, Action::Status(502))]);
    b.reset_counts();
    let res = svc.clone().oneshot(get("/gw/502")).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let _ = drain(res.into_body()).await;
    assert_eq!(b.count(), 4);
    assert_no_leak(&handle).await;
}

/// A 10 KiB body streamed in 1 KiB chunks (no length known up front), first attempt answered
/// 503 or reset: the retry carries exactly the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_streamed_body_is_byte_identical() {
    let data = pattern(10 * 1024);
    let hash = body_hash(&data);
    for first in [Action::Status(503), Action::Reset] {
        let b = Backend::builder()
            .rule(Rule::new(Select::FirstN(1), first))
            .start()
            .await
            .unwrap();
        let (svc, handle) = mesh(config_for(
            b.addr().port(),
            "    retries: {attempts: 2, retryOn: '5xx,reset'}\n",
        ));
        let res = svc
            .clone()
            .oneshot(streamed("/upload", &data, 1024))
            .await
            .unwrap_or_else(|e| panic!("{first:?}: {e}"));
        assert_eq!(res.status(), StatusCode::OK, "{first:?}");
        assert_eq!(res.headers()["x-echo-body-hash"], format!("{hash:016x}"));
        assert_eq!(res.headers()["x-echo-body-len"], "10240");
        let _ = drain(res.into_body()).await;
        assert_eq!(b.count(), 2, "{first:?}: one failure, one retry");
        assert_eq!(
            b.count_body(hash),
            2,
            "{first:?}: both attempts got every byte"
        );
        for r in b.received() {
            assert_eq!(r.body_len, data.len());
        }
        assert_no_leak(&handle).await;
    }
}

/// The same with many requests at once, each with its own body: no body is mixed with another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retried_bodies_never_mix() {
    let b = Backend::builder()
        .rule(Rule::new(Select::EveryNth(2), Action::Status(503)))
        .start()
        .await
        .unwrap();
    // An open retry budget: the default one (20% of active requests) would refuse some of the
    // retries 64 concurrent half-failing requests need, and this test is about bodies.
    let (svc, handle) = mesh(load(&[
        &api_entry(&[(b.addr().port(), "v1")]),
        &api_rule(
            V1_V2_V3,
            "    retryBudget: {percent: 100, minRetryConcurrency: 1000}\n",
        ),
        &route_to("v1", "    retries: {attempts: 4, retryOn: 5xx}\n"),
    ]));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let svc = svc.clone();
        set.spawn(async move {
            let mut data = pattern(4096 + i as usize);
            data[0] = i as u8;
            let res = svc
                .oneshot(streamed(&format!("/mix/{i}"), &data, 333))
                .await;
            let res = res.expect("routed");
            let status = res.status();
            let echoed = res.headers()["x-echo-body-hash"]
                .to_str()
                .unwrap()
                .to_owned();
            let _ = drain(res.into_body()).await;
            (status, echoed, body_hash(&data))
        });
    }
    let mut sent = Vec::new();
    while let Some(r) = set.join_next().await {
        let (status, echoed, hash) = r.unwrap();
        // Half the attempts fail, so a request may exhaust its retries (1 in 32): its last 503
        // still echoes the body it carried.
        assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(echoed, format!("{hash:016x}"));
        sent.push(hash);
    }
    // Every attempt the backend saw carries one of the bodies sent, whole.
    let received = b.received();
    assert!(received
        .iter()
        .all(|r| r.body_complete && sent.contains(&r.body_hash)));
    let stats = assert_no_leak(&handle).await;
    let c = stats.cluster("api", Some("v1")).unwrap();
    assert_eq!(received.len() as u64, c.requests());
    assert_eq!(c.requests(), 64 + c.retries());
    assert!(
        c.retries() >= 20,
        "about half the attempts were retried: {c:?}"
    );
}

/// `replay_cap(1024)` and a 4 KiB body: sent once and never again, whether its size is known up
/// front (`Full`: not replayable from the start, the 503 stands) or discovered while streaming
/// (the retry that was decided fails with `is_body_too_large_to_retry`, 507).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_replay_cap_is_never_retried() {
    let data = pattern(4096);
    let hash = body_hash(&data);
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::Status(503)))
        .start()
        .await
        .unwrap();
    let (svc, handle) = MeshOptions::reliability()
        .replay_cap(1024)
        .build(config_for(
            b.addr().port(),
            "    retries: {attempts: 3, retryOn: 5xx}\n",
        ));

    let res = svc
        .clone()
        .oneshot(full("POST", "/known", data.clone()))
        .await
        .expect("the 503 is returned as it is");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let _ = drain(res.into_body()).await;
    assert_eq!(b.count(), 1);
    assert_eq!(b.count_body(hash), 1);

    let err = svc
        .clone()
        .oneshot(streamed("/streamed", &data, 512))
        .await
        .expect_err("a retry was decided but the body cannot be replayed");
    assert!(err.is_body_too_large_to_retry(), "{err}");
    assert_eq!(err.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(b.count(), 2, "the streamed body was sent once");
    assert_eq!(b.count_body(hash), 2, "each time whole");

    // A body under the cap is retried as the policy says (1 + 3 attempts).
    let small = pattern(1000);
    let res = svc
        .clone()
        .oneshot(streamed("/small", &small, 100))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let _ = drain(res.into_body()).await;
    assert_eq!(b.count_body(body_hash(&small)), 4);
    assert_no_leak(&handle).await;
}

/// A mirror target that hangs or resets: the primary's outcome is unchanged and its cluster
/// records no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_never_change_the_primary() {
    for mirror_action in [Action::Hang, Action::Reset, Action::Status(500)] {
        let primary = Backend::start_version("primary", "v1").await.unwrap();
        let shadow = Backend::builder()
            .name("shadow")
            .label("version", "v2")
            .rule(Rule::new(Select::All, mirror_action))
            .start()
            .await
            .unwrap();
        let cfg = load(&[
            &api_entry(&[(primary.addr().port(), "v1"), (shadow.addr().port(), "v2")]),
            &api_rule(V1_V2_V3, ""),
            &route_to(
                "v1",
                "    timeout: 2s\n    mirror: {host: api, subset: v2}\n    retries: {attempts: 2, retryOn: '5xx,reset'}\n",
            ),
        ]);
        let (svc, handle) = mesh(cfg);
        let data = pattern(2048);
        for i in 0..100 {
            let req = if i % 2 == 0 {
                get(&format!("/m/{i}"))
            } else {
                streamed(&format!("/m/{i}"), &data, 256)
            };
            let res = svc
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| panic!("{mirror_action:?}: {e}"));
            assert_eq!(res.status(), StatusCode::OK, "{mirror_action:?}");
            assert_eq!(res.headers()["x-backend"], "primary");
            let _ = drain(res.into_body()).await;
        }
        assert_eq!(
            primary.count(),
            100,
            "{mirror_action:?}: the primary saw each request once"
        );
        assert_eq!(primary.count_body(body_hash(&data)), 50);
        let stats = handle.stats();
        let p = stats.cluster("api", Some("v1")).unwrap();
        assert_eq!(
            (
                p.requests(),
                p.successes(),
                p.failures(),
                p.retries(),
                p.timeouts()
            ),
            (100, 100, 0, 0, 0),
            "{mirror_action:?}"
        );
        assert_eq!(p.active_requests(), 0);
        assert_eq!(stats.totals().failures, 0, "{mirror_action:?}");
        assert_eq!(
            stats.mirrors_sent() + stats.mirrors_dropped(),
            100,
            "{mirror_action:?}: every request was mirrored or counted as dropped"
        );
        // Mirror copies are sent once each: never retried.
        for _ in 0..200 {
            if shadow.count() >= stats.mirrors_sent() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(shadow.count(), stats.mirrors_sent(), "{mirror_action:?}");
    }
}

/// Istio applies the route's timeout to shadow requests too: a copy to a hanging target gives
/// its mirror slot back when the route timeout fires, so later requests are still mirrored.
/// (Found by this test while copies had no deadline and a hanging target pinned every slot.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_mirror_copies_end_with_the_route_timeout() {
    let primary = Backend::start_version("primary", "v1").await.unwrap();
    let shadow = Backend::builder()
        .name("shadow")
        .label("version", "v2")
        .rule(Rule::new(Select::All, Action::Hang))
        .start()
        .await
        .unwrap();
    let cfg = load(&[
        &api_entry(&[(primary.addr().port(), "v1"), (shadow.addr().port(), "v2")]),
        &api_rule(V1_V2_V3, ""),
        &route_to(
            "v1",
            "    timeout: 200ms\n    mirror: {host: api, subset: v2}\n",
        ),
    ]);
    let (svc, handle) = MeshOptions::new()
        .client(ClientContext::new("default"))
        .seed(3)
        .max_concurrent_mirrors(4)
        .build(cfg);
    for i in 0..4 {
        let res = svc.clone().oneshot(get(&format!("/a/{i}"))).await.unwrap();
        let _ = drain(res.into_body()).await;
    }
    // Five times the route timeout: a copy bound by it has ended by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..4 {
        let res = svc.clone().oneshot(get(&format!("/b/{i}"))).await.unwrap();
        let _ = drain(res.into_body()).await;
    }
    assert_eq!(handle.stats().mirrors_dropped(), 0);
    assert_eq!(handle.stats().mirrors_sent(), 8);
}
