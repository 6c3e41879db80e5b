//! Hostile input: many diagnostics in one document keep exact lines; oversized lists and bodies
//! give one clear error each. (Speed is measured in `benches/load.rs`.)

use mesh_model::load_str;

#[test]
fn thousands_of_diagnostics_keep_their_lines() {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: r\n  trafficPolicy:\n    portLevelSettings:\n",
    );
    for _ in 0..4096 {
        s.push_str("    - port:\n        number: 0\n      loadBalancer:\n        simple: RANDOM\n");
    }
    let loaded = load_str("big.yaml", &s);
    let errors: Vec<_> = loaded.errors().collect();
    assert_eq!(errors.len(), 4096);
    for (i, d) in errors.iter().enumerate() {
        assert_eq!(
            d.path(),
            format!("spec.trafficPolicy.portLevelSettings[{i}].port.number")
        );
        assert_eq!(d.line(), Some(10 + 4 * i as u32), "{d}");
    }
}

#[test]
fn too_many_port_level_settings_is_one_error() {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: r\n  trafficPolicy:\n    portLevelSettings:\n    - &e {port: {number: 0}}\n",
    );
    for _ in 0..4096 {
        s.push_str("    - *e\n");
    }
    let loaded = load_str("s10.yaml", &s);
    let d: Vec<_> = loaded.diagnostics().iter().collect();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].path(), "spec.trafficPolicy.portLevelSettings");
    assert!(d[0].message().contains("4097"), "{}", d[0].message());
    assert!(
        d[0].message().contains("at most 4096"),
        "{}",
        d[0].message()
    );
}

#[test]
fn oversized_direct_response_body_is_one_error() {
    let body = "x".repeat((1 << 20) + 1);
    let s = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\nspec:\n  hosts: [r]\n  http:\n  - directResponse:\n      status: 200\n      body:\n        string: {body}\n"
    );
    let loaded = load_str("body.yaml", &s);
    let d: Vec<_> = loaded.diagnostics().iter().collect();
    assert_eq!(
        d.len(),
        1,
        "{:?}",
        d.iter().map(|d| d.path()).collect::<Vec<_>>()
    );
    assert_eq!(d[0].path(), "spec.http[0].directResponse.body");
    assert_eq!(d[0].line(), Some(10));
    assert!(d[0].message().contains("less than 1MB"));
}

#[test]
fn many_documents_are_each_reported_once() {
    let text = (0..500)
        .map(|i| format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r{i}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination:\n        host: a\n        subset: v{i}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let loaded = load_str("many.yaml", &text);
    // Each VS routes to an undefined subset; every VS but the first loses host `a`.
    let undefined = loaded
        .errors()
        .filter(|d| d.message().contains("is not defined"))
        .count();
    let duplicate = loaded
        .warnings()
        .filter(|d| d.message().contains("same host"))
        .count();
    assert_eq!((undefined, duplicate), (500, 499));
    let last = loaded
        .errors()
        .find(|d| d.resource().is_some_and(|r| r.name() == "r499"))
        .expect("finding for the last document");
    assert_eq!(last.document(), 499);
    assert_eq!(last.line(), Some(499 * 12 + 11));
}
