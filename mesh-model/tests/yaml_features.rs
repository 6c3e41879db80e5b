//! YAML as `kubectl apply` reads it: merge keys (`<<`) are applied, a byte order mark is not
//! content.

use mesh_model::{load_str, RouteAction};

const MERGED: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /a}}]
    <<: &defaults
      timeout: 5s
      retries: {attempts: 4}
    route: [{destination: {host: reviews}}]
  - <<: *defaults
    timeout: 1s
    route: [{destination: {host: reviews}}]
";

#[test]
fn merge_keys_are_applied_not_dropped() {
    let loaded = load_str("merge.yaml", MERGED);
    assert!(
        loaded.diagnostics().is_empty(),
        "no unknown-field warning for `<<`: {:?}",
        loaded.diagnostics()
    );
    let vs = &loaded.config().virtual_services()[0];
    let r = vs.http();
    assert_eq!(r[0].timeout().map(|d| d.to_string()), Some("5s".into()));
    assert_eq!(r[0].retries().attempts(), 4);
    assert_eq!(
        r[1].timeout().map(|d| d.to_string()),
        Some("1s".into()),
        "the route's own key wins over the merged one"
    );
    assert_eq!(r[1].retries().attempts(), 4);
    assert!(matches!(r[1].action(), RouteAction::Route(_)));
}

#[test]
fn a_merge_key_of_the_wrong_shape_is_an_error() {
    let text = MERGED.replace("<<: *defaults", "<<: 5");
    let loaded = load_str("merge.yaml", &text);
    let e: Vec<_> = loaded.errors().collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message().contains("merge key"), "{}", e[0]);
}

#[test]
fn a_byte_order_mark_is_not_content() {
    let doc = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n  bad: 1\n";
    for text in [
        format!("\u{feff}{doc}"),
        format!("\u{feff}---\n{doc}"),
        format!("{doc}---\n\u{feff}{}", doc.replace("name: a", "name: b")),
    ] {
        let loaded = load_str("bom.yaml", &text);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        assert!(!loaded.config().virtual_services().is_empty());
        // Lines are counted as without the mark.
        let w = loaded.warnings().next().expect("unknown field");
        let first_doc_line = if text.starts_with("\u{feff}---") {
            9
        } else {
            8
        };
        assert_eq!(w.line(), Some(first_doc_line), "{w}");
    }
}
