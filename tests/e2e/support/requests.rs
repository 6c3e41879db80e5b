//! Requests and what comes back: the one request body type, request builders, reading a
//! response or a local reply, and sending many requests with a tally of the outcomes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use mesh_tower::body::ReplayBody;
use mesh_tower::{BoxError, Mesh, MeshError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::Service;

use super::upstream::{API, CONN_TEST};

/// The request body of every request sent through the mesh: a full body or a stream of chunks.
///
/// The error type is `Infallible` (not a boxed error): a `dyn Error` in the body type defeats
/// the compiler's proof that the spawned request futures are `Send` for every lifetime.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// An inner client the mesh can drive with [`Body`] requests, answering with bodies `RB`.
pub(crate) trait Inner<RB>:
    Service<Request<ReplayBody<Body>>, Response = Response<RB>, Error: Into<BoxError>, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S, RB> Inner<RB> for S where
    S: Service<
            Request<ReplayBody<Body>>,
            Response = Response<RB>,
            Error: Into<BoxError>,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// A response body an inner client answers with.
pub(crate) trait ResponseBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// A `method` request to `url` with a whole body.
pub(crate) fn request(method: &str, url: &str, body: impl Into<Bytes>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

/// A `method` request to `path` on [`API`] with a whole body.
pub(crate) fn full(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Body> {
    request(method, &API.url(path), body)
}

/// A GET of `path` on [`API`], with no body.
pub(crate) fn get(path: &str) -> Request<Body> {
    full("GET", path, Bytes::new())
}

/// A GET of `path` on [`CONN_TEST`], with no body.
pub(crate) fn conn_get(path: &str) -> Request<Body> {
    request("GET", &CONN_TEST.url(path), Bytes::new())
}

/// A POST to `path` on [`API`] whose body is streamed in `chunk`-byte pieces with no size hint
/// (the mesh cannot know its length up front), yielding to the scheduler between pieces.
pub(crate) fn streamed(path: &str, data: &[u8], chunk: usize) -> Request<Body> {
    let chunks: Vec<Bytes> = data.chunks(chunk).map(Bytes::copy_from_slice).collect();
    let body = Chunked {
        chunks: chunks.into_iter(),
        yielded: false,
    };
    Request::post(API.url(path))
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

/// `len` deterministic bytes that differ from chunk to chunk, so that a reordered or repeated
/// chunk changes the body's hash.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

/// Reads a whole response body: its bytes, or the error that ended it.
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

/// Sends `req` through `svc` and reads the whole response: status, headers and body (empty if
/// the body failed).
pub(crate) async fn fetch<I, RB>(
    svc: &Mesh<I>,
    req: Request<Body>,
) -> Result<(StatusCode, HeaderMap, Bytes), MeshError>
where
    I: Inner<RB>,
    RB: ResponseBody,
{
    let res = svc.request(req).await?;
    let (parts, body) = res.into_parts();
    let body = drain(body).await.unwrap_or_default();
    Ok((parts.status, parts.headers, body))
}

/// Sends `req` through `svc`: the response's status, or for an error its local reply's.
pub(crate) async fn status_of<I, RB>(svc: &Mesh<I>, req: Request<Body>) -> u16
where
    I: Inner<RB>,
    RB: ResponseBody,
{
    match fetch(svc, req).await {
        Ok((status, _, _)) => status.as_u16(),
        Err(e) => e.status().as_u16(),
    }
}

/// The local reply an error becomes (as Envoy would answer it): status, headers and body.
pub(crate) async fn local_reply(err: &MeshError) -> (StatusCode, HeaderMap, Bytes) {
    let res: Response<Full<Bytes>> = err.to_response();
    let (parts, body) = res.into_parts();
    let body = drain(body).await.expect("a local reply's body");
    (parts.status, parts.headers, body)
}

/// What came back from [`send`]: every request is counted once, in `statuses`, `errors` or
/// `unanswered`.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Responses by status.
    pub(crate) statuses: BTreeMap<u16, usize>,
    /// Responses by the name of the backend that answered (`x-backend`), when one says.
    pub(crate) by_backend: BTreeMap<String, usize>,
    /// Response bodies read whole, by content.
    pub(crate) bodies: BTreeMap<Bytes, usize>,
    /// Responses whose body ended with an error.
    pub(crate) cut_bodies: usize,
    /// Requests that ended with a mesh error.
    pub(crate) errors: Vec<MeshError>,
    /// Requests with neither response head nor error within [`send_within`]'s guard.
    pub(crate) unanswered: usize,
}

impl Tally {
    /// Responses with `status`.
    pub(crate) fn status(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Every request counted.
    pub(crate) fn total(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.errors.len() + self.unanswered
    }

    /// The share of all requests answered by a backend whose name starts with `prefix`.
    pub(crate) fn backend_share(&self, prefix: &str) -> f64 {
        let n: usize = self
            .by_backend
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum();
        n as f64 / self.total() as f64
    }

    /// Every answer by status: a response's, or for an error its local reply's.
    pub(crate) fn replies(&self) -> BTreeMap<u16, usize> {
        let mut out = self.statuses.clone();
        for e in &self.errors {
            *out.entry(e.status().as_u16()).or_default() += 1;
        }
        out
    }
}

/// How one request of [`send_within`] ended.
enum Outcome {
    /// A response: its status, the backend that says it answered, its body if read whole.
    Response {
        status: u16,
        backend: Option<String>,
        body: Option<Bytes>,
    },
    /// A mesh error.
    Error(MeshError),
    /// Nothing within the guard.
    Unanswered,
}

/// Sends `n` requests (`mk(i)` for request `i`), `concurrency` at a time, each on its own task,
/// reads every response body, and tallies what came back.
pub(crate) async fn send<I, RB>(
    svc: &Mesh<I>,
    n: usize,
    concurrency: usize,
    mk: impl Fn(usize) -> Request<Body>,
) -> Tally
where
    I: Inner<RB>,
    RB: ResponseBody,
{
    send_within(svc, n, concurrency, None, mk).await
}

/// As [`send`], and with a `guard`, a request with no response head (or error) within it is
/// given up and counted as unanswered.
pub(crate) async fn send_within<I, RB>(
    svc: &Mesh<I>,
    n: usize,
    concurrency: usize,
    guard: Option<Duration>,
    mk: impl Fn(usize) -> Request<Body>,
) -> Tally
where
    I: Inner<RB>,
    RB: ResponseBody,
{
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for i in 0..n {
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        let svc = svc.clone();
        let req = mk(i);
        set.spawn(async move {
            let _permit = permit;
            let call = svc.request(req);
            let res = match guard {
                Some(guard) => match tokio::time::timeout(guard, call).await {
                    Ok(res) => res,
                    Err(_) => return Outcome::Unanswered,
                },
                None => call.await,
            };
            match res {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let backend = res
                        .headers()
                        .get("x-backend")
                        .map(|v| v.to_str().expect("x-backend is text").to_owned());
                    let body = drain(res.into_body()).await.ok();
                    Outcome::Response {
                        status,
                        backend,
                        body,
                    }
                }
                Err(e) => Outcome::Error(e),
            }
        });
    }
    let mut out = Tally::default();
    while let Some(r) = set.join_next().await {
        match r.expect("no panic") {
            Outcome::Response {
                status,
                backend,
                body,
            } => {
                *out.statuses.entry(status).or_default() += 1;
                if let Some(b) = backend {
                    *out.by_backend.entry(b).or_default() += 1;
                }
                match body {
                    Some(body) => *out.bodies.entry(body).or_default() += 1,
                    None => out.cut_bodies += 1,
                }
            }
            Outcome::Error(e) => out.errors.push(e),
            Outcome::Unanswered => out.unanswered += 1,
        }
    }
    out
}
