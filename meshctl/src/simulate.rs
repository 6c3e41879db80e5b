//! `meshctl simulate`: many routing decisions with random rolls, tallied.

use std::collections::HashMap;
use std::fmt::Write as _;

use mesh_routing::endpoints::{ClusterEndpoints, EndpointChoice, StaticEndpoints};
use mesh_routing::lb::{LbState, NoneEjected};
use mesh_routing::{Action, ClusterId, RequestView, RouteTable};
use serde_json::{json, Value};

use crate::request::{self, Request};
use crate::rng;
use crate::route::{action_name, endpoint_list, lb_name, share};
use crate::{exit, sources, Failure, Format, SimulateArgs};
use mesh_resilience::rng::Rolls;

/// Most requests one run routes (`-n`); 10^8 decisions take well under a minute.
pub(crate) const MAX_REQUESTS: u64 = 100_000_000;

/// Where one request's endpoint pick went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    /// This position in the cluster's endpoint set.
    Endpoint(usize),
    /// No registered endpoints: the host name is resolved by DNS.
    Resolve,
    /// Every endpoint ejected or none carries the subset's labels (503 UH).
    NoHealthyUpstream,
}

/// One row of the destination table.
#[derive(Debug, Clone)]
struct DestRow {
    host: String,
    subset: Option<String>,
    port: Option<u16>,
    cluster: Option<String>,
    weight: u32,
    count: u64,
    /// The cluster's endpoints (`None`: resolved by DNS, or no cluster).
    endpoints: Option<Vec<String>>,
}

/// What a simulation counted.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Requests routed.
    requests: u64,
    /// `virtualService` and `route` of the decision (the same for every roll).
    virtual_service: Option<String>,
    route: Option<String>,
    /// Requests per action name (`route`, `unknownSubset`, `noRoute`, ...), first seen first.
    outcomes: Vec<(String, u64)>,
    /// Requests per weighted destination, in config order.
    destinations: Vec<DestRow>,
    /// Requests per (host, subset), first seen first.
    subsets: Vec<((String, Option<String>), u64)>,
    /// Requests per (cluster, endpoint), in endpoint order within a cluster.
    endpoints: Vec<((String, String), u64)>,
    /// The load balancer of each cluster that picked endpoints.
    balancers: Vec<(String, &'static str)>,
}

fn bump<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => list.push((key, 1)),
    }
}

/// Routes `n` requests with the rolls a mesh built with `seed` gives its first `n` requests
/// ([`Rolls::for_request`]) and counts where they go. Each request to a
/// cluster with endpoints in `endpoints` also picks one with the cluster's load balancer
/// (state kept per cluster across requests, nothing in flight, nothing ejected).
pub(crate) fn simulate(
    table: &RouteTable,
    endpoints: &StaticEndpoints,
    view: &RequestView<'_>,
    n: u64,
    seed: u64,
) -> Tally {
    let mut t = Tally {
        requests: n,
        ..Tally::default()
    };
    let first = table.route(view, 0);
    t.virtual_service = first.virtual_service().map(|v| v.to_string());
    t.route = first.route().map(|r| r.to_string());
    match first.action() {
        Action::Route(r) | Action::UnknownSubset(r) => {
            for d in r.destinations() {
                let key = table.cluster_key(d.cluster_on(view.port()));
                t.destinations.push(DestRow {
                    host: d.host().to_owned(),
                    subset: d.subset().map(str::to_owned),
                    port: Some(key.port),
                    cluster: Some(key.to_string()),
                    weight: d.weight(),
                    count: 0,
                    endpoints: endpoint_list(table, endpoints, d.cluster_on(view.port())),
                });
            }
        }
        Action::Passthrough(p) => {
            let key = p.cluster().map(|c| table.cluster_key(c));
            t.destinations.push(DestRow {
                host: key.map_or_else(|| view.host().to_owned(), |k| k.host.to_owned()),
                subset: None,
                port: Some(key.map_or(view.port(), |k| k.port)),
                cluster: key.map(|k| k.to_string()),
                weight: 100,
                count: 0,
                endpoints: p.cluster().and_then(|c| endpoint_list(table, endpoints, c)),
            });
        }
        Action::Redirect(_) | Action::DirectResponse(_) | Action::NoRoute => {}
    }
    // Count with borrowed or numeric keys (no allocation per request); names are built once
    // at the end.
    // Each cluster's endpoints are selected once (as a mesh does when they are published).
    let mut states: HashMap<ClusterId, (ClusterEndpoints, LbState)> = HashMap::new();
    let mut outcomes: Vec<(&'static str, u64)> = Vec::new();
    let mut subsets: Vec<((&str, Option<&str>), u64)> = Vec::new();
    let mut picks: Vec<((ClusterId, Slot), u64)> = Vec::new();
    for i in 0..n {
        let mut rolls = Rolls::for_request(seed, i);
        let decision = table.route(view, rolls.route());
        let outcome = match decision.action() {
            Action::UnknownSubset(_) => "unknownSubset",
            a => action_name(a),
        };
        bump(&mut outcomes, outcome);
        let cluster = match decision.action() {
            Action::Route(r) | Action::UnknownSubset(r) => {
                if let Some(row) = t.destinations.get_mut(r.chosen_index()) {
                    row.count += 1;
                }
                let d = r.destination();
                bump(&mut subsets, (d.host(), d.subset()));
                // An unknown subset is a 503 NC: no cluster, no endpoint.
                matches!(decision.action(), Action::Route(_)).then(|| r.cluster())
            }
            Action::Passthrough(p) => {
                if let Some(row) = t.destinations.first_mut() {
                    row.count += 1;
                }
                bump(&mut subsets, (p.host().unwrap_or(view.host()), None));
                p.cluster()
            }
            Action::Redirect(_) | Action::DirectResponse(_) | Action::NoRoute => None,
        };
        let Some(cluster) = cluster else { continue };
        let (eps, state) = states
            .entry(cluster)
            .or_insert_with(|| (endpoints.select(&table.selector(cluster)), LbState::new()));
        let lb = table.policy(cluster).load_balancer();
        let slot = match eps.pick(
            &lb,
            state,
            &[],
            &NoneEjected,
            rolls.pick(),
            decision.hash_key(view),
        ) {
            EndpointChoice::Endpoint { index, .. } => Slot::Endpoint(index),
            EndpointChoice::Resolve(_) => Slot::Resolve,
            EndpointChoice::NoHealthyUpstream => Slot::NoHealthyUpstream,
        };
        bump(&mut picks, (cluster, slot));
    }
    t.outcomes = outcomes
        .into_iter()
        .map(|(o, c)| (o.to_owned(), c))
        .collect();
    t.subsets = subsets
        .into_iter()
        .map(|((h, s), c)| ((h.to_owned(), s.map(str::to_owned)), c))
        .collect();
    // Endpoints grouped by cluster (in first-seen cluster order), then in endpoint order.
    let mut clusters: Vec<ClusterId> = Vec::new();
    for ((c, _), _) in &picks {
        if !clusters.contains(c) {
            clusters.push(*c);
        }
    }
    picks.sort_by_key(|((c, slot), _)| (clusters.iter().position(|x| x == c), *slot));
    for c in &clusters {
        t.balancers.push((
            table.cluster_key(*c).to_string(),
            lb_name(table.policy(*c).load_balancer()),
        ));
    }
    t.endpoints = picks
        .into_iter()
        .map(|((c, slot), count)| {
            let key = table.cluster_key(c);
            let name = match slot {
                Slot::Endpoint(i) => states
                    .get(&c)
                    .and_then(|(eps, _)| eps.get(i))
                    .map_or_else(|| format!("endpoint #{i}"), |e| e.authority().to_string()),
                Slot::Resolve => format!("{}:{} (DNS)", key.host, key.port),
                Slot::NoHealthyUpstream => "no healthy upstream (503 UH)".to_owned(),
            };
            ((key.to_string(), name), count)
        })
        .collect();
    t
}

impl Tally {
    /// Whether no request was routed anywhere (every one got noRoute).
    pub(crate) fn nothing_routed(&self) -> bool {
        self.outcomes.iter().all(|(o, _)| o == "noRoute")
    }

    fn total_weight(&self) -> u64 {
        self.destinations.iter().map(|d| u64::from(d.weight)).sum()
    }

    /// The tally as one JSON object.
    pub(crate) fn to_json(&self) -> Value {
        let total = self.total_weight();
        let n = self.requests;
        json!({
            "requests": n,
            "virtualService": self.virtual_service,
            "route": self.route,
            "outcomes": self.outcomes.iter()
                .map(|(o, c)| (o.clone(), json!({"count": c, "share": share(*c, n)})))
                .collect::<serde_json::Map<_, _>>(),
            "destinations": self.destinations.iter().map(|d| json!({
                "host": d.host,
                "subset": d.subset,
                "port": d.port,
                "cluster": d.cluster,
                "weight": d.weight,
                "expectedShare": share(u64::from(d.weight), total),
                "count": d.count,
                "share": share(d.count, n),
                "endpoints": d.endpoints,
            })).collect::<Vec<_>>(),
            "subsets": self.subsets.iter().map(|((h, s), c)| json!({
                "host": h,
                "subset": s,
                "count": c,
                "share": share(*c, n),
            })).collect::<Vec<_>>(),
            "endpoints": self.endpoints.iter().map(|((cl, e), c)| json!({
                "cluster": cl,
                "endpoint": e,
                "loadBalancer": self.balancers.iter().find(|(b, _)| b == cl).map(|(_, lb)| *lb),
                "count": c,
                "share": share(*c, n),
            })).collect::<Vec<_>>(),
        })
    }

    /// The tally as text tables.
    pub(crate) fn to_text(&self) -> String {
        let n = self.requests;
        let pct = |c: u64| format!("{:.2}%", share(c, n));
        let mut out = String::new();
        match (&self.virtual_service, &self.route) {
            (Some(vs), Some(r)) => {
                let _ = writeln!(out, "virtual service {vs}, route {r}");
            }
            (Some(vs), None) => {
                let _ = writeln!(out, "virtual service {vs}: no route matches");
            }
            _ => {
                let _ = writeln!(out, "no virtual service covers the host: passthrough");
            }
        }
        out.push('\n');
        let rows = self
            .outcomes
            .iter()
            .map(|(o, c)| vec![o.clone(), c.to_string(), pct(*c)])
            .collect();
        out.push_str(&table(&["OUTCOME", "REQUESTS", "SHARE"], rows));
        if !self.destinations.is_empty() {
            out.push('\n');
            let total = self.total_weight();
            let rows = self
                .destinations
                .iter()
                .map(|d| {
                    vec![
                        d.cluster.clone().unwrap_or_else(|| d.host.clone()),
                        d.subset.clone().unwrap_or_else(|| "-".to_owned()),
                        d.weight.to_string(),
                        format!("{:.2}%", share(u64::from(d.weight), total)),
                        d.count.to_string(),
                        pct(d.count),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "DESTINATION",
                    "SUBSET",
                    "WEIGHT",
                    "EXPECTED",
                    "REQUESTS",
                    "SHARE",
                ],
                rows,
            ));
        }
        if !self.subsets.is_empty() {
            out.push('\n');
            let rows = self
                .subsets
                .iter()
                .map(|((h, s), c)| {
                    vec![
                        h.clone(),
                        s.clone().unwrap_or_else(|| "-".to_owned()),
                        c.to_string(),
                        pct(*c),
                    ]
                })
                .collect();
            out.push_str(&table(&["HOST", "SUBSET", "REQUESTS", "SHARE"], rows));
        }
        if !self.endpoints.is_empty() {
            out.push('\n');
            let rows = self
                .endpoints
                .iter()
                .map(|((cl, e), c)| {
                    let lb = self
                        .balancers
                        .iter()
                        .find(|(b, _)| b == cl)
                        .map_or("", |(_, lb)| *lb);
                    vec![e.clone(), cl.clone(), lb.to_owned(), c.to_string(), pct(*c)]
                })
                .collect();
            out.push_str(&table(
                &["ENDPOINT", "CLUSTER", "LB", "REQUESTS", "SHARE"],
                rows,
            ));
        }
        out
    }
}

/// A plain text table: left-aligned text, right-aligned numeric columns (digits, `.` and `%`).
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i).is_some_and(|c| {
                        !c.is_empty()
                            && c.chars()
                                .all(|ch| ch.is_ascii_digit() || ch == '.' || ch == '%')
                    })
                })
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths[i];
            if i > 0 {
                l.push_str("  ");
            }
            if numeric[i] {
                let _ = write!(l, "{cell:>w$}");
            } else {
                let _ = write!(l, "{cell:<w$}");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Runs `simulate`.
pub(crate) fn run(args: &SimulateArgs) -> Result<u8, Failure> {
    let req = Request::parse(&args.request)?;
    let client = request::client(&args.request)?;
    let routing = sources::load_for_routing(&args.config)?;
    let table = crate::route::compile(&routing.config, &client)?;
    let endpoints = routing.endpoints(&table);
    let view = req.view();
    let seed = args.seed.unwrap_or_else(rng::clock_seed);
    let tally = simulate(&table, &endpoints, &view, args.requests, seed);
    match args.format() {
        Format::Json => {
            let mut v = tally.to_json();
            v["seed"] = json!(seed);
            v["request"] = json!({"method": req.method(), "url": req.url(), "port": view.port()});
            crate::out(&crate::output::json_text(&v)?)?;
        }
        Format::Text => crate::out(&format!(
            "{} requests {} {} (seed {seed}; repeat with --seed {seed})\n{}",
            args.requests,
            req.method(),
            req.url(),
            tally.to_text()
        ))?,
    }
    Ok(if tally.nothing_routed() {
        exit::NO_ROUTE
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["NAME", "COUNT"],
            vec![
                vec!["a".to_owned(), "5".to_owned()],
                vec!["long name".to_owned(), "12345".to_owned()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NAME       COUNT");
        assert_eq!(lines[1], "a              5");
        assert_eq!(lines[2], "long name  12345");
    }

    #[test]
    fn bump_counts_in_first_seen_order() {
        let mut l = Vec::new();
        bump(&mut l, "b");
        bump(&mut l, "a");
        bump(&mut l, "b");
        assert_eq!(l, vec![("b", 2), ("a", 1)]);
    }

    fn canary_table(labels: &[(&str, &str)]) -> RouteTable {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - {destination: {host: r, subset: a}, weight: 75}\n    - {destination: {host: r, subset: b}, weight: 25}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n  host: r\n  subsets:\n  - {name: a, labels: {v: a}}\n  - {name: b, labels: {v: b}}\n";
        let config = mesh_model::load_str("t.yaml", yaml)
            .into_result()
            .expect("valid");
        let mut client = mesh_routing::ClientContext::new("default");
        for (k, v) in labels {
            client = client.with_label(k, v);
        }
        RouteTable::compile(&config, &client).expect("compiles")
    }

    #[test]
    fn counts_add_up_and_follow_weights() {
        let table = canary_table(&[]);
        let headers = http::HeaderMap::new();
        let view = RequestView::new("GET", "r", "/", &headers);
        let t = simulate(&table, table.static_endpoints(), &view, 20_000, 3);
        let sum: u64 = t.destinations.iter().map(|d| d.count).sum();
        assert_eq!(sum, 20_000);
        assert_eq!(t.outcomes, vec![("route".to_owned(), 20_000)]);
        // 75% of 20,000: sd = sqrt(20000 * 0.75 * 0.25) = 61; allow 5 sd.
        let a = t.destinations[0].count as i64;
        assert!((a - 15_000).abs() < 305, "{a}");
        // No source knows the host: a subset of it has no endpoint (503 UH), never a DNS name.
        assert!(t
            .endpoints
            .iter()
            .all(|((_, e), _)| e == "no healthy upstream (503 UH)"));
        assert!(!t.nothing_routed());
    }

    #[test]
    fn same_seed_same_tally() {
        let table = canary_table(&[]);
        let headers = http::HeaderMap::new();
        let view = RequestView::new("GET", "r", "/", &headers);
        let a = simulate(&table, table.static_endpoints(), &view, 1000, 9);
        let b = simulate(&table, table.static_endpoints(), &view, 1000, 9);
        assert_eq!(a.to_json(), b.to_json());
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_request_is_counted_once(
            weights in proptest::collection::vec(0u32..=100, 1..5),
            n in 1u64..2000,
            seed in any::<u64>(),
        ) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let loaded = mesh_model::load_str("p.yaml", &crate::route::tests::split_config(&weights));
            prop_assume!(!loaded.has_errors());
            let config = loaded.into_config();
            let table = RouteTable::compile(&config, &mesh_routing::ClientContext::new("default")).unwrap();
            let headers = http::HeaderMap::new();
            let view = RequestView::new("GET", "r", "/", &headers);
            let t = simulate(&table, table.static_endpoints(), &view, n, seed);
            prop_assert_eq!(t.destinations.iter().map(|d| d.count).sum::<u64>(), n);
            prop_assert_eq!(t.subsets.iter().map(|(_, c)| c).sum::<u64>(), n);
            prop_assert_eq!(t.endpoints.iter().map(|(_, c)| c).sum::<u64>(), n);
            prop_assert_eq!(t.outcomes.iter().map(|(_, c)| c).sum::<u64>(), n);
            // Zero weights never receive traffic (they are not even listed).
            prop_assert!(t.destinations.iter().all(|d| d.weight > 0));
            let shares: f64 = t.destinations.iter().map(|d| share(d.count, n)).sum();
            prop_assert!((shares - 100.0).abs() < 0.01 * t.destinations.len() as f64);
        }
    }
}
