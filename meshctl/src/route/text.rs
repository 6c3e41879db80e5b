//! The decision for humans.

use std::fmt::Write as _;

use mesh_resilience::AbortKind;
use mesh_routing::endpoints::StaticEndpoints;
use mesh_routing::{Action, ClusterId, RequestView, RouteDecision, RouteTable, Trace};

use super::{endpoint_list, fmt_duration, lb_name, share};

/// The decision for humans.
pub(crate) fn decision_text(
    table: &RouteTable,
    endpoints: &StaticEndpoints,
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
            for (i, d) in r.destinations().enumerate() {
                let name = table.cluster_key(d.cluster_on(view.port()));
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
            write_endpoints(&mut out, table, endpoints, r.cluster());
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
                write_endpoints(&mut out, table, endpoints, c);
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

fn write_endpoints(
    out: &mut String,
    table: &RouteTable,
    endpoints: &StaticEndpoints,
    cluster: ClusterId,
) {
    match endpoint_list(table, endpoints, cluster) {
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
mod tests {
    use super::*;

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
}
