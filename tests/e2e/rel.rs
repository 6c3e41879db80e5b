//! Helpers shared by the reliability tests (`hostile`, `exactly`, `reload_storm`, `load`): one
//! request body type for full and streamed bodies, mesh construction, a raw TCP server for
//! behaviours a well-behaved HTTP server cannot produce, and the leak check.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use mesh_tower::body::ReplayBody;
use mesh_tower::{BoxError, ClientContext, MeshHandle, MeshLayer, Stats};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceBuilder;

/// The request body of every reliability test: a full body or a stream of chunks.
///
/// The error type is `Infallible` (not a boxed error): a `dyn Error` in the body type defeats
/// the compiler's proof that the spawned request futures are `Send` for every lifetime.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// The inner client: hyper-util's legacy client, as the mesh drives it.
pub(crate) type Inner = mesh_tower::client::LegacyClient<ReplayBody<Body>>;

/// The hyper-util client wrapped in the mesh.
pub(crate) type Client = mesh_tower::Mesh<Inner>;

/// The ServiceEntry declaring host `api` (port 8080) on the given loopback ports, each with a
/// `version` label.
pub(crate) fn service_entry(endpoints: &[(u16, &str)]) -> String {
    let mut s = String::from(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api-pods}\nspec:\n  hosts: [api.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n  endpoints:\n",
    );
    for (port, version) in endpoints {
        s.push_str(&format!(
            "  - {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{version: {version}}}}}\n"
        ));
    }
    s
}

/// A DestinationRule for `api` with subsets `v1`, `v2` and `v3`, and an optional traffic policy
/// (YAML lines indented by four spaces).
pub(crate) fn destination_rule(policy: &str) -> String {
    let policy = if policy.is_empty() {
        String::new()
    } else {
        format!("  trafficPolicy:\n{policy}")
    };
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api}}
spec:
  host: api
{policy}  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}
"
    )
}

/// A VirtualService for `api` with one route to `subset` and extra route-level YAML (indented by
/// four spaces, e.g. `    timeout: 1s\n`).
pub(crate) fn virtual_service(subset: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api}}
spec:
  hosts: [api]
  http:
  - route:
    - destination: {{host: api, subset: {subset}}}
{extra}"
    )
}

/// Loads YAML documents, asserting they are valid.
pub(crate) fn load(docs: &[&str]) -> mesh_model::MeshConfig {
    let mut loader = mesh_model::Loader::new();
    for (i, d) in docs.iter().enumerate() {
        loader.add_str(&format!("doc{i}.yaml"), d);
    }
    let loaded = loader.finish();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "config errors: {errors:#?}");
    loaded.into_config()
}

/// One backend on `port` as subset v1 of `api`, its DestinationRule, and a VirtualService routing
/// to it with `route_extra` (indented YAML) added to the route.
pub(crate) fn config_for(port: u16, route_extra: &str) -> mesh_model::MeshConfig {
    load(&[
        &service_entry(&[(port, "v1")]),
        &destination_rule(""),
        &virtual_service("v1", route_extra),
    ])
}

/// Builds the mesh around `inner`, optionally with a replay cap.
pub(crate) fn mesh_with(
    cfg: mesh_model::MeshConfig,
    replay_cap: Option<usize>,
    inner: Inner,
) -> (Client, MeshHandle) {
    let mut builder = MeshLayer::builder()
        .config(cfg)
        .client(ClientContext::new("default"))
        .seed(17)
        .attempt_count_header(true)
        .attempt_count_in_response(true);
    if let Some(cap) = replay_cap {
        builder = builder.replay_cap(cap);
    }
    let layer = builder.build().expect("the config compiles");
    let handle = layer.handle();
    (ServiceBuilder::new().layer(layer).service(inner), handle)
}

/// Builds the mesh around the default legacy client.
pub(crate) fn mesh(cfg: mesh_model::MeshConfig) -> (Client, MeshHandle) {
    mesh_with(cfg, None, mesh_tower::client::legacy_client())
}

/// A request to `http://api:8080{path}` with a whole body.
pub(crate) fn full(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(format!("http://api:8080{path}"))
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

/// A GET with no body.
pub(crate) fn get(path: &str) -> Request<Body> {
    full("GET", path, Bytes::new())
}

/// A POST whose body is streamed in `chunk`-byte pieces with no size hint (the mesh cannot know
/// its length up front), yielding to the scheduler between pieces.
pub(crate) fn streamed(path: &str, data: &[u8], chunk: usize) -> Request<Body> {
    let chunks: Vec<Bytes> = data.chunks(chunk).map(Bytes::copy_from_slice).collect();
    let body = Chunked {
        chunks: chunks.into_iter(),
        yielded: false,
    };
    Request::post(format!("http://api:8080{path}"))
        .body(BodyExt::boxed(body))
        .unwrap()
}

/// A body of pieces, each returned after one `Pending`, with an unknown length.
struct Chunked {
    chunks: std::vec::IntoIter<Bytes>,
    yielded: bool,
}

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        Poll::Ready(self.chunks.next().map(|c| Ok(http_body::Frame::data(c))))
    }
}

/// Waits (bounded: 5 s) until no cluster has an active or pending request, and returns the
/// stats then. Response bodies must have been consumed or dropped first.
pub(crate) async fn settled(handle: &MeshHandle) -> Stats {
    for _ in 0..500 {
        let stats = handle.stats();
        if stats
            .clusters()
            .iter()
            .all(|c| c.active_requests() == 0 && c.pending_requests() == 0)
        {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = handle.stats();
    panic!("requests still active or pending: {:?}", stats.clusters());
}

/// Asserts nothing leaked: every cluster has zero active and pending requests.
pub(crate) async fn assert_no_leak(handle: &MeshHandle) -> Stats {
    let stats = settled(handle).await;
    for c in stats.clusters() {
        assert_eq!(c.active_requests(), 0, "{c:?}");
        assert_eq!(c.pending_requests(), 0, "{c:?}");
    }
    stats
}

/// A raw TCP server on `127.0.0.1:0`: each accepted connection is handed to a behaviour, which
/// can write anything, byte by byte, or reset. Counts connections. Stops when dropped.
pub(crate) struct RawServer {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RawServer {
    /// Starts serving; `behaviour` runs on its own task for every connection.
    pub(crate) async fn start<F, Fut>(behaviour: F) -> RawServer
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                conns.spawn(behaviour(stream));
                while conns.try_join_next().is_some() {}
            }
        });
        RawServer {
            addr,
            accepted,
            task,
        }
    }

    /// The bound port.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        // Aborting the accept task drops the JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

/// Reads a request head (up to the blank line), at most 64 KiB. `None` if the peer went away.
pub(crate) async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 64 * 1024 {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(head);
        }
    }
    None
}

/// Reads and discards the whole body of a response, returning whether it ended cleanly.
pub(crate) async fn drain<B>(body: B) -> Result<Bytes, BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    body.collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(Into::into)
}
