//! `RouteTable::compile`: validated config (mesh-model) in, compiled table out.
//!
//! `mod.rs` compiles virtual hosts, routes and match blocks (each destination's
//! DestinationRules come from mesh-model's one lookup,
//! [`mesh_model::applicable_destination_rules`]); `rules` merges their policies; `policy` converts policies for the resilience machines; `error`
//! holds [`CompileError`].

mod error;
mod policy;
mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use mesh_model::{
    exported_to, labels_match, resolve_short_name, HttpMatch, HttpRoute, MeshConfig, PortProtocol,
    Resolution, RouteAction, RouteDestination, ServiceEntry, StringMatch, VirtualService,
};
use mesh_resilience::{MirrorPolicy, Protocol, RetryPolicy};

pub use error::CompileError;

use crate::client::ClientContext;
use crate::cluster::{ClusterPolicy, UpstreamProtocol};
use crate::compiled::{
    CompileNote, CompiledAction, CompiledDest, CompiledRoute, DestEntry, DirectResponse, KeptBlock,
    PrefixMode, RouteRetry, RouteTable, VirtualHost,
};
use crate::endpoints::{Endpoint, StaticEndpoints};
use crate::headers::RouteHeaders;
use crate::host::{kube_alternative_names, HostIndex};
use crate::matcher::{HeaderMatcher, MatchBlock, QueryMatcher, StringMatcher, UriMatcher};
use crate::weighted::Weighted;

fn id(meta: &mesh_model::Meta) -> String {
    format!("{}/{}", meta.namespace(), meta.name())
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

struct Compiler<'c> {
    config: &'c MeshConfig,
    client: &'c ClientContext,
    dests: Vec<DestEntry>,
    dest_ids: HashMap<(String, Option<String>), u32>,
    notes: Vec<CompileNote>,
    endpoints: StaticEndpoints,
    /// Ports of ServiceEntry hosts, each with its protocol (`HTTP2`, `GRPC`, `GRPC-WEB`: Istio
    /// gives such clusters HTTP/2 upstream options).
    se_ports: HashMap<String, Vec<(u16, PortProtocol)>>,
    /// The ServiceEntry `subjectAltNames` of each host that has some.
    se_alt_names: HashMap<String, Arc<[String]>>,
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
    /// DestinationRule policy is looked up and merged; every route and cluster policy is
    /// converted for the resilience machines; ServiceEntry `STATIC` endpoints are collected
    /// into [`RouteTable::static_endpoints`] (published apart from the routes).
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
            se_alt_names: HashMap::new(),
            se_namespace: HashMap::new(),
        };
        c.service_entries();
        let (vhosts, hosts) = c.virtual_hosts()?;
        let services = c.services()?;
        let default_policy = ClusterPolicy::default();
        Ok(RouteTable {
            client: client.clone(),
            vhosts,
            hosts,
            services,
            dests: c.dests,
            static_endpoints: c.endpoints,
            default_retry: RouteRetry {
                policy: RetryPolicy::istio_default(),
                istio_default: true,
            },
            default_policy,
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
            if !exported_to(se.export_to(), se.meta().namespace(), client_ns) {
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
                .extend(se.ports().iter().map(|p| {
                    (
                        p.number(),
                        PortProtocol::of_service_entry_port(p.protocol()),
                    )
                }));
            if !se.subject_alt_names().is_empty() {
                self.se_alt_names
                    .entry(host.clone())
                    .or_insert_with(|| se.subject_alt_names().into());
            }
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
            if !exported_to(vs.export_to(), ns, client.namespace()) {
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
                let fqdn = resolve_short_name(host, ns);
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
            let query_tests = routes
                .iter()
                .flat_map(|r| &r.blocks)
                .map(|b| b.block.query_len())
                .sum();
            vhosts.push(VirtualHost {
                namespace: ns.into(),
                name: vs.meta().name().into(),
                routes,
                query_tests,
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
                let prefix = match m.uri() {
                    Some(StringMatch::Prefix(p)) => PrefixMode::Prefix(p.len()),
                    Some(_) => PrefixMode::Whole,
                    None => PrefixMode::Slash,
                };
                blocks.push(KeptBlock {
                    index: j,
                    block,
                    prefix,
                });
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
            string_matcher(s).map_err(|e| CompileError::Regex {
                resource: vs_id.to_owned(),
                path: path(field),
                message: e.to_string(),
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
        let policy_error = |field: &str, message: String| CompileError::Policy {
            resource: vs_id.clone(),
            path: format!("spec.http[{i}].{field}"),
            message,
        };
        // The route-level authority rewrite: `rewrite.authority`, else a `host`/`:authority`
        // header operation.
        let route_authority = route
            .rewrite()
            .and_then(mesh_model::Rewrite::authority)
            .or_else(|| route.headers().request().authority());
        let action = match route.action() {
            RouteAction::Route(dests) => {
                let weighted = dests.len() > 1;
                let compiled: Vec<(CompiledDest, u32)> = dests
                    .iter()
                    .map(|d| self.dest(ns, d, route_authority, weighted))
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
            RouteAction::DirectResponse(d) => CompiledAction::DirectResponse(DirectResponse {
                status: StatusCode::from_u16(d.status())
                    .map_err(|e| policy_error("directResponse.status", e.to_string()))?,
                body: d.body().map(Bytes::copy_from_slice),
            }),
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
                let dest = self.intern(&resolve_short_name(d.host(), ns), d.subset())?;
                Ok((
                    CompiledDest {
                        dest,
                        port: d.port(),
                        weight: 100,
                        headers: RouteHeaders::default(),
                        authority: None,
                    },
                    MirrorPolicy::new(m.percentage()),
                ))
            })
            .collect::<Result<_, CompileError>>()?;
        let retry = RouteRetry {
            policy: policy::retry_policy(route.retries(), route.timeout())
                .map_err(|e| policy_error("retries", e))?,
            istio_default: !route.retries().is_written(),
        };
        let fault = match route.fault() {
            Some(f) => policy::fault(f).map_err(|e| policy_error("fault", e))?,
            None => None,
        };
        let headers = RouteHeaders::from_model(route.headers());
        let any_header_ops = !headers.is_empty()
            || match &action {
                CompiledAction::Route(split) => split.iter().any(|(d, _)| !d.headers.is_empty()),
                _ => false,
            };
        Ok(CompiledRoute {
            index: i,
            name: route.name().map(Into::into),
            blocks,
            action,
            rewrite: route.rewrite().cloned(),
            headers,
            any_header_ops,
            retry,
            fault,
            mirrors,
            cors: route.cors().cloned(),
            cors_filter: route
                .cors()
                .map(|c| cors_filter(c).map_err(|e| policy_error("corsPolicy", e)))
                .transpose()?,
        })
    }

    /// A route destination. `route_authority` is the route's authority rewrite; `weighted`
    /// says whether the route splits (then the destination's own authority wins, as Istio
    /// sets it on the cluster weight).
    fn dest(
        &mut self,
        ns: &str,
        d: &RouteDestination,
        route_authority: Option<&str>,
        weighted: bool,
    ) -> Result<(CompiledDest, u32), CompileError> {
        let dst = d.destination();
        let host = resolve_short_name(dst.host(), ns);
        let dest = self.intern(&host, dst.subset())?;
        let own = d.headers().request().authority();
        let authority = if weighted {
            own.or(route_authority)
        } else {
            route_authority.or(own)
        };
        Ok((
            CompiledDest {
                dest,
                port: dst.port(),
                weight: d.weight(),
                headers: RouteHeaders::from_model(d.headers()),
                authority: authority.and_then(|a| HeaderValue::from_str(a).ok()),
            },
            d.weight(),
        ))
    }

    /// Intern a (host, subset) pair, looking up and merging its DestinationRule policies once.
    fn intern(&mut self, host: &str, subset: Option<&str>) -> Result<u32, CompileError> {
        let key = (host.to_owned(), subset.map(str::to_owned));
        if let Some(&d) = self.dest_ids.get(&key) {
            return Ok(d);
        }
        let index =
            u32::try_from(self.dests.len()).map_err(|_| CompileError::TooManyDestinations)?;
        // The one DestinationRule lookup (mesh-model's), the ServiceEntry's namespace being
        // the service's.
        let drs = mesh_model::applicable_destination_rules(
            self.config,
            &self.client.viewer(),
            self.se_namespace.get(host).map(String::as_str),
            host,
        );
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
        let se_ports: &[(u16, PortProtocol)] = self.se_ports.get(host).map_or(&[], Vec::as_slice);
        // Every declared port gets its own policy: its protocol decides the upstream one.
        ports.extend(se_ports.iter().map(|(p, _)| *p));
        ports.sort_unstable();
        ports.dedup();
        let alt_names = self.se_alt_names.get(host).cloned().unwrap_or_default();
        let merged = |port: Option<u16>| {
            let mut policy = rules::merged_policy(&drs, subset, port).map_err(|message| {
                CompileError::Policy {
                    resource: drs.first().map(|dr| id(dr.meta())).unwrap_or_default(),
                    path: "spec.trafficPolicy".to_owned(),
                    message,
                }
            })?;
            let port_protocol = port
                .and_then(|p| se_ports.iter().find(|(n, _)| *n == p))
                .map_or(PortProtocol::Unsupported, |(_, proto)| *proto);
            policy.upstream_protocol =
                UpstreamProtocol::select(port_protocol, policy.connection_pool());
            policy.service_alt_names = alt_names.clone();
            if policy.upstream_protocol == UpstreamProtocol::Http2 {
                // Requests multiplex over HTTP/2 connections: `maxConnections` counts
                // connections of up to `maxConcurrentStreams` streams each.
                let streams = policy.connection_pool().map_or(
                    0,
                    mesh_model::ConnectionPoolSettings::max_concurrent_streams,
                );
                policy.pool_limits = policy.pool_limits.with_protocol(Protocol::Http2 {
                    max_concurrent_streams: streams,
                });
            }
            Ok::<_, CompileError>(policy)
        };
        let policy = merged(None)?;
        let port_policies = ports
            .iter()
            .map(|&p| Ok((p, merged(Some(p))?)))
            .collect::<Result<_, CompileError>>()?;
        let single_port = match self.se_ports.get(host).map(Vec::as_slice) {
            Some([(p, _)]) => Some(*p),
            _ => None,
        };
        self.dests.push(DestEntry {
            host: host.into(),
            subset: subset.map(Into::into),
            subset_known,
            subset_labels,
            single_port,
            policy,
            port_policies,
        });
        self.dest_ids.insert(key, index);
        Ok(index)
    }

    /// Known services for passthrough: ServiceEntry hosts, DestinationRule hosts, route
    /// destinations; each with its Kubernetes short forms.
    fn services(&mut self) -> Result<HostIndex<u32>, CompileError> {
        let client = self.client;
        let mut names: Vec<String> = self.se_ports.keys().cloned().collect();
        names.sort();
        for dr in self.config.destination_rules() {
            let h = resolve_short_name(dr.host(), dr.meta().namespace());
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

/// A model string match as a matcher (a regex is compiled here).
fn string_matcher(s: &StringMatch) -> Result<StringMatcher, regex::Error> {
    Ok(match s {
        StringMatch::Exact(e) => StringMatcher::exact(e),
        StringMatch::Prefix(p) => StringMatcher::prefix(p),
        StringMatch::Present => StringMatcher::Present,
        StringMatch::Regex(r) => StringMatcher::regex(r.as_str())?,
    })
}

/// The CORS filter for a `corsPolicy`.
fn cors_filter(c: &mesh_model::CorsPolicy) -> Result<crate::cors::Cors, String> {
    let origins = c
        .allow_origins()
        .iter()
        .map(|o| string_matcher(o).map_err(|e| format!("allowOrigins: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(crate::cors::Cors::new(
        origins,
        c.allow_methods(),
        c.allow_headers(),
        c.expose_headers(),
        c.max_age().map(|d| d.as_std()),
        c.allow_credentials().unwrap_or(false),
        c.forwards_unmatched_preflights(),
    ))
}
