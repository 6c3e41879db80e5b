//! Traffic policies (DR-4-DR-6): the top-level, subset and port-level blocks.

use crate::diag::{Cx, Path};
use crate::names;
use crate::raw;

use super::connection_pool::{validate_connection_pool, ConnectionPoolSettings};
use super::load_balancer::{validate_load_balancer, LoadBalancer};
use super::outlier::{validate_outlier_detection, OutlierDetection};
use super::retry_budget::{validate_retry_budget, RetryBudget};
use super::tls::validate_tls;

/// A traffic policy. Each block is `None` when not written; the accessors on the blocks resolve
/// Istio's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrafficPolicy {
    pub(crate) load_balancer: Option<LoadBalancer>,
    pub(crate) connection_pool: Option<ConnectionPoolSettings>,
    pub(crate) outlier_detection: Option<OutlierDetection>,
    pub(crate) tls: Option<raw::ClientTlsSettings>,
    pub(crate) port_level: Vec<PortPolicy>,
    pub(crate) retry_budget: Option<RetryBudget>,
    pub(crate) other: Box<raw::TrafficPolicy>,
    pub(crate) raw: raw::TrafficPolicy,
}

impl TrafficPolicy {
    /// Load balancing; `None` means Istio's default, LEAST_REQUEST.
    pub fn load_balancer(&self) -> Option<&LoadBalancer> {
        self.load_balancer.as_ref()
    }
    /// The load-balancing algorithm with the default resolved.
    pub fn load_balancer_or_default(&self) -> LoadBalancer {
        self.load_balancer.clone().unwrap_or_default()
    }
    /// Connection pool limits; `None` means every limit at Istio's default (2^32 − 1).
    pub fn connection_pool(&self) -> Option<&ConnectionPoolSettings> {
        self.connection_pool.as_ref()
    }
    /// Connection pool with defaults resolved.
    pub fn connection_pool_or_default(&self) -> ConnectionPoolSettings {
        self.connection_pool.clone().unwrap_or_default()
    }
    /// Outlier detection; `None` means off.
    pub fn outlier_detection(&self) -> Option<&OutlierDetection> {
        self.outlier_detection.as_ref()
    }
    /// Client TLS settings as written (validated; `mesh_tower`'s `MeshClient` originates it).
    pub fn tls(&self) -> Option<&raw::ClientTlsSettings> {
        self.tls.as_ref()
    }
    /// Port-level overrides.
    pub fn port_level(&self) -> &[PortPolicy] {
        &self.port_level
    }
    /// Retry budget.
    pub fn retry_budget(&self) -> Option<&RetryBudget> {
        self.retry_budget.as_ref()
    }
}

/// A `portLevelSettings` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PortPolicy {
    pub(crate) port: u16,
    pub(crate) load_balancer: Option<LoadBalancer>,
    pub(crate) connection_pool: Option<ConnectionPoolSettings>,
    pub(crate) outlier_detection: Option<OutlierDetection>,
    pub(crate) tls: Option<raw::ClientTlsSettings>,
}

impl PortPolicy {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Load balancing for the port.
    pub fn load_balancer(&self) -> Option<&LoadBalancer> {
        self.load_balancer.as_ref()
    }
    /// Connection pool for the port.
    pub fn connection_pool(&self) -> Option<&ConnectionPoolSettings> {
        self.connection_pool.as_ref()
    }
    /// Outlier detection for the port.
    pub fn outlier_detection(&self) -> Option<&OutlierDetection> {
        self.outlier_detection.as_ref()
    }
}

/// Most `portLevelSettings` entries the CRD accepts (`maxItems`).
const MAX_PORT_LEVEL_SETTINGS: usize = 4096;

/// DR-4-DR-6: a non-empty policy, each block valid, port-level entries with a port.
pub(crate) fn validate_traffic_policy(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    t: &raw::TrafficPolicy,
) -> TrafficPolicy {
    if *t == raw::TrafficPolicy::default() {
        cx.error(
            p,
            "traffic policy must have at least one field: loadBalancer, connectionPool, outlierDetection, tls, portLevelSettings, tunnel, proxyProtocol or retryBudget (or remove it)",
        );
    }
    let lb = t.load_balancer.as_ref().and_then(|lb| {
        validate_load_balancer(
            cx,
            &p.key("loadBalancer"),
            lb,
            t.outlier_detection.is_some(),
        )
    });
    let pool = t
        .connection_pool
        .as_ref()
        .map(|c| validate_connection_pool(cx, &p.key("connectionPool"), c));
    let od = t
        .outlier_detection
        .as_ref()
        .map(|o| validate_outlier_detection(cx, &p.key("outlierDetection"), o));
    if let Some(tls) = &t.tls {
        validate_tls(cx, &p.key("tls"), tls);
    }
    let plp = p.key("portLevelSettings");
    let too_many = t.port_level_settings.len() > MAX_PORT_LEVEL_SETTINGS;
    if too_many {
        // The CRD's maxItems rejects the list before any entry is looked at, so the entries are
        // not validated one by one (which would also bury this error under thousands of others).
        cx.error(
            &plp,
            format!(
                "{} portLevelSettings entries: at most {MAX_PORT_LEVEL_SETTINGS} are allowed; merge entries for the same port",
                t.port_level_settings.len()
            ),
        );
    }
    let mut port_level: Vec<PortPolicy> = Vec::new();
    let mut ports_seen = std::collections::HashSet::new();
    let entries = if too_many {
        &[][..]
    } else {
        &t.port_level_settings[..]
    };
    for (i, pl) in entries.iter().enumerate() {
        let ip = plp.index(i);
        let Some(pl) = pl else {
            cx.error(&ip, "portLevelSettings entry may not be null");
            continue;
        };
        let port = match pl.port.as_ref().and_then(|x| x.number) {
            Some(n) if (1..=65535).contains(&n) => n as u16,
            Some(n) => {
                cx.error(
                    &ip.key("port").key("number"),
                    format!("port number {n} must be in the range 1..65535"),
                );
                continue;
            }
            None => {
                cx.error(
                    &ip.key("port"),
                    "portTrafficPolicy must have valid port: port.number is required",
                );
                continue;
            }
        };
        if pl.load_balancer.is_none()
            && pl.connection_pool.is_none()
            && pl.outlier_detection.is_none()
            && pl.tls.is_none()
        {
            cx.error(&ip, "port traffic policy must have at least one field: outlierDetection, connectionPool, loadBalancer or tls");
        }
        if !ports_seen.insert(port) {
            cx.warn(
                &ip.key("port"),
                format!("port {port} appears twice in portLevelSettings; the first entry wins"),
            );
        }
        if let Some(tls) = &pl.tls {
            validate_tls(cx, &ip.key("tls"), tls);
        }
        port_level.push(PortPolicy {
            port,
            load_balancer: pl.load_balancer.as_ref().and_then(|lb| {
                validate_load_balancer(
                    cx,
                    &ip.key("loadBalancer"),
                    lb,
                    pl.outlier_detection.is_some(),
                )
            }),
            connection_pool: pl
                .connection_pool
                .as_ref()
                .map(|c| validate_connection_pool(cx, &ip.key("connectionPool"), c)),
            outlier_detection: pl
                .outlier_detection
                .as_ref()
                .map(|o| validate_outlier_detection(cx, &ip.key("outlierDetection"), o)),
            tls: pl.tls.clone(),
        });
    }
    if let (Some(_), Some(_)) = (&t.tunnel, &t.proxy_protocol) {
        cx.error(
            p,
            "only one of tunnel or proxyProtocol can be set: tunnel applies to TCP/TLS, proxyProtocol adds a PROXY header",
        );
    }
    if let Some(tun) = &t.tunnel {
        let tp = p.key("tunnel");
        match tun.protocol.as_deref() {
            None | Some("CONNECT" | "POST") => {}
            Some(other) => cx.error(
                &tp.key("protocol"),
                format!("tunnel protocol {other:?} must be CONNECT or POST"),
            ),
        }
        match tun.target_host.as_deref() {
            Some(h)
                if names::is_ip(h)
                    || names::wildcard_domain_problem(h).is_none() && !h.starts_with('*') => {}
            _ => cx.error(
                &tp.key("targetHost"),
                "tunnel target host must be a valid domain name or IP address",
            ),
        }
        if !tun.target_port.is_some_and(|n| (1..=65535).contains(&n)) {
            cx.error(
                &tp.key("targetPort"),
                "tunnel targetPort must be in the range 1..65535",
            );
        }
    }
    if let Some(pp) = &t.proxy_protocol {
        if !matches!(pp.version.as_deref(), None | Some("V1" | "V2")) {
            cx.error(
                &p.key("proxyProtocol").key("version"),
                format!(
                    "unknown proxyProtocol version {:?}: expected one of V1, V2",
                    pp.version.as_deref().unwrap_or("")
                ),
            );
        }
    }
    let retry_budget = t
        .retry_budget
        .as_ref()
        .map(|rb| validate_retry_budget(cx, &p.key("retryBudget"), rb));
    TrafficPolicy {
        load_balancer: lb,
        connection_pool: pool,
        outlier_detection: od,
        tls: t.tls.clone(),
        port_level,
        retry_budget,
        other: Box::new(raw::TrafficPolicy {
            tunnel: t.tunnel.clone(),
            proxy_protocol: t.proxy_protocol.clone(),
            ..Default::default()
        }),
        raw: t.clone(),
    }
}
