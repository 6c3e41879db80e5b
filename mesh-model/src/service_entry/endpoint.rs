//! Service entry endpoints: addresses checked against the resolution, ports against the entry's.

use std::collections::{BTreeMap, HashSet};

use crate::diag::{Cx, Path};
use crate::names;
use crate::raw;

use super::port::ServicePort;
use super::resolution::Resolution;

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

/// Each endpoint: an address that suits `resolution`, ports the entry declares, valid labels
/// and weight.
pub(crate) fn validate_endpoints(
    cx: &mut Cx<'_>,
    ep: &Path<'_>,
    list: &[Option<raw::WorkloadEntry>],
    resolution: Resolution,
    declared_names: &HashSet<&str>,
) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    for (i, e) in list.iter().enumerate() {
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
    endpoints
}
