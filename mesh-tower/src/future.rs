//! [`ResponseFuture`]: the future of [`Mesh::call`](crate::Mesh), and the mesh-wide totals it
//! counts when the request ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::body::MeshBody;
use crate::cluster::Counters;
use crate::error::MeshError;
use crate::shared::Shared;
use http::Response;

/// The future of [`Mesh::call`](tower_service::Service::call) and
/// [`Mesh::request`](crate::Mesh::request).
pub struct ResponseFuture<RB> {
    inner: Pin<Box<dyn Future<Output = Result<Response<MeshBody<RB>>, MeshError>> + Send>>,
    shared: Arc<Shared>,
    /// `mesh.request`, entered on every poll (like `tracing::Instrumented`, without moving
    /// the future once more).
    span: tracing::Span,
}

impl<RB> ResponseFuture<RB> {
    /// The future of a request: `fut` is boxed by the caller, so that the (large) driver
    /// future is written into its box once instead of being moved there.
    pub(crate) fn new(
        shared: Arc<Shared>,
        fut: Pin<Box<dyn Future<Output = Result<Response<MeshBody<RB>>, MeshError>> + Send>>,
        span: tracing::Span,
    ) -> Self {
        ResponseFuture {
            inner: fut,
            shared,
            span,
        }
    }
}

impl<RB> Future for ResponseFuture<RB> {
    type Output = Result<Response<MeshBody<RB>>, MeshError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = {
            let _entered = this.span.enter();
            std::task::ready!(this.inner.as_mut().poll(cx))
        };
        crate::telemetry::spans::record_result(&this.span, &result);
        count_totals(&self.shared.totals, &result);
        Poll::Ready(result)
    }
}

fn count_totals<T>(totals: &Counters, result: &Result<Response<T>, MeshError>) {
    Counters::bump(&totals.requests);
    match result {
        Ok(res) if !res.status().is_server_error() => Counters::bump(&totals.successes),
        Ok(_) => Counters::bump(&totals.failures),
        Err(e) => {
            Counters::bump(&totals.failures);
            if e.is_timeout() {
                Counters::bump(&totals.timeouts);
            }
            if e.is_overflow() {
                Counters::bump(&totals.overflows);
            }
        }
    }
}

impl<RB> fmt::Debug for ResponseFuture<RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
