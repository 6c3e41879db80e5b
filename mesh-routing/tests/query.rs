//! `queryParams` matching when a virtual host tests many parameters: the table indexes the
//! query once per decision instead of scanning it once per test. The index must answer exactly
//! as the scan does (first value of a repeated name, `?key` and `?key=` as empty values, raw
//! and case-sensitive names).

mod common;

use http::HeaderMap;
use mesh_routing::{ClientContext, RequestView, RouteTable};
use proptest::prelude::*;

/// Routes `r0`..`r{n-1}`, route `rK` matching `queryParams: {pK: {exact: vK}}`, then a
/// catch-all `rest`.
fn table(n: usize) -> RouteTable {
    let mut yaml = String::from(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: q, namespace: default}
spec:
  hosts: [q.example.com]
  http:
",
    );
    for k in 0..n {
        yaml.push_str(&format!(
            "  - name: r{k}
    match: [{{queryParams: {{p{k}: {{exact: v{k}}}}}}}]
    route: [{{destination: {{host: q.example.com}}}}]
"
        ));
    }
    yaml.push_str("  - name: rest\n    route: [{destination: {host: q.example.com}}]\n");
    common::table(&yaml, &ClientContext::new("default"))
}

/// The route the table chose, by name.
fn chosen(table: &RouteTable, target: &str) -> String {
    let h = HeaderMap::new();
    let view = RequestView::new("GET", "q.example.com", target, &h);
    let d = table.route(&view, 0);
    d.route()
        .and_then(|r| r.name)
        .unwrap_or_default()
        .to_owned()
}

/// The route a plain scan of the query picks: the first `rK` whose `pK` has value `vK`.
fn expected(n: usize, target: &str) -> String {
    let h = HeaderMap::new();
    let view = RequestView::new("GET", "q.example.com", target, &h);
    (0..n)
        .find(|k| view.query_param(&format!("p{k}")) == Some(format!("v{k}").as_str()))
        .map_or_else(|| "rest".to_owned(), |k| format!("r{k}"))
}

/// One query piece: `pK=vJ`, `pK`, `pK=`, `=x`, an empty piece, or noise.
fn piece(n: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        (0..n, 0..n).prop_map(|(k, j)| format!("p{k}=v{j}")),
        (0..n).prop_map(|k| format!("p{k}")),
        (0..n).prop_map(|k| format!("p{k}=")),
        (0..n).prop_map(|k| format!("P{k}=v{k}")),
        Just("=x".to_owned()),
        Just(String::new()),
        "[a-z%=]{0,12}",
    ]
}

const ROUTES: usize = 40;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_index_answers_as_the_scan_does(pieces in prop::collection::vec(piece(ROUTES), 0..400)) {
        static TABLE: std::sync::OnceLock<RouteTable> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(|| table(ROUTES));
        let target = format!("/?{}", pieces.join("&"));
        prop_assert_eq!(chosen(table, &target), expected(ROUTES, &target), "{}", target);
    }
}

#[test]
fn the_first_value_of_a_repeated_name_counts_with_and_without_the_index() {
    let table = table(ROUTES);
    let filler = "&x=yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy".repeat(20);
    for (target, want) in [
        ("/?p3=v3&p3=no", "r3"),
        ("/?p3=no&p3=v3", "rest"),
        ("/?p3=v3&p1=v1", "r1"),
    ] {
        assert_eq!(chosen(&table, target), want, "{target}");
        // A long query switches the index on: same answers.
        let long = format!("{target}{filler}");
        assert!(long.len() * ROUTES > 4096);
        assert_eq!(chosen(&table, &long), want, "{long}");
    }
}

/// 2,000 `queryParams` routes against a 64 KiB query of 8,000 parameters, none matching: a
/// scan per test would read 128 MB; the index reads the query once. Bounded in work, not
/// timed here (the `route` bench measures it).
#[test]
fn a_large_query_against_many_query_routes_routes_to_the_catch_all() {
    let table = table(2_000);
    let query: Vec<String> = (0..8_000).map(|i| format!("k{i:05}=v")).collect();
    let target = format!("/?{}", query.join("&"));
    assert!(target.len() > 64_000);
    assert_eq!(chosen(&table, &target), "rest");
    let target = format!("{target}&p1999=v1999");
    assert_eq!(chosen(&table, &target), "r1999");
}
