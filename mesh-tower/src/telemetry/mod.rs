//! What an Istio operator reads about each request: Istio's standard metrics, Envoy's
//! cluster statistics, Envoy's response flags, the access log, trace context and
//! OpenTelemetry client spans.
//!
//! # Istio's standard metrics
//!
//! Through the [`metrics`](https://docs.rs/metrics) facade, so the application picks the
//! exporter, the mesh records what a client sidecar reports (`reporter="source"`) for every
//! request, when its response ends (a local reply or an error at once):
//!
//! | Metric | Kind | Value |
//! |---|---|---|
//! | [`istio_requests_total`](REQUESTS_TOTAL) | counter | 1 per request |
//! | [`istio_request_duration_milliseconds`](REQUEST_DURATION_MILLISECONDS) | histogram | request start to the end of the response body |
//! | [`istio_request_bytes`](REQUEST_BYTES) | histogram | request body bytes |
//! | [`istio_response_bytes`](RESPONSE_BYTES) | histogram | response body bytes the caller read |
//!
//! Give the exporter [`ENVOY_HISTOGRAM_BUCKETS`] for the histograms (Istio keeps Envoy's
//! defaults) so that dashboards' `histogram_quantile` queries line up. They are on by default
//! ([`MeshBuilder::metrics`](crate::MeshBuilder::metrics)) and cost nothing until a recorder is
//! installed.
//!
//! To serve them to Prometheus, install `metrics-exporter-prometheus`'s recorder with those
//! buckets and answer `GET /metrics` with its `PrometheusHandle::render`, after
//! [`MeshHandle::record_envoy_stats`](crate::MeshHandle::record_envoy_stats) for Envoy's
//! cluster stats. The canary demo (`examples/canary`) does exactly that: `cargo run -p
//! example-canary -- --serve 127.0.0.1:9464` serves `/metrics` there until interrupted, and
//! `.ci/prometheus_e2e.py` scrapes it with a real Prometheus and checks that
//! `sum by (destination_version) (istio_requests_total)` equals what the demo's client received
//! from each version.
//!
//! Labels, in Istio's order, and where each value comes from (`unknown` as Istio's own
//! fallback):
//!
//! | Label | Value |
//! |---|---|
//! | `reporter` | `source` |
//! | `source_workload` | [`ClientContext::with_workload_name`](mesh_routing::ClientContext::with_workload_name) (empty if unset, as a sidecar without `WORKLOAD_NAME`) |
//! | `source_canonical_service` | client label `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, `app`, the workload name (the injector's order) |
//! | `source_canonical_revision` | client label `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, `version`, `latest` |
//! | `source_workload_namespace` | the client's namespace |
//! | `source_principal` | `unknown` (no TLS identity) |
//! | `source_app`, `source_version` | client labels `app`, `version` (empty if unset) |
//! | `source_cluster` | [`ClientContext::with_cluster_id`](mesh_routing::ClientContext::with_cluster_id) (empty if unset) |
//! | `destination_workload`, `destination_workload_namespace`, `destination_principal` | `unknown` (endpoints carry no workload name, namespace or identity yet) |
//! | `destination_app`, `destination_version` | the chosen endpoint's labels `app`, `version` |
//! | `destination_service` | the cluster's host; `unknown` for a request no cluster took |
//! | `destination_canonical_service` | endpoint label `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, `app` |
//! | `destination_canonical_revision` | endpoint label `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, `version`, else `latest` |
//! | `destination_service_name` | a ServiceEntry host itself (Istio names ServiceEntry services by host), else the host's first label; `PassthroughCluster` for a host no service names; `unknown` for no route |
//! | `destination_service_namespace` | `unknown` (a client sidecar takes it from its peer) |
//! | `destination_cluster` | endpoint label `topology.istio.io/cluster` |
//! | `request_protocol` | `grpc` (request `content-type: application/grpc[+...]`) or `http` |
//! | `response_code` | the status the caller got (a gRPC caller's local reply: 200, as Envoy sends it) |
//! | `grpc_response_status` | gRPC: the trailers', else the headers', else inferred from the HTTP status ([`GrpcStatus::from_http_status`](mesh_model::GrpcStatus::from_http_status)); empty otherwise |
//! | `response_flags` | [`ResponseFlags`] (`-` for none; `DC` when the caller dropped the body before its end) |
//! | `connection_security_policy` | `unknown`, as on every client sidecar |
//!
//! **Cardinality.** Every value comes from configuration or the endpoints' labels, never from
//! a request's path or header values: series = Σ over clusters of (distinct
//! `app`/`version`/canonical/cluster label sets among its endpoints + 1) × outcomes seen
//! (status codes × gRPC statuses × flag combinations; in practice a handful), plus the
//! unrouted and passthrough series. The seed's canary (2 subsets, one label set each) under
//! normal traffic has 2 series per metric; with the failure modes of its failing-v2 run, 5.
//!
//! # Envoy's cluster statistics
//!
//! [`MeshHandle::record_envoy_stats`](crate::MeshHandle::record_envoy_stats) publishes each
//! cluster's counters ([`ENVOY_CLUSTER_COUNTERS`]) and gauges ([`ENVOY_CLUSTER_GAUGES`]) as
//! `envoy_cluster_<stat>{cluster_name="outbound|port|subset|host"}`, the names of a sidecar's
//! `/stats/prometheus`. The connection stats ([`ENVOY_CLUSTER_CONNECTION_STATS`]:
//! `upstream_cx_active`, `upstream_cx_total`) come from the mesh's own
//! connector, [`MeshClient`](crate::client::MeshClient), for the clusters whose connections it
//! keeps; with any other client the connections are the client's, and they are not published.
//!
//! # Access log
//!
//! With [`MeshBuilder::access_log`](crate::MeshBuilder::access_log) (off by default, as Istio's
//! `accessLogFile: ""`), every request ends with one `tracing` event at target
//! [`ACCESS_LOG_TARGET`] (level `INFO`) whose fields are the keys of Istio's JSON access log
//! ([`ACCESS_LOG_FIELDS`]: `start_time`, `method`, `path`, `protocol`, `response_code`,
//! `response_flags`, `response_code_details`, `bytes_received`, `bytes_sent`, `duration`,
//! `upstream_service_time`, `x_forwarded_for`, `user_agent`, `request_id`, `authority`,
//! `upstream_host`, `upstream_cluster`, `route_name`, and the address fields, always `-` in a
//! client). [`AccessLogLine`] collects them from the event and prints Envoy's default text
//! format. `path` is the caller's (before any rewrite, Envoy's `X-ENVOY-ORIGINAL-PATH?:PATH`);
//! `route_name` is the route's `name` (`name.match` with a named match), `-` for an unnamed
//! route, `default` for a service without VirtualService, `allow_any` for an unknown host.
//!
//! # Trace context
//!
//! `x-request-id` is kept when the caller sends one and otherwise generated (a version-4 UUID,
//! [`MeshBuilder::generate_request_id`](crate::MeshBuilder::generate_request_id)), the same on
//! every attempt and mirror copy. W3C Trace Context and B3 headers
//! ([`TRACE_CONTEXT`](mesh_resilience::headers::TRACE_CONTEXT)) go upstream unchanged, on
//! every attempt and mirror: the application forwards them, as Istio asks of applications.
//!
//! # OpenTelemetry spans
//!
//! Every request runs in a `tracing` span `mesh.request`, and every attempt that goes upstream
//! in a child span `mesh.attempt`, whose field names are OpenTelemetry's HTTP client semantic
//! conventions. Through `tracing-opentelemetry` they become client spans (the method as the
//! span's name, `otel.kind` and `otel.status_code` as its kind and status), so a trace shows
//! the request and each of its attempts, retries marked by `http.request.resend_count`:
//!
//! | Attribute | `mesh.request` | `mesh.attempt` |
//! |---|---|---|
//! | `http.request.method` (`_OTHER` and `http.request.method_original` for a method the conventions do not know) | the caller's | the same |
//! | `server.address`, `server.port` | the caller's URI authority, else its `Host` (the port of the scheme if none) | the `Host` sent upstream (after an authority rewrite) |
//! | `url.full` | the caller's URL, without user info | the URL sent upstream: `Host` and the rewritten path |
//! | `network.peer.address`, `network.peer.port` | – | the endpoint the attempt went to |
//! | `http.request.resend_count` | – | on a retry: attempts before it (1, 2...) |
//! | `http.response.status_code` | the status the caller got from upstream or a local reply | the attempt's response status |
//! | `error.type` | the status for a 4xx or 5xx; for an error, Envoy's response code details (`upstream_per_try_timeout`, `route_not_found`...) | the same for the attempt |
//! | `mesh.virtual_service`, `mesh.route`, `mesh.destination` | what routing chose | – |
//! | `mesh.cluster` | `outbound\|port\|subset\|host` | the same |
//! | `mesh.response_flags` | [`ResponseFlags`] (`-`, `URX`, `UF,URX`...) | – |
//! | `mesh.attempt`, `mesh.outcome`, `mesh.retry_reason`, `mesh.backoff_ms` | – | the attempt number, its outcome for the retry policy, and for a retried attempt why and after how long |
//!
//! A span with `error.type` has status `Error`. The request's span ends with its future (when
//! the response headers are back, or the error), an attempt's when its result is known.
//!
//! **No cargo feature, no OpenTelemetry dependency.** `tracing-opentelemetry` reads these
//! field names as they are, so mesh-tower does not depend on any `opentelemetry` crate: the
//! application picks the versions of `opentelemetry`, `opentelemetry_sdk` and
//! `tracing-opentelemetry` it already uses, and nothing in the mesh moves with their release
//! train. The spans are at level `DEBUG` (an application that logs at `INFO` does not pay for
//! them): let the OpenTelemetry layer's filter take `mesh_tower` at `DEBUG`.
//!
//! ```
//! use opentelemetry::trace::TracerProvider as _;
//! use tracing_subscriber::filter::{LevelFilter, Targets};
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::Layer as _;
//!
//! # let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
//!     .with_simple_exporter(exporter) // an OTLP exporter in an application
//!     .build();
//! let otel = tracing_opentelemetry::layer()
//!     .with_tracer(provider.tracer("my-service"))
//!     .with_filter(
//!         Targets::new()
//!             .with_target("mesh_tower", LevelFilter::DEBUG)
//!             .with_default(LevelFilter::INFO),
//!     );
//! let subscriber = tracing_subscriber::registry().with(otel);
//! # drop(subscriber);
//! ```
//!
//! **Cost.** A span no subscriber wants is `Span::none()` after one check of its callsite's
//! cached interest, and every field above is computed only for an enabled span: no
//! allocation, nothing measurable (see [Performance](#performance)).
//!
//! The mesh does not put its spans' context into `traceparent`: the backend's server span is
//! the child of the span the caller propagated, not of the attempt's span (Envoy's tracer
//! rewrites `traceparent` with its own span; here the application's propagator writes it, and
//! the mesh passes it on unchanged).
//!
//! # Performance
//!
//! `benches/telemetry.rs` runs the seed canary's request path (routing with the 90/10 split,
//! retry state, pool admission, endpoint pick, outlier record, response body) over a client
//! that answers at once, with Istio's metrics off, on without a recorder, on under a
//! `tracing` subscriber at `INFO`, on with a recorder whose every update is one relaxed atomic
//! add (what the mesh itself spends, apart from any exporter's work), and on with
//! `metrics-exporter-prometheus`'s recorder (with Envoy's buckets, its upkeep run every 4096
//! requests as its exporter runs it every few seconds):
//!
//! ```text
//! cargo bench -p mesh-tower --bench telemetry -- --warm-up-time 1 --measurement-time 3
//! cargo bench -p mesh-tower --bench telemetry --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/telemetry-* CASE N
//! ```
//!
//! Instructions per request (callgrind, the difference between N = 40,000 and N = 20,000 over
//! 20,000), a figure the machine's load does not move. On the shared 2-core machine these were
//! taken on, criterion put the metrics-off case at 1.49 to 1.72 µs from run to run (7 to 8
//! instructions per nanosecond) and could not resolve differences of 150 ns, so the
//! nanoseconds below are the instruction counts at that rate:
//!
//! | Case | Instructions | Added | About |
//! |---|---|---|---|
//! | metrics off ([`MeshBuilder::metrics(false)`](crate::MeshBuilder::metrics)) | 12,400 | | |
//! | metrics on, no recorder | 12,424 | +24 | 3 ns |
//! | metrics on, no recorder, `INFO` subscriber (the spans disabled) | 12,250 | −150 | |
//! | metrics on, atomic recorder (the mesh's own share) | 12,838 | +438 | 53–61 ns |
//! | metrics on, Prometheus recorder | 13,709 | +1,309 | 158–182 ns |
//!
//! The mesh's own work for all metrics (the destination series and the outcome's handles
//! found by one atomic load each, the end of the body timed, the request's telemetry handed to
//! the response body, four handle updates) is within the goal of 150 ns. The Prometheus
//! exporter adds about 870 instructions of its own: it timestamps every histogram sample
//! (three per request), pushes it into a lock-free bucket, and sorts it into the Envoy buckets
//! at upkeep; that share depends on the recorder the application installs. Earlier builds
//! measured the Prometheus case at +1,379 to +1,728 instructions: the exporter's block
//! allocations and upkeep land differently from build to build.
//!
//! # Differences from Istio + Envoy
//!
//! - Destination labels come from the chosen endpoint's labels (as a sidecar learns them from
//!   its peer by metadata exchange), so `destination_version` and `destination_app` are known
//!   without mTLS; workload name, namespace and principal stay `unknown`.
//! - `istio_request_bytes` and `istio_response_bytes` count body bytes (Istio's documented
//!   meaning); Envoy counts wire bytes, headers included.
//! - No route and passthrough requests report `destination_service="unknown"` instead of the
//!   `Host` header, to keep label values bounded.
//! - A request whose future is dropped before its response is not counted (Envoy counts it
//!   with `DC`, response code 0).
//! - Envoy's cluster stats are published when asked, not continuously.
//! - The mesh's spans are `tracing` spans: it makes no sampling decision of its own (Envoy
//!   packs its trace decision into the UUID's version nibble; the mesh's ids always say
//!   version 4) and does not rewrite `traceparent` with its spans' context.
//! - The access log's `bytes_*` are body bytes; `connection_termination_details`,
//!   `upstream_transport_failure_reason` and the address fields are `-`.
//!
//! # Response flags
//!
//! [`ResponseFlags`] says why a request ended as it did, with the codes of Envoy's
//! `%RESPONSE_FLAGS%` (`UF`, `URX`, `NR`...): on every error
//! ([`MeshError::response_flags`](crate::MeshError::response_flags)) and on every response the
//! mesh answered or changed ([`ResponseFlags::of`]).
//!
//! Envoy's response flags ([`ResponseFlag`], [`ResponseFlags`]) say why a request ended the way
//! it did, in the short codes Envoy writes for `%RESPONSE_FLAGS%` (`UF`, `URX`, `NR`...) and
//! Istio puts in the `response_flags` label.
//!
//! Every response and every error of the mesh carries them: a response as an extension
//! ([`ResponseFlags::of`]; absent, and so empty, on a plain upstream response), an error
//! through [`MeshError::response_flags`](crate::MeshError::response_flags) (and the
//! response [`MeshError::to_response`](crate::MeshError::to_response) builds carries them
//! too). Their `Display` is Envoy's: the short codes joined by `,`, in the order they were set,
//! or `-` when there is none.
//!
//! ```
//! use mesh_tower::telemetry::{ResponseFlag, ResponseFlags};
//!
//! let mut flags = ResponseFlags::new();
//! assert_eq!(flags.to_string(), "-");
//! flags.insert(ResponseFlag::UpstreamRetryLimitExceeded);
//! flags.insert(ResponseFlag::UpstreamConnectionFailure);
//! assert_eq!(flags.to_string(), "URX,UF");
//! assert_eq!("URX,UF".parse::<ResponseFlags>().unwrap(), flags);
//! assert_eq!(flags.long().to_string(), "UpstreamRetryLimitExceeded,UpstreamConnectionFailure");
//!
//! // On a response: the mesh's extension, or none.
//! let res = http::Response::new(());
//! assert!(ResponseFlags::of(&res).is_empty());
//! ```
//!
//! ## Which flags the mesh sets
//!
//! | Flag | When |
//! |---|---|
//! | `DI` | a fault delay was applied |
//! | `FI` | a fault abort answered the request |
//! | `NR` | no route matched (404) |
//! | `NC` | the route's cluster does not exist (an undefined subset, 503) |
//! | `UH` | no healthy endpoint (503) |
//! | `UO` | connection-pool overflow (503); also when a retry was refused by `maxRetries` or the retry budget |
//! | `URX` | retries were exhausted on a retriable outcome: on the backend's last response too |
//! | `UF` | connect failure or connect timeout |
//! | `UC` | the connection closed (before or after the request started) |
//! | `UR` | the server reset or refused the HTTP/2 stream |
//! | `UPE` | the server spoke invalid HTTP (502) |
//! | `UT` | route timeout, per-try timeout or the client's own timeout (504) |
//! | `SI` | the stream idle timeout (408), when enabled |
//!
//! As in Envoy, flags accumulate in the order they are set: a request whose retries all failed
//! to connect ends with `URX,UF` (Envoy decides "no more retries" before it writes the reset's
//! flag), a delayed request whose retries ran out on 503 responses with `DI,URX`.
//!
//! The other flags of Envoy's list ([`ResponseFlag::ALL`]) cannot happen in this client:
//! they belong to filters the mesh does not run (rate limiting, ext_authz, caching, health
//! checks, overload manager) or to the server side of a connection. They parse and print all
//! the same, so a tool reading a sidecar's logs can use this type too.

mod access_log;
pub(crate) mod envoy;
mod exchange;
mod flags;
pub(crate) mod metrics;
pub(crate) mod request_id;
pub(crate) mod spans;

pub use access_log::{AccessLogLine, ACCESS_LOG_FIELDS, ACCESS_LOG_TARGET};
pub use envoy::{ENVOY_CLUSTER_CONNECTION_STATS, ENVOY_CLUSTER_COUNTERS, ENVOY_CLUSTER_GAUGES};
pub(crate) use exchange::{Exchange, Tail, TailSlot};
pub use flags::{ResponseFlag, ResponseFlags, UnknownResponseFlag};
pub use metrics::{
    ENVOY_HISTOGRAM_BUCKETS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION_MILLISECONDS,
    RESPONSE_BYTES,
};
