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
//! Istio's defaults are resolved in one place each: [`RetryPolicy::istio_default`] and the
//! [`policy`] module table, [`ConnectionPool`]'s and [`OutlierDetection`]'s `Default`,
//! [`LoadBalancer::default`].
//!
//! MSRV: Rust 1.85, a rolling policy of at least six months.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod analysis;
mod delegate;
mod destination_rule;
mod diag;
pub mod duration;
mod load;
mod matching;
mod meta;
mod names;
pub mod percent;
pub mod policy;
pub mod raw;
mod service_entry;
mod unknown;
mod virtual_service;

pub use analysis::find_destination_rule;
pub use destination_rule::{
    ConnectionPool, DestinationRule, HashKey, HashTable, LoadBalancer, OutlierDetection,
    PortPolicy, RetryBudget, SimpleLb, Subset, TrafficPolicy, UNLIMITED,
};
pub use diag::{Diagnostic, Kind, ResourceRef, Severity};
pub use duration::{Duration, DurationError};
pub use load::{Loaded, Loader, MeshConfig, Strictness, MAX_DOCUMENTS, MAX_SOURCE_BYTES};
pub use matching::{Regex, RegexError, StringMatch, MAX_REGEX_LEN};
pub use meta::{resolve_short_name, Meta, DEFAULT_NAMESPACE};
pub use percent::{Percentage, PercentageError};
pub use policy::{
    AbortStatus, FaultAbort, FaultDelay, FaultInjection, RetryCondition, RetryOn, RetryOnError,
    RetryPolicy,
};
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
