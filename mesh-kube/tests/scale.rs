//! Scale: a stand-in cluster of 10,000 Services × 10 pods (100 namespaces), 1,000
//! VirtualServices and 1,000 DestinationRules; the mesh reads it all (and, second, one
//! namespace only) through the real `kube::Client`.
//!
//! Measured: time from `start` to `wait_until_ready`; heap bytes the mesh retains after the
//! sync (every allocation of the process is counted, the stand-in's objects are in the
//! baseline; what the stand-in allocates while serving is freed once sent); the latency of one
//! endpoint update end to end (stand-in → watch → publication). The CPU cost of one update
//! without the HTTP hop is `endpoint_update_cost` in `src/state.rs`.
//!
//! ```text
//! cargo test --release -p mesh-kube --test scale -- --ignored --nocapture
//! ```
//!
//! `MESH_KUBE_SCALE_SERVICES` changes the number of Services (default 10,000).

use std::alloc::System;
use std::time::{Duration, Instant};

use mesh_kube::testing::{self, FakeApiServer, SliceEndpoint};
use mesh_kube::{Discovery, Scope};
use mesh_tower::{ClientContext, MeshLayer};
use serde_json::Value;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PODS: usize = 10;
const NAMESPACES: usize = 100;

/// Heap bytes live now (stats_alloc already folds reallocations into the allocated and
/// deallocated totals; `bytes_reallocated` is only their net sum).
fn live_bytes() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

fn mib(b: i64) -> f64 {
    b as f64 / 1048576.0
}

/// Drops a mesh and its discovery; the heap bytes that frees.
async fn dropped(layer: MeshLayer, discovery: Discovery) -> i64 {
    let before = live_bytes();
    drop(discovery);
    drop(layer);
    // The task ends on its next poll; its streams and connections close after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    before - live_bytes()
}

fn slice(ns: &str, svc: &str, n: usize, ready_last: bool) -> Value {
    let eps: Vec<SliceEndpoint> = (0..PODS)
        .map(|p| {
            let e = SliceEndpoint::ready(
                &format!("10.{}.{}.{}", n / 250, n % 250, p + 1),
                &format!("{svc}-{p}"),
            )
            .at("zone-a", &format!("node-{}", p % 50));
            if p == PODS - 1 && !ready_last {
                e.not_ready()
            } else {
                e
            }
        })
        .collect();
    testing::endpoint_slice(
        ns,
        &format!("{svc}-abcde"),
        svc,
        "IPv4",
        &[("http", 8080)],
        &eps,
    )
}

fn cluster(services: usize) -> Vec<Value> {
    let per_ns = services.div_ceil(NAMESPACES);
    let mut out = Vec::with_capacity(services * (PODS + 2) + 2_000);
    for n in 0..services {
        let ns = format!("ns-{}", n / per_ns);
        let svc = format!("svc-{n}");
        out.push(testing::service(&ns, &svc, &[("http", 8080)]));
        for p in 0..PODS {
            let version = if p == PODS - 1 { "v2" } else { "v1" };
            out.push(testing::pod(
                &ns,
                &format!("{svc}-{p}"),
                &[
                    ("app", &svc),
                    ("version", version),
                    ("pod-template-hash", "7d4b9c"),
                ],
            ));
        }
        out.push(slice(&ns, &svc, n, true));
        if n % 10 == 0 && std::env::var_os("MESH_KUBE_SCALE_NO_CONFIG").is_none() {
            let yaml = format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {svc}, namespace: {ns}}}\nspec:\n  host: {svc}\n  trafficPolicy: {{outlierDetection: {{consecutive5xxErrors: 5}}}}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {svc}, namespace: {ns}}}\nspec:\n  hosts: [{svc}]\n  http:\n  - retries: {{attempts: 2, retryOn: 5xx}}\n    route:\n    - {{destination: {{host: {svc}, subset: v1}}, weight: 90}}\n    - {{destination: {{host: {svc}, subset: v2}}, weight: 10}}\n"
            );
            out.extend(testing::yaml(&yaml));
        }
    }
    out
}

struct Run {
    ready: Duration,
    bytes: i64,
    status: mesh_kube::Status,
}

async fn read(api: &FakeApiServer, scope: Scope) -> (Run, MeshLayer, Discovery) {
    let before = live_bytes();
    let start = Instant::now();
    let layer = MeshLayer::builder()
        .config(mesh_model::MeshConfig::default())
        .client(ClientContext::new("ns-0"))
        .build()
        .unwrap();
    let discovery = Discovery::builder(api.client().await.unwrap(), layer.handle())
        .scope(scope)
        .start()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(600), discovery.wait_until_ready())
        .await
        .expect("ready within 10 minutes");
    let ready = start.elapsed();
    // Let the watches open and transient buffers go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run = Run {
        ready,
        bytes: live_bytes() - before,
        status: discovery.status(),
    };
    (run, layer, discovery)
}

#[test]
#[ignore = "scale benchmark (minutes, GiBs): cargo test --release -p mesh-kube --test scale -- --ignored --nocapture"]
fn ten_thousand_services() {
    let services: usize = std::env::var("MESH_KUBE_SCALE_SERVICES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api = FakeApiServer::start().await.unwrap();
        api.set_bookmark_interval(None);
        api.set_keep_log(false);
        let objects = cluster(services);
        let n_objects = objects.len();
        api.apply_all(objects);
        api.set_keep_log(true);

        // One namespace first (a fresh process: nothing from an earlier run is still being
        // freed while it is measured), then the whole cluster.
        let (one, layer, discovery) =
            read(&api, Scope::Namespaces(vec!["ns-0".to_owned()])).await;
        let one_freed = dropped(layer, discovery).await;
        let (all, layer, discovery) = read(&api, Scope::AllNamespaces).await;
        let s = &all.status;
        eprintln!(
            "whole cluster: {n_objects} objects; {} services, {} slices, {} pods, {} Istio objects",
            s.services, s.endpoint_slices, s.pods, s.config_objects
        );
        eprintln!("  time to ready: {:.2?}", all.ready);
        eprintln!(
            "  heap growth after the sync: {:.1} MiB (mesh state plus the HTTP connections' buffers)",
            mib(all.bytes)
        );
        assert!(s.ready && s.services == services && s.pods == services * PODS);

        // One endpoint update end to end, 200 times: a pod of a routed service flips
        // readiness; wait for the publication.
        let mut lat = Vec::new();
        for i in 0..200 {
            let before = discovery.status().endpoint_publications;
            let t = Instant::now();
            api.apply(slice("ns-0", "svc-0", 0, i % 2 == 1));
            let mut rx = discovery.subscribe();
            tokio::time::timeout(
                Duration::from_secs(10),
                rx.wait_for(|s| s.endpoint_publications > before),
            )
            .await
            .expect("published")
            .expect("running");
            lat.push(t.elapsed());
        }
        lat.sort();
        eprintln!(
            "  endpoint update, stand-in to publication: p50 {:?}, p99 {:?}",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100]
        );
        let all_freed = dropped(layer, discovery).await;
        eprintln!(
            "  mesh state (freed when the discovery and the mesh are dropped): {:.1} MiB, {} bytes per service",
            mib(all_freed),
            all_freed / services as i64
        );
        let s = &one.status;
        eprintln!(
            "one namespace of {NAMESPACES}: {} services, {} pods, {} Istio objects; ready in {:.2?}; heap growth {:.2} MiB; mesh state {:.2} MiB ({:.1} % of the whole)",
            s.services,
            s.pods,
            s.config_objects,
            one.ready,
            mib(one.bytes),
            mib(one_freed),
            one_freed as f64 * 100.0 / all_freed as f64
        );
        assert_eq!(s.services, services.div_ceil(NAMESPACES));
    });
}
