//! Configurations istiod accepts and mesh-model loads with a warning compile and route as
//! Envoy would be told to: a null match block, a rewrite without a leading `/`, status 600.

mod common;

use common::{get, headers, table};
use mesh_routing::{Action, ClientContext};

const VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: default}
spec:
  hosts: [r]
  http:
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 600}
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 600, percentage: {value: 100}}}
    route: [{destination: {host: r}}]
  - match: [{uri: {prefix: /a}}]
    rewrite: {uri: b}
    route: [{destination: {host: r}}]
  - match: [{uri: {prefix: /never}}, null]
    route: [{destination: {host: other}}]
"#;

#[test]
fn warned_configurations_route_as_istiod_translates_them() {
    let t = table(VS, &ClientContext::new("default"));
    let h = headers(&[]);

    let d = t.route(&get("r", "/direct", &h), 0);
    let Action::DirectResponse(dr) = d.action() else {
        panic!("{d}")
    };
    assert_eq!(dr.status().as_u16(), 600);

    let d = t.route(&get("r", "/abort", &h), 0);
    let fault = d.fault().expect("the abort compiles");
    assert!(fault.abort().is_some());

    let req = get("r", "/a/x", &h);
    let d = t.route(&req, 0);
    assert_eq!(
        d.rewritten_path(&req).as_deref(),
        Some("b/x"),
        "sent as written"
    );

    // The null block is a catch-all: any other path takes the last route.
    let d = t.route(&get("r", "/zzz", &h), 0);
    let Action::Route(r) = d.action() else {
        panic!("{d}")
    };
    assert_eq!(r.destination().host(), "other.default.svc.cluster.local");
}
