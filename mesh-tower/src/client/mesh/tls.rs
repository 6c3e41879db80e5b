//! TLS origination per cluster, as Istio configures Envoy's `UpstreamTlsContext` from the
//! DestinationRule's `tls` block: the trust roots, the client certificate, the SNI, the ALPN
//! list and how the server's names are checked; credentials read from files and read again
//! when the files change (certificate rotation), for new connections only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use http::uri::Authority;
use http::HeaderValue;
use mesh_model::raw::ClientTlsSettings;
use mesh_model::TlsMode;
use mesh_routing::ClusterName;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use super::san::subject_alt_names;
use crate::cluster::lock;

/// File names istio-agent writes for proxyless clients (`OUTPUT_CERTS`).
pub(crate) const CERT_CHAIN: &str = "cert-chain.pem";
/// The workload's private key.
pub(crate) const KEY: &str = "key.pem";
/// The mesh's root certificate.
pub(crate) const ROOT_CERT: &str = "root-cert.pem";

/// Mesh-wide TLS options of a client.
#[derive(Debug, Clone)]
pub(crate) struct MeshIdentity {
    /// Where the workload's `cert-chain.pem`, `key.pem` and `root-cert.pem` are.
    pub(crate) certs_dir: PathBuf,
    /// The mesh's trust domain (`cluster.local`).
    pub(crate) trust_domain: String,
    /// Whether `ISTIO_MUTUAL` with no expected identity still requires the server's SPIFFE ID
    /// to be in the trust domain.
    pub(crate) verify_trust_domain: bool,
}

/// Which name the client puts in the TLS `server_name` extension.
#[derive(Debug, Clone)]
enum Sni {
    /// The DestinationRule's `sni`, or `ISTIO_MUTUAL`'s `outbound_.PORT_.SUBSET_.FQDN`.
    Fixed(ServerName<'static>),
    /// The request's `Host` (Envoy's `auto_sni`).
    Auto,
}

/// How the server certificate's names are checked, once its chain is verified.
#[derive(Debug, Clone)]
enum SanCheck {
    /// Not at all (`ISTIO_MUTUAL` with no identity to expect; `sni` without SANs).
    Chain,
    /// One of the SANs must equal one of these (`subjectAltNames`).
    Exact(Arc<[String]>),
    /// The SNI must be one of the certificate's names (Envoy's `auto_san_validation`).
    Auto,
    /// A URI SAN must be a SPIFFE ID of this trust domain (`spiffe://DOMAIN/`).
    TrustDomain(String),
}

/// Where the trust roots come from.
#[derive(Debug, Clone)]
enum Roots {
    /// A PEM file (`caCertificates`, `root-cert.pem`).
    File(PathBuf),
    /// The operating system's roots (`SIMPLE`/`MUTUAL` without `caCertificates`).
    System,
    /// No verification at all (`insecureSkipVerify: true`).
    Insecure,
}

/// The TLS settings of one cluster, with the client configurations loaded from its files.
pub(crate) struct TlsOrigin {
    mode: TlsMode,
    sni: Sni,
    check: SanCheck,
    roots: Roots,
    client_cert: Option<(PathBuf, PathBuf)>,
    alpn_h1: Vec<Vec<u8>>,
    alpn_h2: Vec<Vec<u8>>,
    /// Which DestinationRule the settings came from, for error messages.
    source: String,
    loaded: Mutex<Option<Loaded>>,
}

/// Client configurations built from files, with what the files looked like then.
struct Loaded {
    stamps: Vec<Stamp>,
    h1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
}

/// A file's modification time and length (`None`: it could not be looked at).
type Stamp = Option<(SystemTime, u64)>;

impl fmt::Debug for TlsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOrigin")
            .field("mode", &self.mode)
            .field("sni", &self.sni)
            .field("check", &self.check)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

fn alpn(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|p| p.as_bytes().to_vec()).collect()
}

impl TlsOrigin {
    /// The TLS origination of a cluster with `tls` (the merged DestinationRule's block), or
    /// `None` for plaintext: `DISABLE`, and `SIMPLE`/`MUTUAL` with a `credentialName` and no
    /// files (istiod sends no TLS settings to a sidecar for those).
    pub(crate) fn new(
        tls: &ClientTlsSettings,
        cluster: &ClusterName,
        service_sans: &[String],
        source: &str,
        identity: &MeshIdentity,
    ) -> Result<Option<TlsOrigin>, String> {
        let Some(mode) = TlsMode::of(tls) else {
            return Err(format!(
                "{source}: unknown tls mode {:?}",
                tls.mode.as_deref().unwrap_or("")
            ));
        };
        let insecure = tls.insecure_skip_verify == Some(true);
        let sans: Option<Arc<[String]>> = if !tls.subject_alt_names.is_empty() {
            Some(tls.subject_alt_names.clone().into())
        } else if !service_sans.is_empty() {
            Some(service_sans.into())
        } else {
            None
        };
        let fixed_sni = match tls.sni.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(ServerName::try_from(s.to_owned()).map_err(|e| {
                format!(
                    "{source}: tls.sni {s:?} is not a valid server name ({e}): write a DNS name"
                )
            })?),
            None => None,
        };
        let origin = match mode {
            TlsMode::Disable => return Ok(None),
            TlsMode::IstioMutual => {
                let dir = &identity.certs_dir;
                let sni = match fixed_sni {
                    Some(s) => s,
                    None => {
                        let name = format!(
                            "outbound_.{}_.{}_.{}",
                            cluster.port(),
                            cluster.subset().unwrap_or(""),
                            cluster.host()
                        );
                        ServerName::try_from(name.clone()).map_err(|e| {
                            format!("{source}: the ISTIO_MUTUAL server name {name:?} is not a valid DNS name ({e})")
                        })?
                    }
                };
                let check = match sans {
                    Some(s) => SanCheck::Exact(s),
                    None if identity.verify_trust_domain => {
                        SanCheck::TrustDomain(identity.trust_domain.clone())
                    }
                    None => SanCheck::Chain,
                };
                TlsOrigin {
                    mode,
                    sni: Sni::Fixed(sni),
                    check,
                    roots: if insecure {
                        Roots::Insecure
                    } else {
                        Roots::File(dir.join(ROOT_CERT))
                    },
                    client_cert: Some((dir.join(CERT_CHAIN), dir.join(KEY))),
                    alpn_h1: alpn(&["istio-http/1.1", "istio", "http/1.1"]),
                    alpn_h2: alpn(&["istio-h2", "istio", "h2"]),
                    source: source.to_owned(),
                    loaded: Mutex::new(None),
                }
            }
            TlsMode::Simple | TlsMode::Mutual => {
                let files = tls.client_certificate.is_some()
                    || tls.private_key.is_some()
                    || tls.ca_certificates.is_some();
                if tls.credential_name.is_some() && !files {
                    return Ok(None);
                }
                let client_cert = match (mode, &tls.client_certificate, &tls.private_key) {
                    (TlsMode::Mutual, Some(c), Some(k)) => {
                        Some((PathBuf::from(c), PathBuf::from(k)))
                    }
                    (TlsMode::Mutual, _, _) => {
                        return Err(format!(
                            "{source}: MUTUAL tls needs both clientCertificate and privateKey"
                        ))
                    }
                    _ => None,
                };
                let check = match (&sans, &fixed_sni) {
                    _ if insecure => SanCheck::Chain,
                    (Some(s), _) => SanCheck::Exact(s.clone()),
                    (None, None) => SanCheck::Auto,
                    (None, Some(_)) => SanCheck::Chain,
                };
                TlsOrigin {
                    mode,
                    sni: fixed_sni.map_or(Sni::Auto, Sni::Fixed),
                    check,
                    roots: match &tls.ca_certificates {
                        _ if insecure => Roots::Insecure,
                        Some(p) => Roots::File(PathBuf::from(p)),
                        None => Roots::System,
                    },
                    client_cert,
                    alpn_h1: Vec::new(),
                    alpn_h2: alpn(&["h2"]),
                    source: source.to_owned(),
                    loaded: Mutex::new(None),
                }
            }
        };
        Ok(Some(origin))
    }

    /// Whether the SNI follows the request's `Host` (so connections differ by it).
    pub(crate) fn auto_sni(&self) -> bool {
        matches!(self.sni, Sni::Auto)
    }

    /// The server name of a connection to `endpoint` for a request with `host` (its `Host`,
    /// used under `auto_sni`).
    pub(crate) fn server_name(
        &self,
        host: Option<&HeaderValue>,
        endpoint: &Authority,
    ) -> Result<ServerName<'static>, String> {
        match &self.sni {
            Sni::Fixed(s) => Ok(s.clone()),
            Sni::Auto => {
                let host = host
                    .and_then(|h| h.to_str().ok())
                    .map_or(endpoint.host(), strip_port);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                ServerName::try_from(host.to_owned()).map_err(|e| {
                    format!("the request host {host:?} is not a valid TLS server name ({e})")
                })
            }
        }
    }

    /// The client configuration for a new connection (HTTP/2 or not: the ALPN list differs),
    /// loading the files again when they changed since the last load. While new files do not
    /// load (a rotation caught half-way: the certificate written, not yet the key), the
    /// previous credentials keep serving.
    pub(crate) fn config(&self, h2: bool) -> Result<Arc<ClientConfig>, String> {
        let stamps: Vec<Stamp> = self.files().map(stamp).collect();
        let mut loaded = lock(&self.loaded);
        let pick = |l: &Loaded| Arc::clone(if h2 { &l.h2 } else { &l.h1 });
        if let Some(l) = loaded.as_ref().filter(|l| l.stamps == stamps) {
            return Ok(pick(l));
        }
        match self.load() {
            Ok((h1, h2c)) => {
                if loaded.is_some() {
                    tracing::info!(source = %self.source, "TLS credentials reloaded");
                }
                let l = Loaded {
                    stamps,
                    h1,
                    h2: h2c,
                };
                let config = pick(&l);
                *loaded = Some(l);
                Ok(config)
            }
            Err(e) => match loaded.as_ref() {
                Some(l) => {
                    tracing::warn!(source = %self.source, error = %e, "TLS credentials changed but do not load; the previous ones keep serving");
                    Ok(pick(l))
                }
                None => Err(e),
            },
        }
    }

    fn files(&self) -> impl Iterator<Item = &Path> {
        let roots = match &self.roots {
            Roots::File(p) => Some(p.as_path()),
            Roots::System | Roots::Insecure => None,
        };
        let client = self
            .client_cert
            .as_ref()
            .into_iter()
            .flat_map(|(c, k)| [c.as_path(), k.as_path()]);
        roots.into_iter().chain(client)
    }

    fn load(&self) -> Result<(Arc<ClientConfig>, Arc<ClientConfig>), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (roots, insecure) = match &self.roots {
            Roots::File(p) => (Arc::new(self.root_store(p)?), false),
            Roots::System => (system_roots()?, false),
            Roots::Insecure => (Arc::new(RootCertStore::empty()), true),
        };
        let verifier = Arc::new(MeshVerifier {
            roots,
            check: self.check.clone(),
            insecure,
            provider: Arc::clone(&provider),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("{}: TLS versions: {e}", self.source))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = self.certificates(cert)?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!(
                        "{}: private key {}: {e} (a PEM PKCS#8, PKCS#1 or SEC1 key is expected)",
                        self.source,
                        key.display()
                    )
                })?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    format!(
                        "{}: client certificate {} with key {}: {e}",
                        self.source,
                        cert.display(),
                        key.display()
                    )
                })?
            }
        };
        let mut h2 = config.clone();
        config.alpn_protocols = self.alpn_h1.clone();
        h2.alpn_protocols = self.alpn_h2.clone();
        Ok((Arc::new(config), Arc::new(h2)))
    }

    fn certificates(&self, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {}: {e}", self.source, path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{}: {} holds no PEM certificate",
                self.source,
                path.display()
            ));
        }
        Ok(certs)
    }

    fn root_store(&self, path: &Path) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        for cert in self.certificates(path)? {
            store.add(cert).map_err(|e| {
                format!(
                    "{}: {}: not a usable CA certificate: {e}",
                    self.source,
                    path.display()
                )
            })?;
        }
        Ok(store)
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    }
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The operating system's trust roots, read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "no system trust roots could be loaded ({}): set caCertificates in the DestinationRule's tls block",
                    errors.join("; ")
                ));
            }
            Ok(Arc::new(store))
        })
        .clone()
}

/// Verifies the server's certificate chain against the cluster's roots, then its names as the
/// cluster's settings say ([`SanCheck`]).
#[derive(Debug)]
struct MeshVerifier {
    roots: Arc<RootCertStore>,
    check: SanCheck,
    insecure: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for MeshVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let ok = match &self.check {
            SanCheck::Chain => true,
            SanCheck::Auto => {
                rustls::client::verify_server_name(&cert, server_name)?;
                true
            }
            SanCheck::Exact(expected) => subject_alt_names(end_entity.as_ref())
                .iter()
                .any(|n| expected.iter().any(|e| e == n)),
            SanCheck::TrustDomain(domain) => subject_alt_names(end_entity.as_ref())
                .iter()
                .any(|n| in_trust_domain(n, domain)),
        };
        if ok {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether `san` is a SPIFFE ID of `domain` (`spiffe://DOMAIN/...`).
fn in_trust_domain(san: &str, domain: &str) -> bool {
    san.strip_prefix("spiffe://")
        .and_then(|rest| rest.strip_prefix(domain))
        .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::{in_trust_domain, strip_port};

    #[test]
    fn trust_domain_is_the_whole_authority() {
        assert!(in_trust_domain(
            "spiffe://cluster.local/ns/a/sa/b",
            "cluster.local"
        ));
        assert!(!in_trust_domain(
            "spiffe://cluster.local.evil/ns/a",
            "cluster.local"
        ));
        assert!(!in_trust_domain(
            "spiffe://cluster.localx/ns/a",
            "cluster.local"
        ));
        assert!(!in_trust_domain(
            "https://cluster.local/ns/a",
            "cluster.local"
        ));
    }

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(strip_port("api.test:8443"), "api.test");
        assert_eq!(strip_port("api.test"), "api.test");
        assert_eq!(strip_port("[::1]:443"), "[::1]");
    }
}
