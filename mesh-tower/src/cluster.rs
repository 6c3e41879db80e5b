//! [`ClusterState`]: what the mesh keeps per cluster (`outbound|port|subset|host`): the
//! connection pool, the outlier detector, the load balancer's state, the cluster's endpoints
//! and its counters. It lives across configuration reloads and endpoint updates (see
//! `registry`); per-endpoint state (in-flight requests, outlier counters and ejections,
//! requests sent) follows each endpoint by its address.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;

use http::uri::Authority;
use mesh_resilience::{
    ConnectionPool, OutlierDetector, OutlierEvent, PoolLimits, RequestPermit, RetryBudget,
};
use mesh_routing::endpoints::{ClusterEndpoints, Endpoint, EndpointSelector};
use mesh_routing::lb::{LbState, LoadBalancer};
use mesh_routing::{ClusterName, ClusterPolicy};
use tokio::sync::Notify;

use crate::telemetry::envoy::EnvoyStats;
use crate::telemetry::metrics::ClusterMetrics;

/// Locks a mutex, ignoring poisoning (no invariant of ours spans a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counters of one cluster (or of the whole mesh).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) overflows: AtomicU64,
    pub(crate) ejections: AtomicU64,
    /// Retries whose attempt got a response that was not retried again.
    pub(crate) retry_successes: AtomicU64,
    /// Retries refused by `maxRetries` or the retry budget.
    pub(crate) retry_overflows: AtomicU64,
    /// Requests whose retries ran out on a retriable outcome.
    pub(crate) retry_limit_exceeded: AtomicU64,
    /// Attempts cut by the per-try timeout.
    pub(crate) per_try_timeouts: AtomicU64,
    /// Requests ended by the route timeout.
    pub(crate) route_timeouts: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// An endpoint an attempt was sent to: its position in the cluster's endpoints at the time,
/// that list's generation, and its address (to find it again after an update).
#[derive(Debug, Clone)]
pub(crate) struct EndpointRef {
    pub(crate) index: usize,
    pub(crate) generation: u64,
    pub(crate) authority: Authority,
    /// The endpoint's metrics series in the cluster's [`ClusterMetrics`].
    pub(crate) series: u32,
}

/// Mutable per-cluster state, behind the cluster's mutex (never held across an await).
#[derive(Debug)]
pub(crate) struct ClusterInner {
    pub(crate) pool: ConnectionPool,
    pub(crate) outlier: Option<OutlierDetector<Authority>>,
    pub(crate) balancer: LoadBalancer,
    pub(crate) lb: LbState,
    pub(crate) selector: EndpointSelector,
    pub(crate) endpoints: ClusterEndpoints,
    /// Requests in flight per endpoint, indexed like `endpoints`.
    pub(crate) in_flight: Vec<u32>,
    /// Attempts sent per endpoint, indexed like `endpoints`.
    pub(crate) sent: Vec<u64>,
    /// The metrics series of each endpoint (by its labels), indexed like `endpoints`.
    pub(crate) series: Vec<u32>,
    /// Bumped whenever `endpoints` changes.
    pub(crate) generation: u64,
}

impl ClusterInner {
    /// The current position of an endpoint an attempt went to.
    pub(crate) fn index_of(&self, e: &EndpointRef) -> Option<usize> {
        if e.generation == self.generation {
            return Some(e.index);
        }
        self.endpoints.position(e.authority.as_str())
    }
}

/// The cluster of an attempt, as a request extension for a client that keeps connections per
/// cluster ([`MeshClient`](crate::client::MeshClient)).
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "mesh-client"), allow(dead_code))]
pub(crate) struct Upstream(pub(crate) Arc<ClusterState>);

/// Connections a client keeps to the endpoints of one cluster (the pools of
/// [`MeshClient`](crate::client::MeshClient)), told when endpoints leave so that their
/// connections drain: requests in flight finish, no new request starts on them.
pub(crate) trait EndpointConnections: Send + Sync + 'static {
    /// Connections to endpoints for which `keep` says no drain.
    fn retain(&self, keep: &dyn Fn(&Authority) -> bool);
    /// The connections' counts, for Envoy's `upstream_cx_*` stats.
    fn stats(&self) -> ConnectionStats;
    /// The client's own view of itself, to find its typed pool again.
    #[cfg_attr(not(feature = "mesh-client"), allow(dead_code))]
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What a client's connections to one cluster count (Envoy's `upstream_cx_*`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionStats {
    /// Connections open or connecting (`upstream_cx_active`).
    pub(crate) active: u64,
    /// Connections dialled since the pool began (`upstream_cx_total`).
    pub(crate) total: u64,
}

/// The connection pools clients keep for a cluster, one per client (by the client's id).
#[derive(Default)]
pub(crate) struct ConnectionSlots {
    slots: ArcSwap<Vec<(u64, Arc<dyn EndpointConnections>)>>,
    /// Serialises additions (reads never lock).
    #[cfg_attr(not(feature = "mesh-client"), allow(dead_code))]
    add: Mutex<()>,
}

impl std::fmt::Debug for ConnectionSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSlots")
            .field("clients", &self.slots.load().len())
            .finish()
    }
}

impl ConnectionSlots {
    /// Client `id`'s pool for this cluster, made by `make` on first use.
    #[cfg_attr(not(feature = "mesh-client"), allow(dead_code))]
    pub(crate) fn get_or_insert(
        &self,
        id: u64,
        make: impl FnOnce() -> Arc<dyn EndpointConnections>,
    ) -> Arc<dyn EndpointConnections> {
        if let Some((_, c)) = self.slots.load().iter().find(|(i, _)| *i == id) {
            return Arc::clone(c);
        }
        let _add = lock(&self.add);
        let current = self.slots.load_full();
        if let Some((_, c)) = current.iter().find(|(i, _)| *i == id) {
            return Arc::clone(c);
        }
        let made = make();
        let mut next = Vec::with_capacity(current.len() + 1);
        next.extend(current.iter().cloned());
        next.push((id, Arc::clone(&made)));
        self.slots.store(Arc::new(next));
        made
    }

    /// The counts of every client's connections to the cluster added up; `None` when no
    /// client keeps connections for it (a client that is not the mesh's own connector).
    pub(crate) fn stats(&self) -> Option<ConnectionStats> {
        let slots = self.slots.load();
        if slots.is_empty() {
            return None;
        }
        let mut sum = ConnectionStats::default();
        for (_, c) in slots.iter() {
            let s = c.stats();
            sum.active += s.active;
            sum.total += s.total;
        }
        Some(sum)
    }

    /// Tells every pool which endpoints remain.
    fn retain(&self, keep: &dyn Fn(&Authority) -> bool) {
        for (_, c) in self.slots.load().iter() {
            c.retain(keep);
        }
    }
}

/// The state of one cluster. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ClusterState {
    pub(crate) name: ClusterName,
    inner: Mutex<ClusterInner>,
    /// Wakes requests waiting as pending when a permit frees or the limits change.
    pub(crate) notify: Notify,
    pub(crate) counters: Counters,
    /// The merged DestinationRule policy in force (replaced only when it changes, so that a
    /// client can keep what it derived from it while the pointer stays the same).
    pub(crate) policy: ArcSwap<ClusterPolicy>,
    /// Connections clients keep to the cluster's endpoints.
    pub(crate) connections: ConnectionSlots,
    /// Istio's metrics of requests to this cluster (label sets built once).
    pub(crate) metrics: ClusterMetrics,
    /// Envoy's cluster stats, registered on first publication.
    pub(crate) envoy_stats: std::sync::OnceLock<EnvoyStats>,
}

/// The cluster's pool limits: its DestinationRule's, with the mesh's default retry budget
/// when the rule sets none.
fn limits(policy: &ClusterPolicy, default_budget: Option<RetryBudget>) -> PoolLimits {
    let limits = policy.pool_limits();
    match limits.retry_budget() {
        Some(_) => limits,
        None => limits.with_retry_budget(default_budget),
    }
}

impl ClusterState {
    /// A new cluster with `policy`, taking its endpoints from `host_endpoints` (its host's,
    /// as the registry's sources publish them; `None` when no source knows the host).
    pub(crate) fn new(
        name: ClusterName,
        policy: &ClusterPolicy,
        default_budget: Option<RetryBudget>,
        selector: EndpointSelector,
        host_endpoints: Option<&[Endpoint]>,
        now: Instant,
        metrics: ClusterMetrics,
    ) -> Self {
        let endpoints = selector.select(host_endpoints);
        let series = endpoints
            .iter()
            .map(|e| metrics.index_of(e.labels()))
            .collect();
        let n = endpoints.len();
        let outlier = policy
            .outlier()
            .map(|c| OutlierDetector::new(*c, authorities(&endpoints), now));
        ClusterState {
            name,
            inner: Mutex::new(ClusterInner {
                pool: ConnectionPool::new(limits(policy, default_budget)),
                outlier,
                balancer: policy.load_balancer(),
                lb: LbState::new(),
                selector,
                endpoints,
                in_flight: vec![0; n],
                sent: vec![0; n],
                series,
                generation: 0,
            }),
            notify: Notify::new(),
            counters: Counters::default(),
            policy: ArcSwap::from_pointee(policy.clone()),
            connections: ConnectionSlots::default(),
            metrics,
            envoy_stats: std::sync::OnceLock::new(),
        }
    }

    /// The cluster's mutable state, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ClusterInner> {
        lock(&self.inner)
    }

    /// Applies a new configuration's policy and selector, keeping pool occupancy, counters
    /// and the state of endpoints that remain.
    pub(crate) fn reconfigure(
        &self,
        policy: &ClusterPolicy,
        default_budget: Option<RetryBudget>,
        selector: EndpointSelector,
        host_endpoints: Option<&[Endpoint]>,
        now: Instant,
    ) {
        if **self.policy.load() != *policy {
            self.policy.store(Arc::new(policy.clone()));
        }
        let mut inner = self.lock();
        inner.pool.set_limits(limits(policy, default_budget));
        inner.balancer = policy.load_balancer();
        inner.outlier = match (inner.outlier.take(), policy.outlier()) {
            (Some(mut od), Some(config)) => {
                od.set_config(*config);
                Some(od)
            }
            (None, Some(config)) => Some(OutlierDetector::new(
                *config,
                authorities(&inner.endpoints),
                now,
            )),
            (_, None) => None,
        };
        let changed = inner.selector != selector;
        inner.selector = selector;
        let remaining = if changed {
            let endpoints = inner.selector.select(host_endpoints);
            set_endpoints(&mut inner, endpoints, &self.metrics);
            Some(authorities(&inner.endpoints).collect::<Vec<_>>())
        } else {
            None
        };
        // The limits may have grown: let pending requests look again.
        drop(inner);
        self.notify.notify_waiters();
        if let Some(remaining) = remaining {
            self.drain_others(&remaining);
        }
    }

    /// The host's endpoints changed: select this cluster's again. Endpoints that remain keep
    /// their in-flight count, outlier state and counters; the balancer starts over; the
    /// connections of endpoints that left drain.
    pub(crate) fn update_endpoints(&self, host_endpoints: Option<&[Endpoint]>) {
        let mut inner = self.lock();
        let endpoints = inner.selector.select(host_endpoints);
        if endpoints != inner.endpoints {
            set_endpoints(&mut inner, endpoints, &self.metrics);
            let remaining: Vec<Authority> = authorities(&inner.endpoints).collect();
            drop(inner);
            self.drain_others(&remaining);
        }
    }

    /// Connections to endpoints not in `remaining` drain.
    fn drain_others(&self, remaining: &[Authority]) {
        self.connections.retain(&|a| remaining.contains(a));
    }

    /// Connections to an ejected endpoint drain (outside the cluster's lock).
    pub(crate) fn drain_endpoint(&self, endpoint: &Authority) {
        self.connections.retain(&|a| a != endpoint);
    }

    /// Gives back a pool permit and an endpoint's in-flight slot.
    pub(crate) fn finish(&self, permit: Option<RequestPermit>, endpoint: Option<&EndpointRef>) {
        let mut inner = self.lock();
        if let Some(i) = endpoint.and_then(|e| inner.index_of(e)) {
            if let Some(n) = inner.in_flight.get_mut(i) {
                *n = n.saturating_sub(1);
            }
        }
        let wake = permit.is_some_and(|p| inner.pool.release(p));
        drop(inner);
        if wake {
            self.notify.notify_one();
        }
    }

    /// Runs due outlier sweeps, logging returns from ejection.
    pub(crate) fn sweep(&self, inner: &mut ClusterInner, now: Instant) {
        let Some(od) = inner.outlier.as_mut() else {
            return;
        };
        if now < od.next_sweep() {
            return;
        }
        let endpoints = &inner.endpoints;
        od.sweep(now, |event| {
            if let OutlierEvent::Unejected { endpoint } = event {
                let addr = endpoints.get(endpoint).map_or("?", |e| e.authority().as_str());
                tracing::info!(cluster = %self.name, endpoint = addr, "endpoint returns from ejection");
            }
        });
    }

    /// Logs (and counts) what outlier detection did with an attempt's result.
    pub(crate) fn log_outlier(&self, inner: &ClusterInner, event: Option<OutlierEvent>) {
        let addr = |i: usize| {
            inner
                .endpoints
                .get(i)
                .map_or("?", |e| e.authority().as_str())
        };
        match event {
            Some(OutlierEvent::Ejected {
                endpoint, reason, ..
            }) => {
                Counters::bump(&self.counters.ejections);
                tracing::warn!(cluster = %self.name, endpoint = addr(endpoint), %reason, "endpoint ejected");
            }
            Some(OutlierEvent::EjectionSkipped { endpoint, reason }) => {
                tracing::info!(cluster = %self.name, endpoint = addr(endpoint), %reason, "ejection skipped: maxEjectionPercent reached");
            }
            Some(OutlierEvent::Unejected { endpoint }) => {
                tracing::info!(cluster = %self.name, endpoint = addr(endpoint), "endpoint returns from ejection");
            }
            Some(_) | None => {}
        }
    }
}

fn authorities(endpoints: &ClusterEndpoints) -> impl Iterator<Item = Authority> + '_ {
    endpoints.iter().map(|e| e.authority().clone())
}

/// Installs a new endpoint list, carrying per-endpoint state over by address.
fn set_endpoints(inner: &mut ClusterInner, endpoints: ClusterEndpoints, metrics: &ClusterMetrics) {
    let old_of = |inner: &ClusterInner, a: &Authority| inner.endpoints.position(a.as_str());
    let mut in_flight = Vec::with_capacity(endpoints.len());
    let mut sent = Vec::with_capacity(endpoints.len());
    for e in endpoints.iter() {
        let old = old_of(inner, e.authority());
        in_flight.push(
            old.and_then(|i| inner.in_flight.get(i))
                .copied()
                .unwrap_or(0),
        );
        sent.push(old.and_then(|i| inner.sent.get(i)).copied().unwrap_or(0));
    }
    if let Some(od) = inner.outlier.as_mut() {
        od.update_endpoints(authorities(&endpoints));
    }
    inner.in_flight = in_flight;
    inner.sent = sent;
    inner.series = endpoints
        .iter()
        .map(|e| metrics.index_of(e.labels()))
        .collect();
    inner.endpoints = endpoints;
    inner.lb.reset();
    inner.generation += 1;
}
