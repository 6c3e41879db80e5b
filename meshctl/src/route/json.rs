//! The decision as one JSON object (the keys are documented in `meshctl route --help`).

use mesh_model::Rewrite;
use mesh_resilience::{AbortKind, FaultInjection, RetryPolicy};
use mesh_routing::endpoints::StaticEndpoints;
use mesh_routing::headers::HeaderOps;
use mesh_routing::{
    Action, ClusterId, ClusterPolicy, DestinationRef, RequestView, RouteDecision, RouteTable,
    Trace, TraceOutcome, TraceRouteResult,
};
use serde_json::{json, Value};

use super::{action_name, endpoint_list, fmt_duration, lb_name, share};

fn destination_json(
    table: &RouteTable,
    endpoints: &StaticEndpoints,
    d: &DestinationRef<'_>,
    cluster: ClusterId,
    total: u64,
) -> Value {
    let key = table.cluster_key(cluster);
    json!({
        "host": d.host(),
        "subset": d.subset(),
        "port": key.port,
        "weight": d.weight(),
        "share": share(u64::from(d.weight()), total),
        "cluster": key.to_string(),
        "unknownSubset": d.is_unknown_subset(),
        "endpoints": endpoint_list(table, endpoints, cluster),
    })
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

pub(crate) fn client_json(client: &mesh_routing::ClientContext) -> Value {
    json!({
        "namespace": client.namespace(),
        "labels": client.labels(),
        "gateway": client.gateway(),
    })
}

/// The decision as one JSON object (the keys are documented in `meshctl route --help`).
pub(crate) fn decision_json(
    table: &RouteTable,
    endpoints: &StaticEndpoints,
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
            for d in r.destinations() {
                let cluster = d.cluster_on(view.port());
                destinations.push(destination_json(table, endpoints, &d, cluster, total));
            }
            let mut c = destination_json(table, endpoints, &r.destination(), r.cluster(), total);
            c["index"] = json!(r.chosen_index());
            chosen = c;
        }
        Action::Passthrough(p) => {
            let (host, port, cluster, eps) = match p.cluster() {
                Some(c) => {
                    let key = table.cluster_key(c);
                    (
                        key.host.to_owned(),
                        key.port,
                        Some(key.to_string()),
                        endpoint_list(table, endpoints, c),
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
                "endpoints": eps,
            });
            destinations.push(d.clone());
            chosen = d;
            chosen["index"] = json!(0);
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
