//! Mutual TLS for the `--mtls` run: the mesh CA and identities (made at run time with
//! `mesh_tests::pki`), the backends' server configuration, the check that every handshake the
//! backends saw carried the workload's certificate, and the bare client's TLS connector.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use mesh_tests::pki::{server_config, workload_dir, Ca, Dir};
use mesh_tests::Backend;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore};
use serde::{Deserialize, Serialize};

/// The identity of the `api` pods (in the ServiceEntry's `subjectAltNames`, so the mesh and
/// Envoy both check it).
pub(crate) const API_IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/api";
/// The identity of the calling workload.
pub(crate) const CHECKOUT_IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/checkout";
/// The ALPN list a sidecar (and `MeshClient`) offers for HTTP/1.1 over `ISTIO_MUTUAL`.
pub(crate) const ISTIO_ALPN_H1: [&str; 3] = ["istio-http/1.1", "istio", "http/1.1"];

/// The `ISTIO_MUTUAL` SNI of subset `subset` of `api` port 8080.
pub(crate) fn istio_sni(subset: &str) -> String {
    format!("outbound_.8080_.{subset}_.api.default.svc.cluster.local")
}

/// The mesh CA, the pods' server configuration and the workload's files (removed when
/// dropped).
pub(crate) struct Pki {
    /// `cert-chain.pem`, `key.pem`, `root-cert.pem` of the calling workload, in a temporary
    /// directory.
    pub(crate) workload: Dir,
    /// The workload's certificate (DER): what every handshake must carry.
    pub(crate) client_certificate: Vec<u8>,
    /// The pods' configuration: the `api` identity, client certificates of the mesh CA
    /// required.
    pub(crate) server: Arc<rustls::ServerConfig>,
}

impl Pki {
    /// A new mesh CA, the `api` and `checkout` identities, and the workload's files.
    pub(crate) fn new() -> Pki {
        let ca = Ca::new("bench-vs-envoy mesh root");
        let api = ca.leaf(&[], &[API_IDENTITY], false);
        let checkout = ca.leaf(&[], &[CHECKOUT_IDENTITY], false);
        Pki {
            workload: workload_dir(&ca, &checkout),
            client_certificate: checkout.der.to_vec(),
            server: server_config(&api, Some(&ca)),
        }
    }
}

/// What the backends saw of the TLS handshakes of one set-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Handshakes {
    /// New TLS connections.
    pub(crate) connections: u64,
    /// Those that carried the workload's client certificate.
    pub(crate) with_client_certificate: u64,
    /// By SNI.
    pub(crate) sni: BTreeMap<String, u64>,
    /// By the ALPN list offered.
    pub(crate) offered_alpn: BTreeMap<String, u64>,
    /// By the protocol agreed.
    pub(crate) agreed_alpn: BTreeMap<String, u64>,
}

/// Follows the backends' handshake records from phase to phase.
#[derive(Debug, Default)]
pub(crate) struct HandshakeCheck {
    /// Per pod, the records already looked at.
    seen: Vec<usize>,
}

impl HandshakeCheck {
    /// Adds the handshakes made since the last call to `into`, and fails when one of them did
    /// not carry `client_certificate`, or came with another SNI than `ISTIO_MUTUAL`'s for the
    /// pod's subset, or offered another ALPN list than a sidecar's.
    pub(crate) fn collect(
        &mut self,
        pods: &[Backend],
        client_certificate: &[u8],
        into: &mut Handshakes,
    ) -> Result<(), String> {
        self.seen.resize(pods.len(), 0);
        for (pod, seen) in pods.iter().zip(&mut self.seen) {
            let all = pod.tls_connections();
            let new = &all[(*seen).min(all.len())..];
            *seen = all.len();
            let subset = pod.labels().get("version").cloned().unwrap_or_default();
            let sni = istio_sni(&subset);
            for h in new {
                into.connections += 1;
                let got_sni = h.sni.clone().unwrap_or_else(|| "-".to_owned());
                let offered = h.offered_alpn.join(", ");
                *into.sni.entry(got_sni.clone()).or_default() += 1;
                *into.offered_alpn.entry(offered.clone()).or_default() += 1;
                *into
                    .agreed_alpn
                    .entry(h.alpn.clone().unwrap_or_else(|| "-".to_owned()))
                    .or_default() += 1;
                if h.client_certificate.as_deref() != Some(client_certificate) {
                    return Err(format!(
                        "{}: a TLS connection without the workload's client certificate",
                        pod.name()
                    ));
                }
                into.with_client_certificate += 1;
                if got_sni != sni {
                    return Err(format!(
                        "{}: a TLS connection with SNI {got_sni}, not {sni}",
                        pod.name()
                    ));
                }
                if offered != ISTIO_ALPN_H1.join(", ") {
                    return Err(format!(
                        "{}: a TLS connection offering ALPN [{offered}], not [{}]",
                        pod.name(),
                        ISTIO_ALPN_H1.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The bare client's connector: TCP, then TLS with the workload's certificate, the SNI of the
/// pod's subset and a sidecar's ALPN list; the server's chain is verified against the mesh
/// root (its name is not checked).
#[derive(Clone)]
pub(crate) struct BareTls {
    config: Arc<rustls::ClientConfig>,
    /// The SNI of each pod, by port.
    sni: Arc<BTreeMap<u16, ServerName<'static>>>,
}

impl std::fmt::Debug for BareTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareTls").field("sni", &self.sni).finish()
    }
}

impl BareTls {
    /// A connector with the files of `dir` (istio-agent's layout) and `sni` by port.
    pub(crate) fn new(dir: &Path, sni: BTreeMap<u16, String>) -> Result<Self, String> {
        let read = |name: &str| {
            let p = dir.join(name);
            CertificateDer::pem_file_iter(&p)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let mut roots = RootCertStore::empty();
        for c in read("root-cert.pem")? {
            roots.add(c).map_err(|e| format!("root-cert.pem: {e}"))?;
        }
        let chain = read("cert-chain.pem")?;
        let key = PrivateKeyDer::from_pem_file(dir.join("key.pem"))
            .map_err(|e| format!("key.pem: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(ChainOnly {
            roots: Arc::new(roots),
            provider: Arc::clone(&provider),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = ISTIO_ALPN_H1
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let sni = sni
            .into_iter()
            .map(|(port, name)| {
                ServerName::try_from(name)
                    .map(|n| (port, n))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(BareTls {
            config: Arc::new(config),
            sni: Arc::new(sni),
        })
    }
}

impl tower::Service<http::Uri> for BareTls {
    type Response = TlsConn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = Arc::clone(&self.config);
        let sni = Arc::clone(&self.sni);
        Box::pin(async move {
            let host = uri.host().ok_or("no host")?.to_owned();
            let port = uri.port_u16().ok_or("no port")?;
            let name = sni
                .get(&port)
                .cloned()
                .ok_or_else(|| format!("no SNI for port {port}"))?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TlsConn(TokioIo::new(tls)))
        })
    }
}

/// A TLS connection for hyper-util's client.
#[derive(Debug)]
pub(crate) struct TlsConn(TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Verifies the server's chain against the mesh root, and nothing about its names.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
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
