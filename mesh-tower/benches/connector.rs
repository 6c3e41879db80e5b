//! The mesh-owned connector (`MeshClient`) against the hyper-util legacy client it replaces,
//! on the plaintext path: the same mesh (the seed canary's policy), the same loopback backend
//! (HTTP/1.1, keep-alive), the same request, one after another on one runtime.
//!
//! Run with: `cargo bench -p mesh-tower --bench connector -- --warm-up-time 1 --measurement-time 5`
//!
//! The figure of interest is `mesh_client / legacy_client` (the goal: at most 1.05).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::{BodyExt, Empty};
use mesh_tower::body::ReplayBody;
use mesh_tower::client::MeshClient;
use mesh_tower::{ClientContext, MeshLayer};
use tower::{Layer, ServiceExt};

fn config(port: u16) -> mesh_model::MeshConfig {
    let yaml = format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.bench.test]
  http:
  - route: [{{destination: {{host: api.bench.test, subset: v1}}}}]
    retries: {{attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure,refused-stream"}}
    timeout: 5s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.bench.test
  trafficPolicy:
    connectionPool:
      tcp: {{maxConnections: 100}}
      http: {{http1MaxPendingRequests: 10, http2MaxRequests: 1000}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.bench.test]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{version: v1}}}}]
"#
    );
    mesh_model::load_str("bench.yaml", &yaml)
        .into_result()
        .expect("valid")
}

fn request() -> Request<Empty<Bytes>> {
    Request::get("http://api.bench.test:8080/items/1")
        .body(Empty::new())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(async {
        mesh_tests::Backend::builder()
            .name("v1")
            .label("version", "v1")
            .start()
            .await
            .expect("backend")
    });
    let port = backend.addr().port();
    let _enter = rt.enter();

    let legacy_layer = MeshLayer::builder()
        .config(config(port))
        .client(ClientContext::new("default"))
        .seed(1)
        .build()
        .expect("builds");
    let legacy =
        legacy_layer.layer(mesh_tower::client::legacy_client::<ReplayBody<Empty<Bytes>>>());

    let own_layer = MeshLayer::builder()
        .config(config(port))
        .client(ClientContext::new("default"))
        .seed(1)
        .build()
        .expect("builds");
    let connector = MeshClient::builder().build_for::<ReplayBody<Empty<Bytes>>>(&own_layer);
    let own = own_layer.layer(connector);

    let mut g = c.benchmark_group("connector");
    g.bench_function("legacy_client", |b| {
        b.iter(|| {
            rt.block_on(async {
                let res = legacy.clone().oneshot(request()).await.expect("answer");
                assert!(res.status().is_success());
                res.into_body().collect().await.expect("body");
            })
        });
    });
    g.bench_function("mesh_client", |b| {
        b.iter(|| {
            rt.block_on(async {
                let res = own.clone().oneshot(request()).await.expect("answer");
                assert!(res.status().is_success());
                res.into_body().collect().await.expect("body");
            })
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
