//! The upstream request: built once from the caller's request ([`Template`]), then one copy
//! per attempt (and per mirror), each bounded by the per-try timeout until its response
//! headers arrive ([`send`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONNECTION, HOST};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Uri, Version};
use mesh_resilience::headers::{X_ENVOY_ATTEMPT_COUNT, X_REQUEST_ID};
use mesh_routing::RouteDecision;
use tower::util::Oneshot;
use tower::ServiceExt;
use tower_service::Service;

use crate::body::ReplayBody;
use crate::cluster::{ClusterState, Upstream};
use crate::error::MeshError;
use crate::shared::Shared;
use crate::BoxError;

/// What every attempt and mirror copy of one request share: method, version, scheme, the
/// path after rewriting, the headers after the route's operations, the `Host` to send, and
/// the replayable body. Built once; each attempt clones it.
pub(crate) struct Template<B> {
    method: Method,
    version: Version,
    scheme: Scheme,
    path: PathAndQuery,
    /// The caller's authority, for requests that keep it (passthrough, name fallback).
    authority: Option<Authority>,
    headers: HeaderMap,
    /// The `Host` to add upstream when the headers do not already carry it.
    host: Option<HeaderValue>,
    /// The `x-request-id` the mesh generated (the caller sent none), added to every attempt
    /// and mirror copy after `Host` so that the upstream headers are allocated once.
    request_id: Option<HeaderValue>,
    /// The caller's extensions, handed to the first attempt.
    extensions: Option<Extensions>,
    pub(crate) body: ReplayBody<B>,
    /// Whether the body could be replayed when the request entered (else it is sent once).
    pub(crate) replayable_at_start: bool,
    /// Whether each attempt carries its cluster ([`Upstream`]) and the `Host` whatever the
    /// version, for a client that speaks to each cluster as its policy says.
    upstream_info: bool,
}

impl<B: http_body::Body<Error: Into<BoxError>>> Template<B> {
    /// Builds the template: request header operations applied, the path rewritten, the
    /// `Host` chosen (the route's authority rewrite, else the caller's `Host`, else the URI's
    /// authority), the body wrapped for replay within the replay cap. The caller's URI is
    /// taken apart, not copied.
    pub(crate) fn new(
        parts: Parts,
        body: B,
        decision: &RouteDecision<'_>,
        rewritten: Option<PathAndQuery>,
        shared: &Shared,
        request_id: Option<HeaderValue>,
    ) -> Self {
        let (body, replayable_at_start) =
            match ReplayBody::try_new(body, shared.settings.replay_cap) {
                Ok(b) => (b, true),
                Err(b) => (ReplayBody::unreplayable(b), false),
            };
        let Parts {
            method,
            uri,
            version,
            mut headers,
            extensions,
            ..
        } = parts;
        let mut uri = uri.into_parts();
        // Credentials in the URI (`http://user:pw@host/`) are not part of the authority: they
        // are neither routed by nor sent, in `Host` or in the upstream URI.
        if let Some(a) = &uri.authority {
            let bare = mesh_routing::without_userinfo(a.as_str());
            if bare.len() != a.as_str().len() {
                uri.authority = Authority::try_from(bare).ok();
            }
        }
        decision.apply_request_headers(&mut headers);
        let host = match decision.authority_rewrite() {
            Some(a) => Some(a.clone()),
            // The caller's own `Host` is already in the headers.
            None if headers.contains_key(HOST) => None,
            None => uri
                .authority
                .as_ref()
                .and_then(|a| shared.hosts.get(a.as_str())),
        };
        let path = match (rewritten, uri.path_and_query) {
            (Some(p), _) => p,
            (None, Some(p)) => p,
            (None, None) => PathAndQuery::from_static("/"),
        };
        Template {
            method,
            version,
            scheme: uri.scheme.unwrap_or(Scheme::HTTP),
            authority: uri.authority,
            path,
            headers,
            host,
            request_id,
            extensions: Some(extensions),
            body,
            replayable_at_start,
            upstream_info: shared.upstream_info(),
        }
    }

    /// The host the caller connects to (the URI's authority, else the `Host` header), without
    /// a port: where a request to a cluster without endpoints is resolved by name.
    pub(crate) fn requested_host(&self) -> Option<&str> {
        let authority = match &self.authority {
            Some(a) => Some(a.as_str()),
            None => self.headers.get(HOST).and_then(|h| h.to_str().ok()),
        }?;
        Some(match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        })
    }

    /// The caller's authority.
    pub(crate) fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

    /// The request of one attempt to `to` (`None`: the caller's own authority). The first
    /// attempt gets the caller's extensions. `close` (the pool's `maxRequestsPerConnection:
    /// 1`) asks an HTTP/1 client to close the connection after it (`connection: close`).
    pub(crate) fn request(
        &mut self,
        to: Option<&Authority>,
        attempt_count: Option<u32>,
        close: bool,
        cluster: Option<&Arc<ClusterState>>,
    ) -> Request<ReplayBody<B>> {
        let mut req = self.build(to);
        if close && self.version <= Version::HTTP_11 {
            req.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(ext) = self.extensions.take() {
            *req.extensions_mut() = ext;
        }
        self.tag(&mut req, cluster);
        if let Some(n) = attempt_count {
            req.headers_mut()
                .insert(X_ENVOY_ATTEMPT_COUNT, attempt_count_value(n));
        }
        req
    }

    /// Tells a client that wants it which cluster the request is for (after the caller's
    /// extensions are in place).
    fn tag(&self, req: &mut Request<ReplayBody<B>>, cluster: Option<&Arc<ClusterState>>) {
        if let (true, Some(cs)) = (self.upstream_info, cluster) {
            req.extensions_mut().insert(Upstream(Arc::clone(cs)));
        }
    }

    /// A mirror copy to `to` in `cluster`, with the `Host` Envoy gives shadows (`api:8080` →
    /// `api-shadow:8080`), over any HTTP version.
    pub(crate) fn shadow(
        &self,
        to: &Authority,
        cluster: &Arc<ClusterState>,
    ) -> Request<ReplayBody<B>> {
        let mut req = self.build(Some(to));
        self.tag(&mut req, Some(cluster));
        // A mirror copy follows the attempts: it never reads the caller's body ahead of
        // them, so it cannot push the replay buffer past its cap and fail the request.
        *req.body_mut() = self.body.follower();
        let shadow = self
            .host
            .as_ref()
            .or_else(|| self.headers.get(HOST))
            .and_then(|h| h.to_str().ok())
            .and_then(|h| HeaderValue::try_from(shadow_host(h)).ok());
        if let Some(h) = shadow {
            req.headers_mut().insert(HOST, h);
        }
        req
    }

    fn build(&self, to: Option<&Authority>) -> Request<ReplayBody<B>> {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = to.or(self.authority.as_ref()).cloned();
        uri.path_and_query = Some(self.path.clone());
        let uri = Uri::from_parts(uri).unwrap_or_default();
        let mut req = Request::new(self.body.clone());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        // Over HTTP/1 the `Host` header names the service while the URI names the endpoint;
        // over HTTP/2 the `:authority` is the endpoint.
        // A client that chooses the upstream version itself gets the `Host` always and moves
        // it into `:authority` for HTTP/2.
        if let Some(h) = &self.host {
            if self.version <= Version::HTTP_11 || self.upstream_info {
                req.headers_mut().insert(HOST, h.clone());
            }
        }
        if let Some(id) = &self.request_id {
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
        }
        req
    }
}

/// The `x-envoy-attempt-count` value for attempt `n`: static for the first ten (no
/// allocation on the request path), formatted beyond.
pub(crate) fn attempt_count_value(n: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"];
    match n.checked_sub(1).and_then(|i| SMALL.get(i as usize)) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(n),
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

/// Sends one attempt on `client` (a clone of the mesh's), bounded by `deadline` until the response
/// headers arrive, inside `span`. `None` when the deadline fired first; the flag says
/// whether the call had to wait at all (a call that answered on its first poll took no time).
pub(crate) fn send<S, B, RB>(
    client: S,
    req: Request<ReplayBody<B>>,
    deadline: Option<tokio::time::Instant>,
    span: tracing::Span,
) -> Attempt<Oneshot<S, Request<ReplayBody<B>>>>
where
    S: Service<Request<ReplayBody<B>>, Response = http::Response<RB>>,
    S::Error: Into<BoxError>,
{
    Attempt {
        call: client.oneshot(req),
        deadline,
        sleep: None,
        span,
        waited: false,
    }
}

pin_project_lite::pin_project! {
    /// One attempt: the client call, bounded by the attempt deadline, inside the
    /// `mesh.attempt` span. The timer is only armed when the call does not answer on its
    /// first poll.
    pub(crate) struct Attempt<F> {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::shadow_host;

    proptest! {
        /// The shadow host inserts `-shadow` before the port, or at the end.
        #[test]
        fn shadow_host_keeps_the_port(name in "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}", port in proptest::option::of(1u16..)) {
            let host = match port {
                Some(p) => format!("{name}:{p}"),
                None => name.clone(),
            };
            let expected = match port {
                Some(p) => format!("{name}-shadow:{p}"),
                None => format!("{name}-shadow"),
            };
            prop_assert_eq!(shadow_host(&host), expected);
        }
    }

    #[test]
    fn shadow_host_suffixes_the_name_before_the_port() {
        assert_eq!(shadow_host("api:8080"), "api-shadow:8080");
        assert_eq!(shadow_host("api"), "api-shadow");
        assert_eq!(
            shadow_host("api.ns.svc.cluster.local"),
            "api.ns.svc.cluster.local-shadow"
        );
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }
}
