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
//! assert_eq!(p.retry_on().to_string(), "connect-failure,refused-stream,retriable-status-codes,cancelled,unavailable");
//! ```

use crate::grpc::GrpcStatus;
use crate::retry_on::RetryOn;
use crate::{Duration, Percentage};

/// Retries Istio allows when a route has no `retries` block.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;

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
    /// service): 2 retries on [`RetryOn::istio_default`], no per-try timeout, default backoff.
    pub fn istio_default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            per_try_timeout: None,
            retry_on: RetryOn::istio_default(),
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
    /// HTTP 200 with this `grpc-status`.
    Grpc(GrpcStatus),
}

impl AbortStatus {
    /// The numeric gRPC status code of a gRPC abort.
    pub fn grpc_code(self) -> Option<u8> {
        match self {
            AbortStatus::Grpc(g) => Some(g.code() as u8),
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
