//! The driver: one request through the stages (`crate::stage`), in Envoy's order. Each step
//! here is synchronous; [`ResponseFuture`](crate::future::ResponseFuture) polls what they
//! leave in flight (a fault delay, a pending admission, an attempt, a back-off) and calls
//! the next.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::uri::Authority;
use http::{HeaderValue, Request, Response};
use mesh_resilience::headers::{
    self, X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS, X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS, X_REQUEST_ID,
};
use mesh_resilience::retry::EnvoyOverrides;
use mesh_resilience::rng::Rolls;
use mesh_resilience::{AbortKind, DoneReason, Outcome, RequestPermit, RetryDecision};
use mesh_routing::RouteDecision;
use tower::util::Oneshot;
use tower_service::Service;

use crate::body::{MeshBody, PermitGuard, ReplayBody};
use crate::cluster::Counters;
use crate::error::MeshError;
use crate::shared::Shared;
use crate::stage::attempt::{self, Attempt, Template};
use crate::stage::fault::{self, Fault};
use crate::stage::pick::{self, Target};
use crate::stage::route::{self, Forward};
use crate::stage::{admit, classify, decide, mirror, reply};
use crate::telemetry::{request_id, spans, Exchange, ResponseFlags};
use crate::BoxError;

/// The client a mesh drives: any tower service from HTTP requests with a replayable body to
/// HTTP responses, cheap to clone.
pub(crate) trait Client<B, RB>:
    Service<Request<ReplayBody<B>>, Response = Response<RB>, Error: Into<BoxError>, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S, B, RB> Client<B, RB> for S where
    S: Service<
            Request<ReplayBody<B>>,
            Response = Response<RB>,
            Error: Into<BoxError>,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// The bounds on the caller's body.
pub(crate) trait CallerBody:
    http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> CallerBody for B where B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static
{}

/// The bounds on the client's response body.
pub(crate) trait ClientBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<RB> ClientBody for RB where
    RB: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// The result of a request through the mesh.
pub(crate) type MeshResult<RB> = Result<Response<MeshBody<RB>>, MeshError>;

/// One attempt in flight: the client's call bounded by its deadline.
pub(crate) type Call<S, B> = Attempt<Oneshot<S, Request<ReplayBody<B>>>>;

/// How a request began. Returned once per request, never stored: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Begun<S, B, RB> {
    /// It is answered already (a local reply, or an error).
    Done(MeshResult<RB>),
    /// A fault delays it this long first (boxed: the rare path stays out of the future).
    Delayed(Duration, Box<Routed<S, B>>),
    /// Its attempts can start: the [`Run`] is in place.
    Running,
}

/// Starts a request: its telemetry, Envoy's header hygiene and request id, routing, and the
/// route's fault. The request's telemetry is written to `ex`, and a request that goes on to
/// its attempts to `run`.
#[inline(always)]
pub(crate) fn begin<S, B, RB>(
    shared: &Shared,
    client: S,
    req: Request<B>,
    span: &tracing::Span,
    ex: &mut Option<Exchange>,
    run: &mut Option<Run<S, B>>,
) -> Begun<S, B, RB>
where
    S: Client<B, RB>,
    B: CallerBody,
    RB: ClientBody,
{
    let ex = ex.insert(Exchange::start(shared, &req));
    let mut rolls = shared.request_rolls();
    let (mut parts, body) = req.into_parts();
    // An Istio sidecar removes its application's `x-envoy-*` control headers before routing;
    // a trusting mesh reads them instead.
    let overrides = if shared.settings.trust_envoy_headers {
        trusted_overrides(&mut parts.headers)
    } else {
        headers::remove_external(&mut parts.headers);
        None
    };
    // Envoy's UUID request-id extension: the caller's id is kept, a missing one generated.
    let request_id = (shared.settings.generate_request_id
        && !parts.headers.contains_key(X_REQUEST_ID))
    .then(|| request_id::uuid_v4(rolls.request_id()));
    ex.request_id(request_id.as_ref());
    let compiled = shared.compiled.load_full();
    let (fwd, decision) = match route::route(shared, &compiled, &parts, &mut rolls, span) {
        route::Routing::Forward(fwd, decision) => (fwd, decision),
        route::Routing::Done(done) => return Begun::Done(done),
    };
    ex.routed(fwd.cluster.as_ref());
    ex.route(&decision, fwd.cluster.is_none());
    // Response flags set on the way (`DI`, then `URX` or `UO` when retries end); errors and
    // changed responses carry them.
    let mut flags = ResponseFlags::new();
    let fault = fault::decide(decision.fault(), &mut rolls, &mut flags);
    let mut routed = Routed {
        client,
        parts,
        body,
        fwd,
        overrides,
        request_id,
        rolls,
        flags,
        abort: None,
    };
    match fault {
        Fault::None => {
            routed.dispatch(shared, ex.start.into_std(), &decision, run);
            Begun::Running
        }
        Fault::Abort(kind) => Begun::Done(Ok(routed.abort(kind))),
        Fault::Delay(delay, abort) => {
            routed.abort = abort;
            Begun::Delayed(delay, Box::new(routed))
        }
    }
}

/// A routed request, before its attempts.
pub(crate) struct Routed<S, B> {
    client: S,
    parts: Parts,
    body: B,
    fwd: Forward,
    overrides: Option<EnvoyOverrides>,
    request_id: Option<HeaderValue>,
    rolls: Rolls,
    flags: ResponseFlags,
    /// The abort that follows a fault delay.
    pub(crate) abort: Option<AbortKind>,
}

impl<S, B> Routed<S, B> {
    /// The fault filter's abort, with the route's CORS headers.
    pub(crate) fn abort<RB>(&mut self, kind: AbortKind) -> Response<MeshBody<RB>> {
        let mut res = fault::abort(kind, &mut self.flags);
        self.fwd.add_cors(res.headers_mut());
        res
    }

    /// Hands the request to the router after its fault delay, at `now`: [`dispatch`] with
    /// the decision looked up again from the request's table.
    ///
    /// [`dispatch`]: Self::dispatch
    pub(crate) fn resume<RB>(
        self,
        shared: &Shared,
        now: std::time::Instant,
        run: &mut Option<Run<S, B>>,
    ) where
        S: Client<B, RB>,
        B: CallerBody,
        RB: ClientBody,
    {
        let compiled = Arc::clone(&self.fwd.compiled);
        let decision = compiled.table.decision(self.fwd.key);
        self.dispatch(shared, now, &decision, run);
    }

    /// Hands the request to the router: the retry policy (with a trusted caller's overrides
    /// and gRPC deadlines), the upstream request template, the mirror copies, and the retry
    /// state, started at `now`; the request's [`Run`] is written to `run` (in place: it is
    /// large).
    #[inline(always)]
    pub(crate) fn dispatch<RB>(
        self,
        shared: &Shared,
        now: std::time::Instant,
        decision: &RouteDecision<'_>,
        run: &mut Option<Run<S, B>>,
    ) where
        S: Client<B, RB>,
        B: CallerBody,
        RB: ClientBody,
    {
        let Routed {
            client,
            mut parts,
            body,
            mut fwd,
            overrides,
            request_id,
            rolls,
            flags,
            abort: _,
        } = self;
        let policy = decision.retry_policy();
        let policy = match overrides {
            Some(o) => o.apply(policy),
            None => policy,
        };
        let policy = if mesh_resilience::is_grpc_request(&parts.headers) {
            grpc_deadlines(&mut parts.headers, policy)
        } else {
            policy
        };
        let rewritten = fwd.path.take();
        // Built in place: the run is large, and each move of it is a copy.
        let run = run.insert(Run {
            template: Template::new(parts, body, decision, rewritten, shared, request_id),
            retry: decide::Retry::new(&policy, now),
            client,
            fwd,
            rolls,
            flags,
            now,
            route_deadline: None,
        });
        run.route_deadline = run
            .retry
            .state
            .route_deadline()
            .map(tokio::time::Instant::from_std);
        mirror::spawn_copies(
            shared,
            &run.fwd,
            decision,
            &run.template,
            &run.client,
            &mut run.rolls,
        );
    }
}

/// A request's attempts: admitted, sent, judged, retried until the retry policy is done.
pub(crate) struct Run<S, B> {
    client: S,
    fwd: Forward,
    template: Template<B>,
    retry: decide::Retry,
    rolls: Rolls,
    flags: ResponseFlags,
    /// The time as the request last saw it: when it entered, or after its last wait.
    pub(crate) now: std::time::Instant,
    route_deadline: Option<tokio::time::Instant>,
}

impl<S, B> Drop for Run<S, B> {
    /// The request ends: the retry slot it holds, if any, goes back to its cluster's pool.
    fn drop(&mut self) {
        self.retry.give_back(self.fwd.cluster.as_deref());
    }
}

/// How the next attempt is admitted.
pub(crate) enum Admitted {
    /// At once (with the cluster's permit; `None` for a passthrough).
    Now(Option<RequestPermit>),
    /// After waiting as pending.
    Wait(admit::Waiting),
}

/// What an attempt in flight carries to its end.
pub(crate) struct Sent {
    n: u32,
    target: Option<Target>,
    guard: Option<PermitGuard>,
    deadline: Option<tokio::time::Instant>,
    idle_deadline: Option<tokio::time::Instant>,
    span: tracing::Span,
}

impl<S, B> Run<S, B> {
    /// An error after routing: a local reply of the router, which carries the route's response
    /// header operations, the cluster and endpoint, and the flags set so far.
    pub(crate) fn fail(
        &self,
        e: MeshError,
        endpoint: Option<&Authority>,
        attempts: u32,
    ) -> MeshError {
        let name = self.fwd.cluster.as_ref().map(|c| &c.name);
        e.with_context(name, endpoint, attempts)
            .with_flags(self.flags)
            .with_route_headers(&self.fwd.decision(), self.fwd.cors())
    }

    /// The number of attempts made before the next one.
    pub(crate) fn attempts_made(&self) -> u32 {
        self.retry.state.attempt() - 1
    }

    /// Asks the cluster's pool to admit the next attempt.
    pub(crate) fn admit(&mut self) -> Result<Admitted, MeshError> {
        let Some(cs) = self.fwd.cluster.as_ref() else {
            return Ok(Admitted::Now(None));
        };
        match admit::try_admit(cs) {
            Ok(Ok(permit)) => Ok(Admitted::Now(Some(permit))),
            Ok(Err(ticket)) => Ok(Admitted::Wait(admit::wait(
                Arc::clone(cs),
                ticket,
                self.route_deadline,
            ))),
            Err(e) => Err(self.fail(e, None, self.attempts_made())),
        }
    }

    /// Picks the attempt's endpoint and sends it, bounded by the per-try timeout (or the
    /// stream idle timeout when that is shorter).
    #[inline(always)]
    pub(crate) fn send<RB>(
        &mut self,
        permit: Option<RequestPermit>,
        ex: &mut Exchange,
        shared: &Shared,
    ) -> Result<(Call<S, B>, Sent), MeshError>
    where
        S: Client<B, RB>,
        B: CallerBody,
        RB: ClientBody,
    {
        let n = self.retry.state.attempt();
        let cluster = self.fwd.cluster.as_ref();
        let target = match cluster {
            Some(cs) => {
                let picked = pick::pick(
                    cs,
                    self.fwd.hash,
                    &mut self.retry.state,
                    &mut self.rolls,
                    self.now,
                );
                match picked {
                    Ok(Target::Resolve(a)) => Some(Target::Resolve(pick::resolve_fallback(
                        &a,
                        self.template.requested_host(),
                        self.template.authority(),
                    ))),
                    Ok(t) => Some(t),
                    Err(e) => return Err(self.fail(e, None, n - 1)),
                }
            }
            None => None,
        };
        let name = cluster.map(|c| &c.name);
        // The attempt's span: only for an attempt that goes upstream.
        let span = spans::attempt_span(n);
        ex.peer = match &target {
            Some(Target::Endpoint(e)) => e.series,
            _ => 0,
        };
        let to = target.as_ref().map(Target::authority);
        ex.attempt(self.now, name, to);
        if let Some(cs) = cluster {
            Counters::bump(&cs.counters.requests);
        }
        let close = permit.as_ref().is_some_and(RequestPermit::close_connection);
        let guard = cluster.map(|cs| PermitGuard::new(cs, permit, target.as_ref()));
        let count = shared.settings.attempt_count_header.then_some(n);
        let attempt_deadline = self
            .retry
            .state
            .attempt_deadline(self.now)
            .map(tokio::time::Instant::from_std);
        // The stream idle timeout bounds a wait with no deadline, or a longer one.
        let idle_deadline = shared
            .settings
            .stream_idle_timeout
            .map(|d| tokio::time::Instant::from_std(self.now) + d)
            .filter(|i| attempt_deadline.is_none_or(|a| *i < a));
        let deadline = idle_deadline.or(attempt_deadline);
        let req = self.template.request(to, count, close, cluster);
        spans::record_attempt(&span, &req, name, to);
        let call = attempt::send(self.client.clone(), req, deadline, span.clone());
        let sent = Sent {
            n,
            target,
            guard,
            deadline,
            idle_deadline,
            span,
        };
        Ok((call, sent))
    }

    /// Judges an attempt's result (`None`: its deadline fired; `waited`: it did not answer on
    /// its first poll), feeds outlier detection, and asks the retry policy what follows:
    /// another attempt after a back-off, or the request's answer.
    #[inline(always)]
    pub(crate) fn end<RB>(
        &mut self,
        result: Option<Result<Response<RB>, MeshError>>,
        waited: bool,
        sent: Sent,
        shared: &Shared,
    ) -> ControlFlow<MeshResult<RB>, Duration>
    where
        RB: ClientBody,
    {
        let Sent {
            n,
            target,
            guard,
            deadline,
            idle_deadline,
            span,
        } = sent;
        let outcome = classify::outcome(result.as_ref());
        let idle_fired = result.is_none() && idle_deadline.is_some();
        if let (Some(cs), None, false) = (self.fwd.cluster.as_ref(), &result, idle_fired) {
            if deadline != self.route_deadline {
                Counters::bump(&cs.counters.per_try_timeouts);
            }
        }
        let result = result.unwrap_or_else(|| {
            Err(if idle_deadline.is_some() {
                MeshError::stream_idle_timeout()
            } else if deadline.is_some() && deadline == self.route_deadline {
                MeshError::route_timeout()
            } else {
                MeshError::per_try_timeout()
            })
        });
        spans::record_attempt_result(&span, &result, outcome);
        if waited {
            self.now = crate::time::now().into_std();
        }
        let endpoint = target.as_ref().map(|t| t.authority().clone());
        let cluster = self.fwd.cluster.as_deref();
        let roll = self.rolls.decide();
        let decision = self
            .retry
            .decide(cluster, target.as_ref(), outcome, self.now, roll);
        if idle_fired {
            // Nothing came back for the stream idle timeout: the request ends, not retried.
            let e = MeshError::stream_idle_timeout();
            return ControlFlow::Break(Err(self.fail(e, endpoint.as_ref(), n)));
        }
        if let RetryDecision::Done(reason) = &decision {
            self.flags.insert_done(reason);
            if let Some(cs) = self.fwd.cluster.as_ref() {
                count_done(&cs.counters, reason, n);
            }
        }
        let replayable = self.template.replayable_at_start;
        match decision {
            RetryDecision::Retry { after } if replayable && self.template.body.is_replayable() => {
                spans::record_retry(&span, outcome, after.as_millis() as u64);
                drop((result, guard));
                ControlFlow::Continue(after)
            }
            RetryDecision::Retry { .. } if replayable => {
                // The body outgrew the replay cap while the first attempt streamed it.
                self.retry.give_back(self.fwd.cluster.as_deref());
                let e = MeshError::body_too_large_to_retry();
                ControlFlow::Break(Err(self.fail(e, endpoint.as_ref(), n)))
            }
            RetryDecision::Done(DoneReason::RouteTimeout) => {
                if let (Some(cs), false) = (self.fwd.cluster.as_ref(), outcome == Outcome::Timeout)
                {
                    Counters::bump(&cs.counters.timeouts);
                }
                let e = MeshError::route_timeout();
                ControlFlow::Break(Err(self.fail(e, endpoint.as_ref(), n)))
            }
            // Done, or a retry of a body that could never be replayed: the attempt stands.
            _ => ControlFlow::Break(match result {
                Ok(res) => {
                    let mut res = reply::upstream(
                        res,
                        guard,
                        &self.fwd,
                        self.route_deadline,
                        shared.settings.stream_idle_timeout,
                        shared.settings.attempt_count_in_response.then_some(n),
                    );
                    self.flags.attach(&mut res);
                    Ok(res)
                }
                Err(e) => Err(self.fail(e, endpoint.as_ref(), n)),
            }),
        }
    }

    /// Counts a retry as it starts (after its back-off).
    pub(crate) fn count_retry(&self, shared: &Shared) {
        Counters::bump(&shared.totals.retries);
        if let Some(cs) = self.fwd.cluster.as_ref() {
            Counters::bump(&cs.counters.retries);
        }
    }
}

/// Counts how the retries of a request to a cluster ended (Envoy's `upstream_rq_retry_*` and
/// `upstream_rq_timeout`).
fn count_done(c: &Counters, reason: &DoneReason, attempt: u32) {
    match reason {
        DoneReason::AttemptsExhausted => Counters::bump(&c.retry_limit_exceeded),
        DoneReason::RetryOverflow(_) => Counters::bump(&c.retry_overflows),
        DoneReason::RouteTimeout => Counters::bump(&c.route_timeouts),
        DoneReason::Success | DoneReason::NotRetriable if attempt > 1 => {
            Counters::bump(&c.retry_successes);
        }
        _ => {}
    }
}

/// A gRPC request's deadlines as Envoy sets them under Istio (which writes `max_grpc_timeout`
/// on every route): the caller's `grpc-timeout` capped by the route timeout; the header sent
/// upstream says the per-try timeout in effect, else that global one.
fn grpc_deadlines(
    headers: &mut http::HeaderMap,
    policy: mesh_resilience::RetryPolicy,
) -> mesh_resilience::RetryPolicy {
    let caller = headers
        .get(mesh_resilience::GRPC_TIMEOUT)
        .and_then(|v| mesh_resilience::parse_grpc_timeout(v.as_bytes()));
    let deadlines = policy.deadlines().for_grpc(caller);
    if let Some(t) = deadlines.upstream_grpc_timeout() {
        headers.insert(
            mesh_resilience::GRPC_TIMEOUT,
            mesh_resilience::format_grpc_timeout(t),
        );
    }
    policy.with_deadlines(deadlines)
}

/// A trusted caller's `x-envoy-*` overrides, if it sent any; the two timeout headers are
/// consumed, as Envoy's router removes them before forwarding.
fn trusted_overrides(headers: &mut http::HeaderMap) -> Option<EnvoyOverrides> {
    if !headers.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
        return None;
    }
    let overrides = EnvoyOverrides::from_headers(headers);
    headers.remove(X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS);
    headers.remove(X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS);
    (!overrides.is_empty()).then_some(overrides)
}
