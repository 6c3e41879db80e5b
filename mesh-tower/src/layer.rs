//! [`MeshLayer`], its builder, and [`MeshHandle`] (reload, watch, stats).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_model::MeshConfig;
use mesh_routing::ClientContext;

use crate::body::DEFAULT_REPLAY_CAP;
use crate::files::{expand, load_files, BuildError, ReloadError};
use crate::service::Mesh;
use crate::state::{Settings, Shared};
use crate::stats::Stats;

/// Default of [`MeshBuilder::max_concurrent_mirrors`].
pub const DEFAULT_MAX_CONCURRENT_MIRRORS: usize = 64;

/// A [`tower::Layer`] that puts the mesh in front of a client.
///
/// Every [`Mesh`] built from one layer (and every clone of them) shares one
/// state: the route table, connection pools, outlier detectors and counters.
/// Build it with [`MeshLayer::builder`].
#[derive(Clone)]
pub struct MeshLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for MeshLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshLayer").finish_non_exhaustive()
    }
}

impl MeshLayer {
    /// A builder with the defaults: no configuration yet, client namespace
    /// `default`, 64 KiB replay cap, random seed, no attempt-count header, 64
    /// concurrent mirrors.
    pub fn builder() -> MeshBuilder {
        MeshBuilder {
            config: None,
            client: ClientContext::default(),
            replay_cap: DEFAULT_REPLAY_CAP,
            seed: None,
            attempt_count_header: false,
            max_concurrent_mirrors: DEFAULT_MAX_CONCURRENT_MIRRORS,
        }
    }

    /// A handle on the shared state: reload the configuration, read the stats.
    pub fn handle(&self) -> MeshHandle {
        MeshHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> tower_layer::Layer<S> for MeshLayer {
    type Service = Mesh<S>;

    fn layer(&self, inner: S) -> Mesh<S> {
        Mesh::new(inner, Arc::clone(&self.shared))
    }
}

/// Configures a [`MeshLayer`].
#[derive(Debug)]
#[must_use]
pub struct MeshBuilder {
    config: Option<MeshConfig>,
    client: ClientContext,
    replay_cap: usize,
    seed: Option<u64>,
    attempt_count_header: bool,
    max_concurrent_mirrors: usize,
}

impl MeshBuilder {
    /// The validated Istio configuration (see [`load_files`] and
    /// `mesh_model::Loader`). Required.
    pub fn config(mut self, cfg: MeshConfig) -> Self {
        self.config = Some(cfg);
        self
    }

    /// The calling workload: namespace and labels (for `sourceLabels`,
    /// `sourceNamespace` and short host names). Default: namespace `default`.
    pub fn client(mut self, ctx: ClientContext) -> Self {
        self.client = ctx;
        self
    }

    /// How many request-body bytes are kept so that retries and mirrors can
    /// resend them (default 64 KiB). Larger bodies are sent once, never retried.
    pub fn replay_cap(mut self, bytes: usize) -> Self {
        self.replay_cap = bytes;
        self
    }

    /// Fixes every random roll (weighted splits, fault and mirror sampling,
    /// backoff jitter, load balancing) for reproducible tests. Default: a
    /// random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sends `x-envoy-attempt-count` upstream and adds it to responses, as
    /// Istio's `includeAttemptCountInResponse`-style settings do. Default off.
    pub fn attempt_count_header(mut self, on: bool) -> Self {
        self.attempt_count_header = on;
        self
    }

    /// Mirror copies in flight at most (default 64). Beyond it, copies are
    /// dropped at once and counted ([`Stats::mirrors_dropped`]); the primary
    /// request never waits for a mirror.
    pub fn max_concurrent_mirrors(mut self, n: usize) -> Self {
        self.max_concurrent_mirrors = n;
        self
    }

    /// Compiles the route table and converts every route's policies.
    pub fn build(self) -> Result<MeshLayer, BuildError> {
        let config = self.config.ok_or(BuildError::MissingConfig)?;
        let settings = Settings {
            replay_cap: self.replay_cap,
            attempt_count_header: self.attempt_count_header,
            seed: self.seed,
        };
        let shared = Shared::new(config, self.client, settings, self.max_concurrent_mirrors)?;
        Ok(MeshLayer {
            shared: Arc::new(shared),
        })
    }
}

/// A handle on a mesh's shared state; cheap to clone.
#[derive(Clone)]
pub struct MeshHandle {
    shared: Arc<Shared>,
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
        let result = self.shared.reload(cfg);
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
