//! Loading speed on ordinary and hostile input.
//!
//! `cargo bench -p mesh-model --bench load -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion};

fn fixture(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::read_to_string(root.join(path)).expect("fixture")
}

/// 4096 `portLevelSettings` entries, each with an invalid port: 4096 located diagnostics.
fn many_bad_entries() -> String {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: r\n  trafficPolicy:\n    portLevelSettings:\n",
    );
    for _ in 0..4096 {
        s.push_str("    - port:\n        number: 0\n      loadBalancer:\n        simple: RANDOM\n");
    }
    s
}

/// 1000 virtual services for one host, each routing to a subset no rule defines: 2000
/// cross-resource findings.
fn many_documents() -> String {
    (0..1000)
        .map(|i| format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r{i}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination:\n        host: a\n        subset: v{i}\n"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "bookinfo-dr-all",
            fixture("valid/destination-rule-all.yaml"),
        ),
        ("api-retries", fixture("valid/api-retries.yaml")),
        (
            "s10-4097-aliases",
            fixture("invalid/S10-port-level-settings-too-many.yaml"),
        ),
        ("dr2-1mib-body", fixture("invalid/DR2-body-over-1mib.yaml")),
        ("4096-bad-entries", many_bad_entries()),
        ("1000-documents", many_documents()),
    ];
    let mut g = c.benchmark_group("load_str");
    g.sample_size(10);
    for (name, text) in &cases {
        g.bench_function(*name, |b| b.iter(|| mesh_model::load_str(name, text)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
