//! Virtual hosts and routes: the table's decisions (which VirtualService won a host, which
//! routes and match blocks the client keeps, the cluster of each destination and mirror),
//! with each route's details translated from its `http[]` entry.

use std::collections::{BTreeMap, BTreeSet};

use mesh_model::{HttpRoute, RetryPolicy};
use mesh_routing::host::kube_alternative_names;
use mesh_routing::{
    ActionView, ClusterId, ClusterKey, DestinationRef, RouteView, SplitView, VirtualHostView,
};
use serde_json::{json, Map, Value};

use super::details::{
    direct_response, fault, hash_policy, header_ops, redirect, retry_policy, route_match, Ops,
};
use super::{dur, fraction, Translation};

/// Every virtual host of the bootstrap: one per host and port of each VirtualService in the
/// table, then istiod's default one for each service no VirtualService covers. A domain appears
/// in one virtual host only (the first, by host and port).
pub(super) fn virtual_hosts(t: &mut Translation<'_>) -> Result<Vec<Value>, String> {
    let mut vhosts: BTreeMap<(String, u16), (Vec<String>, Vec<Value>)> = BTreeMap::new();
    let table = t.table;
    let client_ns = table.client().namespace();
    for vh in table.virtual_hosts() {
        let id = vh.id();
        let vs = t.virtual_service(id)?;
        for host in vs.hosts() {
            let fqdn = mesh_model::resolve_short_name(host, id.namespace);
            if !vh.serves(&fqdn) {
                // Another VirtualService won the host: sidecars do not merge them.
                continue;
            }
            let names: Vec<String> = std::iter::once(fqdn.clone())
                .chain(kube_alternative_names(&fqdn, client_ns))
                .filter(|n| vh.serves(n))
                .collect();
            for port in ports_of(t, &vh, &fqdn)? {
                let routes = routes(t, vs.http(), &vh, port)?;
                vhosts.insert((fqdn.clone(), port), (domains(&names, port), routes));
            }
        }
    }
    for (fqdn, ports) in t.services.list() {
        if table.virtual_host_for(&fqdn).is_some() {
            // A VirtualService covers the host (through a wildcard, maybe): the mesh routes
            // with it, and so does Envoy.
            continue;
        }
        let names: Vec<String> = std::iter::once(fqdn.clone())
            .chain(kube_alternative_names(&fqdn, client_ns))
            .filter(|n| table.virtual_host_for(n).is_none())
            .collect();
        for port in ports {
            let route = default_route(t, &fqdn, port)?;
            vhosts.insert((fqdn.clone(), port), (domains(&names, port), vec![route]));
        }
    }
    let mut seen = BTreeSet::new();
    Ok(vhosts
        .into_iter()
        .map(|((fqdn, port), (domains, routes))| {
            let domains: Vec<String> = domains
                .into_iter()
                .filter(|d| seen.insert(d.clone()))
                .collect();
            json!({
                "name": format!("{fqdn}:{port}"),
                "domains": domains,
                "routes": routes,
            })
        })
        .collect())
}

/// Every name with `:port`, then without.
fn domains(names: &[String], port: u16) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| [format!("{n}:{port}"), n.clone()])
        .collect()
}

/// The service ports a virtual-service host is served on: its ServiceEntry's, else the ports
/// the virtual host's destinations name.
fn ports_of(t: &Translation<'_>, vh: &VirtualHostView<'_>, fqdn: &str) -> Result<Vec<u16>, String> {
    if let Some(ports) = t.services.ports(fqdn) {
        return Ok(ports.to_vec());
    }
    let mut ports = BTreeSet::new();
    for r in vh.routes() {
        if let ActionView::Route(split) = r.action() {
            ports.extend(split.destinations().filter_map(|d| d.port()));
        }
    }
    if ports.is_empty() {
        return Err(format!(
            "VirtualService {}: host {fqdn} has no ServiceEntry and no destination names a \
             port; meshctl envoy needs a ServiceEntry with STATIC endpoints to know the port",
            vh.id()
        ));
    }
    Ok(ports.into_iter().collect())
}

/// istiod's route for a service without VirtualService: prefix `/` to the service's cluster,
/// Istio's default retry policy, no timeout.
fn default_route(t: &mut Translation<'_>, fqdn: &str, port: u16) -> Result<Value, String> {
    let key = ClusterKey {
        host: fqdn,
        subset: None,
        port,
    };
    let cluster = t
        .table
        .find_cluster(key)
        .ok_or_else(|| format!("service {fqdn} is not in the route table (a bug)"))?;
    t.use_cluster(cluster);
    Ok(json!({
        "name": "default",
        "match": {"prefix": "/"},
        "route": {
            "cluster": key.to_string(),
            "timeout": "0s",
            "retry_policy": retry_policy(&RetryPolicy::istio_default()),
        }
    }))
}

/// The Envoy routes of a virtual host on `port`: one per kept match block of every route the
/// table kept, leaving out blocks for another port (Envoy builds one route table per port).
fn routes(
    t: &mut Translation<'_>,
    http: &[HttpRoute],
    vh: &VirtualHostView<'_>,
    port: u16,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for r in vh.routes() {
        let model = http
            .get(r.index())
            .ok_or_else(|| format!("VirtualService {}: no http[{}] (a bug)", vh.id(), r.index()))?;
        let name = r
            .name()
            .map_or_else(|| format!("route-{}", r.index()), str::to_owned);
        let matches: Vec<Value> = if r.match_indexes().len() == 0 {
            vec![json!({"prefix": "/"})]
        } else {
            let kept: Vec<Value> = r
                .match_indexes()
                .filter_map(|j| model.matches().get(j))
                .filter(|m| m.port().is_none_or(|p| p == port))
                .map(route_match)
                .collect();
            if kept.is_empty() {
                continue;
            }
            kept
        };
        let action = action(t, &r, model, &name, port)?;
        for m in matches {
            let mut route = Map::new();
            route.insert("name".into(), json!(name));
            route.insert("match".into(), m);
            route.extend(action.clone());
            out.push(Value::Object(route));
        }
    }
    Ok(out)
}

/// The action part of an Envoy route (`route`, `redirect` or `direct_response`, header
/// operations, fault configuration).
fn action(
    t: &mut Translation<'_>,
    r: &RouteView<'_>,
    model: &HttpRoute,
    name: &str,
    port: u16,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    match r.action() {
        ActionView::Route(split) => {
            out.insert(
                "route".into(),
                Value::Object(forward(t, r, split, model, name, port)),
            );
        }
        ActionView::Redirect(rd) => {
            out.insert("redirect".into(), redirect(rd, name, port)?);
        }
        ActionView::DirectResponse(d) => {
            out.insert("direct_response".into(), direct_response(d));
        }
    }
    let h = model.headers();
    header_ops(&mut out, Ops::of(h.request()), Ops::of(h.response()));
    if let Some(f) = model.fault() {
        t.uses_fault = true;
        out.insert(
            "typed_per_filter_config".into(),
            json!({"envoy.filters.http.fault": fault(f)}),
        );
    }
    if model.cors().is_some() {
        t.warnings.push(format!(
            "route {name}: corsPolicy is not translated (no CORS filter in this bootstrap)"
        ));
    }
    Ok(out)
}

/// The cluster of a destination or mirror on `port`, recorded for emission unless its subset
/// is undefined: then Envoy answers 503 `NC` (no cluster), as the mesh does.
fn cluster_of(t: &mut Translation<'_>, d: &DestinationRef<'_>, name: &str, port: u16) -> String {
    let c: ClusterId = d.cluster_on(port);
    let key = t.table.cluster_key(c);
    if d.is_unknown_subset() {
        t.warnings.push(format!(
            "route {name}: no DestinationRule visible to this client declares subset {} of {}: \
             cluster {key} is left out and Envoy answers 503 (NC), as the mesh does",
            key.subset.unwrap_or_default(),
            key.host
        ));
    } else {
        t.use_cluster(c);
    }
    key.to_string()
}

/// Envoy's `RouteAction`: weighted clusters, timeout, rewrites, retries, mirrors, hash policy.
fn forward(
    t: &mut Translation<'_>,
    r: &RouteView<'_>,
    split: SplitView<'_>,
    model: &HttpRoute,
    name: &str,
    port: u16,
) -> Map<String, Value> {
    let mut action = Map::new();
    let mut weighted = Vec::new();
    for d in split.destinations() {
        let mut w = Map::new();
        w.insert("name".into(), json!(cluster_of(t, &d, name, port)));
        w.insert("weight".into(), json!(d.weight()));
        let h = d.headers();
        header_ops(
            &mut w,
            Ops::of_routing(h.request()),
            Ops::of_routing(h.response()),
        );
        weighted.push(Value::Object(w));
    }
    let first = split.destinations().next();
    match (&weighted[..], first) {
        ([only], Some(d)) if d.headers().is_empty() => {
            action.insert("cluster".into(), only["name"].clone());
        }
        _ => {
            action.insert("weighted_clusters".into(), json!({"clusters": weighted}));
        }
    }
    action.insert(
        "timeout".into(),
        json!(model
            .timeout()
            .map_or_else(|| "0s".to_owned(), |d| dur(d.as_std()))),
    );
    if let Some(rw) = model.rewrite() {
        if let Some(uri) = rw.uri() {
            action.insert("prefix_rewrite".into(), json!(uri));
        }
        if let Some(rx) = rw.uri_regex() {
            action.insert(
                "regex_rewrite".into(),
                json!({"pattern": {"regex": rx.pattern().as_str()}, "substitution": rx.rewrite()}),
            );
        }
        if let Some(a) = rw.authority() {
            action.insert("host_rewrite_literal".into(), json!(a));
        }
    }
    if model.retries().is_enabled() {
        action.insert("retry_policy".into(), retry_policy(model.retries()));
    }
    let mirrors: Vec<Value> = r
        .mirrors()
        .map(|m| {
            json!({
                "cluster": cluster_of(t, &m.destination, name, port),
                "runtime_fraction": {"default_value": fraction(m.policy.percentage())},
            })
        })
        .collect();
    if !mirrors.is_empty() {
        action.insert("request_mirror_policies".into(), Value::Array(mirrors));
    }
    // The hash key of the first destination's cluster, from the table's merged policy.
    let settings = first.and_then(|d| t.table.policy(d.cluster_on(port)).load_balancer_settings());
    if let Some(mesh_model::LoadBalancer::ConsistentHash { key, .. }) = settings {
        action.insert("hash_policy".into(), json!([hash_policy(key)]));
    }
    action
}
