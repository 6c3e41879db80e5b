//! Service entry ports (SE rules on names, numbers and protocols).

use std::collections::HashSet;

use crate::diag::{Cx, Path};
use crate::names;
use crate::raw;

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

/// Each port: a unique DNS-1123 name, a unique number, a known protocol, a valid target port.
/// Returns the ports and the names declared (which endpoint ports must use).
pub(crate) fn validate_ports<'r>(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    list: &'r [Option<raw::ServicePort>],
) -> (Vec<ServicePort>, HashSet<&'r str>) {
    let mut ports: Vec<ServicePort> = Vec::new();
    let mut declared_names: HashSet<&str> = HashSet::new();
    let mut numbers = HashSet::new();
    for (i, port) in list.iter().enumerate() {
        let ip = p.index(i);
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
                if !declared_names.insert(n) {
                    cx.error(
                        &ip.key("name"),
                        format!("service entry port name {n:?} already defined: duplicate port names are not allowed"),
                    );
                }
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
        if !numbers.insert(number) {
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
    (ports, declared_names)
}
