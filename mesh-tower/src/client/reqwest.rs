//! `reqwest::Client` as a `tower::Service<http::Request<B>>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tower_service::Service;

use crate::BoxError;

/// A `reqwest::Client` seen as a `Service<http::Request<B>>`.
///
/// Each request's body is wrapped with `reqwest::Body::wrap` (so it streams,
/// and a [`ReplayBody`](crate::body::ReplayBody) works), converted with
/// reqwest's own `TryFrom<http::Request<_>>`, executed, and the answer is
/// returned as `http::Response<reqwest::Body>`.
///
/// The URI must be absolute (`http://host:port/path`); a relative one fails
/// with a reqwest builder error before anything is sent. Headers, including
/// an explicit `Host`, are passed through unchanged.
///
/// Like every `reqwest::Client`, the service is always ready and cheap to
/// clone (the client is reference-counted).
///
/// Build the client with [`reqwest_client_builder`], or make sure yourself
/// that reqwest's retries and redirects are off: the mesh owns retries, and a
/// redirect is a response for the application to see.
#[derive(Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
}

/// A `reqwest::ClientBuilder` set up for use under the mesh.
///
/// - retries off (`reqwest::retry::never()`): retry policy, attempt counts and
///   budgets belong to the mesh layer;
/// - redirects off (`redirect::Policy::none()`);
/// - no proxy: mesh traffic goes straight to the endpoint;
/// - `TCP_NODELAY`, a 10 s connect timeout (Istio's default) and a 90 s idle
///   pool timeout.
pub fn reqwest_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .retry(reqwest::retry::never())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
}

impl ReqwestService {
    /// Wraps an existing client, as it is.
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// A service over a client from [`reqwest_client_builder`].
    ///
    /// Fails only if reqwest cannot build a client on this system.
    pub fn with_mesh_defaults() -> Result<Self, reqwest::Error> {
        reqwest_client_builder().build().map(Self::new)
    }

    /// The wrapped client.
    pub fn get_ref(&self) -> &reqwest::Client {
        &self.client
    }

    /// Gives the wrapped client back.
    pub fn into_inner(self) -> reqwest::Client {
        self.client
    }
}

impl fmt::Debug for ReqwestService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestService").finish_non_exhaustive()
    }
}

impl<B> Service<http::Request<B>> for ReqwestService
where
    B: Body + Send + Sync + 'static,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = ReqwestFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let client = self.client.clone();
        let req = req.map(reqwest::Body::wrap);
        ReqwestFuture {
            inner: Box::pin(async move {
                let req = reqwest::Request::try_from(req)?;
                let res = client.execute(req).await?;
                Ok(http::Response::from(res))
            }),
        }
    }
}

/// Response future of [`ReqwestService`].
pub struct ReqwestFuture {
    inner:
        Pin<Box<dyn Future<Output = Result<http::Response<reqwest::Body>, reqwest::Error>> + Send>>,
}

impl Future for ReqwestFuture {
    type Output = Result<http::Response<reqwest::Body>, reqwest::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ReqwestFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestFuture").finish_non_exhaustive()
    }
}
