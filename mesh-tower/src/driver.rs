//! The driver: one request through the stages (`crate::stage`), in Envoy's order.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use mesh_resilience::headers::{
    self, X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS, X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS, X_REQUEST_ID,
};
use mesh_resilience::retry::EnvoyOverrides;
use mesh_resilience::{DoneReason, Outcome, RequestPermit, RetryDecision};
use tower_service::Service;

use crate::body::{MeshBody, PermitGuard, ReplayBody};
use crate::cluster::Counters;
use crate::error::MeshError;
use crate::shared::Shared;
use crate::stage::pick::{self, Target};
use crate::stage::{admit, attempt, classify, decide, fault, mirror, reply, route};
use crate::telemetry::{request_id, spans, Exchange, ResponseFlag, ResponseFlags};
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

/// One request through the mesh, with its telemetry: started here, finished when the
/// response ends (an error or a local reply at once).
pub(crate) async fn drive<S, B, RB>(
    shared: Arc<Shared>,
    client: S,
    req: Request<B>,
    span: tracing::Span,
) -> Result<Response<MeshBody<RB>>, MeshError>
where
    S: Client<B, RB>,
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
    RB: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let mut ex = Exchange::start(&shared, &req);
    let result = forward(&shared, client, req, &mut ex, &span).await;
    ex.finish(&shared, result)
}

/// Routes, faults, mirrors, then attempts until the retry policy is done.
async fn forward<S, B, RB>(
    shared: &Arc<Shared>,
    client: S,
    req: Request<B>,
    ex: &mut Exchange,
    span: &tracing::Span,
) -> Result<Response<MeshBody<RB>>, MeshError>
where
    S: Client<B, RB>,
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
    RB: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let compiled = shared.compiled.load_full();
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
    let fwd = match route::route(shared, &compiled, &parts, &mut rolls, span) {
        route::Routing::Forward(fwd) => fwd,
        route::Routing::Done(done) => return done,
    };
    ex.routed(fwd.cluster.as_ref());
    ex.route(&fwd.decision, fwd.cluster.is_none());
    // Response flags set on the way (`DI`, then `URX` or `UO` when retries end); errors and
    // changed responses carry them.
    let mut flags = ResponseFlags::new();
    if let Some(mut abort) = fault::inject(fwd.decision.fault(), &mut rolls, &mut flags).await {
        fwd.add_cors(abort.headers_mut());
        return Ok(abort);
    }
    let policy = match overrides {
        Some(o) => o.apply(fwd.decision.retry_policy()),
        None => fwd.decision.retry_policy(),
    };
    let policy = if mesh_resilience::is_grpc_request(&parts.headers) {
        grpc_deadlines(&mut parts.headers, policy)
    } else {
        policy
    };
    let mut template = attempt::Template::new(parts, body, &fwd, shared, request_id);
    mirror::spawn_copies(shared, &compiled, &fwd, &template, &client, &mut rolls);

    let cluster = fwd.cluster.as_ref();
    let name = cluster.map(|c| &c.name);
    // The clock was read when the request entered; only a fault delay moved it since.
    let mut now = if flags.contains(ResponseFlag::DelayInjected) {
        crate::time::now().into_std()
    } else {
        ex.start.into_std()
    };
    let mut retry = decide::Retry::new(&policy, now, fwd.cluster.clone());
    // An error after routing is a local reply of the router, which carries the route's
    // response header operations.
    let fail = |e: MeshError,
                endpoint: Option<&http::uri::Authority>,
                attempts: u32,
                flags: ResponseFlags| {
        e.with_context(name, endpoint, attempts)
            .with_flags(flags)
            .with_route_headers(&fwd.decision, fwd.cors.as_ref())
    };
    let route_deadline = retry
        .state
        .route_deadline()
        .map(tokio::time::Instant::from_std);
    loop {
        let n = retry.state.attempt();
        let permit = match cluster.map(|cs| (cs, admit::try_admit(cs))) {
            None => None,
            Some((_, Ok(Ok(p)))) => Some(p),
            Some((cs, Ok(Err(ticket)))) => match admit::wait(cs, ticket, route_deadline).await {
                Ok(p) => {
                    now = crate::time::now().into_std();
                    Some(p)
                }
                Err(e) => return Err(fail(e, None, n - 1, flags)),
            },
            Some((_, Err(e))) => return Err(fail(e, None, n - 1, flags)),
        };
        let target = match cluster {
            Some(cs) => match pick::pick(cs, fwd.hash, &mut retry.state, &mut rolls, now) {
                Ok(Target::Resolve(a)) => Some(Target::Resolve(pick::resolve_fallback(
                    &a,
                    template.requested_host(),
                    template.authority(),
                ))),
                Ok(t) => Some(t),
                Err(e) => return Err(fail(e, None, n - 1, flags)),
            },
            None => None,
        };
        // The attempt's span: only for an attempt that goes upstream.
        let span = spans::attempt_span(n);
        ex.peer = match &target {
            Some(Target::Endpoint(e)) => e.series,
            _ => 0,
        };
        let to = target.as_ref().map(Target::authority);
        ex.attempt(now, name, to);
        if let Some(cs) = cluster {
            Counters::bump(&cs.counters.requests);
        }
        let close = permit.as_ref().is_some_and(RequestPermit::close_connection);
        let guard = cluster.map(|cs| PermitGuard::new(cs, permit, target.as_ref()));
        let count = shared.settings.attempt_count_header.then_some(n);
        let attempt_deadline = retry
            .state
            .attempt_deadline(now)
            .map(tokio::time::Instant::from_std);
        // The stream idle timeout bounds a wait with no deadline, or a longer one.
        let idle_deadline = shared
            .settings
            .stream_idle_timeout
            .map(|d| tokio::time::Instant::from_std(now) + d)
            .filter(|i| attempt_deadline.is_none_or(|a| *i < a));
        let deadline = idle_deadline.or(attempt_deadline);
        let req = template.request(to, count, close, cluster);
        spans::record_attempt(&span, &req, name, to);
        let (result, waited) = attempt::send(client.clone(), req, deadline, span.clone()).await;
        let outcome = classify::outcome(result.as_ref());
        let idle_fired = result.is_none() && idle_deadline.is_some();
        if let (Some(cs), None, false) = (cluster, &result, idle_fired) {
            if deadline != route_deadline {
                Counters::bump(&cs.counters.per_try_timeouts);
            }
        }
        let result = result.unwrap_or_else(|| {
            Err(if idle_deadline.is_some() {
                MeshError::stream_idle_timeout()
            } else if deadline.is_some() && deadline == route_deadline {
                MeshError::route_timeout()
            } else {
                MeshError::per_try_timeout()
            })
        });
        spans::record_attempt_result(&span, &result, outcome);
        if waited {
            now = crate::time::now().into_std();
        }
        let endpoint = to.cloned();
        let decision = retry.decide(target.as_ref(), outcome, now, rolls.decide());
        if idle_fired {
            // Nothing came back for the stream idle timeout: the request ends, not retried.
            return Err(fail(
                MeshError::stream_idle_timeout(),
                endpoint.as_ref(),
                n,
                flags,
            ));
        }
        if let RetryDecision::Done(reason) = &decision {
            flags.insert_done(reason);
            if let Some(cs) = cluster {
                count_done(&cs.counters, reason, n);
            }
        }
        match decision {
            RetryDecision::Retry { after }
                if template.replayable_at_start && template.body.is_replayable() =>
            {
                spans::record_retry(&span, outcome, after.as_millis() as u64);
                drop((result, guard));
                if !after.is_zero() {
                    Box::pin(tokio::time::sleep(after)).await;
                    now = crate::time::now().into_std();
                }
            }
            RetryDecision::Retry { .. } if template.replayable_at_start => {
                // The body outgrew the replay cap while the first attempt streamed it.
                retry.give_back();
                return Err(fail(
                    MeshError::body_too_large_to_retry(),
                    endpoint.as_ref(),
                    n,
                    flags,
                ));
            }
            RetryDecision::Done(DoneReason::RouteTimeout) => {
                if let (Some(cs), false) = (cluster, outcome == Outcome::Timeout) {
                    Counters::bump(&cs.counters.timeouts);
                }
                return Err(fail(
                    MeshError::route_timeout(),
                    endpoint.as_ref(),
                    n,
                    flags,
                ));
            }
            // Done, or a retry of a body that could never be replayed: the attempt stands.
            _ => {
                return match result {
                    Ok(res) => {
                        let mut res = reply::upstream(
                            res,
                            guard,
                            &fwd,
                            route_deadline,
                            shared.settings.stream_idle_timeout,
                            shared.settings.attempt_count_in_response.then_some(n),
                        );
                        flags.attach(&mut res);
                        Ok(res)
                    }
                    Err(e) => Err(fail(e, endpoint.as_ref(), n, flags)),
                };
            }
        }
        Counters::bump(&shared.totals.retries);
        if let Some(cs) = cluster {
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
