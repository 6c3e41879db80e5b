//! Route-level policies with Istio's defaults resolved here, in one place.
//!
//! | Knob | Default | Where Istio sets it |
//! |---|---|---|
//! | route timeout | none (disabled) | `pilot/pkg/networking/core/route/route.go`, `setTimeout` writes `0s` |
//! | retries | 2 retries on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`, no codes | `pilot/pkg/networking/core/route/retry/retry.go`, `DefaultPolicy` |
//! | retry backoff | 25 ms base (Envoy), max 10 × base | Envoy `retry_state_impl.cc` |
//! | retry host predicate | avoid previous hosts | `retry.go` |
//! | fault percentage | 0% when unset | `route.go`, `TranslateFault` |
//! | mirror percentage | 100% when unset | `route.go`, `MirrorPercent` |
//!
//! ```
//! use mesh_model::RetryPolicy;
//!
//! let p = RetryPolicy::istio_default();
//! assert_eq!(p.attempts(), 2);
//! assert_eq!(p.retry_on_str(), "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
//! ```

use std::fmt;
use std::str::FromStr;

use crate::{Duration, Percentage};

/// The `retryOn` string Istio uses when a route sets none (or sets attempts without conditions).
/// 503 left this list in Istio 1.24.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Retries Istio allows when a route has no `retries` block.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;

/// One `retryOn` condition, with Envoy's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RetryCondition {
    /// `5xx`: any 5xx, any reset, connect failure, refused stream, per-try timeout.
    FiveXx,
    /// `gateway-error`: 502, 503, 504, and resets and per-try timeouts.
    GatewayError,
    /// `reset`: no response at all (reset, disconnect, per-try timeout).
    Reset,
    /// `reset-before-request`: a reset before any request byte went upstream.
    ResetBeforeRequest,
    /// `connect-failure`.
    ConnectFailure,
    /// `retriable-4xx`: 409.
    Retriable4xx,
    /// `refused-stream`: HTTP/2 REFUSED_STREAM.
    RefusedStream,
    /// `retriable-status-codes`: the numeric codes of the list.
    RetriableStatusCodes,
    /// `retriable-headers`: accepted, inert (Istio cannot list headers).
    RetriableHeaders,
    /// `envoy-ratelimited`.
    EnvoyRateLimited,
    /// `http3-post-connect-failure`.
    Http3PostConnectFailure,
    /// gRPC `cancelled` (1) in response headers.
    Cancelled,
    /// gRPC `deadline-exceeded` (4).
    DeadlineExceeded,
    /// gRPC `internal` (13).
    Internal,
    /// gRPC `resource-exhausted` (8).
    ResourceExhausted,
    /// gRPC `unavailable` (14).
    Unavailable,
}

impl RetryCondition {
    /// Every condition with its token.
    pub const ALL: [(RetryCondition, &'static str); 16] = [
        (RetryCondition::FiveXx, "5xx"),
        (RetryCondition::GatewayError, "gateway-error"),
        (RetryCondition::Reset, "reset"),
        (RetryCondition::ResetBeforeRequest, "reset-before-request"),
        (RetryCondition::ConnectFailure, "connect-failure"),
        (RetryCondition::Retriable4xx, "retriable-4xx"),
        (RetryCondition::RefusedStream, "refused-stream"),
        (
            RetryCondition::RetriableStatusCodes,
            "retriable-status-codes",
        ),
        (RetryCondition::RetriableHeaders, "retriable-headers"),
        (RetryCondition::EnvoyRateLimited, "envoy-ratelimited"),
        (
            RetryCondition::Http3PostConnectFailure,
            "http3-post-connect-failure",
        ),
        (RetryCondition::Cancelled, "cancelled"),
        (RetryCondition::DeadlineExceeded, "deadline-exceeded"),
        (RetryCondition::Internal, "internal"),
        (RetryCondition::ResourceExhausted, "resource-exhausted"),
        (RetryCondition::Unavailable, "unavailable"),
    ];

    /// The token as written in `retryOn`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, s)| *s)
            .unwrap_or("")
    }
}

/// A parsed `retryOn` list: conditions plus retriable status codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    source: String,
    conditions: Vec<RetryCondition>,
    status_codes: Vec<u16>,
}

/// A `retryOn` token Istio refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{token:?} is not a valid retryOn policy; use a comma-separated list without spaces of 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, or an HTTP status code such as 503")]
pub struct RetryOnError {
    /// The refused element.
    pub token: String,
}

impl FromStr for RetryOn {
    type Err = RetryOnError;

    /// Istio's validation: split on `,` without trimming; every element a known token or a status
    /// code Go's `net/http` knows. Numeric codes imply `retriable-status-codes`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut conditions = Vec::new();
        let mut status_codes = Vec::new();
        for token in s.split(',') {
            if let Some((c, _)) = RetryCondition::ALL.iter().find(|(_, t)| *t == token) {
                if !conditions.contains(c) {
                    conditions.push(*c);
                }
                continue;
            }
            match token.parse::<u16>() {
                Ok(code) if !token.starts_with('+') && crate::names::is_go_known_status(code) => {
                    if !status_codes.contains(&code) {
                        status_codes.push(code);
                    }
                }
                _ => {
                    return Err(RetryOnError {
                        token: token.to_owned(),
                    })
                }
            }
        }
        if !status_codes.is_empty() && !conditions.contains(&RetryCondition::RetriableStatusCodes) {
            conditions.push(RetryCondition::RetriableStatusCodes);
        }
        Ok(RetryOn {
            source: s.to_owned(),
            conditions,
            status_codes,
        })
    }
}

impl RetryOn {
    /// The list as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
    /// The named conditions (with `retriable-status-codes` added when codes are listed).
    pub fn conditions(&self) -> &[RetryCondition] {
        &self.conditions
    }
    /// The numeric status codes of the list.
    pub fn status_codes(&self) -> &[u16] {
        &self.status_codes
    }
    /// Whether the list holds `c`.
    pub fn contains(&self, c: RetryCondition) -> bool {
        self.conditions.contains(&c)
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The effective retry policy of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) attempts: u32,
    pub(crate) per_try_timeout: Option<Duration>,
    pub(crate) retry_on: RetryOn,
    pub(crate) retry_on_written: bool,
    pub(crate) retry_remote_localities: Option<bool>,
    pub(crate) retry_ignore_previous_hosts: Option<bool>,
    pub(crate) backoff: Option<Duration>,
    pub(crate) written: bool,
}

impl RetryPolicy {
    /// Istio's policy for routes without a `retries` block (and for hosts without a virtual
    /// service): 2 retries on [`DEFAULT_RETRY_ON`], no per-try timeout, default backoff.
    pub fn istio_default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            per_try_timeout: None,
            retry_on: DEFAULT_RETRY_ON
                .parse()
                .unwrap_or_else(|_| unreachable!("the default parses")),
            retry_on_written: false,
            retry_remote_localities: None,
            retry_ignore_previous_hosts: None,
            backoff: None,
            written: false,
        }
    }

    /// Retries after the first attempt; 0 means retries are disabled.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
    /// Whether any retry may happen.
    pub fn is_enabled(&self) -> bool {
        self.attempts > 0
    }
    /// Timeout of each attempt.
    pub fn per_try_timeout(&self) -> Option<Duration> {
        self.per_try_timeout
    }
    /// The conditions (Istio's default list when the route names none).
    pub fn retry_on(&self) -> &RetryOn {
        &self.retry_on
    }
    /// The conditions as a string.
    pub fn retry_on_str(&self) -> &str {
        self.retry_on.as_str()
    }
    /// Whether retries may go to other localities.
    pub fn retry_remote_localities(&self) -> bool {
        self.retry_remote_localities.unwrap_or(false)
    }
    /// Whether a retry avoids hosts already tried (default true).
    pub fn retry_ignore_previous_hosts(&self) -> bool {
        self.retry_ignore_previous_hosts.unwrap_or(true)
    }
    /// Base backoff interval; Envoy's 25 ms when unset.
    pub fn backoff(&self) -> Option<Duration> {
        self.backoff
    }
    /// Base backoff interval with Envoy's default applied.
    pub fn backoff_base(&self) -> std::time::Duration {
        self.backoff
            .map_or(std::time::Duration::from_millis(25), Duration::as_std)
    }
    /// Whether the policy came from a `retries` block (false: Istio's default).
    pub fn is_written(&self) -> bool {
        self.written
    }
}

/// Injected delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultDelay {
    pub(crate) fixed_delay: Duration,
    pub(crate) percentage: Percentage,
}

impl FaultDelay {
    /// How long to wait.
    pub fn fixed_delay(&self) -> Duration {
        self.fixed_delay
    }
    /// Share of requests delayed (0% when unset).
    pub fn percentage(&self) -> Percentage {
        self.percentage
    }
}

/// What an injected abort returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    /// This HTTP status with body `fault filter abort`.
    Http(u16),
    /// HTTP 200 with this `grpc-status` name.
    Grpc(&'static str),
}

impl AbortStatus {
    /// The numeric gRPC status code of a gRPC abort.
    pub fn grpc_code(self) -> Option<u8> {
        match self {
            AbortStatus::Grpc(name) => crate::names::GRPC_CODES
                .iter()
                .position(|c| *c == name)
                .map(|i| i as u8),
            AbortStatus::Http(_) => None,
        }
    }
}

/// Injected abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultAbort {
    pub(crate) status: AbortStatus,
    pub(crate) percentage: Percentage,
}

impl FaultAbort {
    /// What is returned.
    pub fn status(&self) -> AbortStatus {
        self.status
    }
    /// Share of requests aborted (0% when unset).
    pub fn percentage(&self) -> Percentage {
        self.percentage
    }
}

/// `fault`: delay and/or abort, sampled independently, delay first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultInjection {
    pub(crate) delay: Option<FaultDelay>,
    pub(crate) abort: Option<FaultAbort>,
}

impl FaultInjection {
    /// The delay, if any.
    pub fn delay(&self) -> Option<&FaultDelay> {
        self.delay.as_ref()
    }
    /// The abort, if any.
    pub fn abort(&self) -> Option<&FaultAbort> {
        self.abort.as_ref()
    }
}
