//! The cost of one endpoint update: a host's endpoint list republished (10 endpoints, two
//! subsets) in a mesh whose configuration names 10,000 clusters (5,000 services, two subsets
//! each). Only the clusters of that host select their endpoints again; no route is
//! recompiled, so the cost follows the host's endpoints, not the size of the table.
//!
//! Run with: `cargo bench -p mesh-tower --bench endpoints -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use mesh_routing::endpoints::Endpoint;
use mesh_tower::MeshLayer;

const SERVICES: usize = 5_000;

fn config() -> mesh_model::MeshConfig {
    let mut yaml = String::new();
    for i in 0..SERVICES {
        let _ = write!(
            yaml,
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{i}}}
spec:
  hosts: [svc-{i}.default.svc.cluster.local]
  http:
  - route:
    - {{destination: {{host: svc-{i}.default.svc.cluster.local, subset: v1, port: {{number: 8080}}}}, weight: 90}}
    - {{destination: {{host: svc-{i}.default.svc.cluster.local, subset: v2, port: {{number: 8080}}}}, weight: 10}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{i}}}
spec:
  host: svc-{i}.default.svc.cluster.local
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
"
        );
    }
    let loaded = mesh_model::load_str("endpoints.yaml", &yaml);
    assert!(!loaded.has_errors(), "config errors");
    loaded.into_config()
}

/// 10 endpoints, half of each version; `shift` moves the addresses so that consecutive
/// publications differ.
fn endpoints(shift: u8) -> Vec<Endpoint> {
    (0..10u8)
        .map(|i| {
            Endpoint::new(&format!("10.0.{shift}.{i}"))
                .with_label("version", if i % 2 == 0 { "v1" } else { "v2" })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let layer = MeshLayer::builder()
        .config(config())
        .seed(1)
        .build()
        .expect("builds");
    let handle = layer.handle();
    assert!(handle.stats().clusters().len() >= 2 * SERVICES);
    let source = handle.endpoint_source();
    let sets = [endpoints(1), endpoints(2)];
    let mut k = 0usize;
    c.bench_function(
        "endpoints/update one host of 5,000 (10,000 clusters)",
        |b| {
            b.iter(|| {
                k += 1;
                source.publish(
                    "svc-2500.default.svc.cluster.local",
                    black_box(sets[k % 2].clone()),
                );
            });
        },
    );
    let stats = handle.stats();
    let v1 = stats
        .cluster("svc-2500.default.svc.cluster.local", Some("v1"))
        .expect("cluster");
    assert_eq!(v1.endpoints().len(), 5, "the subset selected its endpoints");
}

criterion_group!(benches, bench);
criterion_main!(benches);
