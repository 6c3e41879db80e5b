//! Clusters: one per destination, mirror and service port, each with the route table's
//! merged DestinationRule policy ([`RouteTable::policy`](mesh_routing::RouteTable::policy))
//! and the table's endpoints for it.

use std::collections::BTreeMap;

use mesh_model::{MeshConfig, Resolution, ServiceEntry};
use mesh_routing::lb::LoadBalancer;
use mesh_routing::{ClientContext, ClusterId, ClusterKey};
use serde_json::{json, Map, Value};

use super::{dur, tls, BudgetMode, Translation};

/// The hosts the ServiceEntries exported to the client declare, with their ports: the service
/// inventory Envoy's clusters and virtual hosts need (the route table keeps endpoints, not
/// ports). Hosts are taken literally (lowercased), as the table and Istio take them.
pub(super) struct Services<'a> {
    hosts: BTreeMap<String, Service<'a>>,
}

struct Service<'a> {
    ports: Vec<u16>,
    entries: Vec<&'a ServiceEntry>,
}

impl<'a> Services<'a> {
    /// The ServiceEntries of `cfg` exported to `client`'s namespace.
    pub(super) fn visible(cfg: &'a MeshConfig, client: &ClientContext) -> Self {
        let mut hosts: BTreeMap<String, Service<'a>> = BTreeMap::new();
        for se in cfg.service_entries() {
            if !mesh_model::exported_to(se.export_to(), se.meta().namespace(), client.namespace()) {
                continue;
            }
            for h in se.hosts() {
                let s = hosts.entry(h.to_ascii_lowercase()).or_insert(Service {
                    ports: Vec::new(),
                    entries: Vec::new(),
                });
                for p in se.ports() {
                    if !s.ports.contains(&p.number()) {
                        s.ports.push(p.number());
                    }
                }
                s.entries.push(se);
            }
        }
        Services { hosts }
    }

    /// The ports of a host, if a ServiceEntry declares it.
    pub(super) fn ports(&self, host: &str) -> Option<&[u16]> {
        self.hosts.get(host).map(|s| &s.ports[..])
    }

    /// Every host with its ports, by name (a copy, to read while the translation goes on).
    pub(super) fn list(&self) -> Vec<(String, Vec<u16>)> {
        self.hosts
            .iter()
            .map(|(h, s)| (h.clone(), s.ports.clone()))
            .collect()
    }
}

/// Every cluster the routes named, and the subset-less one of every service port, sorted by
/// host, subset and port.
pub(super) fn clusters(t: &mut Translation<'_>, budget: BudgetMode) -> Result<Vec<Value>, String> {
    let table = t.table;
    for (host, ports) in t.services.list() {
        for port in ports {
            let key = ClusterKey {
                host: &host,
                subset: None,
                port,
            };
            let c = table
                .find_cluster(key)
                .ok_or_else(|| format!("service {host} is not in the route table (a bug)"))?;
            t.use_cluster(c);
        }
    }
    let mut ids = t.clusters.clone();
    ids.sort_by(|a, b| {
        let (a, b) = (table.cluster_key(*a), table.cluster_key(*b));
        (a.host, a.subset, a.port).cmp(&(b.host, b.subset, b.port))
    });
    ids.iter().map(|&c| cluster(t, c, budget)).collect()
}

/// One cluster: STATIC endpoints, connect timeout, load balancer, circuit breakers (and the
/// retry budget), HTTP protocol options, outlier detection and panic threshold, and the TLS
/// origination of the DestinationRule's `tls` block ([`tls`]).
fn cluster(t: &mut Translation<'_>, c: ClusterId, budget: BudgetMode) -> Result<Value, String> {
    let table = t.table;
    let key = table.cluster_key(c);
    let name = key.to_string();
    let lb_endpoints = endpoints(t, c, &name)?;
    let policy = table.policy(c);
    let upstream_tls = tls::cluster_tls(policy, &key, &name, t.tls, &mut t.warnings)?;
    let pool = policy.connection_pool().cloned().unwrap_or_default();
    let mut cluster = Map::new();
    cluster.insert("name".into(), json!(name));
    cluster.insert("type".into(), json!("STATIC"));
    cluster.insert("connect_timeout".into(), json!(dur(pool.connect_timeout())));
    let lb = policy.load_balancer();
    match lb {
        LoadBalancer::Passthrough => {
            return Err(format!(
                "cluster {name}: loadBalancer PASSTHROUGH needs an ORIGINAL_DST cluster, \
                 which meshctl envoy does not generate"
            ))
        }
        LoadBalancer::RingHash { minimum_ring_size } => {
            cluster.insert(
                "ring_hash_lb_config".into(),
                json!({"minimum_ring_size": minimum_ring_size}),
            );
        }
        LoadBalancer::Maglev { table_size } => {
            cluster.insert("maglev_lb_config".into(), json!({"table_size": table_size}));
        }
        LoadBalancer::LeastRequest | LoadBalancer::RoundRobin | LoadBalancer::Random => {}
    }
    // Envoy's names are Istio's.
    cluster.insert("lb_policy".into(), json!(crate::route::lb_name(lb)));
    cluster.insert(
        "load_assignment".into(),
        json!({"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}]}),
    );
    let mut thresholds = json!({
        "max_connections": pool.max_connections(),
        "max_pending_requests": pool.http1_max_pending_requests(),
        "max_requests": pool.http2_max_requests(),
        "max_retries": pool.max_retries(),
        "track_remaining": true,
    });
    // istiod's applyRetryBudget: a DestinationRule budget replaces max_retries. Without one
    // there is none, as under Istio, unless `--retry-budget` asks for Envoy's default.
    let retry_budget = match (policy.retry_budget(), budget) {
        (Some(b), _) => Some((b.percent(), b.min_retry_concurrency())),
        (None, BudgetMode::Envoy) => Some((
            mesh_resilience::pool::RetryBudget::DEFAULT_PERCENT,
            mesh_resilience::pool::RetryBudget::DEFAULT_MIN_RETRY_CONCURRENCY,
        )),
        (None, BudgetMode::Istio) => None,
    };
    if let Some((percent, min)) = retry_budget {
        thresholds["retry_budget"] = json!({
            "budget_percent": {"value": percent},
            "min_retry_concurrency": min,
        });
    }
    cluster.insert(
        "circuit_breakers".into(),
        json!({"thresholds": [thresholds]}),
    );
    let mut http_opts = Map::new();
    if let Some(idle) = pool.idle_timeout() {
        http_opts.insert("idle_timeout".into(), json!(dur(idle.as_std())));
    }
    if pool.max_requests_per_connection() > 0 {
        http_opts.insert(
            "max_requests_per_connection".into(),
            json!(pool.max_requests_per_connection()),
        );
    }
    let mut protocol_options = json!({
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": http_opts,
        "explicit_http_config": {"http_protocol_options": {}},
    });
    if let Some(u) = upstream_tls.upstream_http_protocol_options {
        protocol_options["upstream_http_protocol_options"] = u;
    }
    cluster.insert(
        "typed_extension_protocol_options".into(),
        json!({ "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": protocol_options }),
    );
    if let Some(socket) = upstream_tls.transport_socket {
        cluster.insert("transport_socket".into(), socket);
    }
    if let Some(od) = policy.outlier_detection() {
        cluster.insert("outlier_detection".into(), outlier_detection(od));
        cluster.insert(
            "common_lb_config".into(),
            json!({"healthy_panic_threshold": {"value": f64::from(od.min_health_percent())}}),
        );
    }
    Ok(Value::Object(cluster))
}

/// The cluster's endpoints as the table selects them (the subset's labels, the port its
/// ServiceEntry maps the service port to), checked against what a STATIC Envoy cluster needs.
fn endpoints(t: &Translation<'_>, c: ClusterId, name: &str) -> Result<Vec<Value>, String> {
    let key = t.table.cluster_key(c);
    let service = t.services.hosts.get(key.host).ok_or_else(|| {
        format!(
            "cluster {name}: no ServiceEntry declares host {}; meshctl envoy needs STATIC \
             endpoints",
            key.host
        )
    })?;
    let entry = service.entries[0];
    if let Some(se) = service
        .entries
        .iter()
        .find(|se| se.resolution() != Resolution::Static)
    {
        return Err(format!(
            "cluster {name}: ServiceEntry {}/{} has resolution {:?}; meshctl envoy supports \
             STATIC only",
            se.meta().namespace(),
            se.meta().name(),
            se.resolution()
        ));
    }
    if !service.ports.contains(&key.port) {
        return Err(format!(
            "cluster {name}: ServiceEntry {}/{} has no port {}",
            entry.meta().namespace(),
            entry.meta().name(),
            key.port
        ));
    }
    let selected = t.table.static_endpoints().select(&t.table.selector(c));
    let mut out = Vec::new();
    for ep in selected.iter() {
        let address: std::net::IpAddr = ep.address().parse().map_err(|_| {
            format!(
                "cluster {name}: endpoint address {:?} is not an IP address (STATIC needs one)",
                ep.address()
            )
        })?;
        out.push(json!({
            "endpoint": {"address": {"socket_address": {
                "address": address.to_string(),
                "port_value": ep.port(),
            }}},
            "load_balancing_weight": ep.weight(),
        }));
    }
    Ok(out)
}

fn outlier_detection(od: &mesh_model::OutlierDetection) -> Value {
    let mut o = Map::new();
    let c5 = od.consecutive_5xx_errors();
    o.insert("consecutive_5xx".into(), json!(c5));
    o.insert(
        "enforcing_consecutive_5xx".into(),
        json!(if c5 > 0 { 100 } else { 0 }),
    );
    let gw = od.consecutive_gateway_errors();
    if gw > 0 {
        o.insert("consecutive_gateway_failure".into(), json!(gw));
        o.insert("enforcing_consecutive_gateway_failure".into(), json!(100));
    }
    o.insert("enforcing_success_rate".into(), json!(0));
    o.insert("interval".into(), json!(dur(od.interval())));
    o.insert(
        "base_ejection_time".into(),
        json!(dur(od.base_ejection_time())),
    );
    o.insert(
        "max_ejection_percent".into(),
        json!(od.max_ejection_percent()),
    );
    if od.split_external_local_origin_errors() {
        o.insert("split_external_local_origin_errors".into(), json!(true));
        o.insert(
            "consecutive_local_origin_failure".into(),
            json!(od.consecutive_local_origin_failures()),
        );
        o.insert(
            "enforcing_consecutive_local_origin_failure".into(),
            json!(100),
        );
    }
    Value::Object(o)
}
