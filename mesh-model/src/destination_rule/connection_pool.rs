//! Connection pool limits (CP-1-CP-5) with Istio's defaults.

use crate::checks::validate_duration;
use crate::diag::{Cx, Path};
use crate::{raw, Duration};

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

/// A uint32 limit: 0 or unset is `default`, negative or too large is an error.
pub(crate) fn validate_count(cx: &mut Cx<'_>, p: &Path<'_>, v: Option<i64>, default: u32) -> u32 {
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

/// CP-1-CP-5: at least one of tcp and http, counts and durations in range.
pub(crate) fn validate_connection_pool(
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
        out.max_connections =
            validate_count(cx, &tp.key("maxConnections"), t.max_connections, UNLIMITED);
        if let Some(d) =
            validate_duration(cx, &tp.key("connectTimeout"), t.connect_timeout.as_deref())
        {
            out.connect_timeout = d.as_std();
        }
        out.max_connection_duration = validate_duration(
            cx,
            &tp.key("maxConnectionDuration"),
            t.max_connection_duration.as_deref(),
        );
        if let Some(s) = t.idle_timeout.as_deref() {
            out.tcp_idle_timeout = if crate::duration::parse_go(s) == Ok(0) {
                Duration::parse_unbounded(s).ok()
            } else {
                validate_duration(cx, &tp.key("idleTimeout"), Some(s))
            };
        }
        if let Some(k) = &t.tcp_keepalive {
            let kp = tp.key("tcpKeepalive");
            let time = validate_duration(cx, &kp.key("time"), k.time.as_deref());
            let interval = validate_duration(cx, &kp.key("interval"), k.interval.as_deref());
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
        out.http1_max_pending_requests = validate_count(
            cx,
            &hp.key("http1MaxPendingRequests"),
            h.http1_max_pending_requests,
            UNLIMITED,
        );
        out.http2_max_requests = validate_count(
            cx,
            &hp.key("http2MaxRequests"),
            h.http2_max_requests,
            UNLIMITED,
        );
        out.max_requests_per_connection = validate_count(
            cx,
            &hp.key("maxRequestsPerConnection"),
            h.max_requests_per_connection,
            0,
        );
        out.max_retries = validate_count(cx, &hp.key("maxRetries"), h.max_retries, UNLIMITED);
        out.max_concurrent_streams = validate_count(
            cx,
            &hp.key("maxConcurrentStreams"),
            h.max_concurrent_streams,
            0,
        );
        out.idle_timeout = validate_duration(cx, &hp.key("idleTimeout"), h.idle_timeout.as_deref());
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
                Some(s) => validate_duration(cx, &kp.key("interval"), Some(s)),
            };
            let timeout = match &k.timeout {
                None => {
                    cx.error(
                        &kp.key("timeout"),
                        "http2KeepAlive timeout is required (e.g. 10s)",
                    );
                    None
                }
                Some(s) => validate_duration(cx, &kp.key("timeout"), Some(s)),
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
