//! Where the former `mesh_model::find_destination_rule` (the DestinationRule lookup this
//! translation used before it followed the route table; since removed, the one lookup being
//! `mesh_model::applicable_destination_rules`, which the route table uses) and the mesh
//! disagreed: the bootstrap now says what the mesh does.

use mesh_routing::{Action, ClientContext, ClusterId, ClusterKey, RequestView, RouteTable};
use serde_json::json;

use super::{addrs, bootstrap, cluster};

/// Three configurations where the former `mesh_model::find_destination_rule` (the lookup this
/// translation used before it followed the route table) and the mesh disagreed. The old
/// bootstrap gave `cart` RANDOM and a v1 cluster (it ignored exportTo), `pay.example.com` the
/// root namespace's RANDOM and outlier detection (it never looked in the ServiceEntry's
/// namespace), and `api` one connection (it ignored the workload selector).
const SCOPES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: default}
spec:
  hosts: [cart.shop.svc.cluster.local]
  http:
  - route:
    - destination: {host: cart.shop.svc.cluster.local, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart.shop.svc.cluster.local
  exportTo: ["."]
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay, namespace: payments}
spec:
  hosts: [pay.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.1.1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay, namespace: payments}
spec:
  host: pay.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-wide, namespace: istio-system}
spec:
  host: "*.example.com"
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    outlierDetection: {consecutive5xxErrors: 7}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-frontend, namespace: default}
spec:
  host: api
  workloadSelector:
    matchLabels: {app: frontend}
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.2.1}
"#;

/// The route table's cluster behind an Envoy cluster name `outbound|PORT|SUBSET|HOST`.
fn table_cluster(table: &RouteTable, name: &str) -> ClusterId {
    let parts: Vec<&str> = name.split('|').collect();
    let [_, port, subset, host] = parts[..] else {
        panic!("not a cluster name: {name}")
    };
    let key = ClusterKey {
        host,
        subset: (!subset.is_empty()).then_some(subset),
        port: port.parse().unwrap(),
    };
    table
        .find_cluster(key)
        .unwrap_or_else(|| panic!("the mesh knows no cluster {name}"))
}

#[test]
fn the_bootstrap_follows_the_mesh_where_the_old_destination_rule_lookup_did_not() {
    let loaded = mesh_model::load_str("scopes.yaml", SCOPES);
    assert!(!loaded.has_refusals(), "{:?}", loaded.diagnostics());
    // The analysis uses the mesh's lookup too: from `default`, `cart`'s rule is not exported,
    // so the route's subset is undefined there (the only error, an analysis finding).
    let errors: Vec<_> = loaded.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].is_analysis(), "{:?}", errors[0]);
    assert!(
        errors[0]
            .message()
            .contains("not exported to namespace \"default\""),
        "{}",
        errors[0]
    );
    let cfg = loaded.into_config();
    let client = ClientContext::new("default").with_label("app", "checkout");
    let boot = bootstrap(&cfg, &client, addrs()).unwrap();
    let value = &boot.value;
    let table = RouteTable::compile(&cfg, &client).unwrap();

    // Every cluster carries the policy the mesh runs for it.
    let clusters = value["static_resources"]["clusters"].as_array().unwrap();
    for c in clusters {
        let name = c["name"].as_str().unwrap();
        let policy = table.policy(table_cluster(&table, name));
        assert_eq!(
            c["lb_policy"],
            crate::route::lb_name(policy.load_balancer()),
            "{name}"
        );
        assert_eq!(
            c["circuit_breakers"]["thresholds"][0]["max_connections"],
            policy.pool_limits().max_connections(),
            "{name}"
        );
        assert_eq!(
            c.get("outlier_detection").is_some(),
            policy.outlier().is_some(),
            "{name}"
        );
    }

    // Every request goes to the cluster the mesh picks.
    let vhosts = value["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["route_config"]["virtual_hosts"]
        .as_array()
        .unwrap();
    let headers = http::HeaderMap::new();
    for (authority, want) in [
        (
            "cart.shop.svc.cluster.local:80",
            "outbound|80|v1|cart.shop.svc.cluster.local",
        ),
        ("pay.example.com:8443", "outbound|8443||pay.example.com"),
        ("api:8080", "outbound|8080||api.default.svc.cluster.local"),
    ] {
        let vh = vhosts
            .iter()
            .find(|v| v["domains"].as_array().unwrap().contains(&json!(authority)))
            .unwrap_or_else(|| panic!("no virtual host for {authority}"));
        assert_eq!(vh["routes"][0]["route"]["cluster"], want, "{authority}");
        let view = RequestView::new("GET", authority, "/", &headers);
        let decision = table.route(&view, 0);
        let mesh = match decision.action() {
            Action::Route(r) | Action::UnknownSubset(r) => r.cluster(),
            Action::Passthrough(p) => p.cluster().unwrap(),
            other => panic!("{authority}: {other:?}"),
        };
        assert_eq!(table.cluster_key(mesh).to_string(), want, "{authority}");
    }

    let names: Vec<&str> = clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let find = |name: &str| clusters.iter().find(|c| c["name"] == name);
    // exportTo: the DestinationRule in `shop` is not visible from `default`. Subset v1 is
    // undefined for this client: the mesh answers 503 NC, and Envoy finds no cluster (it
    // accepts a route to a missing cluster only without cluster validation, as istiod writes).
    assert_eq!(
        value["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["route_config"]["validate_clusters"],
        false
    );
    assert!(
        !names.contains(&"outbound|80|v1|cart.shop.svc.cluster.local"),
        "{names:?}"
    );
    assert!(boot
        .warnings
        .iter()
        .any(|w| w.contains("subset v1") && w.contains("503 (NC)")));
    let cart = find("outbound|80||cart.shop.svc.cluster.local").unwrap();
    assert_eq!(cart["lb_policy"], "LEAST_REQUEST");
    // Root namespace: the ServiceEntry's namespace comes before the root's wildcard rule.
    let pay = find("outbound|8443||pay.example.com").unwrap();
    assert_eq!(pay["lb_policy"], "ROUND_ROBIN");
    assert!(pay.get("outlier_detection").is_none());
    // Workload selector: the frontend-only rule does not apply to a checkout client.
    let api = find("outbound|8080||api.default.svc.cluster.local").unwrap();
    assert_eq!(
        api["circuit_breakers"]["thresholds"][0]["max_connections"],
        100
    );
    // ... and does to a frontend client.
    let frontend = ClientContext::new("default").with_label("app", "frontend");
    let boot = bootstrap(&cfg, &frontend, addrs()).unwrap().value;
    let api = cluster(&boot, "outbound|8080||api.default.svc.cluster.local");
    assert_eq!(
        api["circuit_breakers"]["thresholds"][0]["max_connections"],
        1
    );
}
