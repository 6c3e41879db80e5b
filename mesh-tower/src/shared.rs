//! [`Shared`]: what every `Mesh<S>` of one layer shares: the compiled configuration (swapped
//! on reload), the cluster registry, the settings, the seed of the rolls and the counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use mesh_model::MeshConfig;
use mesh_resilience::rng::Rolls;
use mesh_routing::ClientContext;
use tokio::sync::Semaphore;

use crate::cluster::{lock, Counters};
use crate::compiled::Compiled;
use crate::files::BuildError;
use crate::host_cache::HostCache;
use crate::registry::Registry;
use crate::telemetry::metrics::{Series, ServiceLabels, SourceLabels};

/// Settings fixed by the builder.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) replay_cap: usize,
    pub(crate) attempt_count_header: bool,
    pub(crate) attempt_count_in_response: bool,
    pub(crate) retry_budget: Option<mesh_resilience::RetryBudget>,
    pub(crate) seed: Option<u64>,
    pub(crate) max_concurrent_mirrors: usize,
    pub(crate) stream_idle_timeout: Option<std::time::Duration>,
    pub(crate) trust_envoy_headers: bool,
    pub(crate) metrics: bool,
    pub(crate) generate_request_id: bool,
    pub(crate) access_log: bool,
    pub(crate) analysis_errors_fatal: bool,
}

/// The analysis errors of `config` when they are fatal ([`Settings::analysis_errors_fatal`]).
fn check_analysis(config: &MeshConfig, fatal: bool) -> Result<(), BuildError> {
    if !fatal {
        return Ok(());
    }
    let errors: Vec<_> = config
        .analyze()
        .into_iter()
        .filter(mesh_model::Diagnostic::is_error)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BuildError::Analysis(errors))
    }
}

/// The mesh-wide part of telemetry.
#[derive(Debug)]
pub(crate) struct Telemetry {
    /// Whether Istio's metrics are recorded (when a recorder is installed).
    pub(crate) metrics: bool,
    /// Requests that went to a host no service names (`PassthroughCluster`).
    pub(crate) passthrough: Arc<Series>,
    /// Requests no route or cluster took (`NR`, `NC`).
    pub(crate) unrouted: Arc<Series>,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) compiled: ArcSwap<Compiled>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) client: ClientContext,
    pub(crate) settings: Settings,
    pub(crate) telemetry: Telemetry,
    /// The seed every request's rolls derive from.
    seed: u64,
    /// Requests entered so far: the index of the next request's rolls.
    requests: AtomicU64,
    pub(crate) mirrors: Arc<Semaphore>,
    pub(crate) mirrors_sent: AtomicU64,
    pub(crate) mirrors_dropped: AtomicU64,
    pub(crate) totals: Counters,
    /// `Host` values of the authorities callers use.
    pub(crate) hosts: HostCache,
    /// Serialises reloads (the swap itself is atomic).
    reload: Mutex<()>,
    /// Whether attempts carry their cluster to the client (a
    /// [`MeshClient`](crate::client::MeshClient) was attached); other clients are spared the
    /// request extension.
    pub(crate) upstream_info: AtomicBool,
}

impl Shared {
    pub(crate) fn new(
        config: &MeshConfig,
        client: ClientContext,
        settings: Settings,
    ) -> Result<Self, BuildError> {
        check_analysis(config, settings.analysis_errors_fatal)?;
        let source = Arc::new(SourceLabels::new(&client));
        let telemetry = Telemetry {
            metrics: settings.metrics,
            passthrough: Arc::new(Series::without_cluster(
                &source,
                &ServiceLabels::passthrough(),
            )),
            unrouted: Arc::new(Series::without_cluster(&source, &ServiceLabels::unknown())),
        };
        let registry = Arc::new(Registry::new(settings.retry_budget, source));
        let compiled = Compiled::build(config, &client, &registry)?;
        let seed = settings.seed.unwrap_or_else(crate::rng::entropy_seed);
        let mirrors = settings.max_concurrent_mirrors.min(Semaphore::MAX_PERMITS);
        Ok(Self {
            compiled: ArcSwap::from_pointee(compiled),
            registry,
            client,
            settings,
            telemetry,
            seed,
            requests: AtomicU64::new(0),
            mirrors: Arc::new(Semaphore::new(mirrors)),
            mirrors_sent: AtomicU64::new(0),
            mirrors_dropped: AtomicU64::new(0),
            totals: Counters::default(),
            hosts: HostCache::default(),
            reload: Mutex::new(()),
            upstream_info: AtomicBool::new(false),
        })
    }

    /// The rolls of the next request (deterministic under a fixed seed and a fixed order of
    /// requests; the same as `meshctl simulate --seed`'s).
    pub(crate) fn request_rolls(&self) -> Rolls {
        let index = self.requests.fetch_add(1, Relaxed);
        Rolls::for_request(self.seed, index)
    }

    /// Whether attempts carry their cluster to the client.
    pub(crate) fn upstream_info(&self) -> bool {
        self.upstream_info.load(Relaxed)
    }

    /// Compiles `config` and swaps it in. Clusters that still exist keep their state (pool
    /// occupancy, outlier detection, balancer, counters); those that do not are freed after
    /// the last request that uses them.
    pub(crate) fn reload(&self, config: &MeshConfig) -> Result<(), BuildError> {
        check_analysis(config, self.settings.analysis_errors_fatal)?;
        let _serial = lock(&self.reload);
        let next = Compiled::build(config, &self.client, &self.registry)?;
        self.compiled.store(Arc::new(next));
        self.registry.prune();
        Ok(())
    }
}
