//! The set-ups a request can go through: (a) bare, (b) mesh, (c) Envoy, in plaintext, and the
//! same three with Istio mutual TLS to the backends (`--mtls`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use mesh_tower::body::ReplayBody;
use mesh_tower::client::{LegacyClient, MeshClient};
use mesh_tower::{ClientContext, Mesh, MeshLayer};
use tokio::sync::Semaphore;
use tower::{ServiceBuilder, ServiceExt};

use crate::tls::{istio_sni, BareTls};

/// Which set-up a client process drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Setup {
    /// (a) The hyper-util client straight to the backends.
    Bare,
    /// (b) The same client wrapped in `mesh_tower::MeshLayer`.
    Mesh,
    /// (c) The same client through an Envoy sidecar.
    Envoy,
    /// (a) with mutual TLS: the hyper-util client over a rustls connector with the workload's
    /// certificate, straight to the backends.
    #[value(name = "bare-mtls")]
    #[serde(rename = "bare-mtls")]
    BareMtls,
    /// (b) with mutual TLS: `MeshLayer` over the mesh's own connector (`MeshClient`), which
    /// originates `ISTIO_MUTUAL` with the workload's certificates.
    #[value(name = "mesh-mtls")]
    #[serde(rename = "mesh-mtls")]
    MeshMtls,
    /// (c) with mutual TLS: plaintext to Envoy on loopback, Envoy originates `ISTIO_MUTUAL`.
    #[value(name = "envoy-mtls")]
    #[serde(rename = "envoy-mtls")]
    EnvoyMtls,
}

impl Setup {
    /// The plaintext set-ups, in the order they are interleaved.
    pub(crate) const ALL: [Setup; 3] = [Setup::Bare, Setup::Mesh, Setup::Envoy];
    /// The mutual TLS set-ups, in the order they are interleaved.
    pub(crate) const MTLS: [Setup; 3] = [Setup::BareMtls, Setup::MeshMtls, Setup::EnvoyMtls];

    /// The name used on the command line and in the reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Setup::Bare => "bare",
            Setup::Mesh => "mesh",
            Setup::Envoy => "envoy",
            Setup::BareMtls => "bare-mtls",
            Setup::MeshMtls => "mesh-mtls",
            Setup::EnvoyMtls => "envoy-mtls",
        }
    }

    /// Whether requests go through Envoy.
    pub(crate) fn is_envoy(self) -> bool {
        matches!(self, Setup::Envoy | Setup::EnvoyMtls)
    }

    /// Whether the backends speak mutual TLS.
    pub(crate) fn is_mtls(self) -> bool {
        Setup::MTLS.contains(&self)
    }
}

/// The authority every set-up addresses (the bare set-up only in its `Host` header).
pub(crate) const AUTHORITY: &str = "api:8080";

/// A way of sending one request and reading the whole answer.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Picks a backend itself: request `i` goes to v2 when `i % 10 == 9` (the same 90/10
    /// share as the route), alternating between the two pods of the subset.
    Bare {
        /// The client.
        client: LegacyClient<Empty<Bytes>>,
        /// `http://127.0.0.1:<port>/` of the v1 and v2 pods.
        pods: Pods,
    },
    /// The same, over mutual TLS, with at most [`BARE_MTLS_IN_FLIGHT`] requests in flight.
    BareMtls {
        /// The client.
        client: Client<BareTls, Empty<Bytes>>,
        /// `https://127.0.0.1:<port>/` of the v1 and v2 pods.
        pods: Pods,
        /// Permits for requests in flight.
        in_flight: Arc<Semaphore>,
    },
    /// The mesh picks the subset and endpoint.
    Mesh(
        Mesh<LegacyClient<ReplayBody<Empty<Bytes>>>>,
        mesh_tower::MeshHandle,
    ),
    /// The mesh picks them and its own connector originates mutual TLS.
    MeshMtls(
        Mesh<MeshClient<ReplayBody<Empty<Bytes>>>>,
        mesh_tower::MeshHandle,
    ),
    /// Envoy picks them (and originates mutual TLS in the `envoy-mtls` set-up).
    Envoy {
        /// The client.
        client: LegacyClient<Empty<Bytes>>,
        /// `http://<listener>/`.
        uri: Uri,
    },
}

/// Requests the bare mTLS client has in flight at most, the others wait for their turn. An
/// HTTP/1.1 connection carries one request at a time, and hyper-util's pool opens a connection
/// for every request that finds none idle; without a bound, a moment's backlog becomes a burst
/// of TLS handshakes, which make the backlog longer (the mesh and Envoy hold the same cluster to
/// the DestinationRule's `maxConnections: 100`).
pub(crate) const BARE_MTLS_IN_FLIGHT: usize = 100;

/// The pods the bare set-ups pick from.
#[derive(Debug, Clone)]
pub(crate) struct Pods {
    v1: Vec<Uri>,
    v2: Vec<Uri>,
}

impl Pods {
    /// Request `i`'s pod: v2 when `i % 10 == 9`, alternating between the pods of the subset.
    fn pick(&self, i: u64) -> &Uri {
        let (pods, n) = if i % 10 == 9 {
            (&self.v2, i / 10)
        } else {
            (&self.v1, i)
        };
        &pods[usize::try_from(n % pods.len() as u64).unwrap_or(0)]
    }
}

/// What a request ended with: an HTTP status and whether a backend wrote it (the backends
/// label every answer with `x-backend`; a local reply of the mesh or Envoy has none), or an
/// error.
pub(crate) type Outcome = Result<(u16, bool), String>;

fn outcome<B>(res: &http::Response<B>) -> (u16, bool) {
    (
        res.status().as_u16(),
        res.headers().contains_key("x-backend"),
    )
}

impl Target {
    /// Builds the set-up. `v1`/`v2` are backend addresses (bare), `config` the mesh's files
    /// (mesh), `envoy` the listener (envoy), `certs` the workload's certificates (bare and mesh
    /// with mutual TLS).
    pub(crate) fn build(
        setup: Setup,
        v1: &[SocketAddr],
        v2: &[SocketAddr],
        config: &[PathBuf],
        envoy: Option<SocketAddr>,
        certs: Option<&Path>,
    ) -> Result<Self, String> {
        let uri = |scheme: &str, a: &SocketAddr| -> Result<Uri, String> {
            format!("{scheme}://{a}/")
                .parse()
                .map_err(|e| format!("bad address {a}: {e}"))
        };
        let pods = |scheme: &str| -> Result<Pods, String> {
            if v1.is_empty() || v2.is_empty() {
                return Err("the bare set-ups need --v1 and --v2 backends".to_owned());
            }
            Ok(Pods {
                v1: v1
                    .iter()
                    .map(|a| uri(scheme, a))
                    .collect::<Result<_, _>>()?,
                v2: v2
                    .iter()
                    .map(|a| uri(scheme, a))
                    .collect::<Result<_, _>>()?,
            })
        };
        let certs_dir = || certs.ok_or("the mutual TLS set-ups need --workload-certificates");
        let mesh_layer = || -> Result<MeshLayer, String> {
            let cfg = mesh_tower::load_files(config).map_err(|e| e.to_string())?;
            MeshLayer::builder()
                .config(cfg)
                .client(ClientContext::new("default").with_label("app", "checkout"))
                .seed(1)
                .build()
                .map_err(|e| e.to_string())
        };
        match setup {
            Setup::Bare => Ok(Target::Bare {
                client: mesh_tower::client::legacy_client(),
                pods: pods("http")?,
            }),
            Setup::BareMtls => {
                // Each pod's SNI is the one ISTIO_MUTUAL gives its subset.
                let sni = v1
                    .iter()
                    .map(|a| (a.port(), istio_sni("v1")))
                    .chain(v2.iter().map(|a| (a.port(), istio_sni("v2"))))
                    .collect();
                let connector = BareTls::new(certs_dir()?, sni)?;
                Ok(Target::BareMtls {
                    client: mesh_tower::client::legacy_builder().build(connector),
                    pods: pods("https")?,
                    in_flight: Arc::new(Semaphore::new(BARE_MTLS_IN_FLIGHT)),
                })
            }
            Setup::Mesh => {
                let layer = mesh_layer()?;
                let handle = layer.handle();
                let svc = ServiceBuilder::new()
                    .layer(layer)
                    .service(mesh_tower::client::legacy_client::<ReplayBody<Empty<Bytes>>>());
                Ok(Target::Mesh(svc, handle))
            }
            Setup::MeshMtls => {
                let layer = mesh_layer()?;
                let handle = layer.handle();
                let connector = MeshClient::builder()
                    .workload_certificates(certs_dir()?)
                    .build_for::<ReplayBody<Empty<Bytes>>>(&layer);
                let svc = ServiceBuilder::new().layer(layer).service(connector);
                Ok(Target::MeshMtls(svc, handle))
            }
            Setup::Envoy | Setup::EnvoyMtls => {
                let addr = envoy.ok_or("the envoy set-ups need --envoy-addr")?;
                Ok(Target::Envoy {
                    client: mesh_tower::client::legacy_client(),
                    uri: uri("http", &addr)?,
                })
            }
        }
    }

    /// Sends request number `i` and reads the whole body.
    pub(crate) async fn send(&self, i: u64) -> Outcome {
        /// The request to `uri` with `Host: api:8080`, its answer and whole body.
        macro_rules! direct {
            ($client:expr, $uri:expr) => {{
                let mut req = Request::new(Empty::new());
                *req.uri_mut() = $uri.clone();
                req.headers_mut()
                    .insert(http::header::HOST, HeaderValue::from_static(AUTHORITY));
                let res = $client.request(req).await.map_err(|e| e.to_string())?;
                let status = outcome(&res);
                res.into_body().collect().await.map_err(|e| e.to_string())?;
                Ok(status)
            }};
        }
        /// `http://api:8080/` through the mesh, its answer and whole body.
        macro_rules! mesh {
            ($svc:expr) => {{
                let req = Request::builder()
                    .uri("http://api:8080/")
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                let res = $svc.clone().oneshot(req).await.map_err(|e| e.to_string())?;
                let status = outcome(&res);
                res.into_body().collect().await.map_err(|e| e.to_string())?;
                Ok(status)
            }};
        }
        match self {
            Target::Bare { client, pods } => direct!(client, pods.pick(i)),
            Target::BareMtls {
                client,
                pods,
                in_flight,
            } => {
                let _permit = in_flight.acquire().await.map_err(|e| e.to_string())?;
                direct!(client, pods.pick(i))
            }
            Target::Envoy { client, uri } => direct!(client, uri),
            Target::Mesh(svc, _) => mesh!(svc),
            Target::MeshMtls(svc, _) => mesh!(svc),
        }
    }
}

/// Header carrying the request's number, so the backends' records tie every attempt to the
/// request it belongs to (the mesh and Envoy both forward it unchanged).
pub(crate) const SEQ_HEADER: &str = "x-bench-seq";

/// What a behaviour probe learnt of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    /// The status (0: a transport error, no answer).
    pub(crate) status: u16,
    /// Whether a backend wrote the answer (`x-backend`); false for a local reply.
    pub(crate) from_backend: bool,
    /// Whether the answer carried `x-envoy-overloaded: true`.
    pub(crate) overloaded: bool,
}

impl Probe {
    fn of<B>(res: &http::Response<B>) -> Self {
        Probe {
            status: res.status().as_u16(),
            from_backend: res.headers().contains_key("x-backend"),
            overloaded: res
                .headers()
                .get("x-envoy-overloaded")
                .is_some_and(|v| v.as_bytes() == b"true"),
        }
    }

    const ERROR: Probe = Probe {
        status: 0,
        from_backend: false,
        overloaded: false,
    };
}

impl Target {
    /// Sends request number `seq` with [`SEQ_HEADER`] and reads the whole answer. A mesh error
    /// becomes the local reply Envoy would have sent for it ([`mesh_tower::MeshError::to_response`]),
    /// so both set-ups are read the same way.
    pub(crate) async fn probe(&self, seq: u64) -> Probe {
        /// `http://api:8080/` through the mesh, read as Envoy's answer would be.
        macro_rules! mesh {
            ($svc:expr, $seq:expr) => {{
                let Ok(req) = Request::builder()
                    .uri("http://api:8080/")
                    .header(SEQ_HEADER, $seq)
                    .body(Empty::<Bytes>::new())
                else {
                    return Probe::ERROR;
                };
                match $svc.clone().oneshot(req).await {
                    Ok(res) => {
                        let p = Probe::of(&res);
                        match res.into_body().collect().await {
                            Ok(_) => p,
                            Err(_) => Probe::ERROR,
                        }
                    }
                    Err(e) => Probe::of(&e.to_response::<Bytes>()),
                }
            }};
        }
        let seq_value = HeaderValue::from(seq);
        match self {
            Target::Bare { .. } | Target::BareMtls { .. } => Probe::ERROR,
            Target::Envoy { client, uri } => {
                let mut req = Request::new(Empty::new());
                *req.uri_mut() = uri.clone();
                req.headers_mut()
                    .insert(http::header::HOST, HeaderValue::from_static(AUTHORITY));
                req.headers_mut().insert(SEQ_HEADER, seq_value);
                let Ok(res) = client.request(req).await else {
                    return Probe::ERROR;
                };
                let p = Probe::of(&res);
                match res.into_body().collect().await {
                    Ok(_) => p,
                    Err(_) => Probe::ERROR,
                }
            }
            Target::Mesh(svc, _) => mesh!(svc, seq_value),
            Target::MeshMtls(svc, _) => mesh!(svc, seq_value),
        }
    }
}

impl Target {
    /// The mesh's own counters (mesh set-up only): totals, and per cluster the retries,
    /// overflows and ejections.
    pub(crate) fn mesh_stats(&self) -> Option<serde_json::Value> {
        let (Target::Mesh(_, handle) | Target::MeshMtls(_, handle)) = self else {
            return None;
        };
        let stats = handle.stats();
        let t = stats.totals();
        let clusters: Vec<serde_json::Value> = stats
            .clusters()
            .iter()
            .map(|c| {
                serde_json::json!({
                    "subset": c.subset(),
                    "requests": c.requests(),
                    "failures": c.failures(),
                    "retries": c.retries(),
                    "overflows": c.overflows(),
                    "ejections": c.ejections(),
                })
            })
            .collect();
        Some(serde_json::json!({
            "requests": t.requests,
            "successes": t.successes,
            "failures": t.failures,
            "retries": t.retries,
            "overflows": t.overflows,
            "clusters": clusters,
        }))
    }
}
