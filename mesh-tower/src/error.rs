//! The mesh's error type, and the response Envoy would have sent for each error.
//!
//! [`MeshError`] is opaque, like `hyper::Error`: ask it what happened with the
//! `is_*` methods and walk [`source`](std::error::Error::source) for the cause.
//! The text of its `Display` output is **not** part of the stable API; match on
//! the predicates, never on the message.
//!
//! A sidecar never returns an "error" to the application: it answers with a
//! local reply. [`MeshError::to_response`] builds that reply exactly as Envoy
//! writes it (status, body text and headers), so an application moving from a
//! sidecar to this library can keep its error handling:
//!
//! | Error | Status | Body | Headers |
//! |---|---|---|---|
//! | route or per-try timeout ([`is_timeout`](MeshError::is_timeout)) | 504 | `upstream request timeout` | |
//! | stream idle timeout ([`is_timeout`](MeshError::is_timeout); nothing from the upstream for [`MeshBuilder::stream_idle_timeout`](crate::MeshBuilder::stream_idle_timeout)) | 408 | `stream timeout` | |
//! | connection-pool overflow ([`is_overflow`](MeshError::is_overflow)) | 503 | `upstream connect error or disconnect/reset before headers. reset reason: overflow` | `x-envoy-overloaded: true` |
//! | no route matched ([`is_no_route`](MeshError::is_no_route)) | 404 | empty | |
//! | no healthy endpoint ([`is_no_healthy_upstream`](MeshError::is_no_healthy_upstream)) | 503 | `no healthy upstream` | |
//! | route names an undefined subset or host ([`is_unknown_cluster`](MeshError::is_unknown_cluster)) | 503 | empty | |
//! | connect failure, reset, refused stream ([`is_upstream`](MeshError::is_upstream)) | 503 | `upstream connect error or disconnect/reset before headers. reset reason: <reason>` (TLS failures add `, transport failure reason: <reason>`, see [`transport_failure_reason`](MeshError::transport_failure_reason)) | |
//! | upstream protocol error | 502 | same prefix, `reset reason: protocol error` | |
//! | body too large to retry ([`is_body_too_large_to_retry`](MeshError::is_body_too_large_to_retry)) | 507 | `exceeded request buffer limit while retrying upstream` | |
//!
//! After retries the upstream text reads `... before headers. retried and the
//! latest reset reason: <reason>`, as Envoy's does. The reasons are Envoy's:
//! `remote connection failure`, `connection timeout`, `connection termination`,
//! `remote reset`, `remote refused stream reset`. Upstream errors this crate
//! cannot classify are reported as `connection termination`.
//!
//! # Example
//!
//! ```
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use mesh_tower::error::MeshError;
//!
//! fn reply(err: &MeshError) -> http::Response<Full<Bytes>> {
//!     err.to_response()
//! }
//! # let _ = reply;
//! ```

use std::error::Error as StdError;
use std::fmt;

use bytes::Bytes;
use http::uri::Authority;
use http::{header, HeaderValue, Response, StatusCode};
use mesh_resilience::headers::X_ENVOY_OVERLOADED;
use mesh_routing::cors::Cors;
use mesh_routing::headers::HeaderOps;
use mesh_routing::{ClusterName, RouteDecision};

use crate::telemetry::{ResponseFlag, ResponseFlags};
use crate::BoxError;

mod classify;

pub(crate) use classify::{classify, UpstreamFailure};

/// The error of a request that went through the mesh.
///
/// See the [module documentation](self) for what each kind means and the
/// response it stands for.
pub struct MeshError {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    /// Attempts made before the error (0 when no attempt was made).
    attempts: u32,
    cluster: Option<ClusterName>,
    endpoint: Option<Authority>,
    /// Flags set before the error (`DI`, `URX`, `UO`); the error's own flag follows them.
    flags: ResponseFlags,
    source: Option<BoxError>,
    /// The route's response header operations, which Envoy's router applies to its local
    /// replies too (`None` when the route has none).
    response_ops: Option<Box<[HeaderOps]>>,
    /// The CORS headers of an actual CORS request, set after the route's operations.
    cors: Option<Box<http::HeaderMap>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RouteTimeout,
    PerTryTimeout,
    StreamIdleTimeout,
    Overflow,
    NoRoute,
    NoHealthyUpstream,
    UnknownCluster,
    BodyTooLargeToRetry,
    Upstream(UpstreamFailure),
}

const UPSTREAM_PREFIX: &str = "upstream connect error or disconnect/reset before headers. ";

// Constructors are crate-private: only the mesh creates its errors.
impl MeshError {
    fn new(kind: Kind, source: Option<BoxError>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                attempts: 0,
                cluster: None,
                endpoint: None,
                flags: ResponseFlags::new(),
                source,
                response_ops: None,
                cors: None,
            }),
        }
    }

    pub(crate) fn route_timeout() -> Self {
        Self::new(Kind::RouteTimeout, None)
    }

    pub(crate) fn stream_idle_timeout() -> Self {
        Self::new(Kind::StreamIdleTimeout, None)
    }

    pub(crate) fn per_try_timeout() -> Self {
        Self::new(Kind::PerTryTimeout, None)
    }

    pub(crate) fn overflow() -> Self {
        Self::new(Kind::Overflow, None)
    }

    pub(crate) fn no_route() -> Self {
        Self::new(Kind::NoRoute, None)
    }

    pub(crate) fn no_healthy_upstream() -> Self {
        Self::new(Kind::NoHealthyUpstream, None)
    }

    pub(crate) fn unknown_cluster() -> Self {
        Self::new(Kind::UnknownCluster, None)
    }

    pub(crate) fn body_too_large_to_retry() -> Self {
        Self::new(Kind::BodyTooLargeToRetry, None)
    }

    /// Wraps an error of the inner client, classifying it once.
    pub(crate) fn upstream(err: impl Into<BoxError>) -> Self {
        let err = err.into();
        let failure = classify(&*err);
        Self::new(Kind::Upstream(failure), Some(err))
    }

    /// Says where the error happened: the cluster, the endpoint of the last attempt (if one
    /// was picked) and how many attempts were made (more than one changes the reply text).
    pub(crate) fn with_context(
        mut self,
        cluster: Option<&ClusterName>,
        endpoint: Option<&Authority>,
        attempts: u32,
    ) -> Self {
        self.inner.cluster = cluster.cloned();
        self.inner.endpoint = endpoint.cloned();
        self.inner.attempts = attempts;
        self
    }

    /// Records the route's response header operations and, for an actual CORS request, the
    /// CORS filter's headers, for [`to_response`](Self::to_response).
    pub(crate) fn with_route_headers(
        mut self,
        decision: &RouteDecision<'_>,
        cors: Option<(&Cors, &HeaderValue)>,
    ) -> Self {
        if let Some((c, origin)) = cors {
            let mut h = http::HeaderMap::new();
            c.response_headers(origin, &mut h);
            self.inner.cors = Some(Box::new(h));
        }
        let ops: Box<[HeaderOps]> = decision
            .header_operations()
            .map(|h| h.response())
            .filter(|ops| !ops.is_empty())
            .cloned()
            .collect();
        if !ops.is_empty() {
            self.inner.response_ops = Some(ops);
        }
        self
    }

    /// The response flags the request collected before this error (`DI`, `URX`, `UO`).
    pub(crate) fn with_flags(mut self, flags: ResponseFlags) -> Self {
        self.inner.flags = flags;
        self
    }

    /// The flag of this kind of error (Envoy's for the same local reply).
    fn kind_flag(&self) -> Option<ResponseFlag> {
        Some(match self.inner.kind {
            Kind::RouteTimeout | Kind::PerTryTimeout => ResponseFlag::UpstreamRequestTimeout,
            Kind::StreamIdleTimeout => ResponseFlag::StreamIdleTimeout,
            Kind::Overflow => ResponseFlag::UpstreamOverflow,
            Kind::NoRoute => ResponseFlag::NoRouteFound,
            Kind::NoHealthyUpstream => ResponseFlag::NoHealthyUpstream,
            Kind::UnknownCluster => ResponseFlag::NoClusterFound,
            // Envoy's "exceeded request buffer limit while retrying upstream" sets no flag.
            Kind::BodyTooLargeToRetry => return None,
            Kind::Upstream(f) => f.response_flag(),
        })
    }

    fn retried(&self) -> bool {
        self.inner.attempts > 1
    }

    /// The classified failure, when the error came from the inner client.
    pub(crate) fn failure(&self) -> Option<UpstreamFailure> {
        match self.inner.kind {
            Kind::Upstream(f) => Some(f),
            _ => None,
        }
    }
}

impl MeshError {
    /// A route timeout or per-try timeout fired, or the client itself timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::RouteTimeout
                | Kind::PerTryTimeout
                | Kind::StreamIdleTimeout
                | Kind::Upstream(UpstreamFailure::Timeout | UpstreamFailure::ConnectTimeout)
        )
    }

    /// The connection-pool limits (circuit breaker) refused the request.
    pub fn is_overflow(&self) -> bool {
        self.inner.kind == Kind::Overflow
    }

    /// No route of the route table matched the request.
    pub fn is_no_route(&self) -> bool {
        self.inner.kind == Kind::NoRoute
    }

    /// The destination had no endpoint to send to (all ejected, or none known).
    pub fn is_no_healthy_upstream(&self) -> bool {
        self.inner.kind == Kind::NoHealthyUpstream
    }

    /// The route points at a cluster that does not exist, such as a subset no
    /// DestinationRule defines (Envoy's `NC` flag).
    pub fn is_unknown_cluster(&self) -> bool {
        self.inner.kind == Kind::UnknownCluster
    }

    /// The request body outgrew the replay buffer while a retry was waiting.
    pub fn is_body_too_large_to_retry(&self) -> bool {
        self.inner.kind == Kind::BodyTooLargeToRetry
    }

    /// The inner client failed; [`source`](StdError::source) is its error.
    pub fn is_upstream(&self) -> bool {
        matches!(self.inner.kind, Kind::Upstream(_))
    }

    /// The cluster (`outbound|port|subset|host`) the request was for, when routing chose one.
    pub fn cluster(&self) -> Option<&ClusterName> {
        self.inner.cluster.as_ref()
    }

    /// The endpoint (`ip:port`) of the last attempt, when one was picked.
    pub fn endpoint(&self) -> Option<&Authority> {
        self.inner.endpoint.as_ref()
    }

    /// How many attempts were made (0 when the request never reached a client).
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// Envoy's response flags for this error, as a sidecar's access log and Istio's
    /// `response_flags` label would show them: the flags set on the way (`DI` for a fault
    /// delay, `URX` when retries ran out, `UO` when a retry was refused), then the error's own
    /// (`NR`, `NC`, `UH`, `UO`, `UF`, `UC`, `UR`, `UPE`, `UT`, `SI`; none for
    /// [`is_body_too_large_to_retry`](Self::is_body_too_large_to_retry)). For example `URX,UF`
    /// when every attempt failed to connect. See [`telemetry`](crate::telemetry).
    pub fn response_flags(&self) -> ResponseFlags {
        let mut flags = self.inner.flags;
        if let Some(f) = self.kind_flag() {
            flags.insert(f);
        }
        flags
    }

    /// The inner client could not connect to the endpoint.
    pub fn is_connect(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::Upstream(UpstreamFailure::ConnectFailure | UpstreamFailure::ConnectTimeout)
        )
    }

    /// The status Envoy would have answered with for this error.
    pub fn status(&self) -> StatusCode {
        match self.inner.kind {
            Kind::RouteTimeout | Kind::PerTryTimeout | Kind::Upstream(UpstreamFailure::Timeout) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Kind::NoRoute => StatusCode::NOT_FOUND,
            Kind::StreamIdleTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::BodyTooLargeToRetry => StatusCode::INSUFFICIENT_STORAGE,
            Kind::Upstream(UpstreamFailure::Protocol) => StatusCode::BAD_GATEWAY,
            Kind::Overflow | Kind::NoHealthyUpstream | Kind::UnknownCluster | Kind::Upstream(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Envoy's `%RESPONSE_CODE_DETAILS%` for this error.
    pub(crate) fn details(&self) -> &'static str {
        match self.inner.kind {
            Kind::RouteTimeout => "upstream_response_timeout",
            Kind::PerTryTimeout => "upstream_per_try_timeout",
            Kind::StreamIdleTimeout => "stream_idle_timeout",
            Kind::Overflow => "upstream_reset_before_response_started{overflow}",
            Kind::NoRoute => "route_not_found",
            Kind::NoHealthyUpstream => "no_healthy_upstream",
            Kind::UnknownCluster => "cluster_not_found",
            Kind::BodyTooLargeToRetry => "request_payload_exceeded_retry_buffer_limit",
            Kind::Upstream(f) => match f {
                UpstreamFailure::ConnectFailure => {
                    "upstream_reset_before_response_started{remote_connection_failure}"
                }
                UpstreamFailure::ConnectTimeout => {
                    "upstream_reset_before_response_started{connection_timeout}"
                }
                UpstreamFailure::RemoteReset => {
                    "upstream_reset_before_response_started{remote_reset}"
                }
                UpstreamFailure::RefusedStream => {
                    "upstream_reset_before_response_started{remote_refused_stream_reset}"
                }
                UpstreamFailure::Protocol => {
                    "upstream_reset_before_response_started{protocol_error}"
                }
                UpstreamFailure::Timeout => "upstream_response_timeout",
                UpstreamFailure::ResetBeforeRequest
                | UpstreamFailure::ConnectionTermination
                | UpstreamFailure::Other => {
                    "upstream_reset_before_response_started{connection_termination}"
                }
            },
        }
    }

    /// The length of the local reply's body (the bytes Envoy would send).
    pub(crate) fn reply_len(&self) -> usize {
        self.reply_body().len()
    }

    fn reply_body(&self) -> Bytes {
        let upstream = |reason: &str| {
            let middle = if self.retried() {
                "retried and the latest reset reason: "
            } else {
                "reset reason: "
            };
            Bytes::from(format!("{UPSTREAM_PREFIX}{middle}{reason}"))
        };
        match self.inner.kind {
            Kind::RouteTimeout | Kind::PerTryTimeout | Kind::Upstream(UpstreamFailure::Timeout) => {
                Bytes::from_static(b"upstream request timeout")
            }
            Kind::NoRoute | Kind::UnknownCluster => Bytes::new(),
            Kind::StreamIdleTimeout => Bytes::from_static(b"stream timeout"),
            Kind::NoHealthyUpstream => Bytes::from_static(b"no healthy upstream"),
            Kind::BodyTooLargeToRetry => {
                Bytes::from_static(b"exceeded request buffer limit while retrying upstream")
            }
            Kind::Overflow => upstream("overflow"),
            Kind::Upstream(f) => match self.transport_failure_reason() {
                Some(t) => upstream(&format!(
                    "{}, transport failure reason: {t}",
                    f.reset_reason()
                )),
                None => upstream(f.reset_reason()),
            },
        }
    }

    /// Envoy's transport failure reason (`%UPSTREAM_TRANSPORT_FAILURE_REASON%`) when the
    /// connection failed in TLS: the server's certificate did not verify
    /// (`TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end`),
    /// the credentials could not be loaded, the handshake failed. Only
    /// [`MeshClient`](crate::client::MeshClient) knows it.
    pub fn transport_failure_reason(&self) -> Option<&str> {
        #[cfg(feature = "mesh-client")]
        {
            let mut next: Option<&(dyn StdError + 'static)> =
                self.inner.source.as_deref().map(|e| e as _);
            for _ in 0..32 {
                let e = next?;
                if let Some(c) = e.downcast_ref::<crate::client::ConnectError>() {
                    return c.transport_failure_reason();
                }
                next = e.source();
            }
        }
        None
    }

    /// The local reply Envoy would have sent for this error.
    ///
    /// Status, body text and headers follow the table in the
    /// [module documentation](self). A non-empty body comes with
    /// `content-type: text/plain` and `content-length`, as Envoy's local
    /// replies do; overflow adds `x-envoy-overloaded: true`. When a route was chosen,
    /// its response header operations are applied, as Envoy's router applies them to
    /// the local replies it sends. The response carries the error's
    /// [`response_flags`](Self::response_flags) as an extension ([`ResponseFlags::of`]).
    ///
    /// Any body type that can be built from [`Bytes`] works, for example
    /// `http_body_util::Full<Bytes>` or `reqwest::Body`.
    pub fn to_response<B>(&self) -> Response<B>
    where
        B: From<Bytes>,
    {
        let body = self.reply_body();
        let mut res = Response::new(B::from(Bytes::new()));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        if !body.is_empty() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if self.is_overflow() {
            headers.insert(X_ENVOY_OVERLOADED, HeaderValue::from_static("true"));
        }
        for ops in self.inner.response_ops.iter().flatten() {
            ops.apply(headers);
        }
        if let Some(cors) = &self.inner.cors {
            for (name, value) in cors.iter() {
                headers.insert(name, value.clone());
            }
        }
        *res.body_mut() = B::from(body);
        self.response_flags().attach(&mut res);
        res
    }
}

impl fmt::Debug for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MeshError");
        d.field("kind", &self.inner.kind);
        d.field("attempts", &self.inner.attempts);
        if !self.inner.flags.is_empty() {
            d.field("flags", &self.inner.flags);
        }
        if let Some(c) = &self.inner.cluster {
            d.field("cluster", &format_args!("{c}"));
        }
        if let Some(e) = &self.inner.endpoint {
            d.field("endpoint", &format_args!("{e}"));
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for MeshError {
    /// What happened, where and why: `connect failure to 10.1.2.3:8080 in
    /// outbound|8080|v2|api.default.svc.cluster.local after 4 attempts: connection refused`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.inner.kind {
            Kind::RouteTimeout => "route timeout elapsed",
            Kind::StreamIdleTimeout => "stream idle timeout elapsed",
            Kind::PerTryTimeout => "per-try timeout elapsed",
            Kind::Overflow => "connection pool overflow",
            Kind::NoRoute => "no route matched the request",
            Kind::NoHealthyUpstream => "no healthy upstream",
            Kind::UnknownCluster => "route destination does not exist",
            Kind::BodyTooLargeToRetry => "request body exceeded the replay buffer before a retry",
            Kind::Upstream(failure) => failure.describe(),
        };
        f.write_str(what)?;
        if let Some(e) = &self.inner.endpoint {
            write!(f, " to {e}")?;
        }
        if let Some(c) = &self.inner.cluster {
            write!(f, " in {c}")?;
        }
        match self.inner.attempts {
            0 | 1 => {}
            n => write!(f, " after {n} attempts")?,
        }
        // The innermost cause says why (`connection refused`, `dns error`, ...).
        let mut cause: Option<&(dyn StdError + 'static)> =
            self.inner.source.as_deref().map(|e| e as _);
        let mut last = None;
        while let Some(e) = cause {
            last = Some(e);
            cause = e.source();
        }
        if let Some(e) = last {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl StdError for MeshError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_deref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests;
