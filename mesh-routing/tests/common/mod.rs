//! Shared helpers: load YAML through mesh-model, compile, build requests.
#![allow(dead_code, unreachable_pub)]

use http::HeaderMap;
use mesh_routing::{ClientContext, RequestView, RouteTable};

/// Load and compile, panicking with the diagnostics if the YAML is invalid.
pub fn table(yaml: &str, client: &ClientContext) -> RouteTable {
    // Routes to undefined subsets are errors of the model's analysis but valid for Istio
    // (503 NC at run time); the tests exercise them, so only refusals fail.
    let loaded = mesh_model::load_str("test.yaml", yaml);
    let errors: Vec<_> = loaded
        .diagnostics()
        .iter()
        .filter(|d| d.is_refusal())
        .collect();
    assert!(errors.is_empty(), "invalid test config: {errors:?}");
    let config = loaded.into_config();
    RouteTable::compile(&config, client).unwrap_or_else(|e| panic!("compile: {e}"))
}

/// Headers from `name: value` pairs (repeated names append).
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

/// A GET view.
pub fn get<'a>(authority: &'a str, path: &'a str, h: &'a HeaderMap) -> RequestView<'a> {
    RequestView::new("GET", authority, path, h)
}

/// `host|subset|port` of the chosen destination, or the action's name.
pub fn target(table: &RouteTable, req: &RequestView<'_>, roll: u64) -> String {
    use mesh_routing::Action;
    let d = table.route(req, roll);
    match d.action() {
        Action::Route(r) => {
            let k = table.cluster_key(r.cluster());
            format!("{}|{}|{}", k.host, k.subset.unwrap_or(""), k.port)
        }
        Action::UnknownSubset(r) => format!(
            "NC:{}|{}",
            r.destination().host(),
            r.destination().subset().unwrap_or("")
        ),
        Action::Redirect(_) => "redirect".to_owned(),
        Action::DirectResponse(d) => format!("direct:{}", d.status()),
        Action::NoRoute => "NR".to_owned(),
        Action::Passthrough(p) => match p.cluster() {
            Some(c) => {
                let k = table.cluster_key(c);
                format!("passthrough:{}|{}", k.host, k.port)
            }
            None => "passthrough".to_owned(),
        },
    }
}
