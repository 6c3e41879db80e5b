//! Hostile requests against a fixed route table that uses every match kind (the CI equivalent of
//! the `route` cargo-fuzz target, which routes the same table): arbitrary methods, authorities,
//! paths, header names and values (obs-text, tabs, long values), query strings and rolls never
//! panic, and every decision is one of the table's outcomes. Also: a catastrophic-backtracking
//! regex stays linear, and non-UTF-8 header values neither panic nor match a text matcher.
//! A decision's [`DecisionKey`](mesh_routing::DecisionKey) gives the same decision back.

use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};
use mesh_routing::{Action, ClientContext, RequestView, RouteDecision, RouteTable};
use proptest::prelude::*;

const TABLE: &str = include_str!("fuzz_table.yaml");

fn table() -> RouteTable {
    let config = mesh_model::load_str("fuzz_table.yaml", TABLE)
        .into_result()
        .unwrap_or_else(|d| panic!("the fuzz table is valid: {d:?}"));
    RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles")
}

/// What a decision is, as a short name (also checks every accessor can be read).
fn outcome(table: &RouteTable, view: &RequestView<'_>, roll: u64) -> String {
    outcome_of(table, &table.route(view, roll))
}

fn outcome_of(table: &RouteTable, d: &RouteDecision<'_>) -> String {
    match d.action() {
        Action::Route(r) => {
            let k = table.cluster_key(r.cluster());
            format!("route:{}", k.subset.unwrap_or(""))
        }
        Action::Redirect(_) => "redirect".to_owned(),
        Action::DirectResponse(r) => format!("direct:{}", r.status().as_u16()),
        Action::NoRoute => "NR".to_owned(),
        Action::UnknownSubset(_) => "NC".to_owned(),
        Action::Passthrough(_) => "passthrough".to_owned(),
    }
}

/// Everything a decision says about a request, as text (accessor by accessor).
fn summary(table: &RouteTable, d: &RouteDecision<'_>, view: &RequestView<'_>) -> String {
    let dest = match d.action() {
        Action::Route(r) | Action::UnknownSubset(r) => {
            format!(
                "{}/{:?}/{}",
                r.chosen_index(),
                r.destination().subset(),
                r.destination_count()
            )
        }
        Action::Passthrough(p) => format!("{:?}", p.host()),
        _ => String::new(),
    };
    let mut response = HeaderMap::new();
    d.apply_response_headers(&mut response);
    format!(
        "{} {:?} {:?} {:?} {dest} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {}",
        outcome_of(table, d),
        d.virtual_service(),
        d.route(),
        d.cluster(),
        d.retry_policy(),
        d.timeout(),
        d.rewritten_path(view),
        d.redirect_location(view),
        d.authority_rewrite(),
        d.fault().is_some(),
        d.hash_key(view),
        response,
        d.mirrors().count(),
    )
}

/// Any text, biased towards what matters to the matchers: path-ish characters, `?`, `&`, `=`,
/// `%`, case changes, control characters and non-ASCII.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[/a-zA-Z0-9?&=%._~-]{0,60}",
        "/(re|pre|PRE|rx|old|mirror|exact|health)/[a-z!]{0,20}(\\?[a-z]=[a-z0-9]{0,4}){0,3}",
        "[\\x00-\\x1f\\x7f]{0,8}",
    ]
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("end-user".to_owned()),
        Just("x-p".to_owned()),
        Just("x-r".to_owned()),
        Just("x-user".to_owned()),
        Just("x-block".to_owned()),
        Just("cookie".to_owned()),
        "[a-z-]{1,12}",
    ]
}

/// Header values as raw bytes: visible ASCII, tabs and obs-text (0x80-0xff, not UTF-8).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(0x20u8..0x7f, 0..30),
        proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..30),
        Just(b"jason".to_vec()),
        Just(b"abc".to_vec()),
        Just(b"12345".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_request_parts_never_panic(
        method in prop_oneof![Just("GET".to_owned()), Just("POST".to_owned()), ".{0,10}"],
        authority in prop_oneof![
            Just("api".to_owned()),
            Just("api:8080".to_owned()),
            Just("x.example.com".to_owned()),
            Just("API.OTHER:65535".to_owned()),
            texty(),
        ],
        path in texty(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..8),
        roll in any::<u64>(),
    ) {
        let table = table_once();
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        let view = RequestView::new(&method, &authority, &path, &map);
        let out = outcome(table, &view, roll);
        // The decision's key gives the same decision back.
        let d = table.route(&view, roll);
        prop_assert_eq!(
            summary(table, &table.decision(d.key()), &view),
            summary(table, &d, &view)
        );
        // Every request for a host the VirtualService covers ends on one of its outcomes.
        prop_assert!(
            ["route:v1", "route:v2", "redirect", "direct:200", "NR", "passthrough"]
                .contains(&out.as_str()),
            "{out}"
        );
    }
}

/// The table is compiled once per test process.
fn table_once() -> &'static RouteTable {
    static T: std::sync::OnceLock<RouteTable> = std::sync::OnceLock::new();
    T.get_or_init(table)
}

#[test]
fn the_table_routes_its_own_examples() {
    let t = table_once();
    let h = HeaderMap::new();
    let at = |path| outcome(t, &RequestView::new("GET", "api:8080", path, &h), 0);
    assert_eq!(at("/exact"), "route:v1");
    assert_eq!(at("/PRE/x"), "route:v1");
    assert_eq!(at("/re/aaaa"), "route:v2");
    assert_eq!(at("/health"), "direct:200");
    assert_eq!(at("/old/x"), "redirect");
}

/// Header values that are not UTF-8 (obs-text) never match a text matcher, and never panic.
#[test]
fn non_utf8_header_values_do_not_match_text_matchers() {
    let t = table_once();
    let mut h = HeaderMap::new();
    h.insert("end-user", HeaderValue::from_bytes(b"jas\xffon").unwrap());
    h.insert("x-p", HeaderValue::from_bytes(b"ab\xfe").unwrap());
    h.insert("x-r", HeaderValue::from_bytes(b"12\x80").unwrap());
    let out = outcome(t, &RequestView::new("GET", "api", "/elsewhere", &h), 0);
    assert_ne!(out, "route:v2", "the header rule must not match");
}

/// Control characters cannot reach the router in a header value: the `http` crate refuses
/// them (only tab is allowed), so the mesh never sees them.
#[test]
fn control_characters_in_header_values_are_refused_before_routing() {
    for b in (0u8..0x20).filter(|b| *b != b'\t').chain([0x7f]) {
        assert!(HeaderValue::from_bytes(&[b'a', b, b'b']).is_err(), "{b:#x}");
    }
    assert!(HeaderValue::from_bytes(b"a\tb").is_ok());
}

/// `(a+)+$`, the classic catastrophic-backtracking pattern, on `/re/` + `a`×N + `!` (which does
/// not match): the RE2-style engine answers, and in bounded time.
#[test]
fn pathological_regex_answers() {
    let t = table_once();
    let h = HeaderMap::new();
    let path = format!("/re/{}!", "a".repeat(10_000));
    let out = outcome(t, &RequestView::new("GET", "api", &path, &h), 0);
    assert_ne!(out, "route:v2");
    let path = format!("/re/{}", "a".repeat(10_000));
    let out = outcome(t, &RequestView::new("GET", "api", &path, &h), 0);
    assert_eq!(out, "route:v2");
}

/// Prints how long `(a+)+$` takes on `a`×N + `!` for N = 10k, 20k, 40k. A backtracking engine
/// doubles its time per extra `a`; a linear one doubles it per doubling of N (ratio near 2).
/// Run: `cargo test -p mesh-routing --release --test hostile_requests -- --ignored --nocapture`
#[test]
#[ignore = "prints timings; run explicitly"]
#[allow(clippy::disallowed_methods)] // a measurement printed for people, never asserted
fn pathological_regex_is_linear() {
    let t = table_once();
    let h = HeaderMap::new();
    let mut last = None;
    for n in [10_000usize, 20_000, 40_000, 80_000] {
        let path = format!("/re/{}!", "a".repeat(n));
        let view = RequestView::new("GET", "api", &path, &h);
        let reps = 50;
        let start = Instant::now();
        for r in 0..reps {
            std::hint::black_box(t.route(&view, r));
        }
        let each = start.elapsed() / reps as u32;
        let ratio = last.map(|l: std::time::Duration| each.as_secs_f64() / l.as_secs_f64());
        println!("(a+)+$ on a x {n} + '!': {each:?} per route, ratio to previous {ratio:?}");
        last = Some(each);
    }
}

/// A path with raw non-UTF-8 bytes cannot be built as an `http::Uri`, so it never reaches the
/// router; percent-encoded non-UTF-8 bytes do, and route like any other text (no decoding, as
/// Envoy matches the path as sent).
#[test]
fn non_utf8_paths_are_refused_by_http_or_routed_as_text() {
    assert!(http::Uri::try_from(&b"/re/\xff\xfe"[..]).is_err());
    let t = table_once();
    let uri: http::Uri = "http://api:8080/re/%FF%FEaaa?q=%00".parse().unwrap();
    let req = http::Request::get(uri).body(()).unwrap();
    let view = RequestView::from_request(&req);
    assert_eq!(view.path(), "/re/%FF%FEaaa");
    assert_ne!(outcome(t, &view, 0), "route:v2", "%FF is not `a`");
    let uri: http::Uri = "http://api:8080/PRE/%FF".parse().unwrap();
    let req = http::Request::get(uri).body(()).unwrap();
    assert_eq!(
        outcome(t, &RequestView::from_request(&req), 0),
        "route:v1",
        "ignoreUriCase prefix still matches"
    );
}
