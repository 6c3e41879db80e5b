//! `meshctl route`: one routing decision as JSON or text.

use std::fmt::Write as _;

use mesh_model::Rewrite;
use mesh_resilience::{AbortKind, FaultInjection, RetryPolicy};
use mesh_routing::headers::HeaderOps;
use mesh_routing::lb::LoadBalancer;
use mesh_routing::{
    Action, ClusterId, ClusterPolicy, DestinationRef, RequestView, RouteDecision, RouteTable,
    Routed, Trace, TraceOutcome, TraceRouteResult,
};
use serde_json::{json, Value};

use crate::request::{self, Request};
use crate::{exit, rng, sources, Failure, Format, RouteArgs};

/// Compiles the table for the command line's client, or explains why it cannot.
pub(crate) fn compile(
    config: &mesh_model::MeshConfig,
    client: &mesh_routing::ClientContext,
) -> Result<RouteTable, Failure> {
    RouteTable::compile(config, client)
        .map_err(|e| Failure::config(format!("the route table cannot be built: {e}")))
}

/// Runs `route`.
pub(crate) fn run(args: &RouteArgs) -> Result<u8, Failure> {
    let req = Request::parse(&args.request)?;
    let client = request::client(&args.request)?;
    let config = sources::load_for_routing(&args.config.files, args.config.quiet)?;
    let table = compile(&config, &client)?;
    let view = req.view();
    let roll = args
        .roll
        .unwrap_or_else(|| mesh_resilience::rng::Rolls::for_request(rng::clock_seed(), 0).route());
    let decision = table.route(&view, roll);
    let trace = table.explain(&view);
    match args.format {
        Format::Json => {
            let mut v = decision_json(&table, &decision, &view, &trace);
            if let Value::Object(map) = &mut v {
                map.insert(
                    "request".to_owned(),
                    json!({
                        "method": req.method(),
                        "url": req.url(),
                        "authority": view.authority(),
                        "path": view.path_and_query(),
                        "port": view.port(),
                        "headers": view.headers().iter()
                            .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                            .collect::<Vec<_>>(),
                    }),
                );
                map.insert("client".to_owned(), client_json(table.client()));
                map.insert("roll".to_owned(), json!(roll));
            }
            let mut text = serde_json::to_string_pretty(&v)
                .map_err(|e| Failure::usage(format!("cannot write JSON: {e}")))?;
            text.push('\n');
            crate::out(&text)?;
        }
        Format::Text => crate::out(&decision_text(&table, &decision, &view, &trace, roll))?,
    }
    Ok(if matches!(decision.action(), Action::NoRoute) {
        exit::NO_ROUTE
    } else {
        exit::OK
    })
}

/// The action's name in the JSON output.
pub(crate) fn action_name(action: &Action<'_>) -> &'static str {
    match action {
        Action::Route(_) | Action::UnknownSubset(_) => "route",
        Action::Redirect(_) => "redirect",
        Action::DirectResponse(_) => "directResponse",
        Action::NoRoute => "noRoute",
        Action::Passthrough(_) => "passthrough",
    }
}

/// The status a client gets without reaching a backend, if any.
fn local_status(decision: &RouteDecision<'_>) -> Option<u16> {
    match decision.action() {
        Action::UnknownSubset(_) => Some(503),
        Action::NoRoute => Some(404),
        Action::Redirect(r) => Some(r.code()),
        Action::DirectResponse(d) => Some(d.status().as_u16()),
        Action::Route(_) | Action::Passthrough(_) => None,
    }
}

/// The cluster of every weighted destination of a route, in order.
///
/// `mesh-routing` exposes the cluster of the chosen destination only, so each destination is
/// chosen in turn by routing again with the roll that lands on it (`roll % total` over
/// cumulative weights: the destination's first cumulative value). `None` if that roll did not
/// pick it (it then reports the written port).
pub(crate) fn destination_clusters(
    table: &RouteTable,
    view: &RequestView<'_>,
    routed: &Routed<'_>,
) -> Vec<Option<ClusterId>> {
    let mut start = 0u64;
    routed
        .destinations()
        .enumerate()
        .map(|(i, d)| {
            let roll = start;
            start += u64::from(d.weight());
            match table.route(view, roll).action() {
                Action::Route(r) | Action::UnknownSubset(r) if r.chosen_index() == i => {
                    Some(r.cluster())
                }
                _ => None,
            }
        })
        .collect()
}

fn destination_json(
    table: &RouteTable,
    d: &DestinationRef<'_>,
    cluster: Option<ClusterId>,
    total: u64,
) -> Value {
    let key = cluster.map(|c| table.cluster_key(c));
    json!({
        "host": d.host(),
        "subset": d.subset(),
        "port": key.map(|k| k.port).or(d.port()),
        "weight": d.weight(),
        "share": share(u64::from(d.weight()), total),
        "cluster": key.map(|k| k.to_string()),
        "unknownSubset": d.is_unknown_subset(),
    })
}

/// `part / total` in percent, rounded to 0.01.
pub(crate) fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / total as f64).round() / 100.0
}

/// The endpoints of a cluster as `address:port`, as the configuration's ServiceEntries
/// publish them, or `None` when the host name is resolved by DNS.
pub(crate) fn endpoint_list(table: &RouteTable, cluster: ClusterId) -> Option<Vec<String>> {
    let eps = table.static_endpoints().select(&table.selector(cluster));
    if eps.resolve().is_some() {
        return None;
    }
    Some(eps.iter().map(|e| e.authority().to_string()).collect())
}

/// Istio's name of a load-balancing algorithm.
pub(crate) fn lb_name(lb: LoadBalancer) -> &'static str {
    match lb {
        LoadBalancer::RoundRobin => "ROUND_ROBIN",
        LoadBalancer::LeastRequest => "LEAST_REQUEST",
        LoadBalancer::Random => "RANDOM",
        LoadBalancer::Passthrough => "PASSTHROUGH",
        LoadBalancer::RingHash { .. } => "RING_HASH",
        LoadBalancer::Maglev { .. } => "MAGLEV",
    }
}

/// A standard duration in Istio's notation (`10s`, `250ms`, `1h`).
pub(crate) fn fmt_duration(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (unit, name) in [
        (3_600_000_000_000u128, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ] {
        if nanos % unit == 0 {
            return format!("{}{name}", nanos / unit);
        }
    }
    format!("{nanos}ns")
}

fn policy_json(policy: &ClusterPolicy) -> Value {
    let pool = policy.connection_pool().map(|p| {
        json!({
            "maxConnections": p.max_connections(),
            "connectTimeout": fmt_duration(p.connect_timeout()),
            "http1MaxPendingRequests": p.http1_max_pending_requests(),
            "http2MaxRequests": p.http2_max_requests(),
            "maxRequestsPerConnection": p.max_requests_per_connection(),
            "maxRetries": p.max_retries(),
            "idleTimeout": p.idle_timeout().map(|d| d.to_string()),
        })
    });
    let outlier = policy.outlier_detection().map(|o| {
        json!({
            "consecutive5xxErrors": o.consecutive_5xx_errors(),
            "consecutiveGatewayErrors": o.consecutive_gateway_errors(),
            "interval": fmt_duration(o.interval()),
            "baseEjectionTime": fmt_duration(o.base_ejection_time()),
            "maxEjectionPercent": o.max_ejection_percent(),
            "minHealthPercent": o.min_health_percent(),
        })
    });
    json!({
        "destinationRule": policy.source(),
        "loadBalancer": lb_name(policy.load_balancer()),
        "connectionPool": pool,
        "outlierDetection": outlier,
        "tls": policy.tls().is_some(),
    })
}

fn retries_json(p: &RetryPolicy, istio_default: bool) -> Value {
    json!({
        "attempts": p.num_retries(),
        "perTryTimeout": p.deadlines().configured_per_try().map(fmt_duration),
        "retryOn": p.retry_on().to_string(),
        "istioDefault": istio_default,
    })
}

fn abort_json(kind: AbortKind) -> Value {
    match kind {
        AbortKind::Http(code) => json!({"httpStatus": code.as_u16()}),
        AbortKind::Grpc(g) => json!({"grpcStatus": g.name()}),
    }
}

fn fault_json(f: &FaultInjection) -> Value {
    json!({
        "delay": f.delay().map(|d| json!({
            "fixedDelay": fmt_duration(d.fixed_delay()),
            "percentage": d.percentage().value(),
        })),
        "abort": f.abort().map(|a| {
            let mut v = abort_json(a.kind());
            v["percentage"] = json!(a.percentage().value());
            v
        }),
    })
}

fn rewrite_json(r: &Rewrite, path: Option<String>) -> Value {
    json!({
        "path": path,
        "uri": r.uri(),
        "uriRegexRewrite": r.uri_regex().map(|rx| json!({
            "match": rx.pattern().as_str(),
            "rewrite": rx.rewrite(),
        })),
        "authority": r.authority(),
    })
}

fn header_ops_json(ops: &HeaderOps) -> Value {
    let pairs = |v: &[(http::HeaderName, http::HeaderValue)]| {
        v.iter()
            .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
            .collect::<Vec<_>>()
    };
    json!({
        "set": pairs(ops.set()),
        "add": pairs(ops.add()),
        "remove": ops.remove().iter().map(http::HeaderName::as_str).collect::<Vec<_>>(),
    })
}

fn trace_json(trace: &Trace) -> Value {
    let routes: Vec<Value> = trace
        .routes
        .iter()
        .map(|r| {
            let block = |b: &mesh_routing::TraceBlock| {
                json!({"index": b.index, "name": b.name, "failure": b.failure})
            };
            let (result, matched, failures) = match &r.result {
                TraceRouteResult::MatchedWithoutConditions => {
                    ("matchedWithoutConditions", None, Vec::new())
                }
                TraceRouteResult::Matched { index, earlier } => {
                    ("matched", Some(*index), earlier.iter().map(block).collect())
                }
                TraceRouteResult::NotMatched(blocks) => {
                    ("notMatched", None, blocks.iter().map(block).collect())
                }
            };
            json!({
                "index": r.index,
                "name": r.name,
                "result": result,
                "matchIndex": matched,
                "failedMatches": failures,
            })
        })
        .collect();
    let outcome = match &trace.outcome {
        TraceOutcome::Route { .. } => "route",
        TraceOutcome::Redirect { .. } => "redirect",
        TraceOutcome::DirectResponse { .. } => "directResponse",
        TraceOutcome::NoRoute => "noRoute",
        TraceOutcome::Passthrough { .. } => "passthrough",
    };
    json!({
        "request": trace.request,
        "virtualService": trace.virtual_service.as_ref().map(|v| json!({
            "id": v.id,
            "matchedBy": v.matched_by,
        })),
        "routes": routes,
        "notes": trace.notes,
        "outcome": outcome,
        "text": trace.to_string(),
    })
}

fn client_json(client: &mesh_routing::ClientContext) -> Value {
    json!({
        "namespace": client.namespace(),
        "labels": client.labels(),
        "gateway": client.gateway(),
    })
}

/// The decision as one JSON object (the keys are documented in `meshctl route --help`).
pub(crate) fn decision_json(
    table: &RouteTable,
    decision: &RouteDecision<'_>,
    view: &RequestView<'_>,
    trace: &Trace,
) -> Value {
    let action = decision.action();
    let mut destinations = Vec::new();
    let mut chosen = Value::Null;
    match action {
        Action::Route(r) | Action::UnknownSubset(r) => {
            let total: u64 = r.destinations().map(|d| u64::from(d.weight())).sum();
            let clusters = destination_clusters(table, view, r);
            for (i, d) in r.destinations().enumerate() {
                let cluster = if i == r.chosen_index() {
                    Some(r.cluster())
                } else {
                    clusters.get(i).copied().flatten()
                };
                destinations.push(destination_json(table, &d, cluster, total));
            }
            let mut c = destination_json(table, &r.destination(), Some(r.cluster()), total);
            c["index"] = json!(r.chosen_index());
            c["endpoints"] = json!(endpoint_list(table, r.cluster()));
            chosen = c;
        }
        Action::Passthrough(p) => {
            let (host, port, cluster, endpoints) = match p.cluster() {
                Some(c) => {
                    let key = table.cluster_key(c);
                    (
                        key.host.to_owned(),
                        key.port,
                        Some(key.to_string()),
                        endpoint_list(table, c),
                    )
                }
                None => (view.host().to_owned(), view.port(), None, None),
            };
            let d = json!({
                "host": host,
                "subset": null,
                "port": port,
                "weight": 100,
                "share": 100.0,
                "cluster": cluster,
                "unknownSubset": false,
            });
            destinations.push(d.clone());
            chosen = d;
            chosen["index"] = json!(0);
            chosen["endpoints"] = json!(endpoints);
        }
        Action::Redirect(_) | Action::DirectResponse(_) | Action::NoRoute => {}
    }
    let redirect = decision.redirect_code().map(|code| {
        json!({
            "code": code,
            "location": decision.redirect_location(view),
        })
    });
    let direct = match action {
        Action::DirectResponse(d) => json!({
            "status": d.status().as_u16(),
            "body": d.body().map(|b| String::from_utf8_lossy(b).into_owned()),
        }),
        _ => Value::Null,
    };
    let mirrors: Vec<Value> = decision
        .mirrors()
        .map(|m| {
            let key = table.cluster_key(m.cluster);
            json!({
                "host": m.destination.host(),
                "subset": m.destination.subset(),
                "port": key.port,
                "cluster": key.to_string(),
                "percentage": m.policy.percentage().value(),
            })
        })
        .collect();
    json!({
        "host": view.host(),
        "virtualService": decision.virtual_service().map(|v| v.to_string()),
        "route": decision.route().map(|r| json!({
            "index": r.index,
            "name": r.name,
            "matchIndex": r.match_index,
            "matchName": r.match_name,
        })),
        "action": action_name(action),
        "error": matches!(action, Action::UnknownSubset(_)).then_some("unknownSubset"),
        "status": local_status(decision),
        "destinations": destinations,
        "chosen": chosen,
        "policy": decision.cluster().map(|c| policy_json(table.policy(c))),
        "rewrite": decision
            .rewrite()
            .map(|r| rewrite_json(r, decision.rewritten_path(view))),
        "authorityRewrite": decision
            .authority_rewrite()
            .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned()),
        "headers": decision
            .header_operations()
            .map(|h| json!({
                "request": header_ops_json(h.request()),
                "response": header_ops_json(h.response()),
            }))
            .collect::<Vec<_>>(),
        "redirect": redirect,
        "directResponse": direct,
        "timeout": decision.timeout().map(fmt_duration),
        "retries": retries_json(&decision.retry_policy(), decision.retry_is_istio_default()),
        "fault": decision.fault().map(fault_json),
        "mirrors": mirrors,
        "trace": trace_json(trace),
    })
}

/// The decision for humans.
pub(crate) fn decision_text(
    table: &RouteTable,
    decision: &RouteDecision<'_>,
    view: &RequestView<'_>,
    trace: &Trace,
    roll: u64,
) -> String {
    let mut out = String::new();
    let client = table.client();
    let labels: Vec<String> = client
        .labels()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        out,
        "request:  {} {}{} (port {}) from namespace {}{}",
        view.method(),
        view.authority(),
        view.path_and_query(),
        view.port(),
        client.namespace(),
        if labels.is_empty() {
            String::new()
        } else {
            format!(", labels {}", labels.join(","))
        }
    );
    match (decision.virtual_service(), decision.route()) {
        (Some(vs), Some(r)) => {
            let _ = writeln!(out, "matched:  virtual service {vs}, route {r}");
        }
        (Some(vs), None) => {
            let _ = writeln!(
                out,
                "matched:  virtual service {vs}, but none of its routes"
            );
        }
        _ => {
            let _ = writeln!(out, "matched:  no virtual service covers {}", view.host());
        }
    }
    match decision.action() {
        Action::Route(r) | Action::UnknownSubset(r) => {
            let _ = writeln!(out, "action:   route (roll {roll})");
            let total: u64 = r.destinations().map(|d| u64::from(d.weight())).sum();
            let clusters = destination_clusters(table, view, r);
            for (i, d) in r.destinations().enumerate() {
                let name = clusters
                    .get(i)
                    .copied()
                    .flatten()
                    .map(|c| table.cluster_key(c).to_string())
                    .unwrap_or_else(|| {
                        format!("{} subset {}", d.host(), d.subset().unwrap_or("-"))
                    });
                let _ = writeln!(
                    out,
                    "  {} {name} weight {} ({:.1}%){}",
                    if i == r.chosen_index() { "->" } else { "  " },
                    d.weight(),
                    share(u64::from(d.weight()), total),
                    if d.is_unknown_subset() {
                        "  UNDEFINED SUBSET: 503 NC"
                    } else {
                        ""
                    }
                );
            }
            if let Action::UnknownSubset(_) = decision.action() {
                let _ = writeln!(
                    out,
                    "  the chosen subset is declared by no DestinationRule: the client gets 503 (NC)"
                );
            }
            write_endpoints(&mut out, table, r.cluster());
        }
        Action::Redirect(r) => {
            let _ = writeln!(
                out,
                "action:   redirect {} to {}",
                r.code(),
                decision.redirect_location(view).unwrap_or_default()
            );
        }
        Action::DirectResponse(d) => {
            let body = d
                .body()
                .map(|b| format!(" body {:?}", String::from_utf8_lossy(b)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "action:   direct response {}{body}",
                d.status().as_u16()
            );
        }
        Action::NoRoute => {
            let _ = writeln!(out, "action:   no route matched: the client gets 404 (NR)");
        }
        Action::Passthrough(p) => match p.cluster() {
            Some(c) => {
                let _ = writeln!(out, "action:   passthrough to {}", table.cluster_key(c));
                write_endpoints(&mut out, table, c);
            }
            None => {
                let _ = writeln!(
                    out,
                    "action:   passthrough to {}:{} (resolved by DNS)",
                    view.host(),
                    view.port()
                );
            }
        },
    }
    if let Some(c) = decision.cluster() {
        let p = table.policy(c);
        let _ = writeln!(
            out,
            "policy:   {} from {}{}{}",
            lb_name(p.load_balancer()),
            p.source().unwrap_or("no DestinationRule"),
            if p.connection_pool().is_some() {
                ", connection pool limits"
            } else {
                ""
            },
            if p.outlier_detection().is_some() {
                ", outlier detection"
            } else {
                ""
            }
        );
    }
    if let Some(path) = decision.rewritten_path(view) {
        let _ = writeln!(out, "rewrite:  path {} -> {path}", view.path_and_query());
    }
    if let Some(a) = decision.authority_rewrite() {
        let _ = writeln!(
            out,
            "rewrite:  authority {} -> {}",
            view.authority(),
            String::from_utf8_lossy(a.as_bytes())
        );
    }
    let forwarded = matches!(
        decision.action(),
        Action::Route(_) | Action::UnknownSubset(_) | Action::Passthrough(_)
    );
    if !forwarded {
        let _ = writeln!(out, "\nwhy:");
        for line in trace.to_string().lines() {
            let _ = writeln!(out, "  {line}");
        }
        return out;
    }
    let _ = writeln!(
        out,
        "timeout:  {}",
        decision
            .timeout()
            .map_or_else(|| "none (disabled)".to_owned(), fmt_duration)
    );
    let rp = decision.retry_policy();
    let default = if decision.retry_is_istio_default() {
        " (Istio's default)"
    } else {
        ""
    };
    if rp.num_retries() > 0 {
        let _ = writeln!(
            out,
            "retries:  {}{}, on {}{default}",
            retry_count(rp.num_retries()),
            rp.deadlines()
                .configured_per_try()
                .map(|t| format!(", {} per try", fmt_duration(t)))
                .unwrap_or_default(),
            rp.retry_on(),
        );
    } else {
        let _ = writeln!(out, "retries:  {}{default}", retry_count(0));
    }
    if let Some(f) = decision.fault() {
        if let Some(d) = f.delay() {
            let _ = writeln!(
                out,
                "fault:    delay {} for {}% of requests",
                fmt_duration(d.fixed_delay()),
                d.percentage().value()
            );
        }
        if let Some(a) = f.abort() {
            let status = match a.kind() {
                AbortKind::Http(c) => format!("HTTP {}", c.as_u16()),
                AbortKind::Grpc(n) => format!("gRPC {n}"),
            };
            let _ = writeln!(
                out,
                "fault:    abort with {status} for {}% of requests",
                a.percentage().value()
            );
        }
    }
    for m in decision.mirrors() {
        let _ = writeln!(
            out,
            "mirror:   {} ({}% of requests)",
            table.cluster_key(m.cluster),
            m.policy.percentage().value()
        );
    }
    let _ = writeln!(out, "\nwhy:");
    for line in trace.to_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// Istio's `retries.attempts` in words. The field counts retries, not tries: `attempts: 3`
/// means up to 3 retries after the first try, 4 tries at most.
fn retry_count(retries: u32) -> String {
    match retries {
        0 => "no retries (1 attempt)".to_owned(),
        1 => "1 retry (2 attempts at most)".to_owned(),
        n => format!("{n} retries ({} attempts at most)", u64::from(n) + 1),
    }
}

fn write_endpoints(out: &mut String, table: &RouteTable, cluster: ClusterId) {
    match endpoint_list(table, cluster) {
        Some(list) if list.is_empty() => {
            let _ = writeln!(
                out,
                "  endpoints: none carry the subset's labels: the client gets 503 (UH)"
            );
        }
        Some(list) => {
            let _ = writeln!(out, "  endpoints: {}", list.join(", "));
        }
        None => {
            let key = table.cluster_key(cluster);
            let _ = writeln!(
                out,
                "  endpoints: none registered; {}:{} is resolved by DNS",
                key.host, key.port
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn durations_in_istio_notation() {
        use std::time::Duration;
        assert_eq!(fmt_duration(Duration::from_secs(10)), "10s");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
        assert_eq!(fmt_duration(Duration::from_nanos(7)), "7ns");
    }

    #[test]
    fn retry_counts_say_retries_and_the_attempts_they_allow() {
        assert_eq!(retry_count(0), "no retries (1 attempt)");
        assert_eq!(retry_count(1), "1 retry (2 attempts at most)");
        assert_eq!(retry_count(3), "3 retries (4 attempts at most)");
        assert_eq!(
            retry_count(u32::MAX),
            "4294967295 retries (4294967296 attempts at most)"
        );
    }

    #[test]
    fn shares_round_to_hundredths() {
        assert_eq!(share(1, 3), 33.33);
        assert_eq!(share(9, 10), 90.0);
        assert_eq!(share(0, 0), 0.0);
        assert_eq!(share(5, 5), 100.0);
    }

    use proptest::prelude::*;

    /// A VirtualService splitting host `r` over subsets `s0..sN` with `weights`, and the
    /// DestinationRule declaring them.
    pub(crate) fn split_config(weights: &[u32]) -> String {
        let mut yaml = String::from(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [r]\n  http:\n  - route:\n",
        );
        for (i, w) in weights.iter().enumerate() {
            yaml.push_str(&format!(
                "    - {{destination: {{host: r, subset: s{i}}}, weight: {w}}}\n"
            ));
        }
        yaml.push_str("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n  host: r\n  subsets:\n");
        for i in 0..weights.len() {
            yaml.push_str(&format!("  - {{name: s{i}, labels: {{v: s{i}}}}}\n"));
        }
        yaml
    }

    proptest! {
        #[test]
        fn every_destination_gets_its_own_cluster(
            weights in proptest::collection::vec(0u32..=100, 2..6)
        ) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let loaded = mesh_model::load_str("p.yaml", &split_config(&weights));
            prop_assume!(!loaded.has_errors());
            let config = loaded.into_config();
            let table = RouteTable::compile(&config, &mesh_routing::ClientContext::new("default")).unwrap();
            let headers = http::HeaderMap::new();
            let view = RequestView::new("GET", "r:9080", "/", &headers);
            let d = table.route(&view, 0);
            let (Action::Route(r) | Action::UnknownSubset(r)) = d.action() else {
                panic!("not routed: {d}");
            };
            let kept: Vec<String> = weights.iter().enumerate()
                .filter(|(_, w)| **w > 0).map(|(i, _)| format!("s{i}")).collect();
            prop_assert_eq!(r.destination_count(), kept.len());
            let clusters = destination_clusters(&table, &view, r);
            for (i, c) in clusters.iter().enumerate() {
                let c = c.expect("each destination is reachable by a roll");
                let key = table.cluster_key(c);
                prop_assert_eq!(key.subset, Some(kept[i].as_str()));
                prop_assert_eq!(key.port, 9080);
            }
        }

        #[test]
        fn durations_round_trip_through_istio_parsing(ms in 1u64..10_000_000_000) {
            let d = std::time::Duration::from_millis(ms);
            let text = fmt_duration(d);
            let back = mesh_model::Duration::parse_istio(&text).unwrap();
            prop_assert_eq!(back.as_std(), d);
        }

        #[test]
        fn any_duration_round_trips(nanos in 0u64..u64::MAX / 2) {
            let d = std::time::Duration::from_nanos(nanos);
            let back = mesh_model::Duration::parse_unbounded(&fmt_duration(d)).unwrap();
            prop_assert_eq!(back.as_std(), d);
        }

        #[test]
        fn shares_are_percentages(total in 1u64..1_000_000, frac in 0.0f64..=1.0) {
            let part = ((total as f64) * frac) as u64;
            let s = share(part.min(total), total);
            prop_assert!((0.0..=100.0).contains(&s));
            prop_assert!((s - part.min(total) as f64 * 100.0 / total as f64).abs() <= 0.005 + 1e-9);
        }
    }
}
