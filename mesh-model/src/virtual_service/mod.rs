//! Validated `VirtualService`: the resource and its spec-level rules (hosts, gateways, delegate
//! rules, exportTo); each part of an HTTP route lives in its own module with its validation.

use crate::checks::{validate_export_to, validate_metadata};
use crate::diag::{Cx, Path};
use crate::meta::Meta;
use crate::names;
use crate::raw;

use gateway::validate_gateway;
use reachability::validate_reachability;
use route::validate_route;

mod cors;
mod destination;
mod direct_response;
mod fault;
mod gateway;
mod headers;
mod http_match;
mod mirror;
mod reachability;
mod redirect;
mod retries;
mod rewrite;
mod route;
mod to_raw;

pub use cors::CorsPolicy;
pub use destination::{Destination, RouteDestination};
pub use direct_response::DirectResponse;
pub use headers::{HeaderOps, Headers};
pub use http_match::HttpMatch;
pub use mirror::Mirror;
pub use redirect::{Redirect, RedirectPort};
pub use rewrite::{RegexRewrite, Rewrite};
pub use route::{Delegate, HttpRoute, RouteAction};

/// A validated `VirtualService`.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualService {
    pub(crate) meta: Meta,
    pub(crate) hosts: Vec<String>,
    pub(crate) gateways: Vec<String>,
    pub(crate) http: Vec<HttpRoute>,
    pub(crate) tcp: Vec<raw::OpaqueValue>,
    pub(crate) tls: Vec<raw::OpaqueValue>,
    pub(crate) export_to: Vec<String>,
    /// Root routes whose delegation contributed no route (delegate missing, not exported, or
    /// every delegate route in conflict). They route nothing, as in Istio, but are written back
    /// by [`VirtualService::to_raw`] so that the written configuration loads to the same value.
    pub(crate) skipped_delegations: Vec<HttpRoute>,
}

impl VirtualService {
    /// Name, namespace, origin.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// Hosts as written, lower-cased (short names are not expanded: see
    /// [`crate::resolve_short_name`]). Empty for a delegate.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
    /// Gateways as written; empty means `mesh`.
    pub fn gateways(&self) -> &[String] {
        &self.gateways
    }
    /// Whether the rules apply to sidecars (the `mesh` gateway), which is where this library runs.
    pub fn applies_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == "mesh")
    }
    /// HTTP routes in order.
    pub fn http(&self) -> &[HttpRoute] {
        &self.http
    }
    /// Visibility list as written; empty means everywhere.
    pub fn export_to(&self) -> &[String] {
        &self.export_to
    }
    /// Whether this is a delegate (no hosts; only reachable through a root's `delegate`).
    pub fn is_delegate(&self) -> bool {
        self.hosts.is_empty()
    }
    /// Number of `tcp` and `tls` routes, kept but not applied by this library.
    pub fn non_http_routes(&self) -> usize {
        self.tcp.len() + self.tls.len()
    }
}

/// A whole `VirtualService`: metadata, hosts, gateways, delegate rules, exportTo, routes.
pub(crate) fn validate_virtual_service(
    cx: &mut Cx<'_>,
    raw: &raw::VirtualService,
) -> VirtualService {
    let root = Path::ROOT;
    let spec_p = root.key("spec");
    let spec = &raw.spec;
    let meta = Meta::from_raw(&raw.metadata, cx.source.clone(), cx.document);
    validate_metadata(cx, &raw.metadata);

    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        cx.error(
            &spec_p,
            "http, tcp or tls must be provided in virtual service",
        );
    }
    let applies_to_mesh = spec.gateways.is_empty() || spec.gateways.iter().any(|g| g == "mesh");
    let is_delegate = spec.hosts.is_empty();

    // Hosts (V2, V3, V4).
    let hosts_p = spec_p.key("hosts");
    let mut hosts = Vec::new();
    // Each host is reported once, with the first earlier host it overlaps.
    let overlaps = names::first_overlaps(&spec.hosts);
    for (i, h) in spec.hosts.iter().enumerate() {
        let p = hosts_p.index(i);
        if h == "*" && applies_to_mesh {
            cx.error(&p, "wildcard host * is not allowed for virtual services bound to the mesh gateway; name the hosts, or bind the virtual service to a gateway");
        } else if !names::is_ip(h) {
            if let Some(why) = names::wildcard_domain_problem(h) {
                cx.error(
                    &p,
                    format!("invalid host {h:?}: not a valid domain name or IP address ({why})"),
                );
            }
        }
        if let Some(j) = overlaps[i] {
            let earlier = &spec.hosts[j];
            cx.error(&p, format!("duplicate hosts in virtual service: {h:?} overlaps hosts[{j}] {earlier:?}; list each host once"));
        }
        hosts.push(h.to_ascii_lowercase());
    }

    // Delegate rules (V5).
    if is_delegate {
        if !spec.gateways.is_empty() {
            cx.error(
                &spec_p.key("gateways"),
                "virtual service delegate must have no gateways specified: a delegate (no hosts) inherits the root's gateways",
            );
        }
        if !spec.tls.is_empty() {
            cx.error(
                &spec_p.key("tls"),
                "virtual service delegate must have no tls route specified: delegation covers http routes only",
            );
        }
        if !spec.tcp.is_empty() {
            cx.error(
                &spec_p.key("tcp"),
                "virtual service delegate must have no tcp route specified: delegation covers http routes only",
            );
        }
    }

    // Gateways (V6).
    let gw_p = spec_p.key("gateways");
    for (i, g) in spec.gateways.iter().enumerate() {
        validate_gateway(cx, &gw_p.index(i), g);
    }

    if !applies_to_mesh {
        cx.warn(
            &gw_p,
            "this virtual service is bound to gateways only (no `mesh` in gateways): it does not apply to sidecars, so not to this library; it is validated but not applied by this library",
        );
    }

    // exportTo (V9).
    validate_export_to(cx, &spec_p.key("exportTo"), &spec.export_to);

    if !spec.tcp.is_empty() {
        cx.warn(
            &spec_p.key("tcp"),
            "tcp routes are accepted but not applied by this library; only http routes act",
        );
    }
    if !spec.tls.is_empty() {
        cx.warn(
            &spec_p.key("tls"),
            "tls routes are accepted but not applied by this library; only http routes act",
        );
    }

    let http_p = spec_p.key("http");
    let errors_before = cx.errors;
    let mut http = Vec::with_capacity(spec.http.len());
    for (i, r) in spec.http.iter().enumerate() {
        let p = http_p.index(i);
        match r {
            None => cx.error(&p, "http route may not be null"),
            Some(r) => {
                if let Some(route) =
                    validate_route(cx, &p, r, is_delegate, applies_to_mesh, &meta.namespace)
                {
                    http.push(route);
                }
            }
        }
    }
    // A route with an error is not what was written (a refused regex leaves its match block
    // without that condition), so which routes shadow which is only worked out without errors.
    if cx.errors == errors_before {
        validate_reachability(cx, &http_p, &spec.http, &http);
    }
    VirtualService {
        meta,
        hosts,
        gateways: spec.gateways.clone(),
        http,
        tcp: spec.tcp.clone(),
        tls: spec.tls.clone(),
        export_to: spec.export_to.clone(),
        skipped_delegations: Vec::new(),
    }
}
