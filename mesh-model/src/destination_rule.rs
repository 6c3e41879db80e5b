//! Validated `DestinationRule` and traffic policies, with Istio's defaults.

use std::collections::BTreeMap;

use crate::diag::{Cx, Path};
use crate::meta::Meta;
use crate::names;
use crate::virtual_service::{check_export_to, duration};
use crate::{raw, Duration};

/// A validated `DestinationRule`.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRule {
    pub(crate) meta: Meta,
    pub(crate) host: String,
    pub(crate) traffic_policy: Option<TrafficPolicy>,
    pub(crate) subsets: Vec<Subset>,
    pub(crate) export_to: Vec<String>,
    pub(crate) workload_selector: Option<BTreeMap<String, String>>,
}

impl DestinationRule {
    /// Name, namespace, origin.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// Host as written, lower-cased (see [`crate::resolve_short_name`]).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// Top-level policy.
    pub fn traffic_policy(&self) -> Option<&TrafficPolicy> {
        self.traffic_policy.as_ref()
    }
    /// Subsets in order.
    pub fn subsets(&self) -> &[Subset] {
        &self.subsets
    }
    /// A subset by name.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }
    /// Visibility.
    pub fn export_to(&self) -> &[String] {
        &self.export_to
    }
    /// Workload selector labels, when the rule applies to some workloads only.
    pub fn workload_selector(&self) -> Option<&BTreeMap<String, String>> {
        self.workload_selector.as_ref()
    }

    /// The effective policy for traffic to `subset` (or the bare host) on `port`, merged as Istio
    /// does (`MergeSubsetTrafficPolicy`): top level, replaced wholesale by a matching port-level
    /// entry; then each of loadBalancer, connectionPool, outlierDetection and tls replaced by the
    /// subset's (or the subset's port-level entry, which replaces all four) when set.
    pub fn effective_policy(&self, subset: Option<&str>, port: Option<u16>) -> TrafficPolicy {
        let mut base = self.traffic_policy.clone().unwrap_or_default();
        if let Some(pl) = port
            .and_then(|p| base.port_level.iter().find(|x| x.port == p))
            .cloned()
        {
            base = TrafficPolicy {
                load_balancer: pl.load_balancer,
                connection_pool: pl.connection_pool,
                outlier_detection: pl.outlier_detection,
                tls: pl.tls,
                port_level: Vec::new(),
                retry_budget: None,
                other: base.other.clone(),
                raw: raw::TrafficPolicy::default(),
            };
        }
        let Some(sp) = subset
            .and_then(|s| self.subset(s))
            .and_then(|s| s.traffic_policy.as_ref())
        else {
            return base;
        };
        let port_entry = port.and_then(|p| sp.port_level.iter().find(|x| x.port == p));
        match port_entry {
            Some(pl) => {
                base.load_balancer = pl.load_balancer.clone();
                base.connection_pool = pl.connection_pool.clone();
                base.outlier_detection = pl.outlier_detection.clone();
                base.tls = pl.tls.clone();
            }
            None => {
                if sp.load_balancer.is_some() {
                    base.load_balancer = sp.load_balancer.clone();
                }
                if sp.connection_pool.is_some() {
                    base.connection_pool = sp.connection_pool.clone();
                }
                if sp.outlier_detection.is_some() {
                    base.outlier_detection = sp.outlier_detection.clone();
                }
                if sp.tls.is_some() {
                    base.tls = sp.tls.clone();
                }
            }
        }
        if sp.retry_budget.is_some() {
            base.retry_budget = sp.retry_budget.clone();
        }
        base
    }

    /// Back to the wire form.
    pub fn to_raw(&self) -> raw::DestinationRule {
        raw::DestinationRule {
            api_version: Some("networking.istio.io/v1".into()),
            kind: Some("DestinationRule".into()),
            metadata: self.meta.to_raw(),
            spec: raw::DestinationRuleSpec {
                host: Some(self.host.clone()),
                traffic_policy: self.traffic_policy.as_ref().map(|t| t.raw.clone()),
                subsets: self
                    .subsets
                    .iter()
                    .map(|s| {
                        Some(raw::Subset {
                            name: Some(s.name.clone()),
                            labels: s.labels.clone(),
                            traffic_policy: s.traffic_policy.as_ref().map(|t| t.raw.clone()),
                        })
                    })
                    .collect(),
                export_to: self.export_to.clone(),
                workload_selector: self
                    .workload_selector
                    .as_ref()
                    .map(|l| raw::WorkloadSelector {
                        match_labels: l.clone(),
                    }),
            },
        }
    }
}

/// A named subset: endpoints whose labels include all of `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) traffic_policy: Option<TrafficPolicy>,
}

impl Subset {
    /// Subset name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Label selector.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    /// The subset's own policy (merged with the top level by [`DestinationRule::effective_policy`]).
    pub fn traffic_policy(&self) -> Option<&TrafficPolicy> {
        self.traffic_policy.as_ref()
    }
    /// Whether an endpoint with `endpoint_labels` belongs to the subset.
    pub fn selects(&self, endpoint_labels: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| endpoint_labels.get(k) == Some(v))
    }
}

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

/// Simple load-balancing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimpleLb {
    /// Power of two choices over active requests (Istio's default; also `LEAST_CONN`).
    #[default]
    LeastRequest,
    /// Weighted round robin.
    RoundRobin,
    /// Uniform random.
    Random,
    /// Forward to the original destination address.
    Passthrough,
}

/// What a consistent hash hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// A request header.
    Header(String),
    /// A cookie (`ttl` set: Envoy generates it when absent).
    Cookie {
        /// Cookie name.
        name: String,
        /// Cookie path.
        path: Option<String>,
        /// Lifetime of a generated cookie; zero means a session cookie.
        ttl: Option<std::time::Duration>,
    },
    /// The source IP.
    SourceIp,
    /// A query parameter.
    QueryParameter(String),
}

/// Consistent hashing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashTable {
    /// Ketama ring with at least this many entries (Envoy default 1024).
    RingHash {
        /// Minimum ring size.
        minimum_ring_size: u64,
    },
    /// Maglev lookup table of this (prime) size.
    Maglev {
        /// Table size.
        table_size: u64,
    },
}

/// A load-balancing policy with defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancer {
    /// A simple algorithm.
    Simple(SimpleLb),
    /// Consistent hashing.
    ConsistentHash {
        /// What is hashed.
        key: HashKey,
        /// The table.
        table: HashTable,
    },
}

impl Default for LoadBalancer {
    /// Istio's default: LEAST_REQUEST (`cluster_traffic_policy.go`, `defaultLBAlgorithm`).
    fn default() -> Self {
        LoadBalancer::Simple(SimpleLb::LeastRequest)
    }
}

/// Connection pool limits with Istio's defaults: every limit 2^32 − 1 (Istio overrides Envoy's
/// 1024s in `getDefaultCircuitBreakerThresholds`), connect timeout 10 s (mesh default),
/// requests per connection unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPoolSettings {
    pub(crate) max_connections: u32,
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) http1_max_pending_requests: u32,
    pub(crate) http2_max_requests: u32,
    pub(crate) max_requests_per_connection: u32,
    pub(crate) max_retries: u32,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) tcp_idle_timeout: Option<Duration>,
    pub(crate) tcp_keepalive: Option<TcpKeepalive>,
    pub(crate) max_connection_duration: Option<Duration>,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) h2_upgrade_policy: H2UpgradePolicy,
    pub(crate) use_client_protocol: bool,
    pub(crate) http2_keepalive: Option<Http2KeepAlive>,
}

/// `tcp.tcpKeepalive`: `SO_KEEPALIVE` with the probes, idle time and interval written; an
/// unset field keeps the operating system's value (Linux: 9 probes, 7200 s, 75 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpKeepalive {
    pub(crate) probes: Option<u32>,
    pub(crate) time: Option<std::time::Duration>,
    pub(crate) interval: Option<std::time::Duration>,
}

impl TcpKeepalive {
    /// Unanswered probes before the connection is dead.
    pub fn probes(&self) -> Option<u32> {
        self.probes
    }
    /// Idle time before the first probe.
    pub fn time(&self) -> Option<std::time::Duration> {
        self.time
    }
    /// Time between probes.
    pub fn interval(&self) -> Option<std::time::Duration> {
        self.interval
    }
}

/// `http.http2KeepAlive`: a PING every `interval`; no answer within `timeout` closes the
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2KeepAlive {
    pub(crate) interval: std::time::Duration,
    pub(crate) timeout: std::time::Duration,
}

impl Http2KeepAlive {
    /// Time between pings.
    pub fn interval(&self) -> std::time::Duration {
        self.interval
    }
    /// How long a ping may go unanswered.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }
}

/// `http.h2UpgradePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum H2UpgradePolicy {
    /// `DEFAULT` (or unset): the mesh-wide policy, whose default is `DO_NOT_UPGRADE`.
    #[default]
    Default,
    /// `DO_NOT_UPGRADE`.
    DoNotUpgrade,
    /// `UPGRADE`: HTTP/2 to the upstream even on HTTP/1.1 ports.
    Upgrade,
}

/// A client TLS `mode` (`ClientTLSSettings.TLSmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `DISABLE`: plaintext.
    Disable,
    /// `SIMPLE`: TLS, the server verified.
    Simple,
    /// `MUTUAL`: TLS with a client certificate from files.
    Mutual,
    /// `ISTIO_MUTUAL`: mutual TLS with the workload's mesh certificate.
    IstioMutual,
}

impl TlsMode {
    /// The mode of a (validated) `tls` block: `DISABLE` when unset; `None` for a mode Istio
    /// does not know (validation rejects those).
    pub fn of(tls: &raw::ClientTlsSettings) -> Option<TlsMode> {
        Some(match tls.mode.as_deref() {
            None | Some("DISABLE") => TlsMode::Disable,
            Some("SIMPLE") => TlsMode::Simple,
            Some("MUTUAL") => TlsMode::Mutual,
            Some("ISTIO_MUTUAL") => TlsMode::IstioMutual,
            Some(_) => return None,
        })
    }

    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "DISABLE",
            TlsMode::Simple => "SIMPLE",
            TlsMode::Mutual => "MUTUAL",
            TlsMode::IstioMutual => "ISTIO_MUTUAL",
        }
    }
}

/// Istio's "unlimited": 2^32 − 1.
pub const UNLIMITED: u32 = u32::MAX;

impl Default for ConnectionPoolSettings {
    fn default() -> Self {
        ConnectionPoolSettings {
            max_connections: UNLIMITED,
            connect_timeout: std::time::Duration::from_secs(10),
            http1_max_pending_requests: UNLIMITED,
            http2_max_requests: UNLIMITED,
            max_requests_per_connection: 0,
            max_retries: UNLIMITED,
            idle_timeout: None,
            tcp_idle_timeout: None,
            tcp_keepalive: None,
            max_connection_duration: None,
            max_concurrent_streams: 0,
            h2_upgrade_policy: H2UpgradePolicy::Default,
            use_client_protocol: false,
            http2_keepalive: None,
        }
    }
}

impl ConnectionPoolSettings {
    /// Maximum connections to the whole cluster.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }
    /// TCP connect timeout.
    pub fn connect_timeout(&self) -> std::time::Duration {
        self.connect_timeout
    }
    /// Requests allowed to wait for a connection.
    pub fn http1_max_pending_requests(&self) -> u32 {
        self.http1_max_pending_requests
    }
    /// Concurrent requests allowed to the cluster.
    pub fn http2_max_requests(&self) -> u32 {
        self.http2_max_requests
    }
    /// Requests per connection; 0 is unlimited.
    pub fn max_requests_per_connection(&self) -> u32 {
        self.max_requests_per_connection
    }
    /// Concurrent retries allowed to the cluster.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }
    /// Upstream idle timeout, when written (`http.idleTimeout`).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }
    /// `tcp.idleTimeout`, when written (`0s` included).
    pub fn tcp_idle_timeout(&self) -> Option<Duration> {
        self.tcp_idle_timeout
    }
    /// The idle timeout Istio gives the cluster's HTTP connections: `http.idleTimeout`, else
    /// `tcp.idleTimeout` (`common_http_protocol_options.idle_timeout`); `None` when neither is
    /// written (Envoy's default, 1 hour, applies). A zero duration disables it.
    pub fn upstream_idle_timeout(&self) -> Option<std::time::Duration> {
        self.idle_timeout
            .or(self.tcp_idle_timeout)
            .map(Duration::as_std)
    }
    /// `tcp.tcpKeepalive`, when written.
    pub fn tcp_keepalive(&self) -> Option<&TcpKeepalive> {
        self.tcp_keepalive.as_ref()
    }
    /// `tcp.maxConnectionDuration`, when written (zero means none).
    pub fn max_connection_duration(&self) -> Option<std::time::Duration> {
        self.max_connection_duration
            .map(Duration::as_std)
            .filter(|d| !d.is_zero())
    }
    /// `http.maxConcurrentStreams`; 0 when unset.
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }
    /// `http.h2UpgradePolicy`.
    pub fn h2_upgrade_policy(&self) -> H2UpgradePolicy {
        self.h2_upgrade_policy
    }
    /// `http.useClientProtocol`.
    pub fn use_client_protocol(&self) -> bool {
        self.use_client_protocol
    }
    /// `http.http2KeepAlive`, when written.
    pub fn http2_keepalive(&self) -> Option<&Http2KeepAlive> {
        self.http2_keepalive.as_ref()
    }
}

/// Outlier detection with Envoy's and Istio's defaults: 5 consecutive 5xx, gateway errors off,
/// 5 local-origin failures (split mode only), interval 10 s, base ejection 30 s, at most 10%
/// ejected, panic threshold 0 (disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    pub(crate) consecutive_5xx_errors: u32,
    pub(crate) consecutive_gateway_errors: u32,
    pub(crate) consecutive_local_origin_failures: u32,
    pub(crate) split_external_local_origin_errors: bool,
    pub(crate) interval: std::time::Duration,
    pub(crate) base_ejection_time: std::time::Duration,
    pub(crate) max_ejection_percent: u32,
    pub(crate) min_health_percent: u32,
    pub(crate) http_error_codes: Vec<u16>,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx_errors: 5,
            consecutive_gateway_errors: 0,
            consecutive_local_origin_failures: 5,
            split_external_local_origin_errors: false,
            interval: std::time::Duration::from_secs(10),
            base_ejection_time: std::time::Duration::from_secs(30),
            max_ejection_percent: 10,
            min_health_percent: 0,
            http_error_codes: Vec::new(),
        }
    }
}

impl OutlierDetection {
    /// Consecutive 5xx before ejection; 0 disables.
    pub fn consecutive_5xx_errors(&self) -> u32 {
        self.consecutive_5xx_errors
    }
    /// Consecutive 502/503/504 before ejection; 0 disables.
    pub fn consecutive_gateway_errors(&self) -> u32 {
        self.consecutive_gateway_errors
    }
    /// Consecutive local-origin failures before ejection (split mode).
    pub fn consecutive_local_origin_failures(&self) -> u32 {
        self.consecutive_local_origin_failures
    }
    /// Whether local-origin failures are counted apart.
    pub fn split_external_local_origin_errors(&self) -> bool {
        self.split_external_local_origin_errors
    }
    /// Sweep interval.
    pub fn interval(&self) -> std::time::Duration {
        self.interval
    }
    /// Base ejection time.
    pub fn base_ejection_time(&self) -> std::time::Duration {
        self.base_ejection_time
    }
    /// Maximum share of hosts ejected, percent.
    pub fn max_ejection_percent(&self) -> u32 {
        self.max_ejection_percent
    }
    /// Panic threshold, percent; 0 disables panic mode.
    pub fn min_health_percent(&self) -> u32 {
        self.min_health_percent
    }
    /// Codes that count as errors; empty means every 5xx.
    pub fn http_error_codes(&self) -> &[u16] {
        &self.http_error_codes
    }
}

/// Retry budget: `percent` of active requests may be retries, at least `min_retry_concurrency`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    pub(crate) percent: f64,
    pub(crate) min_retry_concurrency: u32,
}

impl RetryBudget {
    /// Share of active requests, percent (default 20).
    pub fn percent(&self) -> f64 {
        self.percent
    }
    /// Retries always allowed (default 3).
    pub fn min_retry_concurrency(&self) -> u32 {
        self.min_retry_concurrency
    }
}

// ---------------------------------------------------------------------------------------------

pub(crate) fn validate(cx: &mut Cx<'_>, raw: &raw::DestinationRule) -> DestinationRule {
    let root = Path::ROOT;
    let sp = root.key("spec");
    let spec = &raw.spec;
    let meta = Meta::from_raw(&raw.metadata, cx.source.clone(), cx.document);
    crate::load::check_metadata(cx, &raw.metadata);
    let host = match spec.host.as_deref() {
        None | Some("") => {
            cx.error(
                &sp.key("host"),
                "host is required: name the service the rule applies to",
            );
            String::new()
        }
        Some(h) => {
            if names::is_ip(h) {
                cx.error(
                    &sp.key("host"),
                    format!("invalid host {h:?}: an IP address is not allowed here; use the service's domain name"),
                );
            } else if let Some(why) = names::wildcard_domain_problem(h) {
                cx.error(
                    &sp.key("host"),
                    format!("invalid host {h:?}: not a valid domain name ({why})"),
                );
            }
            h.to_ascii_lowercase()
        }
    };
    let top_policy = spec
        .traffic_policy
        .as_ref()
        .map(|t| traffic_policy(cx, &sp.key("trafficPolicy"), t));
    let subp = sp.key("subsets");
    let mut subsets: Vec<Subset> = Vec::new();
    for (i, s) in spec.subsets.iter().enumerate() {
        let ip = subp.index(i);
        let Some(s) = s else {
            cx.error(&ip, "subset may not be null");
            continue;
        };
        let name = s.name.clone().unwrap_or_default();
        if s.name.is_none() {
            cx.error(
                &ip.key("name"),
                "subset name is required: give the subset a DNS-1123 label name",
            );
        } else if name.is_empty() {
            cx.error(
                &ip.key("name"),
                "subset name cannot be empty: give the subset a DNS-1123 label name",
            );
        } else if !names::is_dns1123_label(&name) {
            cx.error(
                &ip.key("name"),
                format!(
                    "subset name {name:?} is invalid: use a DNS-1123 label (letters, digits, '-')"
                ),
            );
        }
        if subsets.iter().any(|x| x.name == name) && !name.is_empty() {
            cx.error(
                &ip.key("name"),
                format!("duplicate subset names: {name:?} is defined twice; rename or merge one of them"),
            );
        }
        let lp = ip.key("labels");
        for (k, v) in &s.labels {
            if let Some(why) = names::label_key_problem(k).or_else(|| names::label_value_problem(v))
            {
                cx.error(&lp.key(k), why);
            }
        }
        let tp = s
            .traffic_policy
            .as_ref()
            .map(|t| traffic_policy(cx, &ip.key("trafficPolicy"), t));
        subsets.push(Subset {
            name,
            labels: s.labels.clone(),
            traffic_policy: tp,
        });
    }
    let ep = sp.key("exportTo");
    check_export_to(cx, &ep, &spec.export_to);
    if spec.workload_selector.is_some()
        && (spec.export_to.len() > 1 || spec.export_to.first().is_some_and(|e| e != "."))
    {
        cx.error(&ep, "a DestinationRule with a workload selector can only be exported to its own namespace: set exportTo: [\".\"]");
    }
    DestinationRule {
        meta,
        host,
        traffic_policy: top_policy,
        subsets,
        export_to: spec.export_to.clone(),
        workload_selector: spec
            .workload_selector
            .as_ref()
            .map(|w| w.match_labels.clone()),
    }
}

/// Most `portLevelSettings` entries the CRD accepts (`maxItems`).
const MAX_PORT_LEVEL_SETTINGS: usize = 4096;

fn traffic_policy(cx: &mut Cx<'_>, p: &Path<'_>, t: &raw::TrafficPolicy) -> TrafficPolicy {
    if *t == raw::TrafficPolicy::default() {
        cx.error(
            p,
            "traffic policy must have at least one field: loadBalancer, connectionPool, outlierDetection, tls, portLevelSettings, tunnel, proxyProtocol or retryBudget (or remove it)",
        );
    }
    let lb = t.load_balancer.as_ref().and_then(|lb| {
        load_balancer(
            cx,
            &p.key("loadBalancer"),
            lb,
            t.outlier_detection.is_some(),
        )
    });
    let pool = t
        .connection_pool
        .as_ref()
        .map(|c| connection_pool(cx, &p.key("connectionPool"), c));
    let od = t
        .outlier_detection
        .as_ref()
        .map(|o| outlier(cx, &p.key("outlierDetection"), o));
    if let Some(tls) = &t.tls {
        check_tls(cx, &p.key("tls"), tls);
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
        if port_level.iter().any(|x| x.port == port) {
            cx.warn(
                &ip.key("port"),
                format!("port {port} appears twice in portLevelSettings; the first entry wins"),
            );
        }
        if let Some(tls) = &pl.tls {
            check_tls(cx, &ip.key("tls"), tls);
        }
        port_level.push(PortPolicy {
            port,
            load_balancer: pl.load_balancer.as_ref().and_then(|lb| {
                load_balancer(
                    cx,
                    &ip.key("loadBalancer"),
                    lb,
                    pl.outlier_detection.is_some(),
                )
            }),
            connection_pool: pl
                .connection_pool
                .as_ref()
                .map(|c| connection_pool(cx, &ip.key("connectionPool"), c)),
            outlier_detection: pl
                .outlier_detection
                .as_ref()
                .map(|o| outlier(cx, &ip.key("outlierDetection"), o)),
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
    let retry_budget = t.retry_budget.as_ref().map(|rb| {
        let bp = p.key("retryBudget");
        let percent = rb.percent.unwrap_or(20.0);
        if !(0.0..=100.0).contains(&percent) {
            cx.error(
                &bp.key("percent").key("value"),
                format!("retry budget percent {percent} must be in range [0, 100]"),
            );
        }
        let min = rb.min_retry_concurrency.unwrap_or(3);
        if min < 0 || min > i64::from(u32::MAX) {
            cx.error(
                &bp.key("minRetryConcurrency"),
                "minRetryConcurrency must be between 0 and 2^32-1",
            );
        }
        if let Some(s) = &rb.budget_interval {
            if let Err(e) = Duration::parse_unbounded(s) {
                cx.error(&bp.key("budgetInterval"), e.to_string());
            }
        }
        RetryBudget {
            percent: percent.clamp(0.0, 100.0),
            min_retry_concurrency: min.clamp(0, i64::from(u32::MAX)) as u32,
        }
    });
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

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

fn load_balancer(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    lb: &raw::LoadBalancerSettings,
    has_outlier: bool,
) -> Option<LoadBalancer> {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        cx.error(
            p,
            "only one of simple or consistentHash can be set in a loadBalancer",
        );
    }
    if lb.warmup_duration_secs.is_some() && lb.warmup.is_some() {
        cx.error(p, "only one of warmupDurationSecs or warmup can be set");
    }
    if let Some(w) = &lb.warmup {
        let wp = p.key("warmup");
        match &w.duration {
            None => cx.error(
                &wp.key("duration"),
                "warmup duration is required (e.g. 60s)",
            ),
            Some(s) => {
                duration(cx, &wp.key("duration"), Some(s));
            }
        }
        if w.minimum_percent
            .is_some_and(|m| !(0.0..=100.0).contains(&m))
        {
            cx.error(
                &wp.key("minimumPercent"),
                "warmup minimumPercent must be greater than or equal to 0 and less than or equal to 100",
            );
        }
        if w.aggression.is_some_and(|a| a <= 0.0) {
            cx.error(
                &wp.key("aggression"),
                "warmup aggression must be greater than 0 (1.0 is linear)",
            );
        }
        cx.warn(
            &wp,
            "warmup (slow start) is validated but not applied by this library",
        );
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        cx.error(
            p,
            "only one of localityLbSetting or zoneAwareLbSetting can be set",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        check_locality(
            cx,
            &p.key("localityLbSetting"),
            l,
            has_outlier,
            LocalityKind::Locality,
        );
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        let zp = p.key("zoneAwareLbSetting");
        match serde_yaml::from_value::<raw::LocalityLbSetting>(z.value().clone()) {
            Ok(l) => check_locality(cx, &zp, &l, has_outlier, LocalityKind::ZoneAware),
            Err(e) => cx.error(
                &zp,
                format!("zoneAwareLbSetting does not have the expected shape (failover: [{{from, to}}], failoverPriority: [labels]): {e}"),
            ),
        }
    }
    if let Some(ch) = &lb.consistent_hash {
        let cp = p.key("consistentHash");
        let keys = usize::from(ch.http_header_name.is_some())
            + usize::from(ch.http_cookie.is_some())
            + usize::from(ch.use_source_ip == Some(true))
            + usize::from(ch.http_query_parameter_name.is_some());
        if keys > 1 {
            cx.error(&cp, "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName can be set as the consistent hash key");
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            cx.error(&cp, "only one of ringHash or maglev can be set");
        }
        if ch.minimum_ring_size.is_some() {
            cx.warn(
                &cp.key("minimumRingSize"),
                "minimumRingSize is deprecated; use ringHash.minimumRingSize",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                cx.error(
                    &cp,
                    "only one of the deprecated minimumRingSize or ringHash/maglev can be set; move the size into ringHash.minimumRingSize",
                );
            }
        }
        let key = if let Some(h) = &ch.http_header_name {
            HashKey::Header(h.to_ascii_lowercase())
        } else if let Some(c) = &ch.http_cookie {
            let kp = cp.key("httpCookie");
            let name = c.name.clone().unwrap_or_default();
            if name.is_empty() {
                cx.error(
                    &kp.key("name"),
                    "cookie name is required: name the cookie to hash on",
                );
            }
            let ap = kp.key("attributes");
            for (i, a) in c.attributes.iter().enumerate() {
                let an = a.name.clone().unwrap_or_default();
                if an.is_empty() {
                    cx.error(
                        &ap.index(i).key("name"),
                        "cookie attribute name cannot be empty",
                    );
                } else if c.attributes[..i]
                    .iter()
                    .any(|b| b.name.as_deref() == Some(an.as_str()))
                {
                    cx.error(
                        &ap.index(i).key("name"),
                        format!("duplicate cookie attribute {an:?}"),
                    );
                }
            }
            let ttl = c
                .ttl
                .as_deref()
                .and_then(|s| match Duration::parse_unbounded(s) {
                    Ok(d) => Some(d.as_std()),
                    Err(e) => {
                        cx.error(&kp.key("ttl"), e.to_string());
                        None
                    }
                });
            HashKey::Cookie {
                name,
                path: c.path.clone(),
                ttl,
            }
        } else if ch.use_source_ip == Some(true) {
            HashKey::SourceIp
        } else if let Some(q) = &ch.http_query_parameter_name {
            HashKey::QueryParameter(q.clone())
        } else {
            cx.error(&cp, "consistentHash needs a key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName");
            return None;
        };
        let table = if let Some(m) = &ch.maglev {
            let size = m.table_size.unwrap_or(0);
            let mp = cp.key("maglev");
            let tp = mp.key("tableSize");
            if size <= 0 {
                cx.error(
                    &tp,
                    "maglev tableSize must be set (a prime below 5000011, e.g. 65537)",
                );
            } else if size >= 5_000_011 {
                cx.error(
                    &tp,
                    format!("maglev tableSize {size} must be less than 5000011; use a prime such as 65537"),
                );
            } else if !is_prime(size as u64) {
                cx.error(
                    &tp,
                    format!("maglev tableSize {size} is not a prime number"),
                );
            }
            HashTable::Maglev {
                table_size: size.max(1) as u64,
            }
        } else {
            let size = ch
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(ch.minimum_ring_size)
                .unwrap_or(0);
            if size < 0 {
                cx.error(
                    &cp.key("ringHash").key("minimumRingSize"),
                    "minimumRingSize cannot be negative",
                );
            }
            HashTable::RingHash {
                minimum_ring_size: if size <= 0 { 1024 } else { size as u64 },
            }
        };
        return Some(LoadBalancer::ConsistentHash { key, table });
    }
    match lb.simple.as_deref() {
        None | Some("UNSPECIFIED" | "LEAST_REQUEST" | "LEAST_CONN") => {
            Some(LoadBalancer::Simple(SimpleLb::LeastRequest))
        }
        Some("ROUND_ROBIN") => Some(LoadBalancer::Simple(SimpleLb::RoundRobin)),
        Some("RANDOM") => Some(LoadBalancer::Simple(SimpleLb::Random)),
        Some("PASSTHROUGH") => Some(LoadBalancer::Simple(SimpleLb::Passthrough)),
        Some(other) => {
            cx.error(&p.key("simple"), format!("unknown load balancer {other:?}: expected one of LEAST_REQUEST, ROUND_ROBIN, RANDOM, PASSTHROUGH (upper case)"));
            None
        }
    }
}

/// Which of the two locality settings is checked: they share the failover rules (LB-5, LB-6).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LocalityKind {
    Locality,
    ZoneAware,
}

fn is_topology_label(l: &str) -> bool {
    matches!(
        l,
        "topology.kubernetes.io/region"
            | "topology.kubernetes.io/zone"
            | "topology.istio.io/subzone"
            | "failure-domain.beta.kubernetes.io/region"
            | "failure-domain.beta.kubernetes.io/zone"
    ) || l.starts_with("topology.kubernetes.io/")
}

fn check_locality(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    l: &raw::LocalityLbSetting,
    has_outlier: bool,
    kind: LocalityKind,
) {
    let what = match kind {
        LocalityKind::Locality => "locality load balancing",
        LocalityKind::ZoneAware => "zoneAwareLbSetting",
    };
    cx.warn(
        p,
        format!("{what} is validated but not applied by this library: requests are balanced without regard to locality"),
    );
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        cx.error(
            p,
            "only one of distribute or failover can be set in localityLbSetting",
        );
    }
    if (!l.failover.is_empty() || !l.failover_priority.is_empty()) && !has_outlier {
        let field = if l.failover.is_empty() {
            "failoverPriority"
        } else {
            "failover"
        };
        cx.warn(
            &p.key(field),
            "outlier detection policy must be provided for failover to take effect: add outlierDetection to this traffic policy",
        );
    }
    let fpp = p.key("failoverPriority");
    for (i, lab) in l.failover_priority.iter().enumerate() {
        if is_topology_label(lab) && (kind == LocalityKind::ZoneAware || !l.failover.is_empty()) {
            let msg = match kind {
                LocalityKind::Locality => format!("{lab:?} is a region/zone/subzone topology label, which failoverPriority cannot hold when failover is set; drop the label or the failover list"),
                LocalityKind::ZoneAware => format!("{lab:?} is a region/zone/subzone topology label, which zone-aware failoverPriority cannot hold (zone order is implied); list other labels only"),
            };
            cx.error(&fpp.index(i), msg);
        }
    }
    let fp = p.key("failover");
    for (i, f) in l.failover.iter().enumerate() {
        let ip = fp.index(i);
        let (from, to) = (
            f.from.as_deref().unwrap_or(""),
            f.to.as_deref().unwrap_or(""),
        );
        if from == to {
            cx.error(
                &ip,
                format!("locality lb failover settings must specify different regions (from and to are both {from:?})"),
            );
        }
        if from.contains('/') || to.contains('/') {
            let msg = match kind {
                LocalityKind::Locality => "locality lb failover only specify region: write from/to as region names without zone, e.g. us-east",
                LocalityKind::ZoneAware => "zone-aware failover only specifies regions: write from/to as region names without zone, e.g. us-east",
            };
            cx.error(&ip, msg);
        }
        if from.contains('*') || to.contains('*') {
            cx.error(
                &ip,
                "locality lb failover region should not contain '*' wildcard; name the regions",
            );
        }
    }
    let dp = p.key("distribute");
    let mut froms: Vec<(usize, &str)> = Vec::new();
    for (i, d) in l.distribute.iter().enumerate() {
        let ip = dp.index(i);
        let from = d.from.as_deref().unwrap_or("");
        if let Some(why) = locality_problem(from) {
            cx.error(&ip.key("from"), why);
        } else if let Some((j, other)) = froms.iter().find(|(_, o)| localities_overlap(o, from)) {
            cx.error(
                &ip.key("from"),
                format!("locality {from:?} overlaps with {other:?} (distribute[{j}].from); each source locality may be listed once"),
            );
        }
        froms.push((i, from));
        let mut sum = 0;
        let mut bad_weight = false;
        let mut tos: Vec<&str> = Vec::new();
        for (loc, w) in &d.to {
            let lp = ip.key("to");
            let lp = lp.key(loc);
            if !(1..=100).contains(w) {
                cx.error(
                    &lp,
                    format!("locality weight {w} must be in range [1, 100]"),
                );
                bad_weight = true;
                continue;
            }
            if let Some(why) = locality_problem(loc) {
                cx.error(&lp, why);
            } else if let Some(other) = tos.iter().find(|o| localities_overlap(o, loc)) {
                cx.error(
                    &lp,
                    format!("locality {loc:?} overlaps with {other:?}; list each destination locality once"),
                );
            }
            tos.push(loc);
            sum += w;
        }
        if !bad_weight && sum != 100 {
            cx.error(
                &ip.key("to"),
                format!("total locality weight {sum} != 100: the weights for one 'from' must add up to 100"),
            );
        }
    }
}

/// Whether two localities (`region[/zone[/subzone]]`, optionally ending in `*`) select a
/// common endpoint: one is a part-wise prefix of the other.
fn localities_overlap(a: &str, b: &str) -> bool {
    let parts = |l: &str| -> Vec<String> {
        l.split('/')
            .filter(|s| *s != "*")
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn locality_problem(l: &str) -> Option<String> {
    if l.is_empty() {
        return Some("locality cannot be empty: write region[/zone[/subzone]]".into());
    }
    let stars = l.matches('*').count();
    if stars > 1 || (stars == 1 && !(l == "*" || l.ends_with("/*"))) {
        return Some(format!(
            "locality {l:?}: wildcard '*' number can not exceed 1 and must be in the end, as the whole last part"
        ));
    }
    let parts: Vec<&str> = l.split('/').collect();
    if parts.len() > 3 || parts.iter().any(|s| s.is_empty()) {
        return Some(format!(
            "locality {l:?} must not contain empty region/zone/subzone info: write region[/zone[/subzone]]"
        ));
    }
    None
}

fn check_tls(cx: &mut Cx<'_>, p: &Path<'_>, t: &raw::ClientTlsSettings) {
    let mode = t.mode.as_deref().unwrap_or("DISABLE");
    if !["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"].contains(&mode) {
        cx.error(
            &p.key("mode"),
            format!(
                "unknown tls mode {mode:?}: expected one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL"
            ),
        );
        return;
    }
    let has_cred = t.credential_name.is_some();
    if mode == "MUTUAL" && !has_cred {
        if t.client_certificate.is_none() {
            cx.error(
                &p.key("clientCertificate"),
                "clientCertificate is required for MUTUAL tls (or set credentialName)",
            );
        }
        if t.private_key.is_none() {
            cx.error(
                &p.key("privateKey"),
                "privateKey is required for MUTUAL tls (or set credentialName)",
            );
        }
    }
    if (mode == "SIMPLE" || mode == "MUTUAL")
        && has_cred
        && (t.client_certificate.is_some()
            || t.ca_certificates.is_some()
            || t.private_key.is_some()
            || t.ca_crl.is_some())
    {
        cx.error(p, "credentialName cannot be combined with clientCertificate, caCertificates, privateKey or caCrl");
    }
    if t.insecure_skip_verify == Some(true) {
        if mode == "SIMPLE"
            && (t.ca_certificates.is_some() || has_cred || !t.subject_alt_names.is_empty())
        {
            cx.error(p, "insecureSkipVerify cannot be combined with caCertificates, credentialName or subjectAltNames in SIMPLE mode; drop the verification settings or insecureSkipVerify");
        }
        if mode == "MUTUAL" && (t.ca_certificates.is_some() || !t.subject_alt_names.is_empty()) {
            cx.error(
                p,
                "insecureSkipVerify cannot be combined with caCertificates or subjectAltNames in MUTUAL mode; drop the verification settings or insecureSkipVerify",
            );
        }
    }
    if let Some(c) = t
        .credential_name
        .as_deref()
        .and_then(|c| c.strip_prefix("configmap://"))
    {
        let own = cx
            .resource
            .as_ref()
            .map(|r| r.namespace.clone())
            .unwrap_or_default();
        if c.contains('/') && !c.starts_with(&format!("{own}/")) {
            cx.error(
                &p.key("credentialName"),
                format!("configmap credential namespace must match the DestinationRule namespace {own:?}: write configmap://{own}/NAME"),
            );
        }
    }
    // Every mode is originated by mesh-tower's MeshClient; what it cannot do is said here.
    if t.credential_name.is_some() {
        cx.warn(
            &p.key("credentialName"),
            "credentialName (a Kubernetes secret) is not read by this library: name the files with clientCertificate, privateKey and caCertificates (at a sidecar without workloadSelector istiod sends no TLS settings for it either)",
        );
    }
    if t.ca_crl.is_some() {
        cx.warn(
            &p.key("caCrl"),
            "caCrl is validated but not checked by this library: revoked server certificates are accepted",
        );
    }
}

fn count(cx: &mut Cx<'_>, p: &Path<'_>, v: Option<i64>, default: u32) -> u32 {
    match v {
        None | Some(0) => default,
        Some(n) if n < 0 => {
            cx.error(
                p,
                format!(
                    "{} {n} cannot be negative; use a positive limit (0 or unset means the default)",
                    p.last_key()
                ),
            );
            default
        }
        Some(n) if n > i64::from(u32::MAX) => {
            cx.error(
                p,
                format!(
                    "{} {n} is larger than 4294967295 (the uint32 field's maximum)",
                    p.last_key()
                ),
            );
            default
        }
        Some(n) => n as u32,
    }
}

fn connection_pool(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    c: &raw::ConnectionPoolSettings,
) -> ConnectionPoolSettings {
    let mut out = ConnectionPoolSettings::default();
    if c.tcp.is_none() && c.http.is_none() {
        cx.error(
            p,
            "connectionPool must have at least one field: tcp or http settings",
        );
    }
    if let Some(t) = &c.tcp {
        let tp = p.key("tcp");
        out.max_connections = count(cx, &tp.key("maxConnections"), t.max_connections, UNLIMITED);
        if let Some(d) = duration(cx, &tp.key("connectTimeout"), t.connect_timeout.as_deref()) {
            out.connect_timeout = d.as_std();
        }
        out.max_connection_duration = duration(
            cx,
            &tp.key("maxConnectionDuration"),
            t.max_connection_duration.as_deref(),
        );
        if let Some(s) = t.idle_timeout.as_deref() {
            out.tcp_idle_timeout = if crate::duration::parse_go(s) == Ok(0) {
                Duration::parse_unbounded(s).ok()
            } else {
                duration(cx, &tp.key("idleTimeout"), Some(s))
            };
        }
        if let Some(k) = &t.tcp_keepalive {
            let kp = tp.key("tcpKeepalive");
            let time = duration(cx, &kp.key("time"), k.time.as_deref());
            let interval = duration(cx, &kp.key("interval"), k.interval.as_deref());
            let probes = match k.probes {
                Some(n) if n < 0 => {
                    cx.error(&kp.key("probes"), "probes cannot be negative");
                    None
                }
                Some(n) if n > i64::from(u32::MAX) => {
                    cx.error(
                        &kp.key("probes"),
                        format!(
                            "probes {n} is larger than 4294967295 (the uint32 field's maximum)"
                        ),
                    );
                    None
                }
                Some(0) | None => None,
                Some(n) => Some(n as u32),
            };
            out.tcp_keepalive = Some(TcpKeepalive {
                probes,
                time: time.map(Duration::as_std).filter(|d| !d.is_zero()),
                interval: interval.map(Duration::as_std).filter(|d| !d.is_zero()),
            });
        }
    }
    if let Some(h) = &c.http {
        let hp = p.key("http");
        out.http1_max_pending_requests = count(
            cx,
            &hp.key("http1MaxPendingRequests"),
            h.http1_max_pending_requests,
            UNLIMITED,
        );
        out.http2_max_requests = count(
            cx,
            &hp.key("http2MaxRequests"),
            h.http2_max_requests,
            UNLIMITED,
        );
        out.max_requests_per_connection = count(
            cx,
            &hp.key("maxRequestsPerConnection"),
            h.max_requests_per_connection,
            0,
        );
        out.max_retries = count(cx, &hp.key("maxRetries"), h.max_retries, UNLIMITED);
        out.max_concurrent_streams = count(
            cx,
            &hp.key("maxConcurrentStreams"),
            h.max_concurrent_streams,
            0,
        );
        out.idle_timeout = duration(cx, &hp.key("idleTimeout"), h.idle_timeout.as_deref());
        out.use_client_protocol = h.use_client_protocol == Some(true);
        match h.h2_upgrade_policy.as_deref() {
            None | Some("DEFAULT") => {}
            Some("DO_NOT_UPGRADE") => out.h2_upgrade_policy = H2UpgradePolicy::DoNotUpgrade,
            Some("UPGRADE") => {
                out.h2_upgrade_policy = H2UpgradePolicy::Upgrade;
                if h.use_client_protocol == Some(true) {
                    cx.error(
                        &hp,
                        "h2UpgradePolicy UPGRADE cannot be combined with useClientProtocol: true; pick one",
                    );
                }
            }
            Some(other) => cx.error(
                &hp.key("h2UpgradePolicy"),
                format!("unknown h2UpgradePolicy {other:?}: expected one of DEFAULT, DO_NOT_UPGRADE, UPGRADE"),
            ),
        }
        if let Some(k) = &h.http2_keep_alive {
            let kp = hp.key("http2KeepAlive");
            let interval = match &k.interval {
                None => {
                    cx.error(
                        &kp.key("interval"),
                        "http2KeepAlive interval is required (e.g. 30s)",
                    );
                    None
                }
                Some(s) => duration(cx, &kp.key("interval"), Some(s)),
            };
            let timeout = match &k.timeout {
                None => {
                    cx.error(
                        &kp.key("timeout"),
                        "http2KeepAlive timeout is required (e.g. 10s)",
                    );
                    None
                }
                Some(s) => duration(cx, &kp.key("timeout"), Some(s)),
            };
            if let (Some(interval), Some(timeout)) = (interval, timeout) {
                out.http2_keepalive = Some(Http2KeepAlive {
                    interval: interval.as_std(),
                    timeout: timeout.as_std(),
                });
            }
        }
    }
    out
}

fn outlier(cx: &mut Cx<'_>, p: &Path<'_>, o: &raw::OutlierDetection) -> OutlierDetection {
    let mut out = OutlierDetection::default();
    let nonneg = |cx: &mut Cx<'_>, field: &str, v: Option<i64>| -> Option<u32> {
        match v {
            None => None,
            Some(n) if n < 0 || n > i64::from(u32::MAX) => {
                cx.error(
                    &p.key(field),
                    format!("{n} must be between 0 and 4294967295"),
                );
                None
            }
            Some(n) => Some(n as u32),
        }
    };
    if o.consecutive_errors.is_some() {
        cx.warn(
            &p.key("consecutiveErrors"),
            "consecutiveErrors is deprecated and ignored; use consecutive5xxErrors",
        );
    }
    out.split_external_local_origin_errors = o.split_external_local_origin_errors.unwrap_or(false);
    if let Some(n) = nonneg(cx, "consecutive5xxErrors", o.consecutive_5xx_errors) {
        out.consecutive_5xx_errors = n;
    }
    if let Some(n) = nonneg(cx, "consecutiveGatewayErrors", o.consecutive_gateway_errors) {
        out.consecutive_gateway_errors = n;
    }
    if let Some(n) = nonneg(
        cx,
        "consecutiveLocalOriginFailures",
        o.consecutive_local_origin_failures,
    ) {
        if n > 0 && !out.split_external_local_origin_errors {
            cx.error(
                &p.key("consecutiveLocalOriginFailures"),
                "consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true",
            );
        }
        if n > 0 {
            out.consecutive_local_origin_failures = n;
        }
    }
    if let Some(d) = duration(cx, &p.key("interval"), o.interval.as_deref()) {
        out.interval = d.as_std();
    }
    if let Some(d) = duration(
        cx,
        &p.key("baseEjectionTime"),
        o.base_ejection_time.as_deref(),
    ) {
        out.base_ejection_time = d.as_std();
    }
    for (field, v, slot) in [
        (
            "maxEjectionPercent",
            o.max_ejection_percent,
            &mut out.max_ejection_percent,
        ),
        (
            "minHealthPercent",
            o.min_health_percent,
            &mut out.min_health_percent,
        ),
    ] {
        if let Some(n) = v {
            if !(0..=100).contains(&n) {
                cx.error(&p.key(field), format!("{field} {n} is not in range 0..100"));
            } else if n > 0 || field == "minHealthPercent" {
                *slot = n as u32;
            }
        }
    }
    let cp = p.key("outlierDetectionHttpErrorCodes");
    for (i, c) in o.outlier_detection_http_error_codes.iter().enumerate() {
        if (100..=599).contains(c) {
            out.http_error_codes.push(*c as u16);
        } else {
            cx.error(
                &cp.index(i),
                format!("status code {c} is not in range 100..599"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locality_overlap_is_part_wise() {
        assert!(localities_overlap("us-west/*", "us-west/zone1/*"));
        assert!(localities_overlap("us-west/zone1/*", "us-west/*"));
        assert!(localities_overlap("us-west", "us-west/zone1"));
        assert!(localities_overlap("*", "eu/zone"));
        assert!(!localities_overlap("us-west/zone1/*", "us-west/zone2/*"));
        assert!(
            !localities_overlap("us-west/*", "us-westish/*"),
            "parts, not string prefixes"
        );
    }

    #[test]
    fn locality_shapes() {
        assert!(locality_problem("us-west/zone1/*").is_none());
        assert!(locality_problem("*").is_none());
        assert!(locality_problem("us-west/*/*")
            .unwrap()
            .contains("wildcard"));
        assert!(locality_problem("us-west/*/rack")
            .unwrap()
            .contains("wildcard"));
        assert!(locality_problem("us-west//rack").unwrap().contains("empty"));
        assert!(locality_problem("a/b/c/d").is_some());
        assert!(locality_problem("").is_some());
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(2) && !is_prime(65536) && !is_prime(1));
    }
}
