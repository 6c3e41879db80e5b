//! Remarks: diagnostics this library adds on top of Istio's verdict. Istio accepts these
//! resources; the library says which parts it validates but does not act on. Every remark is a
//! warning whose message contains "by this library", and none of them keeps the resource out.

use mesh_model::{load_str, Loaded, Severity};

fn remarks(loaded: &Loaded) -> Vec<(String, String)> {
    loaded
        .diagnostics()
        .iter()
        .filter(|d| d.message().contains("by this library"))
        .map(|d| {
            assert_eq!(d.severity(), Severity::Warning, "{d}");
            (d.path().to_owned(), d.message().to_owned())
        })
        .collect()
}

fn dr(policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\nspec:\n  host: reviews\n  trafficPolicy:\n{policy}"
    )
}

#[test]
fn every_tls_mode_is_applied_so_none_is_remarked() {
    for mode in ["DISABLE", "SIMPLE", "ISTIO_MUTUAL"] {
        let loaded = load_str("dr.yaml", &dr(&format!("    tls:\n      mode: {mode}\n")));
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        assert!(
            remarks(&loaded).is_empty(),
            "{mode}: {:?}",
            loaded.diagnostics()
        );
        assert_eq!(loaded.config().destination_rules().len(), 1);
    }
}

#[test]
fn tls_credential_name_and_crl_are_remarked() {
    let loaded = load_str(
        "dr.yaml",
        &dr("    tls:\n      mode: SIMPLE\n      credentialName: my-secret\n"),
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let r = remarks(&loaded);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, "spec.trafficPolicy.tls.credentialName");
    let loaded = load_str(
        "dr.yaml",
        &dr("    tls:\n      mode: SIMPLE\n      caCertificates: /ca.pem\n      caCrl: /crl.pem\n"),
    );
    let r = remarks(&loaded);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, "spec.trafficPolicy.tls.caCrl");
}

#[test]
fn locality_setting_is_remarked() {
    let loaded = load_str(
        "dr.yaml",
        &dr("    loadBalancer:\n      localityLbSetting:\n        enabled: true\n"),
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let r = remarks(&loaded);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, "spec.trafficPolicy.loadBalancer.localityLbSetting");
    assert!(r[0].1.contains("locality"), "{}", r[0].1);
}

#[test]
fn warmup_is_remarked() {
    let loaded = load_str(
        "dr.yaml",
        &dr("    loadBalancer:\n      simple: ROUND_ROBIN\n      warmup:\n        duration: 60s\n"),
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let r = remarks(&loaded);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, "spec.trafficPolicy.loadBalancer.warmup");
}

const TCP_VS: &str = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mongo}
spec:
  hosts: [mongo]
  tcp:
  - match:
    - port: 27017
    route:
    - destination: {host: mongo, port: {number: 5555}}
";

#[test]
fn tcp_routes_are_remarked_and_kept() {
    let loaded = load_str("vs.yaml", TCP_VS);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let r = remarks(&loaded);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, "spec.tcp");
    let vs = &loaded.config().virtual_services()[0];
    assert_eq!(vs.non_http_routes(), 1);
    assert!(vs.http().is_empty());
}

#[test]
fn gateway_only_virtual_service_is_remarked() {
    let loaded = load_str(
        "vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [web.example.com]\n  gateways: [istio-system/public]\n  http:\n  - route:\n    - destination: {host: web}\n",
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let r = remarks(&loaded);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, "spec.gateways");
    assert!(
        r[0].1
            .contains("does not apply to sidecars, so not to this library"),
        "{}",
        r[0].1
    );
    assert!(!loaded.config().virtual_services()[0].applies_to_mesh());
}

#[test]
fn mesh_in_gateways_is_not_remarked() {
    let loaded = load_str(
        "vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [web.example.com]\n  gateways: [istio-system/public, mesh]\n  http:\n  - route:\n    - destination: {host: web}\n",
    );
    assert!(remarks(&loaded).is_empty(), "{:?}", loaded.diagnostics());
}

#[test]
fn envoy_variable_substitution_is_remarked() {
    let loaded = load_str(
        "vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - headers:\n      request:\n        set:\n          x-start: \"%START_TIME%\"\n          x-literal: \"100%%\"\n    route:\n    - destination: {host: r}\n",
    );
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let r = remarks(&loaded);
    assert_eq!(r.len(), 1, "only the %VAR% value is remarked: {r:?}");
    assert_eq!(r[0].0, "spec.http[0].headers.request.set.x-start");
}

#[test]
fn remarks_become_no_errors_in_strict_mode() {
    let mut loader = mesh_model::Loader::new().strictness(mesh_model::Strictness::Strict);
    loader.add_str("vs.yaml", TCP_VS);
    let loaded = loader.finish();
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    assert_eq!(remarks(&loaded).len(), 1);
}

#[test]
fn dynamic_dns_is_an_error_not_a_remark() {
    let loaded = load_str(
        "se.yaml",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: e}\nspec:\n  hosts: ['*.example.com']\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n  resolution: DYNAMIC_DNS\n",
    );
    let errors: Vec<_> = loaded.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path(), "spec.resolution");
    assert!(remarks(&loaded).is_empty());
    assert!(loaded.config().service_entries().is_empty());
}

#[test]
fn a_rewrite_uri_without_a_leading_slash_loads_with_a_warning_as_istiod_accepts_it() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - match: [{uri: {prefix: /a}}]
    rewrite: {uri: b}
    route: [{destination: {host: r}}]
";
    let loaded = mesh_model::load_str("rw.yaml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let w: Vec<_> = loaded.warnings().collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].path(), "spec.http[0].rewrite.uri");
    assert!(
        w[0].message().contains("write \"/b\""),
        "{}",
        w[0].message()
    );
}

#[test]
fn a_null_match_block_is_a_catch_all_block_with_a_warning_as_istiod_translates_it() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - match: [{uri: {prefix: /a}}, null]
    route: [{destination: {host: r}}]
";
    let loaded = mesh_model::load_str("null.yaml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    let w: Vec<_> = loaded.warnings().collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].path(), "spec.http[0].match[1]");
    let config = loaded.into_config();
    let matches = config.virtual_services()[0].http()[0].matches();
    assert_eq!(matches.len(), 2);
    assert!(matches[0].uri().is_some());
    assert!(
        matches[1].uri().is_none(),
        "the null block matches every path"
    );
}
