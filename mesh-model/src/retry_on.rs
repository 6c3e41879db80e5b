//! `retryOn`: the conditions under which Envoy retries an attempt, parsed once from Istio's
//! comma-separated string into a `Copy` bitset, and the set of HTTP status codes it carries.
//!
//! This is the workspace's one `retryOn` type: `mesh-model` parses and validates it (rule T4),
//! `mesh-resilience` evaluates it against an outcome, `meshctl` prints it.

use std::fmt;
use std::str::FromStr;

/// Smallest code a [`StatusCodeSet`] can hold.
pub const MIN_STATUS: u16 = 100;
/// Largest code a [`StatusCodeSet`] can hold.
pub const MAX_STATUS: u16 = 599;

const WORDS: usize = 8; // 8 × 64 = 512 bits ≥ 500 codes

/// A set of HTTP status codes in `100..=599`, stored as a 512-bit bitmap.
///
/// It is `Copy` and never allocates, so it can live inside per-request state. It backs
/// [`RetryOn`]'s retriable status codes and the outlier detector's
/// `outlierDetectionHttpErrorCodes`.
///
/// ```
/// use mesh_model::StatusCodeSet;
///
/// let mut set = StatusCodeSet::new();
/// assert!(set.insert(503));
/// assert!(!set.insert(600)); // out of range: refused, set unchanged
/// assert!(set.contains(503));
/// assert!(!set.contains(502));
/// assert_eq!(set.iter().collect::<Vec<_>>(), vec![503]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusCodeSet {
    bits: [u64; WORDS],
}

impl StatusCodeSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self { bits: [0; WORDS] }
    }

    /// Adds `code`. Returns `false` (and leaves the set unchanged) when `code` is outside
    /// `100..=599`.
    pub fn insert(&mut self, code: u16) -> bool {
        if !(MIN_STATUS..=MAX_STATUS).contains(&code) {
            return false;
        }
        let i = usize::from(code - MIN_STATUS);
        self.bits[i / 64] |= 1 << (i % 64);
        true
    }

    /// Removes `code` if present.
    pub fn remove(&mut self, code: u16) {
        if (MIN_STATUS..=MAX_STATUS).contains(&code) {
            let i = usize::from(code - MIN_STATUS);
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Whether `code` is in the set. Codes outside `100..=599` are never members.
    #[inline]
    pub fn contains(&self, code: u16) -> bool {
        if !(MIN_STATUS..=MAX_STATUS).contains(&code) {
            return false;
        }
        let i = usize::from(code - MIN_STATUS);
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// Number of codes in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The codes in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (MIN_STATUS..=MAX_STATUS).filter(move |c| self.contains(*c))
    }
}

impl FromIterator<u16> for StatusCodeSet {
    /// Collects codes; codes outside `100..=599` are skipped (use [`StatusCodeSet::insert`]
    /// to detect them).
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = Self::new();
        for code in iter {
            set.insert(code);
        }
        set
    }
}

impl fmt::Debug for StatusCodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Whether Go's `net/http.StatusText` knows `code`: the numeric `retryOn` tokens Istio's
/// validation accepts (istio-semantics Appendix A). The one copy of Go's table in the workspace.
pub fn is_go_known_status(code: i64) -> bool {
    matches!(code,
        100..=103
        | 200..=208 | 226
        | 300..=305 | 307 | 308
        | 400..=418 | 421..=426 | 428 | 429 | 431 | 451
        | 500..=508 | 510 | 511)
}

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

/// Why a `retryOn` string was refused. Messages follow Istio's webhook and say what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryOnError {
    /// The whole string was empty. Istio treats an empty `retryOn` as absent, which means the
    /// default conditions ([`RetryOn::istio_default`]); map it before parsing.
    #[error("empty retryOn list (an absent retryOn means the default conditions)")]
    Empty,
    /// An element is neither a known token nor an integer.
    #[error("{0:?} is not a valid retryOn policy; use a comma-separated list without spaces of 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or an HTTP status code such as 503")]
    UnknownPolicy(String),
    /// An element is an integer that Go's `net/http` does not know as a status code.
    #[error("{0:?} is not a valid retryOn policy: Go's net/http knows no such status code; numeric retryOn entries must be known HTTP status codes such as 503")]
    InvalidStatusCode(String),
}

/// The parsed `retryOn`: a bitset of [`RetryCondition`]s plus the retriable status codes.
///
/// `Copy` and allocation-free (a `u32` and a 512-bit [`StatusCodeSet`]), so it is copied into
/// each request's retry state (`mesh_resilience::RetryState`).
///
/// [`RetryOn`] is parsed from Istio's comma-separated string with the same strictness as
/// Istio's validation webhook (rule T4): elements are split on `,` and **not trimmed**; each
/// must be a known token or an integer that Go's `net/http.StatusText` knows (100–103,
/// 200–208, 226, 300–305, 307, 308, 400–418, 421–426, 428, 429, 431, 451, 500–508, 510, 511;
/// Go's `Atoi` syntax, so `+503` and `0503` are 503). Integers become retriable status codes
/// and turn on `retriable-status-codes`, as Istio's translation does.
///
/// ```
/// use mesh_model::{RetryCondition, RetryOn};
///
/// let on: RetryOn = "gateway-error,connect-failure,409".parse()?;
/// assert!(on.contains(RetryCondition::GatewayError));
/// assert!(on.contains(RetryCondition::RetriableStatusCodes)); // added by the numeric token
/// assert!(on.status_codes().contains(409));
/// assert_eq!(on.to_string(), "gateway-error,connect-failure,retriable-status-codes,409");
///
/// assert!("5xx, reset".parse::<RetryOn>().is_err()); // no trimming
/// assert!("599".parse::<RetryOn>().is_err()); // Go does not know 599
/// # Ok::<(), mesh_model::RetryOnError>(())
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
    /// Codes outside `100..=599` are refused with [`RetryOnError::InvalidStatusCode`].
    /// Unlike parsing, any code in range is accepted here (Envoy's own API accepts them).
    pub fn with_status_code(mut self, code: u16) -> Result<Self, RetryOnError> {
        if !self.codes.insert(code) {
            return Err(RetryOnError::InvalidStatusCode(code.to_string()));
        }
        self.bits |= RetryCondition::RetriableStatusCodes.bit();
        Ok(self)
    }

    /// This set plus `codes` as retriable status codes, **without** turning
    /// `retriable-status-codes` on (Envoy's `x-envoy-retriable-status-codes` header adds codes
    /// that only count when the condition is on).
    #[must_use]
    pub fn with_status_codes(mut self, codes: &StatusCodeSet) -> Self {
        for (a, b) in self.codes.bits.iter_mut().zip(codes.bits) {
            *a |= b;
        }
        self
    }

    /// Both sets: every condition and status code of either.
    #[must_use]
    pub fn union(mut self, other: RetryOn) -> Self {
        self.bits |= other.bits;
        for (a, b) in self.codes.bits.iter_mut().zip(other.codes.bits) {
            *a |= b;
        }
        self
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
    type Err = RetryOnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(RetryOnError::Empty);
        }
        let mut on = RetryOn::empty();
        for token in s.split(',') {
            if let Some(n) = go_atoi(token) {
                if !is_go_known_status(n) {
                    return Err(RetryOnError::InvalidStatusCode(token.to_owned()));
                }
                // go_knows_status implies 100..=511.
                on.codes.insert(n as u16);
                on.bits |= RetryCondition::RetriableStatusCodes.bit();
            } else if let Some(c) = RetryCondition::from_token(token) {
                on.bits |= c.bit();
            } else {
                return Err(RetryOnError::UnknownPolicy(token.to_owned()));
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
    #[test]
    fn bounds() {
        let mut s = StatusCodeSet::new();
        assert!(s.insert(100));
        assert!(s.insert(599));
        assert!(!s.insert(99));
        assert!(!s.insert(600));
        assert_eq!(s.len(), 2);
        assert!(s.contains(100) && s.contains(599));
        assert!(!s.contains(0) && !s.contains(u16::MAX));
        s.remove(100);
        assert!(!s.contains(100));
        s.remove(600); // no-op, no panic
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![599]);
    }

    #[test]
    fn go_status_table() {
        for ok in [
            100, 103, 200, 208, 226, 300, 305, 307, 308, 400, 418, 421, 425, 426, 428, 429, 431,
            451, 500, 508, 510, 511,
        ] {
            assert!(is_go_known_status(ok), "{ok}");
        }
        for bad in [
            0, 99, 104, 209, 225, 306, 309, 419, 420, 427, 430, 450, 499, 509, 512, 599, 600, -503,
        ] {
            assert!(!is_go_known_status(bad), "{bad}");
        }
    }
}
