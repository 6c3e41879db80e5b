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
