//! Cluster identity ([`ClusterId`], [`ClusterKey`], [`ClusterName`]) and the merged
//! DestinationRule policy of a cluster ([`ClusterPolicy`]).

use std::fmt;
use std::sync::Arc;

use mesh_resilience::{OutlierConfig, PoolLimits};

use crate::lb::{HashPolicy, LoadBalancer};

/// A cluster, as Envoy would name it `outbound|port|subset|host`, interned by the table: the
/// index of the (host, subset) pair and the port. Two integers, so drivers can key per-cluster
/// state (load-balancer state, circuit breakers, outlier detectors) on it without hashing
/// strings. Only meaningful for the table that produced it; resolve it with
/// [`RouteTable::cluster_key`](crate::RouteTable::cluster_key), or to a [`ClusterName`] that
/// outlives the table with [`RouteTable::cluster_name`](crate::RouteTable::cluster_name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId {
    pub(crate) dest: u32,
    pub(crate) port: u16,
}

impl ClusterId {
    /// Index of the (host, subset) pair, below
    /// [`RouteTable::destination_count`](crate::RouteTable::destination_count).
    pub fn destination_index(self) -> usize {
        self.dest as usize
    }

    /// The service port.
    pub fn port(self) -> u16 {
        self.port
    }
}

/// The readable identity of a cluster, borrowed from its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterKey<'t> {
    /// The service host (FQDN).
    pub host: &'t str,
    /// The subset, if any.
    pub subset: Option<&'t str>,
    /// The service port.
    pub port: u16,
}

impl ClusterKey<'_> {
    /// The owned form, which outlives the table.
    pub fn to_name(&self) -> ClusterName {
        ClusterName {
            host: self.host.into(),
            subset: self.subset.map(Into::into),
            port: self.port,
        }
    }
}

impl fmt::Display for ClusterKey<'_> {
    /// Envoy's cluster name: `outbound|9080|v1|reviews.default.svc.cluster.local`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outbound|{}|{}|{}",
            self.port,
            self.subset.unwrap_or(""),
            self.host
        )
    }
}

/// The identity of a cluster across tables (host, subset, port): how a driver recognises a
/// cluster after a configuration reload. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterName {
    host: Arc<str>,
    subset: Option<Arc<str>>,
    port: u16,
}

impl ClusterName {
    /// The cluster of `subset` of `host` on `port`.
    pub fn new(host: &str, subset: Option<&str>, port: u16) -> Self {
        ClusterName {
            host: host.into(),
            subset: subset.map(Into::into),
            port,
        }
    }

    /// The service host (FQDN).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The subset, if any.
    pub fn subset(&self) -> Option<&str> {
        self.subset.as_deref()
    }
    /// The service port.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The borrowed form.
    pub fn key(&self) -> ClusterKey<'_> {
        ClusterKey {
            host: &self.host,
            subset: self.subset.as_deref(),
            port: self.port,
        }
    }
}

impl fmt::Display for ClusterName {
    /// Envoy's cluster name, as [`ClusterKey`]'s.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key().fmt(f)
    }
}

/// The DestinationRule policy of one cluster, merged as Istio does (§3.7, §3.8): the top-level
/// policy, replaced wholesale by a matching `portLevelSettings` entry; then each of
/// `loadBalancer`, `connectionPool`, `outlierDetection`, `tls` replaced by the subset's when set
/// (all four when the subset has a port-level entry for the port). Blocks are never merged
/// field by field. `Default` is "no DestinationRule": Istio's defaults everywhere.
///
/// It carries both what the YAML said (for explanations and the Envoy translation) and the
/// forms the resilience machines run ([`pool_limits`](Self::pool_limits),
/// [`outlier`](Self::outlier)), converted once when the table is compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterPolicy {
    pub(crate) source: Option<String>,
    pub(crate) settings: Option<mesh_model::LoadBalancer>,
    pub(crate) connection_pool: Option<mesh_model::ConnectionPoolSettings>,
    pub(crate) outlier_detection: Option<mesh_model::OutlierDetection>,
    pub(crate) tls: Option<mesh_model::raw::ClientTlsSettings>,
    pub(crate) retry_budget: Option<mesh_model::RetryBudget>,
    pub(crate) load_balancer: LoadBalancer,
    pub(crate) hash: Option<HashPolicy>,
    pub(crate) pool_limits: PoolLimits,
    pub(crate) outlier: Option<OutlierConfig>,
    pub(crate) upstream_protocol: UpstreamProtocol,
    pub(crate) service_alt_names: Arc<[String]>,
}

/// The HTTP version a cluster speaks to its endpoints, chosen as istiod does
/// (`setUpstreamProtocol`, `shouldH2Upgrade`, `applyConnectionPool`): `useClientProtocol`
/// follows the caller; a port of protocol `HTTP2`, `GRPC` or `GRPC-WEB` speaks HTTP/2;
/// `h2UpgradePolicy: UPGRADE` speaks HTTP/2 on any port; other `HTTP` ports speak HTTP/1.1 (the
/// mesh-wide default is `DO_NOT_UPGRADE`); a port of no known protocol (detected by a
/// sidecar) follows the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (with prior knowledge in plaintext; over TLS, ALPN `h2` is offered).
    Http2,
    /// The caller's version: HTTP/2 for HTTP/2 requests, else HTTP/1.1.
    #[default]
    ClientProtocol,
}

impl UpstreamProtocol {
    /// The protocol of a cluster on a port of protocol `port` with `pool` as its merged
    /// `connectionPool`.
    pub fn select(
        port: mesh_model::PortProtocol,
        pool: Option<&mesh_model::ConnectionPoolSettings>,
    ) -> UpstreamProtocol {
        use mesh_model::H2UpgradePolicy;
        if pool.is_some_and(mesh_model::ConnectionPoolSettings::use_client_protocol) {
            return UpstreamProtocol::ClientProtocol;
        }
        if port.is_http2() {
            return UpstreamProtocol::Http2;
        }
        match pool.map(mesh_model::ConnectionPoolSettings::h2_upgrade_policy) {
            Some(H2UpgradePolicy::Upgrade) => UpstreamProtocol::Http2,
            _ if port == mesh_model::PortProtocol::Unsupported => UpstreamProtocol::ClientProtocol,
            _ => UpstreamProtocol::Http1,
        }
    }
}

impl ClusterPolicy {
    /// `namespace/name` of the DestinationRule(s) the policy came from, if any.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
    /// The load-balancing algorithm (LEAST_REQUEST when nothing is set).
    pub fn load_balancer(&self) -> LoadBalancer {
        self.load_balancer
    }
    /// The `loadBalancer` block as written (validated), if any.
    pub fn load_balancer_settings(&self) -> Option<&mesh_model::LoadBalancer> {
        self.settings.as_ref()
    }
    /// The consistent-hash key source, when the algorithm hashes. Cookie `ttl` (Envoy
    /// generating the cookie) is not emulated: without the cookie the pick is random.
    pub fn hash_policy(&self) -> Option<&HashPolicy> {
        self.hash.as_ref()
    }
    /// The `connectionPool` block as written; `None` means Istio's defaults (every limit
    /// 2^32 − 1).
    pub fn connection_pool(&self) -> Option<&mesh_model::ConnectionPoolSettings> {
        self.connection_pool.as_ref()
    }
    /// The `outlierDetection` block as written; `None` means off.
    pub fn outlier_detection(&self) -> Option<&mesh_model::OutlierDetection> {
        self.outlier_detection.as_ref()
    }
    /// Client TLS settings as written.
    pub fn tls(&self) -> Option<&mesh_model::raw::ClientTlsSettings> {
        self.tls.as_ref()
    }
    /// The `retryBudget` block as written.
    pub fn retry_budget(&self) -> Option<&mesh_model::RetryBudget> {
        self.retry_budget.as_ref()
    }
    /// The connection-pool limits (circuit breakers) and retry budget in the form
    /// [`mesh_resilience::ConnectionPool`] runs.
    pub fn pool_limits(&self) -> PoolLimits {
        self.pool_limits
    }
    /// The outlier-detection configuration [`mesh_resilience::OutlierDetector`] runs; `None`
    /// means off.
    pub fn outlier(&self) -> Option<&OutlierConfig> {
        self.outlier.as_ref()
    }
    /// The HTTP version the cluster speaks upstream.
    pub fn upstream_protocol(&self) -> UpstreamProtocol {
        self.upstream_protocol
    }
    /// The `subjectAltNames` of the ServiceEntry that declares the host (the identities of its
    /// workloads), empty when none: what `ISTIO_MUTUAL` checks when the rule names none.
    pub fn service_alt_names(&self) -> &[String] {
        &self.service_alt_names
    }
}
