//! The bootstrap around the routes and clusters: the admin interface, one outbound listener
//! with the HTTP connection manager, its filters and the route configuration.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::Addresses;

/// The whole bootstrap. The fault filter runs before the router when a route injects faults.
/// Like istiod, the route configuration does not validate clusters: a route to a subset no
/// DestinationRule declares names a cluster that does not exist, and Envoy answers it 503
/// `NC`.
pub(super) fn bootstrap(
    addrs: Addresses,
    virtual_hosts: Vec<Value>,
    clusters: Vec<Value>,
    uses_fault: bool,
) -> Value {
    let mut http_filters = Vec::new();
    if uses_fault {
        http_filters.push(json!({
            "name": "envoy.filters.http.fault",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}
        }));
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    json!({
        "admin": {"address": socket(addrs.admin)},
        "static_resources": {
            "listeners": [{
                "name": format!("outbound_{}", addrs.listen),
                "address": socket(addrs.listen),
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "outbound",
                            "codec_type": "AUTO",
                            "route_config": {
                                "name": "mesh",
                                "virtual_hosts": virtual_hosts,
                                "validate_clusters": false,
                            },
                            "http_filters": http_filters,
                        }
                    }]
                }]
            }],
            "clusters": clusters,
        }
    })
}

fn socket(a: SocketAddr) -> Value {
    json!({"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}})
}
