//! `route()` allocates nothing: a counting global allocator around the seed config and the
//! 1,000-host table.
//!
//! This test runs without the libtest harness (`harness = false`): the allocator counts every
//! thread, and the harness's own threads would add noise.

use std::alloc::System;

use mesh_routing::lb::{LbState, NoneEjected};
use mesh_routing::{Action, ClientContext, RequestView, RouteTable};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "common/large.rs"]
mod large;

/// Counts every allocation of the process (single-threaded here: no test harness).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations_during(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

fn compile(yaml: &str, client: &ClientContext) -> RouteTable {
    let loaded = mesh_model::load_str("alloc.yaml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    RouteTable::compile(&loaded.into_config(), client).unwrap()
}

const SEED: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-vs-canary}
spec:
  hosts: [api]
  http:
  - route:
    - {destination: {host: api, subset: v1}, weight: 90}
    - {destination: {host: api, subset: v2}, weight: 10}
  - match: [{sourceLabels: {app: frontend}}]
    route: [{destination: {host: api, subset: v2}}]
    retries: {attempts: 3, perTryTimeout: 2s}
    timeout: 5s
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-dr}
spec:
  host: api
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v1}}
  - {address: 10.0.0.3, labels: {version: v2}}
"#;

fn main() {
    route_and_pick_do_not_allocate();
    println!("test route_and_pick_do_not_allocate ... ok");
    println!("alloc: 1 passed, 0 failed");
}

fn route_and_pick_do_not_allocate() {
    let client = ClientContext::new("default").with_label("app", "frontend");
    let seed = compile(SEED, &client);
    let mut headers = http::HeaderMap::new();
    headers.insert("x-user", "user-0".parse().unwrap());
    headers.insert("cookie", "a=b".parse().unwrap());
    let req = RequestView::new("GET", "api:8080", "/orders?id=7", &headers);

    let mut states: Vec<LbState> = (0..seed.destination_count() * 2)
        .map(|_| LbState::new())
        .collect();
    // Endpoints are selected per cluster once (when published), not per request.
    let endpoints: Vec<_> = (0..seed.destination_count())
        .map(|_| None::<mesh_routing::endpoints::ClusterEndpoints>)
        .collect();
    let mut endpoints = endpoints;
    for roll in 0..100u64 {
        let c = seed.route(&req, roll).cluster().unwrap();
        endpoints[c.destination_index()]
            .get_or_insert_with(|| seed.static_endpoints().select(&seed.selector(c)));
    }
    // Warm the load-balancer state once (it sizes itself on first use).
    for roll in 0..100u64 {
        let d = seed.route(&req, roll);
        let c = d.cluster().unwrap();
        let eps = endpoints[c.destination_index()].as_ref().unwrap();
        let lb = seed.policy(c).load_balancer();
        let _ = eps.pick(
            &lb,
            &mut states[c.destination_index()],
            &[],
            &NoneEjected,
            roll,
            None,
        );
    }
    let n = allocations_during(|| {
        for roll in 0..10_000u64 {
            let d = seed.route(&req, roll);
            let Action::Route(r) = d.action() else {
                panic!("{d}")
            };
            std::hint::black_box((
                d.retry_policy(),
                d.timeout(),
                d.header_operations().count(),
                d.policy(),
            ));
            std::hint::black_box(d.hash_key(&req));
            let c = r.cluster();
            let eps = endpoints[c.destination_index()].as_ref().unwrap();
            let choice = eps.pick(
                &seed.policy(c).load_balancer(),
                &mut states[c.destination_index()],
                &[],
                &NoneEjected,
                roll,
                d.hash_key(&req),
            );
            std::hint::black_box(choice);
        }
    });
    assert_eq!(n, 0, "allocations on the seed config");

    // Building the view from an http::Request does not allocate either.
    let request = http::Request::get("http://api:8080/orders?id=7")
        .header("x-user", "user-0")
        .body(())
        .unwrap();
    let n = allocations_during(|| {
        for roll in 0..1_000u64 {
            let view = RequestView::from_request(&request);
            std::hint::black_box(seed.route(&view, roll).cluster());
        }
    });
    assert_eq!(n, 0, "allocations building views from http::Request");

    let big = compile(&large::yaml(), &ClientContext::new("default"));
    let early = RequestView::new("GET", "svc-500", "/x", &headers);
    let none = http::HeaderMap::new();
    let late = RequestView::new(
        "GET",
        "svc-999.default.svc.cluster.local",
        "/items/42/r8",
        &none,
    );
    let miss = RequestView::new("GET", "svc-7", "/nothing/here", &none);
    let unknown = RequestView::new("GET", "elsewhere.example.com", "/", &none);
    assert!(matches!(big.route(&early, 0).action(), Action::Route(_)));
    assert_eq!(big.route(&late, 0).route().unwrap().index, 8);
    assert!(matches!(big.route(&miss, 0).action(), Action::NoRoute));
    assert!(matches!(
        big.route(&unknown, 0).action(),
        Action::Passthrough(_)
    ));
    let n = allocations_during(|| {
        for roll in 0..2_000u64 {
            for req in [&early, &late, &miss, &unknown] {
                std::hint::black_box(big.route(req, roll));
            }
        }
    });
    assert_eq!(n, 0, "allocations on the 1,000-host table");

    // The counter works: explain() allocates.
    assert!(allocations_during(|| drop(std::hint::black_box(big.explain(&late)))) > 0);
}
