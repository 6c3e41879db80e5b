//! The header names Envoy's router reads and writes, parsed once: the workspace's one copy of
//! each. Drivers use these constants instead of parsing the names per request.

use http::HeaderName;

/// `grpc-status`: the gRPC status of a response (headers or trailers).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`: the gRPC status message.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `x-envoy-ratelimited`: set by an upstream Envoy's rate limiter; see the `envoy-ratelimited`
/// retry condition.
pub const X_ENVOY_RATELIMITED: HeaderName = HeaderName::from_static("x-envoy-ratelimited");
/// `x-envoy-overloaded: true`: on Envoy's local 503 when a circuit breaker overflows.
pub const X_ENVOY_OVERLOADED: HeaderName = HeaderName::from_static("x-envoy-overloaded");
/// `x-envoy-attempt-count`: the attempt number, on upstream requests and responses.
pub const X_ENVOY_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");

/// `x-envoy-retry-on`: retry conditions a trusted caller adds to the route's.
pub const X_ENVOY_RETRY_ON: HeaderName = HeaderName::from_static("x-envoy-retry-on");
/// `x-envoy-retry-grpc-on`: gRPC retry conditions a trusted caller adds to the route's.
pub const X_ENVOY_RETRY_GRPC_ON: HeaderName = HeaderName::from_static("x-envoy-retry-grpc-on");
/// `x-envoy-max-retries`: the number of retries a trusted caller asks for.
pub const X_ENVOY_MAX_RETRIES: HeaderName = HeaderName::from_static("x-envoy-max-retries");
/// `x-envoy-retriable-status-codes`: status codes a trusted caller adds to the retriable ones.
pub const X_ENVOY_RETRIABLE_STATUS_CODES: HeaderName =
    HeaderName::from_static("x-envoy-retriable-status-codes");
/// `x-envoy-upstream-rq-timeout-ms`: the route timeout a trusted caller asks for (`0`: none).
pub const X_ENVOY_UPSTREAM_RQ_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-timeout-ms");
/// `x-envoy-upstream-rq-per-try-timeout-ms`: the per-try timeout a trusted caller asks for.
pub const X_ENVOY_UPSTREAM_RQ_PER_TRY_TIMEOUT_MS: HeaderName =
    HeaderName::from_static("x-envoy-upstream-rq-per-try-timeout-ms");
/// `x-request-id`: the request's id, kept across retries and mirrors; Envoy adds a UUID when
/// the caller sends none.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The trace context headers an Istio sidecar's application forwards and the mesh passes on
/// unchanged: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin's B3, multi-header and
/// single-header.
pub const TRACE_CONTEXT: [&str; 8] = [
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
];

/// `x-envoy-internal`: set by Envoy on requests it considers internal; a caller's own value is
/// always removed.
pub const X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");

/// The request headers Envoy's connection manager removes from requests that are not
/// internal (`cleanInternalHeaders`), plus `x-envoy-internal`, which it always removes, and
/// `x-envoy-attempt-count`, which the router writes itself. An Istio sidecar treats every
/// request from its application as external, so none of these reaches the upstream and
/// none of them changes the route's policy.
pub const REMOVED_FROM_EXTERNAL: [&str; 16] = [
    "x-envoy-attempt-count",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-internal",
    "x-envoy-ip-tags",
    "x-envoy-max-retries",
    "x-envoy-original-url",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-rq-timeout-ms",
];

/// Removes the [`REMOVED_FROM_EXTERNAL`] headers from a request's headers, as an Istio sidecar
/// does to every request from its application. One scan of the header names when none is
/// there (the usual case); the removals only run when some `x-envoy-` header is present.
pub fn remove_external(headers: &mut http::HeaderMap) {
    if !headers.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
        return;
    }
    for name in REMOVED_FROM_EXTERNAL {
        headers.remove(name);
    }
}
