//! A cluster's DestinationRule `tls` block as Envoy's upstream transport socket
//! (`envoy.transport_sockets.tls`, an `UpstreamTlsContext`), the way istiod configures it
//! (cluster-tls-telemetry.md §B.1-B.2), with the certificates read from files instead of SDS,
//! and the server's names checked as `mesh_tower::client::MeshClient` checks them.
//!
//! | mode | SNI | ALPN | client certificate | trust roots | server names |
//! |---|---|---|---|---|---|
//! | `DISABLE` | – | – | – | – | – |
//! | `ISTIO_MUTUAL` | `sni`, else `outbound_.PORT_.SUBSET_.FQDN` | `istio-http/1.1`, `istio`, `http/1.1` | `cert-chain.pem`, `key.pem` | `root-cert.pem` | `subjectAltNames`, else the ServiceEntry's, else a URI SAN `spiffe://TRUST_DOMAIN/...` |
//! | `SIMPLE` | `sni`, else the request's host (`auto_sni`) | none | – | `caCertificates`, else the system's | `subjectAltNames`, else the ServiceEntry's, else the SNI (`auto_san_validation`) when `sni` is unset |
//! | `MUTUAL` | as `SIMPLE` | as `SIMPLE` | `clientCertificate`, `privateKey` | as `SIMPLE` | as `SIMPLE` |
//!
//! The `ISTIO_MUTUAL` files come from the directory `--workload-certificates` names, in
//! istio-agent's layout, the one `MeshClient` reads. `insecureSkipVerify: true` leaves the
//! server unverified. `caCrl` becomes the validation context's `crl`.
//!
//! ALPN: istiod writes `istio-peer-exchange`, `istio` on an HTTP/1.1 `ISTIO_MUTUAL` cluster
//! and its sidecar's `istio.alpn` HTTP filter replaces that list on every request by the one
//! for the request's upstream HTTP version (`istio-http/1.1`, `istio`, `http/1.1`). Stock
//! Envoy has no such filter, so the cluster gets the list the filter would have set: what a
//! sidecar offers on the wire, and what `MeshClient` offers. The clusters `meshctl envoy`
//! writes speak HTTP/1.1, so `SIMPLE` and `MUTUAL` offer no ALPN (istiod adds `h2` to HTTP/2
//! clusters only).

use std::path::{Path, PathBuf};

use mesh_model::TlsMode;
use mesh_routing::{ClusterKey, ClusterPolicy};
use serde_json::{json, Map, Value};

/// The istio-agent file names for proxyless workloads (`OUTPUT_CERTS`), as `MeshClient`
/// reads them.
const CERT_CHAIN: &str = "cert-chain.pem";
const KEY: &str = "key.pem";
const ROOT_CERT: &str = "root-cert.pem";

/// Where the system's trust roots usually are, in the order tried when `--system-roots` is not
/// given (Debian and Ubuntu, Fedora and RHEL, openSUSE, Alpine and the BSDs).
const SYSTEM_ROOTS: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// What the TLS translation needs besides the configuration.
#[derive(Debug, Clone)]
pub(crate) struct TlsOptions {
    /// The directory with the workload's `cert-chain.pem`, `key.pem` and `root-cert.pem`;
    /// without it `ISTIO_MUTUAL` clusters are written without TLS, with a warning.
    pub(crate) workload_certificates: Option<PathBuf>,
    /// The mesh's trust domain.
    pub(crate) trust_domain: String,
    /// Whether an `ISTIO_MUTUAL` cluster with no identity to expect requires a SPIFFE ID of the
    /// trust domain (as `MeshClient` does by default) rather than any certificate of the mesh
    /// root (as istiod writes it).
    pub(crate) verify_trust_domain: bool,
    /// The system's trust roots (PEM) for `SIMPLE`/`MUTUAL` without `caCertificates`; `None`:
    /// the first of [`SYSTEM_ROOTS`] that exists.
    pub(crate) system_roots: Option<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            workload_certificates: None,
            trust_domain: "cluster.local".to_owned(),
            verify_trust_domain: true,
            system_roots: None,
        }
    }
}

/// A cluster's TLS origination in Envoy's terms.
#[derive(Debug, Default)]
pub(super) struct ClusterTls {
    /// The cluster's `transport_socket`; `None`: plaintext.
    pub(super) transport_socket: Option<Value>,
    /// `upstream_http_protocol_options` for the cluster's `HttpProtocolOptions` (`auto_sni`,
    /// `auto_san_validation`), when any is set.
    pub(super) upstream_http_protocol_options: Option<Value>,
}

/// The TLS settings of cluster `key` (named `name`) under `policy`. Settings that cannot be
/// translated are an error (the whole bootstrap fails) unless leaving them out is what istiod
/// does too or the caller chose it (no `--workload-certificates`), which adds a warning.
pub(super) fn cluster_tls(
    policy: &ClusterPolicy,
    key: &ClusterKey<'_>,
    name: &str,
    opts: &TlsOptions,
    warnings: &mut Vec<String>,
) -> Result<ClusterTls, String> {
    let Some(tls) = policy.tls() else {
        return Ok(ClusterTls::default());
    };
    let Some(mode) = TlsMode::of(tls) else {
        return Err(format!(
            "cluster {name}: unknown tls mode {:?}",
            tls.mode.as_deref().unwrap_or("")
        ));
    };
    let insecure = tls.insecure_skip_verify == Some(true);
    // The identities to expect: the rule's, else those of the service's workloads.
    let sans: &[String] = if tls.subject_alt_names.is_empty() {
        policy.service_alt_names()
    } else {
        &tls.subject_alt_names
    };
    let sni = tls.sni.as_deref().filter(|s| !s.is_empty());
    match mode {
        TlsMode::Disable => Ok(ClusterTls::default()),
        TlsMode::IstioMutual => {
            let Some(dir) = &opts.workload_certificates else {
                warnings.push(format!(
                    "cluster {name}: tls mode ISTIO_MUTUAL is not translated without \
                     --workload-certificates DIR (the workload's {CERT_CHAIN}, {KEY} and \
                     {ROOT_CERT}): plaintext upstream"
                ));
                return Ok(ClusterTls::default());
            };
            let sni = sni.map_or_else(
                || {
                    format!(
                        "outbound_.{}_.{}_.{}",
                        key.port,
                        key.subset.unwrap_or(""),
                        key.host
                    )
                },
                str::to_owned,
            );
            let validation = if insecure {
                None
            } else {
                let mut v = Map::new();
                v.insert("trusted_ca".into(), file(&dir.join(ROOT_CERT)));
                if !sans.is_empty() {
                    v.insert("match_typed_subject_alt_names".into(), exact(sans));
                } else if opts.verify_trust_domain {
                    v.insert(
                        "match_typed_subject_alt_names".into(),
                        json!([{
                            "san_type": "URI",
                            "matcher": {"prefix": format!("spiffe://{}/", opts.trust_domain)},
                        }]),
                    );
                }
                Some(Value::Object(v))
            };
            let common = common_tls_context(
                &["istio-http/1.1", "istio", "http/1.1"],
                Some((&dir.join(CERT_CHAIN), &dir.join(KEY))),
                validation,
            );
            Ok(ClusterTls {
                transport_socket: Some(transport_socket(common, Some(&sni))),
                upstream_http_protocol_options: None,
            })
        }
        TlsMode::Simple | TlsMode::Mutual => {
            let files = tls.client_certificate.is_some()
                || tls.private_key.is_some()
                || tls.ca_certificates.is_some();
            if tls.credential_name.is_some() && !files {
                // istiod gives a sidecar no TLS settings for a Kubernetes secret when the
                // rule has no workload selector, and the mesh does the same.
                warnings.push(format!(
                    "cluster {name}: tls mode {} with credentialName and no files is plaintext, \
                     as istiod configures a sidecar for it",
                    mode.as_str()
                ));
                return Ok(ClusterTls::default());
            }
            let client = match (mode, &tls.client_certificate, &tls.private_key) {
                (TlsMode::Mutual, Some(c), Some(k)) => Some((Path::new(c), Path::new(k))),
                (TlsMode::Mutual, _, _) => {
                    return Err(format!(
                        "cluster {name}: MUTUAL tls needs both clientCertificate and privateKey"
                    ))
                }
                _ => None,
            };
            let validation = if insecure {
                // istiod writes an empty validation context: no roots, nothing checked.
                Value::Object(Map::new())
            } else {
                let mut v = Map::new();
                let roots = match &tls.ca_certificates {
                    Some(ca) => PathBuf::from(ca),
                    None => system_roots(opts).map_err(|e| format!("cluster {name}: {e}"))?,
                };
                v.insert("trusted_ca".into(), file(&roots));
                if !sans.is_empty() {
                    v.insert("match_typed_subject_alt_names".into(), exact(sans));
                }
                if let Some(crl) = &tls.ca_crl {
                    v.insert("crl".into(), file(Path::new(crl)));
                }
                Value::Object(v)
            };
            let common = common_tls_context(&[], client, Some(validation));
            // No `sni`: the request's host (Envoy's auto_sni); checked against the server's
            // names when nothing else is (auto_san_validation).
            let mut upstream = Map::new();
            if sni.is_none() {
                upstream.insert("auto_sni".into(), json!(true));
                if sans.is_empty() && !insecure {
                    upstream.insert("auto_san_validation".into(), json!(true));
                }
            }
            Ok(ClusterTls {
                transport_socket: Some(transport_socket(common, sni)),
                upstream_http_protocol_options: (!upstream.is_empty())
                    .then_some(Value::Object(upstream)),
            })
        }
    }
}

/// The system's trust roots: `--system-roots`, else the first bundle of [`SYSTEM_ROOTS`] that
/// exists.
fn system_roots(opts: &TlsOptions) -> Result<PathBuf, String> {
    if let Some(p) = &opts.system_roots {
        return Ok(p.clone());
    }
    SYSTEM_ROOTS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no caCertificates, and no system trust roots found (looked for {}): pass \
                 --system-roots FILE",
                SYSTEM_ROOTS.join(", ")
            )
        })
}

/// An Envoy `DataSource` reading `path`.
fn file(path: &Path) -> Value {
    json!({"filename": path.display().to_string()})
}

/// Typed exact matchers for `names`, one per kind of subject alternative name, so that a name
/// matches whatever kind it is in the certificate, as the mesh checks it. istiod writes the
/// untyped `match_subject_alt_names`, which Envoy expands to these same four matchers per name
/// but reports as deprecated.
fn exact(names: &[String]) -> Value {
    Value::Array(
        names
            .iter()
            .flat_map(|n| {
                ["DNS", "URI", "EMAIL", "IP_ADDRESS"]
                    .map(|t| json!({"san_type": t, "matcher": {"exact": n}}))
            })
            .collect(),
    )
}

/// `CommonTlsContext`: TLS 1.2 to 1.3 (istiod's default for upstreams), the ALPN list, the
/// client certificate and the validation context.
fn common_tls_context(
    alpn: &[&str],
    client: Option<(&Path, &Path)>,
    validation: Option<Value>,
) -> Value {
    let mut c = Map::new();
    c.insert(
        "tls_params".into(),
        json!({
            "tls_minimum_protocol_version": "TLSv1_2",
            "tls_maximum_protocol_version": "TLSv1_3",
        }),
    );
    if !alpn.is_empty() {
        c.insert("alpn_protocols".into(), json!(alpn));
    }
    if let Some((chain, key)) = client {
        c.insert(
            "tls_certificates".into(),
            json!([{"certificate_chain": file(chain), "private_key": file(key)}]),
        );
    }
    if let Some(v) = validation {
        c.insert("validation_context".into(), v);
    }
    Value::Object(c)
}

fn transport_socket(common: Value, sni: Option<&str>) -> Value {
    let mut ctx = Map::new();
    ctx.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"),
    );
    ctx.insert("common_tls_context".into(), common);
    if let Some(s) = sni {
        ctx.insert("sni".into(), json!(s));
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": Value::Object(ctx)})
}

/// The settings as given on the command line: the workload directory made absolute (Envoy
/// reads the files relative to its own working directory).
pub(crate) fn options(
    workload_certificates: Option<&Path>,
    trust_domain: &str,
    verify_trust_domain: bool,
    system_roots: Option<&Path>,
) -> Result<TlsOptions, String> {
    let absolute = |p: &Path| {
        std::path::absolute(p).map_err(|e| format!("{}: cannot make it absolute: {e}", p.display()))
    };
    Ok(TlsOptions {
        workload_certificates: workload_certificates.map(absolute).transpose()?,
        trust_domain: trust_domain.to_owned(),
        verify_trust_domain,
        system_roots: system_roots.map(absolute).transpose()?,
    })
}
