//! Shared state of a mesh: the compiled table (swapped on reload), cached
//! per-route policies, per-cluster pools, outlier detectors and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use arc_swap::ArcSwap;
use http::uri::Authority;
use mesh_model::{MeshConfig, StringMatch};
use mesh_resilience::{
    ConnectionPool, FaultInjection, MirrorPolicy, OutlierConfig, OutlierDetector, OutlierEvent,
    PoolLimits, RequestPermit, RetryBudget, RetryPolicy,
};
use mesh_routing::lb::LbState;
use mesh_routing::{
    ClientContext, ClusterEndpoints, ClusterId, ClusterPolicy, RouteDecision, RouteTable,
};
use rustc_hash::FxHashMap;
use tokio::sync::{Notify, Semaphore};

use crate::files::BuildError;
use crate::policy;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings fixed by the builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) replay_cap: usize,
    pub(crate) attempt_count_header: bool,
    pub(crate) seed: Option<u64>,
}

/// Everything every `Mesh<S>` of one layer shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) compiled: ArcSwap<Compiled>,
    pub(crate) client: ClientContext,
    pub(crate) settings: Settings,
    /// The seed every request's rolls derive from.
    pub(crate) seed: u64,
    /// Requests entered so far: the index of the next request's rolls.
    pub(crate) requests: AtomicU64,
    pub(crate) mirrors: Arc<Semaphore>,
    pub(crate) mirrors_sent: AtomicU64,
    pub(crate) mirrors_dropped: AtomicU64,
    pub(crate) totals: Counters,
    /// Cluster states of earlier tables, picked up by the current one on first use.
    pub(crate) carry: Mutex<HashMap<ClusterName, Arc<ClusterState>>>,
    /// Serialises reloads (the swap itself is atomic).
    pub(crate) reload: Mutex<()>,
}

/// `(host, subset, port)`: how a cluster is recognised across reloads.
pub(crate) type ClusterName = (Box<str>, Option<Box<str>>, u16);

impl Shared {
    pub(crate) fn new(
        config: MeshConfig,
        client: ClientContext,
        settings: Settings,
        max_mirrors: usize,
    ) -> Result<Self, BuildError> {
        let compiled = Compiled::build(config, &client)?;
        let seed = settings.seed.unwrap_or_else(crate::rng::entropy_seed);
        Ok(Self {
            compiled: ArcSwap::from_pointee(compiled),
            client,
            settings,
            seed,
            requests: AtomicU64::new(0),
            mirrors: Arc::new(Semaphore::new(max_mirrors.min(Semaphore::MAX_PERMITS))),
            mirrors_sent: AtomicU64::new(0),
            mirrors_dropped: AtomicU64::new(0),
            totals: Counters::default(),
            carry: Mutex::new(HashMap::new()),
            reload: Mutex::new(()),
        })
    }

    /// The rolls of the next request (deterministic under a fixed seed and a
    /// fixed order of requests).
    pub(crate) fn request_rolls(&self) -> mesh_resilience::rng::Rolls {
        let index = self.requests.fetch_add(1, Relaxed);
        mesh_resilience::rng::Rolls::for_request(self.seed, index)
    }

    /// Compiles `config` and swaps it in. Cluster state of the current table is
    /// carried over to the new one, by cluster name, when first used.
    pub(crate) fn reload(&self, config: MeshConfig) -> Result<(), BuildError> {
        let _serial = lock(&self.reload);
        let next = Compiled::build(config, &self.client)?;
        let old = self.compiled.load_full();
        {
            let mut carry = lock(&self.carry);
            for state in old.states() {
                carry.insert(state.name(), state);
            }
        }
        self.compiled.store(Arc::new(next));
        Ok(())
    }

    /// The state of `cluster` in `compiled`, created (or carried over) on first use.
    pub(crate) fn cluster(&self, compiled: &Compiled, id: ClusterId) -> Arc<ClusterState> {
        let Some(slot) = compiled.clusters.get(id.destination_index()) else {
            // Cannot happen: the id comes from this table. Keep a detached state.
            return Arc::new(ClusterState::new(&compiled.table, id));
        };
        {
            let ports = slot.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = ports.iter().find(|s| s.port == id.port()) {
                return Arc::clone(s);
            }
        }
        let mut ports = slot.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = ports.iter().find(|s| s.port == id.port()) {
            return Arc::clone(s);
        }
        let key = compiled.table.cluster_key(id);
        let name: ClusterName = (key.host.into(), key.subset.map(Into::into), key.port);
        let carried = lock(&self.carry).remove(&name);
        let state = match carried {
            Some(state) => {
                state.reconfigure(&compiled.table, id);
                state
            }
            None => Arc::new(ClusterState::new(&compiled.table, id)),
        };
        ports.push(Arc::clone(&state));
        state
    }
}

/// One compiled configuration: the route table, the per-route policies
/// converted for the resilience machines, and the cluster states in use.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) table: RouteTable,
    config: MeshConfig,
    plans: ArcSwap<FxHashMap<PlanKey, Arc<Plan>>>,
    clusters: Vec<RwLock<Vec<Arc<ClusterState>>>>,
}

type PlanKey = (usize, usize);

impl Compiled {
    pub(crate) fn build(config: MeshConfig, client: &ClientContext) -> Result<Self, BuildError> {
        // Convert every route's policies once so that a bad one fails the
        // build instead of a request.
        let mut problems = Vec::new();
        for vs in config.virtual_services() {
            for (i, route) in vs.http().iter().enumerate() {
                let at = |what: &str| {
                    format!(
                        "VirtualService {}/{} spec.http[{i}].{what}",
                        vs.meta().namespace(),
                        vs.meta().name()
                    )
                };
                if let Err(e) = policy::retry_policy(route.retries(), route.timeout()) {
                    problems.push(format!("{}: {e}", at("retries")));
                }
                if let Some(f) = route.fault() {
                    if let Err(e) = policy::fault(f) {
                        problems.push(format!("{}: {e}", at("fault")));
                    }
                }
            }
        }
        let table = RouteTable::compile(&config, client).map_err(BuildError::Compile)?;
        if !problems.is_empty() {
            return Err(BuildError::Policy(problems));
        }
        let clusters = (0..table.destination_count())
            .map(|_| RwLock::new(Vec::new()))
            .collect();
        Ok(Self {
            table,
            config,
            plans: ArcSwap::from_pointee(FxHashMap::default()),
            clusters,
        })
    }

    /// Every cluster state created for this table.
    pub(crate) fn states(&self) -> Vec<Arc<ClusterState>> {
        self.clusters
            .iter()
            .flat_map(|slot| {
                slot.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The converted policies of the decision's route: built the first time
    /// the route is used, then read without a lock.
    pub(crate) fn plan(&self, decision: &RouteDecision<'_>) -> Arc<Plan> {
        let key: PlanKey = (
            std::ptr::from_ref(decision.retry()) as usize,
            decision
                .route()
                .and_then(|r| r.match_index)
                .map_or(usize::MAX, |m| m),
        );
        if let Some(p) = self.plans.load().get(&key) {
            return Arc::clone(p);
        }
        let plan = Arc::new(Plan::build(&self.config, decision));
        self.plans.rcu(|map| {
            let mut map = FxHashMap::clone(map);
            map.entry(key).or_insert_with(|| Arc::clone(&plan));
            map
        });
        plan
    }
}

/// How `rewrite.uri` replaces the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixMode {
    /// The matched prefix of this many bytes is replaced.
    Prefix(usize),
    /// The whole path is replaced (exact or regex match).
    Whole,
    /// No `uri` match: Istio matches prefix `/`, so the leading `/` is replaced.
    Slash,
}

/// A route's policies, converted once.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) retry: RetryPolicy,
    pub(crate) fault: Option<FaultInjection>,
    pub(crate) mirrors: Box<[MirrorPolicy]>,
    pub(crate) prefix: PrefixMode,
}

impl Plan {
    fn build(config: &MeshConfig, decision: &RouteDecision<'_>) -> Self {
        let mut retry = match policy::retry_policy(decision.retry(), decision.timeout()) {
            Ok(p) => p,
            Err(e) => {
                // Unreachable: `Compiled::build` converted every route already.
                tracing::error!(error = %e, "route retry policy does not convert; retries disabled");
                RetryPolicy::disabled()
            }
        };
        retry = retry.with_previous_hosts(decision.retry_avoids_previous_hosts());
        let fault = match decision.fault().map(policy::fault).transpose() {
            Ok(f) => f.flatten(),
            Err(e) => {
                tracing::error!(error = %e, "route fault does not convert; fault ignored");
                None
            }
        };
        let mirrors = decision
            .mirrors()
            .map(|m| MirrorPolicy::new(m.percentage))
            .collect();
        let prefix = prefix_mode(config, decision);
        Self {
            retry,
            fault,
            mirrors,
            prefix,
        }
    }
}

fn prefix_mode(config: &MeshConfig, decision: &RouteDecision<'_>) -> PrefixMode {
    let (Some(vs), Some(route)) = (decision.virtual_service(), decision.route()) else {
        return PrefixMode::Slash;
    };
    // Delegation is merged by the loader: the route index is the merged
    // VirtualService's own.
    let (ns, name, index) = (vs.namespace, vs.name, route.index);
    let http = config
        .virtual_services()
        .iter()
        .find(|v| v.meta().namespace() == ns && v.meta().name() == name)
        .and_then(|v| v.http().get(index));
    let uri = http
        .zip(route.match_index)
        .and_then(|(h, i)| h.matches().get(i))
        .and_then(|m| m.uri());
    match uri {
        Some(StringMatch::Prefix(p)) => PrefixMode::Prefix(p.len()),
        Some(_) => PrefixMode::Whole,
        None => PrefixMode::Slash,
    }
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
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// One endpoint of a cluster.
#[derive(Debug, Clone)]
pub(crate) struct EndpointInfo {
    pub(crate) key: Box<str>,
    /// `None` when the address is not a valid authority (never picked).
    pub(crate) authority: Option<Authority>,
}

/// Mutable per-cluster state, behind the cluster's mutex (never held across
/// an await).
#[derive(Debug)]
pub(crate) struct ClusterInner {
    pub(crate) pool: ConnectionPool,
    pub(crate) outlier: Option<OutlierDetector<Box<str>>>,
    pub(crate) lb: LbState,
    pub(crate) endpoints: Arc<[EndpointInfo]>,
    pub(crate) in_flight: Vec<u32>,
    pub(crate) endpoint_requests: Vec<u64>,
    /// Bumped whenever the endpoint list changes; indexes of older
    /// generations are not reported to the detector.
    pub(crate) generation: u64,
}

/// The state of one cluster: connection pool, outlier detector, load-balancer
/// state and counters.
#[derive(Debug)]
pub(crate) struct ClusterState {
    pub(crate) host: Box<str>,
    pub(crate) subset: Option<Box<str>>,
    pub(crate) port: u16,
    pub(crate) inner: Mutex<ClusterInner>,
    pub(crate) notify: Notify,
    pub(crate) counters: Counters,
}

fn endpoint_infos(table: &RouteTable, id: ClusterId) -> Vec<EndpointInfo> {
    match table.endpoints(id) {
        ClusterEndpoints::Resolve { .. } => Vec::new(),
        ClusterEndpoints::Set(set) => set
            .iter()
            .map(|e| {
                let port = e.port_for(id.port());
                let key = if e.address().contains(':') && !e.address().starts_with('[') {
                    format!("[{}]:{port}", e.address())
                } else {
                    format!("{}:{port}", e.address())
                };
                let authority = match key.parse::<Authority>() {
                    Ok(a) => Some(a),
                    Err(e) => {
                        tracing::warn!(endpoint = %key, error = %e, "endpoint is not a valid authority; it is never picked");
                        None
                    }
                };
                EndpointInfo {
                    key: key.into_boxed_str(),
                    authority,
                }
            })
            .collect(),
    }
}

fn pool_limits(policy: &ClusterPolicy) -> PoolLimits {
    let mut limits = PoolLimits::default();
    if let Some(cp) = policy.connection_pool() {
        limits = limits
            .with_max_connections(cp.max_connections())
            .with_max_pending_requests(cp.http1_max_pending_requests())
            .with_max_requests(cp.http2_max_requests())
            .with_max_requests_per_connection(cp.max_requests_per_connection())
            .with_max_retries(cp.max_retries());
    }
    if let Some(b) = policy.retry_budget() {
        match RetryBudget::new(b.percent(), b.min_retry_concurrency()) {
            Ok(b) => limits = limits.with_retry_budget(Some(b)),
            Err(e) => tracing::warn!(error = %e, "retry budget rejected; default budget kept"),
        }
    }
    limits
}

fn outlier_config(policy: &ClusterPolicy) -> Option<OutlierConfig> {
    let od = policy.outlier_detection()?;
    let mut builder = OutlierConfig::builder()
        .consecutive_5xx_errors(od.consecutive_5xx_errors())
        .consecutive_gateway_errors(od.consecutive_gateway_errors());
    if od.split_external_local_origin_errors() {
        // The local-origin threshold only exists in split mode (mesh-model
        // fills in its default either way).
        builder = builder
            .split_external_local_origin_errors(true)
            .consecutive_local_origin_failures(od.consecutive_local_origin_failures());
    }
    let built = builder
        .interval(od.interval())
        .base_ejection_time(od.base_ejection_time())
        .max_ejection_percent(od.max_ejection_percent())
        .min_health_percent(od.min_health_percent())
        .http_error_codes(od.http_error_codes().iter().copied())
        .build();
    match built {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "outlierDetection rejected; outlier detection off for this cluster");
            None
        }
    }
}

impl ClusterState {
    pub(crate) fn new(table: &RouteTable, id: ClusterId) -> Self {
        let key = table.cluster_key(id);
        let policy = table.policy(id);
        let endpoints: Arc<[EndpointInfo]> = endpoint_infos(table, id).into();
        let now = crate::time::now().into_std();
        let outlier = outlier_config(policy)
            .map(|c| OutlierDetector::new(c, endpoints.iter().map(|e| e.key.clone()), now));
        let n = endpoints.len();
        Self {
            host: key.host.into(),
            subset: key.subset.map(Into::into),
            port: key.port,
            inner: Mutex::new(ClusterInner {
                pool: ConnectionPool::new(pool_limits(policy)),
                outlier,
                lb: LbState::new(),
                endpoints,
                in_flight: vec![0; n],
                endpoint_requests: vec![0; n],
                generation: 0,
            }),
            notify: Notify::new(),
            counters: Counters::default(),
        }
    }

    pub(crate) fn name(&self) -> ClusterName {
        (self.host.clone(), self.subset.clone(), self.port)
    }

    /// Applies a new table's policy and endpoints, keeping pool occupancy,
    /// counters and the outlier state of endpoints that remain.
    pub(crate) fn reconfigure(&self, table: &RouteTable, id: ClusterId) {
        let policy = table.policy(id);
        let endpoints: Arc<[EndpointInfo]> = endpoint_infos(table, id).into();
        let mut inner = lock(&self.inner);
        inner.pool.set_limits(pool_limits(policy));
        let keys = endpoints.iter().map(|e| e.key.clone());
        inner.outlier = match (inner.outlier.take(), outlier_config(policy)) {
            (Some(mut od), Some(config)) => {
                od.set_config(config);
                od.update_endpoints(keys);
                Some(od)
            }
            (None, Some(config)) => Some(OutlierDetector::new(
                config,
                keys,
                crate::time::now().into_std(),
            )),
            (_, None) => None,
        };
        let old: HashMap<&str, u64> = inner
            .endpoints
            .iter()
            .zip(&inner.endpoint_requests)
            .map(|(e, n)| (&*e.key, *n))
            .collect();
        let requests = endpoints
            .iter()
            .map(|e| old.get(&*e.key).copied().unwrap_or(0))
            .collect();
        inner.endpoint_requests = requests;
        inner.in_flight = vec![0; endpoints.len()];
        inner.endpoints = endpoints;
        inner.lb.reset();
        inner.generation += 1;
        drop(inner);
        // Limits may have grown: let a pending request look again.
        self.notify.notify_waiters();
    }

    /// Gives back a pool permit and an endpoint's in-flight slot.
    pub(crate) fn finish(&self, permit: Option<RequestPermit>, endpoint: Option<(usize, u64)>) {
        let mut inner = lock(&self.inner);
        if let Some((i, generation)) = endpoint {
            if generation == inner.generation {
                if let Some(n) = inner.in_flight.get_mut(i) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        let wake = permit.is_some_and(|p| inner.pool.release(p));
        drop(inner);
        if wake {
            self.notify.notify_one();
        }
    }

    /// Runs due outlier sweeps, logging un-ejections.
    pub(crate) fn sweep(&self, inner: &mut ClusterInner, now: std::time::Instant) {
        let Some(od) = inner.outlier.as_mut() else {
            return;
        };
        if now < od.next_sweep() {
            return;
        }
        let endpoints = &inner.endpoints;
        od.sweep(now, |event| {
            if let OutlierEvent::Unejected { endpoint } = event {
                let addr = endpoints.get(endpoint).map_or("?", |e| &*e.key);
                tracing::info!(cluster = %self.display(), endpoint = addr, "endpoint returns from ejection");
            }
        });
    }

    pub(crate) fn display(&self) -> ClusterDisplay<'_> {
        ClusterDisplay(self)
    }
}

/// `outbound|port|subset|host`, formatted only when a log line is written.
pub(crate) struct ClusterDisplay<'a>(&'a ClusterState);

impl std::fmt::Display for ClusterDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "outbound|{}|{}|{}",
            self.0.port,
            self.0.subset.as_deref().unwrap_or(""),
            self.0.host
        )
    }
}
