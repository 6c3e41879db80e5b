//! A compiled, immutable Istio route table: request view in, routing decision out.
//!
//! `mesh-routing` answers the question a sidecar answers for every request: given this
//! request, which VirtualService and route apply, which destination (and cluster), with which
//! rewrite, header operations, timeout, retry policy, fault, mirrors, CORS and DestinationRule
//! policy. Then, as a second step, which endpoint of that cluster.
//!
//! ```text
//! mesh-model (YAML → validated config) ──compile(&config, &ClientContext)──▶ RouteTable
//! http::Request ──RequestView──▶ table.route(&view, roll) ──▶ RouteDecision ──cluster()──▶
//!     table.pick_endpoint(cluster, hash, &mut LbState, in_flight, ejected, roll) ──▶ EndpointChoice
//! ```
//!
//! # What it never does
//!
//! No I/O, no clock, no randomness of its own, no async, no locks, no logging. Randomness
//! comes in as `roll: u64` arguments; mutable load-balancer state lives in [`lb::LbState`]
//! values the caller owns. [`RouteTable::route`] does not allocate (a test with a counting
//! global allocator checks it) and is a plain function, so routing can be unit-tested without
//! a runtime. `clippy.toml` bans clock reads and sleeps in this crate.
//!
//! # Istio precedence, as implemented
//!
//! * **Host**: the authority (case-insensitive, with or without `:port`) selects one
//!   VirtualService: exact name, then the longest suffix wildcard, then `*`. Short host names
//!   are expanded with the VirtualService's namespace; a client also reaches
//!   `name.ns.svc.cluster.local` as `name.ns.svc`, `name.ns`, and, from namespace `ns`, `name`.
//! * **Several VirtualServices for one host**: no merging (sidecar semantics); the first wins
//!   (the client's namespace first, then document order = creation order); the others are
//!   recorded in [`RouteTable::notes`].
//! * **Routes**: `http[]` in order, first match wins; match blocks are OR-ed, fields inside a
//!   block AND-ed. Routes after the first catch-all are dropped. `sourceLabels`,
//!   `sourceNamespace` and `gateways` are evaluated once, at compile time, for the
//!   [`ClientContext`]; `port` is evaluated per request against the destination port.
//! * **No route matched** ⇒ [`Action::NoRoute`] (Envoy 404 `NR`). **No VirtualService** for the
//!   host ⇒ [`Action::Passthrough`]: the host itself, Istio's default retry policy, no timeout,
//!   and its DestinationRule policy when the host is a known service.
//! * **Weights**: zero weights dropped, a lone destination takes everything, the pick is
//!   Envoy's `roll % total` over cumulative weights.
//! * **Subsets**: an undefined subset is not a compile error (Istio accepts it): it routes to
//!   [`Action::UnknownSubset`] (Envoy 503 `NC`). A defined subset with no endpoint carrying its
//!   labels gives [`EndpointChoice::NoHealthyUpstream`](endpoints::EndpointChoice::NoHealthyUpstream) (503 `UH`).
//! * **DestinationRule**: chosen by *destination* host: exact before the most specific
//!   wildcard; client namespace, then the service's namespace, then `istio-system`. Policies
//!   merge top level → port level → subset → subset port level, replacing whole blocks
//!   ([`ClusterPolicy`]).
//!
//! # Example
//!
//! ```
//! use mesh_routing::{Action, ClientContext, RequestView, RouteTable};
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - match: [{headers: {end-user: {exact: jason}}}]
//!     route: [{destination: {host: reviews, subset: v2}}]
//!   - route:
//!     - {destination: {host: reviews, subset: v1}, weight: 90}
//!     - {destination: {host: reviews, subset: v3}, weight: 10}
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: DestinationRule
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   host: reviews
//!   subsets:
//!   - {name: v1, labels: {version: v1}}
//!   - {name: v2, labels: {version: v2}}
//!   - {name: v3, labels: {version: v3}}
//! "#;
//! let config = mesh_model::load_str("reviews.yaml", yaml).into_result().expect("valid config");
//! let table = RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles");
//!
//! let req = http::Request::get("http://reviews:9080/reviews/1")
//!     .header("end-user", "jason")
//!     .body(())
//!     .unwrap();
//! let decision = table.route(&RequestView::from_request(&req), 0);
//! let Action::Route(routed) = decision.action() else { panic!("{decision}") };
//! let cluster = table.cluster_key(routed.cluster());
//! assert_eq!(cluster.to_string(), "outbound|9080|v2|reviews.default.svc.cluster.local");
//! assert_eq!(decision.retry_policy().num_retries(), 2); // Istio's default when the route sets none
//! assert!(decision.timeout().is_none());       // disabled by default
//!
//! // Everyone else: 90/10 by the caller's roll.
//! let other = http::Request::get("http://reviews:9080/").body(()).unwrap();
//! let view = RequestView::from_request(&other);
//! let subset = |roll| match table.route(&view, roll).action() {
//!     Action::Route(r) => r.destination().subset().map(str::to_owned),
//!     _ => None,
//! };
//! assert_eq!(subset(89).as_deref(), Some("v1"));
//! assert_eq!(subset(90).as_deref(), Some("v3"));
//!
//! // Why? `explain` lists every route considered and what failed.
//! let trace = table.explain(&view);
//! assert!(trace.to_string().contains(r#"headers.end-user: exact "jason" but the header is absent"#));
//! ```
//!
//! # Differences from Istio + Envoy
//!
//! * One table serves every port: a VirtualService host matches an authority on any port (Envoy
//!   builds one route table per listener port), and `match.port` is tested per request.
//! * Delegation (`delegate`) is merged by `mesh-model`'s loader before the table sees the
//!   config (delegate routes combined with the root's match blocks, §1.16); a `delegate` route
//!   that reaches [`RouteTable::compile`] unmerged is [`CompileError::Unsupported`].
//! * Ring hash gives every endpoint `minimumRingSize` entries per unit of weight instead of
//!   sizing the whole ring, so adding an endpoint moves ~1/N of the keys (see [`lb::RingHash`]).
//!   Ejected endpoints are skipped on the ring/table instead of rebuilding it.
//! * Weighted LEAST_REQUEST uses power of two choices on `in_flight / weight` (Envoy switches to
//!   an EDF scheduler). Cookie hashing does not generate missing cookies (`ttl`).
//! * Passthrough only knows hosts named by a ServiceEntry, a DestinationRule or a route
//!   destination; other hosts get the default policy even if a wildcard DestinationRule would
//!   cover them.
//! * Within one namespace, VirtualServices are ordered by document order (creation time is not
//!   known); the client's namespace comes first.
//!
//! MSRV: see the workspace `rust-version` (a rolling policy: at least six months old).

mod client;
mod cluster;
mod compile;
mod compiled;
pub mod cors;
mod decision;
pub mod endpoints;
mod explain;
pub mod headers;
pub mod host;
mod inspect;
mod key;
pub mod lb;
pub mod matcher;
mod request;
mod table;
pub mod weighted;

pub use client::ClientContext;
pub use cluster::{ClusterId, ClusterKey, ClusterName, ClusterPolicy, UpstreamProtocol};
pub use compile::CompileError;
pub use compiled::{CompileNote, DirectResponse, RouteTable};
pub use decision::{
    Action, DestinationRef, MirrorTarget, Passthrough, RouteDecision, RouteId, Routed,
    VirtualServiceId,
};
pub use explain::{
    Trace, TraceBlock, TraceDestination, TraceOutcome, TraceRoute, TraceRouteResult,
    TraceVirtualService,
};
pub use inspect::{ActionView, MirrorView, RouteView, SplitView, VirtualHostView};
pub use key::DecisionKey;
pub use request::{without_userinfo, RequestView};
