//! The `mesh.request` and `mesh.attempt` spans, with OpenTelemetry's HTTP client semantic
//! conventions as field names, so that `tracing-opentelemetry` turns them into client spans
//! whose attributes a tracing backend reads as it reads any HTTP client's.
//!
//! Both are `DEBUG` spans: a disabled span is `Span::none()` after one check of the callsite's
//! cached interest, and every field below is recorded only when the span is enabled.

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Method, Response, Uri};
use mesh_routing::{Action, RouteDecision};
use tracing::{field, Span};

use crate::compiled::Compiled;
use crate::error::MeshError;
use crate::telemetry::ResponseFlags;

/// The span of one request through the mesh (`mesh.request`), entered on every poll of its
/// future; the attempts' spans are its children. The request's fields are recorded here,
/// before the span is first entered: `tracing-opentelemetry` takes the span's name
/// (`otel.name`) only until then.
pub(crate) fn request_span<B>(req: &http::Request<B>) -> Span {
    let span = tracing::debug_span!(
        "mesh.request",
        otel.name = field::Empty,
        otel.kind = "client",
        otel.status_code = field::Empty,
        http.request.method = field::Empty,
        http.request.method_original = field::Empty,
        server.address = field::Empty,
        server.port = field::Empty,
        url.full = field::Empty,
        http.response.status_code = field::Empty,
        error.type = field::Empty,
        mesh.virtual_service = field::Empty,
        mesh.route = field::Empty,
        mesh.destination = field::Empty,
        mesh.cluster = field::Empty,
        mesh.response_flags = field::Empty,
    );
    record_request(&span, req.method(), req.uri(), req.headers());
    span
}

/// The span of attempt `attempt` (1 for the first), a child of the request's span. A retry's
/// span carries `http.request.resend_count` (`attempt - 1`), as the conventions ask of every
/// resent request.
pub(crate) fn attempt_span(attempt: u32) -> Span {
    let span = tracing::debug_span!(
        "mesh.attempt",
        otel.name = field::Empty,
        otel.kind = "client",
        otel.status_code = field::Empty,
        http.request.method = field::Empty,
        http.request.method_original = field::Empty,
        server.address = field::Empty,
        server.port = field::Empty,
        url.full = field::Empty,
        network.peer.address = field::Empty,
        network.peer.port = field::Empty,
        http.request.resend_count = field::Empty,
        http.response.status_code = field::Empty,
        error.type = field::Empty,
        mesh.attempt = attempt,
        mesh.cluster = field::Empty,
        mesh.outcome = field::Empty,
        mesh.retry_reason = field::Empty,
        mesh.backoff_ms = field::Empty,
    );
    if attempt > 1 && !span.is_disabled() {
        span.record("http.request.resend_count", attempt - 1);
    }
    span
}

/// The request as the caller sent it: method, server, full URL.
fn record_request(span: &Span, method: &Method, uri: &Uri, headers: &HeaderMap) {
    if span.is_disabled() {
        return;
    }
    record_method(span, method);
    let authority = uri
        .authority()
        .map(Authority::as_str)
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()));
    record_url(span, uri.scheme(), authority, uri);
}

/// The request of one attempt as it goes upstream: the method, the server it names (its
/// `Host`, else its URI's authority), the full URL after the route's rewrites, and the
/// endpoint it is sent to (`network.peer.*`). Before the attempt's span is first entered.
pub(crate) fn record_attempt<B>(
    span: &Span,
    req: &http::Request<B>,
    cluster: Option<&mesh_routing::ClusterName>,
    endpoint: Option<&Authority>,
) {
    if span.is_disabled() {
        return;
    }
    record_method(span, req.method());
    let uri = req.uri();
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
    record_url(
        span,
        uri.scheme(),
        host.or_else(|| uri.authority().map(Authority::as_str)),
        uri,
    );
    if let Some(e) = endpoint {
        span.record("network.peer.address", e.host());
        if let Some(p) = e.port_u16() {
            span.record("network.peer.port", p);
        }
    }
    if let Some(c) = cluster {
        span.record("mesh.cluster", field::display(c));
    }
}

/// Routing's decision on the request's span: virtual service, route, destination host and
/// cluster.
pub(crate) fn record_route(span: &Span, compiled: &Compiled, decision: &RouteDecision<'_>) {
    if span.is_disabled() {
        return;
    }
    if let Some(vs) = decision.virtual_service() {
        span.record("mesh.virtual_service", field::display(vs));
    }
    if let Some(r) = decision.route() {
        span.record("mesh.route", field::display(r));
    }
    if let Action::Route(r) = decision.action() {
        span.record("mesh.destination", r.destination().host());
    }
    if let Some(c) = decision.cluster() {
        span.record(
            "mesh.cluster",
            field::display(compiled.table.cluster_key(c)),
        );
    }
}

/// How the request ended, on its span: the status the caller got, `error.type` (the status
/// for 4xx and 5xx, Envoy's response code details for an error of the mesh) and the response
/// flags.
pub(crate) fn record_result<T>(span: &Span, result: &Result<Response<T>, MeshError>) {
    if span.is_disabled() {
        return;
    }
    let flags = match result {
        Ok(res) => ResponseFlags::of(res),
        Err(e) => e.response_flags(),
    };
    record_status(span, result);
    span.record("mesh.response_flags", field::display(flags));
}

/// How an attempt ended, on its span: as [`record_result`], without flags (the request's say
/// why the request ended), with the outcome the retry policy saw.
pub(crate) fn record_attempt_result<T>(
    span: &Span,
    result: &Result<Response<T>, MeshError>,
    outcome: mesh_resilience::Outcome,
) {
    if span.is_disabled() {
        return;
    }
    record_status(span, result);
    span.record("mesh.outcome", field::debug(outcome));
}

/// A retry follows this attempt after `backoff`.
pub(crate) fn record_retry(span: &Span, outcome: mesh_resilience::Outcome, backoff_ms: u64) {
    if span.is_disabled() {
        return;
    }
    span.record("mesh.retry_reason", field::debug(outcome));
    span.record("mesh.backoff_ms", backoff_ms);
}

fn record_status<T>(span: &Span, result: &Result<Response<T>, MeshError>) {
    match result {
        Ok(res) => {
            let status = res.status();
            span.record("http.response.status_code", status.as_u16());
            // The conventions: a client's 4xx and 5xx are errors, `error.type` their code.
            if status.as_u16() >= 400 {
                span.record("error.type", status.as_str());
                span.record("otel.status_code", "error");
            }
        }
        Err(e) => {
            // No response came from upstream; the caller gets the mesh's local reply.
            span.record("error.type", e.details());
            span.record("otel.status_code", "error");
        }
    }
}

/// `http.request.method` and the span's name: the conventions' known methods as they are,
/// any other as `_OTHER` with the original kept.
fn record_method(span: &Span, method: &Method) {
    let known = matches!(
        *method,
        Method::GET
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS
            | Method::PATCH
            | Method::CONNECT
            | Method::TRACE
    );
    if known {
        span.record("http.request.method", method.as_str());
        span.record("otel.name", method.as_str());
    } else {
        span.record("http.request.method", "_OTHER");
        span.record("http.request.method_original", method.as_str());
        span.record("otel.name", "HTTP");
    }
}

/// `server.address`, `server.port` (the scheme's default when the authority names none) and
/// `url.full` (without user info, which the conventions forbid in it).
fn record_url(span: &Span, scheme: Option<&Scheme>, authority: Option<&str>, uri: &Uri) {
    let scheme = scheme.map_or("http", Scheme::as_str);
    let authority = authority.map(|a| a.rsplit_once('@').map_or(a, |(_, bare)| bare));
    if let Some(a) = authority.and_then(|a| Authority::try_from(a).ok()) {
        span.record("server.address", a.host());
        let port = a.port_u16().or(match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        if let Some(p) = port {
            span.record("server.port", p);
        }
    }
    // Without an authority there is no absolute URL to give.
    if let Some(authority) = authority {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        span.record(
            "url.full",
            field::display(format_args!("{scheme}://{authority}{path}")),
        );
    }
}
