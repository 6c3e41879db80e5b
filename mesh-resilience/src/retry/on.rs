//! `retryOn`: the set of conditions under which an attempt is retried.

use std::fmt;
use std::str::FromStr;

use crate::outcome::{is_gateway_code, GrpcStatus, Outcome};
use crate::status::{go_knows_status, StatusCodeSet};

/// One `retryOn` token. The meaning of each is Envoy's (`retry_state_impl.cc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryCondition {
    /// `5xx`: any 5xx response, **and every reset, connect failure, refused stream and per-try
    /// timeout** (Envoy counts a reset as a 5xx because it would produce one).
    FiveXx,
    /// `gateway-error`: 502, 503, 504 responses, and (like `5xx`) every reset and per-try timeout.
    GatewayError,
    /// `reset`: any reset, disconnect, connect failure, refused stream or per-try timeout.
    Reset,
    /// `reset-before-request`: a reset or connect failure before any request byte was sent.
    ResetBeforeRequest,
    /// `connect-failure`: the connection could not be established.
    ConnectFailure,
    /// `envoy-ratelimited`: a response carrying `x-envoy-ratelimited`. Without this condition
    /// such responses are **never** retried, whatever else is on.
    EnvoyRateLimited,
    /// `retriable-4xx`: 409 only.
    Retriable4xx,
    /// `refused-stream`: HTTP/2 `REFUSED_STREAM`.
    RefusedStream,
    /// `retriable-status-codes`: the status is one of the numeric codes in the list. A 425
    /// (Too Early) match is retried immediately, without backoff, as Envoy does for requests
    /// that did not arrive as early data (ours never do).
    RetriableStatusCodes,
    /// `retriable-headers`: accepted for compatibility but inert, because Istio offers no way
    /// to list the headers.
    RetriableHeaders,
    /// `http3-post-connect-failure`: a reset after connect on HTTP/3 is retried immediately
    /// (over TCP).
    Http3PostConnectFailure,
    /// `cancelled`: gRPC status 1 in the response headers.
    Cancelled,
    /// `deadline-exceeded`: gRPC status 4 in the response headers.
    DeadlineExceeded,
    /// `internal`: gRPC status 13 in the response headers.
    Internal,
    /// `resource-exhausted`: gRPC status 8 in the response headers.
    ResourceExhausted,
    /// `unavailable`: gRPC status 14 in the response headers.
    Unavailable,
}

/// All conditions, in the order [`RetryOn`]'s `Display` writes them.
const ALL: [RetryCondition; 16] = [
    RetryCondition::FiveXx,
    RetryCondition::GatewayError,
    RetryCondition::Reset,
    RetryCondition::ResetBeforeRequest,
    RetryCondition::ConnectFailure,
    RetryCondition::EnvoyRateLimited,
    RetryCondition::Retriable4xx,
    RetryCondition::RefusedStream,
    RetryCondition::RetriableStatusCodes,
    RetryCondition::RetriableHeaders,
    RetryCondition::Http3PostConnectFailure,
    RetryCondition::Cancelled,
    RetryCondition::DeadlineExceeded,
    RetryCondition::Internal,
    RetryCondition::ResourceExhausted,
    RetryCondition::Unavailable,
];

impl RetryCondition {
    /// Every condition.
    pub fn all() -> impl Iterator<Item = RetryCondition> {
        ALL.into_iter()
    }

    /// The token as written in `retryOn`.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryCondition::FiveXx => "5xx",
            RetryCondition::GatewayError => "gateway-error",
            RetryCondition::Reset => "reset",
            RetryCondition::ResetBeforeRequest => "reset-before-request",
            RetryCondition::ConnectFailure => "connect-failure",
            RetryCondition::EnvoyRateLimited => "envoy-ratelimited",
            RetryCondition::Retriable4xx => "retriable-4xx",
            RetryCondition::RefusedStream => "refused-stream",
            RetryCondition::RetriableStatusCodes => "retriable-status-codes",
            RetryCondition::RetriableHeaders => "retriable-headers",
            RetryCondition::Http3PostConnectFailure => "http3-post-connect-failure",
            RetryCondition::Cancelled => "cancelled",
            RetryCondition::DeadlineExceeded => "deadline-exceeded",
            RetryCondition::Internal => "internal",
            RetryCondition::ResourceExhausted => "resource-exhausted",
            RetryCondition::Unavailable => "unavailable",
        }
    }

    /// The condition for an exact token (case-sensitive, untrimmed).
    pub fn from_token(token: &str) -> Option<Self> {
        ALL.into_iter().find(|c| c.as_str() == token)
    }

    #[inline]
    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for RetryCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `retryOn` string was refused. Messages follow Istio's webhook.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseRetryOnError {
    /// The whole string was empty. Istio treats an empty `retryOn` as absent, which means the
    /// default conditions ([`RetryOn::istio_default`]); map it before parsing.
    #[error("empty retryOn list (an absent retryOn means the default conditions)")]
    Empty,
    /// An element is neither a known token nor an integer.
    #[error("{0:?} is not a valid retryOn policy")]
    UnknownPolicy(String),
    /// An element is an integer that Go's `net/http` does not know as a status code.
    #[error("{0:?} is not a valid httpStatus code")]
    InvalidStatusCode(String),
}

/// The parsed `retryOn`: a bitset of [`RetryCondition`]s plus the retriable status codes.
///
/// `Copy` and allocation-free (a `u32` and a 512-bit [`StatusCodeSet`]), so it is copied into
/// each request's [`RetryState`](crate::RetryState).
///
/// [`RetryOn`] is parsed from Istio's comma-separated string with the same strictness as
/// Istio's validation webhook (rule T4): elements are split on `,` and **not trimmed**; each
/// must be a known token or an integer that Go's `net/http.StatusText` knows (100–103,
/// 200–208, 226, 300–305, 307, 308, 400–418, 421–426, 428, 429, 431, 451, 500–508, 510, 511;
/// Go's `Atoi` syntax, so `+503` and `0503` are 503). Integers become retriable status codes
/// and turn on `retriable-status-codes`, as Istio's translation does.
///
/// ```
/// use mesh_resilience::{RetryCondition, RetryOn};
///
/// let on: RetryOn = "gateway-error,connect-failure,409".parse()?;
/// assert!(on.contains(RetryCondition::GatewayError));
/// assert!(on.contains(RetryCondition::RetriableStatusCodes)); // added by the numeric token
/// assert!(on.status_codes().contains(409));
/// assert_eq!(on.to_string(), "gateway-error,connect-failure,retriable-status-codes,409");
///
/// assert!("5xx, reset".parse::<RetryOn>().is_err()); // no trimming
/// assert!("599".parse::<RetryOn>().is_err()); // Go does not know 599
/// # Ok::<(), mesh_resilience::ParseRetryOnError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RetryOn {
    bits: u32,
    codes: StatusCodeSet,
}

impl RetryOn {
    /// No condition: nothing is retried.
    pub const fn empty() -> Self {
        Self {
            bits: 0,
            codes: StatusCodeSet::new(),
        }
    }

    /// Istio's default (istio/istio `retry.go`, since 1.24):
    /// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` with **no**
    /// status codes, so the last token is inert and 503 is not retried.
    pub fn istio_default() -> Self {
        Self::empty()
            .with(RetryCondition::ConnectFailure)
            .with(RetryCondition::RefusedStream)
            .with(RetryCondition::Unavailable)
            .with(RetryCondition::Cancelled)
            .with(RetryCondition::RetriableStatusCodes)
    }

    /// This set plus `condition`.
    #[must_use]
    pub const fn with(mut self, condition: RetryCondition) -> Self {
        self.bits |= condition.bit();
        self
    }

    /// This set plus a retriable status code (which also turns on `retriable-status-codes`).
    /// Codes outside `100..=599` are refused with [`ParseRetryOnError::InvalidStatusCode`].
    /// Unlike parsing, any code in range is accepted here (Envoy's own API accepts them).
    pub fn with_status_code(mut self, code: u16) -> Result<Self, ParseRetryOnError> {
        if !self.codes.insert(code) {
            return Err(ParseRetryOnError::InvalidStatusCode(code.to_string()));
        }
        self.bits |= RetryCondition::RetriableStatusCodes.bit();
        Ok(self)
    }

    /// Whether `condition` is on.
    #[inline]
    pub fn contains(&self, condition: RetryCondition) -> bool {
        self.bits & condition.bit() != 0
    }

    /// Whether no condition is on.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The retriable status codes (only consulted when `retriable-status-codes` is on).
    pub fn status_codes(&self) -> &StatusCodeSet {
        &self.codes
    }

    /// The conditions that are on, in canonical order.
    pub fn conditions(&self) -> impl Iterator<Item = RetryCondition> + '_ {
        ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// Envoy's verdict for `outcome`, before retry counts, budgets and deadlines.
    pub(crate) fn verdict(&self, outcome: &Outcome) -> Verdict {
        let has = |c: RetryCondition| self.bits & c.bit() != 0;
        match *outcome {
            Outcome::Response {
                status,
                grpc_status,
                rate_limited,
            } => {
                // wouldRetryFromHeaders
                if rate_limited {
                    return if has(RetryCondition::EnvoyRateLimited) {
                        Verdict::Backoff
                    } else {
                        Verdict::No
                    };
                }
                let code = status.as_u16();
                if has(RetryCondition::FiveXx) && status.is_server_error() {
                    return Verdict::Backoff;
                }
                if has(RetryCondition::GatewayError) && is_gateway_code(code) {
                    return Verdict::Backoff;
                }
                if has(RetryCondition::Retriable4xx) && code == 409 {
                    return Verdict::Backoff;
                }
                if has(RetryCondition::RetriableStatusCodes) && self.codes.contains(code) {
                    // 425 Too Early: retried immediately with early data disabled, when the
                    // downstream request was not itself early data (never the case here).
                    return if code == 425 {
                        Verdict::Immediately
                    } else {
                        Verdict::Backoff
                    };
                }
                // retriable-headers: no header matchers can be configured through Istio.
                if let Some(g) = grpc_status {
                    let cond = match g {
                        GrpcStatus::Cancelled => Some(RetryCondition::Cancelled),
                        GrpcStatus::DeadlineExceeded => Some(RetryCondition::DeadlineExceeded),
                        GrpcStatus::ResourceExhausted => Some(RetryCondition::ResourceExhausted),
                        GrpcStatus::Unavailable => Some(RetryCondition::Unavailable),
                        GrpcStatus::Internal => Some(RetryCondition::Internal),
                        _ => None,
                    };
                    if cond.is_some_and(has) {
                        return Verdict::Backoff;
                    }
                }
                Verdict::No
            }
            Outcome::Overflow => Verdict::No,
            _ => {
                // wouldRetryFromReset
                if matches!(outcome, Outcome::ConnectFailure) && has(RetryCondition::ConnectFailure)
                {
                    return Verdict::Backoff;
                }
                if matches!(outcome, Outcome::Reset { http3: true, .. })
                    && has(RetryCondition::Http3PostConnectFailure)
                {
                    return Verdict::Immediately;
                }
                if has(RetryCondition::ResetBeforeRequest) && !outcome.request_started() {
                    return Verdict::Backoff;
                }
                if has(RetryCondition::FiveXx)
                    || has(RetryCondition::GatewayError)
                    || has(RetryCondition::Reset)
                {
                    return Verdict::Backoff;
                }
                if matches!(outcome, Outcome::RefusedStream) && has(RetryCondition::RefusedStream) {
                    return Verdict::Backoff;
                }
                Verdict::No
            }
        }
    }

    /// Whether Envoy would retry `outcome` under this set (ignoring retry counts, budgets and
    /// deadlines, which [`RetryState`](crate::RetryState) adds).
    pub fn would_retry(&self, outcome: &Outcome) -> bool {
        self.verdict(outcome) != Verdict::No
    }
}

/// Envoy's `RetryDecision` before counts: no, with backoff, or immediately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    No,
    Backoff,
    Immediately,
}

/// Go's `strconv.Atoi`: optional sign, then ASCII digits, no spaces, no underscores; `None`
/// when it is not an integer or overflows `i64`.
fn go_atoi(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

impl FromStr for RetryOn {
    type Err = ParseRetryOnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseRetryOnError::Empty);
        }
        let mut on = RetryOn::empty();
        for token in s.split(',') {
            if let Some(n) = go_atoi(token) {
                if !go_knows_status(n) {
                    return Err(ParseRetryOnError::InvalidStatusCode(token.to_owned()));
                }
                // go_knows_status implies 100..=511.
                on.codes.insert(n as u16);
                on.bits |= RetryCondition::RetriableStatusCodes.bit();
            } else if let Some(c) = RetryCondition::from_token(token) {
                on.bits |= c.bit();
            } else {
                return Err(ParseRetryOnError::UnknownPolicy(token.to_owned()));
            }
        }
        Ok(on)
    }
}

impl fmt::Display for RetryOn {
    /// Canonical form: the conditions in a fixed order, then the status codes ascending. It
    /// parses back to the same value (for a non-empty set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str(",")
            }
        };
        for c in self.conditions() {
            sep(f)?;
            f.write_str(c.as_str())?;
        }
        for code in self.codes.iter() {
            sep(f)?;
            write!(f, "{code}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryOn({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_like_go() {
        assert_eq!(go_atoi("503"), Some(503));
        assert_eq!(go_atoi("+503"), Some(503));
        assert_eq!(go_atoi("0503"), Some(503));
        assert_eq!(go_atoi("-503"), Some(-503));
        assert_eq!(go_atoi(" 503"), None);
        assert_eq!(go_atoi("5_03"), None);
        assert_eq!(go_atoi("+"), None);
        assert_eq!(go_atoi(""), None);
        assert_eq!(go_atoi("99999999999999999999"), None);
        assert_eq!(go_atoi("-9223372036854775808"), Some(i64::MIN));
    }
}
