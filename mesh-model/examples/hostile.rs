//! Loads one generated hostile or very large configuration and prints how long it took, for the
//! time and memory figures in RELIABILITY.md. Peak memory is measured from outside:
//!
//! ```text
//! cargo build --release -p mesh-model --example hostile
//! /usr/bin/time -v target/release/examples/hostile routes 40000
//! ```
//!
//! Cases (the number scales each one):
//!
//! * `alias N`: a three-level alias tree of N×N×N nodes in an unknown field (N = 270 is 2.5 KB).
//! * `regex N`: N routes each matching the uri with a different `\w{20}…` regex.
//! * `nesting N`: a block scalar holding a quote, then N nested `[` (the old guard's bypass).
//! * `routes N`: one virtual service with N routes, each with a match block.
//! * `plain N`: one virtual service with N routes written `- route: [{destination: {host: r}}]`
//!   (38 bytes each; a million is 38 MB).
//! * `subsets N`: one destination rule with N subsets.
//! * `unknown N`: one virtual service with N routes, each with an unknown field.
//! * `mixed N`: N bookinfo-like groups (a virtual service with four routes, a destination rule
//!   with three subsets, a service entry), about 1.2 KB each.

use std::fmt::Write as _;
use std::time::Instant;

const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\nspec:\n  hosts: [r]\n";

fn alias(n: usize) -> String {
    let mut s = String::from(VS);
    s.push_str("  x:\n    a: &a [");
    s.push_str(&vec!["x"; n].join(","));
    s.push_str("]\n    b: &b [");
    s.push_str(&vec!["*a"; n].join(","));
    s.push_str("]\n    c: [");
    s.push_str(&vec!["*b"; n].join(","));
    s.push_str("]\n  http:\n  - route: [{destination: {host: r}}]\n");
    s
}

fn regex(n: usize) -> String {
    let mut s = String::from(VS);
    s.push_str("  http:\n");
    for i in 0..n {
        let _ = write!(
            s,
            "  - match:\n    - uri:\n        regex: '\\w{{20}}{i}'\n    route:\n    - destination:\n        host: r\n"
        );
    }
    s
}

fn nesting(n: usize) -> String {
    let mut s = String::from(VS);
    s.push_str("  x: |\n    it's \"quoted\n  y: ");
    s.push_str(&"[".repeat(n));
    s.push_str(&"]".repeat(n));
    s.push_str("\n  http:\n  - route: [{destination: {host: r}}]\n");
    s
}

fn routes(n: usize, unknown: bool) -> String {
    let mut s = String::from(VS);
    s.push_str("  http:\n");
    for i in 0..n {
        let _ = write!(
            s,
            "  - match:\n    - uri:\n        exact: /p{i}\n    route:\n    - destination:\n        host: r\n"
        );
        if unknown {
            s.push_str("    retires: 3\n");
        }
    }
    s
}

fn plain(n: usize) -> String {
    let mut s = String::from(VS);
    s.push_str("  http:\n");
    for _ in 0..n {
        s.push_str("  - route: [{destination: {host: r}}]\n");
    }
    s
}

fn subsets(n: usize) -> String {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: r\n  subsets:\n",
    );
    for i in 0..n {
        let _ = writeln!(s, "  - name: v{i}\n    labels:\n      version: v{i}");
    }
    s
}

fn mixed(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let _ = write!(
            s,
            "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc{i}
  namespace: ns{m}
spec:
  hosts: [svc{i}]
  http:
  - match:
    - headers:
        end-user:
          exact: jason
      uri:
        prefix: /api/v1
    route:
    - destination: {{host: svc{i}, subset: v2}}
    timeout: 2s
  - match:
    - uri:
        regex: /items/[0-9]+
    route:
    - destination: {{host: svc{i}, subset: v3}}
    retries: {{attempts: 3, perTryTimeout: 500ms, retryOn: 5xx}}
  - match:
    - uri:
        exact: /health
    directResponse:
      status: 200
  - route:
    - destination: {{host: svc{i}, subset: v1}}
      weight: 90
    - destination: {{host: svc{i}, subset: v2}}
      weight: 10
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc{i}
  namespace: ns{m}
spec:
  host: svc{i}
  trafficPolicy:
    connectionPool:
      http: {{http2MaxRequests: 100}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: svc{i}
  namespace: ns{m}
spec:
  hosts: [svc{i}.ns{m}.svc.cluster.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 10.0.0.1, labels: {{version: v1}}}}
  - {{address: 10.0.0.2, labels: {{version: v2}}}}
  - {{address: 10.0.0.3, labels: {{version: v3}}}}
---
",
            m = i % 50
        );
    }
    s
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "mixed".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let text = match case.as_str() {
        "alias" => alias(n),
        "regex" => regex(n),
        "nesting" => nesting(n),
        "routes" => routes(n, false),
        "plain" => plain(n),
        "subsets" => subsets(n),
        "unknown" => routes(n, true),
        "mixed" => mixed(n),
        other => {
            eprintln!("unknown case {other:?}");
            return;
        }
    };
    let start = Instant::now();
    let loaded = mesh_model::load_str("hostile.yaml", &text);
    let elapsed = start.elapsed();
    let errors = loaded.errors().count();
    let first = loaded
        .errors()
        .next()
        .map(|d| {
            let s = d.to_string();
            s.chars().take(300).collect::<String>()
        })
        .unwrap_or_default();
    println!(
        "{case} {n}: {} bytes, {:.3} s, {} diagnostics ({errors} errors), {} virtual services, {} destination rules, {} service entries",
        text.len(),
        elapsed.as_secs_f64(),
        loaded.diagnostics().len(),
        loaded.config().virtual_services().len(),
        loaded.config().destination_rules().len(),
        loaded.config().service_entries().len(),
    );
    if !first.is_empty() {
        println!("  first error: {first}");
    }
}
