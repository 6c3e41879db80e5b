//! Validated `ServiceEntry`: how a user outside Kubernetes declares the endpoints behind a host
//! and the labels that subsets select.

use crate::checks::{validate_export_to, validate_metadata};
use crate::diag::{Cx, Path};
use crate::meta::Meta;
use crate::names;
use crate::raw;

use endpoint::validate_endpoints;
use port::validate_ports;

mod endpoint;
mod port;
mod resolution;

pub use endpoint::Endpoint;
pub use port::ServicePort;
pub use resolution::Resolution;

/// A validated `ServiceEntry`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEntry {
    pub(crate) meta: Meta,
    pub(crate) hosts: Vec<String>,
    pub(crate) addresses: Vec<String>,
    pub(crate) ports: Vec<ServicePort>,
    pub(crate) location: Option<String>,
    pub(crate) resolution: Resolution,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) export_to: Vec<String>,
    pub(crate) raw: raw::ServiceEntrySpec,
}

impl ServiceEntry {
    /// Name, namespace, origin.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// Hosts, lower-cased.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
    /// Virtual addresses.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }
    /// Service ports.
    pub fn ports(&self) -> &[ServicePort] {
        &self.ports
    }
    /// Resolution mode.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }
    /// Declared endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }
    /// Visibility.
    pub fn export_to(&self) -> &[String] {
        &self.export_to
    }
    /// `MESH_EXTERNAL` or `MESH_INTERNAL`, as written.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
    /// The identities (SANs) the workloads behind the hosts present: what an `ISTIO_MUTUAL`
    /// connection checks when the DestinationRule names none.
    pub fn subject_alt_names(&self) -> &[String] {
        &self.raw.subject_alt_names
    }

    /// Back to the wire form.
    pub fn to_raw(&self) -> raw::ServiceEntry {
        let mut spec = self.raw.clone();
        spec.resolution = Some(self.resolution.as_str().to_owned());
        raw::ServiceEntry {
            api_version: Some("networking.istio.io/v1".into()),
            kind: Some("ServiceEntry".into()),
            metadata: self.meta.to_raw(),
            spec,
        }
    }
}

/// A whole `ServiceEntry`: hosts, resolution, addresses, ports, endpoints, exportTo.
pub(crate) fn validate_service_entry(cx: &mut Cx<'_>, raw: &raw::ServiceEntry) -> ServiceEntry {
    let root = Path::ROOT;
    let sp = root.key("spec");
    let spec = &raw.spec;
    let meta = Meta::from_raw(&raw.metadata, cx.source.clone(), cx.document);
    validate_metadata(cx, &raw.metadata);
    let hp = sp.key("hosts");
    if spec.hosts.is_empty() {
        cx.error(
            &hp,
            "service entry must have at least one host: name the external service",
        );
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        if h == "*" {
            cx.error(
                &hp.index(i),
                "invalid host *: a wildcard-only host is not allowed in a service entry; name the service (\"*.example.com\" is allowed)",
            );
        } else if let Some(why) = names::wildcard_domain_problem(h) {
            cx.error(
                &hp.index(i),
                format!("invalid host {h:?}: not a valid domain name ({why})"),
            );
        } else if h.starts_with('*') && !h.starts_with("*.") {
            cx.warn(
                &hp.index(i),
                format!(
                    "partial wildcard {h:?} not allowed: write \"*.{}\" to match every subdomain",
                    h.trim_start_matches('*').trim_start_matches('.')
                ),
            );
        }
    }
    let resolution = match spec.resolution.as_deref() {
        None | Some("NONE") => Resolution::None,
        Some("STATIC") => Resolution::Static,
        Some("DNS") => Resolution::Dns,
        Some("DNS_ROUND_ROBIN") => Resolution::DnsRoundRobin,
        Some("DYNAMIC_DNS") => {
            cx.error(
                &sp.key("resolution"),
                "resolution DYNAMIC_DNS is valid in Istio but mesh-model cannot resolve it (it needs the sidecar's DNS proxy), so the entry is refused; use DNS with explicit hosts",
            );
            Resolution::None
        }
        Some(other) => {
            cx.error(
                &sp.key("resolution"),
                format!("unknown resolution {other:?}: expected one of NONE, STATIC, DNS, DNS_ROUND_ROBIN"),
            );
            Resolution::None
        }
    };
    if let Some(l) = &spec.location {
        if l != "MESH_EXTERNAL" && l != "MESH_INTERNAL" {
            cx.error(
                &sp.key("location"),
                format!("unknown location {l:?}: expected one of MESH_EXTERNAL, MESH_INTERNAL"),
            );
        }
    }
    let ap = sp.key("addresses");
    let mut cidr_found = false;
    for (i, a) in spec.addresses.iter().enumerate() {
        cidr_found |= a.contains('/');
        if !names::is_ip_or_cidr(a) {
            cx.error(
                &ap.index(i),
                format!(
                    "{a:?} is not a valid IP address or CIDR block (e.g. 10.0.0.1 or 10.0.0.0/16)"
                ),
            );
        }
    }
    if cidr_found && !matches!(resolution, Resolution::None | Resolution::Static) {
        cx.error(
            &ap,
            "CIDR addresses are allowed only when resolution is set to NONE or STATIC",
        );
    }
    let (ports, declared_names) = validate_ports(cx, &sp.key("ports"), &spec.ports);
    if resolution != Resolution::None && spec.hosts.len() > 1 {
        let plain_tcp = spec.ports.iter().flatten().position(|p| {
            let proto = p.protocol.as_deref().unwrap_or("").to_ascii_uppercase();
            !matches!(
                proto.as_str(),
                "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTP_PROXY" | "HTTPS" | "TLS"
            )
        });
        if let Some(i) = plain_tcp {
            cx.error(
                &hp,
                format!("multiple hosts provided with non-HTTP, non-TLS ports (ports[{i}]): nothing in plain TCP tells the hosts apart; use one ServiceEntry per host or resolution NONE"),
            );
        }
    }
    let ep = sp.key("endpoints");
    if !spec.endpoints.is_empty() && spec.workload_selector.is_some() {
        cx.error(
            &sp,
            "only one of workloadSelector or endpoints can be set in a service entry",
        );
    }
    match resolution {
        Resolution::None if !spec.endpoints.is_empty() => cx.error(
            &ep,
            "no endpoints should be provided for resolution type NONE (the default): set resolution: STATIC or DNS",
        ),
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if spec.endpoints.is_empty() {
                for (i, h) in spec.hosts.iter().enumerate() {
                    if h.contains('*') {
                        cx.error(
                            &hp.index(i),
                            format!("hosts must be FQDN if no endpoints are provided for resolution mode {}: {h:?} cannot be resolved; add endpoints or name a resolvable host", resolution.as_str()),
                        );
                    }
                }
            }
            if resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
                cx.error(
                    &ep,
                    "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN; use DNS to balance over several",
                );
            }
        }
        _ => {}
    }
    let endpoints = validate_endpoints(cx, &ep, &spec.endpoints, resolution, &declared_names);
    validate_export_to(cx, &sp.key("exportTo"), &spec.export_to);
    ServiceEntry {
        meta,
        hosts: spec.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        addresses: spec.addresses.clone(),
        ports,
        location: spec.location.clone(),
        resolution,
        endpoints,
        export_to: spec.export_to.clone(),
        raw: spec.clone(),
    }
}
