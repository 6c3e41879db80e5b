//! What happened to one upstream attempt: the vocabulary `retryOn` and outlier detection speak.
//!
//! A driver classifies each attempt once, into an [`Outcome`], and hands the same value to
//! [`RetryState::on_outcome`](crate::RetryState::on_outcome) and
//! [`OutlierDetector::record`](crate::OutlierDetector::record).
//!
//! ```
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use mesh_resilience::{GrpcStatus, Outcome};
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

/// Header an upstream Envoy's rate limiter sets; see the `envoy-ratelimited` retry condition.
pub const X_ENVOY_RATELIMITED: &str = "x-envoy-ratelimited";
/// The gRPC status header.
pub const GRPC_STATUS: &str = "grpc-status";

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
                .get(GRPC_STATUS)
                .map(|v| GrpcStatus::from_header_value(v.as_bytes())),
            rate_limited: headers.contains_key(X_ENVOY_RATELIMITED),
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

/// A gRPC status code (`0..=16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum GrpcStatus {
    /// 0
    Ok = 0,
    /// 1
    Cancelled = 1,
    /// 2
    Unknown = 2,
    /// 3
    InvalidArgument = 3,
    /// 4
    DeadlineExceeded = 4,
    /// 5
    NotFound = 5,
    /// 6
    AlreadyExists = 6,
    /// 7
    PermissionDenied = 7,
    /// 8
    ResourceExhausted = 8,
    /// 9
    FailedPrecondition = 9,
    /// 10
    Aborted = 10,
    /// 11
    OutOfRange = 11,
    /// 12
    Unimplemented = 12,
    /// 13
    Internal = 13,
    /// 14
    Unavailable = 14,
    /// 15
    DataLoss = 15,
    /// 16
    Unauthenticated = 16,
}

const GRPC_ALL: [GrpcStatus; 17] = [
    GrpcStatus::Ok,
    GrpcStatus::Cancelled,
    GrpcStatus::Unknown,
    GrpcStatus::InvalidArgument,
    GrpcStatus::DeadlineExceeded,
    GrpcStatus::NotFound,
    GrpcStatus::AlreadyExists,
    GrpcStatus::PermissionDenied,
    GrpcStatus::ResourceExhausted,
    GrpcStatus::FailedPrecondition,
    GrpcStatus::Aborted,
    GrpcStatus::OutOfRange,
    GrpcStatus::Unimplemented,
    GrpcStatus::Internal,
    GrpcStatus::Unavailable,
    GrpcStatus::DataLoss,
    GrpcStatus::Unauthenticated,
];

/// A gRPC status name that is not one of the 17 upper-case names Istio accepts
/// (`abort.grpcStatus`, rule F4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a gRPC status name (expected an upper-case name such as UNAVAILABLE)")]
pub struct UnknownGrpcStatus {
    name: String,
}

impl GrpcStatus {
    /// The status with numeric `code`, if `code <= 16`.
    pub fn from_code(code: u32) -> Option<Self> {
        usize::try_from(code)
            .ok()
            .and_then(|i| GRPC_ALL.get(i).copied())
    }

    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The canonical upper-case name (`UNAVAILABLE`), as Istio's `abort.grpcStatus` spells it.
    pub fn name(self) -> &'static str {
        match self {
            GrpcStatus::Ok => "OK",
            GrpcStatus::Cancelled => "CANCELLED",
            GrpcStatus::Unknown => "UNKNOWN",
            GrpcStatus::InvalidArgument => "INVALID_ARGUMENT",
            GrpcStatus::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcStatus::NotFound => "NOT_FOUND",
            GrpcStatus::AlreadyExists => "ALREADY_EXISTS",
            GrpcStatus::PermissionDenied => "PERMISSION_DENIED",
            GrpcStatus::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcStatus::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcStatus::Aborted => "ABORTED",
            GrpcStatus::OutOfRange => "OUT_OF_RANGE",
            GrpcStatus::Unimplemented => "UNIMPLEMENTED",
            GrpcStatus::Internal => "INTERNAL",
            GrpcStatus::Unavailable => "UNAVAILABLE",
            GrpcStatus::DataLoss => "DATA_LOSS",
            GrpcStatus::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Parses an upper-case name exactly as Istio validation does: `"UNAVAILABLE"` is accepted,
    /// `"unavailable"` and `"14"` are not.
    pub fn from_name(name: &str) -> Result<Self, UnknownGrpcStatus> {
        GRPC_ALL
            .iter()
            .copied()
            .find(|g| g.name() == name)
            .ok_or_else(|| UnknownGrpcStatus {
                name: name.to_owned(),
            })
    }

    /// Parses a `grpc-status` header value as Envoy does (`Grpc::Common::getGrpcStatus`):
    /// an unsigned decimal, surrounding ASCII whitespace and one leading `+` tolerated. Invalid
    /// values and codes above 16 become [`GrpcStatus::Unknown`], which Envoy treats the same
    /// way as its own "invalid code" (never retriable, 500 for outlier detection).
    pub fn from_header_value(value: &[u8]) -> Self {
        let v = value.trim_ascii();
        let digits = v.strip_prefix(b"+").unwrap_or(v);
        if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
            return GrpcStatus::Unknown;
        }
        let n = digits
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        u32::try_from(n)
            .ok()
            .and_then(Self::from_code)
            .unwrap_or(GrpcStatus::Unknown)
    }

    /// The HTTP status Envoy substitutes for this gRPC status when it feeds outlier detection
    /// (`Grpc::Utility::grpcToHttpStatus`): `OK`→200, `CANCELLED`→499, `INVALID_ARGUMENT`,
    /// `FAILED_PRECONDITION`, `OUT_OF_RANGE`→400, `UNAUTHENTICATED`→401,
    /// `PERMISSION_DENIED`→403, `NOT_FOUND`→404, `ALREADY_EXISTS`, `ABORTED`→409,
    /// `RESOURCE_EXHAUSTED`→429, `UNIMPLEMENTED`→501, `UNAVAILABLE`→503,
    /// `DEADLINE_EXCEEDED`→504, everything else 500.
    pub fn to_http_status(self) -> u16 {
        match self {
            GrpcStatus::Ok => 200,
            GrpcStatus::Cancelled => 499,
            GrpcStatus::InvalidArgument
            | GrpcStatus::FailedPrecondition
            | GrpcStatus::OutOfRange => 400,
            GrpcStatus::Unauthenticated => 401,
            GrpcStatus::PermissionDenied => 403,
            GrpcStatus::NotFound => 404,
            GrpcStatus::AlreadyExists | GrpcStatus::Aborted => 409,
            GrpcStatus::ResourceExhausted => 429,
            GrpcStatus::Unimplemented => 501,
            GrpcStatus::Unavailable => 503,
            GrpcStatus::DeadlineExceeded => 504,
            GrpcStatus::Unknown | GrpcStatus::Internal | GrpcStatus::DataLoss => 500,
        }
    }
}

impl fmt::Display for GrpcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_header_parsing() {
        let cases: &[(&[u8], GrpcStatus)] = &[
            (b"0", GrpcStatus::Ok),
            (b"14", GrpcStatus::Unavailable),
            (b" 14 ", GrpcStatus::Unavailable),
            (b"+1", GrpcStatus::Cancelled),
            (b"16", GrpcStatus::Unauthenticated),
            (b"17", GrpcStatus::Unknown),
            (b"-1", GrpcStatus::Unknown),
            (b"", GrpcStatus::Unknown),
            (b"abc", GrpcStatus::Unknown),
            (b"99999999999999999999", GrpcStatus::Unknown),
            (b"4294967310", GrpcStatus::Unknown), // u32 overflow that would wrap to 14
        ];
        for (raw, want) in cases {
            assert_eq!(GrpcStatus::from_header_value(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn grpc_names_round_trip() {
        for g in GRPC_ALL {
            assert_eq!(GrpcStatus::from_name(g.name()), Ok(g));
            assert_eq!(GrpcStatus::from_code(g.code()), Some(g));
        }
        assert!(GrpcStatus::from_name("unavailable").is_err());
        assert!(GrpcStatus::from_name("14").is_err());
        assert_eq!(GrpcStatus::from_code(17), None);
    }

    #[test]
    fn grpc_to_http_table() {
        let want = [
            200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
        ];
        for (g, w) in GRPC_ALL.iter().zip(want) {
            assert_eq!(g.to_http_status(), w, "{g}");
        }
    }

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
