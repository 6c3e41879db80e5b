//! Istio traffic configuration and endpoints from a Kubernetes API server, applied to a
//! [`mesh_tower`] mesh: what istiod would send a sidecar, read in process.
//!
//! [`Discovery`] watches, with [`kube::runtime::watcher()`]:
//!
//! * `networking.istio.io/v1` `VirtualService`, `DestinationRule` and `ServiceEntry`, as
//!   dynamic objects fed to [`mesh_model::Loader`] one by one (source name
//!   `kubernetes:<kind>/<namespace>/<name>`), so validation and diagnostics are those of
//!   files. An object istiod would reject is reported ([`DiscoveryError::Refused`]) and
//!   skipped; if an earlier version of it was valid, that version keeps applying. All the
//!   objects held are loaded together, in Istio's order (creation time, then namespace and
//!   name), into the same [`mesh_model::MeshConfig`] the file loader builds from the same YAML,
//!   and swapped in with [`MeshHandle::reload`](mesh_tower::MeshHandle::reload), debounced
//!   ([`DiscoveryBuilder::debounce`]): many objects changing at once make one reload.
//! * `v1` Services, `discovery.k8s.io/v1` EndpointSlices and pod labels (a metadata-only
//!   watch), turned into endpoints per host as istiod turns them (the shared reference's
//!   section A): host `<service>.<namespace>.svc.cluster.local`; the service port mapped to
//!   the EndpointSlice port of the same **name** (the target port); `ready` endpoints get
//!   traffic, not-ready ones are known but never picked
//!   ([`Health::Unhealthy`](mesh_routing::endpoints::Health)), terminating ones are never
//!   published; every slice of a Service merged, duplicates merged, the Service's primary IP
//!   family first (dual stack); zone and node kept (a subset may select on
//!   `topology.kubernetes.io/zone` or `kubernetes.io/hostname`); endpoint labels are the
//!   pod's. They are published through an
//!   [`EndpointPublisher`](mesh_tower::EndpointPublisher): a change touches only the clusters
//!   of its Service, compiles no route, and keeps balancer and outlier state.
//!
//! The scope ([`Scope`]) is every namespace, a list of namespaces, or what the workload's
//! Istio `Sidecar` resource allows ([`EgressHosts`]): only the namespaces its egress hosts
//! name are watched, and only the Services, VirtualServices and ServiceEntries they allow are
//! held.
//!
//! A lost watch is re-opened from the last resource version; a `410 Gone` (or a failed list)
//! relists, and the state held keeps serving until the relist is complete, then whatever was
//! not listed is removed: no gap, and nothing stale left. [`Discovery::wait_until_ready`]
//! returns once every watch has listed and the mesh has the first configuration and
//! endpoints. Every applied or refused change is a `tracing` event; refusals and watch errors
//! also reach [`DiscoveryBuilder::on_error`].
//!
//! **What it never does:** write to the API server; watch anything but the kinds above (and
//! list `Sidecar` resources once, for [`Scope::Sidecar`]); keep whole objects (only what the
//! mesh needs: ports, addresses, conditions, labels); pick a Kubernetes version for
//! `k8s-openapi` (the application enables one feature, as k8s-openapi asks of libraries);
//! block a request (requests read what was last applied).
//!
//! [`Snapshot::read`] lists the same objects once, without watching, for tools that answer
//! one question and exit (`meshctl --kubeconfig`): the configuration a discovery would apply,
//! the objects it refuses, and each Service's endpoints. [`client_from_kubeconfig`] builds the
//! client from a kubeconfig file and context.
//!
//! # Example
//!
//! ```no_run
//! use mesh_kube::{Discovery, Scope};
//! use mesh_tower::MeshLayer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?; // KUBECONFIG, or in-cluster
//! let layer = MeshLayer::builder()
//!     .config(mesh_model::MeshConfig::default())
//!     .client(mesh_routing::ClientContext::new("shop"))
//!     .build()?;
//! let discovery = Discovery::builder(client, layer.handle())
//!     .scope(Scope::Namespaces(vec!["shop".into(), "istio-system".into()]))
//!     .on_error(|e| eprintln!("{e}"))
//!     .start()
//!     .await?;
//! discovery.wait_until_ready().await;
//! let http = tower::ServiceBuilder::new()
//!     .layer(layer)
//!     .service(mesh_tower::client::legacy_client::<
//!         mesh_tower::body::ReplayBody<http_body_util::Full<bytes::Bytes>>,
//!     >());
//! // send requests through `http`; keep `discovery` alive as long as the mesh runs.
//! # drop((http, discovery)); Ok(()) }
//! ```
//!
//! # Kubernetes version
//!
//! `k8s-openapi` needs exactly one Kubernetes version feature, chosen by the final binary:
//! add `k8s-openapi = { version = "0.28", features = ["latest"] }` (or `v1_32` … `v1_36`) to
//! the application. Inside this workspace, `.cargo/config.toml` sets
//! `K8S_OPENAPI_ENABLED_VERSION` so `cargo doc -p mesh-kube` builds alone.
//!
//! # Tested without a cluster
//!
//! No Kubernetes cluster runs where this crate is tested. The tests drive the real
//! `kube::Client`, from a kubeconfig, against `testing::FakeApiServer` (feature `testing`),
//! a loopback stand-in that speaks list (with pages), watch (with bookmarks, resource
//! versions and `410 Gone`) and the metadata-only form. What the stand-in cannot prove:
//! that a real API server answers exactly so (field and label selector edge cases, watch
//! cache behaviour, `resourceVersionMatch`, HTTP/2, authentication and TLS), that the
//! EndpointSlice controller writes what the tests write by hand (conditions during rolling
//! updates, slice splitting at 100 endpoints), and timings under a real control plane.
//!
//! # Differences from istiod
//!
//! * Endpoints without a Pod `targetRef` get no labels (istiod looks the pod up by IP; a
//!   metadata-only pod watch has no IPs).
//! * The region comes from the pod label `topology.kubernetes.io/region` (istiod reads the
//!   node; Nodes are not watched); the zone from the EndpointSlice.
//! * Headless and `ExternalName` Services get no endpoints: requests to them go to the name,
//!   as a sidecar's `ORIGINAL_DST` / alias would.
//! * Draining endpoints (persistent sessions) and `internalTrafficPolicy: Local` are not
//!   modelled.
//! * A Kubernetes Service that no VirtualService, DestinationRule or ServiceEntry names is not
//!   known to the route table: requests to it pass through to its name (kube-proxy balances
//!   them). Name it in a DestinationRule to get per-pod balancing and outlier detection.
//! * With [`Scope::Sidecar`], the Sidecar is read once at start (a change needs a restart),
//!   and destinations of imported VirtualServices are not added to the scope when the egress
//!   hosts do not cover them.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod discovery;
mod objects;
mod scope;
mod snapshot;
mod state;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use config::IstioKind;
pub use discovery::{Discovery, DiscoveryBuilder, DiscoveryError, StartError, Status};
pub use scope::{EgressHosts, InvalidEgressHost, Scope, SidecarScope};
pub use snapshot::{
    client_from_kubeconfig, KubeconfigError, Snapshot, SnapshotError, SnapshotObject,
};
