//! What happened to one upstream attempt: the vocabulary `retryOn` and outlier detection speak.
//!
//! A driver classifies each attempt once, into an [`Outcome`], and hands the same value to
//! [`RetryState::on_outcome`](crate::RetryState::on_outcome) and
//! [`OutlierDetector::record`](crate::OutlierDetector::record).
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use mesh_model::GrpcStatus;
//! use mesh_resilience::Outcome;
//!
//! // A plain 503.
//! let o = Outcome::response(StatusCode::SERVICE_UNAVAILABLE);
//! assert!(o.is_5xx() && o.is_gateway_error());
//!
//! // A gRPC "trailers-only" error: HTTP 200 with grpc-status in the response headers.
//! let mut headers = HeaderMap::new();
//! headers.insert("grpc-status", HeaderValue::from_static("14"));
//! let o = Outcome::from_headers(StatusCode::OK, &headers);
//! assert_eq!(o.grpc_status(), Some(GrpcStatus::Unavailable));
//! assert!(!o.is_5xx()); // the HTTP status is 200
//! assert!(o.is_failure());
//!
//! // Transport-level outcomes.
//! assert!(Outcome::ConnectFailure.is_local_origin());
//! assert!(!Outcome::reset(true).is_5xx());
//! ```

use std::fmt;

use http::{HeaderMap, HeaderValue, StatusCode};
use mesh_model::GrpcStatus;

use crate::headers::{GRPC_STATUS, X_ENVOY_RATELIMITED};

/// The result of one upstream attempt, as Envoy's router classifies it.
///
/// There are two families, matching Envoy's two retry decision points: a **response** (headers
/// arrived; status and gRPC status from the *headers*, never trailers) and a **transport
/// outcome** (no response headers: connect failure, reset, refused stream, timeout, overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Response headers arrived from the upstream.
    Response {
        /// HTTP status.
        status: StatusCode,
        /// `grpc-status` from the response **headers** (a "trailers-only" gRPC reply). A status
        /// in trailers is invisible to Envoy's retries and outlier detection, so drivers do not
        /// report it here.
        grpc_status: Option<GrpcStatus>,
        /// Whether the response carried `x-envoy-ratelimited`.
        rate_limited: bool,
    },
    /// The connection could not be established (refused, connect timeout, TLS handshake
    /// failure). Nothing was sent.
    ConnectFailure,
    /// The stream or connection was reset, or closed, before response headers arrived.
    Reset {
        /// Whether any request bytes had been sent upstream (Envoy's `upstream_request_started`).
        /// `reset-before-request` retries only resets with `request_sent == false`.
        request_sent: bool,
        /// Whether the attempt used HTTP/3 and the client can fall back to TCP; such resets
        /// are retried at once by `http3-post-connect-failure`.
        http3: bool,
    },
    /// HTTP/2 `REFUSED_STREAM` from the upstream (the server did not process the request).
    RefusedStream,
    /// The attempt's deadline fired before response headers arrived: the per-try timeout, or
    /// the route timeout if that came first (see
    /// [`RetryState::attempt_deadline`](crate::RetryState::attempt_deadline)).
    #[doc(alias = "per-try timeout")]
    #[doc(alias = "PerTryTimeout")]
    Timeout,
    /// A connection-pool limit overflowed ([`Overflow`](crate::Overflow)): the request never
    /// left. Never retried, never counted by outlier detection.
    Overflow,
}

impl Outcome {
    /// A response with `status`, no gRPC status, not rate limited.
    pub const fn response(status: StatusCode) -> Self {
        Outcome::Response {
            status,
            grpc_status: None,
            rate_limited: false,
        }
    }

    /// A response built from its status and the raw value of its `grpc-status` header, if any.
    ///
    /// The header is parsed as Envoy does: an unsigned decimal (surrounding ASCII whitespace
    /// and a leading `+` tolerated); anything unparseable or above 16 is an invalid code, which
    /// behaves exactly like `UNKNOWN` (no retry condition matches it and outlier detection maps
    /// it to 500), so it is stored as [`GrpcStatus::Unknown`].
    pub fn from_status_and_grpc(status: StatusCode, grpc_status: Option<&HeaderValue>) -> Self {
        Outcome::Response {
            status,
            grpc_status: grpc_status.map(|v| GrpcStatus::from_header_value(v.as_bytes())),
            rate_limited: false,
        }
    }

    /// A response built from its status and response headers: reads `grpc-status` (see
    /// [`Outcome::from_status_and_grpc`]) and the presence of `x-envoy-ratelimited`.
    pub fn from_headers(status: StatusCode, headers: &HeaderMap) -> Self {
        Outcome::Response {
            status,
            grpc_status: headers
                .get(&GRPC_STATUS)
                .map(|v| GrpcStatus::from_header_value(v.as_bytes())),
            rate_limited: headers.contains_key(&X_ENVOY_RATELIMITED),
        }
    }

    /// A reset over HTTP/1 or HTTP/2; `request_sent` tells whether request bytes left.
    pub const fn reset(request_sent: bool) -> Self {
        Outcome::Reset {
            request_sent,
            http3: false,
        }
    }

    /// The HTTP status, for responses.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Outcome::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The gRPC status from the response headers, for responses that had one.
    pub fn grpc_status(&self) -> Option<GrpcStatus> {
        match self {
            Outcome::Response { grpc_status, .. } => *grpc_status,
            _ => None,
        }
    }

    /// A response whose HTTP status is 500–599. Transport outcomes are not 5xx *responses*
    /// (though the `5xx` retry condition also retries them).
    pub fn is_5xx(&self) -> bool {
        matches!(self, Outcome::Response { status, .. } if status.is_server_error())
    }

    /// A response with status 502, 503 or 504.
    pub fn is_gateway_error(&self) -> bool {
        matches!(self, Outcome::Response { status, .. } if is_gateway_code(status.as_u16()))
    }

    /// Whether no response headers arrived because of something on this side of the wire or
    /// the connection itself: connect failure, reset, refused stream, timeout. (Overflow is
    /// excluded: the request never reached a host.)
    pub fn is_local_origin(&self) -> bool {
        matches!(
            self,
            Outcome::ConnectFailure
                | Outcome::Reset { .. }
                | Outcome::RefusedStream
                | Outcome::Timeout
        )
    }

    /// Whether the attempt failed: a 5xx response, a gRPC status other than `OK` in the
    /// headers, or any transport outcome. 1xx–4xx responses are not failures here (they are
    /// final answers; `retriable-4xx` and numeric codes can still retry them).
    pub fn is_failure(&self) -> bool {
        match self {
            Outcome::Response {
                status,
                grpc_status,
                ..
            } => status.is_server_error() || grpc_status.is_some_and(|g| g != GrpcStatus::Ok),
            _ => true,
        }
    }

    /// Whether request bytes could have reached the upstream (Envoy's
    /// `upstream_request_started`). Connect failures and resets before the request are the
    /// only outcomes where they certainly did not; a refused stream and a timeout come after
    /// the request was sent.
    pub(crate) fn request_started(&self) -> bool {
        match self {
            Outcome::ConnectFailure | Outcome::Overflow => false,
            Outcome::Reset { request_sent, .. } => *request_sent,
            Outcome::Response { .. } | Outcome::RefusedStream | Outcome::Timeout => true,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Response {
                status,
                grpc_status,
                rate_limited,
            } => {
                write!(f, "response {}", status.as_u16())?;
                if let Some(g) = grpc_status {
                    write!(f, " grpc-status {}", g.code())?;
                }
                if *rate_limited {
                    f.write_str(" (rate limited)")?;
                }
                Ok(())
            }
            Outcome::ConnectFailure => f.write_str("connect failure"),
            Outcome::Reset {
                request_sent,
                http3,
            } => {
                f.write_str(if *request_sent {
                    "reset after request"
                } else {
                    "reset before request"
                })?;
                if *http3 {
                    f.write_str(" (http/3)")?;
                }
                Ok(())
            }
            Outcome::RefusedStream => f.write_str("refused stream"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::Overflow => f.write_str("overflow"),
        }
    }
}

#[inline]
pub(crate) fn is_gateway_code(code: u16) -> bool {
    matches!(code, 502..=504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let r = |s: u16| Outcome::response(StatusCode::from_u16(s).unwrap());
        assert!(r(500).is_5xx() && !r(500).is_gateway_error());
        assert!(r(502).is_gateway_error() && r(504).is_gateway_error());
        assert!(!r(505).is_gateway_error() && !r(499).is_5xx());
        assert!(!r(404).is_failure() && r(599).is_failure());
        assert!(Outcome::Timeout.is_failure() && Outcome::Overflow.is_failure());
        assert!(!Outcome::Overflow.is_local_origin());
        assert!(!Outcome::ConnectFailure.request_started());
        assert!(!Outcome::reset(false).request_started());
        assert!(Outcome::reset(true).request_started());
        assert!(Outcome::RefusedStream.request_started() && Outcome::Timeout.request_started());
        let grpc_ok = Outcome::Response {
            status: StatusCode::OK,
            grpc_status: Some(GrpcStatus::Ok),
            rate_limited: false,
        };
        assert!(!grpc_ok.is_failure());
    }

    #[test]
    fn from_headers_reads_both() {
        let mut h = HeaderMap::new();
        h.insert(X_ENVOY_RATELIMITED, HeaderValue::from_static("true"));
        let o = Outcome::from_headers(StatusCode::TOO_MANY_REQUESTS, &h);
        assert_eq!(
            o,
            Outcome::Response {
                status: StatusCode::TOO_MANY_REQUESTS,
                grpc_status: None,
                rate_limited: true
            }
        );
        assert_eq!(o.to_string(), "response 429 (rate limited)");
        let o = Outcome::from_status_and_grpc(StatusCode::OK, Some(&HeaderValue::from_static("4")));
        assert_eq!(o.grpc_status(), Some(GrpcStatus::DeadlineExceeded));
    }
}
