//! Outlier detection (Envoy's passive health checking), as Istio configures it.
//!
//! An [`OutlierDetector`] holds, for each endpoint of one cluster, Envoy's consecutive-error
//! counters and ejection state. Endpoints are addressed by their index in the list the
//! detector was built with (the driver's load-balancer order); each also carries a key `K`
//! (an address, say) so that [`update_endpoints`](OutlierDetector::update_endpoints) can carry
//! state over when the endpoint set changes.
//!
//! # Envoy's rules
//!
//! * **Consecutive 5xx** (`consecutive5xxErrors`, default 5): any 5xx counts; any other status
//!   resets. **Consecutive gateway errors** (`consecutiveGatewayErrors`, off unless set): 502,
//!   503, 504 count; another 5xx resets this counter only. A threshold triggers when a counter
//!   **equals** it; the trigger resets that counter (unless the endpoint is already ejected,
//!   which Envoy ignores).
//! * **Local-origin failures** (connect failure, reset, refused stream, timeout): by default
//!   they count as HTTP codes, connect failures and resets as **503** and timeouts as **504**,
//!   so they feed both counters. With `splitExternalLocalOriginErrors` they feed a separate
//!   counter (`consecutiveLocalOriginFailures`, default 5) instead, and, as in Envoy, every
//!   attempt that obtained a connection first resets it (Envoy reports "connect success" when
//!   the pool is ready), so only failures without a connection in between accumulate (a
//!   timeout or reset after connecting counts 1).
//! * **`outlierDetectionHttpErrorCodes`**: when set, a *response* counts as an error only if
//!   its status is listed (and any other status resets the counters). Local-origin failures
//!   always count. gRPC responses count with their mapped HTTP status
//!   ([`GrpcStatus::to_http_status`](mesh_model::GrpcStatus::to_http_status)).
//! * **Never counted**: [`Outcome::Overflow`] (circuit breaker, not the host's fault) and
//!   injected fault aborts (the driver never reports them).
//! * **Ejection cap** (`maxEjectionPercent`, default 10; Envoy ≥ 1.27 semantics): a host is
//!   ejected only if `100 × (ejected + 1) / total ≤ maxEjectionPercent`. So **with the default
//!   10 % and fewer than 10 endpoints nothing is ever ejected**; 2 hosts at 50 % eject 1, 3
//!   hosts at 50 % eject 1, 4 hosts at 50 % eject 2. A refused ejection is reported as
//!   [`OutlierEvent::EjectionSkipped`].
//! * **Ejection time** = `baseEjectionTime × multiplier`, capped at `max(300 s, base)`; each
//!   ejection increments the multiplier (until `multiplier × base ≥ max + base`).
//! * **Sweeps** every `interval` (default 10 s): a host that is not ejected loses one multiplier
//!   step; an ejected host whose ejection time has elapsed returns, with its counters reset.
//!   Sweeps are lazy: call [`sweep`](OutlierDetector::sweep) when `now >=`
//!   [`next_sweep()`](OutlierDetector::next_sweep); it replays every missed sweep at its own
//!   scheduled time, so a late call gives the same result as a punctual timer.
//! * **Panic** (`minHealthPercent`, default 0 = never): when the healthy share drops below it,
//!   the load balancer must use every host, ejected or not ([`OutlierDetector::in_panic`],
//!   [`OutlierDetector::is_available`]).
//!
//! Success-rate and failure-percentage ejection are not implemented: Istio disables
//! success-rate enforcement and never enables failure-percentage enforcement.
//!
//! # Driver sequence
//!
//! ```
//! use std::time::{Duration, Instant};
//! use http::StatusCode;
//! use mesh_resilience::{OutlierConfig, OutlierDetector, OutlierEvent, Outcome};
//!
//! let t0 = Instant::now();
//! let config = OutlierConfig::builder()
//!     .consecutive_5xx_errors(2)
//!     .max_ejection_percent(50)
//!     .build()?;
//! let mut od = OutlierDetector::new(config, ["10.0.0.1:80", "10.0.0.2:80"], t0);
//!
//! let err = Outcome::response(StatusCode::INTERNAL_SERVER_ERROR);
//! assert_eq!(od.record(1, err, t0), None);
//! let Some(OutlierEvent::Ejected { endpoint: 1, until, .. }) = od.record(1, err, t0) else { panic!() };
//! assert_eq!(until, t0 + Duration::from_secs(30));
//! assert!(od.is_ejected(1) && !od.is_available(1));
//!
//! // 30 s later the sweep at t0 + 30 s brings it back.
//! let now = t0 + Duration::from_secs(31);
//! let mut events = Vec::new();
//! if now >= od.next_sweep() {
//!     od.sweep(now, |e| events.push(e));
//! }
//! assert_eq!(events, vec![OutlierEvent::Unejected { endpoint: 1 }]);
//! assert_eq!(od.key(1), Some(&"10.0.0.2:80"));
//! # Ok::<(), mesh_resilience::InvalidOutlierConfig>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::outcome::{is_gateway_code, Outcome};
use mesh_model::StatusCodeSet;

/// Envoy's default `max_ejection_time` (300 s), raised to the base ejection time if larger.
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// Durations above this are refused so that instant arithmetic never overflows.
const MAX_CONFIG_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why an [`OutlierConfig`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOutlierConfig {
    /// `interval` must be positive.
    #[error("outlier detection interval must be positive")]
    ZeroInterval,
    /// `baseEjectionTime` must be positive.
    #[error("base ejection time must be positive")]
    ZeroBaseEjectionTime,
    /// Envoy rejects a max ejection time below the base ejection time.
    #[error("max ejection time must not be below the base ejection time")]
    MaxEjectionTimeBelowBase,
    /// A duration above 100 years.
    #[error("outlier detection duration too large")]
    DurationTooLarge,
    /// `maxEjectionPercent` above 100 (rule OD-2).
    #[error("maxEjectionPercent {0} is not in 0..=100")]
    MaxEjectionPercent(u32),
    /// `minHealthPercent` above 100 (rule OD-2).
    #[error("minHealthPercent {0} is not in 0..=100")]
    MinHealthPercent(u32),
    /// `consecutiveLocalOriginFailures` without `splitExternalLocalOriginErrors` (rule OD-1).
    #[error("consecutiveLocalOriginFailures requires splitExternalLocalOriginErrors")]
    LocalOriginWithoutSplit,
    /// An `outlierDetectionHttpErrorCodes` entry outside 100–599 (rule OD-4).
    #[error("outlier detection error code {0} is not in 100..=599")]
    ErrorCode(u16),
}

/// Validated outlier-detection settings. Build with [`OutlierConfig::builder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutlierConfig {
    consecutive_5xx: Option<u32>,
    consecutive_gateway: Option<u32>,
    consecutive_local_origin: Option<u32>,
    split: bool,
    interval: Duration,
    base_ejection_time: Duration,
    max_ejection_time: Duration,
    max_ejection_percent: u32,
    min_health_percent: u32,
    error_codes: Option<StatusCodeSet>,
}

impl OutlierConfig {
    /// A builder starting from Istio's defaults for an `outlierDetection: {}` block.
    pub fn builder() -> OutlierConfigBuilder {
        OutlierConfigBuilder::default()
    }

    /// Consecutive-5xx threshold (`None` = off).
    pub fn consecutive_5xx(&self) -> Option<u32> {
        self.consecutive_5xx
    }

    /// Consecutive-gateway-error threshold (`None` = off).
    pub fn consecutive_gateway_errors(&self) -> Option<u32> {
        self.consecutive_gateway
    }

    /// Consecutive local-origin failure threshold (only in split mode).
    pub fn consecutive_local_origin_failures(&self) -> Option<u32> {
        self.consecutive_local_origin
    }

    /// Whether local-origin failures are counted separately.
    pub fn split_external_local_origin_errors(&self) -> bool {
        self.split
    }

    /// The sweep interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The base ejection time.
    pub fn base_ejection_time(&self) -> Duration {
        self.base_ejection_time
    }

    /// The ejection-time cap.
    pub fn max_ejection_time(&self) -> Duration {
        self.max_ejection_time
    }

    /// The ejection cap, in percent of endpoints.
    pub fn max_ejection_percent(&self) -> u32 {
        self.max_ejection_percent
    }

    /// The panic threshold, in percent of healthy endpoints (0 = never panic).
    pub fn min_health_percent(&self) -> u32 {
        self.min_health_percent
    }

    /// The HTTP codes that count as errors (`None` = all 5xx).
    pub fn http_error_codes(&self) -> Option<&StatusCodeSet> {
        self.error_codes.as_ref()
    }

    /// `min(base × multiplier, max)`.
    fn ejection_time(&self, multiplier: u32) -> Duration {
        self.base_ejection_time
            .saturating_mul(multiplier)
            .min(self.max_ejection_time)
    }

    fn is_error_code(&self, code: u16) -> bool {
        match &self.error_codes {
            Some(set) => set.contains(code),
            None => (500..=599).contains(&code),
        }
    }
}

impl Default for OutlierConfig {
    /// Istio's defaults: 5 consecutive 5xx, gateway errors off, interval 10 s, base ejection
    /// 30 s, max ejection 300 s, max ejection 10 %, panic off.
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: Some(5),
            consecutive_gateway: None,
            consecutive_local_origin: None,
            split: false,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME,
            max_ejection_percent: 10,
            min_health_percent: 0,
            error_codes: None,
        }
    }
}

/// Builder for [`OutlierConfig`]; every setter takes the Istio value. Nothing is checked until
/// [`build`](Self::build).
#[derive(Clone, Debug, Default)]
pub struct OutlierConfigBuilder {
    consecutive_5xx: Option<u32>,
    consecutive_gateway: Option<u32>,
    consecutive_local_origin: Option<u32>,
    split: bool,
    interval: Option<Duration>,
    base_ejection_time: Option<Duration>,
    max_ejection_time: Option<Duration>,
    max_ejection_percent: u32,
    min_health_percent: u32,
    error_codes: Option<Vec<u16>>,
}

impl OutlierConfigBuilder {
    /// `consecutive5xxErrors`; `0` turns it off. Unset: 5.
    #[must_use]
    pub fn consecutive_5xx_errors(mut self, n: u32) -> Self {
        self.consecutive_5xx = Some(n);
        self
    }

    /// `consecutiveGatewayErrors`; `0` turns it off. Unset: off.
    #[must_use]
    pub fn consecutive_gateway_errors(mut self, n: u32) -> Self {
        self.consecutive_gateway = Some(n);
        self
    }

    /// `consecutiveLocalOriginFailures` (needs split mode); `0` turns it off. Unset: 5 in
    /// split mode.
    #[must_use]
    pub fn consecutive_local_origin_failures(mut self, n: u32) -> Self {
        self.consecutive_local_origin = Some(n);
        self
    }

    /// `splitExternalLocalOriginErrors`.
    #[must_use]
    pub fn split_external_local_origin_errors(mut self, on: bool) -> Self {
        self.split = on;
        self
    }

    /// `interval`. Unset: 10 s.
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = Some(d);
        self
    }

    /// `baseEjectionTime`. Unset: 30 s.
    #[must_use]
    pub fn base_ejection_time(mut self, d: Duration) -> Self {
        self.base_ejection_time = Some(d);
        self
    }

    /// Envoy's `max_ejection_time` (Istio does not expose it). Unset: `max(300 s, base)`.
    #[must_use]
    pub fn max_ejection_time(mut self, d: Duration) -> Self {
        self.max_ejection_time = Some(d);
        self
    }

    /// `maxEjectionPercent`; `0` means the default, 10.
    #[must_use]
    pub fn max_ejection_percent(mut self, p: u32) -> Self {
        self.max_ejection_percent = p;
        self
    }

    /// `minHealthPercent` (0 = panic mode off).
    #[must_use]
    pub fn min_health_percent(mut self, p: u32) -> Self {
        self.min_health_percent = p;
        self
    }

    /// `outlierDetectionHttpErrorCodes`; an empty list is the same as unset (all 5xx).
    #[must_use]
    pub fn http_error_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.error_codes = Some(codes.into_iter().collect());
        self
    }

    /// Validates and resolves the defaults.
    pub fn build(self) -> Result<OutlierConfig, InvalidOutlierConfig> {
        let d = OutlierConfig::default();
        let nonzero = |n: u32| (n != 0).then_some(n);
        if self.consecutive_local_origin.is_some_and(|n| n > 0) && !self.split {
            return Err(InvalidOutlierConfig::LocalOriginWithoutSplit);
        }
        if self.max_ejection_percent > 100 {
            return Err(InvalidOutlierConfig::MaxEjectionPercent(
                self.max_ejection_percent,
            ));
        }
        if self.min_health_percent > 100 {
            return Err(InvalidOutlierConfig::MinHealthPercent(
                self.min_health_percent,
            ));
        }
        let interval = self.interval.unwrap_or(d.interval);
        let base = self.base_ejection_time.unwrap_or(d.base_ejection_time);
        if interval.is_zero() {
            return Err(InvalidOutlierConfig::ZeroInterval);
        }
        if base.is_zero() {
            return Err(InvalidOutlierConfig::ZeroBaseEjectionTime);
        }
        let max = match self.max_ejection_time {
            Some(m) if m < base => return Err(InvalidOutlierConfig::MaxEjectionTimeBelowBase),
            Some(m) => m,
            None => DEFAULT_MAX_EJECTION_TIME.max(base),
        };
        if [interval, base, max]
            .iter()
            .any(|t| *t > MAX_CONFIG_DURATION)
        {
            return Err(InvalidOutlierConfig::DurationTooLarge);
        }
        let error_codes = match self.error_codes {
            Some(codes) if !codes.is_empty() => {
                let mut set = StatusCodeSet::new();
                for c in codes {
                    if !set.insert(c) {
                        return Err(InvalidOutlierConfig::ErrorCode(c));
                    }
                }
                Some(set)
            }
            _ => None,
        };
        Ok(OutlierConfig {
            consecutive_5xx: self.consecutive_5xx.map_or(d.consecutive_5xx, nonzero),
            consecutive_gateway: self.consecutive_gateway.and_then(nonzero),
            consecutive_local_origin: if self.split {
                self.consecutive_local_origin.map_or(Some(5), nonzero)
            } else {
                None
            },
            split: self.split,
            interval,
            base_ejection_time: base,
            max_ejection_time: max,
            max_ejection_percent: if self.max_ejection_percent == 0 {
                d.max_ejection_percent
            } else {
                self.max_ejection_percent
            },
            min_health_percent: self.min_health_percent,
            error_codes,
        })
    }
}

/// Which detector ejected (or wanted to eject) a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EjectionReason {
    /// `consecutive5xxErrors`.
    Consecutive5xx,
    /// `consecutiveGatewayErrors`.
    ConsecutiveGatewayFailure,
    /// `consecutiveLocalOriginFailures`.
    ConsecutiveLocalOriginFailure,
}

impl fmt::Display for EjectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EjectionReason::Consecutive5xx => "consecutive 5xx",
            EjectionReason::ConsecutiveGatewayFailure => "consecutive gateway failure",
            EjectionReason::ConsecutiveLocalOriginFailure => "consecutive local origin failure",
        })
    }
}

/// Something the driver may want to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutlierEvent {
    /// The endpoint was ejected; it returns at the first sweep at or after `until`.
    Ejected {
        /// Endpoint index.
        endpoint: usize,
        /// Why.
        reason: EjectionReason,
        /// End of the ejection time.
        until: Instant,
    },
    /// The endpoint is back in the load-balancing set.
    Unejected {
        /// Endpoint index.
        endpoint: usize,
    },
    /// A threshold was reached but `maxEjectionPercent` did not allow the ejection (Envoy's
    /// `ejections_overflow`).
    EjectionSkipped {
        /// Endpoint index.
        endpoint: usize,
        /// The threshold that was reached.
        reason: EjectionReason,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HostState {
    c5xx: u32,
    gateway: u32,
    local: u32,
    ejected_at: Option<Instant>,
    multiplier: u32,
    ejections: u64,
}

#[derive(Clone, Debug)]
struct Host<K> {
    key: K,
    state: HostState,
}

/// Which thresholds one result reached, in Envoy's notification order.
#[derive(Default)]
struct Triggers {
    gateway: bool,
    five_xx: bool,
    local: bool,
}

/// Per-cluster outlier detection state. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct OutlierDetector<K> {
    config: OutlierConfig,
    hosts: Vec<Host<K>>,
    ejected: usize,
    next_sweep: Instant,
}

impl<K> OutlierDetector<K> {
    /// A detector for `endpoints` (index `i` is the `i`-th key), first sweep at
    /// `now + interval`.
    pub fn new(
        config: OutlierConfig,
        endpoints: impl IntoIterator<Item = K>,
        now: Instant,
    ) -> Self {
        Self {
            config,
            hosts: endpoints
                .into_iter()
                .map(|key| Host {
                    key,
                    state: HostState::default(),
                })
                .collect(),
            ejected: 0,
            next_sweep: now.checked_add(config.interval).unwrap_or(now),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    /// Replaces the configuration, keeping every endpoint's counters and ejection (Envoy would
    /// rebuild the cluster and forget them; keeping them avoids sending traffic back to a host
    /// ejected a moment ago because an unrelated field changed). The next sweep moves to one
    /// new interval after the previous sweep.
    pub fn set_config(&mut self, config: OutlierConfig) {
        let last = self
            .next_sweep
            .checked_sub(self.config.interval)
            .unwrap_or(self.next_sweep);
        self.next_sweep = last.checked_add(config.interval).unwrap_or(self.next_sweep);
        self.config = config;
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are no endpoints.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The key of endpoint `endpoint`.
    pub fn key(&self, endpoint: usize) -> Option<&K> {
        self.hosts.get(endpoint).map(|h| &h.key)
    }

    /// Whether endpoint `endpoint` is ejected (`false` for unknown indexes).
    #[inline]
    pub fn is_ejected(&self, endpoint: usize) -> bool {
        self.hosts
            .get(endpoint)
            .is_some_and(|h| h.state.ejected_at.is_some())
    }

    /// Number of ejected endpoints.
    pub fn ejected_count(&self) -> usize {
        self.ejected
    }

    /// Whether the cluster is in panic: the healthy share is below `minHealthPercent`, so the
    /// load balancer must ignore ejections and use every endpoint (Envoy's
    /// `healthy_panic_threshold`; never with Istio's default 0).
    pub fn in_panic(&self) -> bool {
        let total = self.hosts.len() as u64;
        let min = u64::from(self.config.min_health_percent);
        if total == 0 {
            return min > 0;
        }
        let healthy = total - self.ejected as u64;
        100 * healthy < min * total
    }

    /// Whether the load balancer may pick `endpoint`: not ejected, or the cluster is in panic.
    pub fn is_available(&self, endpoint: usize) -> bool {
        endpoint < self.hosts.len() && (!self.is_ejected(endpoint) || self.in_panic())
    }

    /// How many times `endpoint` has been ejected.
    pub fn ejection_count(&self, endpoint: usize) -> Option<u64> {
        self.hosts.get(endpoint).map(|h| h.state.ejections)
    }

    /// The ejection-time multiplier of `endpoint` (Envoy's `ejectTimeBackoff`).
    pub fn ejection_multiplier(&self, endpoint: usize) -> Option<u32> {
        self.hosts.get(endpoint).map(|h| h.state.multiplier)
    }

    /// When the current ejection of `endpoint` ends (`None` if not ejected).
    pub fn ejected_until(&self, endpoint: usize) -> Option<Instant> {
        let h = self.hosts.get(endpoint)?;
        let at = h.state.ejected_at?;
        Some(
            at.checked_add(self.config.ejection_time(h.state.multiplier))
                .unwrap_or(at),
        )
    }

    /// When the next sweep is due.
    pub fn next_sweep(&self) -> Instant {
        self.next_sweep
    }

    /// Records the outcome of an attempt on `endpoint`. Returns the ejection (or skipped
    /// ejection) it caused, if any. Unknown indexes (e.g. stale after an endpoint update) are
    /// ignored, as Envoy ignores results for removed hosts. Never allocates.
    ///
    /// Call [`sweep`](Self::sweep) first when `now >= next_sweep()`, so that an ejection that
    /// ended is over before new results arrive.
    pub fn record(
        &mut self,
        endpoint: usize,
        outcome: Outcome,
        now: Instant,
    ) -> Option<OutlierEvent> {
        let config = &self.config;
        let state = &mut self.hosts.get_mut(endpoint)?.state;
        let triggers = match outcome {
            Outcome::Overflow => return None,
            Outcome::Response {
                status,
                grpc_status,
                ..
            } => {
                if config.split {
                    state.local = 0; // the attempt had a connection
                }
                let code = grpc_status.map_or(status.as_u16(), |g| g.to_http_status());
                put_http_code(config, state, code, config.is_error_code(code))
            }
            Outcome::ConnectFailure
            | Outcome::Reset {
                request_sent: false,
                ..
            } => {
                if config.split {
                    local_failure(config, state)
                } else {
                    put_http_code(config, state, 503, true)
                }
            }
            Outcome::Reset {
                request_sent: true, ..
            }
            | Outcome::RefusedStream => {
                if config.split {
                    state.local = 0;
                    local_failure(config, state)
                } else {
                    put_http_code(config, state, 503, true)
                }
            }
            Outcome::Timeout => {
                if config.split {
                    state.local = 0;
                    local_failure(config, state)
                } else {
                    put_http_code(config, state, 504, true)
                }
            }
        };
        let mut event = None;
        for (hit, reason) in [
            (triggers.gateway, EjectionReason::ConsecutiveGatewayFailure),
            (triggers.five_xx, EjectionReason::Consecutive5xx),
            (
                triggers.local,
                EjectionReason::ConsecutiveLocalOriginFailure,
            ),
        ] {
            if hit {
                let e = self.on_threshold(endpoint, reason, now);
                event = event.or(e);
            }
        }
        event
    }

    /// Envoy's `onConsecutiveErrorWorker`.
    fn on_threshold(
        &mut self,
        endpoint: usize,
        reason: EjectionReason,
        now: Instant,
    ) -> Option<OutlierEvent> {
        let total = self.hosts.len() as u64;
        let config = &self.config;
        let state = &mut self.hosts[endpoint].state;
        if state.ejected_at.is_some() {
            return None; // already ejected: ignored, counter untouched
        }
        let allowed =
            100 * (self.ejected as u64 + 1) <= u64::from(config.max_ejection_percent) * total;
        let event = if allowed {
            state.ejected_at = Some(now);
            state.ejections += 1;
            let base = config.base_ejection_time;
            if base.saturating_mul(state.multiplier) < config.max_ejection_time.saturating_add(base)
            {
                state.multiplier += 1;
            }
            self.ejected += 1;
            OutlierEvent::Ejected {
                endpoint,
                reason,
                until: now
                    .checked_add(config.ejection_time(state.multiplier))
                    .unwrap_or(now),
            }
        } else {
            OutlierEvent::EjectionSkipped { endpoint, reason }
        };
        match reason {
            EjectionReason::Consecutive5xx => state.c5xx = 0,
            EjectionReason::ConsecutiveGatewayFailure => state.gateway = 0,
            EjectionReason::ConsecutiveLocalOriginFailure => state.local = 0,
        }
        Some(event)
    }

    /// Runs every sweep due at or before `now`, each at its scheduled time, calling `on_event`
    /// for each endpoint that returns. Cheap when nothing is due; never allocates.
    pub fn sweep(&mut self, now: Instant, mut on_event: impl FnMut(OutlierEvent)) {
        let interval = self.config.interval;
        let interval_ns = interval.as_nanos();
        while self.next_sweep <= now {
            let due = (now - self.next_sweep).as_nanos() / interval_ns + 1;
            // Sweeps before the first one that returns an ejected host only decay multipliers:
            // apply them in bulk.
            let skip = match self.earliest_unejection() {
                None => due,
                Some(u) if u <= self.next_sweep => 0,
                Some(u) => ((u - self.next_sweep).as_nanos().div_ceil(interval_ns)).min(due),
            };
            if skip > 0 {
                let steps = u32::try_from(skip).unwrap_or(u32::MAX);
                for h in &mut self.hosts {
                    if h.state.ejected_at.is_none() {
                        h.state.multiplier = h.state.multiplier.saturating_sub(steps);
                    }
                }
                self.next_sweep = advance(self.next_sweep, interval_ns, skip, now);
                continue;
            }
            let t = self.next_sweep;
            for (i, h) in self.hosts.iter_mut().enumerate() {
                match h.state.ejected_at {
                    None => h.state.multiplier = h.state.multiplier.saturating_sub(1),
                    Some(at) => {
                        if self.config.ejection_time(h.state.multiplier)
                            <= t.saturating_duration_since(at)
                        {
                            h.state.ejected_at = None;
                            h.state.c5xx = 0;
                            h.state.gateway = 0;
                            h.state.local = 0;
                            self.ejected -= 1;
                            on_event(OutlierEvent::Unejected { endpoint: i });
                        }
                    }
                }
            }
            self.next_sweep = advance(t, interval_ns, 1, now);
        }
    }

    fn earliest_unejection(&self) -> Option<Instant> {
        self.hosts
            .iter()
            .filter_map(|h| {
                let at = h.state.ejected_at?;
                Some(
                    at.checked_add(self.config.ejection_time(h.state.multiplier))
                        .unwrap_or(at),
                )
            })
            .min()
    }
}

impl<K: Eq + Hash> OutlierDetector<K> {
    /// Replaces the endpoint list (service discovery or config reload). Endpoints whose key
    /// is still present keep their counters, multiplier and ejection; new ones start clean.
    /// Indexes follow the new order. Allocates (a config-time operation).
    pub fn update_endpoints(&mut self, endpoints: impl IntoIterator<Item = K>) {
        let mut old: HashMap<K, HostState> =
            self.hosts.drain(..).map(|h| (h.key, h.state)).collect();
        self.hosts = endpoints
            .into_iter()
            .map(|key| {
                let state = old.remove(&key).unwrap_or_default();
                Host { key, state }
            })
            .collect();
        self.ejected = self
            .hosts
            .iter()
            .filter(|h| h.state.ejected_at.is_some())
            .count();
    }

    /// The index of the endpoint with `key`.
    pub fn index_of(&self, key: &K) -> Option<usize> {
        self.hosts.iter().position(|h| h.key == *key)
    }
}

/// `next + k × interval`; if that cannot be represented, the first sweep after `now`.
fn advance(next: Instant, interval_ns: u128, k: u128, now: Instant) -> Instant {
    let total = interval_ns.saturating_mul(k);
    let secs = u64::try_from(total / 1_000_000_000).ok();
    let step = secs.map(|s| Duration::new(s, (total % 1_000_000_000) as u32));
    step.and_then(|d| next.checked_add(d))
        .or_else(|| now.checked_add(Duration::from_nanos(interval_ns as u64)))
        .unwrap_or(now)
}

/// Envoy's `putHttpResponseCode`, with the error test precomputed.
fn put_http_code(
    config: &OutlierConfig,
    state: &mut HostState,
    code: u16,
    is_error: bool,
) -> Triggers {
    let mut t = Triggers::default();
    if is_error {
        if is_gateway_code(code) {
            state.gateway = state.gateway.saturating_add(1);
            t.gateway = config.consecutive_gateway == Some(state.gateway);
        } else {
            state.gateway = 0;
        }
        state.c5xx = state.c5xx.saturating_add(1);
        t.five_xx = config.consecutive_5xx == Some(state.c5xx);
    } else {
        state.c5xx = 0;
        state.gateway = 0;
    }
    t
}

/// Envoy's `localOriginFailure` (split mode).
fn local_failure(config: &OutlierConfig, state: &mut HostState) -> Triggers {
    state.local = state.local.saturating_add(1);
    Triggers {
        local: config.consecutive_local_origin == Some(state.local),
        ..Triggers::default()
    }
}
