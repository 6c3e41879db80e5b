//! The three set-ups a request can go through: (a) bare, (b) mesh, (c) Envoy.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use mesh_tower::body::ReplayBody;
use mesh_tower::client::LegacyClient;
use mesh_tower::{ClientContext, Mesh, MeshLayer};
use tower::{ServiceBuilder, ServiceExt};

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
}

impl Setup {
    /// Every set-up, in the order they are interleaved.
    pub(crate) const ALL: [Setup; 3] = [Setup::Bare, Setup::Mesh, Setup::Envoy];

    /// The name used on the command line and in the reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Setup::Bare => "bare",
            Setup::Mesh => "mesh",
            Setup::Envoy => "envoy",
        }
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
        /// `http://127.0.0.1:<port>/` of the v1 pods.
        v1: Vec<Uri>,
        /// `http://127.0.0.1:<port>/` of the v2 pods.
        v2: Vec<Uri>,
    },
    /// The mesh picks the subset and endpoint.
    Mesh(
        Mesh<LegacyClient<ReplayBody<Empty<Bytes>>>>,
        mesh_tower::MeshHandle,
    ),
    /// Envoy picks them.
    Envoy {
        /// The client.
        client: LegacyClient<Empty<Bytes>>,
        /// `http://<listener>/`.
        uri: Uri,
    },
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
    /// (mesh), `envoy` the listener (envoy).
    pub(crate) fn build(
        setup: Setup,
        v1: &[SocketAddr],
        v2: &[SocketAddr],
        config: &[PathBuf],
        envoy: Option<SocketAddr>,
    ) -> Result<Self, String> {
        let uri = |a: &SocketAddr| -> Result<Uri, String> {
            format!("http://{a}/")
                .parse()
                .map_err(|e| format!("bad address {a}: {e}"))
        };
        match setup {
            Setup::Bare => {
                if v1.is_empty() || v2.is_empty() {
                    return Err("the bare set-up needs --v1 and --v2 backends".to_owned());
                }
                Ok(Target::Bare {
                    client: mesh_tower::client::legacy_client(),
                    v1: v1.iter().map(uri).collect::<Result<_, _>>()?,
                    v2: v2.iter().map(uri).collect::<Result<_, _>>()?,
                })
            }
            Setup::Mesh => {
                let cfg = mesh_tower::load_files(config).map_err(|e| e.to_string())?;
                let layer = MeshLayer::builder()
                    .config(cfg)
                    .client(ClientContext::new("default").with_label("app", "checkout"))
                    .seed(1)
                    .build()
                    .map_err(|e| e.to_string())?;
                let handle = layer.handle();
                let svc = ServiceBuilder::new()
                    .layer(layer)
                    .service(mesh_tower::client::legacy_client::<ReplayBody<Empty<Bytes>>>());
                Ok(Target::Mesh(svc, handle))
            }
            Setup::Envoy => {
                let addr = envoy.ok_or("the envoy set-up needs --envoy-addr")?;
                Ok(Target::Envoy {
                    client: mesh_tower::client::legacy_client(),
                    uri: uri(&addr)?,
                })
            }
        }
    }

    /// Sends request number `i` and reads the whole body.
    pub(crate) async fn send(&self, i: u64) -> Outcome {
        match self {
            Target::Bare { client, v1, v2 } => {
                let (pods, n) = if i % 10 == 9 { (v2, i / 10) } else { (v1, i) };
                let pod = &pods[usize::try_from(n % pods.len() as u64).unwrap_or(0)];
                let mut req = Request::new(Empty::new());
                *req.uri_mut() = pod.clone();
                req.headers_mut()
                    .insert(http::header::HOST, HeaderValue::from_static(AUTHORITY));
                let res = client.request(req).await.map_err(|e| e.to_string())?;
                let status = outcome(&res);
                res.into_body().collect().await.map_err(|e| e.to_string())?;
                Ok(status)
            }
            Target::Envoy { client, uri } => {
                let mut req = Request::new(Empty::new());
                *req.uri_mut() = uri.clone();
                req.headers_mut()
                    .insert(http::header::HOST, HeaderValue::from_static(AUTHORITY));
                let res = client.request(req).await.map_err(|e| e.to_string())?;
                let status = outcome(&res);
                res.into_body().collect().await.map_err(|e| e.to_string())?;
                Ok(status)
            }
            Target::Mesh(svc, _) => {
                let req = Request::builder()
                    .uri("http://api:8080/")
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                let res = svc.clone().oneshot(req).await.map_err(|e| e.to_string())?;
                let status = outcome(&res);
                res.into_body().collect().await.map_err(|e| e.to_string())?;
                Ok(status)
            }
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
        let seq_value = HeaderValue::from(seq);
        match self {
            Target::Bare { .. } => Probe::ERROR,
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
            Target::Mesh(svc, _) => {
                let Ok(req) = Request::builder()
                    .uri("http://api:8080/")
                    .header(SEQ_HEADER, seq_value)
                    .body(Empty::<Bytes>::new())
                else {
                    return Probe::ERROR;
                };
                match svc.clone().oneshot(req).await {
                    Ok(res) => {
                        let p = Probe::of(&res);
                        match res.into_body().collect().await {
                            Ok(_) => p,
                            Err(_) => Probe::ERROR,
                        }
                    }
                    Err(e) => Probe::of(&e.to_response::<Bytes>()),
                }
            }
        }
    }
}

impl Target {
    /// The mesh's own counters (mesh set-up only): totals, and per cluster the retries,
    /// overflows and ejections.
    pub(crate) fn mesh_stats(&self) -> Option<serde_json::Value> {
        let Target::Mesh(_, handle) = self else {
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
