//! [`MeshLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mesh_model::MeshConfig;
use mesh_resilience::RetryBudget;
use mesh_routing::ClientContext;

use crate::body::DEFAULT_REPLAY_CAP;
use crate::files::BuildError;
use crate::handle::MeshHandle;
use crate::service::Mesh;
use crate::shared::{Settings, Shared};

/// Default of [`MeshBuilder::max_concurrent_mirrors`].
pub const DEFAULT_MAX_CONCURRENT_MIRRORS: usize = 64;

/// Envoy's own default `stream_idle_timeout`, 5 minutes: a value for
/// [`MeshBuilder::stream_idle_timeout`]. An Istio sidecar turns the timeout off, and so does
/// the mesh by default.
pub const ENVOY_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a mirror copy may wait for its answer when neither the route timeout nor
/// [`MeshBuilder::stream_idle_timeout`] bounds it: 5 minutes, so a mirror target that never
/// answers cannot hold the mirror slots for good.
pub const MIRROR_TIMEOUT_FALLBACK: Duration = Duration::from_secs(300);

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
    /// `default`, 64 KiB replay cap, random seed, `x-envoy-attempt-count` on requests
    /// (not on responses), no retry budget, 64
    /// concurrent mirrors, no stream idle timeout (as an Istio sidecar), `x-envoy-*` request
    /// headers removed unread.
    pub fn builder() -> MeshBuilder {
        MeshBuilder {
            config: None,
            client: ClientContext::default(),
            replay_cap: DEFAULT_REPLAY_CAP,
            seed: None,
            attempt_count_header: true,
            attempt_count_in_response: false,
            retry_budget: None,
            max_concurrent_mirrors: DEFAULT_MAX_CONCURRENT_MIRRORS,
            stream_idle_timeout: None,
            trust_envoy_headers: false,
            metrics: true,
            generate_request_id: true,
            access_log: false,
            analysis_errors_fatal: false,
        }
    }

    /// A handle on the shared state: reload the configuration, read the stats.
    pub fn handle(&self) -> MeshHandle {
        MeshHandle::new(Arc::clone(&self.shared))
    }

    /// The shared state (for a client that attaches itself to the layer).
    #[cfg_attr(not(feature = "mesh-client"), allow(dead_code))]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
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
    attempt_count_in_response: bool,
    retry_budget: Option<RetryBudget>,
    max_concurrent_mirrors: usize,
    stream_idle_timeout: Option<Duration>,
    trust_envoy_headers: bool,
    metrics: bool,
    generate_request_id: bool,
    access_log: bool,
    analysis_errors_fatal: bool,
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

    /// Sends `x-envoy-attempt-count` (1 for the first attempt, 2 for the first retry...) on
    /// every upstream request. Default on, as istiod sets `include_request_attempt_count` on
    /// every virtual host.
    pub fn attempt_count_header(mut self, on: bool) -> Self {
        self.attempt_count_header = on;
        self
    }

    /// Adds `x-envoy-attempt-count` to responses (Envoy's
    /// `include_attempt_count_in_response`). Default off, as under Istio.
    pub fn attempt_count_in_response(mut self, on: bool) -> Self {
        self.attempt_count_in_response = on;
        self
    }

    /// A retry budget for clusters whose DestinationRule sets no `retryBudget`. Default
    /// `None`, as under Istio: retries are limited only by `attempts` and `maxRetries`
    /// (2^32 − 1 unless set). [`RetryBudget::default`] is Envoy's budget (20 % of active
    /// requests, at least 3), a guard against retry storms that Istio does not set.
    pub fn retry_budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.retry_budget = budget;
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
    /// no body frame) before the mesh ends it, as Envoy's `stream_idle_timeout` does: 408
    /// `stream timeout` before headers ([`MeshError::is_timeout`](crate::MeshError::is_timeout)),
    /// a body error after. Mirror copies without a route timeout end after it too.
    ///
    /// Default `None`, as an Istio sidecar (istiod writes `stream_idle_timeout: 0s` into every
    /// sidecar's connection manager): with no route timeout, a silent upstream holds the
    /// request, its pool permit and its connection until the caller gives up. Set
    /// [`ENVOY_STREAM_IDLE_TIMEOUT`] (plain Envoy's 5 minutes) or your own bound to end such
    /// requests; `Some(ZERO)` is `None`.
    pub fn stream_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream_idle_timeout = timeout.filter(|d| !d.is_zero());
        self
    }

    /// Whether the caller's `x-envoy-*` request headers are honoured. Default `false`, as an
    /// Istio sidecar treats its application's requests: the headers Envoy keeps for internal
    /// requests ([`REMOVED_FROM_EXTERNAL`](mesh_resilience::headers::REMOVED_FROM_EXTERNAL):
    /// `x-envoy-retry-on`, `x-envoy-max-retries`, `x-envoy-upstream-rq-timeout-ms`,
    /// `x-envoy-internal`...) are removed before routing and never reach the upstream.
    ///
    /// With `true` (for callers you trust, inside your own process), they stay and change the
    /// request's policy as Envoy's router applies them to internal requests
    /// ([`EnvoyOverrides`](mesh_resilience::retry::EnvoyOverrides)): extra retry conditions and
    /// codes, the number of retries, the route and per-try timeouts. The two timeout headers
    /// are consumed (not sent upstream), as Envoy's router removes them.
    pub fn trust_envoy_headers(mut self, trust: bool) -> Self {
        self.trust_envoy_headers = trust;
        self
    }

    /// Whether Istio's standard metrics are recorded (`istio_requests_total`,
    /// `istio_request_duration_milliseconds`, `istio_request_bytes`, `istio_response_bytes`;
    /// see [`telemetry`](crate::telemetry)). Default `true`, as every Istio sidecar reports
    /// them; they go to the `metrics` recorder the application installs, and cost nothing
    /// while none is.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Whether a request without `x-request-id` gets one: a random UUID (version 4), sent on
    /// every attempt and mirror copy, as Envoy's request-id extension does on a sidecar.
    /// Default `true`, as Envoy's `generate_request_id`; an id the caller sent is always kept.
    /// Costs one allocation per request that has no id (the header value).
    pub fn generate_request_id(mut self, on: bool) -> Self {
        self.generate_request_id = on;
        self
    }

    /// Whether one access-log event per request is emitted through `tracing` (target
    /// [`ACCESS_LOG_TARGET`](crate::telemetry::ACCESS_LOG_TARGET), with the fields of Istio's
    /// default access log; [`AccessLogLine`](crate::telemetry::AccessLogLine) prints it in
    /// Envoy's text format). Default `false`, as Istio's `accessLogFile: ""`.
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// Whether errors of the cross-resource analysis refuse a configuration, here and in every
    /// [`MeshHandle::reload`](crate::MeshHandle::reload) (the old configuration then keeps
    /// serving) with [`BuildError::Analysis`](crate::BuildError::Analysis). Default `false`,
    /// as istiod: it accepts a route to a subset no DestinationRule defines (`istioctl analyze`
    /// reports it as IST0101), and Envoy answers that route's requests 503 with the response
    /// flag `NC`; the mesh does the same. With `true`, such a configuration does not load:
    /// for users who would rather fail at start-up than serve a route that cannot work.
    pub fn analysis_errors_fatal(mut self, fatal: bool) -> Self {
        self.analysis_errors_fatal = fatal;
        self
    }

    /// Compiles the route table (every route's and cluster's policies converted once) and
    /// publishes the configuration's ServiceEntry `STATIC` endpoints.
    pub fn build(self) -> Result<MeshLayer, BuildError> {
        let config = self.config.ok_or(BuildError::MissingConfig)?;
        let settings = Settings {
            replay_cap: self.replay_cap,
            attempt_count_header: self.attempt_count_header,
            attempt_count_in_response: self.attempt_count_in_response,
            retry_budget: self.retry_budget,
            seed: self.seed,
            max_concurrent_mirrors: self.max_concurrent_mirrors,
            stream_idle_timeout: self.stream_idle_timeout,
            trust_envoy_headers: self.trust_envoy_headers,
            metrics: self.metrics,
            generate_request_id: self.generate_request_id,
            access_log: self.access_log,
            analysis_errors_fatal: self.analysis_errors_fatal,
        };
        let shared = Shared::new(&config, self.client, settings)?;
        Ok(MeshLayer {
            shared: Arc::new(shared),
        })
    }
}
