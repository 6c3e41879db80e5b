//! Connection-pool limits (Envoy's per-cluster circuit breakers) as a counter state machine.
//!
//! One [`ConnectionPool`] per destination cluster (host + subset + port) enforces Istio's
//! `connectionPool` settings the way Envoy's resource manager does:
//!
//! | Istio field | Here | Overflow |
//! |---|---|---|
//! | `http.http2MaxRequests` | concurrent active requests, HTTP/1.1 included | [`Overflow::Requests`] |
//! | `tcp.maxConnections` | connection permits (see below) | none: the request waits as *pending* |
//! | `http.http1MaxPendingRequests` | requests waiting for a connection permit | [`Overflow::PendingRequests`] |
//! | `http.maxRequestsPerConnection` | `1` asks the driver to close each connection ([`RequestPermit::close_connection`]) | – |
//! | `http.maxRetries` | concurrent retries (backoff or in flight) | [`Overflow::Retries`] |
//! | `retryBudget` | concurrent retries ≤ `percent`% of active + pending, at least `minRetryConcurrency` | [`Overflow::RetryBudget`] |
//!
//! Every limit defaults to `u32::MAX` as Istio writes them, and `0` means "default" (Istio
//! cannot express a limit of zero).
//!
//! # What "connection" means here
//!
//! This crate does not own sockets: the wrapped client (hyper-util, reqwest) does, and it does
//! not report connection setup. So a *connection permit* stands for a connection busy with
//! requests. Under [`Protocol::Http1`] (one request per connection at a time) each active
//! request holds one connection permit, so `maxConnections` is an upper bound on concurrent
//! HTTP/1.1 requests; further requests wait as **pending** (up to
//! `http1MaxPendingRequests`, then overflow). Under [`Protocol::Http2`] a connection carries up
//! to `maxConcurrentStreams` requests, so `maxConnections × maxConcurrentStreams` requests can
//! be active before any waits; with Istio's defaults that never happens, as in Envoy, where
//! HTTP/2 multiplexing rarely reaches `maxConnections`.
//!
//! One difference from Envoy: Envoy also counts a request as pending while a **new**
//! connection is being established for it. Connection setup is invisible here, so only
//! requests waiting for a connection permit are pending; with small pending limits Envoy can
//! therefore overflow slightly earlier under a burst on a cold pool.
//!
//! `maxRequestsPerConnection` greater than 1 cannot be enforced without owning the sockets; the
//! value is kept in [`PoolLimits`] for a driver that configures its client with it.
//!
//! # How a driver uses it
//!
//! The pool is a plain struct with `&mut self` methods; the driver shares it (e.g. in an
//! `Arc<Mutex<_>>`, locked only for these short calls) and holds each [`RequestPermit`] until
//! the response **body** ends (Envoy counts a request as active until the stream completes),
//! typically inside a body wrapper whose `Drop` calls [`ConnectionPool::release`]:
//!
//! 1. [`try_acquire_request`](ConnectionPool::try_acquire_request):
//!    `Ok(Admission::Ready(permit))` sends now; `Ok(Admission::Pending(ticket))` waits (the
//!    route timeout keeps running) and calls [`try_promote`](ConnectionPool::try_promote)
//!    each time it is woken, or [`cancel_pending`](ConnectionPool::cancel_pending) if it
//!    gives up; `Err(overflow)` answers Envoy's overflow 503 ([`OVERFLOW_BODY`],
//!    `x-envoy-overloaded: true`) without retrying and without touching outlier detection.
//! 2. When the body ends (or the attempt fails), [`release`](ConnectionPool::release) the
//!    permit. `release` and `cancel_pending` return `true` when a pending request should be
//!    woken (e.g. `tokio::sync::Notify::notify_one`).
//! 3. Retries take a [`RetryPermit`]; [`RetryState`](crate::RetryState) does that itself.
//!
//! ```
//! use mesh_resilience::{Admission, ConnectionPool, Overflow, PoolLimits};
//!
//! let mut pool = ConnectionPool::new(
//!     PoolLimits::default().with_max_connections(1).with_max_pending_requests(1),
//! );
//! let Ok(Admission::Ready(first)) = pool.try_acquire_request() else { panic!() };
//! let Ok(Admission::Pending(waiting)) = pool.try_acquire_request() else { panic!() };
//! assert_eq!(pool.try_acquire_request().unwrap_err(), Overflow::PendingRequests);
//!
//! // The first response body ends: a pending request should be woken.
//! assert!(pool.release(first));
//! let Ok(Admission::Ready(second)) = pool.try_promote(waiting) else { panic!() };
//! assert!(!pool.release(second));
//! assert_eq!((pool.active_requests(), pool.pending_requests()), (0, 0));
//! ```
//!
//! A sketch of the RAII guard a driver keeps in its response body:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use mesh_resilience::{ConnectionPool, RequestPermit};
//!
//! struct PermitGuard {
//!     pool: Arc<Mutex<ConnectionPool>>,
//!     permit: Option<RequestPermit>,
//! }
//!
//! impl Drop for PermitGuard {
//!     fn drop(&mut self) {
//!         if let Some(permit) = self.permit.take() {
//!             let wake = self.pool.lock().unwrap().release(permit);
//!             if wake { /* notify one pending waiter */ }
//!         }
//!     }
//! }
//! ```

use std::fmt;

/// Body of Envoy's local reply on overflow (status 503, `x-envoy-overloaded: true`).
pub const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
/// Istio's default for every limit (2^32 − 1).
pub const UNLIMITED: u32 = u32::MAX;
/// The default `maxConcurrentStreams` per HTTP/2 connection: 1024, Envoy's default since 1.36
/// (Istio 1.28 and later write no value, so Envoy's applies; before, 2^31 − 1).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1024;

/// Which limit overflowed. The driver turns request overflows into Envoy's 503 (flag `UO`);
/// retry overflows end the request with the last attempt's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// `http1MaxPendingRequests`: too many requests already waiting for a connection.
    PendingRequests,
    /// `http2MaxRequests`: too many active requests.
    Requests,
    /// `maxRetries`: too many concurrent retries.
    Retries,
    /// The retry budget: retries in flight would exceed its share of active requests.
    RetryBudget,
}

impl Overflow {
    /// The Istio field (or block) whose limit overflowed.
    pub fn limit_name(self) -> &'static str {
        match self {
            Overflow::PendingRequests => "http1MaxPendingRequests",
            Overflow::Requests => "http2MaxRequests",
            Overflow::Retries => "maxRetries",
            Overflow::RetryBudget => "retryBudget",
        }
    }
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} overflow", self.limit_name())
    }
}

/// How requests map onto connections; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// One request per connection at a time (HTTP/1.1).
    #[default]
    Http1,
    /// Multiplexed: up to `max_concurrent_streams` requests per connection (0 means the
    /// default, [`DEFAULT_MAX_CONCURRENT_STREAMS`]).
    Http2 {
        /// Istio `http.maxConcurrentStreams`.
        max_concurrent_streams: u32,
    },
}

impl Protocol {
    fn streams_per_connection(self) -> u64 {
        match self {
            Protocol::Http1 => 1,
            Protocol::Http2 {
                max_concurrent_streams: 0,
            } => u64::from(DEFAULT_MAX_CONCURRENT_STREAMS),
            Protocol::Http2 {
                max_concurrent_streams,
            } => u64::from(max_concurrent_streams),
        }
    }
}

/// Why a [`RetryBudget`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRetryBudget {
    /// The percentage was not a finite number in `0..=100`.
    #[error("retry budget percent must be a number between 0 and 100")]
    Percent,
}

/// Envoy's retry budget: concurrent retries may not exceed
/// `max(percent% × (active + pending requests), min_retry_concurrency)`, computed live.
///
/// Off in [`PoolLimits::default`], as under Istio, which configures a budget only when the
/// DestinationRule has `retryBudget` (and leaves `maxRetries` at 2^32 − 1, i.e. no limit).
/// [`RetryBudget::default`] is the budget Envoy and Istio fill in when one is asked for
/// without numbers (20 %, minimum 3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    percent: f64,
    min_retry_concurrency: u32,
}

impl RetryBudget {
    /// Envoy's default percentage (20).
    pub const DEFAULT_PERCENT: f64 = 20.0;
    /// Envoy's default minimum retry concurrency (3).
    pub const DEFAULT_MIN_RETRY_CONCURRENCY: u32 = 3;

    /// A budget of `percent` (0–100, Istio `retryBudget.percent`) with a floor of
    /// `min_retry_concurrency` concurrent retries.
    pub fn new(percent: f64, min_retry_concurrency: u32) -> Result<Self, InvalidRetryBudget> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(InvalidRetryBudget::Percent);
        }
        Ok(Self {
            percent,
            min_retry_concurrency,
        })
    }

    /// The percentage.
    pub fn percent(&self) -> f64 {
        self.percent
    }

    /// The minimum retry concurrency.
    pub fn min_retry_concurrency(&self) -> u32 {
        self.min_retry_concurrency
    }

    /// Concurrent retries allowed with `active_and_pending` requests, computed as Envoy does
    /// (`RetryBudgetImpl::max`): `max((percent / 100 × n) as u64, min)` in floating point.
    pub fn allowed(&self, active_and_pending: u64) -> u64 {
        let share = (self.percent / 100.0 * active_and_pending as f64) as u64;
        share.max(u64::from(self.min_retry_concurrency))
    }
}

impl Default for RetryBudget {
    /// 20 %, minimum 3.
    fn default() -> Self {
        Self {
            percent: Self::DEFAULT_PERCENT,
            min_retry_concurrency: Self::DEFAULT_MIN_RETRY_CONCURRENCY,
        }
    }
}

/// The limits of one [`ConnectionPool`]. Built from Istio's numbers: every setter takes the
/// Istio value, where `0` means the default.
///
/// ```
/// use mesh_resilience::{PoolLimits, UNLIMITED};
///
/// let l = PoolLimits::default().with_max_connections(100).with_max_retries(0);
/// assert_eq!(l.max_connections(), 100);
/// assert_eq!(l.max_retries(), UNLIMITED); // 0 means default
/// assert!(l.retry_budget().is_none()); // off, as under Istio
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolLimits {
    max_connections: u32,
    max_pending_requests: u32,
    max_requests: u32,
    max_requests_per_connection: u32,
    max_retries: u32,
    retry_budget: Option<RetryBudget>,
    protocol: Protocol,
}

fn or_default(n: u32) -> u32 {
    if n == 0 {
        UNLIMITED
    } else {
        n
    }
}

impl Default for PoolLimits {
    /// Istio's thresholds (all 2^32 − 1, unlimited requests per connection, HTTP/1.1), no
    /// retry budget.
    fn default() -> Self {
        Self {
            max_connections: UNLIMITED,
            max_pending_requests: UNLIMITED,
            max_requests: UNLIMITED,
            max_requests_per_connection: 0,
            max_retries: UNLIMITED,
            retry_budget: None,
            protocol: Protocol::Http1,
        }
    }
}

impl PoolLimits {
    /// `tcp.maxConnections` (0 = default).
    #[must_use]
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = or_default(n);
        self
    }

    /// `http.http1MaxPendingRequests` (0 = default).
    #[must_use]
    pub fn with_max_pending_requests(mut self, n: u32) -> Self {
        self.max_pending_requests = or_default(n);
        self
    }

    /// `http.http2MaxRequests` (0 = default).
    #[must_use]
    pub fn with_max_requests(mut self, n: u32) -> Self {
        self.max_requests = or_default(n);
        self
    }

    /// `http.maxRequestsPerConnection` (0 = unlimited).
    #[must_use]
    pub fn with_max_requests_per_connection(mut self, n: u32) -> Self {
        self.max_requests_per_connection = n;
        self
    }

    /// `http.maxRetries` (0 = default): a hard cap on concurrent retries.
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = or_default(n);
        self
    }

    /// The retry budget; `None` turns it off (Istio without `retryBudget`).
    #[must_use]
    pub fn with_retry_budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.retry_budget = budget;
        self
    }

    /// How requests share connections.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// `tcp.maxConnections` in effect.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// `http.http1MaxPendingRequests` in effect.
    pub fn max_pending_requests(&self) -> u32 {
        self.max_pending_requests
    }

    /// `http.http2MaxRequests` in effect.
    pub fn max_requests(&self) -> u32 {
        self.max_requests
    }

    /// `http.maxRequestsPerConnection` (0 = unlimited).
    pub fn max_requests_per_connection(&self) -> u32 {
        self.max_requests_per_connection
    }

    /// `http.maxRetries` in effect.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The retry budget, if on.
    pub fn retry_budget(&self) -> Option<RetryBudget> {
        self.retry_budget
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn connection_slots(&self) -> u64 {
        u64::from(self.max_connections).saturating_mul(self.protocol.streams_per_connection())
    }
}

/// Proof that a request was admitted. Hold it until the response body ends, then give it back
/// with [`ConnectionPool::release`]. It cannot be cloned or forged.
#[derive(Debug)]
#[must_use = "a permit must be given back with ConnectionPool::release"]
pub struct RequestPermit {
    close_connection: bool,
}

impl RequestPermit {
    /// Whether the driver should close the connection after this request
    /// (`maxRequestsPerConnection: 1`): send `connection: close` on HTTP/1.1.
    pub fn close_connection(&self) -> bool {
        self.close_connection
    }
}

/// A place in the pending queue: the request waits for a connection permit. Pass it to
/// [`ConnectionPool::try_promote`] when woken, or to [`ConnectionPool::cancel_pending`].
#[derive(Debug)]
#[must_use = "a pending ticket must be promoted or cancelled"]
pub struct PendingTicket {
    _private: (),
}

/// One concurrent retry slot (Envoy's retry resource), held from the retry decision until the
/// next decision or the end of the request. [`RetryState`](crate::RetryState) manages it.
#[derive(Debug)]
#[must_use = "a retry permit must be given back with ConnectionPool::release_retry"]
pub struct RetryPermit {
    _private: (),
}

/// The answer to a request for admission.
#[derive(Debug)]
#[must_use]
pub enum Admission {
    /// Send now; release the permit when the response body ends.
    Ready(RequestPermit),
    /// Wait for a connection permit.
    Pending(PendingTicket),
}

/// Per-cluster counters enforcing [`PoolLimits`]. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct ConnectionPool {
    limits: PoolLimits,
    /// Requests holding a connection permit, including hand-offs not yet claimed.
    active: u32,
    /// Requests waiting for a connection permit.
    pending: u32,
    /// Connection permits handed to pending requests that have not claimed them yet. Every
    /// outstanding [`PendingTicket`] is counted in `pending` or here.
    handoffs: u32,
    retries: u32,
}

impl ConnectionPool {
    /// An idle pool.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            limits,
            active: 0,
            pending: 0,
            handoffs: 0,
            retries: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }

    /// Replaces the limits (config reload), keeping the counters: permits already handed out
    /// stay valid and are released normally. Lowered limits apply to new admissions only.
    pub fn set_limits(&mut self, limits: PoolLimits) {
        self.limits = limits;
    }

    /// Requests holding a [`RequestPermit`].
    pub fn active_requests(&self) -> u32 {
        self.active
    }

    /// Requests waiting for a connection permit. (A pending request that has been handed a
    /// freed connection but has not yet claimed it with [`try_promote`](Self::try_promote)
    /// already counts as active, as in Envoy, where it is attached at once.)
    pub fn pending_requests(&self) -> u32 {
        self.pending
    }

    /// Retries holding a [`RetryPermit`].
    pub fn retries_in_flight(&self) -> u32 {
        self.retries
    }

    /// Connections busy with requests, as modelled (see the [module docs](self)).
    pub fn connections_in_use(&self) -> u64 {
        u64::from(self.active).div_ceil(self.limits.protocol.streams_per_connection())
    }

    fn connection_available(&self) -> bool {
        u64::from(self.active) < self.limits.connection_slots()
    }

    fn attach(&mut self) -> Result<RequestPermit, Overflow> {
        // Envoy checks the requests resource when it attaches a stream to a ready connection.
        if self.active >= self.limits.max_requests {
            return Err(Overflow::Requests);
        }
        self.active += 1;
        Ok(self.permit())
    }

    fn permit(&self) -> RequestPermit {
        RequestPermit {
            close_connection: self.limits.max_requests_per_connection == 1,
        }
    }

    /// Admits a new request: ready now, pending, or overflow. Never allocates.
    ///
    /// A request goes pending when no connection permit is free, **or when others are already
    /// pending** (they are first in line: as in Envoy, a freed connection goes straight to a
    /// pending request, see [`release`](Self::release)).
    pub fn try_acquire_request(&mut self) -> Result<Admission, Overflow> {
        if self.pending == 0 && self.connection_available() {
            return self.attach().map(Admission::Ready);
        }
        if self.pending >= self.limits.max_pending_requests {
            return Err(Overflow::PendingRequests);
        }
        self.pending += 1;
        Ok(Admission::Pending(PendingTicket { _private: () }))
    }

    /// Tries to turn a pending ticket into a permit: `Ready` if a connection permit was handed
    /// over or is free, `Pending` (the same place) if not, or [`Overflow::Requests`] if the
    /// active-request limit is full when the connection becomes available (the ticket is then
    /// consumed). Waking a waiter more often than needed is harmless: it gets `Pending` back.
    pub fn try_promote(&mut self, ticket: PendingTicket) -> Result<Admission, Overflow> {
        let PendingTicket { _private: () } = ticket;
        if self.handoffs > 0 {
            self.handoffs -= 1;
            return Ok(Admission::Ready(self.permit()));
        }
        if !self.connection_available() {
            return Ok(Admission::Pending(PendingTicket { _private: () }));
        }
        self.pending = self.pending.saturating_sub(1);
        self.attach().map(Admission::Ready)
    }

    /// Gives up a pending place (timeout, cancellation). Returns `true` when another pending
    /// request should be woken (a connection permit may be waiting for a claimant).
    pub fn cancel_pending(&mut self, ticket: PendingTicket) -> bool {
        let PendingTicket { _private: () } = ticket;
        if self.pending > 0 {
            self.pending -= 1;
        } else if self.handoffs > 0 {
            // Every outstanding ticket had been handed a connection: give one back.
            self.handoffs -= 1;
            self.active = self.active.saturating_sub(1);
        }
        self.handoffs > 0 || (self.pending > 0 && self.connection_available())
    }

    /// Gives back a request permit (the response body ended, or the attempt failed). If
    /// requests are pending, the freed connection permit is handed to one of them at once and
    /// `true` is returned: wake one pending request, which claims it with
    /// [`try_promote`](Self::try_promote).
    pub fn release(&mut self, permit: RequestPermit) -> bool {
        let RequestPermit { .. } = permit;
        self.active = self.active.saturating_sub(1);
        if self.pending == 0 || !self.connection_available() {
            return false;
        }
        if self.active < self.limits.max_requests {
            // Envoy attaches the oldest pending request to the freed connection right away.
            self.pending -= 1;
            self.handoffs += 1;
            self.active += 1;
        }
        // Otherwise (limits lowered by a reload) the woken request will overflow when it
        // tries to attach, as in Envoy.
        true
    }

    /// Concurrent retries allowed right now: the smaller of `maxRetries` and the budget's
    /// share of active + pending requests.
    pub fn allowed_retries(&self) -> u64 {
        let hard = u64::from(self.limits.max_retries);
        match self.limits.retry_budget {
            Some(b) => hard.min(b.allowed(u64::from(self.active) + u64::from(self.pending))),
            None => hard,
        }
    }

    /// Takes a concurrent-retry slot, or says which limit is full. Envoy's
    /// `retries().canCreate()`: `maxRetries` first, then the budget.
    pub fn try_acquire_retry(&mut self) -> Result<RetryPermit, Overflow> {
        if self.retries >= self.limits.max_retries {
            return Err(Overflow::Retries);
        }
        if let Some(b) = self.limits.retry_budget {
            let allowed = b.allowed(u64::from(self.active) + u64::from(self.pending));
            if u64::from(self.retries) >= allowed {
                return Err(Overflow::RetryBudget);
            }
        }
        self.retries += 1;
        Ok(RetryPermit { _private: () })
    }

    /// Gives back a retry slot.
    pub fn release_retry(&mut self, permit: RetryPermit) {
        let RetryPermit { _private: () } = permit;
        self.retries = self.retries.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_math_matches_envoy_floats() {
        let b = RetryBudget::default();
        assert_eq!(b.allowed(0), 3);
        assert_eq!(b.allowed(15), 3);
        assert_eq!(b.allowed(20), 4);
        assert_eq!(b.allowed(24), 4);
        assert_eq!(b.allowed(25), 5);
        // 29% of 100 in floating point is 28.999999999999996: Envoy truncates to 28.
        let b = RetryBudget::new(29.0, 0).unwrap();
        assert_eq!(b.allowed(100), 28);
        assert!(RetryBudget::new(f64::NAN, 1).is_err());
        assert!(RetryBudget::new(-1.0, 1).is_err());
        assert!(RetryBudget::new(100.1, 1).is_err());
    }

    #[test]
    fn http2_connections_are_shared() {
        let limits = PoolLimits::default()
            .with_max_connections(2)
            .with_protocol(Protocol::Http2 {
                max_concurrent_streams: 3,
            });
        let mut pool = ConnectionPool::new(limits);
        let mut permits = Vec::new();
        for n in 1..=6u64 {
            match pool.try_acquire_request() {
                Ok(Admission::Ready(p)) => permits.push(p),
                other => panic!("{other:?}"),
            }
            assert_eq!(pool.connections_in_use(), n.div_ceil(3));
        }
        assert!(matches!(
            pool.try_acquire_request(),
            Ok(Admission::Pending(_))
        ));
    }
}
