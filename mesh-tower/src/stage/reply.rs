//! Responses: the local replies the mesh answers itself (redirect, direct response, fault
//! abort), and the upstream response of the last attempt, wrapped so that it holds the pool
//! permit until its body ends.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use mesh_resilience::headers::{GRPC_MESSAGE, GRPC_STATUS, X_ENVOY_ATTEMPT_COUNT};
use mesh_resilience::{AbortKind, FAULT_ABORT_BODY};
use mesh_routing::{DirectResponse, RequestView, RouteDecision};

use crate::body::{MeshBody, PermitGuard};
use crate::stage::route::Forward;

/// A local reply: `status`, the body, and `content-type: text/plain` when there is a body.
pub(crate) fn local<RB>(status: StatusCode, body: Bytes) -> Response<MeshBody<RB>> {
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

/// The CORS filter's answer to a preflight: 200, its headers, no body.
pub(crate) fn preflight<RB>(headers: http::HeaderMap) -> Response<MeshBody<RB>> {
    let mut res = Response::new(MeshBody::local(Bytes::new()));
    *res.headers_mut() = headers;
    res
}

/// A `redirect` route's reply, with the route's response header operations.
pub(crate) fn redirect<RB>(
    decision: &RouteDecision<'_>,
    view: &RequestView<'_>,
) -> Response<MeshBody<RB>> {
    let code = decision
        .redirect_code()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let mut res = local(code, Bytes::new());
    if let Some(loc) = decision
        .redirect_location(view)
        .and_then(|l| HeaderValue::try_from(l).ok())
    {
        res.headers_mut().insert(LOCATION, loc);
    }
    decision.apply_response_headers(res.headers_mut());
    res
}

/// A `directResponse` route's reply, with the route's response header operations.
pub(crate) fn direct<RB>(
    decision: &RouteDecision<'_>,
    d: &DirectResponse,
) -> Response<MeshBody<RB>> {
    let mut res = local(d.status(), d.body().cloned().unwrap_or_default());
    decision.apply_response_headers(res.headers_mut());
    res
}

/// The fault filter's local reply. A gRPC abort is HTTP 200 with `grpc-status` and
/// `grpc-message` (a trailers-only response).
pub(crate) fn abort<RB>(kind: AbortKind) -> Response<MeshBody<RB>> {
    match kind {
        AbortKind::Http(status) => local(status, Bytes::from_static(FAULT_ABORT_BODY.as_bytes())),
        AbortKind::Grpc(g) => {
            let mut res = Response::new(MeshBody::local(Bytes::new()));
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            h.insert(GRPC_STATUS, HeaderValue::from(g.code()));
            h.insert(GRPC_MESSAGE, HeaderValue::from_static(FAULT_ABORT_BODY));
            res
        }
    }
}

/// The upstream response of the last attempt: its body holds `guard` (the pool permit and
/// the endpoint's in-flight slot) until it ends and is bounded by the route deadline; the
/// route's response header operations and (when enabled) the attempt count are added.
#[inline(always)]
pub(crate) fn upstream<RB: http_body::Body>(
    res: Response<RB>,
    guard: Option<PermitGuard>,
    fwd: &Forward,
    route_deadline: Option<tokio::time::Instant>,
    idle: Option<std::time::Duration>,
    attempt_count: Option<u32>,
) -> Response<MeshBody<RB>> {
    let mut res = res.map(|b| MeshBody::upstream(b, guard, route_deadline, idle));
    if fwd.header_ops {
        fwd.decision().apply_response_headers(res.headers_mut());
    }
    if let Some(n) = attempt_count {
        res.headers_mut().insert(
            X_ENVOY_ATTEMPT_COUNT,
            crate::stage::attempt::attempt_count_value(n),
        );
    }
    if let Some(cookie) = &fwd.set_cookie {
        res.headers_mut().append(SET_COOKIE, cookie.clone());
    }
    fwd.add_cors(res.headers_mut());
    res
}
