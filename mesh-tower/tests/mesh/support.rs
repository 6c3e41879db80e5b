//! The mock client, configurations and helpers every test module shares.

pub(crate) use std::collections::BTreeMap;
pub(crate) use std::future::Future;
pub(crate) use std::pin::Pin;
pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::task::{Context, Poll};
pub(crate) use std::time::Duration;

pub(crate) use bytes::Bytes;
pub(crate) use http::{HeaderMap, Request, Response, StatusCode};
pub(crate) use http_body_util::{BodyExt, Full};
pub(crate) use tower::{Layer, Service, ServiceExt};

pub(crate) use mesh_tower::{BoxError, Mesh, MeshError, MeshHandle, MeshLayer};

/// What the mock received for one attempt.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Seen {
    pub(crate) fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
    }
    pub(crate) fn host(&self) -> &str {
        self.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    }
    pub(crate) fn path(&self) -> &str {
        self.uri.path_and_query().map_or("", |p| p.as_str())
    }
}

/// How the mock answers.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Status(u16),
    /// Waits, then answers with the status.
    Slow(Duration, u16),
    /// Fails like a refused connection.
    Refused,
    /// Answers with a status and extra headers.
    WithHeaders(u16, Vec<(&'static str, &'static str)>),
}

pub(crate) type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// A hand-written mock client: records every request, answers by script.
#[derive(Clone)]
pub(crate) struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

impl Mock {
    pub(crate) fn new(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            seen: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(script),
        }
    }

    pub(crate) fn always(status: u16) -> Self {
        Self::new(move |_, _| Reply::Status(status))
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl<B> Service<Request<B>> for Mock
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let seen = Arc::clone(&self.seen);
        let script = Arc::clone(&self.script);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let s = Seen {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
            };
            let n = {
                let mut v = seen.lock().unwrap();
                v.push(s.clone());
                v.len()
            };
            let reply = script(&s, n);
            let (status, headers) = match reply {
                Reply::Status(st) => (st, Vec::new()),
                Reply::Slow(d, st) => {
                    tokio::time::sleep(d).await;
                    (st, Vec::new())
                }
                Reply::Refused => {
                    return Err(
                        Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
                            as BoxError,
                    )
                }
                Reply::WithHeaders(st, h) => (st, h),
            };
            let mut res = Response::new(Full::new(Bytes::from_static(b"upstream body")));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                res.headers_mut().insert(k, v.parse().unwrap());
            }
            Ok(res)
        })
    }
}

/// A ServiceEntry with endpoints 10.0.0.1 (v1) and 10.0.0.2 (v2), port 8080.
pub(crate) const SE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.mesh.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
";

pub(crate) const SUBSETS: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
";

pub(crate) fn config(docs: &[&str]) -> mesh_model::MeshConfig {
    let mut loader = mesh_model::Loader::new();
    for (i, d) in docs.iter().enumerate() {
        loader.add_str(&format!("doc{i}.yaml"), d);
    }
    let loaded = loader.finish();
    let errors: Vec<String> = loaded
        .diagnostics()
        .iter()
        .filter(|d| d.is_refusal())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "config errors: {errors:#?}");
    loaded.into_config()
}

/// A VirtualService for `api.mesh.test` with the given `http:` routes.
pub(crate) fn vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.mesh.test]
  http:
{http}"
    )
}

pub(crate) fn mesh(docs: &[&str], mock: &Mock) -> (Mesh<Mock>, MeshHandle) {
    let layer = MeshLayer::builder()
        .config(config(docs))
        .seed(7)
        .attempt_count_header(true)
        .attempt_count_in_response(true)
        .build()
        .expect("builds");
    (layer.layer(mock.clone()), layer.handle())
}

pub(crate) fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://api.mesh.test:8080{path}"))
        .body(Full::default())
        .unwrap()
}

pub(crate) async fn send(
    svc: &mut Mesh<Mock>,
    req: Request<Full<Bytes>>,
) -> Result<Response<mesh_tower::MeshBody<Full<Bytes>>>, MeshError> {
    ServiceExt::<Request<Full<Bytes>>>::ready(svc)
        .await?
        .call(req)
        .await
}

pub(crate) async fn body_of(res: Response<mesh_tower::MeshBody<Full<Bytes>>>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

pub(crate) fn header<'a, B>(res: &'a Response<B>, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A response body that yields one chunk every `every`, `chunks` times, then ends (or, with
/// [`then_stall`](Self::then_stall), never ends).
pub(crate) struct Trickle {
    every: Duration,
    chunks: usize,
    stall: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Trickle {
    pub(crate) fn new(every: Duration, chunks: usize) -> Self {
        Trickle {
            every,
            chunks,
            stall: false,
            sleep: Box::pin(tokio::time::sleep(every)),
        }
    }

    /// After the last chunk, wait forever instead of ending.
    pub(crate) fn then_stall(mut self) -> Self {
        self.stall = true;
        self
    }
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if self.chunks == 0 {
            return if self.stall {
                Poll::Pending
            } else {
                Poll::Ready(None)
            };
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.chunks -= 1;
        let next = tokio::time::Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b".")))))
    }
}
