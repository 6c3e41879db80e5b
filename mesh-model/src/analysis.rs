//! Cross-resource analysis, what `istioctl analyze` does and a bit more: routes to subsets no
//! DestinationRule defines, several virtual services for one host, destination rules no route
//! uses.

use crate::config::MeshConfig;
use crate::destination_rule::DestinationRule;
use crate::diag::{Kind, ResourceRef, Severity};
use crate::meta::resolve_short_name;
use crate::names::host_matches;
use crate::virtual_service::{RouteAction, VirtualService};

/// A diagnostic found across resources, before its line is looked up.
#[derive(Debug)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    pub(crate) source: std::sync::Arc<str>,
    pub(crate) document: usize,
    pub(crate) resource: ResourceRef,
    pub(crate) path: Vec<String>,
    pub(crate) message: String,
}

fn vs_ref(vs: &VirtualService) -> ResourceRef {
    ResourceRef {
        kind: Some(Kind::VirtualService),
        kind_name: "VirtualService".into(),
        namespace: vs.meta.namespace.clone(),
        name: vs.meta.name.clone(),
    }
}

/// The destination rule Istio would pick for `fqdn` seen from namespace `client_ns`: exact host
/// before the most specific wildcard; the client's namespace, then the service's, then
/// `istio-system`; the first in load order within a namespace.
pub fn find_destination_rule<'a>(
    config: &'a MeshConfig,
    fqdn: &str,
    client_ns: &str,
) -> Option<&'a DestinationRule> {
    let service_ns = fqdn
        .split('.')
        .nth(1)
        .filter(|_| fqdn.ends_with(".svc.cluster.local"))
        .unwrap_or("");
    for ns in [client_ns, service_ns, "istio-system"] {
        if ns.is_empty() {
            continue;
        }
        let in_ns = config
            .destination_rules
            .iter()
            .filter(|d| d.meta.namespace == ns);
        let mut best: Option<(&DestinationRule, usize)> = None;
        for dr in in_ns {
            let host = resolve_short_name(&dr.host, &dr.meta.namespace);
            if host == fqdn {
                return Some(dr);
            }
            if host.starts_with('*') && host_matches(&host, fqdn) {
                let spec = host.len();
                if best.is_none_or(|(_, s)| spec > s) {
                    best = Some((dr, spec));
                }
            }
        }
        if let Some((dr, _)) = best {
            return Some(dr);
        }
    }
    None
}

/// Runs the cross-resource checks over a whole configuration.
pub(crate) fn analyze(config: &MeshConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut used_drs: std::collections::HashSet<*const DestinationRule> =
        std::collections::HashSet::new();
    for vs in &config.virtual_services {
        let ns = vs.meta.namespace.as_str();
        for (ri, route) in vs.http.iter().enumerate() {
            let mut check = |path: Vec<String>,
                             host: &str,
                             subset: Option<&str>,
                             out: &mut Vec<Finding>| {
                let fqdn = resolve_short_name(host, ns);
                let dr = find_destination_rule(config, &fqdn, ns);
                if let Some(dr) = dr {
                    used_drs.insert(dr as *const _);
                }
                let Some(subset) = subset else { return };
                let defined = dr.is_some_and(|d| d.subset(subset).is_some());
                if !defined {
                    let why = match dr {
                        None => format!("no DestinationRule defines subsets for host {fqdn:?}"),
                        Some(d) => format!(
                            "DestinationRule {}/{} for host {fqdn:?} has no subset {subset:?}",
                            d.meta.namespace, d.meta.name
                        ),
                    };
                    out.push(Finding {
                        severity: Severity::Error,
                        source: vs.meta.source.clone(),
                        document: vs.meta.document,
                        resource: vs_ref(vs),
                        path,
                        message: format!("subset {subset:?} is not defined: {why}; requests would fail with 503 (no cluster). Define the subset in a DestinationRule for that host"),
                    });
                }
            };
            if let RouteAction::Route(ds) = &route.action {
                for (di, d) in ds.iter().enumerate() {
                    let path = vec![
                        "spec".into(),
                        "http".into(),
                        format!("[{ri}]"),
                        "route".into(),
                        format!("[{di}]"),
                        "destination".into(),
                        "subset".into(),
                    ];
                    check(
                        path,
                        &d.destination.host,
                        d.destination.subset.as_deref(),
                        &mut out,
                    );
                }
            }
            for (mi, m) in route.mirrors.iter().enumerate() {
                // A route written with `mirror:` has exactly one mirror, reported where it was
                // written.
                let path = if m.legacy {
                    vec![
                        "spec".into(),
                        "http".into(),
                        format!("[{ri}]"),
                        "mirror".into(),
                        "subset".into(),
                    ]
                } else {
                    vec![
                        "spec".into(),
                        "http".into(),
                        format!("[{ri}]"),
                        "mirrors".into(),
                        format!("[{mi}]"),
                        "destination".into(),
                        "subset".into(),
                    ]
                };
                check(
                    path,
                    &m.destination.host,
                    m.destination.subset.as_deref(),
                    &mut out,
                );
            }
        }
    }

    // Several virtual services for one host (sidecars do not merge them).
    let mesh_vss: Vec<&VirtualService> = config
        .virtual_services
        .iter()
        .filter(|v| v.applies_to_mesh() && !v.is_delegate())
        .collect();
    // The first virtual service (in load order) that names each host.
    let mut first_for_host: std::collections::HashMap<String, usize> =
        std::collections::HashMap::new();
    for (i, vs) in mesh_vss.iter().enumerate() {
        for (hi, h) in vs.hosts.iter().enumerate() {
            let fqdn = resolve_short_name(h, &vs.meta.namespace);
            let first = *first_for_host.entry(fqdn.clone()).or_insert(i);
            let winner = (first < i).then(|| mesh_vss[first]);
            if let Some(w) = winner {
                out.push(Finding {
                    severity: Severity::Warning,
                    source: vs.meta.source.clone(),
                    document: vs.meta.document,
                    resource: vs_ref(vs),
                    path: vec!["spec".into(), "hosts".into(), format!("[{hi}]")],
                    message: format!(
                        "VirtualService {}/{} (read earlier) already routes the same host {fqdn:?} and wins: sidecars do not merge virtual services, so this one's routes for the host are ignored. Merge the routes into one VirtualService or use delegation",
                        w.meta.namespace, w.meta.name
                    ),
                });
            }
        }
    }

    // Destination rules no route uses.
    for dr in &config.destination_rules {
        if !used_drs.contains(&(dr as *const _)) {
            let fqdn = resolve_short_name(&dr.host, &dr.meta.namespace);
            out.push(Finding {
                severity: Severity::Note,
                source: dr.meta.source.clone(),
                document: dr.meta.document,
                resource: ResourceRef {
                    kind: Some(Kind::DestinationRule),
                    kind_name: "DestinationRule".into(),
                    namespace: dr.meta.namespace.clone(),
                    name: dr.meta.name.clone(),
                },
                path: vec!["spec".into(), "host".into()],
                message: format!("host {fqdn:?} is not referenced by any VirtualService route or mirror; this rule applies only to requests sent to that host directly"),
            });
        }
    }
    out
}
