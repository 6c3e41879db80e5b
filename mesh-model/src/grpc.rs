//! gRPC status codes: the one table of names and numbers in the workspace (Istio's
//! `abort.grpcStatus`, Envoy's `grpc-status` parsing and its gRPC-to-HTTP mapping).

use std::fmt;

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

    /// The gRPC status Envoy infers from an HTTP status when a gRPC response carries none
    /// (`Grpc::Utility::httpToGrpcStatus`, gRPC's HTTP-to-gRPC mapping): 400→`INTERNAL`,
    /// 401→`UNAUTHENTICATED`, 403→`PERMISSION_DENIED`, 404→`UNIMPLEMENTED`,
    /// 429, 502, 503, 504→`UNAVAILABLE`, anything else `UNKNOWN`.
    pub fn from_http_status(status: u16) -> Self {
        match status {
            400 => GrpcStatus::Internal,
            401 => GrpcStatus::Unauthenticated,
            403 => GrpcStatus::PermissionDenied,
            404 => GrpcStatus::Unimplemented,
            429 | 502 | 503 | 504 => GrpcStatus::Unavailable,
            _ => GrpcStatus::Unknown,
        }
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
    fn grpc_status_inferred_from_http_status() {
        let cases = [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (502, 14),
            (503, 14),
            (504, 14),
            (200, 2),
            (500, 2),
        ];
        for (http, grpc) in cases {
            assert_eq!(GrpcStatus::from_http_status(http).code(), grpc, "{http}");
        }
    }

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
}
