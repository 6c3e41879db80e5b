//! Envoy's cluster statistics (`cluster.<name>.upstream_rq_total`...) under the names Envoy's
//! Prometheus endpoint gives them: `envoy_cluster_<stat>{cluster_name="outbound|port|subset|host"}`.
//!
//! They are the counters the mesh keeps anyway ([`Stats`](crate::Stats)), published on demand
//! by [`MeshHandle::record_envoy_stats`](crate::MeshHandle::record_envoy_stats): counters as
//! absolute values, gauges set; nothing on the request path.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Key, Label, Level, Metadata};

use crate::cluster::ClusterState;

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The counters published, Envoy's stat name after `envoy_cluster_` (dots become `_`, as
/// in Envoy's Prometheus output).
pub const ENVOY_CLUSTER_COUNTERS: [&str; 9] = [
    "upstream_rq_total",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_overflow",
    "upstream_rq_retry_limit_exceeded",
    "upstream_rq_pending_overflow",
    "upstream_rq_timeout",
    "upstream_rq_per_try_timeout",
    "outlier_detection_ejections_enforced_total",
];

/// The gauges published, as [`ENVOY_CLUSTER_COUNTERS`].
pub const ENVOY_CLUSTER_GAUGES: [&str; 5] = [
    "upstream_rq_active",
    "upstream_rq_pending_active",
    "outlier_detection_ejections_active",
    "membership_total",
    "membership_healthy",
];

/// The connection stats, published for a cluster whose connections the mesh's own connector
/// ([`MeshClient`](crate::client::MeshClient)) keeps: the gauge `upstream_cx_active` (sockets
/// open or connecting) and the counter `upstream_cx_total` (connections dialled), summed over
/// the connectors that serve the cluster. Another client's connections are its own: for a
/// cluster no `MeshClient` has served, neither is published.
///
/// `upstream_cx_overflow` is not published: the mesh's admission holds HTTP/1 requests beyond
/// `maxConnections` as pending before they reach the connector (the mesh's pool limits count
/// requests), so the connector's own count of refused dials would stay near 0 where Envoy's
/// counts every request that found the limit reached.
pub const ENVOY_CLUSTER_CONNECTION_STATS: [&str; 2] = ["upstream_cx_active", "upstream_cx_total"];

/// One cluster's handles, registered with the recorder the first time it is published.
#[derive(Debug)]
pub(crate) struct EnvoyStats {
    labels: Vec<Label>,
    counters: [Counter; 9],
    gauges: [Gauge; 5],
    /// `upstream_cx_active`, `upstream_cx_total`: registered once a connector keeps
    /// connections for the cluster.
    connections: OnceLock<(Gauge, Counter)>,
}

fn key(stat: &str, labels: &[Label]) -> Key {
    Key::from_parts(format!("envoy_cluster_{stat}"), labels.to_vec())
}

impl EnvoyStats {
    fn register(cluster: &ClusterState) -> Self {
        let labels = vec![Label::new("cluster_name", cluster.name.to_string())];
        metrics::with_recorder(|r| EnvoyStats {
            counters: ENVOY_CLUSTER_COUNTERS
                .map(|s| r.register_counter(&key(s, &labels), &METADATA)),
            gauges: ENVOY_CLUSTER_GAUGES.map(|s| r.register_gauge(&key(s, &labels), &METADATA)),
            connections: OnceLock::new(),
            labels,
        })
    }

    fn publish(&self, cluster: &ClusterState) {
        let c = &cluster.counters;
        let counters = [
            &c.requests,
            &c.retries,
            &c.retry_successes,
            &c.retry_overflows,
            &c.retry_limit_exceeded,
            &c.overflows,
            &c.route_timeouts,
            &c.per_try_timeouts,
            &c.ejections,
        ];
        for (h, v) in self.counters.iter().zip(counters) {
            h.absolute(v.load(Relaxed));
        }
        let inner = cluster.lock();
        let total = inner.endpoints.len();
        let ejected = inner.outlier.as_ref().map_or(0, |od| od.ejected_count());
        let gauges = [
            f64::from(inner.pool.active_requests()),
            f64::from(inner.pool.pending_requests()),
            ejected as f64,
            total as f64,
            total.saturating_sub(ejected) as f64,
        ];
        drop(inner);
        for (h, v) in self.gauges.iter().zip(gauges) {
            h.set(v);
        }
        if let Some(cx) = cluster.connections.stats() {
            let (active, total) = self.connections.get_or_init(|| {
                let [a, t] = ENVOY_CLUSTER_CONNECTION_STATS.map(|s| key(s, &self.labels));
                metrics::with_recorder(|r| {
                    (
                        r.register_gauge(&a, &METADATA),
                        r.register_counter(&t, &METADATA),
                    )
                })
            });
            active.set(cx.active as f64);
            total.absolute(cx.total);
        }
    }
}

/// Publishes the stats of `clusters` to the current recorder (nothing when none is
/// installed).
pub(crate) fn publish(clusters: &[Arc<ClusterState>]) {
    if !crate::telemetry::metrics::recorder_installed() {
        return;
    }
    for c in clusters {
        c.envoy_stats
            .get_or_init(|| EnvoyStats::register(c))
            .publish(c);
    }
}
