//! [`Mesh`]: the service that drives routing, faults, mirrors, timeouts,
//! retries, pools, load balancing and outlier detection around a client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use mesh_resilience::{
    AbortKind, Admission, ConnectionPool, DoneReason, FaultAction, Outcome, OutlierEvent,
    PendingTicket, PoolLimits, RequestPermit, RetryDecision, RetryState, FAULT_ABORT_BODY,
};
use mesh_routing::{Action, ClusterId, EndpointChoice, RequestView, RouteDecision};
use tower::ServiceExt;
use tower_service::Service;
use tracing::{field, Instrument};

use crate::body::ReplayBody;
use crate::error::{MeshError, UpstreamFailure};
use crate::mesh_body::{MeshBody, PermitGuard};
use crate::state::{lock, ClusterState, Compiled, Counters, PrefixMode, Shared};
use crate::BoxError;

/// The `x-envoy-attempt-count` header.
const ATTEMPT_COUNT: http::HeaderName = http::HeaderName::from_static("x-envoy-attempt-count");

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

/// The future of [`Mesh::call`](tower_service::Service::call).
pub struct ResponseFuture<RB> {
    inner: Pin<Box<dyn Future<Output = Result<Response<MeshBody<RB>>, MeshError>> + Send>>,
    shared: Arc<Shared>,
    /// `mesh.request`, entered on every poll (like `tracing::Instrumented`,
    /// without moving the future once more).
    span: tracing::Span,
}

impl<RB> Future for ResponseFuture<RB> {
    type Output = Result<Response<MeshBody<RB>>, MeshError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = {
            let _entered = this.span.enter();
            std::task::ready!(this.inner.as_mut().poll(cx))
        };
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
    type Future = ResponseFuture<RB>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), MeshError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture<RB> {
        self.request(req)
    }
}

impl<S> Mesh<S> {
    /// Sends a request through the mesh, like [`Service::call`] but from a
    /// shared reference and without waiting for readiness (the mesh is always
    /// ready; the inner client's readiness is awaited per attempt).
    ///
    /// The returned future names no associated type of `S`, which keeps the
    /// futures of tasks that hold it free of the "implementation of `Service`
    /// is not general enough" error that `ServiceExt::oneshot` can hit when
    /// body or error types carry trait objects.
    pub fn request<B, RB>(&self, req: Request<B>) -> ResponseFuture<RB>
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
        let shared = Arc::clone(&self.shared);
        let inner = self.inner.clone();
        let span = tracing::debug_span!(
            "mesh.request",
            virtual_service = field::Empty,
            route = field::Empty,
            destination = field::Empty,
            cluster = field::Empty,
        );
        ResponseFuture {
            inner: Box::pin(handle(Arc::clone(&shared), inner, req)),
            shared,
            span,
        }
    }
}

/// What routing left for the forwarding part, computed while the request
/// could still be borrowed.
struct Prepared {
    /// The new path and query, when the route rewrites the path.
    path: Option<PathAndQuery>,
    /// The `Host` to send upstream.
    host: Option<HeaderValue>,
    /// The consistent-hash key.
    hash: Option<u64>,
}

pub(crate) async fn handle<S, B, RB>(
    shared: Arc<Shared>,
    inner: S,
    req: Request<B>,
) -> Result<Response<MeshBody<RB>>, MeshError>
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
    let shared = &*shared;
    let compiled = shared.compiled.load_full();
    let compiled = &*compiled;
    let mut rng = shared.request_rolls();
    let (mut parts, body) = req.into_parts();
    let table = &compiled.table;

    // 1. Route.
    let (decision, prepared) = {
        let view = RequestView::from_parts(&parts);
        let decision = table.route(&view, rng.route());
        match decision.action() {
            Action::Redirect(_) => return Ok(redirect(&decision, &view)),
            Action::DirectResponse(d) => {
                let mut res = local_reply(
                    StatusCode::from_u16(d.status()).unwrap_or(StatusCode::OK),
                    d.body().map(Bytes::copy_from_slice).unwrap_or_default(),
                );
                apply_response_ops(&decision, res.headers_mut());
                return Ok(res);
            }
            Action::NoRoute => return Err(MeshError::no_route()),
            Action::UnknownSubset(_) => return Err(MeshError::unknown_cluster()),
            Action::Route(_) | Action::Passthrough(_) => {}
        }
        let prepared = prepare(compiled, &decision, &view);
        (decision, prepared)
    };
    let plan = compiled.plan(&decision);
    let cluster = decision.cluster();
    let span = tracing::Span::current();
    if !span.is_disabled() {
        if let Some(vs) = decision.virtual_service() {
            span.record("virtual_service", field::display(vs));
        }
        if let Some(r) = decision.route() {
            span.record("route", field::display(r));
        }
        if let Action::Route(r) = decision.action() {
            span.record("destination", r.destination().host());
        }
        if let Some(c) = cluster {
            span.record("cluster", field::display(table.cluster_key(c)));
        }
    }
    drop(span);

    {
        // 2. Fault.
        if let Some(fault) = &plan.fault {
            match fault.decide(rng.decide(), rng.decide()) {
                FaultAction::None => {}
                FaultAction::Delay(d) => {
                    tracing::debug!(delay_ms = d.as_millis() as u64, "fault delay");
                    Box::pin(tokio::time::sleep(d)).await;
                }
                FaultAction::Abort(kind) => return Ok(abort_reply(kind)),
                FaultAction::DelayThenAbort { delay, abort } => {
                    tracing::debug!(delay_ms = delay.as_millis() as u64, "fault delay");
                    Box::pin(tokio::time::sleep(delay)).await;
                    return Ok(abort_reply(abort));
                }
            }
        }

        // Request rewrite that does not depend on the endpoint.
        let (body, replayable_at_start) =
            match ReplayBody::try_new(body, shared.settings.replay_cap) {
                Ok(b) => (b, true),
                Err(b) => (ReplayBody::unreplayable(b), false),
            };
        for ops in decision.header_operations() {
            let ops = ops.request();
            for (name, value) in ops.set() {
                parts.headers.insert(name.clone(), value.clone());
            }
            for (name, value) in ops.add() {
                parts.headers.append(name.clone(), value.clone());
            }
            for name in ops.remove() {
                parts.headers.remove(name);
            }
        }
        let path = match prepared.path {
            Some(p) => p,
            None => parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        };
        let scheme = parts.uri.scheme().cloned().unwrap_or(Scheme::HTTP);

        // 3. Mirrors.
        if !plan.mirrors.is_empty() {
            mirror(
                shared,
                compiled,
                &decision,
                &plan.mirrors,
                &mut rng,
                &parts,
                &path,
                &scheme,
                prepared.host.as_ref(),
                &body,
                &inner,
                plan.retry.deadlines().route(),
            );
        }

        // 4. Retry loop under the route timeout.
        let cluster_state = cluster.map(|id| shared.cluster(compiled, id));
        let mut scratch_pool = None;
        let start = crate::time::now();
        // The clock is read once per step: start, after a pool wait, after the
        // call, after a backoff.
        let mut now = start.into_std();
        let mut retry = RetryGuard {
            state: RetryState::new(&plan.retry, start.into_std()),
            cluster: cluster_state.clone(),
        };
        let route_deadline = retry
            .state
            .route_deadline()
            .map(tokio::time::Instant::from_std);
        let mut extensions = Some(std::mem::take(&mut parts.extensions));
        loop {
            let attempt = retry.state.attempt();
            if attempt > 1 {
                Counters::bump(&shared.totals.retries);
                if let Some(cs) = &cluster_state {
                    Counters::bump(&cs.counters.retries);
                }
            }
            let attempt_span = tracing::debug_span!(
                "mesh.attempt",
                attempt,
                endpoint = field::Empty,
                outcome = field::Empty,
                retry_reason = field::Empty,
                backoff_ms = field::Empty,
            );

            // 5. Pool admission.
            let mut guard = None;
            if let Some(cs) = &cluster_state {
                let admitted = match try_admit(cs) {
                    Ok(permit) => Ok(permit),
                    Err(None) => Err(Admit::Overflow),
                    Err(Some(ticket)) => {
                        // Boxed: the rare slow path stays out of the request future.
                        let waited = Box::pin(wait_pending(cs, ticket, route_deadline)).await;
                        now = crate::time::now().into_std();
                        waited
                    }
                };
                match admitted {
                    Ok(permit) => {
                        guard = Some(PermitGuard {
                            cluster: Arc::clone(cs),
                            permit: Some(permit),
                            endpoint: None,
                        });
                    }
                    Err(Admit::Overflow) => {
                        Counters::bump(&cs.counters.overflows);
                        attempt_span.record("outcome", "overflow");
                        return Err(MeshError::overflow());
                    }
                    Err(Admit::Timeout) => {
                        Counters::bump(&cs.counters.timeouts);
                        return Err(MeshError::route_timeout());
                    }
                }
            }

            // 6. Endpoint pick.
            let mut authority = None;
            if let (Some(cs), Some(id)) = (&cluster_state, cluster) {
                match pick(
                    compiled,
                    cs,
                    id,
                    prepared.hash,
                    &mut retry.state,
                    &mut rng,
                    now,
                ) {
                    Picked::Endpoint {
                        index,
                        generation,
                        authority: a,
                    } => {
                        if let Some(g) = guard.as_mut() {
                            g.endpoint = Some((index, generation));
                        }
                        if !attempt_span.is_disabled() {
                            attempt_span.record("endpoint", field::display(&a));
                        }
                        authority = Some(a);
                    }
                    Picked::Resolve => authority = resolve_authority(compiled, &parts, id),
                    Picked::NoHealthyUpstream => {
                        drop(guard);
                        return Err(MeshError::no_healthy_upstream());
                    }
                }
                Counters::bump(&cs.counters.requests);
            }

            // 7. Request for this attempt.
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(scheme.clone());
            uri.authority = authority.or_else(|| parts.uri.authority().cloned());
            uri.path_and_query = Some(path.clone());
            let uri = Uri::from_parts(uri).unwrap_or_else(|_| parts.uri.clone());
            let mut req = Request::new(body.clone());
            *req.method_mut() = parts.method.clone();
            *req.uri_mut() = uri;
            *req.version_mut() = parts.version;
            *req.headers_mut() = parts.headers.clone();
            if let Some(ext) = extensions.take() {
                *req.extensions_mut() = ext;
            }
            if let Some(host) = &prepared.host {
                if parts.version <= Version::HTTP_11 {
                    req.headers_mut().insert(HOST, host.clone());
                }
            }
            if shared.settings.attempt_count_header {
                req.headers_mut()
                    .insert(ATTEMPT_COUNT, HeaderValue::from(attempt));
            }

            // 8. Per-try timeout around the call, until response headers.
            let attempt_deadline = retry
                .state
                .attempt_deadline(now)
                .map(tokio::time::Instant::from_std);
            let (result, waited) = Attempt {
                call: inner.clone().oneshot(req),
                deadline: attempt_deadline,
                sleep: None,
                span: attempt_span.clone(),
                waited: false,
            }
            .await;

            // 9. Outcome.
            let (outcome, result): (Outcome, Result<Response<RB>, MeshError>) = match result {
                None => {
                    let err = if attempt_deadline.is_some() && attempt_deadline == route_deadline {
                        MeshError::route_timeout()
                    } else {
                        MeshError::per_try_timeout()
                    };
                    (Outcome::Timeout, Err(err))
                }
                Some(Ok(res)) => (outcome_of_response(&res), Ok(res)),
                Some(Err(err)) => (outcome_of(err.failure()), Err(err)),
            };
            if !attempt_span.is_disabled() {
                attempt_span.record("outcome", field::debug(outcome));
            }
            if waited {
                // (A call that answered on its first poll took no time.)
                now = crate::time::now().into_std();
            }

            // 10. Outlier detection, counters, retry decision.
            let verdict = match &cluster_state {
                Some(cs) => {
                    let c = &cs.counters;
                    Counters::bump(if outcome.is_failure() {
                        &c.failures
                    } else {
                        &c.successes
                    });
                    if outcome == Outcome::Timeout {
                        Counters::bump(&c.timeouts);
                    }
                    let mut ci = lock(&cs.inner);
                    cs.sweep(&mut ci, now);
                    let endpoint = guard.as_ref().and_then(|g| g.endpoint);
                    if let Some((index, generation)) = endpoint {
                        if generation == ci.generation {
                            let event = ci
                                .outlier
                                .as_mut()
                                .and_then(|od| od.record(index, outcome, now));
                            log_outlier(cs, &ci.endpoints, event);
                        }
                    }
                    retry
                        .state
                        .on_outcome(outcome, now, rng.decide(), &mut ci.pool)
                }
                None => {
                    let pool = scratch_pool
                        .get_or_insert_with(|| ConnectionPool::new(PoolLimits::default()));
                    retry.state.on_outcome(outcome, now, rng.decide(), pool)
                }
            };

            match verdict {
                RetryDecision::Retry { after } => {
                    attempt_span.record("retry_reason", field::debug(outcome));
                    attempt_span.record("backoff_ms", after.as_millis() as u64);
                    if !replayable_at_start {
                        // The body could never be replayed: no retry, the
                        // attempt's result stands.
                        retry.give_back(scratch_pool.as_mut());
                        return finish(shared, result, guard, &decision, attempt, route_deadline);
                    }
                    if !body.is_replayable() {
                        retry.give_back(scratch_pool.as_mut());
                        return Err(MeshError::body_too_large_to_retry());
                    }
                    drop(result);
                    drop(guard);
                    if !after.is_zero() {
                        Box::pin(tokio::time::sleep(after)).await;
                        now = crate::time::now().into_std();
                    }
                }
                RetryDecision::Done(DoneReason::RouteTimeout) => {
                    drop(result);
                    drop(guard);
                    if let Some(cs) = &cluster_state {
                        if outcome != Outcome::Timeout {
                            Counters::bump(&cs.counters.timeouts);
                        }
                    }
                    return Err(MeshError::route_timeout());
                }
                RetryDecision::Done(_) => {
                    return finish(shared, result, guard, &decision, attempt, route_deadline);
                }
            }
        }
    }
}

/// Builds the response of the last attempt: wraps the body so that it holds
/// the pool permit, applies response header operations and the attempt count.
fn finish<RB>(
    shared: &Shared,
    result: Result<Response<RB>, MeshError>,
    guard: Option<PermitGuard>,
    decision: &RouteDecision<'_>,
    attempt: u32,
    route_deadline: Option<tokio::time::Instant>,
) -> Result<Response<MeshBody<RB>>, MeshError>
where
    RB: http_body::Body,
{
    match result {
        Ok(res) => {
            let mut res = res.map(|b| MeshBody::upstream(b, guard, route_deadline));
            apply_response_ops(decision, res.headers_mut());
            if shared.settings.attempt_count_header {
                res.headers_mut()
                    .insert(ATTEMPT_COUNT, HeaderValue::from(attempt));
            }
            Ok(res)
        }
        Err(e) => {
            drop(guard);
            Err(if attempt > 1 { e.with_retried() } else { e })
        }
    }
}

pin_project_lite::pin_project! {
    /// One attempt: the client call, bounded by the attempt deadline, inside
    /// the `mesh.attempt` span. Yields `None` when the deadline fired first,
    /// and whether the call had to wait at all. The timer is only armed when
    /// the call does not answer on its first poll.
    struct Attempt<F> {
        #[pin]
        call: F,
        deadline: Option<tokio::time::Instant>,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        span: tracing::Span,
        waited: bool,
    }
}

impl<F, T, E> Future for Attempt<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = (Option<Result<T, MeshError>>, bool);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        if let Poll::Ready(r) = this.call.poll(cx) {
            return Poll::Ready((Some(r.map_err(MeshError::upstream)), *this.waited));
        }
        *this.waited = true;
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until(deadline)));
        }
        let fired = this
            .sleep
            .as_pin_mut()
            .is_some_and(|s| s.poll(cx).is_ready());
        if fired {
            Poll::Ready((None, true))
        } else {
            Poll::Pending
        }
    }
}

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
const X_ENVOY_RATELIMITED: http::HeaderName = http::HeaderName::from_static("x-envoy-ratelimited");

/// `Outcome::from_headers` with the header names parsed once.
fn outcome_of_response<T>(res: &Response<T>) -> Outcome {
    let headers = res.headers();
    Outcome::Response {
        status: res.status(),
        grpc_status: headers
            .get(&GRPC_STATUS)
            .map(|v| mesh_model::GrpcStatus::from_header_value(v.as_bytes())),
        rate_limited: headers.contains_key(&X_ENVOY_RATELIMITED),
    }
}

/// Gives the cluster's retry slot back if the request is abandoned.
struct RetryGuard {
    state: RetryState,
    cluster: Option<Arc<ClusterState>>,
}

impl RetryGuard {
    fn give_back(&mut self, scratch: Option<&mut ConnectionPool>) {
        match (&self.cluster, scratch) {
            (Some(cs), _) => self.state.release(&mut lock(&cs.inner).pool),
            (None, Some(pool)) => self.state.release(pool),
            (None, None) => {}
        }
    }
}

impl Drop for RetryGuard {
    fn drop(&mut self) {
        if let Some(cs) = &self.cluster {
            self.state.release(&mut lock(&cs.inner).pool);
        }
    }
}

enum Admit {
    Overflow,
    Timeout,
}

/// Cancels a pending admission if the request goes away while waiting.
struct PendingGuard<'a> {
    cluster: &'a ClusterState,
    ticket: Option<PendingTicket>,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let wake = lock(&self.cluster.inner).pool.cancel_pending(t);
            if wake {
                self.cluster.notify.notify_one();
            }
        }
    }
}

/// Asks the pool for a permit: `Err(None)` on overflow, `Err(Some(ticket))`
/// when the request must wait as pending.
fn try_admit(cs: &ClusterState) -> Result<RequestPermit, Option<PendingTicket>> {
    let admission = lock(&cs.inner).pool.try_acquire_request();
    match admission {
        Ok(Admission::Ready(permit)) => Ok(permit),
        Ok(Admission::Pending(ticket)) => Err(Some(ticket)),
        Err(_) => Err(None),
    }
}

/// Waits as pending until promoted or the route deadline passes.
async fn wait_pending(
    cs: &ClusterState,
    ticket: PendingTicket,
    deadline: Option<tokio::time::Instant>,
) -> Result<RequestPermit, Admit> {
    let mut pending = PendingGuard {
        cluster: cs,
        ticket: Some(ticket),
    };
    loop {
        let notified = cs.notify.notified();
        let woke = match deadline {
            Some(d) => tokio::time::timeout_at(d, notified).await.is_ok(),
            None => {
                notified.await;
                true
            }
        };
        if !woke {
            return Err(Admit::Timeout);
        }
        let Some(ticket) = pending.ticket.take() else {
            return Err(Admit::Overflow);
        };
        let promoted = lock(&cs.inner).pool.try_promote(ticket);
        match promoted {
            Ok(Admission::Ready(permit)) => return Ok(permit),
            Ok(Admission::Pending(t)) => pending.ticket = Some(t),
            Err(_) => return Err(Admit::Overflow),
        }
    }
}

enum Picked {
    Endpoint {
        index: usize,
        generation: u64,
        authority: Authority,
    },
    Resolve,
    NoHealthyUpstream,
}

/// Envoy's host selection: the cluster's load balancer, ejected endpoints
/// excluded (unless in panic), re-picked to avoid endpoints this request
/// already tried.
fn pick(
    compiled: &Compiled,
    cs: &ClusterState,
    id: ClusterId,
    hash: Option<u64>,
    retry: &mut RetryState,
    rng: &mut mesh_resilience::rng::Rolls,
    now: std::time::Instant,
) -> Picked {
    let mut guard = lock(&cs.inner);
    let ci = &mut *guard;
    if ci.outlier.as_ref().is_some_and(|od| now >= od.next_sweep()) {
        cs.sweep(ci, now);
    }
    if ci.endpoints.is_empty() {
        if let mesh_routing::ClusterEndpoints::Resolve { .. } = compiled.table.endpoints(id) {
            return Picked::Resolve;
        }
        return Picked::NoHealthyUpstream;
    }
    let outlier = ci.outlier.as_ref();
    let ejected = |i: usize| outlier.is_some_and(|od| !od.is_available(i));
    let mut chosen = None;
    for _ in 0..retry.host_picks() {
        match compiled.table.pick_endpoint(
            id,
            hash,
            &mut ci.lb,
            &ci.in_flight,
            &ejected,
            rng.pick(),
        ) {
            EndpointChoice::Endpoint { index, .. } => {
                chosen = Some(index);
                if !retry.should_reselect(index) {
                    break;
                }
            }
            EndpointChoice::Resolve { .. } => return Picked::Resolve,
            EndpointChoice::NoHealthyUpstream => break,
        }
    }
    let Some(index) = chosen else {
        return Picked::NoHealthyUpstream;
    };
    retry.record_endpoint(index);
    let Some(authority) = ci.endpoints.get(index).and_then(|e| e.authority.clone()) else {
        return Picked::NoHealthyUpstream;
    };
    if let Some(n) = ci.in_flight.get_mut(index) {
        *n += 1;
    }
    if let Some(n) = ci.endpoint_requests.get_mut(index) {
        *n += 1;
    }
    Picked::Endpoint {
        index,
        generation: ci.generation,
        authority,
    }
}

fn log_outlier(
    cs: &ClusterState,
    endpoints: &[crate::state::EndpointInfo],
    event: Option<OutlierEvent>,
) {
    let addr = |i: usize| endpoints.get(i).map_or("?", |e| &*e.key);
    match event {
        Some(OutlierEvent::Ejected {
            endpoint, reason, ..
        }) => {
            Counters::bump(&cs.counters.ejections);
            tracing::warn!(cluster = %cs.display(), endpoint = addr(endpoint), %reason, "endpoint ejected");
        }
        Some(OutlierEvent::EjectionSkipped { endpoint, reason }) => {
            tracing::info!(cluster = %cs.display(), endpoint = addr(endpoint), %reason, "ejection skipped: maxEjectionPercent reached");
        }
        Some(OutlierEvent::Unejected { endpoint }) => {
            tracing::info!(cluster = %cs.display(), endpoint = addr(endpoint), "endpoint returns from ejection");
        }
        Some(_) | None => {}
    }
}

/// The resilience outcome of a client error.
fn outcome_of(failure: Option<UpstreamFailure>) -> Outcome {
    match failure {
        Some(UpstreamFailure::ConnectFailure | UpstreamFailure::ConnectTimeout) => {
            Outcome::ConnectFailure
        }
        Some(UpstreamFailure::ResetBeforeRequest) => Outcome::reset(false),
        Some(UpstreamFailure::RefusedStream) => Outcome::RefusedStream,
        Some(UpstreamFailure::Timeout) => Outcome::Timeout,
        Some(
            UpstreamFailure::ConnectionTermination
            | UpstreamFailure::RemoteReset
            | UpstreamFailure::Protocol
            | UpstreamFailure::Other,
        )
        | None => Outcome::reset(true),
    }
}

/// Rewritten path, `Host` and hash key, read from the request before it changes.
fn prepare(compiled: &Compiled, decision: &RouteDecision<'_>, view: &RequestView<'_>) -> Prepared {
    let _ = compiled;
    let path = decision.rewrite().and_then(|rw| {
        let new_path = if let Some(rx) = rw.uri_regex() {
            rx.apply(view.path()).into_owned()
        } else {
            let uri = rw.uri()?;
            match compiled.plan(decision).prefix {
                PrefixMode::Prefix(n) => {
                    format!("{uri}{}", view.path().get(n..).unwrap_or(""))
                }
                PrefixMode::Whole => uri.to_owned(),
                PrefixMode::Slash => format!("{uri}{}", view.path().get(1..).unwrap_or("")),
            }
        };
        let full = match view.query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        match PathAndQuery::try_from(full) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "rewritten path is not a valid URI path; path kept");
                None
            }
        }
    });
    let host = match decision.authority_rewrite() {
        Some(a) => HeaderValue::from_str(a).ok(),
        // An explicit `Host` is what the client would have sent: keep it
        // (a cheap clone); otherwise the URI's authority.
        None => match view.headers().get(HOST) {
            Some(h) => Some(h.clone()),
            None => {
                let a = view.authority();
                if a.is_empty() {
                    None
                } else {
                    HeaderValue::from_str(a).ok()
                }
            }
        },
    };
    Prepared {
        path,
        host,
        hash: decision.hash_key(view),
    }
}

/// Where to connect when the cluster has no registered endpoints: the
/// destination host name and port; the request's own host name when the
/// destination is the service the request named (short name or FQDN).
fn resolve_authority(
    compiled: &Compiled,
    parts: &http::request::Parts,
    id: ClusterId,
) -> Option<Authority> {
    let mesh_routing::ClusterEndpoints::Resolve { host, port } = compiled.table.endpoints(id)
    else {
        return None;
    };
    let requested = parts
        .uri
        .host()
        .or_else(|| {
            parts
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h))
        })
        .unwrap_or("");
    let same = !requested.is_empty()
        && (host.eq_ignore_ascii_case(requested)
            || host
                .get(..requested.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(requested))
                && host.as_bytes().get(requested.len()) == Some(&b'.'));
    let name = if same { requested } else { host };
    let port_now = parts.uri.port_u16();
    if same && port_now == Some(port) {
        return parts.uri.authority().cloned();
    }
    Authority::try_from(format!("{name}:{port}")).ok()
}

fn local_reply<RB>(status: StatusCode, body: Bytes) -> Response<MeshBody<RB>> {
    let mut res = Response::new(MeshBody::local(Bytes::new()));
    *res.status_mut() = status;
    if !body.is_empty() {
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    res.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    *res.body_mut() = MeshBody::local(body);
    res
}

fn redirect<RB>(decision: &RouteDecision<'_>, view: &RequestView<'_>) -> Response<MeshBody<RB>> {
    let code = decision
        .redirect_code()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let mut res = local_reply(code, Bytes::new());
    if let Some(loc) = decision
        .redirect_location(view)
        .and_then(|l| HeaderValue::try_from(l).ok())
    {
        res.headers_mut().insert(LOCATION, loc);
    }
    apply_response_ops(decision, res.headers_mut());
    res
}

/// The fault filter's local reply.
fn abort_reply<RB>(kind: AbortKind) -> Response<MeshBody<RB>> {
    match kind {
        AbortKind::Http(status) => {
            local_reply(status, Bytes::from_static(FAULT_ABORT_BODY.as_bytes()))
        }
        AbortKind::Grpc(g) => {
            let mut res = Response::new(MeshBody::local(Bytes::new()));
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            h.insert("grpc-status", HeaderValue::from(g.code()));
            h.insert("grpc-message", HeaderValue::from_static(FAULT_ABORT_BODY));
            res
        }
    }
}

fn apply_response_ops(decision: &RouteDecision<'_>, headers: &mut HeaderMap) {
    for ops in decision.header_operations() {
        let ops = ops.response();
        for (name, value) in ops.set() {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in ops.add() {
            headers.append(name.clone(), value.clone());
        }
        for name in ops.remove() {
            headers.remove(name);
        }
    }
}

/// `api:8080` → `api-shadow:8080`: the Host Envoy gives mirrored requests.
pub(crate) fn shadow_host(host: &str) -> String {
    if let Some((name, port)) = host.rsplit_once(':') {
        let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        if numeric && (!name.contains(':') || name.ends_with(']')) {
            return format!("{name}-shadow:{port}");
        }
    }
    format!("{host}-shadow")
}

/// Sends fire-and-forget copies of the request to the route's mirrors.
#[allow(clippy::too_many_arguments)]
fn mirror<S, B, RB>(
    shared: &Shared,
    compiled: &Compiled,
    decision: &RouteDecision<'_>,
    policies: &[mesh_resilience::MirrorPolicy],
    rng: &mut mesh_resilience::rng::Rolls,
    parts: &http::request::Parts,
    path: &PathAndQuery,
    scheme: &Scheme,
    host: Option<&HeaderValue>,
    body: &ReplayBody<B>,
    inner: &S,
    route_timeout: Option<std::time::Duration>,
) where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    RB: Send + 'static,
{
    for (target, policy) in decision.mirrors().zip(policies) {
        if !policy.should_mirror(rng.decide()) {
            continue;
        }
        if !body.is_replayable() {
            shared.mirrors_dropped.fetch_add(1, Relaxed);
            continue;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not polled inside a tokio runtime: nowhere to run the copy.
            shared.mirrors_dropped.fetch_add(1, Relaxed);
            continue;
        };
        let Ok(permit) = Arc::clone(&shared.mirrors).try_acquire_owned() else {
            shared.mirrors_dropped.fetch_add(1, Relaxed);
            tracing::debug!("mirror dropped: too many mirrors in flight");
            continue;
        };
        let cs = shared.cluster(compiled, target.cluster);
        let mut authority = None;
        {
            let mut ci = lock(&cs.inner);
            let ci = &mut *ci;
            if !ci.endpoints.is_empty() {
                let outlier = ci.outlier.as_ref();
                let ejected = |i: usize| outlier.is_some_and(|od| !od.is_available(i));
                if let EndpointChoice::Endpoint { index, .. } = compiled.table.pick_endpoint(
                    target.cluster,
                    None,
                    &mut ci.lb,
                    &ci.in_flight,
                    &ejected,
                    rng.pick(),
                ) {
                    authority = ci.endpoints.get(index).and_then(|e| e.authority.clone());
                    if let Some(n) = ci.endpoint_requests.get_mut(index) {
                        *n += 1;
                    }
                }
            }
        }
        let authority = match authority {
            Some(a) => a,
            None => match compiled.table.endpoints(target.cluster) {
                mesh_routing::ClusterEndpoints::Resolve { host, port } => {
                    match Authority::try_from(format!("{host}:{port}")) {
                        Ok(a) => a,
                        Err(_) => continue,
                    }
                }
                mesh_routing::ClusterEndpoints::Set(_) => {
                    shared.mirrors_dropped.fetch_add(1, Relaxed);
                    continue;
                }
            },
        };
        Counters::bump(&cs.counters.requests);
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(scheme.clone());
        uri.authority = Some(authority);
        uri.path_and_query = Some(path.clone());
        let Ok(uri) = Uri::from_parts(uri) else {
            continue;
        };
        let mut req = Request::new(body.clone());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = parts.version;
        *req.headers_mut() = parts.headers.clone();
        if let Some(h) = host.and_then(|h| h.to_str().ok()) {
            if let Ok(v) = HeaderValue::try_from(shadow_host(h)) {
                req.headers_mut().insert(HOST, v);
            }
        }
        shared.mirrors_sent.fetch_add(1, Relaxed);
        let client = inner.clone();
        runtime.spawn(
            async move {
                let _permit = permit;
                // Copies use the route's timeout, as Envoy's shadows do.
                let call = client.oneshot(req);
                let result = match route_timeout {
                    Some(t) => tokio::time::timeout(t, call).await.ok(),
                    None => Some(call.await),
                };
                match result {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        let e: BoxError = e.into();
                        tracing::debug!(error = %e, "mirror request failed");
                    }
                    None => tracing::debug!("mirror request timed out"),
                }
            }
            .instrument(tracing::debug_span!("mesh.mirror")),
        );
    }
}
