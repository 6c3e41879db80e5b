//! Cross-resource analysis, what `istioctl analyze` does and a bit more: routes to subsets no
//! DestinationRule defines, several virtual services for one host, destination rules no route
//! uses.

use std::collections::{HashMap, HashSet};

use crate::config::MeshConfig;
use crate::destination_rule::DestinationRule;
use crate::diag::{Diagnostic, Kind, ResourceRef, Severity};
use crate::meta::resolve_short_name;
use crate::names::{host_matches, SuffixHash};
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
/// Runs the cross-resource checks over a whole configuration. `every_virtual_service_loaded`
/// says whether every virtual service read was valid: when one was refused, the destination
/// rules it would have used are not reported as unused.
pub(crate) fn analyze(config: &MeshConfig, every_virtual_service_loaded: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut rules = RuleIndex::new(config);
    let mut used_drs: HashSet<usize> = HashSet::new();
    // ServiceEntry hosts as written (Istio takes them literally), with the first entry that
    // names each.
    let mut se_hosts: HashMap<&str, usize> = HashMap::new();
    for (i, se) in config.service_entries.iter().enumerate() {
        for h in se.hosts() {
            se_hosts.entry(h.as_str()).or_insert(i);
        }
    }
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
                let found = rules.find(&fqdn, ns);
                if let Some(i) = found {
                    used_drs.insert(i);
                }
                let Some(subset) = subset else { return };
                let dr = found.map(|i| &config.destination_rules[i]);
                let defined = found.is_some_and(|i| rules.has_subset(i, subset));
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

    // Destination rules no route uses (not known when a virtual service was refused).
    for (i, dr) in config.destination_rules.iter().enumerate() {
        if every_virtual_service_loaded && !used_drs.contains(&i) {
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

/// [`find_destination_rule`] for many lookups: exact hosts in a map, wildcard hosts by their
/// suffix, so a lookup costs the length of the host, not the number of rules; answers memoised.
struct RuleIndex<'a> {
    config: &'a MeshConfig,
    hash: SuffixHash,
    /// (namespace, host with short names expanded) to the first rule.
    exact: HashMap<(&'a str, String), usize>,
    /// Wildcard rules `*S`: (namespace, hash of `S`, length of `S`) to the first rule.
    wild: HashMap<(&'a str, u64, usize), usize>,
    /// Subset names of the rules looked at so far.
    subsets: HashMap<usize, HashSet<&'a str>>,
    memo: HashMap<(String, String), Option<usize>>,
}

impl<'a> RuleIndex<'a> {
    fn new(config: &'a MeshConfig) -> Self {
        let hash = SuffixHash::new();
        let mut exact = HashMap::new();
        let mut wild = HashMap::new();
        for (i, dr) in config.destination_rules.iter().enumerate() {
            let ns = dr.meta.namespace.as_str();
            let host = resolve_short_name(&dr.host, ns);
            if let Some(s) = host.strip_prefix('*') {
                wild.entry((ns, hash.of(s.as_bytes()), s.len()))
                    .or_insert(i);
            }
            exact.entry((ns, host)).or_insert(i);
        }
        RuleIndex {
            config,
            hash,
            exact,
            wild,
            subsets: HashMap::new(),
            memo: HashMap::new(),
        }
    }

    /// The rule [`find_destination_rule`] returns, by its position.
    fn find(&mut self, fqdn: &str, client_ns: &str) -> Option<usize> {
        let key = (fqdn.to_owned(), client_ns.to_owned());
        if let Some(found) = self.memo.get(&key) {
            return *found;
        }
        let found = self.find_uncached(fqdn, client_ns);
        self.memo.insert(key, found);
        found
    }

    fn find_uncached(&self, fqdn: &str, client_ns: &str) -> Option<usize> {
        let service_ns = fqdn
            .split('.')
            .nth(1)
            .filter(|_| fqdn.ends_with(".svc.cluster.local"))
            .unwrap_or("");
        let suffixes = self.hash.suffixes(fqdn.as_bytes());
        for ns in [client_ns, service_ns, "istio-system"] {
            if ns.is_empty() {
                continue;
            }
            if let Some(&i) = self.exact.get(&(ns, fqdn.to_owned())) {
                return Some(i);
            }
            // The most specific (longest) wildcard: the longest suffix `S` first.
            for (k, h) in suffixes.iter().enumerate() {
                if let Some(&i) = self.wild.get(&(ns, *h, fqdn.len() - k)) {
                    let dr = &self.config.destination_rules[i];
                    let host = resolve_short_name(&dr.host, &dr.meta.namespace);
                    if host_matches(&host, fqdn) {
                        return Some(i);
                    }
                }
            }
        }
        None
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
    use proptest::prelude::*;

    proptest! {
        /// The index answers what [`find_destination_rule`] answers.
        #[test]
        fn the_index_agrees_with_find_destination_rule(
            rules in proptest::collection::vec(
                ("[*]?(a|b|ab)?(\\.a|\\.b\\.svc\\.cluster\\.local)?", "a|b|istio-system"),
                0..8,
            ),
            queries in proptest::collection::vec(
                ("(a|b|ab|x)(\\.a|\\.b\\.svc\\.cluster\\.local)?", "a|b"),
                1..8,
            ),
        ) {
            let yaml: Vec<String> = rules
                .iter()
                .enumerate()
                .filter(|(_, (h, _))| !h.is_empty())
                .map(|(i, (h, ns))| format!(
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r{i}, namespace: {ns}}}\nspec:\n  host: '{h}'\n"
                ))
                .collect();
            let loaded = crate::load_str("rules.yaml", &yaml.join("---\n"));
            let config = loaded.config();
            let mut index = RuleIndex::new(config);
            for (host, ns) in &queries {
                let fqdn = resolve_short_name(host, ns);
                let slow = find_destination_rule(config, &fqdn, ns)
                    .map(|d| d as *const DestinationRule);
                let fast = index
                    .find(&fqdn, ns)
                    .map(|i| &config.destination_rules[i] as *const DestinationRule);
                prop_assert_eq!(fast, slow, "{} from {}", fqdn, ns);
            }
        }
    }
}
