//! Read-only views of a compiled [`RouteTable`]: what it kept for its client, in the order it
//! keeps it.
//!
//! [`RouteTable::route`] answers for one request. Tools that translate the whole table into
//! another form (`meshctl envoy` writes the Envoy bootstrap istiod would write) need the same
//! decisions for every route at once: which VirtualService won each host, which routes and
//! match blocks survived the client's selectors and the first catch-all, the cluster of each
//! destination and mirror, and, through [`RouteTable::policy`], each cluster's merged
//! DestinationRule policy. These views give exactly that, so no tool compiles the configuration
//! a second time.
//!
//! Everything else about a route (its match conditions, rewrite, header operations, retries,
//! timeout, fault) is as written: read it from the model's `http[]` entry, found by
//! [`VirtualHostView::id`] and [`RouteView::index`].
//!
//! ```
//! use mesh_routing::{ActionView, ClientContext, RouteTable};
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - match: [{sourceLabels: {app: frontend}}]
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
//!   trafficPolicy: {loadBalancer: {simple: RANDOM}}
//!   subsets:
//!   - {name: v1, labels: {version: v1}}
//!   - {name: v2, labels: {version: v2}}
//!   - {name: v3, labels: {version: v3}}
//! "#;
//! let config = mesh_model::load_str("reviews.yaml", yaml).into_result().expect("valid config");
//! let table = RouteTable::compile(&config, &ClientContext::new("default")).expect("compiles");
//!
//! let vh = table.virtual_hosts().next().expect("one virtual host");
//! assert_eq!(vh.id().to_string(), "default/reviews");
//! assert!(vh.serves("reviews.default.svc.cluster.local"));
//! // The frontend-only route does not exist for this client: only http[1] is left.
//! let routes: Vec<_> = vh.routes().collect();
//! assert_eq!(routes.len(), 1);
//! assert_eq!(routes[0].index(), 1);
//! let ActionView::Route(split) = routes[0].action() else { panic!("not a route") };
//! let clusters: Vec<String> = split
//!     .destinations()
//!     .map(|d| table.cluster_key(d.cluster_on(9080)).to_string())
//!     .collect();
//! assert_eq!(clusters, [
//!     "outbound|9080|v1|reviews.default.svc.cluster.local",
//!     "outbound|9080|v3|reviews.default.svc.cluster.local",
//! ]);
//! let v1 = split.destinations().next().unwrap().cluster_on(9080);
//! assert!(table.policy(v1).load_balancer_settings().is_some()); // RANDOM, from the DestinationRule
//! ```

use mesh_model::Redirect;
use mesh_resilience::MirrorPolicy;

use crate::cluster::{ClusterId, ClusterKey};
use crate::compiled::{CompiledAction, CompiledDest, CompiledRoute, RouteTable, VirtualHost};
use crate::decision::{DestinationRef, VirtualServiceId};
use crate::host::HostMatch;
use crate::weighted::Weighted;
use crate::DirectResponse;

impl RouteTable {
    /// Every virtual host of the table, in precedence order: one per VirtualService that
    /// applies to the client and won at least one of its hosts.
    pub fn virtual_hosts(&self) -> impl ExactSizeIterator<Item = VirtualHostView<'_>> + '_ {
        self.vhosts
            .iter()
            .enumerate()
            .map(move |(index, vhost)| VirtualHostView {
                table: self,
                vhost,
                index,
            })
    }

    /// The virtual host [`route`](Self::route) picks for a request to `authority` (`host` or
    /// `host:port`, any case): exact name, then the longest wildcard, then `*`. `None` means
    /// such a request is a [passthrough](crate::Action::Passthrough).
    pub fn virtual_host_for(&self, authority: &str) -> Option<VirtualHostView<'_>> {
        let &index = self.hosts.lookup(authority)?;
        let index = index as usize;
        Some(VirtualHostView {
            table: self,
            vhost: &self.vhosts[index],
            index,
        })
    }

    /// The cluster `key` names, if the table knows its (host, subset) pair: a route
    /// destination, a mirror, or a known service (ServiceEntry or DestinationRule host) without
    /// subset. Any port may be asked for; the policy is the one for that port.
    pub fn find_cluster(&self, key: ClusterKey<'_>) -> Option<ClusterId> {
        let dest = self
            .dests
            .iter()
            .position(|e| *e.host == *key.host && e.subset.as_deref() == key.subset)?;
        Some(ClusterId {
            dest: u32::try_from(dest).ok()?,
            port: key.port,
        })
    }
}

/// One virtual host of a table: the routes of the VirtualService that won its hosts.
#[derive(Debug, Clone, Copy)]
pub struct VirtualHostView<'t> {
    table: &'t RouteTable,
    vhost: &'t VirtualHost,
    index: usize,
}

impl<'t> VirtualHostView<'t> {
    /// The VirtualService.
    pub fn id(&self) -> VirtualServiceId<'t> {
        VirtualServiceId {
            namespace: &self.vhost.namespace,
            name: &self.vhost.name,
        }
    }

    /// Whether the table holds an entry for `name` itself that leads here: an exact host name
    /// (a VirtualService host as an FQDN, or a short form such as `reviews` or
    /// `reviews.default`), the same wildcard (`*.example.com`), or `*`. `false` when another
    /// VirtualService won the name, and for names only a broader wildcard covers.
    pub fn serves(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        match self.table.hosts.lookup_with_pattern(&name) {
            Some((&i, pattern)) if i as usize == self.index => match pattern {
                HostMatch::Exact(k) => k == name,
                HostMatch::Suffix(s) => name.strip_prefix('*') == Some(s),
                HostMatch::Any => name == "*",
            },
            _ => false,
        }
    }

    /// The routes kept for the client, in `http[]` order: those with at least one match block
    /// whose `sourceLabels`, `sourceNamespace` and `gateways` fit the client (or no `match`),
    /// up to and including the first catch-all.
    pub fn routes(&self) -> impl ExactSizeIterator<Item = RouteView<'t>> + 't {
        let table = self.table;
        self.vhost
            .routes
            .iter()
            .map(move |route| RouteView { table, route })
    }
}

/// One `http[]` entry as the table kept it for the client.
#[derive(Debug, Clone, Copy)]
pub struct RouteView<'t> {
    table: &'t RouteTable,
    route: &'t CompiledRoute,
}

impl<'t> RouteView<'t> {
    /// Index in the VirtualService's `http[]` list, as written.
    pub fn index(&self) -> usize {
        self.route.index
    }

    /// The route's `name`, if any.
    pub fn name(&self) -> Option<&'t str> {
        self.route.name.as_deref()
    }

    /// Indexes in the route's `match[]`, as written, of the match blocks kept for the client,
    /// in order (blocks after a catch-all block are dropped too). Empty for a route without
    /// `match`, which matches every request.
    pub fn match_indexes(&self) -> impl ExactSizeIterator<Item = usize> + 't {
        self.route.blocks.iter().map(|b| b.index)
    }

    /// What the route does.
    pub fn action(&self) -> ActionView<'t> {
        match &self.route.action {
            CompiledAction::Route(split) => ActionView::Route(SplitView {
                table: self.table,
                split,
            }),
            CompiledAction::Redirect(r) => ActionView::Redirect(r),
            CompiledAction::DirectResponse(d) => ActionView::DirectResponse(d),
        }
    }

    /// The mirror targets, in config order.
    pub fn mirrors(&self) -> impl ExactSizeIterator<Item = MirrorView<'t>> + 't {
        let table = self.table;
        self.route
            .mirrors
            .iter()
            .map(move |(dest, policy)| MirrorView {
                destination: DestinationRef { dest, table },
                policy: *policy,
            })
    }
}

/// What a route does, as compiled.
#[derive(Debug, Clone, Copy)]
pub enum ActionView<'t> {
    /// Forward to weighted destinations.
    Route(SplitView<'t>),
    /// Answer with a redirect.
    Redirect(&'t Redirect),
    /// Answer with a fixed response.
    DirectResponse(&'t DirectResponse),
}

/// The weighted destinations of a route: zero weights dropped, a lone destination taking all
/// traffic.
#[derive(Debug, Clone, Copy)]
pub struct SplitView<'t> {
    table: &'t RouteTable,
    split: &'t Weighted<CompiledDest>,
}

impl<'t> SplitView<'t> {
    /// The destinations, in config order.
    pub fn destinations(&self) -> impl ExactSizeIterator<Item = DestinationRef<'t>> + 't {
        let table = self.table;
        self.split
            .iter()
            .map(move |(dest, _)| DestinationRef { dest, table })
    }

    /// Number of destinations (at least one).
    pub fn len(&self) -> usize {
        self.split.len()
    }

    /// Always `false`: a route has at least one destination with a weight above zero.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A mirror target of a route, before any port is known.
#[derive(Debug, Clone, Copy)]
pub struct MirrorView<'t> {
    /// Where copies go; its cluster for a port is [`DestinationRef::cluster_on`].
    pub destination: DestinationRef<'t>,
    /// Which requests are mirrored.
    pub policy: MirrorPolicy,
}

impl DestinationRef<'_> {
    /// The cluster a request to service port `port` goes to through this destination: the
    /// destination's written port, else the service's only port (from its ServiceEntry), else
    /// `port` (istio-semantics §1.6). The same cluster [`RouteTable::route`] picks.
    pub fn cluster_on(&self, port: u16) -> ClusterId {
        self.table.cluster_for(self.dest, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, ClientContext, RequestView};

    const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api, "*.example.com"]
  http:
  - name: frontend
    match:
    - sourceLabels: {app: frontend}
      headers: {x-canary: {exact: "1"}}
    - uri: {prefix: /v2}
    route: [{destination: {host: api, subset: v2}}]
  - name: moved
    match: [{uri: {prefix: /old}}, {uri: {prefix: /}}, {uri: {exact: /never}}]
    redirect: {uri: /new}
  - name: unreachable
    directResponse: {status: 418}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second, namespace: default}
spec:
  hosts: [api, other]
  http:
  - route:
    - {destination: {host: api, subset: v1, port: {number: 8080}}, weight: 3}
    - {destination: {host: api, subset: v2}, weight: 0}
    - {destination: {host: api, subset: v9}, weight: 1}
    mirror: {host: other}
    mirrorPercentage: {value: 5}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#;

    fn table(client: &ClientContext) -> RouteTable {
        let config = mesh_model::load_str("c.yaml", CONFIG).into_config();
        RouteTable::compile(&config, client).expect("compiles")
    }

    #[test]
    fn virtual_hosts_say_which_names_they_won() {
        let t = table(&ClientContext::new("default"));
        let ids: Vec<String> = t.virtual_hosts().map(|v| v.id().to_string()).collect();
        assert_eq!(ids, ["default/api", "default/second"]);
        let (api, second) = (
            t.virtual_hosts().next().unwrap(),
            t.virtual_hosts().nth(1).unwrap(),
        );
        for name in [
            "api.default.svc.cluster.local",
            "API",
            "api.default",
            "*.example.com",
        ] {
            assert!(api.serves(name), "{name}");
            assert!(!second.serves(name), "{name}");
        }
        // Covered by the wildcard, but not an entry of its own.
        assert!(!api.serves("www.example.com"));
        assert!(second.serves("other.default.svc.cluster.local"));
        assert!(!second.serves("api"), "the first VirtualService won `api`");
        assert_eq!(
            t.virtual_host_for("www.example.com:80")
                .map(|v| v.id().name),
            Some("api")
        );
        assert!(t.virtual_host_for("unknown").is_none());
    }

    #[test]
    fn routes_and_blocks_are_those_kept_for_the_client() {
        let kept = |client: &ClientContext| -> Vec<(usize, Vec<usize>)> {
            let t = table(client);
            let api = t.virtual_hosts().next().unwrap();
            api.routes()
                .map(|r| (r.index(), r.match_indexes().collect()))
                .collect()
        };
        // A frontend client keeps both blocks of http[0]; http[1] stops at its catch-all
        // block, and http[2] comes after a catch-all.
        let frontend = ClientContext::new("default").with_label("app", "frontend");
        assert_eq!(kept(&frontend), [(0, vec![0, 1]), (1, vec![0, 1])]);
        assert_eq!(
            kept(&ClientContext::new("default")),
            [(0, vec![1]), (1, vec![0, 1])]
        );
        let t = table(&frontend);
        let moved = t.virtual_hosts().next().unwrap().routes().nth(1).unwrap();
        assert_eq!(moved.name(), Some("moved"));
        assert!(matches!(moved.action(), ActionView::Redirect(r) if r.uri() == Some("/new")));
    }

    #[test]
    fn destinations_and_mirrors_name_the_clusters_the_router_picks() {
        let t = table(&ClientContext::new("default"));
        let second = t.virtual_hosts().nth(1).unwrap();
        let route = second.routes().next().unwrap();
        let ActionView::Route(split) = route.action() else {
            panic!("not a route")
        };
        // The zero weight is dropped; the written port wins over the request's.
        assert_eq!(split.len(), 2);
        let names: Vec<String> = split
            .destinations()
            .map(|d| t.cluster_key(d.cluster_on(9090)).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "outbound|8080|v1|api.default.svc.cluster.local",
                "outbound|9090|v9|api.default.svc.cluster.local",
            ]
        );
        let unknown: Vec<bool> = split
            .destinations()
            .map(|d| d.is_unknown_subset())
            .collect();
        assert_eq!(unknown, [false, true]);
        let mirror = route.mirrors().next().unwrap();
        assert_eq!(mirror.policy.percentage().value(), 5.0);
        assert_eq!(
            t.cluster_key(mirror.destination.cluster_on(9090))
                .to_string(),
            "outbound|9090||other.default.svc.cluster.local"
        );
        // The router agrees, roll by roll.
        let headers = http::HeaderMap::new();
        let view = RequestView::new("GET", "other:9090", "/", &headers);
        for (roll, want) in [(0, 0), (2, 0), (3, 1)] {
            let (Action::Route(r) | Action::UnknownSubset(r)) = *t.route(&view, roll).action()
            else {
                panic!("not routed")
            };
            let d = split.destinations().nth(want).unwrap();
            assert_eq!(r.cluster(), d.cluster_on(9090), "roll {roll}");
        }
    }

    #[test]
    fn clusters_are_found_by_name_with_their_policy() {
        let t = table(&ClientContext::new("default"));
        let key = |subset, port| ClusterKey {
            host: "api.default.svc.cluster.local",
            subset,
            port,
        };
        let v1 = t
            .find_cluster(key(Some("v1"), 8080))
            .expect("v1 is routed to");
        assert_eq!(t.cluster_key(v1), key(Some("v1"), 8080));
        assert_eq!(
            t.policy(v1).source(),
            Some("default/api"),
            "the DestinationRule of the host"
        );
        let plain = t.find_cluster(key(None, 80)).expect("a known service");
        assert_eq!(plain.port(), 80);
        assert!(t.find_cluster(key(Some("v7"), 8080)).is_none());
    }
}
