//! [`ConnSettings`]: what a cluster's merged DestinationRule says about its connections,
//! converted once per policy (a reload that changes the policy makes new settings; requests
//! only compare a pointer).

use std::sync::Arc;
use std::time::Duration;

use mesh_resilience::DEFAULT_MAX_CONCURRENT_STREAMS;
use mesh_routing::{ClusterName, ClusterPolicy, UpstreamProtocol};

use super::tls::{MeshIdentity, TlsOrigin};

/// Istio's connect timeout when the DestinationRule sets none (mesh `connectTimeout`).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Envoy's upstream idle timeout when nothing sets one (`common_http_protocol_options`).
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's initial HTTP/2 stream window since 1.36 (16 MiB).
pub(crate) const H2_STREAM_WINDOW: u32 = 16 << 20;
/// Envoy's initial HTTP/2 connection window since 1.36 (24 MiB).
pub(crate) const H2_CONNECTION_WINDOW: u32 = 24 << 20;

/// The connection settings of one cluster.
#[derive(Debug)]
pub(crate) struct ConnSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) keepalive: Option<mesh_model::TcpKeepalive>,
    /// `tcp.maxConnections`: sockets to the whole cluster.
    pub(crate) max_connections: u32,
    /// `http.maxRequestsPerConnection` (0: unlimited).
    pub(crate) max_requests_per_connection: u32,
    /// `None`: connections never time out idle.
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_connection_duration: Option<Duration>,
    pub(crate) protocol: UpstreamProtocol,
    /// Our own limit of streams per HTTP/2 connection (the peer's may be lower).
    pub(crate) max_concurrent_streams: u32,
    pub(crate) h2_keepalive: Option<mesh_model::Http2KeepAlive>,
    /// `None`: plaintext.
    pub(crate) tls: Option<Arc<TlsOrigin>>,
    /// Why the cluster's TLS settings cannot be used, if they cannot: every connection
    /// fails with it.
    pub(crate) tls_error: Option<String>,
}

impl ConnSettings {
    /// Settings for requests that name no cluster: Istio's and Envoy's defaults, plaintext,
    /// the caller's HTTP version.
    pub(crate) fn passthrough() -> Self {
        ConnSettings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive: None,
            max_connections: u32::MAX,
            max_requests_per_connection: 0,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connection_duration: None,
            protocol: UpstreamProtocol::ClientProtocol,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            h2_keepalive: None,
            tls: None,
            tls_error: None,
        }
    }

    /// The settings of `cluster` under `policy`.
    pub(crate) fn of(
        policy: &ClusterPolicy,
        cluster: &ClusterName,
        identity: &MeshIdentity,
    ) -> Self {
        let limits = policy.pool_limits();
        let pool = policy.connection_pool();
        let protocol = policy.upstream_protocol();
        // `useClientProtocol` replaces the HTTP/2 options istiod wrote just before, so the
        // stream limit and the keepalive are lost with it.
        let h2_options = protocol != UpstreamProtocol::ClientProtocol;
        let streams = pool
            .map(mesh_model::ConnectionPoolSettings::max_concurrent_streams)
            .filter(|n| *n > 0 && h2_options)
            .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS);
        let source = policy.source().map_or_else(
            || format!("cluster {cluster}"),
            |s| format!("DestinationRule {s} for {cluster}"),
        );
        let (tls, tls_error) = match policy.tls() {
            None => (None, None),
            Some(t) => {
                match TlsOrigin::new(t, cluster, policy.service_alt_names(), &source, identity) {
                    Ok(origin) => (origin.map(Arc::new), None),
                    Err(e) => (None, Some(e)),
                }
            }
        };
        ConnSettings {
            connect_timeout: pool.map_or(DEFAULT_CONNECT_TIMEOUT, |p| p.connect_timeout()),
            keepalive: pool.and_then(|p| p.tcp_keepalive().copied()),
            max_connections: limits.max_connections(),
            max_requests_per_connection: limits.max_requests_per_connection(),
            idle_timeout: match pool
                .and_then(mesh_model::ConnectionPoolSettings::upstream_idle_timeout)
            {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
                None => Some(DEFAULT_IDLE_TIMEOUT),
            },
            max_connection_duration: pool.and_then(|p| p.max_connection_duration()),
            protocol,
            max_concurrent_streams: streams,
            h2_keepalive: pool
                .and_then(|p| p.http2_keepalive().copied())
                .filter(|_| h2_options),
            tls,
            tls_error,
        }
    }
}
