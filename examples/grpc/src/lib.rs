//! gRPC through the mesh: the pieces of the example, shared with its tests.
//!
//! - [`Echo`]: a one-method gRPC service (`mesh.demo.Echo/Say`) written against tonic's
//!   codec-level server, with prost messages derived in Rust (no `protoc` needed). Each server
//!   answers with its version and can be told to fail or stall its first calls.
//! - [`serve`]: runs an [`Echo`] on a loopback HTTP/2 listener.
//! - [`EchoClient`]: a tonic client over any `tower::Service` (here: the mesh around its
//!   connector), calling `Say`.
//! - [`config_yaml`]: the Istio configuration: a ServiceEntry (port protocol `GRPC`), a
//!   DestinationRule with subsets v1 and v2, a VirtualService splitting 80/20 with retries on
//!   `unavailable`, `cancelled` and `resource-exhausted`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

/// The request of `Say`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SayRequest {
    /// What to echo.
    #[prost(string, tag = "1")]
    pub text: String,
}

/// The reply of `Say`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SayReply {
    /// The text echoed.
    #[prost(string, tag = "1")]
    pub text: String,
    /// The version of the server that answered.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// The method's path.
pub const SAY: &str = "/mesh.demo.Echo/Say";

/// How a server treats its calls, in order: the first `fail.1` calls fail with `fail.0`, the
/// first `stall` calls wait `stall_for` (tokio time) before answering.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// A status and how many of the first calls get it (trailers-only responses).
    pub fail: (tonic::Code, usize),
    /// How many of the first calls stall.
    pub stall: usize,
    /// How long a stalled call waits.
    pub stall_for: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            fail: (tonic::Code::Ok, 0),
            stall: 0,
            stall_for: Duration::ZERO,
        }
    }
}

/// One `Echo` server: its version, its behaviour, the calls it saw.
#[derive(Debug, Clone)]
pub struct Echo {
    version: Arc<str>,
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<AtomicUsize>,
    timeouts: Arc<Mutex<Vec<Option<String>>>>,
}

impl Echo {
    /// A server answering as `version`.
    pub fn new(version: &str) -> Echo {
        Echo {
            version: version.into(),
            behaviour: Arc::default(),
            calls: Arc::default(),
            timeouts: Arc::default(),
        }
    }

    /// Replaces the behaviour (the call count starts over).
    pub fn set_behaviour(&self, b: Behaviour) {
        *self
            .behaviour
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = b;
        self.calls.store(0, Ordering::SeqCst);
    }

    /// Calls received.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The `grpc-timeout` each call carried.
    pub fn grpc_timeouts(&self) -> Vec<Option<String>> {
        self.timeouts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl tonic::server::UnaryService<SayRequest> for Echo {
    type Response = SayReply;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<tonic::Response<SayReply>, tonic::Status>>
                + Send,
        >,
    >;

    fn call(&mut self, req: tonic::Request<SayRequest>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.timeouts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(timeout);
        let b = self
            .behaviour
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let version = self.version.to_string();
        Box::pin(async move {
            if n <= b.stall {
                tokio::time::sleep(b.stall_for).await;
            }
            if n <= b.fail.1 {
                return Err(tonic::Status::new(b.fail.0, "failing on purpose"));
            }
            Ok(tonic::Response::new(SayReply {
                text: req.into_inner().text,
                version,
            }))
        })
    }
}

impl tower::Service<http::Request<hyper::body::Incoming>> for Echo {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            if req.uri().path() != SAY {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            let codec = tonic_prost::ProstCodec::<SayReply, SayRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(me, req).await)
        })
    }
}

/// Serves `echo` over HTTP/2 (prior knowledge) on a new loopback port until the runtime
/// ends; returns the address.
pub async fn serve(echo: Echo) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = TowerToHyperService::new(echo.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .http2_only()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A tonic client for `Echo` over `inner` (any service of HTTP requests, such as the mesh).
#[derive(Debug, Clone)]
pub struct EchoClient<T> {
    grpc: tonic::client::Grpc<T>,
}

impl<T> EchoClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    /// A client sending to `origin` (`http://host:port`) through `inner`.
    pub fn new(inner: T, origin: http::Uri) -> Self {
        EchoClient {
            grpc: tonic::client::Grpc::with_origin(inner, origin),
        }
    }

    /// Calls `Say` with `text`; `timeout` becomes the `grpc-timeout` header.
    pub async fn say(
        &mut self,
        text: &str,
        timeout: Option<Duration>,
    ) -> Result<SayReply, tonic::Status> {
        let mut req = tonic::Request::new(SayRequest {
            text: text.to_owned(),
        });
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.into().to_string()))?;
        let codec = tonic_prost::ProstCodec::<SayRequest, SayReply>::default();
        let res = self
            .grpc
            .unary(req, PathAndQuery::from_static(SAY), codec)
            .await?;
        Ok(res.into_inner())
    }
}

/// The Istio configuration of the example: `echo.grpc.test:50051` (a `GRPC` port) served by
/// `v1` and `v2`, split `v1_weight`/`100 - v1_weight`, retried on `unavailable`,
/// `cancelled`, `resource-exhausted` (and `reset`, so that a per-try timeout is retried), 3
/// attempts of at most `per_try`.
pub fn config_yaml(v1: SocketAddr, v2: SocketAddr, v1_weight: u32, per_try: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.grpc.test]
  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]
  resolution: STATIC
  endpoints:
  - {{address: {}, ports: {{grpc: {}}}, labels: {{version: v1}}}}
  - {{address: {}, ports: {{grpc: {}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: echo.grpc.test
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.grpc.test]
  http:
  - retries: {{attempts: 3, perTryTimeout: {per_try}, retryOn: \"unavailable,cancelled,resource-exhausted,reset\"}}
    route:
    - {{destination: {{host: echo.grpc.test, subset: v1}}, weight: {v1_weight}}}
    - {{destination: {{host: echo.grpc.test, subset: v2}}, weight: {}}}
",
        v1.ip(),
        v1.port(),
        v2.ip(),
        v2.port(),
        100 - v1_weight
    )
}

/// The origin the client calls.
pub const ORIGIN: &str = "http://echo.grpc.test:50051";
