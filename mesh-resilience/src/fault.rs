//! Fault injection: delay and abort decisions, as Envoy's fault filter makes them for Istio.
//!
//! * Delay and abort are **independent** samples (two rolls); the delay comes first, then the
//!   abort. Percentages are parts per million ([`Percentage`]); a fault without a percentage
//!   never fires (Istio: missing percentage = 0 %).
//! * An abort is Envoy's local reply from a filter that sits **before the router**: it is
//!   never retried and never seen by circuit breakers or outlier detection. A driver
//!   guarantees that by deciding faults before it creates the
//!   [`RetryState`](crate::RetryState), before it asks the
//!   [`ConnectionPool`](crate::ConnectionPool) for a permit, and by never reporting the
//!   synthesized response to the [`OutlierDetector`](crate::OutlierDetector).
//! * An injected delay happens before the route timeout starts: start the `RetryState` after
//!   the delay.
//!
//! | Abort | Response |
//! |---|---|
//! | [`AbortKind::Http`] | that status, body [`FAULT_ABORT_BODY`] |
//! | [`AbortKind::Grpc`] | HTTP 200, `grpc-status: <code>`, `grpc-message: fault filter abort` (trailers-only) |
//!
//! ```
//! use std::time::Duration;
//! use mesh_model::Percentage;
//! use mesh_resilience::*;
//!
//! let fault = FaultInjection::new(
//!     Some(FaultDelay::new(Duration::from_secs(5), Percentage::from_value(10.0)?)?),
//!     Some(FaultAbort::http(503, Percentage::from_value(1.0)?)?),
//! )?;
//! assert_eq!(fault.decide(99_999, 5), FaultAction::DelayThenAbort {
//!     delay: Duration::from_secs(5),
//!     abort: AbortKind::Http(http::StatusCode::SERVICE_UNAVAILABLE),
//! });
//! assert_eq!(fault.decide(100_000, 10_000), FaultAction::None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use http::StatusCode;

use mesh_model::{GrpcStatus, Percentage};

/// Body of an HTTP fault abort, and `grpc-message` of a gRPC one.
pub const FAULT_ABORT_BODY: &str = "fault filter abort";

/// Why a fault could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidFault {
    /// Neither delay nor abort (Istio rule F1).
    #[error("fault must contain at least one of delay or abort")]
    Empty,
    /// A zero fixed delay.
    #[error("fault delay must be positive")]
    ZeroDelay,
    /// An abort status outside 200–600 (rule F3: istiod's range; Envoy's ends at 599).
    #[error("fault abort status {0} is not in 200..=600")]
    HttpStatus(u16),
}

/// What an abort answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortKind {
    /// An HTTP status (200–600) with body [`FAULT_ABORT_BODY`].
    Http(StatusCode),
    /// A gRPC status: HTTP 200 with `grpc-status` and `grpc-message: fault filter abort`.
    Grpc(GrpcStatus),
}

impl AbortKind {
    /// The HTTP status of the reply (200 for gRPC aborts).
    pub fn http_status(&self) -> StatusCode {
        match self {
            AbortKind::Http(s) => *s,
            AbortKind::Grpc(_) => StatusCode::OK,
        }
    }

    /// The `grpc-status` of the reply, for gRPC aborts.
    pub fn grpc_status(&self) -> Option<GrpcStatus> {
        match self {
            AbortKind::Http(_) => None,
            AbortKind::Grpc(g) => Some(*g),
        }
    }
}

/// A fixed delay applied to a percentage of requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultDelay {
    fixed_delay: Duration,
    percentage: Percentage,
}

impl FaultDelay {
    /// `fixedDelay` for `percentage` of requests.
    pub fn new(fixed_delay: Duration, percentage: Percentage) -> Result<Self, InvalidFault> {
        if fixed_delay.is_zero() {
            return Err(InvalidFault::ZeroDelay);
        }
        Ok(Self {
            fixed_delay,
            percentage,
        })
    }

    /// The delay.
    pub fn fixed_delay(&self) -> Duration {
        self.fixed_delay
    }

    /// The percentage.
    pub fn percentage(&self) -> Percentage {
        self.percentage
    }
}

/// An abort applied to a percentage of requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultAbort {
    kind: AbortKind,
    percentage: Percentage,
}

impl FaultAbort {
    /// `httpStatus` (200–600, the range istiod accepts; mesh-model warns about 600, which
    /// Envoy refuses) for `percentage` of requests.
    pub fn http(status: u16, percentage: Percentage) -> Result<Self, InvalidFault> {
        if !(200..=600).contains(&status) {
            return Err(InvalidFault::HttpStatus(status));
        }
        let status = StatusCode::from_u16(status).map_err(|_| InvalidFault::HttpStatus(status))?;
        Ok(Self {
            kind: AbortKind::Http(status),
            percentage,
        })
    }

    /// `grpcStatus` for `percentage` of requests (parse Istio's name with
    /// [`GrpcStatus::from_name`]).
    pub fn grpc(status: GrpcStatus, percentage: Percentage) -> Self {
        Self {
            kind: AbortKind::Grpc(status),
            percentage,
        }
    }

    /// What the abort answers.
    pub fn kind(&self) -> AbortKind {
        self.kind
    }

    /// The percentage.
    pub fn percentage(&self) -> Percentage {
        self.percentage
    }
}

/// What the fault filter does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultAction {
    /// Nothing: forward the request.
    None,
    /// Wait, then forward the request.
    Delay(Duration),
    /// Answer at once with the abort.
    Abort(AbortKind),
    /// Wait, then answer with the abort.
    DelayThenAbort {
        /// The wait.
        delay: Duration,
        /// The answer after it.
        abort: AbortKind,
    },
}

/// A route's fault injection (Istio `fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultInjection {
    delay: Option<FaultDelay>,
    abort: Option<FaultAbort>,
}

impl FaultInjection {
    /// A fault with a delay and/or an abort; at least one is required.
    pub fn new(delay: Option<FaultDelay>, abort: Option<FaultAbort>) -> Result<Self, InvalidFault> {
        if delay.is_none() && abort.is_none() {
            return Err(InvalidFault::Empty);
        }
        Ok(Self { delay, abort })
    }

    /// The delay, if configured.
    pub fn delay(&self) -> Option<&FaultDelay> {
        self.delay.as_ref()
    }

    /// The abort, if configured.
    pub fn abort(&self) -> Option<&FaultAbort> {
        self.abort.as_ref()
    }

    /// The delay decision alone, for `roll`.
    #[inline]
    pub fn delay_for(&self, roll: u64) -> Option<Duration> {
        self.delay
            .filter(|d| d.percentage.sample(roll))
            .map(|d| d.fixed_delay)
    }

    /// The abort decision alone, for `roll` (Envoy makes it after the delay ends).
    #[inline]
    pub fn abort_for(&self, roll: u64) -> Option<AbortKind> {
        self.abort
            .filter(|a| a.percentage.sample(roll))
            .map(|a| a.kind)
    }

    /// Both decisions, from two independent rolls. Never allocates.
    pub fn decide(&self, delay_roll: u64, abort_roll: u64) -> FaultAction {
        match (self.delay_for(delay_roll), self.abort_for(abort_roll)) {
            (None, None) => FaultAction::None,
            (Some(d), None) => FaultAction::Delay(d),
            (None, Some(a)) => FaultAction::Abort(a),
            (Some(delay), Some(abort)) => FaultAction::DelayThenAbort { delay, abort },
        }
    }
}
