//! Istio precedence and interaction rules (istio-semantics §1.2, §1.3, §1.6, §1.7, §3.1,
//! §3.7, §3.8, §5), each as a table-driven case through YAML.

mod common;

use common::{get, headers, table, target};
use mesh_routing::endpoints::EndpointChoice;
use mesh_routing::lb::LoadBalancer;
use mesh_routing::{Action, ClientContext, RequestView, RouteTable};

const FQDN: &str = "svc.cluster.local";

fn t(name: &str, ns: &str, subset: &str, port: u16) -> String {
    format!("{name}.{ns}.{FQDN}|{subset}|{port}")
}

#[test]
fn first_match_wins_and_catch_all_hides_later_routes() {
    // §5.1
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: default}
spec:
  hosts: [details]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: details, subset: v2}}]
  - route: [{destination: {host: details, subset: v1}}]
  - match: [{uri: {prefix: /never}}]
    route: [{destination: {host: details, subset: v3}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let jason = headers(&[("end-user", "jason")]);
    let none = headers(&[]);
    for (what, req, want) in [
        (
            "header route first",
            get("details", "/", &jason),
            t("details", "default", "v2", 80),
        ),
        (
            "fallback",
            get("details", "/", &none),
            t("details", "default", "v1", 80),
        ),
        (
            "later specific route is unreachable",
            get("details", "/never", &none),
            t("details", "default", "v1", 80),
        ),
    ] {
        assert_eq!(target(&table, &req, 0), want, "{what}");
    }
    assert!(
        table.notes().iter().any(|n| n
            .message
            .contains("http[2] dropped: unreachable after the catch-all route http[1]")),
        "{:?}",
        table.notes()
    );
}

#[test]
fn multiple_virtual_services_first_wins() {
    // §5.2: sidecars do not merge; the client's namespace first, then document order.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: first, namespace: other}
spec:
  hosts: [api.default.svc.cluster.local]
  http: [{route: [{destination: {host: api.default.svc.cluster.local, subset: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second, namespace: other}
spec:
  hosts: [api.default.svc.cluster.local]
  http: [{route: [{destination: {host: api.default.svc.cluster.local, subset: b}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: own, namespace: mine}
spec:
  hosts: [api.default.svc.cluster.local]
  http: [{route: [{destination: {host: api.default.svc.cluster.local, subset: c}}]}]
"#;
    let h = headers(&[]);
    let req = get("api.default.svc.cluster.local", "/", &h);
    let from_default = table(yaml, &ClientContext::new("default"));
    let d = from_default.route(&req, 0);
    assert_eq!(d.virtual_service().unwrap().to_string(), "other/first");
    assert!(from_default
        .notes()
        .iter()
        .any(|n| n.resource == "other/second"));
    let trace = from_default.explain(&req);
    assert!(
        trace
            .notes
            .iter()
            .any(|n| n.starts_with("other/second: host")),
        "{trace}"
    );
    let from_mine = table(yaml, &ClientContext::new("mine"));
    assert_eq!(
        from_mine
            .route(&req, 0)
            .virtual_service()
            .unwrap()
            .to_string(),
        "mine/own"
    );
}

#[test]
fn short_names_and_ports() {
    // §1.2 / §5.6: forms of the FQDN a Kubernetes client may use.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
"#;
    let same = table(yaml, &ClientContext::new("default"));
    let other = table(yaml, &ClientContext::new("other"));
    let h = headers(&[]);
    for (authority, same_ns, other_ns) in [
        ("reviews", true, false),
        ("reviews:9080", true, false),
        ("REVIEWS", true, false),
        ("reviews.default", true, true),
        ("reviews.default:9080", true, true),
        ("reviews.default.svc", true, true),
        ("reviews.default.svc.cluster.local", true, true),
        ("reviews.default.svc.cluster.local:9080", true, true),
        ("reviews.other", false, false),
    ] {
        let req = get(authority, "/", &h);
        let covered = |t: &mesh_routing::RouteTable| t.route(&req, 0).virtual_service().is_some();
        assert_eq!(
            covered(&same),
            same_ns,
            "{authority} from the same namespace"
        );
        assert_eq!(
            covered(&other),
            other_ns,
            "{authority} from another namespace"
        );
    }
    // The destination port defaults to the port the client called.
    let req = get("reviews:9080", "/", &h);
    assert_eq!(target(&same, &req, 0), t("reviews", "default", "", 9080));
}

#[test]
fn wildcard_hosts_by_specificity() {
    // §1.2: exact, then the longest suffix wildcard, then `*` (gateway only).
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broad, namespace: default}
spec:
  hosts: ["*.example.com"]
  http: [{route: [{destination: {host: broad.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: narrow, namespace: default}
spec:
  hosts: ["*.api.example.com"]
  http: [{route: [{destination: {host: narrow.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: exact, namespace: default}
spec:
  hosts: [v1.api.example.com]
  http: [{route: [{destination: {host: exact.example.com}}]}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    for (authority, vs) in [
        ("v1.api.example.com", Some("exact")),
        ("v2.api.example.com", Some("narrow")),
        ("a.b.api.example.com:443", Some("narrow")),
        ("api.example.com", Some("broad")),
        ("example.com", None),
    ] {
        let d = table.route(&get(authority, "/", &h), 0);
        assert_eq!(d.virtual_service().map(|v| v.name), vs, "{authority}");
    }
}

#[test]
fn selectors_drop_blocks_for_this_client() {
    // §1.3: sourceLabels, sourceNamespace and gateways are evaluated at compile time.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  gateways: [mesh, edge]
  http:
  - match: [{sourceLabels: {app: frontend}, uri: {prefix: /x}}]
    route: [{destination: {host: api, subset: fe}}]
  - match: [{sourceNamespace: tools, uri: {prefix: /x}}]
    route: [{destination: {host: api, subset: tools}}]
  - match: [{gateways: [edge], sourceLabels: {app: frontend}, uri: {prefix: /x}}]
    route: [{destination: {host: api, subset: gw}}]
  - route: [{destination: {host: api, subset: rest}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api
  subsets: [{name: fe, labels: {v: fe}}, {name: tools, labels: {v: t}}, {name: gw, labels: {v: g}}, {name: rest, labels: {v: r}}]
"#;
    let h = headers(&[]);
    let req = get("api.default", "/x", &h);
    let fqdn = |s: &str| t("api", "default", s, 80);
    for (what, client, want) in [
        (
            "frontend label",
            ClientContext::new("default")
                .with_label("app", "frontend")
                .with_label("x", "y"),
            fqdn("fe"),
        ),
        (
            "other label",
            ClientContext::new("default").with_label("app", "backend"),
            fqdn("rest"),
        ),
        (
            "tools namespace",
            ClientContext::new("tools"),
            fqdn("tools"),
        ),
        (
            "gateway edge ignores sourceLabels",
            ClientContext::new("default").with_gateway("default/edge"),
            fqdn("gw"),
        ),
    ] {
        let table = table(yaml, &client);
        assert_eq!(target(&table, &req, 0), want, "{what}");
    }
}

#[test]
fn vs_gateways_and_export_to() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw-only, namespace: default}
spec:
  hosts: [api]
  gateways: [ingress]
  http: [{route: [{destination: {host: api, subset: gw}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: default}
spec:
  hosts: [web]
  exportTo: ["."]
  http: [{route: [{destination: {host: web}}]}]
"#;
    let h = headers(&[]);
    let mesh = table(yaml, &ClientContext::new("default"));
    assert!(matches!(
        mesh.route(&get("api", "/", &h), 0).action(),
        Action::Passthrough(_)
    ));
    let gw = table(
        yaml,
        &ClientContext::new("default").with_gateway("default/ingress"),
    );
    assert_eq!(
        gw.route(&get("api", "/", &h), 0)
            .virtual_service()
            .unwrap()
            .name,
        "gw-only"
    );
    let other = table(yaml, &ClientContext::new("other"));
    assert!(other
        .route(&get("web.default", "/", &h), 0)
        .virtual_service()
        .is_none());
    assert!(mesh
        .route(&get("web.default", "/", &h), 0)
        .virtual_service()
        .is_some());
}

#[test]
fn undefined_subset_and_empty_subset() {
    // §5.4: undeclared subset ⇒ 503 NC; declared subset without endpoints ⇒ 503 UH.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pay, namespace: default}
spec:
  hosts: [pay.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pay, namespace: default}
spec:
  hosts: [pay.example.com]
  http:
  - match: [{uri: {prefix: /missing}}]
    route: [{destination: {host: pay.example.com, subset: nope}}]
  - match: [{uri: {prefix: /empty}}]
    route: [{destination: {host: pay.example.com, subset: v2}}]
  - route: [{destination: {host: pay.example.com, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay, namespace: default}
spec:
  host: pay.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    assert_eq!(
        target(&table, &get("pay.example.com", "/missing", &h), 0),
        "NC:pay.example.com|nope"
    );
    let pick = |path: &str| {
        let req = get("pay.example.com", path, &h);
        let d = table.route(&req, 0);
        let c = d.cluster().unwrap();
        let mut state = mesh_routing::lb::LbState::new();
        let eps = table.static_endpoints().select(&table.selector(c));
        let lb = table.policy(c).load_balancer();
        match eps.pick(
            &lb,
            &mut state,
            &[],
            &mesh_routing::lb::NoneEjected,
            0,
            None,
        ) {
            EndpointChoice::Endpoint { endpoint, .. } => endpoint.authority().to_string(),
            EndpointChoice::Resolve(a) => format!("resolve {a}"),
            EndpointChoice::NoHealthyUpstream => "UH".to_owned(),
        }
    };
    assert_eq!(pick("/empty"), "UH");
    assert_eq!(
        pick("/"),
        "10.0.0.1:8080",
        "single ServiceEntry port is the destination port"
    );
    // Round robin from the DestinationRule drives the pick.
    let d = table.route(&get("pay.example.com", "/", &h), 0);
    assert_eq!(d.policy().load_balancer(), LoadBalancer::RoundRobin);
}

#[test]
fn destination_rule_namespaces_and_hosts() {
    // §3.1 / §5.3: a DR applies by destination FQDN; client ns, then service ns, then root.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: in-bar, namespace: bar}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-ns, namespace: foo}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: client-ns-wild, namespace: client}
spec:
  host: "*.foo.svc.cluster.local"
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: root, namespace: istio-system}
spec:
  host: "*.svc.cluster.local"
  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: baz}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings}}]}]
"#;
    let h = headers(&[]);
    let policy_for = |client: &str, authority: &str| {
        let table = table(yaml, &ClientContext::new(client));
        let d = table.route(&get(authority, "/", &h), 0);
        (
            d.policy().load_balancer(),
            d.policy().source().map(str::to_owned),
        )
    };
    // From foo: service namespace foo holds an exact DR (the one in bar is for reviews.bar).
    assert_eq!(policy_for("foo", "reviews.foo").0, LoadBalancer::RoundRobin);
    // From client: its own namespace's wildcard DR wins over the service namespace's exact one.
    assert_eq!(
        policy_for("client", "reviews.foo").1.as_deref(),
        Some("client/client-ns-wild")
    );
    // From elsewhere, for a service without DR in its namespace: the root namespace.
    assert_eq!(policy_for("x", "ratings.baz").0, LoadBalancer::Passthrough);
    assert_eq!(
        policy_for("x", "ratings.baz").1.as_deref(),
        Some("istio-system/root")
    );
    // Passthrough to a known service (a DR host) uses its DR too.
    assert_eq!(policy_for("x", "reviews.foo").0, LoadBalancer::RoundRobin);
    assert_eq!(policy_for("bar", "reviews.bar").0, LoadBalancer::Random);
}

#[test]
fn exact_destination_rule_before_wildcard() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wild, namespace: default}
spec:
  host: "*.example.com"
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wilder, namespace: default}
spec:
  host: "*.api.example.com"
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: exact, namespace: default}
spec:
  host: a.api.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: [x.example.com]
  http:
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: a.api.example.com}}]
  - match: [{uri: {prefix: /b}}]
    route: [{destination: {host: b.api.example.com}}]
  - route: [{destination: {host: c.example.com}}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    for (path, source) in [
        ("/a", "default/exact"),
        ("/b", "default/wilder"),
        ("/c", "default/wild"),
    ] {
        let d = table.route(&get("x.example.com", path, &h), 0);
        assert_eq!(d.policy().source(), Some(source), "{path}");
    }
}

#[test]
fn policy_merge_is_block_wise() {
    // §3.7 / §3.8.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 100}}
    outlierDetection: {consecutive5xxErrors: 7}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool: {http: {http2MaxRequests: 9}}
  subsets:
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {http: {http2MaxRequests: 50}}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      portLevelSettings:
      - port: {number: 8080}
        outlierDetection: {consecutive5xxErrors: 2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  http:
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: api, subset: v2}}]
  - match: [{uri: {prefix: /v3}}]
    route: [{destination: {host: api, subset: v3}}]
  - route: [{destination: {host: api}}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    let policy =
        |authority: &str, path: &str| table.route(&get(authority, path, &h), 0).policy().clone();

    let top = policy("api", "/");
    assert_eq!(top.load_balancer(), LoadBalancer::RoundRobin);
    assert_eq!(top.connection_pool().unwrap().max_connections(), 100);
    assert_eq!(top.outlier_detection().unwrap().consecutive_5xx_errors(), 7);

    // Port level replaces the whole top-level policy: no LB, no outlier detection left.
    let port = policy("api:9090", "/");
    assert_eq!(port.load_balancer(), LoadBalancer::LeastRequest);
    assert_eq!(port.connection_pool().unwrap().http2_max_requests(), 9);
    assert_eq!(port.connection_pool().unwrap().max_connections(), u32::MAX);
    assert!(port.outlier_detection().is_none());

    // A subset's block replaces the same block, wholesale; other blocks stay.
    let v2 = policy("api", "/v2");
    assert_eq!(v2.connection_pool().unwrap().http2_max_requests(), 50);
    assert_eq!(v2.connection_pool().unwrap().max_connections(), u32::MAX);
    assert_eq!(v2.load_balancer(), LoadBalancer::RoundRobin);
    assert_eq!(v2.outlier_detection().unwrap().consecutive_5xx_errors(), 7);

    // A subset port-level entry replaces all four blocks, even unset ones.
    let v3_8080 = policy("api:8080", "/v3");
    assert_eq!(
        v3_8080
            .outlier_detection()
            .unwrap()
            .consecutive_5xx_errors(),
        2
    );
    assert_eq!(v3_8080.load_balancer(), LoadBalancer::LeastRequest);
    assert!(v3_8080.connection_pool().is_none());
    let v3 = policy("api", "/v3");
    assert_eq!(v3.load_balancer(), LoadBalancer::Random);
    assert_eq!(v3.connection_pool().unwrap().max_connections(), 100);
}

#[test]
fn passthrough_and_no_route() {
    // §5.7
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: only-api, namespace: default}
spec:
  hosts: [api]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: api}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[("x-user", "u1")]);
    let nr = table.route(&get("api", "/other", &h), 0);
    assert!(matches!(nr.action(), Action::NoRoute));
    assert_eq!(nr.virtual_service().unwrap().name, "only-api");

    let req = get("web:8000", "/", &h);
    let pt = table.route(&req, 0);
    let Action::Passthrough(p) = pt.action() else {
        panic!("{pt}")
    };
    assert_eq!(p.host(), Some("web.default.svc.cluster.local"));
    assert_eq!(table.cluster_key(p.cluster().unwrap()).port, 8000);
    assert!(pt.timeout().is_none());
    assert_eq!(pt.retry_policy().num_retries(), 2);
    assert!(pt.retry_is_istio_default());
    assert!(matches!(
        pt.policy().load_balancer(),
        LoadBalancer::RingHash { .. }
    ));
    assert!(pt.hash_key(&req).is_some());

    let unknown = table.route(&get("example.org", "/", &h), 0);
    let Action::Passthrough(p) = unknown.action() else {
        panic!()
    };
    assert_eq!(p.host(), None);
    assert!(p.cluster().is_none());
}

#[test]
fn weights_and_single_destination() {
    // §1.6: a lone destination takes everything; zero weights are dropped; roll % total.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  http:
  - match: [{uri: {prefix: /lone}}]
    route: [{destination: {host: api, subset: v1}, weight: 10}]
  - route:
    - {destination: {host: api, subset: v1}, weight: 90}
    - {destination: {host: api, subset: v2}, weight: 10}
    - {destination: {host: api, subset: v3}, weight: 0}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api
  subsets: [{name: v1, labels: {v: "1"}}, {name: v2, labels: {v: "2"}}, {name: v3, labels: {v: "3"}}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    for roll in [0, 9, 10, 99, 12345] {
        assert_eq!(
            target(&table, &get("api", "/lone", &h), roll),
            t("api", "default", "v1", 80)
        );
    }
    for (roll, subset) in [
        (0, "v1"),
        (89, "v1"),
        (90, "v2"),
        (99, "v2"),
        (100, "v1"),
        (190, "v2"),
    ] {
        assert_eq!(
            target(&table, &get("api", "/", &h), roll),
            t("api", "default", subset, 80),
            "roll {roll}"
        );
    }
    let d = table.route(&get("api", "/", &h), 0);
    let Action::Route(r) = d.action() else {
        panic!()
    };
    assert_eq!(r.destination_count(), 2, "weight 0 dropped");
}

#[test]
fn header_operations_order_and_authority() {
    // §1.7
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  http:
  - match: [{uri: {prefix: /single}}]
    headers: {request: {set: {x-route: r}}}
    route:
    - destination: {host: api}
      headers: {request: {set: {x-dest: d, host: dest-host}}}
  - rewrite: {authority: route-host}
    headers: {request: {set: {x-route: r}}}
    route:
    - destination: {host: api, subset: a}
      weight: 50
      headers: {request: {set: {host: weighted-host}}}
    - {destination: {host: api, subset: b}, weight: 50}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api
  subsets: [{name: a, labels: {v: a}}, {name: b, labels: {v: b}}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    let names = |path: &str, roll: u64| {
        let d = table.route(&get("api", path, &h), roll);
        let order: Vec<String> = d
            .header_operations()
            .flat_map(|ops| ops.request().set().iter().map(|(k, _)| k.to_string()))
            .collect();
        (
            order,
            d.authority_rewrite()
                .map(|a| a.to_str().unwrap().to_owned()),
        )
    };
    // Single destination: route level, then destination level; route authority absent, so
    // the destination's host applies.
    assert_eq!(
        names("/single", 0),
        (
            vec!["x-route".to_owned(), "x-dest".to_owned()],
            Some("dest-host".to_owned())
        )
    );
    // Weighted: destination level (on the cluster weight) first, then route level; the
    // destination's host wins for its cluster, the route's rewrite for the other.
    assert_eq!(
        names("/", 0),
        (vec!["x-route".to_owned()], Some("weighted-host".to_owned()))
    );
    assert_eq!(
        names("/", 50),
        (vec!["x-route".to_owned()], Some("route-host".to_owned()))
    );
}

#[test]
fn redirect_and_direct_response() {
    // §1.9, §1.10
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {exact: /v1/getProductRatings}}]
    redirect: {uri: /v1/bookRatings, authority: newratings.default.svc.cluster.local}
  - match: [{uri: {prefix: /foo/}}]
    redirect: {authority: foo.example.com, prefixRewrite: /, redirectCode: 308}
  - match: [{uri: {prefix: /https}}]
    redirect: {scheme: https, port: 443}
  - directResponse: {status: 503, body: {string: unknown error}}
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    let loc = |path: &str| {
        let req = get("ratings:9080", path, &h);
        let d = table.route(&req, 0);
        (d.redirect_code(), d.redirect_location(&req))
    };
    assert_eq!(
        loc("/v1/getProductRatings?x=1"),
        (
            Some(301),
            Some("http://newratings.default.svc.cluster.local:9080/v1/bookRatings?x=1".to_owned())
        )
    );
    assert_eq!(
        loc("/foo/bar"),
        (
            Some(308),
            Some("http://foo.example.com:9080/bar".to_owned())
        )
    );
    assert_eq!(
        loc("/https/x"),
        (Some(301), Some("https://ratings/https/x".to_owned()))
    );
    let d = table.route(&get("ratings", "/else", &h), 0);
    let Action::DirectResponse(dr) = d.action() else {
        panic!("{d}")
    };
    assert_eq!(dr.status(), 503);
    assert_eq!(dr.body().map(|b| &b[..]), Some(&b"unknown error"[..]));
}

#[test]
fn seed_canary_config() {
    // The seed's canary: 90/10 v1/v2, then a sourceLabels route that is unreachable after the
    // match-less first route (Istio stops at the first catch-all).
    let table = table(
        SEED,
        &ClientContext::new("default").with_label("app", "frontend"),
    );
    let h = headers(&[]);
    let req = RequestView::new("GET", "api:8080", "/orders", &h);
    let d = table.route(&req, 5);
    assert_eq!(d.to_string(), "default/api-vs-canary http[0]: route to outbound|8080|v1|api.default.svc.cluster.local (destination 1 of 2, weight 90/100)");
    assert_eq!(
        d.retry_policy().num_retries(),
        2,
        "Istio's default retries on the first route"
    );
    assert!(d.timeout().is_none());
    assert!(table
        .notes()
        .iter()
        .any(|n| n.message.contains("http[1] dropped")));
    let text = table.explain(&req).to_string();
    assert!(text.contains("90.0%") && text.contains("10.0%"), "{text}");
    // The DR's subset policy: v2 gets ROUND_ROBIN and its own pool, keeps outlier detection.
    let v2 = table.route(&req, 95);
    assert_eq!(v2.policy().load_balancer(), LoadBalancer::RoundRobin);
    assert_eq!(
        v2.policy()
            .outlier_detection()
            .unwrap()
            .max_ejection_percent(),
        50
    );
}

/// The seed's canary config (with `retries`, which the seed misspells `retry`).
pub const SEED: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: api-vs-canary}
spec:
  hosts: [api]
  http:
  - route:
    - destination: {host: api, subset: v1}
      weight: 90
    - destination: {host: api, subset: v2}
      weight: 10
  - match:
    - sourceLabels: {app: frontend}
    route:
    - destination: {host: api, subset: v2}
    retries: {attempts: 3, perTryTimeout: 2s}
    timeout: 5s
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: api-dr}
spec:
  host: api
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {http: {idleTimeout: 10s}}
      loadBalancer: {simple: ROUND_ROBIN}
      tls: {mode: ISTIO_MUTUAL}
"#;

mod wildcard_specificity {
    use mesh_routing::host::HostIndex;
    use proptest::prelude::*;

    proptest! {
        /// For any host and any set of suffix wildcards of it, the longest wildcard wins; an
        /// exact entry beats every wildcard; case and port do not matter.
        #[test]
        fn longest_suffix_wins(
            labels in proptest::collection::vec("[a-z]{1,6}", 2..6),
            picks in proptest::collection::vec(any::<bool>(), 6),
            exact in any::<bool>(),
            port in proptest::option::of(1u16..),
        ) {
            let host = labels.join(".");
            let mut index = HostIndex::new();
            let mut best: Option<usize> = None;
            // Wildcard `*.<labels[i..]>` for each chosen i ≥ 1 (shorter i = longer suffix).
            for i in 1..labels.len() {
                if picks[i] {
                    index.insert(&format!("*.{}", labels[i..].join(".")), i);
                    best = Some(best.map_or(i, |b: usize| b.min(i)));
                }
            }
            index.insert("*", 100);
            if exact {
                index.insert(&host, 0);
            }
            let authority = match port {
                Some(p) => format!("{}:{p}", host.to_ascii_uppercase()),
                None => host.to_ascii_uppercase(),
            };
            let want = if exact { 0 } else { best.unwrap_or(100) };
            prop_assert_eq!(index.lookup(&authority), Some(&want));
        }
    }
}

#[test]
fn route_policies_are_carried() {
    // §1.8, §1.11–§1.14: rewrite, timeout, retries, fault, mirrors travel with the decision.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - match: [{uri: {prefix: /nc}}]
    route: [{destination: {host: httpbin, subset: nope}}]
    mirror: {host: httpbin, subset: v2}
  - rewrite: {uri: /v1}
    timeout: 3s
    retries: {attempts: 0}
    fault: {abort: {httpStatus: 555, percentage: {value: 100}}}
    route: [{destination: {host: httpbin, subset: v1}, weight: 100}]
    mirror: {host: httpbin, subset: v2}
    mirrorPercentage: {value: 25.0}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;
    let table = table(yaml, &ClientContext::new("default"));
    let h = headers(&[]);
    let d = table.route(&get("httpbin:8000", "/status", &h), 0);
    assert_eq!(d.rewrite().and_then(|r| r.uri()), Some("/v1"));
    assert_eq!(d.timeout(), Some(std::time::Duration::from_secs(3)));
    assert_eq!(
        d.retry_policy().num_retries(),
        0,
        "attempts: 0 disables retries"
    );
    assert!(d.fault().and_then(|f| f.abort()).is_some());
    let mirrors: Vec<_> = d.mirrors().collect();
    assert_eq!(mirrors.len(), 1);
    assert_eq!(mirrors[0].destination.subset(), Some("v2"));
    assert_eq!(mirrors[0].policy.percentage().per_million(), 250_000);
    assert_eq!(table.cluster_key(mirrors[0].cluster).port, 8000);
    // No mirroring when the primary cluster does not exist.
    let nc = table.route(&get("httpbin:8000", "/nc", &h), 0);
    assert!(matches!(nc.action(), Action::UnknownSubset(_)));
    assert_eq!(nc.mirrors().count(), 0);
    assert!(nc.to_string().contains("503 NC"), "{nc}");
}

mod weighted_routes {
    use super::common::{get, headers, table};
    use mesh_routing::{Action, ClientContext};
    use proptest::prelude::*;

    proptest! {
        // Each case compiles YAML; 64 cases keep the debug run short.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the weights (zeros included, at least one positive), the chosen
        /// destination of a compiled route has weight > 0, and `roll % total` picks it.
        #[test]
        fn chosen_destination_has_positive_weight(
            weights in proptest::collection::vec(0u32..50, 2..5),
            roll in any::<u64>(),
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let mut yaml = String::from("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: w, namespace: default}\nspec:\n  hosts: [w]\n  http:\n  - route:\n");
            for (i, w) in weights.iter().enumerate() {
                yaml.push_str(&format!("    - {{destination: {{host: w{i}}}, weight: {w}}}\n"));
            }
            let table = table(&yaml, &ClientContext::new("default"));
            let h = headers(&[]);
            let d = table.route(&get("w", "/", &h), roll);
            let Action::Route(r) = d.action() else { panic!("{d}") };
            prop_assert!(r.destination().weight() > 0);
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let mut x = roll % total;
            let expected = weights.iter().position(|&w| {
                if x < u64::from(w) { true } else { x -= u64::from(w); false }
            }).unwrap();
            prop_assert_eq!(r.destination().host(), format!("w{expected}.default.svc.cluster.local"));
        }
    }
}

#[test]
fn delegation_merged_by_the_loader_routes_as_istio() {
    // §1.16, merged by mesh-model's loader: a delegate route is kept only if every one of its
    // blocks fits a root block; unset route fields are inherited; short names resolve in the
    // delegate's namespace; a missing delegate skips the root route.
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [bookinfo.com]
  http:
  - name: pp
    match: [{uri: {prefix: /productpage}}]
    timeout: 5s
    delegate: {name: productpage, namespace: nsa}
  - match: [{uri: {prefix: /reviews}}]
    delegate: {name: reviews, namespace: nsb}
  - match: [{uri: {prefix: /gone}}]
    delegate: {name: missing}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: nsa}
spec:
  http:
  - name: v1
    match: [{uri: {prefix: /productpage/v1/}}]
    route: [{destination: {host: productpage-v1}}]
  - name: mixed
    match: [{uri: {prefix: /productpage/v2/}}, {uri: {prefix: /elsewhere}}]
    route: [{destination: {host: productpage-v2}}]
  - route: [{destination: {host: productpage}}]
    timeout: 1s
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: nsb}
spec:
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: nsb}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;
    let loaded = mesh_model::load_str("delegation.yaml", yaml);
    let table = RouteTable::compile(loaded.config(), &ClientContext::new("default")).unwrap();
    let none = headers(&[]);
    let jason = headers(&[("end-user", "jason")]);
    for (what, req, want) in [
        (
            "delegate block within the root prefix",
            get("bookinfo.com", "/productpage/v1/x", &none),
            t("productpage-v1", "nsa", "", 80),
        ),
        (
            "a route with a conflicting block is dropped whole",
            get("bookinfo.com", "/productpage/v2/x", &none),
            t("productpage", "nsa", "", 80),
        ),
        (
            "the conflicting block matches nothing",
            get("bookinfo.com", "/elsewhere", &none),
            "NR".to_owned(),
        ),
        (
            "delegate fallback inherits the root's match",
            get("bookinfo.com", "/productpage", &none),
            t("productpage", "nsa", "", 80),
        ),
        (
            "header block merged with the root prefix",
            get("bookinfo.com", "/reviews/1", &jason),
            t("reviews", "nsb", "v2", 80),
        ),
        (
            "header block needs the root prefix too",
            get("bookinfo.com", "/x", &jason),
            "NR".to_owned(),
        ),
        (
            "second delegate fallback",
            get("bookinfo.com", "/reviews/1", &none),
            t("reviews", "nsb", "v1", 80),
        ),
        (
            "missing delegate: the root route is skipped",
            get("bookinfo.com", "/gone", &none),
            "NR".to_owned(),
        ),
    ] {
        assert_eq!(target(&table, &req, 0), want, "{what}");
    }
    let d = table.route(&get("bookinfo.com", "/productpage/v1/x", &none), 0);
    assert_eq!(
        d.timeout().map(|t| t.as_secs()),
        Some(5),
        "inherited from the root"
    );
    let d = table.route(&get("bookinfo.com", "/productpage", &none), 0);
    assert_eq!(
        d.timeout().map(|t| t.as_secs()),
        Some(1),
        "the delegate's own wins"
    );
}
