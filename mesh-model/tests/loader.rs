//! How several sources make one configuration: later definitions replace earlier ones (as
//! `kubectl apply` does), an empty result is a warning, a misspelled kind is not skipped in
//! silence, and diagnostics name what was written.

use mesh_model::{Loader, RouteAction, Severity, Strictness};

fn vs(name: &str, subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}]\n  http:\n  - route:\n    - destination: {{host: {name}, subset: {subset}}}\n"
    )
}

fn subsets_of(loaded: &mesh_model::Loaded) -> Vec<(String, String)> {
    loaded
        .config()
        .virtual_services()
        .iter()
        .map(|v| {
            let RouteAction::Route(d) = v.http()[0].action() else {
                unreachable!()
            };
            (
                v.meta().name().to_owned(),
                d[0].destination().subset().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_later_definition_replaces_the_earlier_one_in_place() {
    let mut loader = Loader::new().without_analysis();
    loader.add_str(
        "a.yaml",
        &format!("{}---\n{}", vs("reviews", "v1"), vs("ratings", "v1")),
    );
    loader.add_str("b.yaml", &vs("reviews", "v2"));
    let loaded = loader.finish();
    assert_eq!(
        subsets_of(&loaded),
        [
            ("reviews".into(), "v2".into()),
            ("ratings".into(), "v1".into())
        ],
        "the later reviews wins and keeps the earlier one's place (its precedence)"
    );
    let notes: Vec<_> = loaded
        .diagnostics()
        .iter()
        .filter(|d| d.severity() == Severity::Note)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].source(), "b.yaml");
    assert_eq!(notes[0].path(), "metadata.name");
    assert!(
        notes[0].message().contains("a.yaml document 0"),
        "{}",
        notes[0]
    );
    assert_eq!(
        loaded.config().virtual_services()[0].meta().source(),
        "b.yaml"
    );

    // Other namespaces and other kinds are other resources.
    let mut loader = Loader::new().without_analysis();
    loader.add_str("a.yaml", &vs("reviews", "v1"));
    loader.add_str(
        "b.yaml",
        &vs("reviews", "v2").replace("{name: reviews}", "{name: reviews, namespace: prod}"),
    );
    let loaded = loader.finish();
    assert_eq!(loaded.config().virtual_services().len(), 2);
    assert!(
        loaded.diagnostics().is_empty(),
        "{:?}",
        loaded.diagnostics()
    );
}

#[test]
fn an_invalid_later_definition_leaves_the_earlier_one() {
    let mut loader = Loader::new().without_analysis();
    loader.add_str("a.yaml", &vs("reviews", "v1"));
    loader.add_str("b.yaml", &vs("reviews", "Not_A_Label"));
    let loaded = loader.finish();
    assert!(loaded.has_errors());
    assert_eq!(subsets_of(&loaded), [("reviews".into(), "v1".into())]);
}

#[test]
fn an_empty_configuration_is_a_warning() {
    let loaded = Loader::new().finish();
    let w: Vec<_> = loaded.warnings().collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message().contains("configuration is empty"),
        "{}",
        w[0]
    );

    let mut loader = Loader::new();
    loader.add_str("empty.yaml", "# nothing here\n");
    loader.add_str(
        "gw.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n",
    );
    let loaded = loader.finish();
    let w: Vec<_> = loaded.warnings().collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message().contains("in 2 sources"), "{}", w[0]);

    let mut loader = Loader::new().without_analysis();
    loader.add_str("a.yaml", &vs("reviews", "v1"));
    assert!(loader.finish().diagnostics().is_empty());
}

#[test]
fn a_misspelled_kind_is_a_warning_or_a_strict_error() {
    let text = vs("reviews", "v1").replace("kind: VirtualService", "kind: VirtualServce");
    for (strictness, severity) in [
        (Strictness::Standard, Severity::Warning),
        (Strictness::Strict, Severity::Error),
    ] {
        let mut loader = Loader::new().strictness(strictness);
        loader.add_str("typo.yaml", &text);
        let loaded = loader.finish();
        let d: Vec<_> = loaded
            .diagnostics()
            .iter()
            .filter(|d| d.severity() >= Severity::Warning)
            .collect();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].severity(), severity);
        assert_eq!(d[0].path(), "kind");
        assert_eq!(d[0].line(), Some(2));
        assert!(
            d[0].message().contains("did you mean VirtualService?"),
            "{}",
            d[0]
        );
    }
    // Kinds of other API groups, and Istio kinds this library does not read, stay notes.
    for other in [
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n",
    ] {
        let mut loader = Loader::new()
            .strictness(Strictness::Strict)
            .without_analysis();
        loader.add_str("other.yaml", other);
        loader.add_str("a.yaml", &vs("reviews", "v1"));
        let loaded = loader.finish();
        assert!(
            loaded
                .diagnostics()
                .iter()
                .all(|d| d.severity() == Severity::Note),
            "{:?}",
            loaded.diagnostics()
        );
    }
}

#[test]
fn an_undefined_subset_after_a_zero_weight_names_the_entry_as_written() {
    let text = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 0
    - destination: {host: reviews, subset: v9}
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
";
    let loaded = mesh_model::load_str("zero.yaml", text);
    let e: Vec<_> = loaded.errors().collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path(), "spec.http[0].route[1].destination.subset");
    assert_eq!(e[0].line(), Some(10));
    assert!(e[0].message().contains("\"v9\""), "{}", e[0]);
}

#[test]
fn a_duration_without_a_unit_gets_one_message_quoted_or_not() {
    let msg = |timeout: &str| {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - timeout: {timeout}\n    route: [{{destination: {{host: r}}}}]\n"
        );
        let loaded = mesh_model::load_str("t.yaml", &text);
        let e: Vec<_> = loaded.errors().map(|d| d.message().to_owned()).collect();
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    };
    assert_eq!(msg("5"), msg("\"5\""));
    assert!(msg("5").contains("write `timeout: 5s`"), "{}", msg("5"));
    assert!(!msg("5").contains("quote"), "{}", msg("5"));
    assert_eq!(msg("1.5"), msg("'1.5'"));
}
