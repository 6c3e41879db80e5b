//! Istio traffic configuration, loaded and validated as strictly as istiod validates it.
//!
//! `mesh-model` reads the very YAML a user would `kubectl apply` for Istio — `VirtualService`,
//! `DestinationRule` and `ServiceEntry`, in multi-document files or `kind: List` envelopes, with
//! `apiVersion` `networking.istio.io/v1`, `v1beta1` or `v1alpha3` — and returns either typed,
//! validated resources or every problem in them. Each [`Diagnostic`] names the source, the
//! document, the resource, the field path (`spec.http[1].route[0].weight`), the line, and says
//! what is wrong and what is allowed. One bad document does not stop the others from loading.
//!
//! **What it never does:** no I/O beyond the text it is given (read files yourself), no
//! networking, no clock, no global state. Documents of other kinds (Gateway, Service,
//! Deployment, ...) are skipped with a note, so a whole manifest directory can be fed in.
//!
//! ```text
//!  YAML text ──split──▶ documents ──serde──▶ raw::* (wire, no invariants)
//!                                   │ unknown fields → warnings ("did you mean")
//!                                   ▼
//!                         validation (istiod's rules) ──▶ VirtualService / DestinationRule /
//!                                   │                      ServiceEntry (parsed values, defaults)
//!                                   ▼
//!                         cross-resource analysis ──▶ Loaded { config, diagnostics }
//! ```
//!
//! # Example
//!
//! ```
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews, namespace: prod}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - route:
//!     - destination: {host: reviews, subset: v1}
//!       weight: 90
//!     - destination: {host: reviews, subset: v2}
//!       weight: 10
//!     retires: {attempts: 3}
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: DestinationRule
//! metadata: {name: reviews, namespace: prod}
//! spec:
//!   host: reviews
//!   subsets:
//!   - {name: v1, labels: {version: v1}}
//!   - {name: v2, labels: {version: v2}}
//! "#;
//! let loaded = mesh_model::load_str("reviews.yaml", yaml);
//! for d in loaded.diagnostics() {
//!     println!("{d}");
//! }
//! let typo = loaded.warnings().next().unwrap();
//! assert_eq!(typo.path(), "spec.http[0].retires");
//! assert!(typo.message().contains("did you mean `retries`?"));
//!
//! let vs = &loaded.config().virtual_services()[0];
//! let mesh_model::RouteAction::Route(dests) = vs.http()[0].action() else { unreachable!() };
//! assert_eq!(dests.iter().map(|d| d.weight()).collect::<Vec<_>>(), [90, 10]);
//! assert_eq!(vs.http()[0].retries().attempts(), 2); // Istio's default policy
//! ```
//!
//! # Istio's defaults, and where each is resolved
//!
//! Every default is applied once, while a resource is validated, so the typed values read
//! back already hold it; nothing downstream has to know Istio's defaults.
//!
//! | Knob | Default | Resolved in |
//! |---|---|---|
//! | namespace | `default` | [`Meta`] ([`DEFAULT_NAMESPACE`]) |
//! | route timeout | none (disabled) | [`HttpRoute::timeout`] is `None` |
//! | retries (no `retries` block) | 2 retries on `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` | [`RetryPolicy::istio_default`], [`policy`] module table |
//! | retry backoff | 25 ms base, 250 ms max (Envoy) | [`RetryPolicy::backoff`] is `None`; [`policy`] table |
//! | fault percentage (unset) | 0 % | [`FaultDelay`] / [`FaultAbort`] percentage |
//! | mirror percentage (unset) | 100 % | [`Mirror::percentage`] |
//! | single destination weight | 100; weight 0 destinations dropped | [`RouteDestination::weight`] |
//! | redirect code | 301 | [`Redirect`] |
//! | load balancer | `LEAST_REQUEST` | [`LoadBalancer::default`] |
//! | ring hash minimum size | 1024 | [`HashTable::RingHash`] |
//! | connection pool limits | 2^32 − 1 each ([`UNLIMITED`]); connect timeout 10 s; requests per connection unlimited | [`ConnectionPoolSettings`]'s `Default` |
//! | outlier detection (block present) | 5 consecutive 5xx, gateway errors off, interval 10 s, base ejection 30 s, max ejection 10 %, min health 0 % | [`OutlierDetection`]'s `Default` |
//! | `maxEjectionPercent: 0` | the default (10 %) | [`OutlierDetection`] |
//! | policy for a (subset, port) | top level, replaced wholesale by a port entry, then block-wise by the subset's | [`DestinationRule::effective_policy`] |
//! | endpoint weight | 1 | [`Endpoint::weight`] |
//! | ServiceEntry resolution | `NONE` | [`Resolution`] |
//! | `exportTo` | everywhere (`*`) | kept as written (empty) |
//!
//! # Validation rules (istio-semantics §4)
//!
//! Implemented, each with at least one file in `tests/fixtures/invalid/`:
//!
//! * §4.1 structure: S1–S11 (S8, unknown fields: warnings, errors with [`Strictness::Strict`]).
//! * §4.2 VirtualService: V1–V10.
//! * §4.3 HTTPRoute: R1–R9.
//! * §4.4 HTTPMatchRequest: M1–M10 (M11 says `exact` is never checked: nothing to implement).
//! * §4.5 D1–D6, H1–H3, T1–T4, F1–F6, RD1–RD5, RW1–RW3, DR1–DR2, C1–C4.
//! * §4.6 DestinationRule: DR-1–DR-6, CP-1–CP-5, OD-1–OD-4, LB-1–LB-7, TLS-1–TLS-4, X-1.
//! * ServiceEntry (`ValidateServiceEntry` and the CRD, numbered SE-1–SE-24 in the fixture
//!   README) and EN-1 (enum values must be one of the enum's names).
//!
//! Where the library is stricter than Istio, on purpose: an abort or direct-response status of
//! 600 (F3, DR1) and redirect codes Envoy cannot send (RD4: 300..399 other than 301, 302, 303,
//! 307, 308) are errors, since Envoy rejects them after Istio accepted them.
//!
//! Not implemented, and why:
//!
//! * Rules that apply only to gateways (host and SNI checks of gateway-bound virtual services,
//!   JWT-claim routing on gateways): this library runs where sidecars run, so a virtual service
//!   bound only to gateways gets a remark and is otherwise not applied. V7 (JWT-claim keys in a
//!   mesh virtual service) is implemented.
//! * The contents of `tcp` and `tls` routes: kept as written (they round-trip) but neither
//!   validated nor applied, with a remark.
//! * ServiceEntry `DYNAMIC_DNS` resolution is refused with an error (it needs the sidecar's DNS
//!   proxy, which a client library does not have); Unix socket endpoint addresses are accepted
//!   unchecked; istiod warnings that depend on its own settings (address auto-allocation) are
//!   left out.
//! * The deprecated integer fault `percent` is not range-checked (Istio does not either).
//!
//! # Limits: time and memory linear in the source
//!
//! Any source up to [`MAX_SOURCE_BYTES`] (64 MiB) is loaded or refused in time and memory
//! linear in its size; no input makes a step superlinear. The bounds that make it so:
//!
//! | What | Bound | On excess |
//! |---|---|---|
//! | source | [`MAX_SOURCE_BYTES`] (64 MiB) | error, nothing read |
//! | documents per source | [`MAX_DOCUMENTS`] (100,000) | error, the rest not read |
//! | `[`/`{` nesting | [`MAX_FLOW_NESTING`] (128), found by a lexer of the parser's token rules before parsing | error, document not read |
//! | alias expansion | [`MAX_ALIAS_NODES`] (65,536) nodes and [`MAX_ALIAS_BYTES`] (1 MiB) of text beyond what the document's own text holds | error, document not read |
//! | one regex | [`MAX_REGEX_LEN`] (1,024) characters, 1 MiB compiled | error |
//! | all regexes of a configuration | [`MAX_CONFIG_REGEX_BYTES`] (64 MiB compiled, each regex charged at most twice its size) | error on each regex past it |
//! | delegation | [`MAX_DELEGATION_WORK`] (2^20 pairs of match blocks and their conditions) | error |
//! | a value repeated in a diagnostic | 200 characters | cut, with `…` |
//!
//! Every check that compares entries (duplicate or overlapping hosts, subsets, ports, match
//! blocks an earlier one covers, destination rules for a host, the line of a field path) uses
//! an index, not a scan of every pair. Measured on 2 shared cores (release build, figures in
//! RELIABILITY.md): 10 MB of configuration in under 3.5 s; memory about 30 times the source for a
//! realistic configuration and at most about 100 times for the densest (a million one-line
//! routes), mostly the parsed YAML tree and the wire structs (`raw`) while they are converted.
//!
//! # Remarks
//!
//! Diagnostics the library adds on top of Istio's verdict are warnings whose message contains
//! "by this library": a TLS `credentialName` (a Kubernetes secret) and `caCrl`, locality and
//! zone-aware load balancing and `retryRemoteLocalities`, warmup, `tcp`/`tls` routes,
//! `%VARIABLE%` substitution in header values, and virtual services bound only to gateways.
//! They never keep a resource out.
//!
//! # Delegation
//!
//! [`Loader::finish`] merges delegate virtual services into the root routes that name them
//! (istio-semantics §1.16), so [`RouteAction::Delegate`] never reaches a loaded
//! [`MeshConfig`]: conflicting delegate routes are dropped, unset route fields are inherited
//! from the root route, a missing delegate drops the root route (each with a warning when the
//! cross-resource analysis runs).
//!
//! MSRV: Rust 1.88 (the workspace `rust-version`; `.ci/msrv.py` checks every dependency and CI
//! builds the published crates with 1.88 when that toolchain is installed).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod analysis;
mod checks;
mod config;
mod delegate;
mod destination_rule;
mod diag;
pub mod duration;
mod grpc;
mod load;
mod lookup;
mod matching;
mod meta;
mod names;
pub mod percent;
pub mod policy;
mod protocol;
pub mod raw;
pub mod retry_on;
mod service_entry;
mod unknown;
mod virtual_service;

pub use config::{Loaded, MeshConfig};
pub use delegate::MAX_DELEGATION_WORK;
pub use destination_rule::{
    ConnectionPoolSettings, DestinationRule, H2UpgradePolicy, HashKey, HashTable, Http2KeepAlive,
    LoadBalancer, OutlierDetection, PortPolicy, RetryBudget, SimpleLb, Subset, TcpKeepalive,
    TlsMode, TrafficPolicy, UNLIMITED,
};
pub use diag::{Diagnostic, Kind, ResourceRef, Severity};
pub use duration::{Duration, DurationError};
pub use grpc::{GrpcStatus, UnknownGrpcStatus};
pub use load::{
    Loader, Strictness, MAX_ALIAS_BYTES, MAX_ALIAS_NODES, MAX_DOCUMENTS, MAX_FLOW_NESTING,
    MAX_SOURCE_BYTES,
};
pub use lookup::{
    applicable_destination_rules, exported_to, labels_match, Viewer, DEFAULT_ROOT_NAMESPACE,
};
pub use matching::{Regex, RegexError, StringMatch, MAX_CONFIG_REGEX_BYTES, MAX_REGEX_LEN};
pub use meta::{resolve_short_name, Meta, CLUSTER_DOMAIN, DEFAULT_NAMESPACE};
pub use names::host_matches;
pub use percent::{Percentage, PercentageError};
pub use policy::{AbortStatus, FaultAbort, FaultDelay, FaultInjection, RetryPolicy};
pub use protocol::PortProtocol;
pub use retry_on::{is_go_known_status, RetryCondition, RetryOn, RetryOnError, StatusCodeSet};
pub use service_entry::{Endpoint, Resolution, ServiceEntry, ServicePort};
pub use virtual_service::{
    CorsPolicy, Delegate, Destination, DirectResponse, HeaderOps, Headers, HttpMatch, HttpRoute,
    Mirror, Redirect, RedirectPort, RegexRewrite, Rewrite, RouteAction, RouteDestination,
    VirtualService,
};

/// Loads one source with [`Strictness::Standard`] and runs the cross-resource analysis.
///
/// `source` names the text in diagnostics (usually its file path).
pub fn load_str(source: &str, text: &str) -> Loaded {
    let mut l = Loader::new();
    l.add_str(source, text);
    l.finish()
}

/// The README's example, compiled and run as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
