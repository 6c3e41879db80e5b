//! Hostile backends: each test points the mesh (around a real hyper-util client) at a server that
//! misbehaves in one way and checks that the client gets the outcome its policy defines (error
//! kind or status, never a duration), that the backend saw exactly the attempts the policy allows,
//! and that nothing leaked: every cluster ends with zero active and zero pending requests.
//!
//! Deadlines are route timeouts and per-try timeouts from the VirtualService; a test that would
//! hang without them is still bounded by its own guard (`tokio::time::timeout`), which is a
//! safety net, not an assertion.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use mesh_tests::{Action, Backend, Rule, Select};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt;

use crate::support::leak::assert_no_leak;
use crate::support::mesh::{mesh, Client};
use crate::support::raw::{read_head, RawServer};
use crate::support::requests::{drain, get, send_within};
use crate::support::yaml::config_for;

/// Safety net for one call: far longer than any deadline the configs set.
const GUARD: Duration = Duration::from_secs(20);

/// A GET of `path` through `svc`, within the [`GUARD`].
async fn call(
    svc: &Client,
    path: &str,
) -> Result<http::Response<mesh_tower::MeshBody<hyper::body::Incoming>>, mesh_tower::MeshError> {
    tokio::time::timeout(GUARD, svc.clone().oneshot(get(path)))
        .await
        .expect("the mesh answered within the guard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_backend_hits_the_route_timeout() {
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::Hang))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(b.addr().port(), "    timeout: 300ms\n"));
    let err = call(&svc, "/hang").await.expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    // Istio's default retry policy does not retry a route timeout.
    assert_eq!(b.count(), 1);
    let stats = assert_no_leak(&handle).await;
    assert_eq!(stats.totals().timeouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_backend_with_per_try_timeout_is_retried_when_reset_is_retriable() {
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::Hang))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    timeout: 5s\n    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: reset}\n",
    ));
    let err = call(&svc, "/hang").await.expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    // Wait for the server side to notice: the third attempt is counted on arrival.
    for _ in 0..200 {
        if b.count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.count(), 3, "one try and two retries, no more");
    let stats = assert_no_leak(&handle).await;
    let c = stats.cluster("api", Some("v1")).unwrap();
    assert_eq!((c.requests(), c.retries()), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_before_headers_is_an_upstream_error_and_retried_only_on_reset() {
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::Reset))
        .start()
        .await
        .unwrap();
    // `retriable-4xx` retries 409 responses only; a reset (unlike with `5xx` or
    // `gateway-error`, which Envoy also applies to resets) is not retried: one attempt.
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    retries: {attempts: 3, retryOn: retriable-4xx}\n",
    ));
    let err = call(&svc, "/reset").await.expect_err("reset");
    assert!(err.is_upstream(), "{err}");
    assert!(!err.is_timeout());
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b.count(), 1, "a reset is not retried without `reset`");
    assert_no_leak(&handle).await;

    b.reset_counts();
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    retries: {attempts: 2, retryOn: reset}\n",
    ));
    let err = call(&svc, "/reset").await.expect_err("reset");
    assert!(err.is_upstream(), "{err}");
    assert_eq!(b.count(), 3, "retryOn: reset retries twice, no more");
    assert_no_leak(&handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_before_headers_is_an_upstream_error() {
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::CloseBeforeHeaders))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(b.addr().port(), "    retries: {attempts: 0}\n"));
    let err = call(&svc, "/close").await.expect_err("closed");
    assert!(err.is_upstream(), "{err}");
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b.count(), 1);
    assert_no_leak(&handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_503_returns_the_last_503_after_exactly_the_allowed_retries() {
    let b = Backend::builder()
        .rule(Rule::new(Select::All, Action::Status(503)))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    retries: {attempts: 2, retryOn: 5xx}\n",
    ));
    let res = call(&svc, "/503").await.expect("a 503 is a response");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["x-envoy-attempt-count"], "3");
    let _ = drain(res.into_body()).await;
    assert_eq!(b.count(), 3);
    let stats = assert_no_leak(&handle).await;
    let c = stats.cluster("api", Some("v1")).unwrap();
    assert_eq!((c.requests(), c.failures(), c.retries()), (3, 3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_a_connect_error_retried_by_default() {
    // A port that was bound, then released: connecting is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (svc, handle) = mesh(config_for(port, ""));
    let err = call(&svc, "/refused").await.expect_err("refused");
    assert!(err.is_connect(), "{err}");
    assert!(err.is_upstream());
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    let stats = assert_no_leak(&handle).await;
    let c = stats.cluster("api", Some("v1")).unwrap();
    // Istio's default policy: 2 retries on connect-failure.
    assert_eq!((c.requests(), c.retries()), (3, 2));
}

/// Response head, then part of the body, then RST. The response was already handed to the
/// client (a 200), so nothing is retried; reading the body fails; the permit is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_body_fails_the_body_not_the_process() {
    let server = RawServer::start(|mut s: TcpStream| async move {
        if read_head(&mut s).await.is_none() {
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            .await;
        let _ = s.write_all(&[b'x'; 1000]).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = s.set_zero_linger();
        drop(s);
    })
    .await;
    let (svc, handle) = mesh(config_for(
        server.port(),
        "    timeout: 5s\n    retries: {attempts: 2, retryOn: 'reset,5xx'}\n",
    ));
    for i in 0..5 {
        let res = call(&svc, &format!("/mid/{i}"))
            .await
            .expect("headers came");
        assert_eq!(res.status(), StatusCode::OK);
        let body = tokio::time::timeout(GUARD, drain(res.into_body()))
            .await
            .expect("the body ends");
        assert!(body.is_err(), "a cut body is an error, not a short success");
    }
    assert_eq!(server.accepted(), 5, "no retry once headers were received");
    let stats = assert_no_leak(&handle).await;
    assert_eq!(stats.cluster("api", Some("v1")).unwrap().requests(), 5);
}

/// A server that answers with something that is not HTTP: a protocol error (502), never retried
/// unless the policy says so, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_a_protocol_error() {
    let replies: [&[u8]; 4] = [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line without colon\r\n\r\n",
    ];
    for reply in replies {
        let server = RawServer::start(move |mut s: TcpStream| async move {
            if read_head(&mut s).await.is_some() {
                let _ = s.write_all(reply).await;
                let _ = s.flush().await;
                // Keep the socket open a moment so the client reads the garbage, not a FIN.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        let (svc, handle) = mesh(config_for(
            server.port(),
            "    timeout: 5s\n    retries: {attempts: 0}\n",
        ));
        let err = call(&svc, "/garbage").await.expect_err("not HTTP");
        let shown = String::from_utf8_lossy(reply);
        assert!(err.is_upstream(), "{shown:?}: {err}");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY, "{shown:?}: {err:?}");
        assert_eq!(server.accepted(), 1, "{shown:?}");
        assert_no_leak(&handle).await;
    }
}

/// Slowloris upstream: the response head arrives one byte every 5 ms and never ends. The route
/// timeout ends the call; the per-try timeout retries when the policy says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_response_head_hits_the_timeouts() {
    let heads = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&heads);
    let server = RawServer::start(move |mut s: TcpStream| {
        let seen = Arc::clone(&seen);
        async move {
            if read_head(&mut s).await.is_none() {
                return;
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let line = b"HTTP/1.1 200 OK\r\n";
            // Bounded: at most ~20 s of trickle; stops when the client goes away.
            for i in 0..4_000usize {
                let byte = if i < line.len() {
                    line[i]
                } else {
                    b"x-slow: 1\r\n"[(i - line.len()) % 11]
                };
                if s.write_all(&[byte]).await.is_err() || s.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
    .await;

    let (svc, handle) = mesh(config_for(
        server.port(),
        "    timeout: 300ms\n    retries: {attempts: 0}\n",
    ));
    let err = call(&svc, "/slow").await.expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_no_leak(&handle).await;

    heads.store(0, Ordering::SeqCst);
    let (svc, handle) = mesh(config_for(
        server.port(),
        "    timeout: 10s\n    retries: {attempts: 2, perTryTimeout: 100ms, retryOn: reset}\n",
    ));
    let err = call(&svc, "/slow").await.expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    let stats = assert_no_leak(&handle).await;
    let c = stats.cluster("api", Some("v1")).unwrap();
    assert_eq!((c.requests(), c.retries(), c.timeouts()), (3, 2, 3));
    for _ in 0..200 {
        if heads.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(heads.load(Ordering::SeqCst), 3);
}

/// Istio: the route timeout lasts "until the upstream response is completely received (body
/// included)". Here the head arrives at once and the body trickles one byte per 10 ms for ~10 s;
/// the 300 ms route timeout ends the body with an error. (Found by this test while the timeout
/// stopped at the response head; mesh-tower now enforces it on the body.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_response_body_is_cut_by_the_route_timeout() {
    let server = RawServer::start(|mut s: TcpStream| async move {
        if read_head(&mut s).await.is_none() {
            return;
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            .await;
        for _ in 0..1000 {
            if s.write_all(b"x").await.is_err() || s.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let (svc, handle) = mesh(config_for(server.port(), "    timeout: 300ms\n"));
    let res = call(&svc, "/slow-body")
        .await
        .expect("head arrives at once");
    assert_eq!(res.status(), StatusCode::OK);
    // 3 s is ten times the route timeout; a compliant mesh ends the body at ~300 ms.
    let body = tokio::time::timeout(Duration::from_secs(3), drain(res.into_body())).await;
    let body = body.expect("the route timeout ended the body");
    assert!(body.is_err(), "the body was cut with an error");
    assert_no_leak(&handle).await;
}

/// Many requests at once against a backend that resets, closes, hangs, fails or answers at
/// random (seeded): every call ends with a response or a classified error, the counts add up,
/// and nothing leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_backend_every_call_ends_and_nothing_leaks() {
    let b = Backend::builder()
        .rule(Rule::new(
            Select::Seeded {
                seed: 1,
                per_million: 100_000,
            },
            Action::Reset,
        ))
        .rule(Rule::new(
            Select::Seeded {
                seed: 2,
                per_million: 100_000,
            },
            Action::CloseBeforeHeaders,
        ))
        .rule(Rule::new(
            Select::Seeded {
                seed: 3,
                per_million: 50_000,
            },
            Action::Hang,
        ))
        .rule(Rule::new(
            Select::Seeded {
                seed: 4,
                per_million: 150_000,
            },
            Action::Status(503),
        ))
        .rule(Rule::new(
            Select::Seeded {
                seed: 5,
                per_million: 100_000,
            },
            Action::Delay(Duration::from_millis(30)),
        ))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    timeout: 5s\n    retries: {attempts: 2, perTryTimeout: 1s, retryOn: 'reset,5xx,connect-failure'}\n",
    ));
    let n = 400;
    // 16 at a time: enough to overlap, few enough that a busy CI machine does not turn slow
    // connection set-up into per-try timeouts.
    let out = send_within(&svc, n, 16, Some(GUARD), |i| get(&format!("/chaos/{i}"))).await;
    assert_eq!(out.unanswered, 0, "a call outlived every deadline");
    assert_eq!(out.cut_bodies, 0, "a completed response has a whole body");
    let mut ok = 0;
    let mut failed_status = 0;
    for (&status, &count) in &out.statuses {
        if StatusCode::from_u16(status).unwrap().is_success() {
            ok += count;
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            failed_status += count;
        }
    }
    for e in &out.errors {
        assert!(e.is_timeout() || e.is_upstream(), "{e}");
    }
    let errors = out.errors.len();
    assert_eq!(ok + failed_status + errors, n);
    let stats = assert_no_leak(&handle).await;
    let c = stats.cluster("api", Some("v1")).unwrap();
    println!("chaos: {ok} ok, {failed_status} 503, {errors} errors; {c:?}");
    assert!(ok > n / 2, "retries mask most failures: {ok} ok of {n}");
    assert_eq!(stats.totals().requests, n as u64);
    assert_eq!(
        c.requests(),
        n as u64 + c.retries(),
        "every attempt counted once"
    );
    assert!(c.requests() <= 3 * n as u64);
    // Every attempt the mesh made reached the backend (hung ones included).
    for _ in 0..200 {
        if b.count() >= c.requests() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.count(), c.requests());
}

/// The largest durations and counts the model accepts (a 292-year route and per-try timeout,
/// `attempts` at the i32 limit, the longest backoff) do not overflow deadline arithmetic: the
/// request is retried as the policy says and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_durations_and_counts_do_not_overflow() {
    let b = Backend::builder()
        .rule(Rule::new(Select::FirstN(2), Action::Status(503)))
        .start()
        .await
        .unwrap();
    let (svc, handle) = mesh(config_for(
        b.addr().port(),
        "    timeout: 2562047h\n    retries: {attempts: 2147483647, perTryTimeout: 2562047h, retryOn: 5xx}\n",
    ));
    let res = call(&svc, "/years").await.expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-envoy-attempt-count"], "3");
    let _ = drain(res.into_body()).await;
    assert_eq!(b.count(), 3);
    assert_no_leak(&handle).await;
}
