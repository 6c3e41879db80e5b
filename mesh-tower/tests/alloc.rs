//! Heap allocations per request: the same request, sent bare to an in-process client and
//! through the mesh (the seed's canary: a 90/10 split with retries and timeouts, pool
//! limits, outlier detection, four endpoints), counted by a global allocator. The difference
//! is what the mesh itself allocates.
//!
//! This test runs without the libtest harness (`harness = false`): the allocator counts every
//! thread, and the harness's own threads would add noise.

use std::alloc::System;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use mesh_tower::body::ReplayBody;
use mesh_tower::{BoxError, MeshLayer};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{service_fn, Layer, ServiceExt};

#[path = "../benches/support/poll.rs"]
mod poll;
#[path = "../benches/support/seed_canary.rs"]
mod seed_canary;

use poll::{drain, run};

/// Counts every allocation of the process (single-threaded here: no test harness).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations_during(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

/// The mesh's own allocations per request, beyond the inner client's and the body's: the
/// attempt's copy of the request headers (the header map's index table and its entries; the
/// mesh keeps the caller's headers for retries and mirror copies, and Istio retries by
/// default). The request's future is not boxed; the route decision allocates nothing.
const MESH_ALLOCATIONS_PER_REQUEST: usize = 2;

/// The requests over which one buffer of generated `x-request-id` values is allocated: the
/// ids Envoy's request-id extension adds to requests that have none
/// (`MeshBuilder::generate_request_id`, on by default) are cut from a per-thread buffer of 64,
/// which costs two allocations (the buffer and its shared count).
const IDS_PER_BUFFER: usize = 64;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let bare = service_fn(|_req: Request<ReplayBody<Full<Bytes>>>| async {
        Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let build = |generate_request_id| {
        MeshLayer::builder()
            .config(seed_canary::config())
            .seed(1)
            .generate_request_id(generate_request_id)
            .build()
            .expect("builds")
            .layer(bare)
    };
    // No metrics recorder and no access log: telemetry must cost no allocation.
    let without_id = build(false);
    let with_id = build(true);
    let request = || {
        Request::get("http://api:8080/items/1")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let send_bare = || {
        let (parts, body) = request().into_parts();
        let body = ReplayBody::try_new(body, 1024).unwrap();
        let res = run(bare.oneshot(Request::from_parts(parts, body))).unwrap();
        drain(res.into_body());
    };
    let send_mesh = |mesh: &mesh_tower::Mesh<_>| {
        let res = run(mesh.clone().oneshot(request())).unwrap();
        assert_eq!(res.status(), 200);
        drain(res.into_body());
    };
    // Warm up: first uses size the balancers and promote shared bytes.
    for _ in 0..100 {
        send_bare();
        send_mesh(&without_id);
        send_mesh(&with_id);
    }
    // A multiple of the id buffer's size: whatever the phase, N requests fill N / 64 buffers.
    const N: usize = 64 * 100;
    let bare_n = allocations_during(|| (0..N).for_each(|_| send_bare()));
    assert_eq!(bare_n % N, 0, "bare: {bare_n} allocations for {N} requests");
    let bare_per = bare_n / N;
    for (mesh, ids, what) in [
        (&without_id, 0, "without request-id generation"),
        (
            &with_id,
            2 * N / IDS_PER_BUFFER,
            "generating x-request-id (the default)",
        ),
    ] {
        let mesh_n = allocations_during(|| (0..N).for_each(|_| send_mesh(mesh)));
        let own = mesh_n - bare_per * N;
        println!(
            "allocations per request: bare {bare_per}, the mesh's own {what} {}",
            own as f64 / N as f64
        );
        assert_eq!(
            own,
            MESH_ALLOCATIONS_PER_REQUEST * N + ids,
            "the mesh {what} allocated {own} times for {N} requests"
        );
    }
    println!("test mesh_allocations_per_request ... ok");
}
