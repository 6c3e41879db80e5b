//! Validated `ServiceEntry`: how a user outside Kubernetes declares the endpoints behind a host
//! and the labels that subsets select.

use std::collections::BTreeMap;

use crate::diag::{Cx, Path};
use crate::meta::Meta;
use crate::names;
use crate::raw;
use crate::virtual_service::check_export_to;

/// How endpoints of a `ServiceEntry` are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Use the address the caller connected to.
    None,
    /// Use the listed endpoint addresses.
    Static,
    /// Resolve the endpoint (or host) names with DNS.
    Dns,
    /// Resolve with DNS, one address at a time.
    DnsRoundRobin,
}

impl Resolution {
    fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
        }
    }
}

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

/// A service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub(crate) number: u16,
    pub(crate) name: String,
    pub(crate) protocol: Option<String>,
    pub(crate) target_port: Option<u16>,
}

impl ServicePort {
    /// Service port number.
    pub fn number(&self) -> u16 {
        self.number
    }
    /// Port name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Protocol as written (`HTTP`, `GRPC`, ...).
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    /// Port on the endpoints, when it differs.
    pub fn target_port(&self) -> Option<u16> {
        self.target_port
    }
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub(crate) address: String,
    pub(crate) ports: BTreeMap<String, u16>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) locality: Option<String>,
    pub(crate) weight: u32,
}

impl Endpoint {
    /// IP address or host name.
    pub fn address(&self) -> &str {
        &self.address
    }
    /// Port name to endpoint port overrides.
    pub fn ports(&self) -> &BTreeMap<String, u16> {
        &self.ports
    }
    /// The port to connect to for service port `port`: the endpoint's override for that port's
    /// name, else the port's `targetPort`, else the service port itself.
    pub fn port_for(&self, port: &ServicePort) -> u16 {
        self.ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }
    /// Labels that subsets select.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    /// `region/zone/subzone`.
    pub fn locality(&self) -> Option<&str> {
        self.locality.as_deref()
    }
    /// Load-balancing weight (1 when unset).
    pub fn weight(&self) -> u32 {
        self.weight
    }
}

/// Port protocols Istio's `protocol.Parse` knows (compared upper-cased).
const KNOWN_PROTOCOLS: [&str; 13] = [
    "HTTP",
    "HTTPS",
    "HTTP2",
    "GRPC",
    "GRPC-WEB",
    "TCP",
    "TLS",
    "UDP",
    "MONGO",
    "MYSQL",
    "REDIS",
    "THRIFT",
    "HTTP_PROXY",
];

pub(crate) fn validate(cx: &mut Cx<'_>, raw: &raw::ServiceEntry) -> ServiceEntry {
    let root = Path::ROOT;
    let sp = root.key("spec");
    let spec = &raw.spec;
    let meta = Meta::from_raw(&raw.metadata, cx.source.clone(), cx.document);
    crate::load::check_metadata(cx, &raw.metadata);
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
    let pp = sp.key("ports");
    let mut ports: Vec<ServicePort> = Vec::new();
    let mut declared_names: Vec<&str> = Vec::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let ip = pp.index(i);
        let Some(port) = port else {
            cx.error(&ip, "service entry port may not be null");
            continue;
        };
        match port.name.as_deref() {
            None => cx.error(
                &ip.key("name"),
                "port name is required (a DNS-1123 label such as http or tcp-db)",
            ),
            Some(n) if !names::is_dns1123_label(n) => cx.error(
                &ip.key("name"),
                format!("invalid port name {n:?}: use a DNS-1123 label (letters, digits, '-')"),
            ),
            Some(n) => {
                if declared_names.contains(&n) {
                    cx.error(
                        &ip.key("name"),
                        format!("service entry port name {n:?} already defined: duplicate port names are not allowed"),
                    );
                }
                declared_names.push(n);
            }
        }
        if let Some(proto) = port.protocol.as_deref() {
            if !proto.is_empty() && !KNOWN_PROTOCOLS.contains(&proto.to_ascii_uppercase().as_str())
            {
                cx.error(
                    &ip.key("protocol"),
                    format!("unsupported protocol {proto:?}: use one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, MYSQL, REDIS, THRIFT, HTTP_PROXY (or leave it empty for detection)"),
                );
            }
        }
        let number = match port.number {
            Some(n) if (1..=65535).contains(&n) => n as u16,
            Some(n) => {
                cx.error(
                    &ip.key("number"),
                    format!("port number {n} must be in the range 1..65535"),
                );
                continue;
            }
            None => {
                cx.error(
                    &ip.key("number"),
                    "port number is required (in the range 1..65535)",
                );
                continue;
            }
        };
        let name = port.name.clone().unwrap_or_default();
        if ports.iter().any(|p| p.number == number) {
            cx.error(
                &ip.key("number"),
                format!("service entry port {number} already defined: duplicate port numbers are not allowed"),
            );
        }
        let target_port = match port.target_port {
            None | Some(0) => None,
            Some(t) if (1..=65535).contains(&t) => Some(t as u16),
            Some(t) => {
                cx.error(
                    &ip.key("targetPort"),
                    format!("targetPort {t} must be in the range 1..65535"),
                );
                None
            }
        };
        ports.push(ServicePort {
            number,
            name,
            protocol: port.protocol.clone(),
            target_port,
        });
    }
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
    let mut endpoints = Vec::new();
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
    for (i, e) in spec.endpoints.iter().enumerate() {
        let ip = ep.index(i);
        let Some(e) = e else {
            cx.error(&ip, "endpoint may not be null");
            continue;
        };
        let address = e.address.clone().unwrap_or_default();
        let ap = ip.key("address");
        match resolution {
            Resolution::Static => {
                if address.is_empty() {
                    if e.network.is_none() {
                        cx.error(
                            &ap,
                            "address is required for a STATIC endpoint (an IP address)",
                        );
                    }
                } else if !names::is_ip(&address) && !address.starts_with("unix://") {
                    cx.error(
                        &ap,
                        format!("endpoint address {address:?} is not a valid IP address: STATIC resolution needs IPs (use resolution: DNS for host names)"),
                    );
                }
            }
            Resolution::Dns | Resolution::DnsRoundRobin => {
                if !names::is_ip(&address)
                    && (address.is_empty()
                        || address.contains('*')
                        || names::wildcard_domain_problem(&address).is_some())
                {
                    cx.error(
                        &ap,
                        format!(
                            "endpoint address {address:?} is not a valid FQDN or an IP address"
                        ),
                    );
                }
            }
            Resolution::None => {}
        }
        let mut eports = BTreeMap::new();
        for (name, n) in &e.ports {
            let np = ip.key("ports");
            let np = np.key(name);
            if !declared_names.contains(&name.as_str()) {
                cx.error(
                    &np,
                    format!("endpoint port {name:?} is not defined by the service entry: name one of its ports"),
                );
            }
            match u16::try_from(*n) {
                Ok(n) if n > 0 => {
                    eports.insert(name.clone(), n);
                }
                _ => cx.error(
                    &np,
                    format!("port number {n} must be in the range 1..65535"),
                ),
            }
        }
        let lp = ip.key("labels");
        for (k, v) in &e.labels {
            if let Some(why) = names::label_key_problem(k).or_else(|| names::label_value_problem(v))
            {
                cx.error(&lp.key(k), why);
            }
        }
        let weight = match e.weight {
            None | Some(0) => 1,
            Some(w) if w < 0 => {
                cx.error(
                    &ip.key("weight"),
                    format!(
                        "weight {w} cannot be negative; use 1..4294967295 (0 or unset means 1)"
                    ),
                );
                1
            }
            Some(w) if w > i64::from(u32::MAX) => {
                cx.error(
                    &ip.key("weight"),
                    format!("weight {w} must be at most 4294967295"),
                );
                1
            }
            Some(w) => w as u32,
        };
        endpoints.push(Endpoint {
            address,
            ports: eports,
            labels: e.labels.clone(),
            locality: e.locality.clone(),
            weight,
        });
    }
    check_export_to(cx, &sp.key("exportTo"), &spec.export_to);
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
