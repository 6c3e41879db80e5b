//! A fixed route table (every match kind: exact, prefix, regex, headers, query parameters,
//! methods, authorities, ports, case folding; splits, rewrites, redirects) routing arbitrary
//! request parts: never panics.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mesh_routing::{ClientContext, RequestView, RouteTable};

const CONFIG: &str = include_str!("../../mesh-routing/tests/fuzz_table.yaml");

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let config = mesh_model::load_str("route_table.yaml", CONFIG)
            .into_result()
            .expect("the fixed config is valid");
        RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles")
    })
}

// Splits the input into NUL-separated fields: method, authority, path, roll, then header
// name/value pairs.
fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|b| *b == 0);
    let mut next = || String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let method = next();
    let authority = next();
    let path = next();
    let roll = next()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
    let mut headers = HeaderMap::new();
    loop {
        let (name, value) = (next(), next());
        if name.is_empty() && value.is_empty() {
            break;
        }
        // Names the http crate refuses are skipped; values keep arbitrary bytes.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
        if headers.len() > 64 {
            break;
        }
    }
    let view = RequestView::new(&method, &authority, &path, &headers);
    let decision = table().route(&view, roll);
    let _ = format!("{:?}", decision.action());
});
