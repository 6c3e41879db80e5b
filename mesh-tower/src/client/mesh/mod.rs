//! The mesh-owned connector, [`MeshClient`] (its documentation says what it applies and how).

mod dial;
mod error;
mod pool;
mod san;
mod settings;
mod tls;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use mesh_routing::{ClusterPolicy, UpstreamProtocol};
use tower_service::Service;

pub use self::error::ConnectError;
use self::pool::{Key, Lease, Pool, Tx};
use self::settings::ConnSettings;
use self::tls::MeshIdentity;
use crate::cluster::{ClusterState, ConnectionStats, EndpointConnections, Upstream};
use crate::BoxError;

/// Where istio-agent writes the workload's certificates for proxyless clients
/// (`OUTPUT_CERTS` in Istio's `grpc-agent` injection template): `cert-chain.pem`, `key.pem`,
/// `root-cert.pem`.
pub const DEFAULT_WORKLOAD_CERTIFICATES: &str = "/var/lib/istio/data";

/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// How many times a request that was never written goes to another connection (a pooled
/// connection the server had just closed).
const FRESH_CONNECTION_TRIES: usize = 3;

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// The mesh-owned connector: a `tower::Service<http::Request<B>>` that keeps connections per
/// cluster and endpoint and applies each cluster's DestinationRule to them.
///
/// Put it under a [`MeshLayer`](crate::MeshLayer) built with
/// [`MeshClientBuilder::build_for`] (so that each attempt tells it its cluster). Used alone,
/// or for a request that names no cluster, it connects to the request URL's authority in
/// plaintext with Istio's defaults, in the caller's HTTP version.
///
/// `B` is the request body type (under the mesh, [`ReplayBody`](crate::body::ReplayBody) of
/// the caller's body). Cheap to clone; clones share the connections.
///
/// # Connection settings
///
/// Each cluster's merged DestinationRule applies to its connections as an Istio sidecar's Envoy
/// applies it:
///
/// | DestinationRule | What the client does |
/// |---|---|
/// | `tcp.connectTimeout` (10 s by default) | bounds the TCP connect **and** the TLS handshake |
/// | `tcp.tcpKeepalive` | `SO_KEEPALIVE` with the probes, time and interval written |
/// | `tcp.maxConnections` | sockets (open or connecting) to the whole cluster; beyond it a request waits for a connection of its endpoint; an endpoint with no connection may always get one (as Envoy) |
/// | `tcp.maxConnectionDuration` | the connection drains then: no new request, closed when idle |
/// | `http.idleTimeout`, else `tcp.idleTimeout` (Envoy's 1 h by default; `0s`: never) | an idle connection closes |
/// | `http.maxRequestsPerConnection` | a connection closes after that many requests |
/// | `http.maxConcurrentStreams` (1024 by default, Envoy ≥ 1.36) | streams per HTTP/2 connection, never above the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` |
/// | `http.http2KeepAlive` | HTTP/2 PINGs every `interval`; no answer in `timeout` closes the connection |
/// | `http.h2UpgradePolicy`, `http.useClientProtocol`, the port's protocol | HTTP/1.1, HTTP/2 (prior knowledge in plaintext; ALPN `h2` offered over TLS) or the caller's version ([`UpstreamProtocol`](mesh_routing::UpstreamProtocol)) |
/// | `http.http1MaxPendingRequests`, `http.http2MaxRequests`, `http.maxRetries` | the mesh's admission, as with any client |
/// | `tls` | TLS origination with rustls (below) |
///
/// HTTP/1 carries one request per connection at a time; HTTP/2 multiplexes. The port a
/// request goes to is the endpoint's (ServiceEntry endpoint `ports` by port name), never the
/// request URL's. Connections of an endpoint that leaves the cluster (removed, ejected by
/// outlier detection) and every connection of a cluster whose policy changed on reload drain:
/// their requests finish, no new one starts on them.
///
/// # TLS
///
/// | `tls.mode` | Roots | Client certificate | SNI | Server names checked | ALPN |
/// |---|---|---|---|---|---|
/// | `DISABLE` | – | – | – | – | – |
/// | `SIMPLE` | `caCertificates`, else the system's | – | `sni`, else the request's host | `subjectAltNames` (else the ServiceEntry's), else the host when `sni` is unset | `h2` for HTTP/2 clusters |
/// | `MUTUAL` | as `SIMPLE` | `clientCertificate`, `privateKey` | as `SIMPLE` | as `SIMPLE` | as `SIMPLE` |
/// | `ISTIO_MUTUAL` | `root-cert.pem` | `cert-chain.pem`, `key.pem` | `sni`, else `outbound_.PORT_.SUBSET_.FQDN` | `subjectAltNames` (else the ServiceEntry's), else any SPIFFE ID of the trust domain | `istio-h2`, `istio`, `h2` / `istio-http/1.1`, `istio`, `http/1.1` |
///
/// `insecureSkipVerify: true` accepts any server certificate. The `ISTIO_MUTUAL` files are
/// read from the directory istio-agent writes for proxyless clients
/// ([`DEFAULT_WORKLOAD_CERTIFICATES`], set with
/// [`MeshClientBuilder::workload_certificates`]). Every file is looked at again when a new
/// connection is made and read again when it changed (certificate rotation); connections
/// already open keep their session, so requests in flight are never dropped. While a rotation
/// is half-written (a certificate that does not match the key), the previous credentials
/// serve.
///
/// A TLS failure is a connect failure (`UF`, 503): the local reply carries Envoy's transport
/// failure reason (`TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end`
/// for a certificate that fails verification; `TLS error: Secret is not supplied by SDS` when
/// the credentials cannot be loaded); see [`ConnectError`].
///
/// Not supported (warned about when the configuration loads): `credentialName` (Kubernetes
/// secrets; with no files named, the cluster is plaintext, as istiod configures a sidecar) and
/// `caCrl` (not checked). Auto mTLS (ISTIO_MUTUAL chosen per endpoint from its
/// `security.istio.io/tlsMode` label when no DestinationRule sets `tls`) is not done: write
/// `tls` in a DestinationRule.
///
/// # Differences from Istio + Envoy
///
/// - `ISTIO_MUTUAL` with no identity to expect (no `subjectAltNames` in the DestinationRule or
///   the ServiceEntry) still requires a SPIFFE ID of the trust domain; Envoy accepts any
///   certificate the mesh root signed. [`MeshClientBuilder::verify_trust_domain`] turns it off.
/// - TLS failures other than certificate verification carry rustls's description in the
///   transport failure reason (`TLS_error:|<rustls error>:TLS_error_end`), not BoringSSL's code.
/// - A connect failure other than TLS has no transport failure reason in the local reply
///   (Envoy writes `delayed connect error: ...`).
///
/// # Example
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use mesh_tower::body::ReplayBody;
/// use mesh_tower::client::MeshClient;
/// use mesh_tower::MeshLayer;
/// use tower::{Layer, ServiceExt};
///
/// # async fn demo(config: mesh_tower::model::MeshConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let layer = MeshLayer::builder().config(config).build()?;
/// let client = MeshClient::builder()
///     .workload_certificates("/var/lib/istio/data")
///     .build_for::<ReplayBody<Full<Bytes>>>(&layer);
/// let mesh = layer.layer(client);
/// let res = mesh
///     .oneshot(http::Request::get("http://api.default.svc.cluster.local:8080/").body(Full::<Bytes>::default())?)
///     .await?;
/// println!("{}", res.status());
/// # Ok(()) }
/// ```
pub struct MeshClient<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    id: u64,
    identity: MeshIdentity,
    passthrough: OnceLock<Arc<ClusterConns<B>>>,
    passthrough_settings: Arc<ConnSettings>,
}

impl<B> Clone for MeshClient<B> {
    fn clone(&self) -> Self {
        MeshClient {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B> fmt::Debug for MeshClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshClient")
            .field("id", &self.inner.id)
            .field("workload_certificates", &self.inner.identity.certs_dir)
            .field("trust_domain", &self.inner.identity.trust_domain)
            .finish_non_exhaustive()
    }
}

/// Configures a [`MeshClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MeshClientBuilder {
    identity: MeshIdentity,
}

impl MeshClient<()> {
    /// A builder with Istio's defaults: workload certificates in
    /// [`DEFAULT_WORKLOAD_CERTIFICATES`], trust domain `cluster.local`.
    pub fn builder() -> MeshClientBuilder {
        MeshClientBuilder {
            identity: MeshIdentity {
                certs_dir: PathBuf::from(DEFAULT_WORKLOAD_CERTIFICATES),
                trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
                verify_trust_domain: true,
            },
        }
    }
}

impl MeshClientBuilder {
    /// The directory with the workload's `cert-chain.pem`, `key.pem` and `root-cert.pem`, for
    /// `ISTIO_MUTUAL` clusters.
    pub fn workload_certificates(mut self, dir: impl Into<PathBuf>) -> Self {
        self.identity.certs_dir = dir.into();
        self
    }

    /// The mesh's trust domain (default `cluster.local`).
    pub fn trust_domain(mut self, domain: impl Into<String>) -> Self {
        self.identity.trust_domain = domain.into();
        self
    }

    /// Whether an `ISTIO_MUTUAL` server with no expected identity must still present a SPIFFE
    /// ID of the trust domain (default `true`; `false` accepts any certificate the mesh root
    /// signed, as Envoy does).
    pub fn verify_trust_domain(mut self, on: bool) -> Self {
        self.identity.verify_trust_domain = on;
        self
    }

    /// A client on its own: every request goes to its URL's authority, in plaintext.
    pub fn build<B>(self) -> MeshClient<B> {
        MeshClient {
            inner: Arc::new(Inner {
                id: NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
                identity: self.identity,
                passthrough: OnceLock::new(),
                passthrough_settings: Arc::new(ConnSettings::passthrough()),
            }),
        }
    }

    /// A client for the services of `layer`: from now on, the layer's attempts tell the client
    /// their cluster, whose DestinationRule it applies.
    pub fn build_for<B>(self, layer: &crate::MeshLayer) -> MeshClient<B> {
        layer.shared().upstream_info.store(true, Ordering::Relaxed);
        self.build()
    }
}

/// A client's connections to one cluster, with the settings derived from the cluster's
/// policy (rebuilt when the policy changes).
struct ClusterConns<B> {
    pool: Arc<Pool<B>>,
    settings: ArcSwapOption<(Arc<ClusterPolicy>, Arc<ConnSettings>)>,
}

impl<B: Send + 'static> EndpointConnections for ClusterConns<B>
where
    Pool<B>: Send + Sync,
{
    fn retain(&self, keep: &dyn Fn(&Authority) -> bool) {
        self.pool.retain(keep);
    }

    fn stats(&self) -> ConnectionStats {
        self.pool.stats()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

impl<B> MeshClient<B>
where
    B: Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    fn runtime() -> Result<tokio::runtime::Handle, BoxError> {
        tokio::runtime::Handle::try_current()
            .map_err(|_| "MeshClient must be called inside a tokio runtime".into())
    }

    /// The pool and settings for `cluster`'s request.
    fn for_cluster(
        &self,
        cluster: &ClusterState,
    ) -> Result<(Arc<Pool<B>>, Arc<ConnSettings>), BoxError> {
        let conns = cluster
            .connections
            .get_or_insert(self.inner.id, || {
                let runtime = Self::runtime().ok();
                Arc::new(ClusterConns::<B> {
                    pool: Pool::new(runtime.unwrap_or_else(tokio::runtime::Handle::current)),
                    settings: ArcSwapOption::empty(),
                })
            })
            .into_any()
            .downcast::<ClusterConns<B>>()
            .map_err(|_| "a MeshClient's pool has another body type")?;
        let policy = cluster.policy.load();
        let current = conns.settings.load();
        if let Some((p, s)) = current.as_deref() {
            if Arc::ptr_eq(p, &policy) {
                return Ok((Arc::clone(&conns.pool), Arc::clone(s)));
            }
        }
        let policy = Arc::clone(&policy);
        let settings = Arc::new(ConnSettings::of(
            &policy,
            &cluster.name,
            &self.inner.identity,
        ));
        let had = current.is_some();
        conns
            .settings
            .store(Some(Arc::new((policy, Arc::clone(&settings)))));
        if had {
            // The cluster's policy changed on reload: its connections drain.
            conns.pool.drain_all();
        }
        Ok((Arc::clone(&conns.pool), settings))
    }

    fn passthrough(&self) -> Result<(Arc<Pool<B>>, Arc<ConnSettings>), BoxError> {
        let runtime = Self::runtime()?;
        let conns = self.inner.passthrough.get_or_init(|| {
            Arc::new(ClusterConns {
                pool: Pool::new(runtime),
                settings: ArcSwapOption::empty(),
            })
        });
        Ok((
            Arc::clone(&conns.pool),
            Arc::clone(&self.inner.passthrough_settings),
        ))
    }

    fn send(
        &self,
        mut req: Request<B>,
    ) -> impl Future<Output = Result<Response<MeshClientBody>, BoxError>> + Send + 'static {
        let prepared = (|| {
            let (pool, settings) = match req.extensions_mut().remove::<Upstream>() {
                Some(Upstream(cluster)) => self.for_cluster(&cluster)?,
                None => self.passthrough()?,
            };
            let endpoint = req.uri().authority().cloned().ok_or_else(|| {
                BoxError::from(format!(
                    "request URI {} has no authority: MeshClient needs http://host:port/...",
                    req.uri()
                ))
            })?;
            let h2 = match settings.protocol {
                UpstreamProtocol::Http1 => false,
                UpstreamProtocol::Http2 => true,
                UpstreamProtocol::ClientProtocol => req.version() == Version::HTTP_2,
            };
            let sni = settings
                .tls
                .as_ref()
                .filter(|t| t.auto_sni())
                .and_then(|_| req.headers().get(HOST).cloned());
            prepare(&mut req, &endpoint, h2, settings.tls.is_some())?;
            let key = Key { endpoint, h2, sni };
            Ok::<_, BoxError>((pool, settings, key))
        })();
        async move {
            let (pool, settings, key) = prepared?;
            send_on(pool, settings, key, req).await
        }
    }
}

/// Shapes a request for its connection: origin-form URI and a `Host` for HTTP/1; for HTTP/2
/// the `Host` becomes the `:authority` and the scheme says whether TLS carries it.
fn prepare<B>(
    req: &mut Request<B>,
    endpoint: &Authority,
    h2: bool,
    tls: bool,
) -> Result<(), BoxError> {
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if h2 {
        let authority = match req.headers_mut().remove(HOST) {
            Some(h) => Authority::try_from(h.as_bytes())
                .map_err(|e| BoxError::from(format!("Host header is not an authority: {e}")))?,
            None => endpoint.clone(),
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
        parts.authority = Some(authority);
        parts.path_and_query = Some(path);
        *req.uri_mut() = Uri::from_parts(parts)?;
        *req.version_mut() = Version::HTTP_2;
    } else {
        if !req.headers().contains_key(HOST) {
            let host = HeaderValue::from_str(endpoint.as_str())?;
            req.headers_mut().insert(HOST, host);
        }
        *req.uri_mut() = Uri::from(path);
        if req.version() != Version::HTTP_10 {
            *req.version_mut() = Version::HTTP_11;
        }
    }
    Ok(())
}

/// Sends on a pooled (or new) connection; a request the connection never took (it was
/// closing) goes to another one.
async fn send_on<B>(
    pool: Arc<Pool<B>>,
    settings: Arc<ConnSettings>,
    key: Key,
    mut req: Request<B>,
) -> Result<Response<MeshClientBody>, BoxError>
where
    B: Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    for tries_left in (0..FRESH_CONNECTION_TRIES).rev() {
        let checkout = match pool.checkout(&key, &settings) {
            Ok(c) => c,
            Err(rx) => rx
                .await
                .map_err(|_| BoxError::from("the connection pool went away"))??,
        };
        let lease = Lease::new(
            Arc::clone(&pool) as Arc<dyn pool::Release>,
            key.clone(),
            checkout.id,
        );
        let sent = match checkout.tx {
            Tx::H1(mut tx) => {
                if tx.ready().await.is_err() {
                    continue;
                }
                let fut = tx.try_send_request(req);
                pool.give_back(&key, checkout.id, Tx::H1(tx));
                fut.await
            }
            Tx::H2(mut tx) => {
                if tx.ready().await.is_err() {
                    continue;
                }
                let sent = tx.try_send_request(req).await;
                if !checkout.confirmed && sent.is_ok() {
                    pool.confirm(&key, checkout.id);
                }
                sent
            }
        };
        match sent {
            Ok(res) => return Ok(res.map(|body| MeshClientBody::new(body, lease))),
            Err(mut e) => match e.take_message() {
                Some(back) if tries_left > 0 => req = back,
                _ => return Err(e.into_error().into()),
            },
        }
    }
    Err("no connection could take the request".into())
}

impl<B> Service<Request<B>> for MeshClient<B>
where
    B: Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    type Response = Response<MeshClientBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<MeshClientBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        Box::pin(self.send(req))
    }
}

/// The response body of a [`MeshClient`] request: the connection's body, which gives the
/// connection back to its pool when it ends (or closes an HTTP/1 connection whose response is
/// dropped before its end).
pub struct MeshClientBody {
    inner: hyper::body::Incoming,
    lease: Option<Lease>,
}

impl MeshClientBody {
    fn new(inner: hyper::body::Incoming, mut lease: Lease) -> Self {
        if inner.is_end_stream() {
            lease.finish(true);
        }
        MeshClientBody {
            inner,
            lease: Some(lease),
        }
    }

    fn finish(&mut self, reusable: bool) {
        if let Some(mut l) = self.lease.take() {
            l.finish(reusable);
        }
    }
}

impl fmt::Debug for MeshClientBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshClientBody").finish_non_exhaustive()
    }
}

impl Body for MeshClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
