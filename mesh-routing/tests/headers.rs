//! Header operations in Envoy's order: remove, then set, then add; route and destination
//! levels in Istio's order.

mod common;

use http::HeaderMap;
use mesh_routing::{ClientContext, RequestView};

const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: h, namespace: default}
spec:
  hosts: [h.example.com]
  http:
  - headers:
      request:
        remove: [x-a, x-b]
        set: {x-a: route-set}
        add: {x-b: route-added, x-c: route-added}
      response:
        remove: [server]
        set: {server: mesh}
    route:
    - destination: {host: h.example.com}
";

#[test]
fn removes_run_before_sets_and_adds() {
    let table = common::table(VS, &ClientContext::new("default"));
    let h = HeaderMap::new();
    let view = RequestView::new("GET", "h.example.com", "/", &h);
    let d = table.route(&view, 0);
    let mut req = common::headers(&[("x-a", "caller"), ("x-b", "caller"), ("x-c", "caller")]);
    d.apply_request_headers(&mut req);
    let all =
        |n: &str| -> Vec<&str> { req.get_all(n).iter().map(|v| v.to_str().unwrap()).collect() };
    assert_eq!(all("x-a"), ["route-set"], "removed, then set");
    assert_eq!(all("x-b"), ["route-added"], "removed, then added");
    assert_eq!(all("x-c"), ["caller", "route-added"], "appended");

    let mut res = common::headers(&[("server", "backend")]);
    d.apply_response_headers(&mut res);
    assert_eq!(res.get("server").unwrap(), "mesh");
}
