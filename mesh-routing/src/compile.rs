//! `RouteTable::compile`: validated config (mesh-model) in, compiled table out.

use std::collections::HashMap;
use std::fmt;

use mesh_model::{
    DestinationRule, HashKey, HashTable, HttpMatch, HttpRoute, MeshConfig, Resolution, RetryPolicy,
    RouteAction, RouteDestination, ServiceEntry, SimpleLb, StringMatch, VirtualService,
};

use crate::cluster::ClusterPolicy;
use crate::endpoints::{labels_match, select_subset, Endpoint, EndpointSource, StaticEndpoints};
use crate::host::{kube_alternative_names, HostIndex, CLUSTER_DOMAIN};
use crate::lb::{HashPolicy, LoadBalancer};
use crate::matcher::{HeaderMatcher, MatchBlock, QueryMatcher, StringMatcher, UriMatcher};
use crate::table::{
    ClientContext, CompileNote, CompiledAction, CompiledDest, CompiledRoute, DestEndpoints,
    DestEntry, KeptBlock, RouteTable, VirtualHost,
};
use crate::weighted::Weighted;

/// Why a table could not be compiled. Only config that cannot work at all is an error;
/// everything Istio accepts and then handles at run time (an undefined subset, a duplicate
/// host, an unreachable route) compiles, with a [`CompileNote`] where something was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompileError {
    /// A regex the model accepted does not compile for byte matching.
    Regex {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
        /// The compiler's message.
        message: String,
    },
    /// A header-match key is not a valid header name.
    HeaderName {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
        /// The name.
        name: String,
    },
    /// A route forwards to no destination with a weight above zero.
    NoDestination {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
    },
    /// The config uses a feature this table does not implement.
    Unsupported {
        /// `namespace/name` of the resource.
        resource: String,
        /// Where in the resource.
        path: String,
        /// The feature.
        feature: &'static str,
    },
    /// More (host, subset) pairs than a `u32` can index.
    TooManyDestinations,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Regex {
                resource,
                path,
                message,
            } => write!(f, "{resource}: {path}: regex does not compile: {message}"),
            CompileError::HeaderName {
                resource,
                path,
                name,
            } => write!(f, "{resource}: {path}: {name:?} is not a valid header name"),
            CompileError::NoDestination { resource, path } => {
                write!(
                    f,
                    "{resource}: {path}: no destination with a weight above zero"
                )
            }
            CompileError::Unsupported {
                resource,
                path,
                feature,
            } => write!(
                f,
                "{resource}: {path}: {feature} is not supported by mesh-routing"
            ),
            CompileError::TooManyDestinations => {
                f.write_str("more than 2^32 distinct (host, subset) destinations")
            }
        }
    }
}

impl std::error::Error for CompileError {}

fn id(meta: &mesh_model::Meta) -> String {
    format!("{}/{}", meta.namespace(), meta.name())
}

/// Expand a short name (no dot) with `namespace`, as mesh-model (and Istio) do.
fn expand(host: &str, namespace: &str) -> String {
    mesh_model::resolve_short_name(host, namespace)
}

/// Whether a resource in `ns` with `export_to` is visible to a client in `client_ns`
/// (empty = everywhere).
fn visible(export_to: &[String], ns: &str, client_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == client_ns || (e == "." && ns == client_ns))
}

/// `name` → `ns/name`, legacy `name.ns.svc...` → `ns/name`, `mesh` and `ns/name` unchanged.
fn gateway_name(g: &str, namespace: &str) -> String {
    if g == "mesh" || g.contains('/') {
        return g.to_owned();
    }
    match g.split_once('.') {
        Some((name, rest)) => {
            let ns = rest.split('.').next().unwrap_or(namespace);
            format!("{ns}/{name}")
        }
        None => format!("{namespace}/{g}"),
    }
}

/// Whether host `pattern` (`*`, `*suffix`, exact) covers `host`.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

struct Compiler<'c> {
    config: &'c MeshConfig,
    client: &'c ClientContext,
    dests: Vec<DestEntry>,
    dest_ids: HashMap<(String, Option<String>), u32>,
    notes: Vec<CompileNote>,
    endpoints: StaticEndpoints,
    /// Ports of ServiceEntry hosts.
    se_ports: HashMap<String, Vec<u16>>,
    /// Namespace of ServiceEntry hosts.
    se_namespace: HashMap<String, String>,
}

impl RouteTable {
    /// Compile the validated config for one client.
    ///
    /// At compile time: virtual-service hosts are indexed (short names expanded with the
    /// VirtualService's namespace, plus the short forms a Kubernetes client may use); regexes
    /// are compiled; match blocks whose `sourceLabels` / `sourceNamespace` / `gateways` exclude
    /// the client are dropped; routes after the first catch-all are dropped; weights are
    /// accumulated; when several VirtualServices claim a host, the first (client's namespace
    /// first, then document order) wins and the others are noted; every destination's
    /// DestinationRule policy is looked up and merged; the endpoint registry is filled from
    /// ServiceEntry `STATIC` endpoints.
    pub fn compile(
        config: &MeshConfig,
        client: &ClientContext,
    ) -> Result<RouteTable, CompileError> {
        let mut c = Compiler {
            config,
            client,
            dests: Vec::new(),
            dest_ids: HashMap::new(),
            notes: Vec::new(),
            endpoints: StaticEndpoints::new(),
            se_ports: HashMap::new(),
            se_namespace: HashMap::new(),
        };
        c.service_entries();
        let (vhosts, hosts) = c.virtual_hosts()?;
        let services = c.services()?;
        Ok(RouteTable {
            client: client.clone(),
            vhosts,
            hosts,
            services,
            dests: c.dests,
            endpoints: c.endpoints,
            default_retry: RetryPolicy::istio_default(),
            default_policy: ClusterPolicy::default(),
            notes: c.notes,
        })
    }
}

impl<'c> Compiler<'c> {
    fn note(&mut self, resource: String, message: String) {
        self.notes.push(CompileNote { resource, message });
    }

    fn service_entries(&mut self) {
        let client_ns = self.client.namespace();
        for se in self.config.service_entries() {
            if !visible(se.export_to(), se.meta().namespace(), client_ns) {
                continue;
            }
            self.service_entry(se);
        }
    }

    fn service_entry(&mut self, se: &ServiceEntry) {
        let ns = se.meta().namespace();
        for host in se.hosts() {
            let host = host.to_ascii_lowercase();
            self.se_ports
                .entry(host.clone())
                .or_default()
                .extend(se.ports().iter().map(|p| p.number()));
            self.se_namespace
                .entry(host.clone())
                .or_insert_with(|| ns.to_owned());
            if se.resolution() != Resolution::Static {
                continue;
            }
            for ep in se.endpoints() {
                let mut e = Endpoint::new(ep.address())
                    .with_weight(ep.weight())
                    .with_labels(ep.labels().clone());
                for p in se.ports() {
                    let target = ep.port_for(p);
                    if target != p.number() {
                        e = e.with_port_mapping(p.number(), target);
                    }
                }
                self.endpoints.add(&host, e);
            }
        }
    }

    /// The VirtualServices that apply to this client, in precedence order: the client's
    /// namespace first, then the others, each in document (creation) order.
    fn applicable_virtual_services(&mut self) -> Vec<&'c VirtualService> {
        let client = self.client;
        let config: &'c MeshConfig = self.config;
        let mut out: Vec<&VirtualService> = Vec::new();
        let mut skipped = Vec::new();
        for vs in config.virtual_services() {
            let ns = vs.meta().namespace();
            if vs.is_delegate() {
                continue;
            }
            if !visible(vs.export_to(), ns, client.namespace()) {
                skipped.push((
                    id(vs.meta()),
                    "not exported to the client's namespace".to_owned(),
                ));
                continue;
            }
            let applies = if vs.gateways().is_empty() {
                client.gateway() == "mesh"
            } else {
                vs.gateways()
                    .iter()
                    .any(|g| gateway_name(g, ns) == client.gateway())
            };
            if !applies {
                skipped.push((
                    id(vs.meta()),
                    format!("not bound to gateway {:?}", client.gateway()),
                ));
                continue;
            }
            out.push(vs);
        }
        for (r, m) in skipped {
            self.note(r, m);
        }
        out.sort_by_key(|vs| vs.meta().namespace() != client.namespace());
        out
    }

    fn virtual_hosts(&mut self) -> Result<(Vec<VirtualHost>, HostIndex<u32>), CompileError> {
        let client = self.client;
        let vss = self.applicable_virtual_services();
        let mut vhosts = Vec::new();
        let mut hosts = HostIndex::new();
        let mut owner: HashMap<String, String> = HashMap::new();
        let mut alternatives = Vec::new();
        for vs in vss {
            let vs_id = id(vs.meta());
            let ns = vs.meta().namespace();
            let index =
                u32::try_from(vhosts.len()).map_err(|_| CompileError::TooManyDestinations)?;
            let mut claimed = false;
            for host in vs.hosts() {
                let fqdn = expand(host, ns);
                if hosts.insert(&fqdn, index) {
                    claimed = true;
                    owner.insert(fqdn.clone(), vs_id.clone());
                    alternatives.push((fqdn, index));
                } else {
                    let winner = owner.get(&fqdn).cloned().unwrap_or_default();
                    self.note(
                        vs_id.clone(),
                        format!("host {fqdn:?} dropped: already served by {winner} (sidecars do not merge virtual services)"),
                    );
                }
            }
            if !claimed {
                continue;
            }
            let routes = self.routes(vs)?;
            vhosts.push(VirtualHost {
                namespace: ns.into(),
                name: vs.meta().name().into(),
                routes,
            });
        }
        // Short forms after every real name, so a real name always wins.
        for (fqdn, index) in alternatives {
            for alt in kube_alternative_names(&fqdn, client.namespace()) {
                hosts.insert(&alt, index);
            }
        }
        Ok((vhosts, hosts))
    }

    fn routes(&mut self, vs: &VirtualService) -> Result<Vec<CompiledRoute>, CompileError> {
        let vs_id = id(vs.meta());
        let mut out = Vec::new();
        let mut catch_all_at: Option<usize> = None;
        for (i, route) in vs.http().iter().enumerate() {
            if let Some(at) = catch_all_at {
                self.note(
                    vs_id.clone(),
                    format!("http[{i}] dropped: unreachable after the catch-all route http[{at}]"),
                );
                continue;
            }
            let mut blocks = Vec::new();
            let mut catch_all = route.matches().is_empty();
            for (j, m) in route.matches().iter().enumerate() {
                if let Some(why) = self.excludes(vs, m) {
                    self.note(
                        vs_id.clone(),
                        format!("http[{i}].match[{j}] dropped: {why}"),
                    );
                    continue;
                }
                let block = Self::block(&vs_id, i, j, m)?;
                let is_catch_all = block.is_catch_all();
                blocks.push(KeptBlock { index: j, block });
                if is_catch_all {
                    catch_all = true;
                    if j + 1 < route.matches().len() {
                        self.note(
                            vs_id.clone(),
                            format!(
                                "http[{i}].match[{}..] dropped: after the catch-all match[{j}]",
                                j + 1
                            ),
                        );
                    }
                    break;
                }
            }
            if !route.matches().is_empty() && blocks.is_empty() {
                // Every block was dropped for this client: the route does not exist here.
                continue;
            }
            if catch_all {
                catch_all_at = Some(i);
            }
            out.push(self.route(vs, i, route, blocks)?);
        }
        Ok(out)
    }

    /// Why a block's selectors exclude this client (Istio's `sourceMatchHTTP`), if they do.
    fn excludes(&self, vs: &VirtualService, m: &HttpMatch) -> Option<String> {
        let client = self.client;
        let ns = vs.meta().namespace();
        if !m.gateways().is_empty() {
            // With gateways set, sourceLabels and sourceNamespace are not consulted.
            return (!m
                .gateways()
                .iter()
                .any(|g| gateway_name(g, ns) == client.gateway()))
            .then(|| {
                format!(
                    "gateways {:?} do not include {:?}",
                    m.gateways(),
                    client.gateway()
                )
            });
        }
        if !labels_match(m.source_labels(), client.labels()) {
            return Some(format!(
                "sourceLabels {:?} do not match the client's labels",
                m.source_labels()
            ));
        }
        match m.source_namespace() {
            Some(sns) if sns != client.namespace() => Some(format!(
                "sourceNamespace {sns:?} is not the client's namespace {:?}",
                client.namespace()
            )),
            _ => None,
        }
    }

    fn block(vs_id: &str, i: usize, j: usize, m: &HttpMatch) -> Result<MatchBlock, CompileError> {
        let path = |field: &str| format!("spec.http[{i}].match[{j}].{field}");
        let sm = |field: &str, s: &StringMatch| -> Result<StringMatcher, CompileError> {
            Ok(match s {
                StringMatch::Exact(e) => StringMatcher::exact(e),
                StringMatch::Prefix(p) => StringMatcher::prefix(p),
                StringMatch::Present => StringMatcher::Present,
                StringMatch::Regex(r) => {
                    StringMatcher::regex(r.as_str()).map_err(|e| CompileError::Regex {
                        resource: vs_id.to_owned(),
                        path: path(field),
                        message: e.to_string(),
                    })?
                }
            })
        };
        let mut b = MatchBlock::default();
        if let Some(n) = m.name() {
            b = b.with_name(n);
        }
        if let Some(u) = m.uri() {
            b = b.with_uri(UriMatcher::new(sm("uri", u)?, m.ignore_uri_case()));
        }
        if let Some(s) = m.scheme() {
            b = b.with_scheme(sm("scheme", s)?);
        }
        if let Some(s) = m.method() {
            b = b.with_method(sm("method", s)?);
        }
        if let Some(s) = m.authority() {
            b = b.with_authority(sm("authority", s)?);
        }
        let header_err = |field: String, name: &str| CompileError::HeaderName {
            resource: vs_id.to_owned(),
            path: field,
            name: name.to_owned(),
        };
        for (name, s) in m.headers() {
            let field = format!("headers.{name}");
            let h = HeaderMatcher::new(name, sm(&field, s)?)
                .map_err(|_| header_err(path(&field), name))?;
            b = b.with_header(h);
        }
        for (name, s) in m.without_headers() {
            let field = format!("withoutHeaders.{name}");
            let h = HeaderMatcher::without(name, sm(&field, s)?)
                .map_err(|_| header_err(path(&field), name))?;
            b = b.with_header(h);
        }
        for (name, s) in m.query_params() {
            let field = format!("queryParams.{name}");
            b = b.with_query(QueryMatcher::new(name, sm(&field, s)?));
        }
        if let Some(p) = m.port() {
            b = b.with_port(p);
        }
        Ok(b)
    }

    fn route(
        &mut self,
        vs: &VirtualService,
        i: usize,
        route: &HttpRoute,
        blocks: Vec<KeptBlock>,
    ) -> Result<CompiledRoute, CompileError> {
        let vs_id = id(vs.meta());
        let ns = vs.meta().namespace();
        let action = match route.action() {
            RouteAction::Route(dests) => {
                let compiled: Vec<(CompiledDest, u32)> = dests
                    .iter()
                    .map(|d| self.dest(ns, d))
                    .collect::<Result<_, _>>()?;
                let split = if compiled.len() == 1 {
                    compiled
                        .into_iter()
                        .next()
                        .map(|(d, _)| Weighted::single(d))
                } else {
                    Weighted::new(compiled).ok()
                };
                CompiledAction::Route(split.ok_or_else(|| CompileError::NoDestination {
                    resource: vs_id.clone(),
                    path: format!("spec.http[{i}].route"),
                })?)
            }
            RouteAction::Redirect(r) => CompiledAction::Redirect(r.clone()),
            RouteAction::DirectResponse(d) => CompiledAction::DirectResponse(d.clone()),
            RouteAction::Delegate(_) => {
                return Err(CompileError::Unsupported {
                    resource: vs_id,
                    path: format!("spec.http[{i}].delegate"),
                    feature: "delegation",
                })
            }
        };
        let mirrors = route
            .mirrors()
            .iter()
            .map(|m| {
                let d = m.destination();
                let dest = self.intern(&expand(d.host(), ns), d.subset())?;
                Ok((
                    CompiledDest {
                        dest,
                        port: d.port(),
                        weight: 100,
                        headers: Default::default(),
                    },
                    m.percentage(),
                ))
            })
            .collect::<Result<_, CompileError>>()?;
        Ok(CompiledRoute {
            index: i,
            name: route.name().map(Into::into),
            blocks,
            action,
            rewrite: route.rewrite().cloned(),
            headers: route.headers().clone(),
            timeout: route.timeout(),
            retries: route.retries().clone(),
            fault: route.fault().cloned(),
            mirrors,
            cors: route.cors().cloned(),
        })
    }

    fn dest(
        &mut self,
        ns: &str,
        d: &RouteDestination,
    ) -> Result<(CompiledDest, u32), CompileError> {
        let dst = d.destination();
        let host = expand(dst.host(), ns);
        let dest = self.intern(&host, dst.subset())?;
        Ok((
            CompiledDest {
                dest,
                port: dst.port(),
                weight: d.weight(),
                headers: d.headers().clone(),
            },
            d.weight(),
        ))
    }

    /// Intern a (host, subset) pair, computing its policies and endpoints once.
    fn intern(&mut self, host: &str, subset: Option<&str>) -> Result<u32, CompileError> {
        let key = (host.to_owned(), subset.map(str::to_owned));
        if let Some(&d) = self.dest_ids.get(&key) {
            return Ok(d);
        }
        let index =
            u32::try_from(self.dests.len()).map_err(|_| CompileError::TooManyDestinations)?;
        let drs = self.destination_rules(host);
        let subset_known = subset.is_none_or(|s| drs.iter().any(|dr| dr.subset(s).is_some()));
        let subset_labels = subset.and_then(|s| {
            drs.iter()
                .find_map(|dr| dr.subset(s))
                .map(|s| s.labels().clone())
        });
        let mut ports: Vec<u16> = Vec::new();
        for dr in &drs {
            if let Some(tp) = dr.traffic_policy() {
                ports.extend(tp.port_level().iter().map(|p| p.port()));
            }
            if let Some(tp) = subset
                .and_then(|s| dr.subset(s))
                .and_then(|s| s.traffic_policy())
            {
                ports.extend(tp.port_level().iter().map(|p| p.port()));
            }
        }
        ports.sort_unstable();
        ports.dedup();
        let policy = merged_policy(&drs, subset, None);
        let port_policies = ports
            .iter()
            .map(|&p| (p, merged_policy(&drs, subset, Some(p))))
            .collect();
        let endpoints = match (self.endpoints.endpoints(host), subset) {
            (None, _) => DestEndpoints::Unregistered,
            (Some(_), None) => DestEndpoints::All,
            (Some(all), Some(_)) => DestEndpoints::Subset(match &subset_labels {
                Some(labels) => select_subset(all, labels).into(),
                None => Box::new([]),
            }),
        };
        let single_port = match self.se_ports.get(host).map(Vec::as_slice) {
            Some([p]) => Some(*p),
            _ => None,
        };
        self.dests.push(DestEntry {
            host: host.into(),
            subset: subset.map(Into::into),
            subset_known,
            single_port,
            policy,
            port_policies,
            endpoints,
        });
        self.dest_ids.insert(key, index);
        Ok(index)
    }

    /// The DestinationRules that apply to `host` for this client (§3.1): the first namespace
    /// among client, service, root that has a matching rule wins; exact host before the most
    /// specific wildcard; several rules for the same host there are merged in order
    /// (workload-selector rules first).
    fn destination_rules(&self, host: &str) -> Vec<&DestinationRule> {
        let client = self.client;
        let service_ns = self.se_namespace.get(host).cloned().or_else(|| {
            host.strip_suffix(CLUSTER_DOMAIN)
                .and_then(|p| p.strip_suffix(".svc."))
                .and_then(|p| p.split_once('.'))
                .map(|(_, ns)| ns.to_owned())
        });
        let mut scopes = vec![client.namespace().to_owned()];
        scopes.extend(service_ns);
        scopes.push(client.root_namespace().to_owned());
        let mut seen = Vec::new();
        for ns in scopes {
            if seen.contains(&ns) {
                continue;
            }
            let candidates: Vec<(&DestinationRule, String)> = self
                .config
                .destination_rules()
                .iter()
                .filter(|dr| dr.meta().namespace() == ns)
                .filter(|dr| visible(dr.export_to(), &ns, client.namespace()))
                .filter(|dr| match dr.workload_selector() {
                    Some(sel) => ns == client.namespace() && labels_match(sel, client.labels()),
                    None => true,
                })
                .map(|dr| (dr, expand(dr.host(), &ns)))
                .filter(|(_, h)| host_matches(h, host))
                .collect();
            seen.push(ns);
            if candidates.is_empty() {
                continue;
            }
            let best = if candidates.iter().any(|(_, h)| h == host) {
                host.to_owned()
            } else {
                candidates
                    .iter()
                    .map(|(_, h)| h.clone())
                    .max_by_key(String::len)
                    .unwrap_or_default()
            };
            let mut chosen: Vec<&DestinationRule> = candidates
                .into_iter()
                .filter(|(_, h)| *h == best)
                .map(|(dr, _)| dr)
                .collect();
            chosen.sort_by_key(|dr| dr.workload_selector().is_none());
            return chosen;
        }
        Vec::new()
    }

    /// Known services for passthrough: ServiceEntry hosts, DestinationRule hosts, route
    /// destinations; each with its Kubernetes short forms.
    fn services(&mut self) -> Result<HostIndex<u32>, CompileError> {
        let client = self.client;
        let mut names: Vec<String> = self.se_ports.keys().cloned().collect();
        names.sort();
        for dr in self.config.destination_rules() {
            let h = expand(dr.host(), dr.meta().namespace());
            if !h.starts_with('*') {
                names.push(h);
            }
        }
        let mut routed: Vec<String> = self.dests.iter().map(|d| d.host.to_string()).collect();
        routed.sort();
        routed.dedup();
        names.extend(routed);
        let mut index = HostIndex::new();
        let mut ids = Vec::new();
        for name in names {
            if index.contains_exact(&name) {
                continue;
            }
            let d = self.intern(&name, None)?;
            index.insert(&name, d);
            ids.push((name, d));
        }
        for (name, d) in ids {
            for alt in kube_alternative_names(&name, client.namespace()) {
                index.insert(&alt, d);
            }
        }
        Ok(index)
    }
}

/// The policy of (subset, port) from the rules that apply to a host (§3.8). The first rule
/// with a top-level policy gives the base; the first rule declaring the subset gives the
/// subset's policy.
fn merged_policy(
    drs: &[&DestinationRule],
    subset: Option<&str>,
    port: Option<u16>,
) -> ClusterPolicy {
    let Some(first) = drs.first() else {
        return ClusterPolicy::default();
    };
    let policy_dr = drs
        .iter()
        .find(|dr| dr.traffic_policy().is_some())
        .unwrap_or(first);
    let subset_dr = subset.and_then(|s| drs.iter().find(|dr| dr.subset(s).is_some()));
    let base = policy_dr.effective_policy(None, port);
    let mut out = ClusterPolicy::from_traffic_policy(&base, id(policy_dr.meta()));
    let (Some(s), Some(sdr)) = (subset, subset_dr) else {
        return out.resolved();
    };
    let Some(sp) = sdr.subset(s).and_then(|x| x.traffic_policy()) else {
        return out.resolved();
    };
    out.source = Some(if std::ptr::eq(*sdr, *policy_dr) {
        id(sdr.meta())
    } else {
        format!("{} + {}", id(policy_dr.meta()), id(sdr.meta()))
    });
    let port_entry = port.is_some_and(|p| sp.port_level().iter().any(|x| x.port() == p));
    if port_entry {
        // A subset port-level entry replaces all four blocks, set or not.
        let e = sdr.effective_policy(Some(s), port);
        out.settings = e.load_balancer().cloned();
        out.connection_pool = e.connection_pool().cloned();
        out.outlier_detection = e.outlier_detection().cloned();
        out.tls = e.tls().cloned();
    } else {
        if let Some(x) = sp.load_balancer() {
            out.settings = Some(x.clone());
        }
        if let Some(x) = sp.connection_pool() {
            out.connection_pool = Some(x.clone());
        }
        if let Some(x) = sp.outlier_detection() {
            out.outlier_detection = Some(x.clone());
        }
        if let Some(x) = sp.tls() {
            out.tls = Some(x.clone());
        }
    }
    if let Some(x) = sp.retry_budget() {
        out.retry_budget = Some(x.clone());
    }
    out.resolved()
}

impl ClusterPolicy {
    fn from_traffic_policy(tp: &mesh_model::TrafficPolicy, source: String) -> Self {
        ClusterPolicy {
            source: Some(source),
            settings: tp.load_balancer().cloned(),
            connection_pool: tp.connection_pool().cloned(),
            outlier_detection: tp.outlier_detection().cloned(),
            tls: tp.tls().cloned(),
            retry_budget: tp.retry_budget().cloned(),
            ..ClusterPolicy::default()
        }
    }

    /// Resolve the algorithm and hash policy from the settings.
    fn resolved(mut self) -> Self {
        let (lb, hash) = match &self.settings {
            None => (LoadBalancer::LeastRequest, None),
            Some(mesh_model::LoadBalancer::Simple(s)) => (
                match s {
                    SimpleLb::LeastRequest => LoadBalancer::LeastRequest,
                    SimpleLb::RoundRobin => LoadBalancer::RoundRobin,
                    SimpleLb::Random => LoadBalancer::Random,
                    SimpleLb::Passthrough => LoadBalancer::Passthrough,
                },
                None,
            ),
            Some(mesh_model::LoadBalancer::ConsistentHash { key, table }) => {
                let lb = match *table {
                    HashTable::RingHash { minimum_ring_size } => {
                        LoadBalancer::RingHash { minimum_ring_size }
                    }
                    HashTable::Maglev { table_size } => LoadBalancer::Maglev { table_size },
                };
                let hash = match key {
                    HashKey::Header(h) => http::HeaderName::from_bytes(h.as_bytes())
                        .ok()
                        .map(HashPolicy::Header),
                    HashKey::Cookie { name, .. } => Some(HashPolicy::Cookie(name.as_str().into())),
                    HashKey::SourceIp => Some(HashPolicy::SourceIp),
                    HashKey::QueryParameter(q) => {
                        Some(HashPolicy::QueryParameter(q.as_str().into()))
                    }
                };
                (lb, hash)
            }
        };
        self.load_balancer = lb;
        self.hash = hash;
        self
    }
}
