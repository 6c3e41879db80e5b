//! Per-request cost of the whole mesh stack (routing, retry state, pool permit,
//! endpoint pick, outlier record, rewrite, response body wrapper) over a bare
//! in-process client that answers at once, on the seed's canary configuration
//! (90/10 split with retries and timeouts, pool limits and outlier detection)
//! plus a ServiceEntry with four endpoints.
//!
//! Run with: `cargo bench -p mesh-tower --bench mesh -- --warm-up-time 1 --measurement-time 3`
//!
//! The figure of interest is `mesh` minus `bare`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use mesh_tower::body::ReplayBody;
use mesh_tower::{BoxError, ClientContext, MeshLayer};
use tower::{service_fn, Layer, ServiceExt};

#[path = "support/poll.rs"]
mod poll;
#[path = "support/seed_canary.rs"]
mod seed_canary;

use poll::{drain, run};

fn request() -> Request<Full<Bytes>> {
    Request::get("http://api:8080/items/1")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let bare = service_fn(|_req: Request<ReplayBody<Full<Bytes>>>| async {
        Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let config = seed_canary::config();
    let layer = MeshLayer::builder()
        .config(config)
        .client(ClientContext::new("default"))
        .seed(1)
        .build()
        .expect("builds");
    let mesh = layer.layer(bare);

    let mut g = c.benchmark_group("request");
    g.bench_function("bare", |b| {
        b.iter(|| {
            let body = ReplayBody::try_new(Full::new(Bytes::new()), 1024).unwrap();
            let (parts, _) = request().into_parts();
            let res = run(bare.oneshot(Request::from_parts(parts, body))).unwrap();
            drain(black_box(res).into_body());
        });
    });
    g.bench_function("mesh", |b| {
        b.iter(|| {
            let res = run(mesh.clone().oneshot(request())).unwrap();
            drain(black_box(res).into_body());
        });
    });
    g.finish();
    let stats = layer.handle().stats();
    assert!(stats.clusters().iter().all(|c| c.active_requests() == 0));
}

criterion_group!(benches, bench);
criterion_main!(benches);
