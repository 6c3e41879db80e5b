//! Delegation (istio-semantics §1.16) is applied at load time: the delegate's routes replace the
//! root route, with merged matches and inherited route-level fields.

use mesh_model::{load_str, Loaded, RouteAction, StringMatch};

fn root(routes: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: bookinfo, namespace: default}}\nspec:\n  hosts: [bookinfo.com]\n  http:\n{routes}"
    )
}

const PRODUCTPAGE: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: nsa}
spec:
  http:
  - name: v1
    match:
    - uri: {prefix: /productpage/v1/}
    route:
    - destination: {host: productpage-v1}
  - name: main
    route:
    - destination: {host: productpage}
    timeout: 3s
";

fn load(root_routes: &str, delegate: &str) -> Loaded {
    load_str("d.yaml", &format!("{}---{delegate}", root(root_routes)))
}

fn prefix(s: &str) -> Option<StringMatch> {
    Some(StringMatch::Prefix(s.to_owned()))
}

#[test]
fn delegate_routes_replace_the_root_route() {
    let loaded = load(
        "  - name: pp\n    match:\n    - uri: {prefix: /productpage}\n    delegate: {name: productpage, namespace: nsa}\n    timeout: 10s\n    retries: {attempts: 5}\n  - route:\n    - destination: {host: fallback}\n",
        PRODUCTPAGE,
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let vs = &loaded.config().virtual_services()[0];
    assert_eq!(vs.meta().name(), "bookinfo");
    let http = vs.http();
    assert_eq!(http.len(), 3, "two delegate routes, then the root's own");
    // Names become root-delegate.
    assert_eq!(http[0].name(), Some("pp-v1"));
    assert_eq!(http[1].name(), Some("pp-main"));
    // The delegate's narrower uri wins; the catch-all delegate route takes the root's match.
    assert_eq!(
        http[0].matches()[0].uri().cloned(),
        prefix("/productpage/v1/")
    );
    assert_eq!(http[1].matches()[0].uri().cloned(), prefix("/productpage"));
    // Inheritance: unset fields come from the root route, set ones stay the delegate's.
    assert_eq!(
        http[0].timeout().map(|d| d.as_std().as_millis()),
        Some(10_000)
    );
    assert_eq!(
        http[1].timeout().map(|d| d.as_std().as_millis()),
        Some(3_000)
    );
    assert_eq!(http[0].retries().attempts(), 5);
    // Short names in the delegate are services of the delegate's namespace.
    let RouteAction::Route(ds) = http[0].action() else {
        panic!("route expected")
    };
    assert_eq!(
        ds[0].destination().host(),
        "productpage-v1.nsa.svc.cluster.local"
    );
    // No delegate action survives loading.
    assert!(loaded
        .config()
        .virtual_services()
        .iter()
        .flat_map(|v| v.http())
        .all(|r| !matches!(r.action(), RouteAction::Delegate(_))));
}

#[test]
fn conflicting_delegate_route_is_dropped_with_a_warning() {
    // The delegate's /other prefix is not inside the root's /productpage.
    let delegate = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: default}
spec:
  http:
  - match:
    - uri: {prefix: /other}
    route:
    - destination: {host: other}
  - match:
    - uri: {exact: /productpage/x}
    route:
    - destination: {host: x}
";
    let loaded = load(
        "  - match:\n    - uri: {prefix: /productpage}\n    delegate: {name: productpage}\n",
        delegate,
    );
    let http = loaded.config().virtual_services()[0].http();
    assert_eq!(http.len(), 1);
    assert_eq!(
        http[0].matches()[0].uri().cloned(),
        Some(StringMatch::Exact("/productpage/x".into()))
    );
    let w: Vec<_> = loaded.warnings().collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].path(), "spec.http[0].delegate");
    assert!(w[0].message().contains("drops"), "{}", w[0].message());
}

#[test]
fn regex_on_either_side_conflicts() {
    let delegate = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: d}
spec:
  http:
  - match:
    - uri: {regex: /a/.*}
    route:
    - destination: {host: a}
";
    let loaded = load(
        "  - match:\n    - uri: {prefix: /a}\n    delegate: {name: d}\n",
        delegate,
    );
    assert!(loaded.config().virtual_services()[0].http().is_empty());
}

#[test]
fn headers_are_unioned_and_the_delegate_wins() {
    let delegate = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: d}
spec:
  http:
  - match:
    - headers:
        x-b: {exact: leaf}
    route:
    - destination: {host: a}
";
    let loaded = load(
        "  - match:\n    - headers:\n        x-a: {exact: root}\n      uri: {prefix: /}\n    delegate: {name: d}\n",
        delegate,
    );
    let http = loaded.config().virtual_services()[0].http();
    assert_eq!(http.len(), 1);
    let m = &http[0].matches()[0];
    let mut keys: Vec<&str> = m.headers().iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["x-a", "x-b"]);
    assert_eq!(m.uri().cloned(), prefix("/"));
}

#[test]
fn missing_or_unexported_delegate_skips_the_route() {
    let loaded = load_str(
        "d.yaml",
        &root("  - match:\n    - uri: {prefix: /p}\n    delegate: {name: nothere}\n  - route:\n    - destination: {host: rest}\n"),
    );
    let http = loaded.config().virtual_services()[0].http();
    assert_eq!(http.len(), 1, "only the root's own route remains");
    let w: Vec<_> = loaded.warnings().collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message().contains("not loaded or not exported"));

    let private = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: d, namespace: other}
spec:
  exportTo: [.]
  http:
  - route:
    - destination: {host: a}
";
    let loaded = load("  - delegate: {name: d, namespace: other}\n", private);
    assert!(loaded.config().virtual_services()[0].http().is_empty());
}

#[test]
fn merged_configuration_round_trips() {
    let loaded = load(
        "  - match:\n    - uri: {prefix: /productpage}\n    delegate: {name: productpage, namespace: nsa}\n",
        PRODUCTPAGE,
    );
    let a = loaded.config();
    let b = load_str("d.yaml", &a.to_yaml());
    assert!(!b.has_errors(), "{:?}", b.diagnostics());
    assert_eq!(
        a.virtual_services()[0].http(),
        b.config().virtual_services()[0].http()
    );
}

#[test]
fn a_root_left_without_routes_still_round_trips() {
    // Istio keeps the virtual service with no routes (requests for its host match nothing); the
    // skipped delegation is written back so that the written text loads to the same value.
    let text = root("  - match:\n    - uri: {prefix: /p}\n    delegate: {name: nothere}\n");
    let a = load_str("d.yaml", &text);
    assert!(!a.has_errors(), "{:?}", a.diagnostics());
    let vs = &a.config().virtual_services()[0];
    assert!(vs.http().is_empty());
    let written = a.config().to_yaml();
    assert!(written.contains("nothere"), "{written}");
    let b = load_str("d.yaml", &written);
    assert!(!b.has_errors(), "{:?}", b.diagnostics());
    assert_eq!(a.config(), b.config());
}

/// A root route with 1,100 match blocks delegating to a route with 1,100: merging pairs every
/// block of both (1.2 million blocks, each a copy of two). Refused with an error naming the limit
/// instead of building them.
#[test]
fn merging_that_would_pair_too_many_blocks_is_an_error() {
    let blocks = |prefix: &str| -> String {
        (0..1_100)
            .map(|i| format!("    - uri: {{prefix: {prefix}{i}}}\n"))
            .collect()
    };
    let root_routes = format!(
        "  - match:\n{}    delegate: {{name: productpage, namespace: nsa}}\n",
        blocks("/p")
    );
    let delegate = format!(
        "\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: productpage, namespace: nsa}}\nspec:\n  http:\n  - match:\n{}    route:\n    - destination: {{host: productpage}}\n",
        blocks("/p1")
    );
    let start = std::time::Instant::now();
    let loaded = load(&root_routes, &delegate);
    let e: Vec<_> = loaded.errors().collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path(), "spec.http[0].delegate");
    assert!(
        e[0].message()
            .contains(&mesh_model::MAX_DELEGATION_WORK.to_string()),
        "{}",
        e[0]
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    // The same routes with a few blocks merge as before.
    let small = load(
        "  - match:\n    - uri: {prefix: /p}\n    delegate: {name: productpage, namespace: nsa}\n",
        &delegate,
    );
    assert!(!small.has_errors(), "{:?}", small.diagnostics());
}
