//! A snapshot of the mesh's counters ([`MeshHandle::stats`](crate::MeshHandle::stats)).

use std::sync::atomic::Ordering::Relaxed;

use crate::cluster::{ClusterState, Counters};

/// Counters of the whole mesh and of every cluster that has seen traffic under
/// the current configuration, read at one moment.
///
/// Counters count **attempts** (as Envoy's `upstream_rq_*` stats do): a request
/// retried twice adds three to `requests` and two to `retries`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    clusters: Vec<ClusterStats>,
    totals: Totals,
    mirrors_sent: u64,
    mirrors_dropped: u64,
    cluster_states: usize,
}

/// Mesh-wide totals (every cluster, plus requests that reached no cluster:
/// passthrough to an unknown host, local replies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests handled by the mesh (one per call, retries not counted).
    pub requests: u64,
    /// Calls answered with a success (status below 500 and gRPC OK or none).
    pub successes: u64,
    /// Calls answered with a failure or an error.
    pub failures: u64,
    /// Retry attempts.
    pub retries: u64,
    /// Calls that ended with a route or per-try timeout.
    pub timeouts: u64,
    /// Calls refused by a connection-pool limit.
    pub overflows: u64,
}

impl Stats {
    pub(crate) fn collect(
        states: &[std::sync::Arc<ClusterState>],
        totals: &Counters,
        mirrors_sent: u64,
        mirrors_dropped: u64,
        cluster_states: usize,
    ) -> Self {
        let clusters = states.iter().map(|s| ClusterStats::read(s)).collect();
        Self {
            clusters,
            totals: Totals {
                requests: totals.requests.load(Relaxed),
                successes: totals.successes.load(Relaxed),
                failures: totals.failures.load(Relaxed),
                retries: totals.retries.load(Relaxed),
                timeouts: totals.timeouts.load(Relaxed),
                overflows: totals.overflows.load(Relaxed),
            },
            mirrors_sent,
            mirrors_dropped,
            cluster_states,
        }
    }

    /// Every cluster that has been used since the configuration was loaded.
    pub fn clusters(&self) -> &[ClusterStats] {
        &self.clusters
    }

    /// The cluster of service `host` and `subset` (any port; the first found).
    /// `host` is the service name as the route table knows it: the fully
    /// qualified name (`api.default.svc.cluster.local`) or, for a host no
    /// name expansion applies to, the name as written. A short name
    /// (`api`) also matches the first label of the fully qualified name.
    pub fn cluster(&self, host: &str, subset: Option<&str>) -> Option<&ClusterStats> {
        let matches = |c: &&ClusterStats| {
            c.subset.as_deref() == subset
                && (c.host == host
                    || (!host.contains('.')
                        && c.host
                            .strip_prefix(host)
                            .is_some_and(|r| r.starts_with('.'))))
        };
        self.clusters.iter().find(matches)
    }

    /// Mesh-wide totals.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Mirror copies sent.
    pub fn mirrors_sent(&self) -> u64 {
        self.mirrors_sent
    }

    /// Cluster states the mesh holds: the current configuration's, plus those of earlier
    /// configurations that requests still in flight use (freed after their last request).
    pub fn cluster_states(&self) -> usize {
        self.cluster_states
    }

    /// Mirror copies dropped because `max_concurrent_mirrors` were in flight
    /// (or the request body could not be replayed).
    pub fn mirrors_dropped(&self) -> u64 {
        self.mirrors_dropped
    }
}

/// Counters of one cluster (`outbound|port|subset|host`).
#[derive(Debug, Clone, Default)]
pub struct ClusterStats {
    host: String,
    subset: Option<String>,
    port: u16,
    requests: u64,
    successes: u64,
    failures: u64,
    retries: u64,
    timeouts: u64,
    overflows: u64,
    ejections: u64,
    retry_successes: u64,
    retry_overflows: u64,
    retry_limit_exceeded: u64,
    per_try_timeouts: u64,
    route_timeouts: u64,
    active: u32,
    pending: u32,
    ejected: usize,
    endpoints: Vec<(String, u64, bool)>,
}

impl ClusterStats {
    fn read(s: &ClusterState) -> Self {
        let c = &s.counters;
        let inner = s.lock();
        let endpoints = inner
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let ejected = inner.outlier.as_ref().is_some_and(|od| od.is_ejected(i));
                (
                    e.authority().to_string(),
                    inner.sent.get(i).copied().unwrap_or(0),
                    ejected,
                )
            })
            .collect();
        Self {
            host: s.name.host().to_owned(),
            subset: s.name.subset().map(str::to_owned),
            port: s.name.port(),
            requests: c.requests.load(Relaxed),
            successes: c.successes.load(Relaxed),
            failures: c.failures.load(Relaxed),
            retries: c.retries.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            overflows: c.overflows.load(Relaxed),
            ejections: c.ejections.load(Relaxed),
            retry_successes: c.retry_successes.load(Relaxed),
            retry_overflows: c.retry_overflows.load(Relaxed),
            retry_limit_exceeded: c.retry_limit_exceeded.load(Relaxed),
            per_try_timeouts: c.per_try_timeouts.load(Relaxed),
            route_timeouts: c.route_timeouts.load(Relaxed),
            active: inner.pool.active_requests(),
            pending: inner.pool.pending_requests(),
            ejected: inner.outlier.as_ref().map_or(0, |od| od.ejected_count()),
            endpoints,
        }
    }

    /// The service host (fully qualified).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The subset, if the cluster is one.
    pub fn subset(&self) -> Option<&str> {
        self.subset.as_deref()
    }

    /// The service port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Attempts sent (admitted by the pool).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Attempts answered with a response that is not a failure.
    pub fn successes(&self) -> u64 {
        self.successes
    }

    /// Attempts that failed: 5xx or gRPC error responses, resets, connect
    /// failures, timeouts.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Retry attempts.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// Attempts cut by a per-try or route timeout.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// Requests refused by the connection-pool limits.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Ejections by outlier detection.
    pub fn ejections(&self) -> u64 {
        self.ejections
    }

    /// Retries whose response was not retried again (Envoy's `upstream_rq_retry_success`).
    pub fn retry_successes(&self) -> u64 {
        self.retry_successes
    }

    /// Retries refused by `maxRetries` or the retry budget (`upstream_rq_retry_overflow`).
    pub fn retry_overflows(&self) -> u64 {
        self.retry_overflows
    }

    /// Requests whose retries ran out on a retriable outcome
    /// (`upstream_rq_retry_limit_exceeded`, flag `URX`).
    pub fn retry_limit_exceeded(&self) -> u64 {
        self.retry_limit_exceeded
    }

    /// Attempts cut by the per-try timeout (`upstream_rq_per_try_timeout`).
    pub fn per_try_timeouts(&self) -> u64 {
        self.per_try_timeouts
    }

    /// Requests ended by the route timeout (`upstream_rq_timeout`).
    pub fn route_timeouts(&self) -> u64 {
        self.route_timeouts
    }

    /// Requests holding a pool permit now (until their response body ends).
    pub fn active_requests(&self) -> u32 {
        self.active
    }

    /// Requests waiting for a pool permit now.
    pub fn pending_requests(&self) -> u32 {
        self.pending
    }

    /// Endpoints ejected now.
    pub fn ejected_endpoints(&self) -> usize {
        self.ejected
    }

    /// Per endpoint: address `ip:port`, attempts sent to it, ejected now.
    pub fn endpoints(&self) -> &[(String, u64, bool)] {
        &self.endpoints
    }
}
