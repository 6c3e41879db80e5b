//! Hostile input, the limits: oversized sources, deep nesting, alias bombs, absurd numbers, and
//! random YAML-ish text (the CI equivalent of the `load` cargo-fuzz target). Every case ends
//! with diagnostics or a configuration, never a panic, a stack overflow or an unbounded
//! allocation. Speed is not asserted here (see RELIABILITY.md for the measured figures).

use mesh_model::{load_str, MAX_SOURCE_BYTES};
use proptest::prelude::*;

const VS_HEAD: &str =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n";

fn errors(text: &str) -> Vec<String> {
    load_str("hostile.yaml", text)
        .errors()
        .map(|d| d.to_string())
        .collect()
}

/// A 100 MB source is refused whole with one error naming the limit; 64 MiB is the line.
#[test]
fn a_100_mb_source_is_refused_with_one_clear_error() {
    let mut text = String::from(VS_HEAD);
    text.push_str("  http:\n  - route: [{destination: {host: r}}]\n# ");
    text.push_str(&"x".repeat(100_000_000 - text.len()));
    assert_eq!(text.len(), 100_000_000);
    let loaded = load_str("big.yaml", &text);
    let d: Vec<_> = loaded.diagnostics().iter().collect();
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].is_error());
    assert!(
        d[0].message().contains("100000000 bytes"),
        "{}",
        d[0].message()
    );
    assert!(
        d[0].message().contains("at most 64 MiB"),
        "{}",
        d[0].message()
    );
    assert!(loaded.into_result().is_err());

    // One byte over the limit is refused too; at the limit the text is read (here: a comment).
    let mut over = String::from("# ");
    over.push_str(&"y".repeat(MAX_SOURCE_BYTES - 1));
    assert_eq!(over.len(), MAX_SOURCE_BYTES + 1);
    assert_eq!(errors(&over).len(), 1);
    over.pop();
    assert!(
        errors(&over).is_empty(),
        "a 64 MiB comment is read and is empty"
    );
}

/// Nesting far deeper than any config needs: an error, never a stack overflow. Flow and block
/// style, inside a field the model reads and in an unknown field.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Flow nesting is refused by the guard before parsing, in time linear in the text; block
    // nesting by the parser's recursion limit.
    for depth in [200usize, 2_000] {
        let flow = format!(
            "{VS_HEAD}  http:\n  - route: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let e = errors(&flow);
        assert!(!e.is_empty(), "flow depth {depth}");

        let mapping = format!(
            "{VS_HEAD}  x: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        );
        assert!(!errors(&mapping).is_empty(), "mapping depth {depth}");
    }
    let mut block = String::from(VS_HEAD);
    block.push_str("  http:\n");
    for i in 0..1_000 {
        block.push_str(&" ".repeat(2 + 2 * i));
        block.push_str("- \n");
    }
    assert!(!errors(&block).is_empty());
}

/// Billion laughs: nine levels of nine aliases would expand to 10^9 strings. Refused while the
/// value is built, long before that (by the alias limit, or the parser's own repetition limit).
#[test]
fn alias_bomb_is_refused() {
    let mut text = String::from(VS_HEAD);
    text.push_str("  x:\n    a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        text.push_str(&format!(
            "    {cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    text.push_str("  http:\n  - route: [{destination: {host: r}}]\n    z: *i\n");
    let e = errors(&text);
    assert!(!e.is_empty(), "an alias bomb is an error");
}

/// Three levels of 270 aliases: 2.3 KB of text standing for 20 million nodes (2 GiB once
/// built). Refused while the value is built, with a message that names the limit and the fix.
#[test]
fn a_small_alias_tree_that_expands_to_millions_of_nodes_is_refused() {
    let mut text = String::from(VS_HEAD);
    text.push_str("  x:\n    a: &a [");
    text.push_str(&vec!["x"; 270].join(","));
    text.push_str("]\n    b: &b [");
    text.push_str(&vec!["*a"; 270].join(","));
    text.push_str("]\n    c: [");
    text.push_str(&vec!["*b"; 270].join(","));
    text.push_str("]\n  http:\n  - route: [{destination: {host: r}}]\n");
    assert!(text.len() < 2_500);
    let start = std::time::Instant::now();
    let loaded = load_str("tree.yaml", &text);
    let e: Vec<_> = loaded.errors().collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].message().contains("aliases expand this document"),
        "{}",
        e[0]
    );
    assert!(
        e[0].message().contains("write the repeated parts out"),
        "{}",
        e[0]
    );
    assert_eq!(e[0].source(), "tree.yaml");
    assert!(loaded.config().is_empty());
    // Building the first 66,000 nodes is quick, even in a debug build.
    assert!(start.elapsed() < std::time::Duration::from_secs(5));

    // Aliases within the allowance still load: 4,097 aliased entries of one anchor.
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/invalid/S10-port-level-settings-too-many.yaml"
    ))
    .unwrap();
    let loaded = load_str("s10.yaml", &fixture);
    assert!(
        loaded
            .errors()
            .all(|d| d.message().contains("at most 4096")),
        "{:?}",
        loaded.diagnostics()
    );
}

/// A 1 MB name, host and subset: each diagnostic repeats at most 200 characters of a
/// value (with an ellipsis), so the output stays a few lines, not megabytes.
#[test]
fn diagnostics_cut_long_values() {
    let long = "x".repeat(1_000_000);
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {long}}}\nspec:\n  hosts: [{long}]\n  http:\n  - route: [{{destination: {{host: r, subset: {long}}}}}]\n"
    );
    let loaded = load_str("long.yaml", &text);
    assert!(loaded.has_errors());
    let out: usize = loaded
        .diagnostics()
        .iter()
        .map(|d| d.to_string().len())
        .sum();
    assert!(
        out < 2_000 * loaded.diagnostics().len(),
        "{out} bytes for {} diagnostics",
        loaded.diagnostics().len()
    );
    for d in loaded.diagnostics() {
        let s = d.to_string();
        assert!(
            s.contains("xxx…"),
            "{}",
            s.chars().take(400).collect::<String>()
        );
    }
}

/// Weights, durations, counts and percentages at and beyond the limits of their types: each
/// one is a clear error or a value that loads, never a panic or a silent wrap.
#[test]
fn absurd_numbers_are_errors_or_values_never_panics() {
    let route = |extra: &str, weights: (&str, &str)| {
        format!(
            "{VS_HEAD}  http:\n  - route:\n    - destination: {{host: r, subset: a}}\n      weight: {}\n    - destination: {{host: r, subset: b}}\n      weight: {}\n{extra}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\nspec:\n  host: r\n  subsets: [{{name: a, labels: {{v: a}}}}, {{name: b, labels: {{v: b}}}}]\n",
            weights.0, weights.1
        )
    };
    // Refused: out of i32, negative, not a number.
    for w in ["2147483648", "-1", "1e10", "NaN", "99999999999999999999999"] {
        let e = errors(&route("", (w, "0")));
        assert!(!e.is_empty(), "weight {w}");
        assert!(e.iter().any(|m| m.contains("weight")), "weight {w}: {e:?}");
    }
    // Two weights of i32::MAX: their sum overflows i32. Whatever the verdict, no panic.
    let _ = errors(&route("", ("2147483647", "2147483647")));

    for d in [
        "87600h",
        "876000h",
        "1000000000s",
        "18446744073709551615s",
        "99999999999999999999999s",
        "-1s",
        "1e400s",
        "0.0000000001s",
    ] {
        let text = format!(
            "{VS_HEAD}  http:\n  - timeout: {d}\n    retries: {{attempts: 3, perTryTimeout: {d}}}\n    route: [{{destination: {{host: r}}}}]\n"
        );
        let _ = errors(&text);
    }
    // A negative duration is never accepted.
    let text =
        format!("{VS_HEAD}  http:\n  - timeout: -1s\n    route: [{{destination: {{host: r}}}}]\n");
    assert!(!errors(&text).is_empty());

    for attempts in ["2147483647", "2147483648", "-5", "1e9"] {
        let text = format!(
            "{VS_HEAD}  http:\n  - retries: {{attempts: {attempts}}}\n    route: [{{destination: {{host: r}}}}]\n"
        );
        let _ = errors(&text);
    }
    for pct in ["1e308", "-0.0", "100.0000001", "NaN", ".inf", "-.inf"] {
        let text = format!(
            "{VS_HEAD}  http:\n  - fault: {{abort: {{httpStatus: 503, percentage: {{value: {pct}}}}}}}\n    route: [{{destination: {{host: r}}}}]\n"
        );
        let e = errors(&text);
        if ["1e308", "100.0000001", "NaN", ".inf", "-.inf"].contains(&pct) {
            assert!(!e.is_empty(), "percentage {pct} is refused");
        }
    }
}

/// A valid document to mutate.
const SEED: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: default}
spec:
  hosts: [r, '*.example.com']
  http:
  - match: [{uri: {regex: '/a/(b+)+'}, headers: {x: {prefix: y}}}]
    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: '5xx,reset'}
    timeout: 1s
    route:
    - destination: {host: r, subset: v1, port: {number: 80}}
      weight: 60
    - destination: {host: r, subset: v2}
      weight: 40
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 10}}, outlierDetection: {consecutive5xxErrors: 2}}
  subsets: [{name: v1, labels: {v: '1'}}, {name: v2, labels: {v: '2'}}]
";

/// YAML-ish tokens: what a mutation splices in.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\n".to_owned()),
        Just("---\n".to_owned()),
        Just(": ".to_owned()),
        Just("- ".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("!!binary ".to_owned()),
        Just("<<: *a\n".to_owned()),
        Just("{".to_owned()),
        Just("[".to_owned()),
        Just("'".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        Just("2147483648".to_owned()),
        Just("-1".to_owned()),
        Just("1e999".to_owned()),
        Just("~".to_owned()),
        "[a-zA-Z0-9 ]{0,8}",
        ".{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, .. ProptestConfig::default() })]

    /// Random text from a YAML-ish alphabet: diagnostics or a config, never a panic.
    #[test]
    fn random_yamlish_text_never_panics(tokens in proptest::collection::vec(token(), 0..60)) {
        let text = tokens.concat();
        let loaded = load_str("random.yaml", &text);
        for d in loaded.diagnostics() {
            prop_assert!(!d.to_string().is_empty());
        }
    }

    /// A valid document with a random span replaced by random tokens: never a panic, and the
    /// unmutated document stays valid (the property is not vacuous).
    #[test]
    fn mutated_valid_config_never_panics(
        at in 0usize..SEED.len(),
        cut in 0usize..40,
        insert in proptest::collection::vec(token(), 0..6),
    ) {
        let start = floor_char_boundary(SEED, at);
        let end = floor_char_boundary(SEED, (at + cut).min(SEED.len()));
        let text = format!("{}{}{}", &SEED[..start], insert.concat(), &SEED[end..]);
        let loaded = load_str("mutated.yaml", &text);
        for d in loaded.diagnostics() {
            prop_assert!(!d.to_string().is_empty());
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[test]
fn the_mutation_seed_is_valid() {
    let loaded = load_str("seed.yaml", SEED);
    let errors: Vec<_> = loaded.errors().collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// Prints how long loading takes for each kind of deep nesting at growing depths, to show how
/// the time grows. Run:
/// `cargo test -p mesh-model --release --test hostile_limits -- --ignored --nocapture`
#[test]
#[ignore = "prints timings; run explicitly"]
fn deep_nesting_timings() {
    for depth in [1_000usize, 2_000, 4_000, 8_000] {
        let flow = format!(
            "{VS_HEAD}  http:\n  - route: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let mapping = format!(
            "{VS_HEAD}  x: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        );
        let mut block = String::from(VS_HEAD);
        block.push_str("  http:\n");
        for i in 0..depth {
            block.push_str(&" ".repeat(2 + 2 * i));
            block.push_str("- \n");
        }
        for (kind, text) in [("flow", &flow), ("mapping", &mapping), ("block", &block)] {
            let start = std::time::Instant::now();
            let n = errors(text).len();
            println!(
                "{kind} nesting depth {depth} ({} bytes): {:?}, {n} errors",
                text.len(),
                start.elapsed()
            );
        }
        // The same flow text straight through the YAML parser, for comparison.
        let start = std::time::Instant::now();
        let parsed = serde_yaml::from_str::<serde_yaml::Value>(&flow).is_ok();
        println!(
            "  serde_yaml alone, flow depth {depth}: {:?} (ok: {parsed})",
            start.elapsed()
        );
    }
}
