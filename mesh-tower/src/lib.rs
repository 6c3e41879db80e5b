//! Tower layers that give any hyper or reqwest client Istio traffic management,
//! in process.
//!
//! [`MeshLayer`] wraps a client (any `tower::Service<http::Request<_>>`; the
//! [`client`] module has ready-made ones for `hyper_util`'s legacy client and
//! `reqwest`) in [`Mesh`], which does for each request what an Istio sidecar
//! (Envoy) would: routing by VirtualService, weighted splits, rewrites and
//! header operations, fault injection, mirroring, route and per-try timeouts,
//! retries with backoff and budgets, connection-pool limits (circuit
//! breakers), load balancing over ServiceEntry endpoints and outlier
//! detection. It drives the pure crates `mesh-routing` (decisions) and
//! `mesh-resilience` (state machines); configuration comes from `mesh-model`.
//!
//! It originates TLS only in its own connector ([`client::MeshClient`], feature
//! `mesh-client`), resolves DNS only in the `dns` module (feature `dns`), and learns
//! endpoints beyond ServiceEntry `STATIC` ones only from a source you plug in
//! ([`MeshHandle::endpoint_source`]; the `mesh-kube` crate is one). It never reads
//! configuration files unless asked ([`load_files`], [`MeshHandle::reload_files`],
//! [`MeshHandle::watch`]).
//!
//! # What happens to a request, in order
//!
//! 0. **Request hygiene**, as an Istio sidecar does for requests from its own
//!    application. The caller's `x-envoy-*` control headers
//!    ([`REMOVED_FROM_EXTERNAL`](mesh_resilience::headers::REMOVED_FROM_EXTERNAL):
//!    `x-envoy-retry-on`, `x-envoy-max-retries`, `x-envoy-upstream-rq-timeout-ms`,
//!    `x-envoy-internal`, `x-envoy-attempt-count`...) are removed unread, unless
//!    [`MeshBuilder::trust_envoy_headers`] says to honour them. The authority that
//!    routes is the `Host` header when there is one, else the URI's (Envoy routes by
//!    `Host`/`:authority`); that same `Host` goes upstream. Userinfo
//!    (`http://user:pw@host/`) is never part of it: it is neither routed by nor sent, in
//!    `Host` or in the upstream URI. A fully qualified name with its root dot
//!    (`reviews.default.svc.cluster.local.`) is served by the VirtualService of the name
//!    without it, as current istiod's virtual hosts list both; the `Host` is sent as
//!    written.
//! 1. **Route** ([`mesh_routing::RouteTable::route`]), then Envoy's **CORS** filter
//!    ([`mesh_routing::cors`]): a preflight from an allowed origin is answered here (200
//!    with the policy's headers); the response to an actual CORS request, whoever answers
//!    it (upstream, local reply, fault abort, error reply), gets
//!    `access-control-allow-origin` and the rest. A redirect or a direct
//!    response is answered locally. A VirtualService host with no matching
//!    route fails with [`MeshError::is_no_route`] (404 `NR`). A host no
//!    VirtualService covers is passed through unchanged (its DestinationRule
//!    still applies) with Istio's default retry policy.
//! 2. **Fault**. A delay sleeps (tokio time); an abort is a synthesised
//!    response (`fault filter abort`; gRPC: HTTP 200 with `grpc-status` and
//!    `grpc-message`). An abort is never retried and never seen by pools or
//!    outlier detection.
//! 3. **Mirrors**. For each mirror whose percentage roll passes, a copy of the
//!    request is spawned to the mirror cluster's endpoint with the `Host`
//!    suffixed `-shadow` (`api:8080` → `api-shadow:8080`). Copies never delay
//!    or fail the request; their responses are dropped; each is bounded by the
//!    route timeout, as Envoy's shadows are; at most
//!    [`MeshBuilder::max_concurrent_mirrors`] are in flight (further ones are
//!    dropped and counted); a body that cannot be replayed is not mirrored.
//!    With neither a route timeout nor [`MeshBuilder::stream_idle_timeout`], a copy ends
//!    after [`MIRROR_TIMEOUT_FALLBACK`].
//! 4. **Route timeout** (VirtualService `timeout`): starts after the fault
//!    delay and spans every attempt, pool wait and backoff, and the response
//!    body. Expiry before response headers: [`MeshError::is_timeout`], 504
//!    `upstream request timeout`; while the body streams: the body yields
//!    that error and ends.
//! 5. **Retry loop** ([`mesh_resilience::RetryState`]): `retryOn`, `attempts`,
//!    backoff (tokio sleep), `maxRetries` and the retry budget. A retry prefers
//!    an endpoint not yet tried. When retries are exhausted on a retriable
//!    response, the last upstream response is returned as it is; on resets,
//!    connect failures or timeouts, the [`MeshError`].
//! 6. **Pool admission** per cluster (`connectionPool`): overflow fails with
//!    [`MeshError::is_overflow`] (503, `x-envoy-overloaded: true`), never
//!    retried, never counted by outlier detection. A pending request waits
//!    until a permit frees or the route deadline passes.
//! 7. **Endpoint pick**: the cluster's load balancer from the merged
//!    DestinationRule, ejected endpoints excluded unless in panic. A subset
//!    with no endpoints fails with [`MeshError::is_no_healthy_upstream`] (503
//!    `UH`); an undefined subset with [`MeshError::is_unknown_cluster`] (503
//!    `NC`). A destination with no registered endpoints goes to its host name
//!    and port (the request's own host name when it names that service).
//! 8. **Request rewrite**: path (`rewrite.uri`, `uriRegexRewrite`), header
//!    operations in Istio's order, URI authority set to the endpoint
//!    `ip:port`; the `Host` header keeps the request's authority unless a
//!    rewrite sets another (set explicitly for HTTP/1; over HTTP/2 the
//!    `:authority` is the endpoint); `x-envoy-attempt-count` when enabled.
//! 9. **Per-try timeout** around the client call until response headers (as
//!    in Envoy, it no longer applies once the response has started).
//! 10. **Client call** on a clone of the inner service.
//! 11. **Outcome**: status and `grpc-status` of the headers, or the client
//!     error classified ([`error`]).
//! 12. **Outlier detection** records the outcome (sweeps run lazily on the
//!     request path; ejections are logged), then the retry decision.
//!
//! The response body is a [`MeshBody`], which holds the pool permit until the
//! body ends or is dropped. Response header operations and (when enabled)
//! `x-envoy-attempt-count` are added to the response.
//!
//! Request bodies are wrapped in [`body::ReplayBody`] (cap:
//! [`MeshBuilder::replay_cap`], 64 KiB by default). A body too large for the
//! cap up front is sent once and never retried; one that outgrows the cap
//! during the first attempt makes a decided retry fail with
//! [`MeshError::is_body_too_large_to_retry`] (507).
//!
//! The mesh runs on tokio: requests must be polled inside a tokio runtime
//! with the time driver enabled (timeouts, backoff and delays use tokio's
//! timers; mirror copies are spawned on the current runtime).
//!
//! Time comes only from tokio's clock and randomness only from a seeded
//! generator ([`MeshBuilder::seed`]), so everything can be tested with
//! `#[tokio::test(start_paused = true)]`.
//!
//! # Reload and stats
//!
//! [`MeshHandle::reload`] swaps the compiled configuration atomically;
//! in-flight requests finish on the old one. Pool occupancy, outlier state
//! and counters of clusters that still exist (same host, subset and port)
//! carry over. [`MeshHandle::stats`] reads per-cluster counters
//! ([`ClusterStats`]) and mesh totals.
//!
//! # Observability
//!
//! [`telemetry`]: Istio's standard metrics (`istio_requests_total`...) through the `metrics`
//! facade, Envoy's cluster stats ([`MeshHandle::record_envoy_stats`]), an access log with
//! Istio's fields, `x-request-id` generation and trace-header propagation. Every error and
//! every response the mesh answered or changed carries Envoy's response flags
//! ([`telemetry::ResponseFlags`]: `URX`, `UF`, `NR`...).
//!
//! `tracing` spans `mesh.request` and, for each attempt, `mesh.attempt`, at debug level, with
//! OpenTelemetry's HTTP client semantic conventions as field names (so `tracing-opentelemetry`
//! exports a client span per request and per attempt: [`telemetry`]'s *OpenTelemetry spans*)
//! and the mesh's virtual service, route, cluster, endpoint, outcome, retry reason, backoff and
//! response flags; events for ejections, returns from ejection and reload failures.
//!
//! # Defaults
//!
//! Every default is the one istiod writes into a sidecar's Envoy configuration. A
//! configuration that leaves a field unset behaves as it would under Istio; the tests
//! `mesh-routing/tests/defaults.rs` and `tests/mesh/defaults.rs` check the rows one by one.
//!
//! | Setting | Istio + Envoy | mesh | Where Istio sets it |
//! |---|---|---|---|
//! | Retries without `retries` | 2 retries on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` with no code (503 not retried since 1.24), previous-hosts predicate, 5 host selection attempts | the same (previous hosts off under consistent hashing, as istiod) | `retry.DefaultPolicy` (route level) |
//! | Retry backoff | 25 ms base, 250 ms max, full jitter | the same | Envoy's router default |
//! | Route timeout | disabled (`0s`) | disabled | route `timeout: 0s` |
//! | Per-try timeout | none | none | unset |
//! | `x-envoy-attempt-count` | on requests, not on responses | on requests ([`MeshBuilder::attempt_count_header`]), not on responses ([`MeshBuilder::attempt_count_in_response`]) | virtual host `include_request_attempt_count` |
//! | Retry budget | none unless the DestinationRule's `retryBudget` | none unless the DestinationRule's or [`MeshBuilder::retry_budget`] | cluster circuit breakers |
//! | Circuit breakers | 2^32−1 connections, pending, requests, retries | the same | `getDefaultCircuitBreakerThresholds` |
//! | Requests per connection | unlimited | unlimited | unset |
//! | Load balancer | `LEAST_REQUEST` | `LEAST_REQUEST` | `defaultLBAlgorithm` |
//! | Connect timeout | 10 s | 10 s (with [`client::MeshClient`]) | mesh config `connectTimeout` |
//! | Upstream idle timeout | 1 h | 1 h (with [`client::MeshClient`]) | Envoy's `common_http_protocol_options` default |
//! | Outlier detection, when the block is present | 5 consecutive 5xx, gateway errors off, interval 10 s, base ejection 30 s, max 10 %, max ejection time 300 s | the same | Envoy's defaults for unset fields |
//! | Panic threshold with outlier detection | 0 (no panic mode) | 0 | `healthy_panic_threshold` from `minHealthPercent` |
//! | Stream idle timeout | off (`0s` on sidecars) | off ([`MeshBuilder::stream_idle_timeout`] opts in) | HCM `stream_idle_timeout` |
//! | `x-request-id` | generated when absent | generated when absent ([`MeshBuilder::generate_request_id`]) | HCM `generate_request_id` |
//! | Access log | off (`accessLogFile: ""`) | off ([`MeshBuilder::access_log`]) | mesh config |
//! | Undefined subset | accepted; 503 `NC` | loaded; 503 `NC` ([`MeshBuilder::analysis_errors_fatal`] refuses instead) | istiod validation accepts it |
//! | Caller's `x-envoy-*` headers | removed | removed ([`MeshBuilder::trust_envoy_headers`] honours them) | sidecar treats its application as external |
//! | Mirror copies in flight | unbounded | at most [`DEFAULT_MAX_CONCURRENT_MIRRORS`] | — |
//! | Request body kept for retries | up to the downstream connection's buffer limit (Envoy's default 1 MiB) | 64 KiB ([`MeshBuilder::replay_cap`]; a difference, below) | listener `per_connection_buffer_limit_bytes` |
//!
//! # Differences from Istio + Envoy
//!
//! - Around a client you bring, connection-pool limits count requests, not sockets (the
//!   mesh cannot see that client's connections; see `mesh_resilience::pool`), and the pool
//!   is driven as HTTP/1.1. [`client::MeshClient`] applies them to sockets and streams as
//!   Envoy does.
//! - No auto mTLS: a destination whose DestinationRule has no `tls` block is plaintext
//!   (Istio upgrades it to `ISTIO_MUTUAL` when the server runs a sidecar).
//! - Retries and mirrors keep at most [`MeshBuilder::replay_cap`] (64 KiB by default) of a
//!   request body, where Envoy keeps up to its buffer limit; a larger body is sent once and
//!   never retried. Raise the cap for Envoy's behaviour with larger bodies.
//! - Counters of a cluster appear in [`Stats`] once it has seen a request.
//! - Over HTTP/2 the upstream `:authority` is the endpoint address.
//! - Mirror copies with no route timeout and no stream idle timeout end after
//!   [`MIRROR_TIMEOUT_FALLBACK`] (Envoy's shadows wait as long as the upstream), and
//!   at most [`MeshBuilder::max_concurrent_mirrors`] are in flight.
//! - A short name with a root dot (`reviews.`) finds the short name's virtual host too;
//!   istiod adds the dotted form of fully qualified names only. No client resolves such a
//!   name, so no request should tell the difference.
//! - Opt-in: [`MeshBuilder::trust_envoy_headers`] (a sidecar never trusts its
//!   application's `x-envoy-*` headers unless `PILOT_SIDECAR_USE_REMOTE_ADDRESS` and
//!   internal networks are configured); [`MeshBuilder::stream_idle_timeout`] (istiod turns
//!   Envoy's stream idle timeout off for sidecars).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use mesh_tower::{body::ReplayBody, BoxError, MeshLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: api}
//! spec:
//!   hosts: [api.example.test]
//!   ports: [{number: 80, name: http, protocol: HTTP}]
//!   resolution: STATIC
//!   endpoints: [{address: 10.0.0.7}]
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: api}
//! spec:
//!   hosts: [api.example.test]
//!   http:
//!   - retries: {attempts: 2, retryOn: 5xx}
//!     route: [{destination: {host: api.example.test}}]
//! "#;
//! let config = mesh_model::load_str("api.yaml", yaml).into_result().expect("valid");
//! let layer = MeshLayer::builder().config(config).seed(1).build().expect("builds");
//! let handle = layer.handle();
//!
//! // A stand-in for a real client: the first attempt fails with 503.
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let client = service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
//!     let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async move {
//!         assert_eq!(req.uri().authority().unwrap(), "10.0.0.7:80");
//!         let status = if n == 0 { 503 } else { 200 };
//!         let res = http::Response::builder().status(status).body(Full::new(Bytes::from("hi")));
//!         Ok::<_, BoxError>(res.unwrap())
//!     }
//! });
//!
//! let svc = ServiceBuilder::new().layer(layer).service(client);
//! let req = http::Request::get("http://api.example.test/").body(Full::<Bytes>::default()).unwrap();
//! let res = svc.oneshot(req).await.expect("routed");
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hi");
//!
//! let stats = handle.stats();
//! let api = stats.cluster("api.example.test", None).unwrap();
//! assert_eq!((api.requests(), api.retries(), api.active_requests()), (2, 1, 0));
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
pub mod client;
mod cluster;
mod compiled;
#[cfg(feature = "dns")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns")))]
pub mod dns;
mod driver;
pub mod error;
mod files;
pub mod future;
mod handle;
mod host_cache;
mod layer;
mod registry;
mod rng;
mod service;
mod shared;
mod stage;
pub mod stats;
pub mod telemetry;
mod time;
pub mod watch;

/// The configuration model (`mesh-model`), re-exported so that one dependency is enough.
pub use mesh_model as model;
/// The route table (`mesh-routing`), re-exported so that one dependency is enough.
pub use mesh_routing as routing;

pub use body::MeshBody;
pub use error::MeshError;
pub use files::{
    config_files, load_files, load_str, read_config_files, BuildError, ConfigFiles, LoadFilesError,
    ReloadError,
};
pub use handle::{EndpointPublisher, MeshHandle};
pub use layer::{
    MeshBuilder, MeshLayer, DEFAULT_MAX_CONCURRENT_MIRRORS, ENVOY_STREAM_IDLE_TIMEOUT,
    MIRROR_TIMEOUT_FALLBACK,
};
pub use mesh_routing::ClientContext;
pub use service::Mesh;
pub use stats::{ClusterStats, Stats};
pub use telemetry::ResponseFlags;
pub use watch::{WatchHandle, WatchOptions};

/// A type-erased error, as used by tower and hyper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
