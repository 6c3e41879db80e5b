//! [`MeshHandle`]: reload the configuration, watch files, publish endpoints, read the stats.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use mesh_model::MeshConfig;
use mesh_routing::endpoints::{Endpoint, EndpointSink, EndpointSource};

use crate::files::{load_files, BuildError, ReloadError};
use crate::registry::SourceSink;
use crate::shared::Shared;
use crate::stats::Stats;

/// A handle on a mesh's shared state; cheap to clone.
#[derive(Clone)]
pub struct MeshHandle {
    shared: Arc<Shared>,
}

impl MeshHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        MeshHandle { shared }
    }

    /// Resources (VirtualServices, DestinationRules, ServiceEntries) of the configuration
    /// serving now.
    pub fn resources(&self) -> usize {
        self.shared.compiled.load().resources
    }
}

impl fmt::Debug for MeshHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshHandle").finish_non_exhaustive()
    }
}

impl MeshHandle {
    /// Compiles `cfg` and swaps it in atomically. Requests already in flight
    /// finish on the old table; new requests use the new one. The pool,
    /// outlier and counter state of clusters that still exist (same host,
    /// subset and port) carries over. On error the old configuration keeps
    /// serving.
    ///
    /// Compiling runs on the calling thread (about a second for 10,000 VirtualServices):
    /// from async code, call it inside `tokio::task::spawn_blocking`, as
    /// [`watch`](Self::watch) does.
    pub fn reload(&self, cfg: MeshConfig) -> Result<(), BuildError> {
        let result = self.shared.reload(&cfg);
        match &result {
            Ok(()) => tracing::info!("mesh configuration reloaded"),
            Err(e) => {
                tracing::warn!(error = %e, "mesh configuration reload failed; the previous configuration keeps serving")
            }
        }
        result
    }

    /// Reads, validates and swaps in the configuration in `paths` (files or
    /// directories, as [`load_files`]). On any error the old configuration
    /// keeps serving.
    pub fn reload_files(&self, paths: &[impl AsRef<Path>]) -> Result<(), ReloadError> {
        let cfg = load_files(paths).inspect_err(|e| {
            tracing::warn!(error = %e, "mesh configuration files rejected; the previous configuration keeps serving");
        })?;
        self.reload(cfg)?;
        Ok(())
    }

    /// A new source of endpoints (a discovery client, for example). What it publishes
    /// overrides, host by host, what earlier sources (first of all the configuration's
    /// ServiceEntry `STATIC` endpoints) say. Each publication updates only the clusters of
    /// that host: no route is recompiled, and the balancer, outlier-detection and statistics
    /// state of endpoints that remain is kept.
    pub fn endpoint_source(&self) -> EndpointPublisher {
        EndpointPublisher {
            sink: SourceSink {
                registry: Arc::clone(&self.shared.registry),
                source: self.shared.registry.register_source(),
            },
        }
    }

    /// Publishes Envoy's statistics of every cluster of the current configuration to the
    /// `metrics` recorder, under Envoy's Prometheus names
    /// (`envoy_cluster_upstream_rq_total{cluster_name="outbound|8080|v1|api.default.svc.cluster.local"}`,
    /// see [`ENVOY_CLUSTER_COUNTERS`](crate::telemetry::ENVOY_CLUSTER_COUNTERS) and
    /// [`ENVOY_CLUSTER_GAUGES`](crate::telemetry::ENVOY_CLUSTER_GAUGES)): the counters the mesh
    /// keeps anyway, so the request path pays nothing for them. Call it before each scrape
    /// (or from a periodic task); nothing happens while no recorder is installed.
    pub fn record_envoy_stats(&self) {
        crate::telemetry::envoy::publish(&self.shared.compiled.load().states());
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let compiled = self.shared.compiled.load();
        Stats::collect(
            &compiled.states(),
            &self.shared.totals,
            self.shared
                .mirrors_sent
                .load(std::sync::atomic::Ordering::Relaxed),
            self.shared
                .mirrors_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            self.shared.registry.live_clusters(),
        )
    }
}

/// Publishes one source's endpoints into a mesh (from
/// [`MeshHandle::endpoint_source`]). Cheap to clone; every clone is the same source.
///
/// ```
/// use mesh_routing::endpoints::Endpoint;
/// # let config = mesh_model::load_str("x", "").into_config();
/// let layer = mesh_tower::MeshLayer::builder().config(config).build().unwrap();
/// let pods = layer.handle().endpoint_source();
/// pods.publish(
///     "api.default.svc.cluster.local",
///     vec![Endpoint::new("10.1.0.7").with_label("version", "v2")],
/// );
/// ```
#[derive(Debug, Clone)]
pub struct EndpointPublisher {
    sink: SourceSink,
}

impl EndpointPublisher {
    /// `host` (an FQDN) now has exactly `endpoints`.
    pub fn publish(&self, host: &str, endpoints: Vec<Endpoint>) {
        self.sink
            .registry
            .publish(self.sink.source, host, Some(endpoints.into()));
    }

    /// This source no longer knows `host`: its clusters fall back to earlier sources, or to
    /// resolving the host name (not a subset) / no healthy upstream (a subset).
    pub fn remove(&self, host: &str) {
        self.sink.registry.publish(self.sink.source, host, None);
    }

    /// Publishes everything `source` knows (replacing nothing else this source published).
    pub fn publish_source(&self, source: &dyn EndpointSource) {
        let mut sink = self.sink.clone();
        source.publish(&mut sink);
    }

    /// The source's number (sources registered later override earlier ones).
    pub fn id(&self) -> u32 {
        self.sink.source
    }
}

impl EndpointSink for EndpointPublisher {
    fn set_endpoints(&mut self, host: &str, endpoints: Vec<Endpoint>) {
        self.publish(host, endpoints);
    }

    fn remove_host(&mut self, host: &str) {
        self.remove(host);
    }
}
