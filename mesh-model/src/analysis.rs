//! Cross-resource analysis, what `istioctl analyze` does and a bit more: routes to subsets no
//! DestinationRule defines, several virtual services for one host, destination rules no route
//! uses.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::config::MeshConfig;
use crate::destination_rule::DestinationRule;
use crate::diag::{Diagnostic, Kind, ResourceRef, Severity};
use crate::lookup::{exported_to, Viewer, DEFAULT_ROOT_NAMESPACE};
use crate::meta::resolve_short_name;
use crate::names::SuffixHash;
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

impl Finding {
    /// The diagnostic for this finding, at `line` when known; `analysis` says whether it is
    /// the cross-resource analysis's (reported, never refusing).
    pub(crate) fn into_diagnostic(self, line: Option<u32>, analysis: bool) -> Diagnostic {
        let mut path = String::new();
        let _ = crate::diag::write_segments(&mut path, &crate::load::paths::to_segs(&self.path));
        Diagnostic {
            severity: self.severity,
            source: self.source,
            document: self.document,
            resource: Some(std::sync::Arc::new(self.resource)),
            path,
            line,
            analysis,
            message: crate::diag::bound_message(&self.message).into_owned(),
        }
    }
}

fn vs_ref(vs: &VirtualService) -> ResourceRef {
    ResourceRef {
        kind: Some(Kind::VirtualService),
        kind_name: "VirtualService".into(),
        namespace: vs.meta.namespace.clone(),
        name: vs.meta.name.clone(),
    }
}

/// Runs the cross-resource checks over a whole configuration. `every_virtual_service_loaded`
/// says whether every virtual service read was valid: when one was refused, the destination
/// rules it would have used are not reported as unused.
pub(crate) fn analyze(config: &MeshConfig, every_virtual_service_loaded: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut rules = RuleIndex::new(config);
    // The rules that apply to some route's destination, seen from the route's namespace.
    let mut used_drs: HashSet<usize> = HashSet::new();
    // The hosts routes send to (expanded).
    let mut referenced: HashSet<String> = HashSet::new();
    // The rules that apply to (host, VirtualService namespace), memoised.
    let mut applied: HashMap<(String, String), Vec<usize>> = HashMap::new();
    // ServiceEntry hosts as written (Istio takes them literally), with the first entry that
    // names each.
    let mut se_hosts: HashMap<&str, usize> = HashMap::new();
    // Every entry naming a host (lower-cased), in load order: the service's namespace of the
    // lookup is that of the first one visible from the route's namespace, as mesh-routing
    // takes it.
    let mut se_by_host: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, se) in config.service_entries.iter().enumerate() {
        for h in se.hosts() {
            se_hosts.entry(h.as_str()).or_insert(i);
            let list = se_by_host.entry(h.to_ascii_lowercase()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    // (host, subset) to the first rule for exactly that host declaring the subset, whatever
    // its namespace and visibility: built when a subset is undefined, to say why.
    let mut declared: Option<HashMap<(String, String), usize>> = None;
    for vs in &config.virtual_services {
        let ns = vs.meta.namespace.as_str();
        for (ri, route) in vs.http.iter().enumerate() {
            let mut check = |path: Vec<String>,
                             host: &str,
                             subset: Option<&str>,
                             out: &mut Vec<Finding>| {
                let fqdn = resolve_short_name(host, ns);
                // A short destination host expands to the namespace's FQDN; a ServiceEntry
                // that wrote the short name registers that literal name instead, so the
                // destination gets none of its endpoints.
                if fqdn != host && !se_hosts.contains_key(fqdn.as_str()) {
                    if let Some(&se) = se_hosts.get(host) {
                        let se = &config.service_entries[se];
                        let mut at = path.clone();
                        if let Some(last) = at.last_mut() {
                            *last = "host".into();
                        }
                        out.push(Finding {
                            severity: Severity::Warning,
                            source: vs.meta.source.clone(),
                            document: vs.meta.document,
                            resource: vs_ref(vs),
                            path: at,
                            message: format!(
                                "destination host {host:?} means {fqdn:?} here, but ServiceEntry {}/{} registers the literal host {host:?} (Istio does not expand ServiceEntry hosts), so this destination gets none of its endpoints{}. Write {fqdn:?} in the ServiceEntry's hosts",
                                se.meta.namespace,
                                se.meta.name,
                                if subset.is_some() { " (503 UH)" } else { "" }
                            ),
                        });
                    }
                }
                // The route's destination seen from its namespace, without workload labels,
                // in a mesh rooted at `istio-system`: the one lookup (mesh-routing's).
                // Each (host, namespace) is looked up, and its rules marked used, once.
                let found = match applied.entry((fqdn.clone(), ns.to_owned())) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let service_ns = se_by_host.get(&fqdn).and_then(|list| {
                            list.iter()
                                .map(|&i| &config.service_entries[i])
                                .find(|se| exported_to(&se.export_to, &se.meta.namespace, ns))
                                .map(|se| se.meta.namespace.as_str())
                        });
                        let found = rules.find(&Viewer::new(ns), service_ns, &fqdn);
                        used_drs.extend(found.iter().copied());
                        referenced.insert(fqdn.clone());
                        e.insert(found)
                    }
                };
                let Some(subset) = subset else { return };
                let defined = found.iter().any(|&i| rules.has_subset(i, subset));
                if !defined {
                    let why = match found.as_slice() {
                        [] => {
                            let declared = declared.get_or_insert_with(|| declared_subsets(config));
                            match declared.get(&(fqdn.clone(), subset.to_owned())) {
                                Some(&i) => unseen_rule(config, i, ns, &fqdn, subset),
                                None => {
                                    format!("no DestinationRule defines subsets for host {fqdn:?}")
                                }
                            }
                        }
                        [i] => {
                            let d = &config.destination_rules[*i];
                            format!(
                                "DestinationRule {}/{} for host {fqdn:?} has no subset {subset:?}",
                                d.meta.namespace, d.meta.name
                            )
                        }
                        several => format!(
                            "DestinationRules {} for host {fqdn:?} have no subset {subset:?}",
                            several
                                .iter()
                                .map(|&i| {
                                    let d = &config.destination_rules[i];
                                    format!("{}/{}", d.meta.namespace, d.meta.name)
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    out.push(Finding {
                        severity: Severity::Error,
                        source: vs.meta.source.clone(),
                        document: vs.meta.document,
                        resource: vs_ref(vs),
                        path,
                        message: format!("subset {subset:?} is not defined: {why}; istiod accepts the route and Envoy answers its requests 503 NC (no cluster), and so does the mesh (IST0101). Define the subset in a DestinationRule for that host"),
                    });
                }
            };
            if let RouteAction::Route(ds) = &route.action {
                for d in ds {
                    // The index as written: destinations of weight 0 are not in the list.
                    let path = vec![
                        "spec".into(),
                        "http".into(),
                        format!("[{ri}]"),
                        "route".into(),
                        format!("[{}]", d.written_at),
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
    let mut first_for_host: HashMap<String, usize> = HashMap::new();
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

    // Destination rules for hosts no route sends to (not known when a virtual service was
    // refused). A rule for a routed host that applies to none of the routes (not exported to
    // their namespace, a workload selector, another namespace looked in first) is not one.
    for (i, dr) in config.destination_rules.iter().enumerate() {
        if !every_virtual_service_loaded || used_drs.contains(&i) {
            continue;
        }
        let fqdn = resolve_short_name(&dr.host, &dr.meta.namespace);
        if !referenced.contains(&fqdn) {
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

/// (host, subset) to the first rule for exactly that host (expanded) declaring the subset.
fn declared_subsets(config: &MeshConfig) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for (i, dr) in config.destination_rules.iter().enumerate() {
        let host = resolve_short_name(&dr.host, &dr.meta.namespace);
        for s in &dr.subsets {
            out.entry((host.clone(), s.name.clone())).or_insert(i);
        }
    }
    out
}

/// Why rule `i`, which declares `subset` for `fqdn`, does not apply to the routes of namespace
/// `ns`.
fn unseen_rule(config: &MeshConfig, i: usize, ns: &str, fqdn: &str, subset: &str) -> String {
    let d = &config.destination_rules[i];
    let (dns, name) = (&d.meta.namespace, &d.meta.name);
    let because = if !exported_to(&d.export_to, dns, ns) {
        format!(
            "it is not exported to namespace {ns:?} (exportTo {:?})",
            d.export_to
        )
    } else if d.workload_selector.is_some() {
        "its workloadSelector limits it to the workloads it selects".to_owned()
    } else {
        format!(
            "its namespace is not looked in from namespace {ns:?} (the route's namespace, the service's, then {DEFAULT_ROOT_NAMESPACE:?})"
        )
    };
    format!(
        "no DestinationRule that applies to routes in namespace {ns:?} defines subsets for host {fqdn:?}; DestinationRule {dns}/{name} declares {subset:?}, but {because}"
    )
}

/// [`applicable_destination_rules`](crate::applicable_destination_rules) for many lookups:
/// the rules of each (namespace, exact host) and of each (namespace, wildcard suffix) in load
/// order, found by hashing the suffixes of the host looked up, so a lookup costs the length
/// of the host, not the number of rules. Same answers, by position
/// (`tests::the_index_agrees_with_the_lookup`).
struct RuleIndex<'a> {
    config: &'a MeshConfig,
    hash: SuffixHash,
    /// (namespace, host with short names expanded) to its rules.
    exact: HashMap<(&'a str, String), Vec<usize>>,
    /// Wildcard rules `*S`: (namespace, hash of `S`, length of `S`) to their rules.
    wild: HashMap<(&'a str, u64, usize), Vec<usize>>,
    /// Subset names of the rules looked at so far.
    subsets: HashMap<usize, HashSet<&'a str>>,
}

impl<'a> RuleIndex<'a> {
    fn new(config: &'a MeshConfig) -> Self {
        let hash = SuffixHash::new();
        let mut exact: HashMap<_, Vec<usize>> = HashMap::new();
        let mut wild: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, dr) in config.destination_rules.iter().enumerate() {
            let ns = dr.meta.namespace.as_str();
            let host = resolve_short_name(&dr.host, ns);
            if let Some(s) = host.strip_prefix('*') {
                wild.entry((ns, hash.of(s.as_bytes()), s.len()))
                    .or_default()
                    .push(i);
            }
            exact.entry((ns, host)).or_default().push(i);
        }
        RuleIndex {
            config,
            hash,
            exact,
            wild,
            subsets: HashMap::new(),
        }
    }

    /// The positions of the rules the lookup returns, in its order.
    fn find(&self, viewer: &Viewer<'_>, service_namespace: Option<&str>, host: &str) -> Vec<usize> {
        let host = host.to_ascii_lowercase();
        let rules = &self.config.destination_rules;
        // The rules of `list` the viewer sees, workload selectors first.
        let pick = |list: Option<&Vec<usize>>, keep: &dyn Fn(&DestinationRule) -> bool| {
            let mut out: Vec<usize> = list
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| viewer.sees(&rules[i]) && keep(&rules[i]))
                .collect();
            out.sort_by_key(|&i| rules[i].workload_selector.is_none());
            out
        };
        let suffixes = self.hash.suffixes(host.as_bytes());
        for ns in viewer.scopes(service_namespace, &host) {
            let found = pick(self.exact.get(&(ns, host.clone())), &|_| true);
            if !found.is_empty() {
                return found;
            }
            // `*S` covers the host when `S` is a proper suffix of it (of the name after its
            // own `*` for a wildcard host: the same suffixes): the longest `S` first.
            for (k, h) in suffixes.iter().enumerate().skip(1) {
                let Some(s) = host.get(k..) else { continue };
                let found = pick(self.wild.get(&(ns, *h, s.len())), &|dr| {
                    resolve_short_name(&dr.host, ns).strip_prefix('*') == Some(s)
                });
                if !found.is_empty() {
                    return found;
                }
            }
        }
        Vec::new()
    }

    fn has_subset(&mut self, rule: usize, name: &str) -> bool {
        let config = self.config;
        self.subsets
            .entry(rule)
            .or_insert_with(|| {
                config.destination_rules[rule]
                    .subsets
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect()
            })
            .contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::applicable_destination_rules;
    use crate::lookup::tests::{labels, queries, rules, yaml};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The index answers what the lookup answers, rule for rule and in the same order.
        #[test]
        fn the_index_agrees_with_the_lookup(rules in rules(), queries in queries()) {
            let loaded = crate::load_str("rules.yaml", &yaml(&rules));
            let config = loaded.config();
            let index = RuleIndex::new(config);
            for (host, ns, l, root, service) in &queries {
                let labels = labels(*l);
                let viewer = Viewer::new(ns).with_labels(&labels).with_root_namespace(root);
                let fqdn = resolve_short_name(host, ns);
                let slow: Vec<*const DestinationRule> =
                    applicable_destination_rules(config, &viewer, service.as_deref(), &fqdn)
                        .into_iter()
                        .map(|d| d as *const DestinationRule)
                        .collect();
                let fast: Vec<*const DestinationRule> = index
                    .find(&viewer, service.as_deref(), &fqdn)
                    .into_iter()
                    .map(|i| &config.destination_rules[i] as *const DestinationRule)
                    .collect();
                prop_assert_eq!(fast, slow, "{} from {:?}", fqdn, viewer);
            }
        }
    }
}
