//! Hostile configuration through the compiler: ten thousand VirtualServices load, compile and
//! route correctly; absurd numbers the model accepts (weights at the i32 limit, durations of
//! years) compile without a panic or an overflow; random YAML-ish text that loads compiles
//! without a panic (the CI equivalent of the `compile` cargo-fuzz target).

use http::HeaderMap;
use mesh_routing::{Action, ClientContext, RequestView, RouteTable};
use proptest::prelude::*;

fn many_services(n: usize) -> String {
    let mut s = String::with_capacity(n * 300);
    for i in 0..n {
        s.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: s{i}}}\nspec:\n  hosts: [s{i}]\n  http:\n  - match: [{{uri: {{prefix: /a}}}}, {{headers: {{x-user: {{exact: u{i}}}}}}}]\n    route: [{{destination: {{host: s{i}-a}}, weight: 90}}, {{destination: {{host: s{i}-b}}, weight: 10}}]\n  - route: [{{destination: {{host: s{i}-c}}}}]\n---\n"
        ));
    }
    s
}

fn routed_host(table: &RouteTable, authority: &str, path: &str, roll: u64) -> String {
    let h = HeaderMap::new();
    match table
        .route(&RequestView::new("GET", authority, path, &h), roll)
        .action()
    {
        Action::Route(r) => table.cluster_key(r.cluster()).host.to_owned(),
        other => format!("{other:?}"),
    }
}

/// 10,000 VirtualServices (20,000 routes, 30,000 destinations): load, compile, and route to
/// the right one. The time is printed, not asserted (RELIABILITY.md has the figures).
#[test]
#[allow(clippy::disallowed_methods)] // timing is printed for people, never asserted
fn ten_thousand_virtual_services_load_compile_and_route() {
    let n = 10_000;
    let text = many_services(n);
    let start = std::time::Instant::now();
    let loaded = mesh_model::load_str("many.yaml", &text);
    let loaded_in = start.elapsed();
    let errors: Vec<_> = loaded.errors().take(3).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let config = loaded.into_config();
    let start = std::time::Instant::now();
    let table = RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles");
    let compiled_in = start.elapsed();
    println!(
        "{n} virtual services ({} bytes): load {loaded_in:?}, compile {compiled_in:?}",
        text.len()
    );
    for i in [0, 1, n / 2, n - 1] {
        assert_eq!(
            routed_host(&table, &format!("s{i}"), "/a/x", 0),
            format!("s{i}-a.default.svc.cluster.local")
        );
        assert_eq!(
            routed_host(&table, &format!("s{i}:80"), "/z", 0),
            format!("s{i}-c.default.svc.cluster.local")
        );
    }
}

fn compiles_if_valid(text: &str) {
    let loaded = mesh_model::load_str("absurd.yaml", text);
    if loaded.errors().next().is_some() {
        return;
    }
    let config = loaded.into_config();
    if let Ok(table) = RouteTable::compile(&config, &ClientContext::new("default")) {
        for roll in [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            let _ = routed_host(&table, "r", "/", roll);
        }
    }
}

#[test]
fn absurd_numbers_the_model_accepts_compile_and_route() {
    let vs = |body: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n{body}"
        )
    };
    // Weights at the i32 limit: the sum of two overflows i32 and u32 is fine; whatever the
    // model decides, nothing panics and every roll routes.
    let weights = vs(
        "  - route:\n    - {destination: {host: a}, weight: 2147483647}\n    - {destination: {host: b}, weight: 2147483647}\n    - {destination: {host: c}, weight: 2147483647}\n",
    );
    compiles_if_valid(&weights);
    let loaded = mesh_model::load_str("w.yaml", &weights);
    if loaded.errors().next().is_none() {
        let table =
            RouteTable::compile(&loaded.into_config(), &ClientContext::new("default")).unwrap();
        let hosts: std::collections::BTreeSet<_> = [0, u64::MAX / 3, u64::MAX / 2, u64::MAX]
            .into_iter()
            .map(|roll| routed_host(&table, "r", "/", roll))
            .collect();
        assert!(
            hosts.len() >= 2,
            "equal huge weights still split: {hosts:?}"
        );
    }
    for d in ["87600h", "876000h", "1000000000s", "18446744073709551615s"] {
        compiles_if_valid(&vs(&format!(
            "  - timeout: {d}\n    retries: {{attempts: 2147483647, perTryTimeout: {d}}}\n    fault: {{delay: {{fixedDelay: {d}, percentage: {{value: 100}}}}}}\n    route: [{{destination: {{host: a}}}}]\n"
        )));
    }
}

/// YAML-ish tokens spliced into a valid multi-resource document.
const SEED: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r, '*.x.com']
  http:
  - match: [{uri: {regex: '/a/(b+)+'}, queryParams: {q: {exact: '1'}}}]
    mirror: {host: m}
    route:
    - {destination: {host: r, subset: v1, port: {number: 80}}, weight: 60}
    - {destination: {host: r, subset: v2}, weight: 40}
  - redirect: {uri: /n}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: c, ttl: 0s}}}}
  subsets: [{name: v1, labels: {v: '1'}}, {name: v2, labels: {v: '2'}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: r}
spec:
  hosts: [r.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, labels: {v: '1'}}, {address: 127.0.0.2, labels: {v: '2'}}]
";

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\n".to_owned()),
        Just("---\n".to_owned()),
        Just(": ".to_owned()),
        Just("- ".to_owned()),
        Just("{".to_owned()),
        Just("[".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("2147483647".to_owned()),
        Just("'*'".to_owned()),
        Just("v1".to_owned()),
        Just("r".to_owned()),
        "[a-z0-9./*]{0,8}",
        ".{0,4}",
    ]
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

    /// A valid document with a random span replaced: whatever loads (errors ignored, as the
    /// fuzz target does) compiles without a panic, and routes without one.
    #[test]
    fn mutated_config_compiles_without_panic(
        at in 0usize..SEED.len(),
        cut in 0usize..30,
        insert in proptest::collection::vec(token(), 0..5),
        roll in any::<u64>(),
    ) {
        let start = floor_char_boundary(SEED, at);
        let end = floor_char_boundary(SEED, (at + cut).min(SEED.len()));
        let text = format!("{}{}{}", &SEED[..start], insert.concat(), &SEED[end..]);
        let config = mesh_model::load_str("m.yaml", &text).into_config();
        if let Ok(table) = RouteTable::compile(&config, &ClientContext::new("default")) {
            let _ = routed_host(&table, "r", "/a/bbb?q=1", roll);
        }
    }
}

#[test]
fn the_seed_is_valid_and_compiles() {
    let config = mesh_model::load_str("seed.yaml", SEED)
        .into_result()
        .expect("valid");
    RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles");
}
