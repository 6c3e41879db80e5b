//! `meshctl route`: one routing decision as JSON ([`json`](mod@json)) or text ([`text`]), and the
//! helpers `simulate` shares with it.

pub(crate) mod json;
pub(crate) mod text;

use mesh_routing::endpoints::StaticEndpoints;
use mesh_routing::lb::LoadBalancer;
use mesh_routing::{Action, ClusterId, RouteTable};
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
    let routing = sources::load_for_routing(&args.config)?;
    let table = compile(&routing.config, &client)?;
    let endpoints = routing.endpoints(&table);
    let view = req.view();
    let roll = args
        .roll
        .unwrap_or_else(|| mesh_resilience::rng::Rolls::for_request(rng::clock_seed(), 0).route());
    let decision = table.route(&view, roll);
    let trace = table.explain(&view);
    match args.format {
        Format::Json => {
            let mut v = json::decision_json(&table, &endpoints, &decision, &view, &trace);
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
                map.insert("client".to_owned(), json::client_json(table.client()));
                map.insert("roll".to_owned(), json!(roll));
            }
            crate::out(&crate::output::json_text(&v)?)?;
        }
        Format::Text => crate::out(&text::decision_text(
            &table, &endpoints, &decision, &view, &trace, roll,
        ))?,
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

/// `part / total` in percent, rounded to 0.01.
pub(crate) fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / total as f64).round() / 100.0
}

/// The endpoints of a cluster as `address:port`, as the source published them into
/// `endpoints` (the configuration's ServiceEntries, a cluster's EndpointSlices), or `None`
/// when the host name is resolved by DNS.
pub(crate) fn endpoint_list(
    table: &RouteTable,
    endpoints: &StaticEndpoints,
    cluster: ClusterId,
) -> Option<Vec<String>> {
    let eps = endpoints.select(&table.selector(cluster));
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
        if nanos.is_multiple_of(unit) {
            return format!("{}{name}", nanos / unit);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mesh_routing::RequestView;

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
            // Each destination's cluster is the one the router picks with the roll that lands
            // on it (`roll % total` over cumulative weights: its first cumulative value).
            let mut start = 0u64;
            for (i, dest) in r.destinations().enumerate() {
                let key = table.cluster_key(dest.cluster_on(view.port()));
                prop_assert_eq!(key.subset, Some(kept[i].as_str()));
                prop_assert_eq!(key.port, 9080);
                let picked = table.route(&view, start);
                let (Action::Route(p) | Action::UnknownSubset(p)) = picked.action() else {
                    panic!("not routed: {picked}");
                };
                prop_assert_eq!(p.chosen_index(), i);
                prop_assert_eq!(p.cluster(), dest.cluster_on(view.port()));
                start += u64::from(dest.weight());
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
