//! [`RouteTable`]: the compiled, immutable route table and its per-request functions.

use mesh_model::{
    CorsPolicy, DirectResponse, Duration, FaultInjection, Headers, Percentage, Redirect,
    RetryPolicy, Rewrite,
};

use crate::cluster::{ClusterId, ClusterKey, ClusterPolicy};
use crate::decision::{Action, Passthrough, RouteDecision, Routed};
use crate::endpoints::{Endpoint, EndpointSet, EndpointSource, Labels, StaticEndpoints};
use crate::host::HostIndex;
use crate::lb::{self, EjectedSet, LbState};
use crate::matcher::MatchBlock;
use crate::weighted::Weighted;
use crate::RequestView;

/// Who is calling: the client workload the table is compiled for. Selectors
/// (`sourceLabels`, `sourceNamespace`, `gateways`), `exportTo` visibility, the DestinationRule
/// lookup order and the short host names a client may use all depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientContext {
    namespace: String,
    labels: Labels,
    gateway: String,
    root_namespace: String,
}

impl ClientContext {
    /// A sidecar-like client (gateway `mesh`) in `namespace`, without labels, with mesh root
    /// namespace `istio-system`.
    pub fn new(namespace: &str) -> Self {
        ClientContext {
            namespace: namespace.to_owned(),
            labels: Labels::new(),
            gateway: "mesh".to_owned(),
            root_namespace: "istio-system".to_owned(),
        }
    }

    /// Add a workload label.
    #[must_use]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Replace the workload labels.
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Act as gateway `namespace/name` instead of `mesh`.
    #[must_use]
    pub fn with_gateway(mut self, gateway: &str) -> Self {
        self.gateway = gateway.to_owned();
        self
    }

    /// Use another mesh root namespace than `istio-system`.
    #[must_use]
    pub fn with_root_namespace(mut self, ns: &str) -> Self {
        self.root_namespace = ns.to_owned();
        self
    }

    /// The client's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The client's workload labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
    /// The gateway the client acts as (`mesh` for a sidecar-like client).
    pub fn gateway(&self) -> &str {
        &self.gateway
    }
    /// The mesh root namespace (`istio-system`).
    pub fn root_namespace(&self) -> &str {
        &self.root_namespace
    }
}

impl Default for ClientContext {
    fn default() -> Self {
        Self::new("default")
    }
}

/// One virtual host: the routes of the VirtualService that won a host name.
#[derive(Debug)]
pub(crate) struct VirtualHost {
    pub(crate) namespace: Box<str>,
    pub(crate) name: Box<str>,
    pub(crate) routes: Vec<CompiledRoute>,
}

/// A match block kept for this client, with its index in the route's `match[]` as written.
#[derive(Debug)]
pub(crate) struct KeptBlock {
    pub(crate) index: usize,
    pub(crate) block: MatchBlock,
}

/// One `http[]` entry, compiled for this client.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) index: usize,
    pub(crate) name: Option<Box<str>>,
    /// Empty means the route has no `match` (matches everything).
    pub(crate) blocks: Vec<KeptBlock>,
    pub(crate) action: CompiledAction,
    pub(crate) rewrite: Option<Rewrite>,
    pub(crate) headers: Headers,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: RetryPolicy,
    pub(crate) fault: Option<FaultInjection>,
    pub(crate) mirrors: Vec<(CompiledDest, Percentage)>,
    pub(crate) cors: Option<CorsPolicy>,
}

#[derive(Debug)]
pub(crate) enum CompiledAction {
    Route(Weighted<CompiledDest>),
    Redirect(Redirect),
    DirectResponse(DirectResponse),
}

/// A route destination: an interned (host, subset) plus what the route adds.
#[derive(Debug, Clone)]
pub(crate) struct CompiledDest {
    pub(crate) dest: u32,
    pub(crate) port: Option<u16>,
    pub(crate) weight: u32,
    pub(crate) headers: Headers,
}

/// The policies of one (host, subset): the default one and the port-level ones.
#[derive(Debug)]
pub(crate) struct DestEntry {
    pub(crate) host: Box<str>,
    pub(crate) subset: Option<Box<str>>,
    /// Whether the subset is declared (always true without a subset).
    pub(crate) subset_known: bool,
    /// The only port of the service, when a ServiceEntry declares exactly one.
    pub(crate) single_port: Option<u16>,
    pub(crate) policy: ClusterPolicy,
    pub(crate) port_policies: Vec<(u16, ClusterPolicy)>,
    pub(crate) endpoints: DestEndpoints,
}

/// Which registered endpoints a (host, subset) has.
#[derive(Debug)]
pub(crate) enum DestEndpoints {
    /// The registry knows nothing about the host: the client resolves the name.
    Unregistered,
    /// All endpoints of the host.
    All,
    /// The positions (in the host's endpoint list) matching the subset's labels.
    Subset(Box<[u32]>),
}

/// Something the compiler left out, with the reason (shown by [`RouteTable::explain`] and
/// [`RouteTable::notes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileNote {
    /// `namespace/name` of the resource concerned.
    pub resource: String,
    /// What was left out and why.
    pub message: String,
}

impl std::fmt::Display for CompileNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.resource, self.message)
    }
}

/// A compiled, immutable route table for one client. `Send + Sync`; share it as
/// `Arc<RouteTable>` and swap the `Arc` to reload.
///
/// See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) client: ClientContext,
    pub(crate) vhosts: Vec<VirtualHost>,
    pub(crate) hosts: HostIndex<u32>,
    pub(crate) services: HostIndex<u32>,
    pub(crate) dests: Vec<DestEntry>,
    pub(crate) endpoints: StaticEndpoints,
    pub(crate) default_retry: RetryPolicy,
    pub(crate) default_policy: ClusterPolicy,
    pub(crate) notes: Vec<CompileNote>,
}

impl RouteTable {
    /// Route a request: pure, allocation-free, first matching `http[]` route wins. `roll` is a
    /// random number the caller draws; it picks among weighted destinations (Envoy's
    /// `roll % total_weight`).
    pub fn route(&self, req: &RequestView<'_>, roll: u64) -> RouteDecision<'_> {
        let Some(&vh) = self.hosts.lookup(req.authority()) else {
            return self.passthrough(req);
        };
        let vhost = &self.vhosts[vh as usize];
        for route in &vhost.routes {
            let hit = if route.blocks.is_empty() {
                Some(None)
            } else {
                route
                    .blocks
                    .iter()
                    .position(|b| b.block.matches(req))
                    .map(Some)
            };
            if let Some(block) = hit {
                return self.decide(vhost, route, block, req, roll);
            }
        }
        RouteDecision {
            table: self,
            vhost: Some(vhost),
            route: None,
            action: Action::NoRoute,
            port: req.port(),
        }
    }

    fn decide<'t>(
        &'t self,
        vhost: &'t VirtualHost,
        route: &'t CompiledRoute,
        block: Option<usize>,
        req: &RequestView<'_>,
        roll: u64,
    ) -> RouteDecision<'t> {
        let action = match &route.action {
            CompiledAction::Route(split) => {
                let (chosen, dest) = split.pick(roll);
                let routed = Routed {
                    chosen,
                    split,
                    cluster: self.cluster_for(dest, req.port()),
                    table: self,
                };
                if self.dests[dest.dest as usize].subset_known {
                    Action::Route(routed)
                } else {
                    Action::UnknownSubset(routed)
                }
            }
            CompiledAction::Redirect(r) => Action::Redirect(r),
            CompiledAction::DirectResponse(d) => Action::DirectResponse(d),
        };
        RouteDecision {
            table: self,
            vhost: Some(vhost),
            route: Some((route, block)),
            action,
            port: req.port(),
        }
    }

    fn passthrough(&self, req: &RequestView<'_>) -> RouteDecision<'_> {
        let (host, cluster) = match self.services.lookup(req.authority()) {
            Some(&d) => {
                let entry = &self.dests[d as usize];
                let port = entry.single_port.unwrap_or(req.port());
                (Some(&*entry.host), Some(ClusterId { dest: d, port }))
            }
            None => (None, None),
        };
        RouteDecision {
            table: self,
            vhost: None,
            route: None,
            action: Action::Passthrough(Passthrough { host, cluster }),
            port: req.port(),
        }
    }

    /// The cluster of a destination for a request to `port`: the destination's port if
    /// written, else the service's only port, else the port the client called (§1.6).
    pub(crate) fn cluster_for(&self, dest: &CompiledDest, port: u16) -> ClusterId {
        let entry = &self.dests[dest.dest as usize];
        ClusterId {
            dest: dest.dest,
            port: dest.port.or(entry.single_port).unwrap_or(port),
        }
    }

    /// The (host, subset, port) of a cluster.
    pub fn cluster_key(&self, cluster: ClusterId) -> ClusterKey<'_> {
        let entry = &self.dests[cluster.dest as usize];
        ClusterKey {
            host: &entry.host,
            subset: entry.subset.as_deref(),
            port: cluster.port,
        }
    }

    /// The merged DestinationRule policy of a cluster.
    pub fn policy(&self, cluster: ClusterId) -> &ClusterPolicy {
        let entry = &self.dests[cluster.dest as usize];
        entry
            .port_policies
            .iter()
            .find(|(p, _)| *p == cluster.port)
            .map_or(&entry.policy, |(_, p)| p)
    }

    /// The endpoints a cluster can use from the table's registry (ServiceEntry `STATIC`
    /// endpoints).
    pub fn endpoints(&self, cluster: ClusterId) -> ClusterEndpoints<'_> {
        let entry = &self.dests[cluster.dest as usize];
        let all = self.endpoints.endpoints(&entry.host).unwrap_or(&[]);
        match &entry.endpoints {
            DestEndpoints::Unregistered => ClusterEndpoints::Resolve {
                host: &entry.host,
                port: cluster.port,
            },
            DestEndpoints::All => ClusterEndpoints::Set(EndpointSet::all(all)),
            DestEndpoints::Subset(sel) => ClusterEndpoints::Set(EndpointSet::subset(all, sel)),
        }
    }

    /// Choose an endpoint of `cluster` with the cluster's load balancer. `state` is the
    /// caller's per-cluster [`LbState`]; `in_flight` and `ejected` are indexed by position in
    /// the cluster's [`EndpointSet`]; `hash` is [`RouteDecision::hash_key`].
    pub fn pick_endpoint<E: EjectedSet + ?Sized>(
        &self,
        cluster: ClusterId,
        hash: Option<u64>,
        state: &mut LbState,
        in_flight: &[u32],
        ejected: &E,
        roll: u64,
    ) -> EndpointChoice<'_> {
        match self.endpoints(cluster) {
            ClusterEndpoints::Resolve { host, port } => EndpointChoice::Resolve { host, port },
            ClusterEndpoints::Set(set) => {
                let lb = self.policy(cluster).load_balancer();
                match lb::pick(&lb, &set, state, in_flight, ejected, roll, hash) {
                    Some(index) => match set.get(index) {
                        Some(endpoint) => EndpointChoice::Endpoint {
                            index,
                            endpoint,
                            port: endpoint.port_for(cluster.port),
                        },
                        None => EndpointChoice::NoHealthyUpstream,
                    },
                    None => EndpointChoice::NoHealthyUpstream,
                }
            }
        }
    }

    /// Number of interned (host, subset) pairs; [`ClusterId::destination_index`] is below this.
    pub fn destination_count(&self) -> usize {
        self.dests.len()
    }

    /// The client the table was compiled for.
    pub fn client(&self) -> &ClientContext {
        &self.client
    }

    /// What the compiler left out and why (duplicate hosts, unreachable routes, blocks whose
    /// selectors exclude this client, invisible resources).
    pub fn notes(&self) -> &[CompileNote] {
        &self.notes
    }

    /// The endpoint registry filled from ServiceEntry `STATIC` endpoints.
    pub fn registry(&self) -> &StaticEndpoints {
        &self.endpoints
    }

    pub(crate) fn default_retry(&self) -> &RetryPolicy {
        &self.default_retry
    }

    pub(crate) fn default_policy(&self) -> &ClusterPolicy {
        &self.default_policy
    }

    pub(crate) fn dest_host(&self, d: u32) -> &str {
        &self.dests[d as usize].host
    }

    pub(crate) fn dest_subset(&self, d: u32) -> Option<&str> {
        self.dests[d as usize].subset.as_deref()
    }

    pub(crate) fn dest_subset_known(&self, d: u32) -> bool {
        self.dests[d as usize].subset_known
    }
}

/// The endpoints of a cluster, from [`RouteTable::endpoints`].
#[derive(Debug, Clone, Copy)]
pub enum ClusterEndpoints<'t> {
    /// The registry has no endpoints for the host (and the destination names no subset, or
    /// the host is not registered at all): connect to the host name, resolved as usual.
    Resolve {
        /// Host name to resolve.
        host: &'t str,
        /// Port to connect to.
        port: u16,
    },
    /// Registered endpoints (possibly none: a subset whose labels no endpoint carries).
    Set(EndpointSet<'t>),
}

/// The endpoint chosen by [`RouteTable::pick_endpoint`].
#[derive(Debug, Clone, Copy)]
pub enum EndpointChoice<'t> {
    /// Connect to this endpoint.
    Endpoint {
        /// Position in the cluster's endpoint set (the index for in-flight counts and
        /// ejection).
        index: usize,
        /// The endpoint.
        endpoint: &'t Endpoint,
        /// The port to connect to (the endpoint's mapping of the service port, or the service
        /// port itself).
        port: u16,
    },
    /// No registered endpoints: connect to the host name.
    Resolve {
        /// Host name to resolve.
        host: &'t str,
        /// Port to connect to.
        port: u16,
    },
    /// Every endpoint is ejected, or the subset matches no endpoint: Envoy answers 503
    /// `no healthy upstream` (flag `UH`).
    NoHealthyUpstream,
}
