//! `meshctl envoy`: the Envoy bootstrap istiod would give a sidecar for this configuration.
//!
//! The translation follows what istiod writes for an outbound sidecar (istio-semantics.md,
//! dataplane-semantics.md §9): one listener with an HTTP connection manager and the router
//! filter (plus the fault filter when a route injects faults), one virtual host per service
//! host and port, one Envoy route per `match` of every VirtualService `http` route that applies
//! to this client, and one cluster `outbound|<port>|<subset>|<fqdn>` per destination, with the
//! DestinationRule's merged traffic policy (connection pool → circuit breakers, outlier
//! detection, load balancer) and STATIC endpoints from the ServiceEntry selected by the subset's
//! labels.
//!
//! It never reaches a cluster or DNS: hosts need a ServiceEntry with `resolution: STATIC`.
//! Settings Envoy would need certificates for (`tls`) are reported on stderr and left out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use mesh_model::{
    AbortStatus, Destination, FaultInjection, HashKey, HashTable, HeaderOps, Headers, HttpMatch,
    HttpRoute, LoadBalancer, MeshConfig, Percentage, Resolution, RetryPolicy, RouteAction,
    ServiceEntry, SimpleLb, StringMatch, TrafficPolicy, VirtualService,
};
use serde_json::{json, Map, Value};

use crate::{EnvoyArgs, Failure};

/// Istio's `host_selection_retry_max_attempts` (retry.go).
pub(crate) const HOST_SELECTION_RETRY_MAX_ATTEMPTS: u32 = 5;

/// The calling workload the sidecar belongs to: it decides which `sourceLabels` /
/// `sourceNamespace` matches survive, as istiod filters routes per proxy.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    /// Namespace of the client.
    pub(crate) namespace: String,
    /// Labels of the client.
    pub(crate) labels: BTreeMap<String, String>,
}

/// Where Envoy listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addresses {
    /// The outbound listener.
    pub(crate) listen: SocketAddr,
    /// The admin interface.
    pub(crate) admin: SocketAddr,
}

/// The bootstrap and what could not be translated.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    /// The Envoy bootstrap, as JSON.
    pub(crate) value: Value,
    /// Settings left out, one sentence each.
    pub(crate) warnings: Vec<String>,
}

/// Runs `meshctl envoy`.
pub(crate) fn run(a: &EnvoyArgs) -> Result<u8, Failure> {
    let cfg = crate::sources::load_for_routing(&a.config.files, a.config.quiet)?;
    let mut labels = BTreeMap::new();
    for l in &a.source_labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--source-label {l:?}: expected KEY=VALUE")))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    let workload = Workload {
        namespace: a.namespace.clone(),
        labels,
    };
    let addrs = Addresses {
        listen: a.listen,
        admin: a.admin,
    };
    let budget = if a.istio_exact {
        BudgetMode::Istio
    } else {
        BudgetMode::Mesh
    };
    let boot = bootstrap_with(&cfg, &workload, addrs, budget).map_err(Failure::config)?;
    if !a.config.quiet {
        for w in &boot.warnings {
            crate::err_line(&format!("meshctl envoy: warning: {w}"));
        }
    }
    let text = match a.format {
        EnvoyFormat::Yaml => serde_yaml::to_string(&boot.value)
            .map_err(|e| Failure::usage(format!("cannot write YAML: {e}")))?,
        EnvoyFormat::Json => {
            let mut s = serde_json::to_string_pretty(&boot.value)
                .map_err(|e| Failure::usage(format!("cannot write JSON: {e}")))?;
            s.push('\n');
            s
        }
    };
    match &a.output {
        Some(path) => {
            crate::output::write_atomically(path, &text)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
            if !a.config.quiet {
                crate::err_line(&format!("meshctl envoy: wrote {}", path.display()));
            }
        }
        None => crate::out(&text)?,
    }
    Ok(crate::exit::OK)
}

/// Output format of `meshctl envoy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EnvoyFormat {
    /// YAML (what `envoy -c file.yaml` reads).
    Yaml,
    /// JSON (`envoy -c file.json`).
    Json,
}

/// A service host with its ServiceEntry.
struct Service<'a> {
    fqdn: String,
    entry: &'a ServiceEntry,
}

/// One cluster to emit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ClusterRef {
    fqdn: String,
    subset: Option<String>,
    port: u16,
}

impl ClusterRef {
    fn name(&self) -> String {
        format!(
            "outbound|{}|{}|{}",
            self.port,
            self.subset.as_deref().unwrap_or(""),
            self.fqdn
        )
    }
}

struct Ctx<'a> {
    cfg: &'a MeshConfig,
    workload: &'a Workload,
    budget: BudgetMode,
    services: Vec<Service<'a>>,
    clusters: BTreeSet<ClusterRef>,
    warnings: Vec<String>,
    uses_fault: bool,
}

/// Which retry budget a cluster gets when its DestinationRule sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum BudgetMode {
    /// The budget the mesh applies by default (mesh-resilience: 20% of active requests, at
    /// least 3 retries), so that Envoy runs the same effective policy as the mesh.
    #[default]
    Mesh,
    /// None, exactly as istiod writes it (only `max_retries`, 2^32 - 1 by default).
    Istio,
}

/// Builds the bootstrap for `cfg` as seen by `workload`, with the mesh's default retry budget.
#[cfg(test)]
pub(crate) fn bootstrap(
    cfg: &MeshConfig,
    workload: &Workload,
    addrs: Addresses,
) -> Result<Bootstrap, String> {
    bootstrap_with(cfg, workload, addrs, BudgetMode::Mesh)
}

/// Builds the bootstrap for `cfg` as seen by `workload`.
pub(crate) fn bootstrap_with(
    cfg: &MeshConfig,
    workload: &Workload,
    addrs: Addresses,
    budget: BudgetMode,
) -> Result<Bootstrap, String> {
    let mut ctx = Ctx {
        cfg,
        workload,
        budget,
        services: Vec::new(),
        clusters: BTreeSet::new(),
        warnings: Vec::new(),
        uses_fault: false,
    };
    for se in cfg.service_entries() {
        for h in se.hosts() {
            let fqdn = mesh_model::resolve_short_name(h, se.meta().namespace());
            if ctx.services.iter().any(|s| s.fqdn == fqdn) {
                ctx.warnings.push(format!(
                    "host {fqdn} is declared by more than one ServiceEntry; the first one is used"
                ));
                continue;
            }
            ctx.services.push(Service { fqdn, entry: se });
        }
    }

    // Virtual hosts keyed by (fqdn, port), holding their routes in order.
    let mut vhosts: BTreeMap<(String, u16), (Vec<String>, Vec<Value>)> = BTreeMap::new();
    for vs in cfg.virtual_services() {
        if !vs.applies_to_mesh() || vs.is_delegate() {
            continue;
        }
        for host in vs.hosts() {
            let fqdn = mesh_model::resolve_short_name(host, vs.meta().namespace());
            let ports = ctx.ports_of(&fqdn, vs)?;
            for port in ports {
                let routes = ctx.routes_for(vs, port)?;
                let entry = vhosts
                    .entry((fqdn.clone(), port))
                    .or_insert_with(|| (Vec::new(), Vec::new()));
                add_domains(&mut entry.0, host, &fqdn, vs.meta().namespace(), port);
                entry.1.extend(routes);
            }
        }
    }
    // Hosts with endpoints but no virtual service get istiod's default route.
    let defaults: Vec<(String, u16, String)> = ctx
        .services
        .iter()
        .flat_map(|s| {
            s.entry.ports().iter().map(|p| {
                (
                    s.fqdn.clone(),
                    p.number(),
                    s.entry.meta().namespace().to_owned(),
                )
            })
        })
        .collect();
    for (fqdn, port, ns) in defaults {
        if vhosts.contains_key(&(fqdn.clone(), port)) {
            continue;
        }
        let cluster = ClusterRef {
            fqdn: fqdn.clone(),
            subset: None,
            port,
        };
        let name = cluster.name();
        ctx.clusters.insert(cluster);
        let route = json!({
            "name": "default",
            "match": {"prefix": "/"},
            "route": {
                "cluster": name,
                "timeout": "0s",
                "retry_policy": retry_policy(&RetryPolicy::istio_default()),
            }
        });
        let mut domains = Vec::new();
        let short = fqdn.split('.').next().unwrap_or(&fqdn).to_owned();
        add_domains(&mut domains, &short, &fqdn, &ns, port);
        vhosts.insert((fqdn, port), (domains, vec![route]));
    }

    // Every cluster the services define (Istio emits the subset-less one for every port).
    for s in &ctx.services {
        for p in s.entry.ports() {
            ctx.clusters.insert(ClusterRef {
                fqdn: s.fqdn.clone(),
                subset: None,
                port: p.number(),
            });
        }
    }

    // A domain may appear in one virtual host only.
    let mut seen = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for ((fqdn, port), (domains, routes)) in vhosts {
        let domains: Vec<String> = domains
            .into_iter()
            .filter(|d| seen.insert(d.clone()))
            .collect();
        virtual_hosts.push(json!({
            "name": format!("{fqdn}:{port}"),
            "domains": domains,
            "routes": routes,
        }));
    }

    let refs: Vec<ClusterRef> = ctx.clusters.iter().cloned().collect();
    let clusters = refs
        .iter()
        .map(|c| ctx.cluster(c))
        .collect::<Result<Vec<_>, _>>()?;

    let mut http_filters = Vec::new();
    if ctx.uses_fault {
        http_filters.push(json!({
            "name": "envoy.filters.http.fault",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}
        }));
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));

    let value = json!({
        "admin": {"address": socket(addrs.admin)},
        "static_resources": {
            "listeners": [{
                "name": format!("outbound_{}", addrs.listen),
                "address": socket(addrs.listen),
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "outbound",
                            "codec_type": "AUTO",
                            "route_config": {
                                "name": "mesh",
                                "virtual_hosts": virtual_hosts,
                            },
                            "http_filters": http_filters,
                        }
                    }]
                }]
            }],
            "clusters": clusters,
        }
    });
    Ok(Bootstrap {
        value,
        warnings: ctx.warnings,
    })
}

fn socket(a: SocketAddr) -> Value {
    json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}})
}

/// The names a client may use for `fqdn` on `port`, as istiod lists them: the name written in
/// the virtual service, the FQDN, and the `name.namespace` forms, each with the port; without
/// the port too.
fn add_domains(out: &mut Vec<String>, written: &str, fqdn: &str, ns: &str, port: u16) {
    let mut names = vec![written.to_ascii_lowercase(), fqdn.to_owned()];
    if let Some(short) = fqdn.strip_suffix(".svc.cluster.local") {
        names.push(short.to_owned());
        names.push(format!("{short}.svc"));
        if let Some(first) = short.strip_suffix(&format!(".{ns}")) {
            names.push(first.to_owned());
        }
    }
    for n in names {
        for d in [format!("{n}:{port}"), n.clone()] {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
}

impl Ctx<'_> {
    fn service(&self, fqdn: &str) -> Option<&ServiceEntry> {
        self.services
            .iter()
            .find(|s| s.fqdn == fqdn)
            .map(|s| s.entry)
    }

    /// The service ports a virtual service host is served on.
    fn ports_of(&self, fqdn: &str, vs: &VirtualService) -> Result<Vec<u16>, String> {
        if let Some(se) = self.service(fqdn) {
            return Ok(se.ports().iter().map(|p| p.number()).collect());
        }
        // No entry for the host itself: the ports its destinations name.
        let mut ports = BTreeSet::new();
        for r in vs.http() {
            if let RouteAction::Route(ds) = r.action() {
                for d in ds {
                    if let Some(p) = d.destination().port() {
                        ports.insert(p);
                    }
                }
            }
        }
        if ports.is_empty() {
            return Err(format!(
                "VirtualService {}/{}: host {fqdn} has no ServiceEntry and no destination names a \
                 port; meshctl envoy needs a ServiceEntry with STATIC endpoints to know the port",
                vs.meta().namespace(),
                vs.meta().name()
            ));
        }
        Ok(ports.into_iter().collect())
    }

    /// Whether a match applies to this sidecar on `port` (istiod drops the others).
    fn match_applies(&self, m: &HttpMatch, port: u16) -> bool {
        if m.port().is_some_and(|p| p != port) {
            return false;
        }
        if !m.gateways().is_empty() && !m.gateways().iter().any(|g| g == "mesh") {
            return false;
        }
        if m.source_namespace()
            .is_some_and(|ns| ns != self.workload.namespace)
        {
            return false;
        }
        m.source_labels()
            .iter()
            .all(|(k, v)| self.workload.labels.get(k) == Some(v))
    }

    fn routes_for(&mut self, vs: &VirtualService, port: u16) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for (i, r) in vs.http().iter().enumerate() {
            let name = r.name().map_or_else(|| format!("route-{i}"), str::to_owned);
            let action = self.action(vs, r, &name, port)?;
            let matches: Vec<&HttpMatch> = if r.matches().is_empty() {
                Vec::new()
            } else {
                let kept: Vec<&HttpMatch> = r
                    .matches()
                    .iter()
                    .filter(|m| self.match_applies(m, port))
                    .collect();
                if kept.is_empty() {
                    continue;
                }
                kept
            };
            let envoy_matches = if matches.is_empty() {
                vec![json!({"prefix": "/"})]
            } else {
                matches.iter().map(|m| route_match(m)).collect()
            };
            for m in envoy_matches {
                let mut route = Map::new();
                route.insert("name".into(), json!(name));
                route.insert("match".into(), m);
                for (k, v) in &action {
                    route.insert(k.clone(), v.clone());
                }
                out.push(Value::Object(route));
            }
        }
        Ok(out)
    }

    /// The action part of an Envoy route (`route`, `redirect` or `direct_response`, header
    /// operations, fault configuration).
    fn action(
        &mut self,
        vs: &VirtualService,
        r: &HttpRoute,
        name: &str,
        port: u16,
    ) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        let ns = vs.meta().namespace();
        match r.action() {
            RouteAction::Route(dests) => {
                let mut action = Map::new();
                let mut weighted = Vec::new();
                for d in dests {
                    let c = self.cluster_ref(d.destination(), ns, port)?;
                    let mut w = Map::new();
                    w.insert("name".into(), json!(c.name()));
                    w.insert("weight".into(), json!(d.weight()));
                    header_ops(&mut w, d.headers());
                    weighted.push(Value::Object(w));
                    self.clusters.insert(c);
                }
                if weighted.len() == 1 && dests[0].headers().is_empty() {
                    let only = &weighted[0];
                    action.insert("cluster".into(), only["name"].clone());
                } else {
                    action.insert("weighted_clusters".into(), json!({"clusters": weighted}));
                }
                action.insert(
                    "timeout".into(),
                    json!(r
                        .timeout()
                        .map_or_else(|| "0s".to_owned(), |d| dur(d.as_std()))),
                );
                if let Some(rw) = r.rewrite() {
                    if let Some(uri) = rw.uri() {
                        action.insert("prefix_rewrite".into(), json!(uri));
                    }
                    if let Some(rx) = rw.uri_regex() {
                        action.insert(
                            "regex_rewrite".into(),
                            json!({"pattern": {"regex": rx.pattern().as_str()}, "substitution": rx.rewrite()}),
                        );
                    }
                    if let Some(a) = rw.authority() {
                        action.insert("host_rewrite_literal".into(), json!(a));
                    }
                }
                if r.retries().is_enabled() {
                    action.insert("retry_policy".into(), retry_policy(r.retries()));
                }
                if !r.mirrors().is_empty() {
                    let mut mirrors = Vec::new();
                    for m in r.mirrors() {
                        let c = self.cluster_ref(m.destination(), ns, port)?;
                        mirrors.push(json!({
                            "cluster": c.name(),
                            "runtime_fraction": {"default_value": fraction(m.percentage())},
                        }));
                        self.clusters.insert(c);
                    }
                    action.insert("request_mirror_policies".into(), Value::Array(mirrors));
                }
                if let Some(LoadBalancer::ConsistentHash { key, .. }) =
                    self.first_lb(dests.first().map(|d| d.destination()), ns, port)
                {
                    action.insert("hash_policy".into(), json!([hash_policy(&key)]));
                }
                out.insert("route".into(), Value::Object(action));
            }
            RouteAction::Redirect(rd) => {
                let mut red = Map::new();
                if let Some(u) = rd.uri() {
                    red.insert("path_redirect".into(), json!(u));
                }
                if let Some(p) = rd.prefix_rewrite() {
                    red.insert("prefix_rewrite".into(), json!(p));
                }
                if let Some(a) = rd.authority() {
                    red.insert("host_redirect".into(), json!(a));
                }
                if let Some(s) = rd.scheme() {
                    red.insert("scheme_redirect".into(), json!(s));
                }
                let redirect_port = match rd.port() {
                    mesh_model::RedirectPort::Unchanged => None,
                    mesh_model::RedirectPort::Explicit(p) => Some(p),
                    mesh_model::RedirectPort::FromRequestPort => Some(port),
                    mesh_model::RedirectPort::FromProtocolDefault => {
                        Some(if rd.scheme() == Some("https") {
                            443
                        } else {
                            80
                        })
                    }
                };
                if let Some(p) = redirect_port {
                    red.insert("port_redirect".into(), json!(p));
                }
                let code = match rd.code() {
                    301 => "MOVED_PERMANENTLY",
                    302 => "FOUND",
                    303 => "SEE_OTHER",
                    307 => "TEMPORARY_REDIRECT",
                    308 => "PERMANENT_REDIRECT",
                    other => {
                        return Err(format!(
                            "route {name}: redirect code {other} has no Envoy equivalent"
                        ))
                    }
                };
                red.insert("response_code".into(), json!(code));
                out.insert("redirect".into(), Value::Object(red));
            }
            RouteAction::DirectResponse(d) => {
                let mut dr = Map::new();
                dr.insert("status".into(), json!(d.status()));
                if let Some(b) = d.body() {
                    dr.insert(
                        "body".into(),
                        json!({"inline_string": String::from_utf8_lossy(b)}),
                    );
                }
                out.insert("direct_response".into(), Value::Object(dr));
            }
            RouteAction::Delegate(_) => {
                return Err(format!(
                "route {name}: an unmerged delegate (the loader merges delegates; this is a bug)"
            ))
            }
        }
        header_ops(&mut out, r.headers());
        if let Some(f) = r.fault() {
            self.uses_fault = true;
            out.insert(
                "typed_per_filter_config".into(),
                json!({"envoy.filters.http.fault": fault(f)}),
            );
        }
        if r.cors().is_some() {
            self.warnings.push(format!(
                "route {name}: corsPolicy is not translated (no CORS filter in this bootstrap)"
            ));
        }
        Ok(out)
    }

    fn cluster_ref(&self, d: &Destination, ns: &str, port: u16) -> Result<ClusterRef, String> {
        let fqdn = mesh_model::resolve_short_name(d.host(), ns);
        let port = match d.port() {
            Some(p) => p,
            None => match self.service(&fqdn) {
                Some(se) if se.ports().len() == 1 => se.ports()[0].number(),
                _ => port,
            },
        };
        Ok(ClusterRef {
            fqdn,
            subset: d.subset().map(str::to_owned),
            port,
        })
    }

    fn policy(&self, c: &ClusterRef) -> TrafficPolicy {
        let client_ns = self.workload.namespace.as_str();
        mesh_model::find_destination_rule(self.cfg, &c.fqdn, client_ns)
            .map(|dr| dr.effective_policy(c.subset.as_deref(), Some(c.port)))
            .unwrap_or_default()
    }

    fn first_lb(&self, d: Option<&Destination>, ns: &str, port: u16) -> Option<LoadBalancer> {
        let c = self.cluster_ref(d?, ns, port).ok()?;
        Some(self.policy(&c).load_balancer_or_default())
    }

    fn cluster(&mut self, c: &ClusterRef) -> Result<Value, String> {
        let name = c.name();
        let se = self.service(&c.fqdn).ok_or_else(|| {
            format!(
                "cluster {name}: no ServiceEntry declares host {}; meshctl envoy needs STATIC \
                 endpoints",
                c.fqdn
            )
        })?;
        if se.resolution() != Resolution::Static {
            return Err(format!(
                "cluster {name}: ServiceEntry {}/{} has resolution {:?}; meshctl envoy supports \
                 STATIC only",
                se.meta().namespace(),
                se.meta().name(),
                se.resolution()
            ));
        }
        let sport = se
            .ports()
            .iter()
            .find(|p| p.number() == c.port)
            .ok_or_else(|| {
                format!(
                    "cluster {name}: ServiceEntry {}/{} has no port {}",
                    se.meta().namespace(),
                    se.meta().name(),
                    c.port
                )
            })?;
        let client_ns = self.workload.namespace.as_str();
        let dr = mesh_model::find_destination_rule(self.cfg, &c.fqdn, client_ns);
        let selector = match (&c.subset, dr) {
            (None, _) => None,
            (Some(s), Some(dr)) => Some(
                dr.subset(s)
                    .ok_or_else(|| {
                        format!(
                            "cluster {name}: DestinationRule {}/{} declares no subset {s}",
                            dr.meta().namespace(),
                            dr.meta().name()
                        )
                    })?
                    .clone(),
            ),
            (Some(s), None) => {
                return Err(format!(
                    "cluster {name}: subset {s} but no DestinationRule for {}",
                    c.fqdn
                ))
            }
        };
        let mut lb_endpoints = Vec::new();
        for ep in se.endpoints() {
            if selector.as_ref().is_some_and(|s| !s.selects(ep.labels())) {
                continue;
            }
            let address: std::net::IpAddr = ep.address().parse().map_err(|_| {
                format!(
                    "cluster {name}: endpoint address {:?} is not an IP address (STATIC needs one)",
                    ep.address()
                )
            })?;
            let mut e = json!({
                "endpoint": {"address": {"socket_address": {
                    "address": address.to_string(),
                    "port_value": ep.port_for(sport),
                }}}
            });
            if ep.weight() > 0 {
                e["load_balancing_weight"] = json!(ep.weight());
            }
            lb_endpoints.push(e);
        }

        let policy = self.policy(c);
        if policy.tls().is_some() {
            self.warnings.push(format!(
                "cluster {name}: the DestinationRule's tls settings are not translated (plaintext \
                 upstream)"
            ));
        }
        let pool = policy.connection_pool_or_default();
        let mut cluster = Map::new();
        cluster.insert("name".into(), json!(name));
        cluster.insert("type".into(), json!("STATIC"));
        cluster.insert("connect_timeout".into(), json!(dur(pool.connect_timeout())));
        let lb = policy.load_balancer_or_default();
        let lb_name = match &lb {
            LoadBalancer::Simple(SimpleLb::LeastRequest) => "LEAST_REQUEST",
            LoadBalancer::Simple(SimpleLb::RoundRobin) => "ROUND_ROBIN",
            LoadBalancer::Simple(SimpleLb::Random) => "RANDOM",
            LoadBalancer::Simple(SimpleLb::Passthrough) => {
                return Err(format!(
                    "cluster {name}: loadBalancer PASSTHROUGH needs an ORIGINAL_DST cluster, \
                     which meshctl envoy does not generate"
                ))
            }
            LoadBalancer::ConsistentHash {
                table: HashTable::RingHash { minimum_ring_size },
                ..
            } => {
                cluster.insert(
                    "ring_hash_lb_config".into(),
                    json!({"minimum_ring_size": minimum_ring_size}),
                );
                "RING_HASH"
            }
            LoadBalancer::ConsistentHash {
                table: HashTable::Maglev { table_size },
                ..
            } => {
                cluster.insert("maglev_lb_config".into(), json!({"table_size": table_size}));
                "MAGLEV"
            }
        };
        cluster.insert("lb_policy".into(), json!(lb_name));
        cluster.insert(
            "load_assignment".into(),
            json!({"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}]}),
        );
        let mut thresholds = json!({
            "max_connections": pool.max_connections(),
            "max_pending_requests": pool.http1_max_pending_requests(),
            "max_requests": pool.http2_max_requests(),
            "max_retries": pool.max_retries(),
            "track_remaining": true,
        });
        // istiod's applyRetryBudget: a DestinationRule budget replaces max_retries. Without one
        // the mesh still applies its default budget, and so does this bootstrap unless asked to
        // write exactly what istiod writes.
        let budget = match (policy.retry_budget(), self.budget) {
            (Some(b), _) => Some((b.percent(), b.min_retry_concurrency())),
            (None, BudgetMode::Mesh) => Some((
                mesh_resilience::pool::RetryBudget::DEFAULT_PERCENT,
                mesh_resilience::pool::RetryBudget::DEFAULT_MIN_RETRY_CONCURRENCY,
            )),
            (None, BudgetMode::Istio) => None,
        };
        if let Some((percent, min)) = budget {
            thresholds["retry_budget"] = json!({
                "budget_percent": {"value": percent},
                "min_retry_concurrency": min,
            });
        }
        cluster.insert(
            "circuit_breakers".into(),
            json!({"thresholds": [thresholds]}),
        );
        let mut http_opts = Map::new();
        if let Some(idle) = pool.idle_timeout() {
            http_opts.insert("idle_timeout".into(), json!(dur(idle.as_std())));
        }
        if pool.max_requests_per_connection() > 0 {
            http_opts.insert(
                "max_requests_per_connection".into(),
                json!(pool.max_requests_per_connection()),
            );
        }
        cluster.insert(
            "typed_extension_protocol_options".into(),
            json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": http_opts,
                "explicit_http_config": {"http_protocol_options": {}},
            }}),
        );
        if let Some(od) = policy.outlier_detection() {
            let mut o = Map::new();
            let c5 = od.consecutive_5xx_errors();
            o.insert("consecutive_5xx".into(), json!(c5));
            o.insert(
                "enforcing_consecutive_5xx".into(),
                json!(if c5 > 0 { 100 } else { 0 }),
            );
            let gw = od.consecutive_gateway_errors();
            if gw > 0 {
                o.insert("consecutive_gateway_failure".into(), json!(gw));
                o.insert("enforcing_consecutive_gateway_failure".into(), json!(100));
            }
            o.insert("enforcing_success_rate".into(), json!(0));
            o.insert("interval".into(), json!(dur(od.interval())));
            o.insert(
                "base_ejection_time".into(),
                json!(dur(od.base_ejection_time())),
            );
            o.insert(
                "max_ejection_percent".into(),
                json!(od.max_ejection_percent()),
            );
            if od.split_external_local_origin_errors() {
                o.insert("split_external_local_origin_errors".into(), json!(true));
                o.insert(
                    "consecutive_local_origin_failure".into(),
                    json!(od.consecutive_local_origin_failures()),
                );
                o.insert(
                    "enforcing_consecutive_local_origin_failure".into(),
                    json!(100),
                );
            }
            cluster.insert("outlier_detection".into(), Value::Object(o));
            cluster.insert(
                "common_lb_config".into(),
                json!({"healthy_panic_threshold": {"value": f64::from(od.min_health_percent())}}),
            );
        }
        Ok(Value::Object(cluster))
    }
}

/// An Istio duration in Envoy's JSON form (`"1.5s"`).
pub(crate) fn dur(d: StdDuration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else {
        let frac = format!("{nanos:09}");
        format!("{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
    }
}

fn fraction(p: Percentage) -> Value {
    json!({"numerator": p.per_million(), "denominator": "MILLION"})
}

fn string_match(m: &StringMatch) -> Value {
    match m {
        StringMatch::Exact(s) => json!({"exact": s}),
        StringMatch::Prefix(s) => json!({"prefix": s}),
        StringMatch::Regex(r) => json!({"safe_regex": {"regex": r.as_str()}}),
        StringMatch::Present => json!({"safe_regex": {"regex": ".*"}}),
    }
}

fn header_matcher(name: &str, m: &StringMatch, invert: bool) -> Value {
    let mut h = match m {
        StringMatch::Present => json!({"name": name, "present_match": true}),
        other => json!({"name": name, "string_match": string_match(other)}),
    };
    if invert {
        h["invert_match"] = json!(true);
    }
    h
}

/// One Istio match as an Envoy `RouteMatch`.
fn route_match(m: &HttpMatch) -> Value {
    let mut out = Map::new();
    match m.uri() {
        None | Some(StringMatch::Present) => {
            out.insert("prefix".into(), json!("/"));
        }
        Some(StringMatch::Exact(p)) => {
            out.insert("path".into(), json!(p));
        }
        Some(StringMatch::Prefix(p)) => {
            out.insert("prefix".into(), json!(p));
        }
        Some(StringMatch::Regex(r)) => {
            out.insert("safe_regex".into(), json!({"regex": r.as_str()}));
        }
    }
    if m.ignore_uri_case() {
        out.insert("case_sensitive".into(), json!(false));
    }
    let mut headers = Vec::new();
    for (name, sm) in m.headers() {
        headers.push(header_matcher(name, sm, false));
    }
    for (name, sm) in m.without_headers() {
        headers.push(header_matcher(name, sm, true));
    }
    if let Some(sm) = m.method() {
        headers.push(header_matcher(":method", sm, false));
    }
    if let Some(sm) = m.authority() {
        headers.push(header_matcher(":authority", sm, false));
    }
    if let Some(sm) = m.scheme() {
        headers.push(header_matcher(":scheme", sm, false));
    }
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    if !m.query_params().is_empty() {
        let qs: Vec<Value> = m
            .query_params()
            .iter()
            .map(|(name, sm)| match sm {
                StringMatch::Present => json!({"name": name, "present_match": true}),
                other => json!({"name": name, "string_match": string_match(other)}),
            })
            .collect();
        out.insert("query_parameters".into(), Value::Array(qs));
    }
    Value::Object(out)
}

/// Header operations on a route or a weighted cluster.
fn header_ops(out: &mut Map<String, Value>, h: &Headers) {
    let mut put = |ops: &HeaderOps, add_key: &str, remove_key: &str| {
        let mut add = Vec::new();
        for (n, v) in ops.set() {
            add.push(
                json!({"header": {"key": n.as_str(), "value": v.to_str().unwrap_or_default()},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}),
            );
        }
        for (n, v) in ops.add() {
            add.push(
                json!({"header": {"key": n.as_str(), "value": v.to_str().unwrap_or_default()},
                "append_action": "APPEND_IF_EXISTS_OR_ADD"}),
            );
        }
        if !add.is_empty() {
            out.insert(add_key.to_owned(), Value::Array(add));
        }
        if !ops.remove().is_empty() {
            let rm: Vec<&str> = ops.remove().iter().map(http::HeaderName::as_str).collect();
            out.insert(remove_key.to_owned(), json!(rm));
        }
    };
    put(
        h.request(),
        "request_headers_to_add",
        "request_headers_to_remove",
    );
    put(
        h.response(),
        "response_headers_to_add",
        "response_headers_to_remove",
    );
}

/// A route's retry policy as istiod writes it (retry.go): the conditions without the status
/// codes, `retriable-status-codes` added when codes are listed, the `previous_hosts` predicate
/// unless `retryIgnorePreviousHosts: false`, 5 host-selection attempts.
pub(crate) fn retry_policy(p: &RetryPolicy) -> Value {
    // Numeric codes already turned `retriable-status-codes` on when they were parsed.
    let conds: Vec<&str> = p.retry_on().conditions().map(|c| c.as_str()).collect();
    let codes: Vec<u16> = p.retry_on().status_codes().iter().collect();
    let mut out = Map::new();
    out.insert("retry_on".into(), json!(conds.join(",")));
    out.insert("num_retries".into(), json!(p.attempts()));
    if let Some(t) = p.per_try_timeout() {
        out.insert("per_try_timeout".into(), json!(dur(t.as_std())));
    }
    if !codes.is_empty() {
        out.insert("retriable_status_codes".into(), json!(codes));
    }
    if p.retry_ignore_previous_hosts() {
        out.insert(
            "retry_host_predicate".into(),
            json!([{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
            }]),
        );
    }
    out.insert(
        "host_selection_retry_max_attempts".into(),
        json!(HOST_SELECTION_RETRY_MAX_ATTEMPTS),
    );
    if let Some(b) = p.backoff() {
        out.insert(
            "retry_back_off".into(),
            json!({"base_interval": dur(b.as_std())}),
        );
    }
    Value::Object(out)
}

fn hash_policy(key: &HashKey) -> Value {
    match key {
        HashKey::Header(h) => json!({"header": {"header_name": h}}),
        HashKey::Cookie { name, path, ttl } => {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            if let Some(p) = path {
                c.insert("path".into(), json!(p));
            }
            if let Some(t) = ttl {
                c.insert("ttl".into(), json!(dur(*t)));
            }
            json!({"cookie": c})
        }
        HashKey::SourceIp => json!({"connection_properties": {"source_ip": true}}),
        HashKey::QueryParameter(q) => json!({"query_parameter": {"name": q}}),
    }
}

fn fault(f: &FaultInjection) -> Value {
    let mut out = Map::new();
    out.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"),
    );
    if let Some(d) = f.delay() {
        out.insert(
            "delay".into(),
            json!({"fixed_delay": dur(d.fixed_delay().as_std()), "percentage": fraction(d.percentage())}),
        );
    }
    if let Some(a) = f.abort() {
        let mut ab = Map::new();
        match a.status() {
            AbortStatus::Http(code) => {
                ab.insert("http_status".into(), json!(code));
            }
            AbortStatus::Grpc(_) => {
                ab.insert(
                    "grpc_status".into(),
                    json!(a.status().grpc_code().unwrap_or(2)),
                );
            }
        }
        ab.insert("percentage".into(), fraction(a.percentage()));
        out.insert("abort".into(), Value::Object(ab));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's canary (as in `examples/canary/config/canary.yaml`), kept here so the test
    /// does not depend on another crate's files.
    const CANARY: &str = "\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: api-vs-canary
spec:
  hosts: [api]
  http:
  - name: frontend-to-v2
    match:
    - sourceLabels: {app: frontend}
    route:
    - destination: {host: api, subset: v2}
    retries: {attempts: 3, perTryTimeout: 2s}
    timeout: 5s
  - name: canary-split
    route:
    - destination: {host: api, subset: v1}
      weight: 90
    - destination: {host: api, subset: v2}
      weight: 10
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 'gateway-error,connect-failure,refused-stream'}
    timeout: 5s
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: api-dr
spec:
  host: api
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000}
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool:
        http: {idleTimeout: 10s}
      loadBalancer: {simple: ROUND_ROBIN}
      tls: {mode: ISTIO_MUTUAL}
";
    const ENDPOINTS: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api-endpoints
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9001}, labels: {app: api, version: v1}}
  - {address: 127.0.0.1, ports: {http: 9002}, labels: {app: api, version: v1}}
  - {address: 127.0.0.1, ports: {http: 9003}, labels: {app: api, version: v2}}
  - {address: 127.0.0.1, ports: {http: 9004}, labels: {app: api, version: v2}}
";

    fn config(extra: &str) -> MeshConfig {
        let mut l = mesh_model::Loader::new();
        l.add_str("canary.yaml", CANARY);
        l.add_str("endpoints.yaml", ENDPOINTS);
        if !extra.is_empty() {
            l.add_str("extra.yaml", extra);
        }
        let loaded = l.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        loaded.into_config()
    }

    fn addrs() -> Addresses {
        Addresses {
            listen: "127.0.0.1:15001".parse().unwrap(),
            admin: "127.0.0.1:15000".parse().unwrap(),
        }
    }

    fn generate(cfg: &MeshConfig, labels: &[(&str, &str)]) -> Value {
        let w = Workload {
            namespace: "default".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let boot = bootstrap(cfg, &w, addrs()).unwrap();
        // Round-trip through YAML, as envoy and the tests read it.
        let yaml = serde_yaml::to_string(&boot.value).unwrap();
        serde_yaml::from_str(&yaml).unwrap()
    }

    #[test]
    fn retry_budget_is_the_mesh_default_unless_istio_exact_or_written() {
        let cfg = config("");
        let w = Workload {
            namespace: "default".into(),
            labels: BTreeMap::new(),
        };
        let mesh = bootstrap(&cfg, &w, addrs()).unwrap().value;
        let v1 = cluster(&mesh, "outbound|8080|v1|api.default.svc.cluster.local");
        let b = &v1["circuit_breakers"]["thresholds"][0]["retry_budget"];
        assert_eq!(b["budget_percent"]["value"], 20.0);
        assert_eq!(b["min_retry_concurrency"], 3);
        let istio = bootstrap_with(&cfg, &w, addrs(), BudgetMode::Istio)
            .unwrap()
            .value;
        let v1 = cluster(&istio, "outbound|8080|v1|api.default.svc.cluster.local");
        assert!(v1["circuit_breakers"]["thresholds"][0]
            .get("retry_budget")
            .is_none());
    }

    fn cluster<'a>(boot: &'a Value, name: &str) -> &'a Value {
        boot["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no cluster {name}"))
    }

    fn routes(boot: &Value) -> &Vec<Value> {
        let hcm = &boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        let vhs = hcm["route_config"]["virtual_hosts"].as_array().unwrap();
        assert_eq!(vhs.len(), 1);
        assert_eq!(vhs[0]["name"], "api.default.svc.cluster.local:8080");
        let domains = vhs[0]["domains"].as_array().unwrap();
        for d in ["api", "api:8080", "api.default.svc.cluster.local:8080"] {
            assert!(domains.contains(&json!(d)), "{d} missing from {domains:?}");
        }
        vhs[0]["routes"].as_array().unwrap()
    }

    #[test]
    fn canary_split_has_weighted_subset_clusters_and_retry_policy() {
        let boot = generate(&config(""), &[("app", "checkout")]);
        let rs = routes(&boot);
        // The frontend-only rule is dropped for a checkout client, as istiod does.
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(r["name"], "canary-split");
        assert_eq!(r["match"]["prefix"], "/");
        let wc = r["route"]["weighted_clusters"]["clusters"]
            .as_array()
            .unwrap();
        assert_eq!(wc.len(), 2);
        assert_eq!(
            wc[0]["name"],
            "outbound|8080|v1|api.default.svc.cluster.local"
        );
        assert_eq!(wc[0]["weight"], 90);
        assert_eq!(
            wc[1]["name"],
            "outbound|8080|v2|api.default.svc.cluster.local"
        );
        assert_eq!(wc[1]["weight"], 10);
        assert_eq!(r["route"]["timeout"], "5s");
        let rp = &r["route"]["retry_policy"];
        assert_eq!(
            rp["retry_on"],
            "gateway-error,connect-failure,refused-stream"
        );
        assert_eq!(rp["num_retries"], 3);
        assert_eq!(rp["per_try_timeout"], "2s");
        assert_eq!(rp["host_selection_retry_max_attempts"], 5);
        assert_eq!(
            rp["retry_host_predicate"][0]["name"],
            "envoy.retry_host_predicates.previous_hosts"
        );
    }

    #[test]
    fn frontend_client_gets_the_source_label_route_first() {
        let boot = generate(&config(""), &[("app", "frontend")]);
        let rs = routes(&boot);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0]["name"], "frontend-to-v2");
        assert_eq!(
            rs[0]["route"]["cluster"],
            "outbound|8080|v2|api.default.svc.cluster.local"
        );
        // Written retries without retryOn get Istio's default conditions.
        let written: mesh_model::RetryOn = rs[0]["route"]["retry_policy"]["retry_on"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(written, mesh_model::RetryOn::istio_default());
        assert!(rs[0]["route"]["retry_policy"]
            .get("retriable_status_codes")
            .is_none());
        assert_eq!(rs[1]["name"], "canary-split");
    }

    #[test]
    fn subset_clusters_have_their_endpoints_breakers_and_outlier_detection() {
        let boot = generate(&config(""), &[]);
        let v1 = cluster(&boot, "outbound|8080|v1|api.default.svc.cluster.local");
        assert_eq!(v1["type"], "STATIC");
        assert_eq!(v1["lb_policy"], "LEAST_REQUEST");
        let eps = v1["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap();
        let ports: Vec<u64> = eps
            .iter()
            .map(|e| {
                e["endpoint"]["address"]["socket_address"]["port_value"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ports, [9001, 9002]);
        let cb = &v1["circuit_breakers"]["thresholds"][0];
        assert_eq!(cb["max_connections"], 100);
        assert_eq!(cb["max_pending_requests"], 10);
        assert_eq!(cb["max_requests"], 1000);
        assert_eq!(cb["max_retries"], u64::from(u32::MAX));
        let od = &v1["outlier_detection"];
        assert_eq!(od["consecutive_5xx"], 5);
        assert_eq!(od["enforcing_consecutive_5xx"], 100);
        assert_eq!(od["enforcing_success_rate"], 0);
        assert_eq!(od["interval"], "10s");
        assert_eq!(od["base_ejection_time"], "30s");
        assert_eq!(od["max_ejection_percent"], 50);
        assert!(od.get("consecutive_gateway_failure").is_none());
        assert_eq!(
            v1["common_lb_config"]["healthy_panic_threshold"]["value"],
            0.0
        );

        // v2 replaces the connection pool wholesale (Istio's subset merge): limits back to
        // 2^32-1, the idle timeout set; its own load balancer; the top-level outlier detection.
        let v2 = cluster(&boot, "outbound|8080|v2|api.default.svc.cluster.local");
        assert_eq!(v2["lb_policy"], "ROUND_ROBIN");
        let cb = &v2["circuit_breakers"]["thresholds"][0];
        for k in [
            "max_connections",
            "max_pending_requests",
            "max_requests",
            "max_retries",
        ] {
            assert_eq!(cb[k], u64::from(u32::MAX), "{k}");
        }
        let opts = &v2["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(opts["common_http_protocol_options"]["idle_timeout"], "10s");
        assert_eq!(v2["outlier_detection"]["consecutive_5xx"], 5);
        let eps = v2["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap();
        assert_eq!(eps.len(), 2);

        // The subset-less cluster holds every endpoint.
        let all = cluster(&boot, "outbound|8080||api.default.svc.cluster.local");
        let eps = all["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_array()
            .unwrap();
        assert_eq!(eps.len(), 4);
    }

    #[test]
    fn listener_and_admin_bind_where_asked_and_only_the_router_runs_without_faults() {
        let boot = generate(&config(""), &[]);
        assert_eq!(
            boot["admin"]["address"]["socket_address"]["port_value"],
            15000
        );
        let l = &boot["static_resources"]["listeners"][0];
        assert_eq!(l["address"]["socket_address"]["address"], "127.0.0.1");
        assert_eq!(l["address"]["socket_address"]["port_value"], 15001);
        let filters = l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            .as_array()
            .unwrap();
        assert_eq!(filters.len(), 1);
        assert_eq!(filters[0]["name"], "envoy.filters.http.router");
    }

    const FAULTY: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-vs-canary}
spec:
  hosts: [api]
  http:
  - name: faulty
    match:
    - uri: {prefix: /slow}
      headers: {x-user: {exact: bob}}
    fault:
      delay: {fixedDelay: 1.5s, percentage: {value: 12.5}}
      abort: {httpStatus: 503, percentage: {value: 1}}
    retries: {attempts: 2, retryOn: '5xx,503'}
    route:
    - destination: {host: api, subset: v1}
  - route:
    - destination: {host: api, subset: v2}
";

    #[test]
    fn faults_matches_and_status_code_retries_are_translated() {
        let mut l = mesh_model::Loader::new();
        l.add_str("endpoints.yaml", ENDPOINTS);
        l.add_str("faulty.yaml", FAULTY);
        l.add_str(
            "dr.yaml",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: api\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
        );
        let loaded = l.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        let boot = generate(&loaded.into_config(), &[]);
        let rs = routes(&boot);
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0]["match"]["prefix"], "/slow");
        assert_eq!(rs[0]["match"]["headers"][0]["name"], "x-user");
        assert_eq!(rs[0]["match"]["headers"][0]["string_match"]["exact"], "bob");
        let f = &rs[0]["typed_per_filter_config"]["envoy.filters.http.fault"];
        assert_eq!(f["delay"]["fixed_delay"], "1.5s");
        assert_eq!(f["delay"]["percentage"]["numerator"], 125_000);
        assert_eq!(f["abort"]["http_status"], 503);
        assert_eq!(f["abort"]["percentage"]["numerator"], 10_000);
        let rp = &rs[0]["route"]["retry_policy"];
        assert_eq!(rp["retry_on"], "5xx,retriable-status-codes");
        assert_eq!(rp["retriable_status_codes"], json!([503]));
        // No timeout written: 0s (disabled), as istiod writes.
        assert_eq!(rs[1]["route"]["timeout"], "0s");
        // No DestinationRule outlier detection: no panic threshold either.
        let v1 = cluster(&boot, "outbound|8080|v1|api.default.svc.cluster.local");
        assert!(v1.get("outlier_detection").is_none());
        assert_eq!(
            v1["circuit_breakers"]["thresholds"][0]["max_connections"],
            u64::from(u32::MAX)
        );
        let filters = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["http_filters"]
            .as_array()
            .unwrap();
        assert_eq!(filters[0]["name"], "envoy.filters.http.fault");
        assert_eq!(filters[1]["name"], "envoy.filters.http.router");
    }

    #[test]
    fn a_host_without_service_entry_is_a_clear_error() {
        let mut l = mesh_model::Loader::new();
        l.add_str("canary.yaml", CANARY);
        let cfg = l.finish().into_config();
        let w = Workload {
            namespace: "default".into(),
            labels: BTreeMap::new(),
        };
        let err = bootstrap(&cfg, &w, addrs()).unwrap_err();
        assert!(err.contains("ServiceEntry"), "{err}");
    }

    #[test]
    fn durations_use_envoy_notation() {
        assert_eq!(dur(StdDuration::from_secs(5)), "5s");
        assert_eq!(dur(StdDuration::from_millis(1500)), "1.5s");
        assert_eq!(dur(StdDuration::from_micros(250)), "0.00025s");
        assert_eq!(dur(StdDuration::ZERO), "0s");
    }

    /// Parses Envoy's duration notation back to nanoseconds, exactly.
    fn parse_dur(s: &str) -> u128 {
        let s = s.strip_suffix('s').unwrap();
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        assert!(frac.len() <= 9 && !frac.ends_with('0'), "{s}");
        let frac_ns: u128 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().unwrap()
        };
        secs.parse::<u128>().unwrap() * 1_000_000_000 + frac_ns
    }

    proptest::proptest! {
        #[test]
        fn durations_round_trip_exactly(ns in 0u64..10_000_000_000_000) {
            let d = StdDuration::from_nanos(ns);
            proptest::prop_assert_eq!(parse_dur(&dur(d)), u128::from(ns));
        }

        #[test]
        fn weighted_clusters_carry_the_virtual_service_weights(w1 in 1u32..100, attempts in 0u32..6) {
            let w2 = 100 - w1;
            let vs = format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: api-vs-canary}}\nspec:\n  hosts: [api]\n  http:\n  - name: split\n    retries: {{attempts: {attempts}}}\n    route:\n    - destination: {{host: api, subset: v1}}\n      weight: {w1}\n    - destination: {{host: api, subset: v2}}\n      weight: {w2}\n"
            );
            let mut l = mesh_model::Loader::new();
            l.add_str("endpoints.yaml", ENDPOINTS);
            l.add_str("vs.yaml", &vs);
            l.add_str(
                "dr.yaml",
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: api\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
            );
            let loaded = l.finish();
            proptest::prop_assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
            let boot = generate(&loaded.into_config(), &[]);
            let r = &routes(&boot)[0]["route"];
            let wc = r["weighted_clusters"]["clusters"].as_array().unwrap();
            proptest::prop_assert_eq!(wc.len(), 2);
            proptest::prop_assert_eq!(wc[0]["weight"].as_u64(), Some(u64::from(w1)));
            proptest::prop_assert_eq!(wc[1]["weight"].as_u64(), Some(u64::from(w2)));
            // attempts: 0 disables retries (no retry_policy); otherwise num_retries = attempts.
            if attempts == 0 {
                proptest::prop_assert!(r.get("retry_policy").is_none());
            } else {
                proptest::prop_assert_eq!(r["retry_policy"]["num_retries"].as_u64(), Some(u64::from(attempts)));
            }
        }
    }
}
