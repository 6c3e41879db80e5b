//! [`MeshHandle`]: reload the configuration, watch files, publish endpoints, read the stats.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_model::MeshConfig;
use mesh_routing::endpoints::{Endpoint, EndpointSink, EndpointSource};

use crate::files::{expand, load_files, BuildError, ReloadError};
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

    /// Polls the modification times of `paths` every `interval` on a tokio
    /// task and reloads when one changes. A failed reload keeps the old
    /// configuration, emits a `tracing` warning and calls `on_error`. The task
    /// stops when the returned [`WatchHandle`] is dropped. Must be called
    /// inside a tokio runtime.
    pub fn watch(
        &self,
        paths: Vec<PathBuf>,
        interval: Duration,
        on_error: impl Fn(&ReloadError) + Send + Sync + 'static,
    ) -> WatchHandle {
        let handle = self.clone();
        let task = tokio::spawn(async move {
            let mut last = stamps(&paths);
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = stamps(&paths);
                if now == last {
                    continue;
                }
                last = now;
                // `reload_files` logs the outcome.
                if let Err(e) = handle.reload_files(&paths) {
                    on_error(&e);
                }
            }
        });
        WatchHandle { task }
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

/// Modification times (and sizes) of every file the paths stand for; an
/// unreadable path contributes `None`, so its appearance is a change too.
fn stamps(paths: &[PathBuf]) -> Vec<(PathBuf, Option<(SystemTime, u64)>)> {
    let mut out = Vec::new();
    for p in paths {
        match expand(p) {
            Ok(files) => {
                for f in files {
                    let m = std::fs::metadata(&f)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len())));
                    out.push((f, m));
                }
            }
            Err(_) => out.push((p.clone(), None)),
        }
    }
    out
}

/// Stops the watch task of [`MeshHandle::watch`] when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
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
