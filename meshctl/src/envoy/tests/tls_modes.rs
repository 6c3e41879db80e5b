//! The DestinationRule's `tls` block as each cluster's upstream TLS transport socket: every
//! mode, the SNI, ALPN, files and server-name checks, and what is left out with a warning.

use std::path::PathBuf;

use mesh_model::MeshConfig;
use mesh_routing::ClientContext;
use serde_json::{json, Value};

use super::{addrs, cluster};
use crate::envoy::tls::TlsOptions;
use crate::envoy::{bootstrap_with, Bootstrap, BudgetMode};

const V1: &str = "outbound|8080|v1|api.default.svc.cluster.local";
const V2: &str = "outbound|8080|v2|api.default.svc.cluster.local";
const DEFAULT: &str = "outbound|8080||api.default.svc.cluster.local";
const API_IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/api";

/// A ServiceEntry for `api` (with `subjectAltNames` when `sans` is given), a VirtualService
/// splitting it between subsets v1 and v2 (so both clusters are written), and `dr`, the
/// DestinationRule's `spec` below its `host`.
fn config(dr: &str, sans: Option<&str>) -> MeshConfig {
    let sans = sans.map_or(String::new(), |s| format!("  subjectAltNames: [{s}]\n"));
    let se = format!(
        "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api}}
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
{sans}  ports:
  - {{number: 8080, name: http, protocol: HTTP}}
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: 9001}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: 9002}}, labels: {{version: v2}}}}
"
    );
    let dr = format!(
        "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api}}
spec:
  host: api.default.svc.cluster.local
{dr}"
    );
    let mut l = mesh_model::Loader::new();
    l.add_str("se.yaml", &se);
    l.add_str("vs.yaml", VS);
    l.add_str("dr.yaml", &dr);
    let loaded = l.finish();
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    loaded.into_config()
}

const VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.default.svc.cluster.local]
  http:
  - route:
    - {destination: {host: api.default.svc.cluster.local, subset: v1}, weight: 50}
    - {destination: {host: api.default.svc.cluster.local, subset: v2}, weight: 50}
";

const SUBSETS: &str =
    "  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

fn certs() -> TlsOptions {
    TlsOptions {
        workload_certificates: Some(PathBuf::from("/var/lib/istio/data")),
        ..TlsOptions::default()
    }
}

fn translate(cfg: &MeshConfig, opts: &TlsOptions) -> Result<Bootstrap, String> {
    bootstrap_with(
        cfg,
        &ClientContext::new("default"),
        addrs(),
        BudgetMode::Istio,
        opts,
    )
}

/// The bootstrap, read back from its YAML as Envoy reads it.
fn generate(cfg: &MeshConfig, opts: &TlsOptions) -> (Value, Vec<String>) {
    let boot = translate(cfg, opts).unwrap();
    let yaml = serde_yaml::to_string(&boot.value).unwrap();
    (serde_yaml::from_str(&yaml).unwrap(), boot.warnings)
}

/// The cluster's `UpstreamTlsContext`, checking the socket around it.
fn tls_context<'a>(boot: &'a Value, name: &str) -> &'a Value {
    let socket = &cluster(boot, name)["transport_socket"];
    assert_eq!(socket["name"], "envoy.transport_sockets.tls", "{name}");
    let ctx = &socket["typed_config"];
    assert_eq!(
        ctx["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    assert_eq!(
        ctx["common_tls_context"]["tls_params"],
        json!({"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"})
    );
    ctx
}

fn upstream_options<'a>(boot: &'a Value, name: &str) -> &'a Value {
    &cluster(boot, name)["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["upstream_http_protocol_options"]
}

fn plaintext(boot: &Value, name: &str) -> bool {
    cluster(boot, name).get("transport_socket").is_none()
}

/// The typed exact matchers a name becomes, written out: one per kind of subject alternative
/// name Envoy knows (`DNS`, `URI`, `EMAIL`, `IP_ADDRESS`), in that order, name by name.
fn exact(names: &[&str]) -> Value {
    let mut out = Vec::new();
    for n in names {
        out.push(json!({"san_type": "DNS", "matcher": {"exact": n}}));
        out.push(json!({"san_type": "URI", "matcher": {"exact": n}}));
        out.push(json!({"san_type": "EMAIL", "matcher": {"exact": n}}));
        out.push(json!({"san_type": "IP_ADDRESS", "matcher": {"exact": n}}));
    }
    Value::Array(out)
}

#[test]
fn istio_mutual_uses_the_workload_certificates_and_istio_sni_and_alpn() {
    let cfg = config(
        &format!("  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}\n{SUBSETS}"),
        None,
    );
    let (boot, warnings) = generate(&cfg, &certs());
    assert!(warnings.is_empty(), "{warnings:?}");
    for (name, subset) in [(V1, "v1"), (V2, "v2"), (DEFAULT, "")] {
        let ctx = tls_context(&boot, name);
        assert_eq!(
            ctx["sni"],
            format!("outbound_.8080_.{subset}_.api.default.svc.cluster.local"),
            "{name}"
        );
        let common = &ctx["common_tls_context"];
        assert_eq!(
            common["alpn_protocols"],
            json!(["istio-http/1.1", "istio", "http/1.1"])
        );
        assert_eq!(
            common["tls_certificates"],
            json!([{
                "certificate_chain": {"filename": "/var/lib/istio/data/cert-chain.pem"},
                "private_key": {"filename": "/var/lib/istio/data/key.pem"},
            }])
        );
        // No identity to expect: a SPIFFE ID of the trust domain, as MeshClient checks.
        assert_eq!(
            common["validation_context"],
            json!({
                "trusted_ca": {"filename": "/var/lib/istio/data/root-cert.pem"},
                "match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}
                ],
            })
        );
        // A fixed SNI: Envoy's auto_sni is not used.
        assert!(upstream_options(&boot, name).is_null());
    }
}

#[test]
fn istio_mutual_checks_the_identities_the_mesh_would() {
    // The ServiceEntry's identities, when the rule names none.
    let cfg = config(
        &format!("  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}\n{SUBSETS}"),
        Some(API_IDENTITY),
    );
    let (boot, _) = generate(&cfg, &certs());
    let v = &tls_context(&boot, V1)["common_tls_context"]["validation_context"];
    assert_eq!(v["match_typed_subject_alt_names"], exact(&[API_IDENTITY]));
    // The rule's own subjectAltNames and sni replace them.
    let cfg = config(
        &format!(
            "  trafficPolicy:\n    tls: {{mode: ISTIO_MUTUAL, sni: api.mesh.internal, subjectAltNames: [spiffe://td/a, spiffe://td/b]}}\n{SUBSETS}"
        ),
        Some(API_IDENTITY),
    );
    let (boot, _) = generate(&cfg, &certs());
    let ctx = tls_context(&boot, V2);
    assert_eq!(ctx["sni"], "api.mesh.internal");
    assert_eq!(
        ctx["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"],
        exact(&["spiffe://td/a", "spiffe://td/b"])
    );
}

#[test]
fn istio_mutual_trust_domain_options_and_insecure_skip_verify() {
    let cfg = config(
        &format!("  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}\n{SUBSETS}"),
        None,
    );
    let other = TlsOptions {
        trust_domain: "example.org".to_owned(),
        ..certs()
    };
    let (boot, _) = generate(&cfg, &other);
    assert_eq!(
        tls_context(&boot, V1)["common_tls_context"]["validation_context"]
            ["match_typed_subject_alt_names"][0]["matcher"]["prefix"],
        "spiffe://example.org/"
    );
    // As istiod writes it: any certificate the mesh root signed.
    let any = TlsOptions {
        verify_trust_domain: false,
        ..certs()
    };
    let (boot, _) = generate(&cfg, &any);
    assert_eq!(
        tls_context(&boot, V1)["common_tls_context"]["validation_context"],
        json!({"trusted_ca": {"filename": "/var/lib/istio/data/root-cert.pem"}})
    );
    // insecureSkipVerify: the server is not verified at all (the client certificate stays).
    let cfg = config(
        &format!(
            "  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL, insecureSkipVerify: true}}}}\n{SUBSETS}"
        ),
        Some(API_IDENTITY),
    );
    let (boot, _) = generate(&cfg, &certs());
    let common = &tls_context(&boot, V1)["common_tls_context"];
    assert!(common.get("validation_context").is_none(), "{common}");
    assert!(common["tls_certificates"].is_array());
}

#[test]
fn istio_mutual_without_certificates_is_plaintext_with_a_warning() {
    let cfg = config(
        "  subsets:\n  - {name: v1, labels: {version: v1}}\n  - name: v2\n    labels: {version: v2}\n    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n",
        None,
    );
    let (boot, warnings) = generate(&cfg, &TlsOptions::default());
    assert!(plaintext(&boot, V1) && plaintext(&boot, V2));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(V2) && warnings[0].contains("--workload-certificates"),
        "{warnings:?}"
    );
    // With the certificates only the subset that asks for it gets TLS.
    let (boot, warnings) = generate(&cfg, &certs());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(plaintext(&boot, V1) && plaintext(&boot, DEFAULT));
    tls_context(&boot, V2);
}

#[test]
fn disable_on_a_subset_overrides_the_rule() {
    let cfg = config(
        "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - name: v2\n    labels: {version: v2}\n    trafficPolicy: {tls: {mode: DISABLE}}\n",
        None,
    );
    let (boot, warnings) = generate(&cfg, &certs());
    assert!(warnings.is_empty(), "{warnings:?}");
    tls_context(&boot, V1);
    assert!(plaintext(&boot, V2));
}

#[test]
fn simple_follows_the_request_host_and_the_system_roots() {
    let cfg = config(
        &format!("  trafficPolicy: {{tls: {{mode: SIMPLE}}}}\n{SUBSETS}"),
        None,
    );
    let opts = TlsOptions {
        system_roots: Some(PathBuf::from("/etc/roots.pem")),
        ..TlsOptions::default()
    };
    let (boot, warnings) = generate(&cfg, &opts);
    assert!(warnings.is_empty(), "{warnings:?}");
    let ctx = tls_context(&boot, V1);
    assert!(ctx.get("sni").is_none());
    let common = &ctx["common_tls_context"];
    assert!(common.get("alpn_protocols").is_none(), "HTTP/1.1: no ALPN");
    assert!(common.get("tls_certificates").is_none());
    assert_eq!(
        common["validation_context"],
        json!({"trusted_ca": {"filename": "/etc/roots.pem"}})
    );
    assert_eq!(
        *upstream_options(&boot, V1),
        json!({"auto_sni": true, "auto_san_validation": true})
    );
    // The other HTTP protocol options stay.
    let opts_block = &cluster(&boot, V1)["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        opts_block["explicit_http_config"],
        json!({"http_protocol_options": {}})
    );
}

#[test]
fn simple_with_sni_sans_or_insecure() {
    // A fixed SNI: no auto_sni; no SANs either, so only the chain is verified.
    let cfg = config(
        &format!(
            "  trafficPolicy: {{tls: {{mode: SIMPLE, sni: api.example.com, caCertificates: /certs/ca.pem}}}}\n{SUBSETS}"
        ),
        None,
    );
    let (boot, _) = generate(&cfg, &TlsOptions::default());
    let ctx = tls_context(&boot, V1);
    assert_eq!(ctx["sni"], "api.example.com");
    assert_eq!(
        ctx["common_tls_context"]["validation_context"],
        json!({"trusted_ca": {"filename": "/certs/ca.pem"}})
    );
    assert!(upstream_options(&boot, V1).is_null());
    // The ServiceEntry's names: checked, so no auto_san_validation; SNI still the host.
    let cfg = config(
        &format!(
            "  trafficPolicy: {{tls: {{mode: SIMPLE, caCertificates: /certs/ca.pem}}}}\n{SUBSETS}"
        ),
        Some("api.example.com"),
    );
    let (boot, _) = generate(&cfg, &TlsOptions::default());
    assert_eq!(
        tls_context(&boot, V1)["common_tls_context"]["validation_context"]
            ["match_typed_subject_alt_names"],
        exact(&["api.example.com"])
    );
    assert_eq!(*upstream_options(&boot, V1), json!({"auto_sni": true}));
    // insecureSkipVerify: an empty validation context, as istiod writes it.
    let cfg = config(
        &format!("  trafficPolicy: {{tls: {{mode: SIMPLE, insecureSkipVerify: true}}}}\n{SUBSETS}"),
        None,
    );
    let (boot, _) = generate(&cfg, &TlsOptions::default());
    assert_eq!(
        tls_context(&boot, V1)["common_tls_context"]["validation_context"],
        json!({})
    );
    assert_eq!(*upstream_options(&boot, V1), json!({"auto_sni": true}));
}

#[test]
fn mutual_uses_the_rule_files_and_crl() {
    let cfg = config(
        &format!(
            "  trafficPolicy:\n    tls:\n      mode: MUTUAL\n      clientCertificate: /certs/client.pem\n      privateKey: /certs/client-key.pem\n      caCertificates: /certs/ca.pem\n      caCrl: /certs/ca.crl\n      subjectAltNames: [api.example.com]\n{SUBSETS}"
        ),
        None,
    );
    let (boot, _) = generate(&cfg, &TlsOptions::default());
    let common = &tls_context(&boot, V2)["common_tls_context"];
    assert_eq!(
        common["tls_certificates"],
        json!([{
            "certificate_chain": {"filename": "/certs/client.pem"},
            "private_key": {"filename": "/certs/client-key.pem"},
        }])
    );
    assert_eq!(
        common["validation_context"],
        json!({
            "trusted_ca": {"filename": "/certs/ca.pem"},
            "crl": {"filename": "/certs/ca.crl"},
            "match_typed_subject_alt_names": exact(&["api.example.com"]),
        })
    );
}

#[test]
fn a_credential_name_alone_is_plaintext_with_a_warning() {
    let cfg = config(
        &format!(
            "  trafficPolicy: {{tls: {{mode: MUTUAL, credentialName: api-client}}}}\n{SUBSETS}"
        ),
        None,
    );
    let (boot, warnings) = generate(&cfg, &TlsOptions::default());
    assert!(plaintext(&boot, V1));
    assert!(
        warnings.iter().any(|w| w.contains("credentialName")),
        "{warnings:?}"
    );
}
