//! [`RouteTable::route`] and the table's per-cluster accessors.

use crate::client::ClientContext;
use crate::cluster::{ClusterId, ClusterKey, ClusterName, ClusterPolicy};
use crate::compiled::{
    CompileNote, CompiledAction, CompiledDest, CompiledRoute, RouteTable, VirtualHost,
};
use crate::decision::{Action, Passthrough, RouteDecision, Routed};
use crate::endpoints::{EndpointSelector, StaticEndpoints};
use crate::key::NONE;
use crate::request::QueryIndex;
use crate::RequestView;

/// Bytes of query string the `queryParams` tests of one virtual host may scan before the
/// query is indexed instead (once, then a binary search per test).
const QUERY_SCAN_BUDGET: usize = 4096;

impl RouteTable {
    /// Route a request: pure, first matching `http[]` route wins. `roll` is a random number
    /// the caller draws; it picks among weighted destinations (Envoy's `roll % total_weight`).
    ///
    /// Allocation-free, except for one case: when the virtual host's `queryParams` tests
    /// would together scan more than 4 KiB of query string, the query is split and sorted
    /// once (one allocation) and each test is a binary search. A decision therefore costs at
    /// most O(q log q) for a query of q parameters plus O(log q) per `queryParams` test, where
    /// Envoy (and a plain scan) costs the query's length for every test.
    pub fn route(&self, req: &RequestView<'_>, roll: u64) -> RouteDecision<'_> {
        let Some(&vh) = self.hosts.lookup_request(req.authority(), req.host()) else {
            return self.passthrough(req);
        };
        let vhost = &self.vhosts[vh as usize];
        let at = |route: usize| (vh, route as u32);
        let index;
        let indexed;
        let req = match req.query() {
            Some(q) if vhost.query_tests.saturating_mul(q.len()) > QUERY_SCAN_BUDGET => {
                index = QueryIndex::new(q);
                indexed = req.with_query_index(&index);
                &indexed
            }
            _ => req,
        };
        for (i, route) in vhost.routes.iter().enumerate() {
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
                return self.decide(vhost, (route, block), at(i), req, roll);
            }
        }
        RouteDecision {
            table: self,
            vhost: Some(vhost),
            route: None,
            action: Action::NoRoute,
            port: req.port(),
            at: (vh, NONE),
        }
    }

    fn decide<'t>(
        &'t self,
        vhost: &'t VirtualHost,
        (route, block): (&'t CompiledRoute, Option<usize>),
        at: (u32, u32),
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
            at,
        }
    }

    fn passthrough(&self, req: &RequestView<'_>) -> RouteDecision<'_> {
        let (host, cluster) = match self.services.lookup_request(req.authority(), req.host()) {
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
            at: (NONE, NONE),
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

    /// The identity of a cluster that outlives this table (to carry per-cluster state over a
    /// reload).
    pub fn cluster_name(&self, cluster: ClusterId) -> ClusterName {
        self.cluster_key(cluster).to_name()
    }

    /// The merged DestinationRule policy of a cluster (the workspace's one DestinationRule
    /// lookup and merge).
    pub fn policy(&self, cluster: ClusterId) -> &ClusterPolicy {
        let entry = &self.dests[cluster.dest as usize];
        entry
            .port_policies
            .iter()
            .find(|(p, _)| *p == cluster.port)
            .map_or(&entry.policy, |(_, p)| p)
    }

    /// What the cluster takes from its host's endpoints: the subset's labels and the service
    /// port. An undefined subset selects nothing.
    pub fn selector(&self, cluster: ClusterId) -> EndpointSelector {
        let entry = &self.dests[cluster.dest as usize];
        let selector = EndpointSelector::new(&entry.host, cluster.port);
        match (&entry.subset, &entry.subset_labels) {
            (None, _) => selector,
            (Some(_), Some(labels)) => selector.with_subset(labels.clone()),
            (Some(_), None) => selector.undefined_subset(),
        }
    }

    /// Whether the cluster's subset is declared by a DestinationRule (always true without a
    /// subset).
    pub fn is_subset_known(&self, cluster: ClusterId) -> bool {
        self.dests[cluster.dest as usize].subset_known
    }

    /// The endpoints of ServiceEntry `STATIC` entries, per host: the first
    /// [`EndpointSource`](crate::endpoints::EndpointSource) a driver publishes.
    pub fn static_endpoints(&self) -> &StaticEndpoints {
        &self.static_endpoints
    }

    /// Every cluster the table's routes, mirrors and known services name, on the ports known
    /// at compile time (a destination port, a ServiceEntry's only port), once each. Clusters
    /// whose port comes from the request are not listed.
    pub fn known_clusters(&self) -> Vec<ClusterId> {
        let mut out: Vec<ClusterId> = Vec::new();
        let mut push = |c: ClusterId| {
            if !out.contains(&c) {
                out.push(c);
            }
        };
        for vh in &self.vhosts {
            for r in &vh.routes {
                let dests: Box<dyn Iterator<Item = &CompiledDest>> = match &r.action {
                    CompiledAction::Route(split) => Box::new(split.iter().map(|(d, _)| d)),
                    _ => Box::new(std::iter::empty()),
                };
                for d in dests.chain(r.mirrors.iter().map(|(d, _)| d)) {
                    let entry = &self.dests[d.dest as usize];
                    if let Some(port) = d.port.or(entry.single_port) {
                        push(ClusterId { dest: d.dest, port });
                    }
                }
            }
        }
        for (d, entry) in self.dests.iter().enumerate() {
            if let (Some(port), Ok(dest)) = (entry.single_port, u32::try_from(d)) {
                push(ClusterId { dest, port });
            }
        }
        out
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
