//! Endpoints, apart from routes: where a cluster's traffic can go.
//!
//! Routes name clusters (host, subset, port); endpoints are published per host by a source
//! and selected per cluster, so an endpoint change never recompiles a route.
//!
//! ```text
//! source ──(host, [Endpoint])──▶ registry ──EndpointSelector::select──▶ ClusterEndpoints ──pick──▶ EndpointChoice
//!            (ServiceEntry STATIC,          (subset labels, service port)     (resolved ip:port,
//!             Kubernetes, DNS)                                                  weights, labels)
//! ```
//!
//! * [`Endpoint`]: an address with its labels, weight and service-port → endpoint-port
//!   mapping, as a source knows it. Cheap to clone (shared internals).
//! * [`EndpointSource`]: anything that can publish the endpoints of hosts into an
//!   [`EndpointSink`]; [`StaticEndpoints`] (ServiceEntry `STATIC` endpoints, which
//!   [`RouteTable::static_endpoints`](crate::RouteTable::static_endpoints) collects) is the
//!   first. `mesh-tower`'s registry is a sink; so is [`StaticEndpoints`] itself.
//! * [`EndpointSelector`]: what a cluster takes from its host's endpoints (the subset's labels
//!   and the service port), from
//!   [`RouteTable::selector`](crate::RouteTable::selector).
//! * [`ClusterEndpoints`]: the result, indexed `0..len()` the way load balancers, in-flight
//!   counts and outlier detection index endpoints.
//!
//! ```
//! use mesh_routing::endpoints::{Endpoint, EndpointSelector, StaticEndpoints};
//!
//! let mut reg = StaticEndpoints::new();
//! reg.add("api.default.svc.cluster.local", Endpoint::new("10.0.0.1").with_label("version", "v1"));
//! reg.add("api.default.svc.cluster.local", Endpoint::new("10.0.0.2").with_label("version", "v2"));
//! let v2 = EndpointSelector::new("api.default.svc.cluster.local", 8080)
//!     .with_subset([("version".to_owned(), "v2".to_owned())].into());
//! let eps = reg.select(&v2);
//! assert_eq!(eps.len(), 1);
//! assert_eq!(eps.get(0).unwrap().authority(), "10.0.0.2:8080");
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use http::uri::Authority;
use rustc_hash::FxHashMap;

use crate::lb::{EjectedSet, LbState, LoadBalancer};

/// Labels of a workload or an endpoint.
pub type Labels = BTreeMap<String, String>;

/// Whether an endpoint may receive traffic, as its source knows it.
///
/// Kubernetes maps EndpointSlice conditions to it as istiod does (`ready` → healthy,
/// not ready → unhealthy; terminating endpoints are never published). An unhealthy endpoint is
/// known to the registry but never selected into a cluster, so it is never picked: istiod
/// either does not send it or sends it with Envoy's `healthy_panic_threshold: 0`, and in
/// neither case does Envoy balance onto it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Health {
    /// May receive traffic (the default).
    #[default]
    Healthy,
    /// Known, never picked.
    Unhealthy,
}

/// Where an endpoint runs: Istio's locality (`region/zone/subzone`).
///
/// Subsets can select on it through the topology labels Istio adds to every endpoint
/// (`topology.kubernetes.io/region`, `topology.kubernetes.io/zone`,
/// `topology.istio.io/subzone`); see [`Endpoint::label`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Locality {
    region: Option<Arc<str>>,
    zone: Option<Arc<str>>,
    subzone: Option<Arc<str>>,
}

impl Locality {
    /// A locality with the parts that are known (empty strings count as unknown).
    pub fn new(region: Option<&str>, zone: Option<&str>, subzone: Option<&str>) -> Self {
        let part = |p: Option<&str>| p.filter(|p| !p.is_empty()).map(Arc::from);
        Locality {
            region: part(region),
            zone: part(zone),
            subzone: part(subzone),
        }
    }

    /// The region, if known.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The zone, if known.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The subzone, if known.
    pub fn subzone(&self) -> Option<&str> {
        self.subzone.as_deref()
    }

    /// Whether no part is known.
    pub fn is_empty(&self) -> bool {
        self.region.is_none() && self.zone.is_none() && self.subzone.is_none()
    }
}

impl std::fmt::Display for Locality {
    /// `region/zone/subzone`, unknown parts empty (Istio's locality string).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.region().unwrap_or(""),
            self.zone().unwrap_or(""),
            self.subzone().unwrap_or("")
        )
    }
}

/// The label key Istio gives an endpoint's region.
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
/// The label key Istio gives an endpoint's zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// The label key Istio gives an endpoint's subzone.
pub const LABEL_SUBZONE: &str = "topology.istio.io/subzone";
/// The label key Istio gives an endpoint's node name.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// One upstream endpoint, as a source publishes it.
///
/// Cheap to clone: every field is shared (`Arc`) or a small copy. Two endpoints are equal
/// when every field is, which is how the registry tells that a publication changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The IP address (or host name) to connect to.
    address: Arc<str>,
    /// Load-balancing weight, ≥ 1.
    weight: u32,
    /// The workload's labels (for Kubernetes, the pod's); shared between endpoints of one
    /// workload when the source interns them.
    labels: Arc<Labels>,
    /// (service port, endpoint port) pairs, from ServiceEntry endpoint `ports` or a
    /// Kubernetes target port.
    ports: Arc<[(u16, u16)]>,
    /// When set, the endpoint serves only the service ports in `ports` (Kubernetes: an
    /// EndpointSlice port exists for the service port's name); otherwise a port without a
    /// mapping is served on the service port itself (ServiceEntry semantics).
    mapped_ports_only: bool,
    /// Whether it may receive traffic.
    health: Health,
    /// Region, zone and subzone, when the source knows them.
    locality: Option<Arc<Locality>>,
    /// The node (Kubernetes `nodeName`) it runs on, when known.
    node: Option<Arc<str>>,
}

impl Endpoint {
    /// An endpoint at `address` (an IP or a host name), weight 1, no labels, listening on the
    /// service ports themselves.
    pub fn new(address: &str) -> Self {
        Endpoint {
            address: address.into(),
            weight: 1,
            labels: Arc::default(),
            ports: Arc::new([]),
            mapped_ports_only: false,
            health: Health::Healthy,
            locality: None,
            node: None,
        }
    }

    /// An endpoint at a shared `address` (no copy: a source that keeps the address can share
    /// it with the endpoints it publishes), weight 1, no labels.
    pub fn from_shared(address: Arc<str>) -> Self {
        Endpoint {
            address,
            ..Endpoint::new("")
        }
    }

    /// Replace the port mappings with a shared list (no copy: endpoints of one Kubernetes
    /// EndpointSlice share theirs). Pairs for the same service port after the first are
    /// ignored by [`port_for`](Self::port_for).
    #[must_use]
    pub fn with_shared_port_mappings(mut self, pairs: Arc<[(u16, u16)]>) -> Self {
        self.ports = pairs;
        self
    }

    /// Serve only the service ports given with [`with_port_mapping`](Self::with_port_mapping)
    /// or [`with_port_mappings`](Self::with_port_mappings): a cluster for another port does not
    /// select this endpoint (a Kubernetes endpoint whose EndpointSlice has no port of that
    /// name).
    #[must_use]
    pub fn with_mapped_ports_only(mut self) -> Self {
        self.mapped_ports_only = true;
        self
    }

    /// Replace the port mappings with `(service port, endpoint port)` pairs at once (one
    /// allocation; later pairs for the same service port are ignored).
    #[must_use]
    pub fn with_port_mappings(mut self, pairs: &[(u16, u16)]) -> Self {
        let mut ports: Vec<(u16, u16)> = Vec::with_capacity(pairs.len());
        for &(s, e) in pairs {
            if !ports.iter().any(|(p, _)| *p == s) {
                ports.push((s, e));
            }
        }
        self.ports = ports.into();
        self
    }

    /// Whether this endpoint serves `service_port` (always, unless
    /// [`with_mapped_ports_only`](Self::with_mapped_ports_only) was set and no mapping names
    /// the port).
    pub fn serves(&self, service_port: u16) -> bool {
        !self.mapped_ports_only || self.ports.iter().any(|(s, _)| *s == service_port)
    }

    /// The `(service port, endpoint port)` mappings.
    pub fn port_mappings(&self) -> &[(u16, u16)] {
        &self.ports
    }

    /// Set whether the endpoint may receive traffic (see [`Health`]).
    #[must_use]
    pub fn with_health(mut self, health: Health) -> Self {
        self.health = health;
        self
    }

    /// Whether the endpoint may receive traffic.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Whether the endpoint is [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        self.health == Health::Healthy
    }

    /// Set the locality (shared: sources intern one per zone).
    #[must_use]
    pub fn with_locality(mut self, locality: Arc<Locality>) -> Self {
        self.locality = (!locality.is_empty()).then_some(locality);
        self
    }

    /// The locality, when known.
    pub fn locality(&self) -> Option<&Locality> {
        self.locality.as_deref()
    }

    /// Set the node name (shared: sources intern one per node).
    #[must_use]
    pub fn with_node_name(mut self, node: Arc<str>) -> Self {
        self.node = (!node.is_empty()).then_some(node);
        self
    }

    /// The node the endpoint runs on, when known.
    pub fn node_name(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Replace the labels with a shared map (no copy: endpoints of one workload can share
    /// it).
    #[must_use]
    pub fn with_shared_labels(mut self, labels: Arc<Labels>) -> Self {
        self.labels = labels;
        self
    }

    /// The value of label `key` as Istio sees it on the endpoint: the endpoint's own label,
    /// else, for the topology keys Istio adds ([`LABEL_REGION`], [`LABEL_ZONE`],
    /// [`LABEL_SUBZONE`], [`LABEL_HOSTNAME`]), the locality or node name.
    pub fn label(&self, key: &str) -> Option<&str> {
        if let Some(v) = self.labels.get(key) {
            return Some(v);
        }
        let loc = self.locality.as_deref();
        match key {
            LABEL_REGION => loc.and_then(Locality::region),
            LABEL_ZONE => loc.and_then(Locality::zone),
            LABEL_SUBZONE => loc.and_then(Locality::subzone),
            LABEL_HOSTNAME => self.node.as_deref(),
            _ => None,
        }
    }

    /// Whether the endpoint carries every label of `selector` (a subset's labels), the
    /// topology labels of [`label`](Self::label) included.
    pub fn matches(&self, selector: &Labels) -> bool {
        selector.iter().all(|(k, v)| self.label(k) == Some(v))
    }

    /// Traffic for `service_port` goes to `endpoint_port` on this endpoint.
    #[must_use]
    pub fn with_port_mapping(mut self, service_port: u16, endpoint_port: u16) -> Self {
        let mut ports: Vec<(u16, u16)> = self
            .ports
            .iter()
            .copied()
            .filter(|(s, _)| *s != service_port)
            .collect();
        ports.push((service_port, endpoint_port));
        self.ports = ports.into();
        self
    }

    /// The port to connect to for a request to `service_port`.
    pub fn port_for(&self, service_port: u16) -> u16 {
        self.ports
            .iter()
            .find(|(s, _)| *s == service_port)
            .map_or(service_port, |(_, e)| *e)
    }

    /// Set the load-balancing weight (0 is treated as 1, as Envoy does for missing weights).
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// Add a label.
    #[must_use]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        Arc::make_mut(&mut self.labels).insert(key.to_owned(), value.to_owned());
        self
    }

    /// Replace the labels.
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = Arc::new(labels);
        self
    }

    /// The address to connect to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The load-balancing weight (≥ 1).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The endpoint's labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
}

/// Where a source publishes endpoints: the whole list of a host at a time.
pub trait EndpointSink {
    /// `host` (an FQDN, lower case) now has exactly `endpoints` (possibly none).
    fn set_endpoints(&mut self, host: &str, endpoints: Vec<Endpoint>);
    /// The source no longer knows `host`: its clusters fall back to what other sources say, or
    /// to resolving the host name.
    fn remove_host(&mut self, host: &str);
}

/// A source of endpoints per host (FQDN): it publishes what it knows into a sink, and again
/// whenever that changes.
pub trait EndpointSource {
    /// Publishes the source's current endpoints of every host it knows into `sink`.
    fn publish(&self, sink: &mut dyn EndpointSink);
}

/// A fixed registry of endpoints per host, e.g. from `ServiceEntry` `STATIC` endpoints.
#[derive(Debug, Clone, Default)]
pub struct StaticEndpoints {
    by_host: FxHashMap<Box<str>, Arc<[Endpoint]>>,
}

impl StaticEndpoints {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an endpoint for `host` (lowercased).
    pub fn add(&mut self, host: &str, endpoint: Endpoint) {
        let host = host.to_ascii_lowercase().into_boxed_str();
        let mut list: Vec<Endpoint> = self
            .by_host
            .get(&host)
            .map(|l| l.to_vec())
            .unwrap_or_default();
        list.push(endpoint);
        self.by_host.insert(host, list.into());
    }

    /// Number of hosts with endpoints.
    pub fn hosts(&self) -> usize {
        self.by_host.len()
    }

    /// The endpoints of `host`, or `None` if the registry knows nothing about it.
    pub fn endpoints(&self, host: &str) -> Option<&[Endpoint]> {
        self.by_host.get(host).map(|l| &l[..])
    }

    /// The endpoints of one cluster.
    pub fn select(&self, selector: &EndpointSelector) -> ClusterEndpoints {
        selector.select(self.endpoints(selector.host()))
    }

    /// Every host with its endpoints, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Endpoint])> + '_ {
        self.by_host.iter().map(|(h, l)| (&**h, &l[..]))
    }
}

impl EndpointSource for StaticEndpoints {
    fn publish(&self, sink: &mut dyn EndpointSink) {
        for (host, list) in &self.by_host {
            sink.set_endpoints(host, list.to_vec());
        }
    }
}

impl EndpointSink for StaticEndpoints {
    fn set_endpoints(&mut self, host: &str, endpoints: Vec<Endpoint>) {
        self.by_host
            .insert(host.to_ascii_lowercase().into(), endpoints.into());
    }

    fn remove_host(&mut self, host: &str) {
        self.by_host.remove(host);
    }
}

/// Whether `labels` carries every entry of `selector` with the same value (mesh-model's
/// [`mesh_model::labels_match`], re-exported here).
pub use mesh_model::labels_match;

/// What one cluster takes from its host's endpoints: those carrying the subset's labels (all
/// of them without a subset), each at its port for the cluster's service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSelector {
    host: Arc<str>,
    port: u16,
    subset: Subset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subset {
    /// Every endpoint of the host.
    All,
    /// The endpoints carrying these labels.
    Labels(Arc<Labels>),
    /// A subset no DestinationRule declares: nothing.
    Undefined,
}

impl EndpointSelector {
    /// Every endpoint of `host`, at their port for service port `port`.
    pub fn new(host: &str, port: u16) -> Self {
        EndpointSelector {
            host: host.to_ascii_lowercase().into(),
            port,
            subset: Subset::All,
        }
    }

    /// Only the endpoints carrying every label of `labels` (a subset's selector).
    #[must_use]
    pub fn with_subset(mut self, labels: Labels) -> Self {
        self.subset = Subset::Labels(Arc::new(labels));
        self
    }

    /// Nothing: the selector of a subset no DestinationRule declares.
    #[must_use]
    pub fn undefined_subset(mut self) -> Self {
        self.subset = Subset::Undefined;
        self
    }

    /// The host whose endpoints are selected.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The service port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The subset's labels, if the cluster is a defined subset.
    pub fn subset(&self) -> Option<&Labels> {
        match &self.subset {
            Subset::Labels(l) => Some(l),
            Subset::All | Subset::Undefined => None,
        }
    }

    /// The cluster's endpoints from its host's (`None`: no source knows the host): the
    /// healthy ones that serve the cluster's port and carry the subset's labels. An
    /// unknown host resolves by name when the cluster is not a subset (a subset of an
    /// unknown host has no endpoints: Envoy's `no healthy upstream`). Endpoints whose address
    /// does not make a valid `host:port` authority (Unix sockets, for example) are left out.
    pub fn select(&self, endpoints: Option<&[Endpoint]>) -> ClusterEndpoints {
        let Some(all) = endpoints else {
            let resolve = match self.subset {
                Subset::All => Authority::try_from(format!("{}:{}", self.host, self.port)).ok(),
                Subset::Labels(_) | Subset::Undefined => None,
            };
            return ClusterEndpoints {
                endpoints: Arc::new([]),
                resolve,
            };
        };
        let selected = all
            .iter()
            .filter(|e| e.is_healthy() && e.serves(self.port))
            .filter(|e| match &self.subset {
                Subset::All => true,
                Subset::Labels(s) => e.matches(s),
                Subset::Undefined => false,
            })
            .filter_map(|e| ClusterEndpoint::new(e.clone(), e.port_for(self.port)))
            .collect();
        ClusterEndpoints {
            endpoints: selected,
            resolve: None,
        }
    }
}

/// One endpoint of a cluster: the published endpoint at the port the cluster uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEndpoint {
    endpoint: Endpoint,
    port: u16,
    authority: Authority,
}

impl ClusterEndpoint {
    /// `endpoint` at `port`, or `None` when the address does not make a valid authority.
    pub fn new(endpoint: Endpoint, port: u16) -> Option<Self> {
        let address = endpoint.address();
        let text = if address.contains(':') && !address.starts_with('[') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        };
        let authority = Authority::try_from(text).ok()?;
        Some(ClusterEndpoint {
            endpoint,
            port,
            authority,
        })
    }

    /// The endpoint as published.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The address (without port).
    pub fn address(&self) -> &str {
        self.endpoint.address()
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `address:port` (IPv6 in brackets): where to connect, and the endpoint's identity for
    /// load-balancer, outlier-detection and statistics state.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The load-balancing weight.
    pub fn weight(&self) -> u32 {
        self.endpoint.weight()
    }

    /// The endpoint's labels.
    pub fn labels(&self) -> &Labels {
        self.endpoint.labels()
    }
}

/// The endpoints of one cluster, from [`EndpointSelector::select`]. Positions `0..len()` are
/// the indexes load balancers, in-flight counts and ejected sets use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterEndpoints {
    endpoints: Arc<[ClusterEndpoint]>,
    /// Set when no source knows the host and the cluster is not a subset: connect to the host
    /// name, resolved as usual.
    resolve: Option<Authority>,
}

impl ClusterEndpoints {
    /// Endpoints given directly (tests, tools).
    pub fn from_endpoints(endpoints: Vec<ClusterEndpoint>) -> Self {
        ClusterEndpoints {
            endpoints: endpoints.into(),
            resolve: None,
        }
    }

    /// Number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there is no endpoint (with [`resolve`](Self::resolve) `None`: Envoy's `no
    /// healthy upstream`).
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoint at position `i`.
    pub fn get(&self, i: usize) -> Option<&ClusterEndpoint> {
        self.endpoints.get(i)
    }

    /// The endpoints in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ClusterEndpoint> {
        self.endpoints.iter()
    }

    /// The endpoints as a slice.
    pub fn as_slice(&self) -> &[ClusterEndpoint] {
        &self.endpoints
    }

    /// `host:port` to connect to when no source knows the host and the cluster is not a
    /// subset.
    pub fn resolve(&self) -> Option<&Authority> {
        self.resolve.as_ref()
    }

    /// The position of the endpoint at `authority`, if it is in the set.
    pub fn position(&self, authority: &str) -> Option<usize> {
        self.endpoints
            .iter()
            .position(|e| e.authority.as_str() == authority)
    }
}

impl ClusterEndpoints {
    /// Chooses an endpoint with `lb` (the cluster's
    /// [`ClusterPolicy::load_balancer`](crate::ClusterPolicy::load_balancer)): see
    /// [`lb::pick`](crate::lb::pick) for `state`, `in_flight`, `ejected`, `roll` and `hash`.
    pub fn pick<E: EjectedSet + ?Sized>(
        &self,
        lb: &LoadBalancer,
        state: &mut LbState,
        in_flight: &[u32],
        ejected: &E,
        roll: u64,
        hash: Option<u64>,
    ) -> EndpointChoice<'_> {
        if self.endpoints.is_empty() {
            if let Some(a) = &self.resolve {
                return EndpointChoice::Resolve(a);
            }
        }
        match crate::lb::pick(lb, &self.endpoints, state, in_flight, ejected, roll, hash) {
            Some(index) => match self.endpoints.get(index) {
                Some(endpoint) => EndpointChoice::Endpoint { index, endpoint },
                None => EndpointChoice::NoHealthyUpstream,
            },
            None => EndpointChoice::NoHealthyUpstream,
        }
    }
}

/// The endpoint chosen by [`ClusterEndpoints::pick`].
#[derive(Debug, Clone, Copy)]
pub enum EndpointChoice<'a> {
    /// Connect to this endpoint.
    Endpoint {
        /// Position in the cluster's endpoints (the index for in-flight counts and ejection).
        index: usize,
        /// The endpoint.
        endpoint: &'a ClusterEndpoint,
    },
    /// No source knows the host: connect to this `host:port`, resolved as usual.
    Resolve(&'a Authority),
    /// Every endpoint is ejected, or none carries the subset's labels: Envoy answers 503
    /// `no healthy upstream` (flag `UH`).
    NoHealthyUpstream,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "api.default.svc.cluster.local";

    fn addresses(eps: &ClusterEndpoints) -> Vec<&str> {
        eps.iter().map(ClusterEndpoint::address).collect()
    }

    #[test]
    fn unhealthy_endpoints_are_never_selected() {
        let all = [
            Endpoint::new("10.0.0.1"),
            Endpoint::new("10.0.0.2").with_health(Health::Unhealthy),
        ];
        let eps = EndpointSelector::new(HOST, 80).select(Some(&all));
        assert_eq!(addresses(&eps), ["10.0.0.1"]);
        // A host whose endpoints are all unhealthy has none (no fallback to its name).
        let eps = EndpointSelector::new(HOST, 80).select(Some(&all[1..]));
        assert!(eps.is_empty());
        assert!(eps.resolve().is_none());
    }

    #[test]
    fn mapped_ports_only_serves_the_mapped_service_ports() {
        let all = [
            Endpoint::new("10.0.0.1")
                .with_port_mappings(&[(80, 8080), (9090, 9091)])
                .with_mapped_ports_only(),
            Endpoint::new("10.0.0.2"),
        ];
        let on_80 = EndpointSelector::new(HOST, 80).select(Some(&all));
        assert_eq!(on_80.get(0).unwrap().authority(), "10.0.0.1:8080");
        assert_eq!(on_80.get(1).unwrap().authority(), "10.0.0.2:80");
        let on_81 = EndpointSelector::new(HOST, 81).select(Some(&all));
        assert_eq!(addresses(&on_81), ["10.0.0.2"]);
        assert_eq!(all[0].port_mappings(), [(80, 8080), (9090, 9091)]);
    }

    #[test]
    fn subsets_select_on_topology_labels() {
        let zone_a = Arc::new(Locality::new(Some("eu"), Some("eu-a"), None));
        let all = [
            Endpoint::new("10.0.0.1")
                .with_locality(Arc::clone(&zone_a))
                .with_node_name("node-1".into()),
            Endpoint::new("10.0.0.2").with_label(LABEL_ZONE, "eu-b"),
        ];
        let sel = |k: &str, v: &str| {
            EndpointSelector::new(HOST, 80).with_subset([(k.to_owned(), v.to_owned())].into())
        };
        assert_eq!(
            addresses(&sel(LABEL_ZONE, "eu-a").select(Some(&all))),
            ["10.0.0.1"]
        );
        assert_eq!(
            addresses(&sel(LABEL_ZONE, "eu-b").select(Some(&all))),
            ["10.0.0.2"]
        );
        assert_eq!(
            addresses(&sel(LABEL_REGION, "eu").select(Some(&all))),
            ["10.0.0.1"]
        );
        assert_eq!(
            addresses(&sel(LABEL_HOSTNAME, "node-1").select(Some(&all))),
            ["10.0.0.1"]
        );
        assert_eq!(all[0].locality().unwrap().to_string(), "eu/eu-a/");
        assert_eq!(all[0].node_name(), Some("node-1"));
        // An empty locality or node name is "unknown".
        let e = Endpoint::new("10.0.0.3")
            .with_locality(Arc::new(Locality::default()))
            .with_node_name("".into());
        assert!(e.locality().is_none() && e.node_name().is_none());
    }

    #[test]
    fn shared_labels_are_not_copied() {
        let labels = Arc::new(Labels::from([("version".to_owned(), "v1".to_owned())]));
        let a = Endpoint::new("10.0.0.1").with_shared_labels(Arc::clone(&labels));
        let b = Endpoint::new("10.0.0.2").with_shared_labels(Arc::clone(&labels));
        assert!(std::ptr::eq(a.labels(), b.labels()));
        assert_eq!(Arc::strong_count(&labels), 3);
    }
}
