//! [`ResponseFuture`]: the future of [`Mesh::call`](crate::Mesh), a state machine over the
//! driver's steps (`crate::driver`), and the mesh-wide totals it counts when the request
//! ends. [`BoxResponseFuture`]: the same, boxed, for [`Mesh::request`](crate::Mesh::request).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::{MeshBody, ReplayBody};
use crate::cluster::Counters;
use crate::driver::{self, Admitted, Begun, Call, CallerBody, Client, ClientBody};
use crate::error::MeshError;
use crate::shared::Shared;
use crate::stage::admit;
use crate::telemetry::Exchange;

/// [`Mesh::request`](crate::Mesh::request)'s future: a [`ResponseFuture`] in a box, which
/// names no type of the client.
pub type BoxResponseFuture<RB> =
    Pin<Box<dyn Future<Output = Result<Response<MeshBody<RB>>, MeshError>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of [`Mesh::call`](tower_service::Service::call): one request through the
    /// mesh. It does nothing until polled; then it routes, and drives the request's attempts
    /// until the retry policy is done. It lives where the caller puts it (no box of its own),
    /// and holds a fault delay, a pending admission, an attempt in flight or a back-off at a
    /// time.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        shared: Arc<Shared>,
        // `mesh.request`, entered on every poll.
        span: tracing::Span,
        // The client and the caller's request, until the first poll.
        start: Option<(S, Request<B>)>,
        // The request's telemetry, from the first poll to the answer.
        ex: Option<Exchange>,
        // A routed request while a fault delays it.
        delayed: Option<Box<driver::Routed<S, B>>>,
        // The request's attempts, once dispatched.
        run: Option<driver::Run<S, B>>,
        #[pin]
        step: Step<S, B>,
        _body: PhantomData<fn() -> RB>,
    }
}

pin_project_lite::pin_project! {
    /// What the request waits for.
    #[project = StepProj]
    enum Step<S, B>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        // Nothing: the next step runs at once.
        Ready,
        // A fault delay, or a retry's back-off.
        Sleep { sleep: Pin<Box<tokio::time::Sleep>> },
        // A pending admission to the cluster's pool.
        Admit { waiting: admit::Waiting },
        // An attempt in flight.
        Attempt {
            #[pin]
            call: Call<S, B>,
            sent: Option<driver::Sent>,
        },
    }
}

impl<S, B, RB> ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>>,
{
    /// The future of `req` through the mesh, to be sent with `client`, inside `span`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        client: S,
        req: Request<B>,
        span: tracing::Span,
    ) -> Self {
        ResponseFuture {
            shared,
            span,
            start: Some((client, req)),
            ex: None,
            delayed: None,
            run: None,
            step: Step::Ready,
            _body: PhantomData,
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Client<B, RB>,
    B: CallerBody,
    RB: ClientBody,
{
    type Output = Result<Response<MeshBody<RB>>, MeshError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let result = ready!(drive(&mut this, cx));
        // The request's state goes now, not when the future is dropped: its retry slot goes
        // back to the pool, and its body's replay buffer no longer holds mirror copies back.
        *this.run = None;
        *this.delayed = None;
        let result = match this.ex.take() {
            Some(ex) if ex.active() => {
                let _entered = this.span.enter();
                ex.finish(this.shared, result)
            }
            _ => result,
        };
        crate::telemetry::spans::record_result(this.span, &result);
        count_totals(&this.shared.totals, &result);
        Poll::Ready(result)
    }
}

/// Runs the request's steps, inside its span, until one waits or the answer is known.
#[inline(always)]
fn drive<S, B, RB>(
    this: &mut ResponseFutureProj<'_, S, B, RB>,
    cx: &mut Context<'_>,
) -> Poll<driver::MeshResult<RB>>
where
    S: Client<B, RB>,
    B: CallerBody,
    RB: ClientBody,
{
    let shared: &Shared = this.shared;
    let _entered = this.span.enter();
    loop {
        let permit = match this.step.as_mut().project() {
            StepProj::Ready => None,
            StepProj::Sleep { sleep } => {
                ready!(sleep.as_mut().poll(cx));
                this.step.set(Step::Ready);
                let now = crate::time::now().into_std();
                if let Some(mut routed) = this.delayed.take() {
                    // The fault delay is over: abort, or go on to the router.
                    if let Some(kind) = routed.abort {
                        return Poll::Ready(Ok(routed.abort(kind)));
                    }
                    routed.resume(shared, now, this.run);
                } else if let Some(run) = this.run.as_mut() {
                    // A retry's back-off is over.
                    run.now = now;
                    run.count_retry(shared);
                }
                None
            }
            StepProj::Admit { waiting } => {
                let admitted = ready!(waiting.as_mut().poll(cx));
                this.step.set(Step::Ready);
                let Some(run) = this.run.as_mut() else {
                    unreachable!("an admission waits for a dispatched request")
                };
                match admitted {
                    Ok(permit) => {
                        run.now = crate::time::now().into_std();
                        Some(Some(permit))
                    }
                    Err(e) => return Poll::Ready(Err(run.fail(e, None, run.attempts_made()))),
                }
            }
            StepProj::Attempt { call, sent } => {
                let (result, waited) = ready!(call.poll(cx));
                let sent = sent.take();
                this.step.set(Step::Ready);
                let (Some(run), Some(sent)) = (this.run.as_mut(), sent) else {
                    unreachable!("an attempt belongs to a dispatched request")
                };
                match run.end(result, waited, sent, shared) {
                    ControlFlow::Break(result) => return Poll::Ready(result),
                    ControlFlow::Continue(after) if after.is_zero() => run.count_retry(shared),
                    ControlFlow::Continue(after) => {
                        let sleep = Box::pin(tokio::time::sleep(after));
                        this.step.set(Step::Sleep { sleep });
                        continue;
                    }
                }
                None
            }
        };
        // Nothing is in flight: start the request, or its next attempt.
        if let Some((client, req)) = this.start.take() {
            match driver::begin(shared, client, req, this.span, this.ex, this.run) {
                Begun::Done(result) => return Poll::Ready(result),
                Begun::Running => {}
                Begun::Delayed(delay, routed) => {
                    *this.delayed = Some(routed);
                    let sleep = Box::pin(tokio::time::sleep(delay));
                    this.step.set(Step::Sleep { sleep });
                    continue;
                }
            }
        }
        let Some(run) = this.run.as_mut() else {
            panic!("a mesh ResponseFuture was polled after it completed");
        };
        let permit = match permit {
            Some(permit) => permit,
            None => match run.admit() {
                Ok(Admitted::Now(permit)) => permit,
                Ok(Admitted::Wait(waiting)) => {
                    this.step.set(Step::Admit { waiting });
                    continue;
                }
                Err(e) => return Poll::Ready(Err(e)),
            },
        };
        let ex = this.ex.as_mut();
        let Some(ex) = ex else {
            unreachable!("a request's telemetry starts with it")
        };
        match run.send(permit, ex, shared) {
            Ok((call, sent)) => this.step.set(Step::Attempt {
                call,
                sent: Some(sent),
            }),
            Err(e) => return Poll::Ready(Err(e)),
        }
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

impl<S, B, RB> fmt::Debug for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
