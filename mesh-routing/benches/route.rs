//! Routing decision cost: the seed's canary config and a 1,000 virtual service × 10 route
//! table (early hit, late hit, no route, unknown host).
//!
//! Run with: `cargo bench -p mesh-routing --bench route -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion};
use mesh_routing::lb::{LbState, NoneEjected};
use mesh_routing::{ClientContext, RequestView, RouteTable};

#[path = "../tests/common/large.rs"]
mod large;

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
"#;

fn compile(yaml: &str, client: &ClientContext) -> RouteTable {
    let loaded = mesh_model::load_str("bench.yaml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    RouteTable::compile(&loaded.into_config(), client).expect("compiles")
}

fn seed(c: &mut Criterion) {
    let table = compile(
        SEED,
        &ClientContext::new("default").with_label("app", "frontend"),
    );
    let headers = http::HeaderMap::new();
    let req = RequestView::new("GET", "api:8080", "/orders/42", &headers);
    let mut roll = 0u64;
    c.bench_function("seed/route", |b| {
        b.iter(|| {
            roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
            std::hint::black_box(table.route(std::hint::black_box(&req), roll).cluster())
        });
    });
    let req_from_parts = http::Request::get("http://api:8080/orders/42")
        .body(())
        .expect("request");
    c.bench_function("seed/view+route", |b| {
        b.iter(|| {
            roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let view = RequestView::from_request(std::hint::black_box(&req_from_parts));
            std::hint::black_box(table.route(&view, roll).cluster())
        });
    });
    // Endpoints are selected per cluster when they are published, not per request.
    let selected: Vec<_> = (0..table.destination_count() as u32)
        .map(|_| None::<mesh_routing::endpoints::ClusterEndpoints>)
        .collect();
    let mut selected = selected;
    let mut state = LbState::new();
    c.bench_function("seed/route+pick_endpoint", |b| {
        b.iter(|| {
            roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let d = table.route(&req, roll);
            let cluster = d.cluster().expect("routed");
            let eps = selected[cluster.destination_index()]
                .get_or_insert_with(|| table.static_endpoints().select(&table.selector(cluster)));
            let lb = table.policy(cluster).load_balancer();
            std::hint::black_box(eps.pick(&lb, &mut state, &[], &NoneEjected, roll, None));
        });
    });
}

fn large_table(c: &mut Criterion) {
    let table = compile(&large::yaml(), &ClientContext::new("default"));
    let mut user = http::HeaderMap::new();
    user.insert("x-user", "user-0".parse().expect("value"));
    let none = http::HeaderMap::new();
    let cases = [
        ("early-hit", RequestView::new("GET", "svc-500", "/x", &user)),
        (
            "late-hit",
            RequestView::new(
                "GET",
                "svc-999.default.svc.cluster.local",
                "/items/42/r8",
                &none,
            ),
        ),
        (
            "no-route",
            RequestView::new("GET", "svc-7:8080", "/nothing/here", &none),
        ),
        (
            "unknown-host",
            RequestView::new("GET", "elsewhere.example.com", "/", &none),
        ),
    ];
    for (name, req) in &cases {
        c.bench_function(&format!("1000x10/{name}"), |b| {
            b.iter(|| std::hint::black_box(table.route(std::hint::black_box(req), 7).cluster()));
        });
    }
}

/// 2,000 `queryParams` routes against a 64 KiB query of 8,000 parameters, none matching
/// (issue 12's worst case).
fn query_params(c: &mut Criterion) {
    let mut yaml = String::from(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: q, namespace: default}
spec:
  hosts: [q.example.com]
  http:
",
    );
    for k in 0..2_000 {
        yaml.push_str(&format!(
            "  - match: [{{queryParams: {{p{k}: {{exact: v{k}}}}}}}]
    route: [{{destination: {{host: q.example.com}}}}]
"
        ));
    }
    yaml.push_str("  - route: [{destination: {host: q.example.com}}]\n");
    let table = compile(&yaml, &ClientContext::new("default"));
    let query: Vec<String> = (0..8_000).map(|i| format!("k{i:05}=v")).collect();
    let target = format!("/?{}", query.join("&"));
    let none = http::HeaderMap::new();
    let req = RequestView::new("GET", "q.example.com", &target, &none);
    c.bench_function("query/2000-routes-64KiB-query", |b| {
        b.iter(|| std::hint::black_box(table.route(std::hint::black_box(&req), 7).cluster()));
    });
}

criterion_group!(benches, seed, large_table, query_params);
criterion_main!(benches);
