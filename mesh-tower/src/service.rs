//! [`Mesh`]: the service that drives routing, faults, mirrors, timeouts, retries, pools, load
//! balancing and outlier detection around a client. The work is in `crate::driver` and
//! `crate::stage`; this file is the tower plumbing.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;

use crate::body::{MeshBody, ReplayBody};
use crate::error::MeshError;
use crate::future::{BoxResponseFuture, ResponseFuture};
use crate::shared::Shared;
use crate::BoxError;

/// The mesh around an inner client `S`. Built by [`MeshLayer`](crate::MeshLayer).
///
/// Always ready: each request calls a clone of `S` with
/// [`oneshot`](tower::ServiceExt::oneshot), so `S` must be cheap to clone
/// (hyper-util's and reqwest's clients are).
pub struct Mesh<S> {
    inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S> Mesh<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped client, taken out of the mesh.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Mesh<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for Mesh<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh").finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<B>> for Mesh<S>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<MeshBody<RB>>;
    type Error = MeshError;
    type Future = ResponseFuture<S, B, RB>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span = crate::telemetry::spans::request_span(&req);
        ResponseFuture::new(Arc::clone(&self.shared), self.inner.clone(), req, span)
    }
}

impl<S> Mesh<S> {
    /// Sends a request through the mesh, like [`Service::call`] but from a
    /// shared reference and without waiting for readiness (the mesh is always
    /// ready; the inner client's readiness is awaited per attempt).
    ///
    /// The returned future is boxed and names no type of `S`, which keeps the
    /// futures of tasks that hold it free of the "implementation of `Service`
    /// is not general enough" error that `ServiceExt::oneshot` (or a future
    /// that holds `S::Future`, as [`Service::call`]'s does) can hit when body
    /// or error types carry trait objects. [`Service::call`] does not box.
    pub fn request<B, RB>(&self, req: Request<B>) -> BoxResponseFuture<RB>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        RB: http_body::Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        let span = crate::telemetry::spans::request_span(&req);
        Box::pin(ResponseFuture::new(
            Arc::clone(&self.shared),
            self.inner.clone(),
            req,
            span,
        ))
    }
}
