//! Load: many requests in flight at once through one `Mesh`, and a long soak with counters that
//! must not drift. The backend here is a bare hyper server that only counts (the support
//! `Backend` keeps a record of every request, which would dominate memory in a soak), reached over
//! HTTP/2 with prior knowledge so that ten thousand requests share one socket.
//!
//! The always-on test keeps 1,000 requests in flight. The big ones are `#[ignore]`d and run
//! explicitly, one at a time so that the process's peak RSS is theirs:
//!
//! ```text
//! cargo test -p mesh-tests --release --test e2e load::ten_thousand -- --ignored --nocapture
//! cargo test -p mesh-tests --release --test e2e load::soak -- --ignored --nocapture
//! ```
//!
//! `MESH_SOAK_REQUESTS` (default 1,000,000) and `MESH_SOAK_SECS` (default 600) bound the soak.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use crate::support::leak::assert_no_leak;
use crate::support::mesh::{Client, MeshOptions};
use crate::support::requests::{drain, get, send};
use crate::support::yaml::{api_entry, api_rule, load, route_to, V1_V2_V3};

/// A hyper server that answers `200 ok` after `delay` (tokio time) and counts requests.
struct Counting {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Counting {
    /// Starts serving on `127.0.0.1:0`.
    async fn start(delay: Duration) -> Counting {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&served);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let count = Arc::clone(&count);
                let service = hyper::service::service_fn(move |_req| {
                    let count = Arc::clone(&count);
                    async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(50_000);
                conns.spawn(async move {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Counting { addr, served, task }
    }

    /// Requests answered so far.
    fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resident set size now and at its peak (`VmRSS`, `VmHWM` of `/proc/self/status`), in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The reliability tests' mesh for `backend` as subset `v1` of `api`, around a legacy client
/// that speaks HTTP/2 only (prior knowledge).
fn h2_mesh(backend: &Counting) -> (Client, mesh_tower::MeshHandle) {
    let cfg = load(&[
        &api_entry(&[(backend.addr.port(), "v1")]),
        &api_rule(V1_V2_V3, ""),
        &route_to("v1", ""),
    ]);
    let mut builder = mesh_tower::client::legacy_builder();
    builder.http2_only(true);
    let inner = builder.build(mesh_tower::client::http_connector());
    MeshOptions::reliability().build_around(cfg, inner)
}

/// Sends `n` requests at once through one mesh to a backend that holds each for `delay`; returns
/// the peak number of requests the mesh had active at one time (sampled).
async fn all_at_once(n: u64, delay: Duration) -> u64 {
    let backend = Counting::start(delay).await;
    let (svc, handle) = h2_mesh(&backend);
    let (rss_before, _) = rss_kib();
    let started = Instant::now();

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let handle = handle.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = 0u64;
            // Bounded: at most 60 s of sampling.
            for _ in 0..6_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let active: u64 = handle
                    .stats()
                    .clusters()
                    .iter()
                    .map(|c| u64::from(c.active_requests()))
                    .sum();
                peak = peak.max(active);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };

    let out = send(&svc, n as usize, n as usize, |i| get(&format!("/load/{i}"))).await;
    assert!(out.errors.is_empty(), "no mesh error: {:?}", out.errors);
    assert_eq!(
        out.statuses,
        BTreeMap::from([(StatusCode::OK.as_u16(), n as usize)])
    );
    assert_eq!(
        out.bodies,
        BTreeMap::from([(Bytes::from_static(b"ok"), n as usize)]),
        "whole bodies"
    );
    let ok = out.status(200) as u64;
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let elapsed = started.elapsed();
    let (rss_after, hwm) = rss_kib();

    assert_eq!(ok, n);
    assert_eq!(backend.served(), n, "the backend served each request once");
    let stats = assert_no_leak(&handle).await;
    assert_eq!(stats.totals().requests, n);
    assert_eq!(stats.totals().successes, n);
    let c = stats.cluster("api", Some("v1")).unwrap();
    assert_eq!((c.requests(), c.failures(), c.retries()), (n, 0, 0));
    println!(
        "{n} in flight (delay {delay:?}): peak active {peak}, {:.2} s, RSS {} -> {} MiB, peak RSS (VmHWM) {} MiB",
        elapsed.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024,
        hwm / 1024,
    );
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_in_flight() {
    let peak = all_at_once(1_000, Duration::from_millis(200)).await;
    // The sampler saw some overlap (a count, not a time: with a 200 ms hold it sees far more).
    assert!(peak > 1, "requests overlapped: peak {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: run explicitly (see the module docs) and read the printed peak RSS"]
async fn ten_thousand_in_flight() {
    all_at_once(10_000, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: a 1,000,000-request soak, run explicitly (see the module docs)"]
async fn soak() {
    let total: u64 = std::env::var("MESH_SOAK_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let secs: u64 = std::env::var("MESH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let backend = Counting::start(Duration::ZERO).await;
    let (svc, handle) = h2_mesh(&backend);
    let workers = 64u64;
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);

    // Warm up (connection, allocator) before the first RSS reading.
    for i in 0..1_000 {
        let res = svc
            .clone()
            .oneshot(get(&format!("/warm/{i}")))
            .await
            .unwrap();
        drain(res.into_body()).await.unwrap();
    }
    let warm = 1_000u64;
    let (rss_before, _) = rss_kib();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let svc = svc.clone();
        let next = Arc::clone(&next);
        set.spawn(async move {
            let mut sent = 0u64;
            let mut failed = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                sent += 1;
                match svc.clone().oneshot(get("/soak")).await {
                    Ok(res) if res.status() == StatusCode::OK => {
                        if drain(res.into_body()).await.is_err() {
                            failed += 1;
                        }
                    }
                    _ => failed += 1,
                }
            }
            (sent, failed)
        });
    }
    let (mut sent, mut failed) = (0u64, 0u64);
    while let Some(r) = set.join_next().await {
        let (s, f) = r.unwrap();
        sent += s;
        failed += f;
    }
    let elapsed = started.elapsed();
    let (rss_after, hwm) = rss_kib();
    println!(
        "soak: {sent} requests ({workers} at a time) in {:.1} s = {:.0} req/s, {failed} failed, RSS {} -> {} KiB, peak {} KiB",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        rss_before,
        rss_after,
        hwm,
    );
    assert_eq!(failed, 0);
    let stats = assert_no_leak(&handle).await;
    let c = stats.cluster("api", Some("v1")).unwrap();
    assert_eq!(backend.served(), sent + warm, "backend received == sent");
    assert_eq!(stats.totals().requests, sent + warm, "mesh total == sent");
    assert_eq!(stats.totals().successes, sent + warm);
    assert_eq!(
        (c.requests(), c.successes(), c.failures(), c.retries()),
        (sent + warm, sent + warm, 0, 0)
    );
}
