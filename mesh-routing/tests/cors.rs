//! Envoy's CORS filter as istiod configures it from `corsPolicy`, including
//! `unmatchedPreflights` (FORWARD, the default, and IGNORE).

mod common;

use common::{headers, table};
use mesh_routing::cors::CorsVerdict;
use mesh_routing::{ClientContext, RequestView};

fn config(unmatched: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  http:
  - corsPolicy:
      allowOrigins: [{{exact: "https://app.example.com"}}]
      allowMethods: [GET, POST]
      allowCredentials: true
      maxAge: 1m
      {unmatched}
    route: [{{destination: {{host: api.example.com}}}}]
"#
    )
}

/// The verdict for a request with these headers, as a comparable value.
fn verdict(unmatched: &str, method: &str, pairs: &[(&str, &str)]) -> String {
    let t = table(&config(unmatched), &ClientContext::new("default"));
    let h = headers(pairs);
    let view = RequestView::new(method, "api.example.com", "/", &h);
    let d = t.route(&view, 0);
    let cors = d.cors_filter().expect("the route has a corsPolicy");
    match cors.evaluate(&view) {
        CorsVerdict::Pass => "pass".to_owned(),
        CorsVerdict::Actual(o) => format!("actual {}", o.to_str().unwrap()),
        CorsVerdict::Preflight(h) => {
            let mut names: Vec<String> = h
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_str().unwrap()))
                .collect();
            names.sort();
            format!("preflight {}", names.join(" "))
        }
    }
}

#[test]
fn preflights_and_actual_requests_by_origin_and_unmatched_preflights() {
    let allowed = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "POST"),
    ];
    let other = [
        ("origin", "https://evil.example.com"),
        ("access-control-request-method", "POST"),
    ];
    let full = "access-control-allow-credentials=true access-control-allow-methods=GET,POST access-control-max-age=60";
    for unmatched in [
        "",
        "unmatchedPreflights: FORWARD",
        "unmatchedPreflights: IGNORE",
    ] {
        // An allowed origin's preflight is answered, naming the origin.
        assert_eq!(
            verdict(unmatched, "OPTIONS", &allowed),
            "preflight access-control-allow-credentials=true access-control-allow-methods=GET,POST access-control-allow-origin=https://app.example.com access-control-max-age=60",
            "{unmatched}"
        );
        // Actual requests: an allowed origin gets the headers, another is left alone.
        assert_eq!(
            verdict(unmatched, "GET", &allowed[..1]),
            "actual https://app.example.com"
        );
        assert_eq!(verdict(unmatched, "GET", &other[..1]), "pass");
        // No Origin: not a CORS request.
        assert_eq!(verdict(unmatched, "OPTIONS", &allowed[1..]), "pass");
    }
    // An unmatched origin's preflight goes upstream by default and with FORWARD ...
    assert_eq!(verdict("", "OPTIONS", &other), "pass");
    assert_eq!(
        verdict("unmatchedPreflights: FORWARD", "OPTIONS", &other),
        "pass"
    );
    // ... and with IGNORE is answered here, without access-control-allow-origin.
    assert_eq!(
        verdict("unmatchedPreflights: IGNORE", "OPTIONS", &other),
        format!("preflight {full}")
    );
}
