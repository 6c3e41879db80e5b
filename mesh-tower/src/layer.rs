//! [`MeshLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mesh_model::MeshConfig;
use mesh_routing::ClientContext;

use crate::body::DEFAULT_REPLAY_CAP;
use crate::files::BuildError;
use crate::handle::MeshHandle;
use crate::service::Mesh;
use crate::shared::{Settings, Shared};

/// Default of [`MeshBuilder::max_concurrent_mirrors`].
pub const DEFAULT_MAX_CONCURRENT_MIRRORS: usize = 64;

/// Default of [`MeshBuilder::stream_idle_timeout`]: Envoy's `stream_idle_timeout`, 5 minutes.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// concurrent mirrors, a 5-minute stream idle timeout.
    pub fn builder() -> MeshBuilder {
        MeshBuilder {
            config: None,
            client: ClientContext::default(),
            replay_cap: DEFAULT_REPLAY_CAP,
            seed: None,
            attempt_count_header: false,
            max_concurrent_mirrors: DEFAULT_MAX_CONCURRENT_MIRRORS,
            stream_idle_timeout: Some(DEFAULT_STREAM_IDLE_TIMEOUT),
        }
    }

    /// A handle on the shared state: reload the configuration, read the stats.
    pub fn handle(&self) -> MeshHandle {
        MeshHandle::new(Arc::clone(&self.shared))
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
    stream_idle_timeout: Option<Duration>,
}

impl MeshBuilder {
    /// The validated Istio configuration (see [`load_files`](crate::load_files) and
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
    /// dropped at once and counted ([`Stats::mirrors_dropped`](crate::Stats::mirrors_dropped)); the primary
    /// request never waits for a mirror.
    pub fn max_concurrent_mirrors(mut self, n: usize) -> Self {
        self.max_concurrent_mirrors = n;
        self
    }

    /// How long a request may wait with nothing from the upstream (no response headers, then
    /// no body frame) before the mesh ends it, as a sidecar's `stream_idle_timeout` does:
    /// 408 `stream timeout` before headers ([`MeshError::is_timeout`](crate::MeshError::is_timeout)),
    /// a body error after. Mirror copies without a route timeout end after it too. Default
    /// [`DEFAULT_STREAM_IDLE_TIMEOUT`] (Envoy's 5 minutes); `None` waits forever.
    pub fn stream_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream_idle_timeout = timeout.filter(|d| !d.is_zero());
        self
    }

    /// Compiles the route table (every route's and cluster's policies converted once) and
    /// publishes the configuration's ServiceEntry `STATIC` endpoints.
    pub fn build(self) -> Result<MeshLayer, BuildError> {
        let config = self.config.ok_or(BuildError::MissingConfig)?;
        let settings = Settings {
            replay_cap: self.replay_cap,
            attempt_count_header: self.attempt_count_header,
            seed: self.seed,
            max_concurrent_mirrors: self.max_concurrent_mirrors,
            stream_idle_timeout: self.stream_idle_timeout,
        };
        let shared = Shared::new(&config, self.client, settings)?;
        Ok(MeshLayer {
            shared: Arc::new(shared),
        })
    }
}
