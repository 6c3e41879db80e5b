//! What a client watches and holds: every namespace, a list of namespaces, or what an Istio
//! `Sidecar` resource's `egress.hosts` allow (shared doc A.7).

use std::collections::BTreeSet;
use std::fmt;

use mesh_routing::endpoints::Labels;

/// What part of the cluster a [`Discovery`](crate::Discovery) watches and holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Scope {
    /// Every namespace (cluster-wide watches).
    #[default]
    AllNamespaces,
    /// Only these namespaces (one watch per namespace and kind).
    Namespaces(Vec<String>),
    /// What the `Sidecar` resource that applies to this workload allows: its egress hosts
    /// decide which Services, VirtualServices and ServiceEntries are held, and the namespaces
    /// they name are the only ones watched (all of them if a host entry says `*/…`).
    Sidecar(SidecarScope),
}

/// The workload whose `Sidecar` resource decides the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarScope {
    namespace: String,
    labels: Labels,
    root_namespace: String,
}

impl SidecarScope {
    /// The workload in `namespace` with no labels, mesh root namespace `istio-system`.
    pub fn new(namespace: &str) -> Self {
        SidecarScope {
            namespace: namespace.to_owned(),
            labels: Labels::new(),
            root_namespace: "istio-system".to_owned(),
        }
    }

    /// The workload's labels (matched against a Sidecar's `workloadSelector`).
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Another mesh root namespace than `istio-system`.
    #[must_use]
    pub fn with_root_namespace(mut self, namespace: &str) -> Self {
        self.root_namespace = namespace.to_owned();
        self
    }

    /// The workload's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The workload's labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The mesh root namespace.
    pub fn root_namespace(&self) -> &str {
        &self.root_namespace
    }
}

/// The namespace part of an egress host entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NsPart {
    /// `*`: any namespace.
    Any,
    /// A namespace name (`.` already resolved to the Sidecar's namespace).
    Named(String),
}

/// One `namespace/dnsName` entry of `egress.hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    exclude: bool,
    namespace: NsPart,
    /// Lower-cased: `*`, `*.suffix` or an exact name.
    host: String,
}

/// The parsed `egress[].hosts` of the Sidecar that applies (shared doc A.7).
#[derive(Clone, PartialEq, Eq)]
pub struct EgressHosts {
    entries: Vec<Entry>,
}

impl fmt::Debug for EgressHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| {
                let ns = match &e.namespace {
                    NsPart::Any => "*",
                    NsPart::Named(n) => n,
                };
                format!("{}{ns}/{}", if e.exclude { "~" } else { "" }, e.host)
            }))
            .finish()
    }
}

/// Why an egress host entry was dropped (istiod logs it and goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("egress host `{entry}` is not of the form namespace/dnsName; dropped")]
pub struct InvalidEgressHost {
    entry: String,
}

impl EgressHosts {
    /// The implicit Sidecar's: `*/*`, everything.
    pub fn everything() -> Self {
        EgressHosts {
            entries: vec![Entry {
                exclude: false,
                namespace: NsPart::Any,
                host: "*".into(),
            }],
        }
    }

    /// Parses `hosts` of a Sidecar in `sidecar_namespace`: `ns/host`, `./host`, `*/host`,
    /// `~ns/host` (exclusion; a bare `~` means every namespace). An entry without exactly one
    /// `/` is dropped and reported, as istiod does.
    pub fn parse<'a>(
        hosts: impl IntoIterator<Item = &'a str>,
        sidecar_namespace: &str,
    ) -> (Self, Vec<InvalidEgressHost>) {
        let mut entries = Vec::new();
        let mut invalid = Vec::new();
        for raw in hosts {
            let mut parts = raw.split('/');
            let (Some(ns), Some(host), None) = (parts.next(), parts.next(), parts.next()) else {
                invalid.push(InvalidEgressHost {
                    entry: raw.to_owned(),
                });
                continue;
            };
            if host.is_empty() {
                invalid.push(InvalidEgressHost {
                    entry: raw.to_owned(),
                });
                continue;
            }
            let (exclude, ns) = match ns.strip_prefix('~') {
                Some(rest) => (true, if rest.is_empty() { "*" } else { rest }),
                None => (false, ns),
            };
            let namespace = match ns {
                "*" => NsPart::Any,
                "." => NsPart::Named(sidecar_namespace.to_owned()),
                n => NsPart::Named(n.to_owned()),
            };
            entries.push(Entry {
                exclude,
                namespace,
                host: host.to_ascii_lowercase(),
            });
        }
        (EgressHosts { entries }, invalid)
    }

    /// Whether `host` (an FQDN) of a resource in `namespace` is imported: some entry covers
    /// it and no exclusion does.
    pub fn allows(&self, namespace: &str, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let covers = |e: &Entry| {
            let ns_ok = match &e.namespace {
                NsPart::Any => true,
                NsPart::Named(n) => n == namespace,
            };
            ns_ok && mesh_model::host_matches(&e.host, &host)
        };
        self.entries.iter().any(|e| !e.exclude && covers(e))
            && !self.entries.iter().any(|e| e.exclude && covers(e))
    }

    /// The namespaces to watch: `None` when an entry imports from any namespace (`*/…`).
    pub fn namespaces(&self) -> Option<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for e in self.entries.iter().filter(|e| !e.exclude) {
            match &e.namespace {
                NsPart::Any => return None,
                NsPart::Named(n) => {
                    out.insert(n.clone());
                }
            }
        }
        Some(out)
    }
}

/// A `Sidecar` object as far as scoping reads it.
#[derive(Debug, Clone)]
pub(crate) struct SidecarObject {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) created: String,
    /// `workloadSelector.labels`, `None` without a selector.
    pub(crate) selector: Option<Labels>,
    /// Every `egress[].hosts` entry.
    pub(crate) hosts: Vec<String>,
}

impl SidecarObject {
    pub(crate) fn from_json(
        namespace: &str,
        name: &str,
        created: &str,
        spec: &serde_json::Value,
    ) -> Self {
        let selector = spec
            .get("workloadSelector")
            .and_then(|w| w.get("labels"))
            .and_then(|l| serde_json::from_value::<Labels>(l.clone()).ok());
        let hosts = spec
            .get("egress")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("hosts").and_then(serde_json::Value::as_array))
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect();
        SidecarObject {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            created: created.to_owned(),
            selector,
            hosts,
        }
    }
}

/// The Sidecar that applies to `workload` among `sidecars` (shared doc A.7): in the
/// workload's namespace one whose selector matches its labels, else the one without selector,
/// else the root namespace's without selector; the oldest first. `None`: the implicit one.
pub(crate) fn applicable<'a>(
    sidecars: &'a [SidecarObject],
    workload: &SidecarScope,
) -> Option<&'a SidecarObject> {
    let mut sorted: Vec<&'a SidecarObject> = sidecars.iter().collect();
    sorted.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));
    let selects = |s: &SidecarObject| {
        s.selector
            .as_ref()
            .is_some_and(|sel| mesh_model::labels_match(sel, &workload.labels))
    };
    let ns = workload.namespace.as_str();
    let root = workload.root_namespace.as_str();
    sorted
        .iter()
        .find(|s| s.namespace == ns && selects(s))
        .or_else(|| {
            sorted
                .iter()
                .find(|s| s.namespace == ns && s.selector.is_none())
        })
        .or_else(|| {
            sorted
                .iter()
                .find(|s| s.namespace == root && s.selector.is_none())
        })
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(hosts: &[&str]) -> EgressHosts {
        let (h, invalid) = EgressHosts::parse(hosts.iter().copied(), "shop");
        assert!(invalid.is_empty(), "{invalid:?}");
        h
    }

    #[test]
    fn namespace_and_host_forms() {
        let h = parse(&[
            "./*",
            "istio-system/*",
            "*/*.example.com",
            "prod/reviews.prod.svc.cluster.local",
        ]);
        assert!(h.allows("shop", "cart.shop.svc.cluster.local"));
        assert!(h.allows("istio-system", "anything"));
        assert!(h.allows("other", "api.example.com"));
        assert!(!h.allows("other", "example.com"));
        assert!(h.allows("prod", "reviews.prod.svc.cluster.local"));
        assert!(!h.allows("prod", "ratings.prod.svc.cluster.local"));
        assert_eq!(h.namespaces(), None, "*/... watches every namespace");
        let h = parse(&["./*", "prod/reviews.prod.svc.cluster.local"]);
        assert_eq!(
            h.namespaces().unwrap().into_iter().collect::<Vec<_>>(),
            ["prod", "shop"]
        );
    }

    #[test]
    fn exclusions() {
        let h = parse(&["*/*", "~kube-system/*", "~/*.internal"]);
        assert!(h.allows("prod", "reviews.prod.svc.cluster.local"));
        assert!(!h.allows("kube-system", "dns.kube-system.svc.cluster.local"));
        assert!(!h.allows("prod", "db.internal"));
        let none = parse(&["~/*"]);
        assert!(!none.allows("prod", "x"));
        assert_eq!(none.namespaces().unwrap().len(), 0);
    }

    #[test]
    fn malformed_entries_are_dropped() {
        let (h, invalid) = EgressHosts::parse(["reviews", "a/b/c", "prod/"], "shop");
        assert_eq!(invalid.len(), 3);
        assert!(!h.allows("prod", "reviews"));
        assert_eq!(
            invalid[0].to_string(),
            "egress host `reviews` is not of the form namespace/dnsName; dropped"
        );
    }

    #[test]
    fn wildcard_service_entry_hosts() {
        let h = parse(&["*/*.example.com"]);
        assert!(h.allows("x", "*.api.example.com"));
        assert!(!h.allows("x", "*.com"));
    }

    #[test]
    fn which_sidecar_applies() {
        let sc = |ns: &str, name: &str, created: &str, sel: Option<(&str, &str)>| SidecarObject {
            namespace: ns.into(),
            name: name.into(),
            created: created.into(),
            selector: sel.map(|(k, v)| [(k.to_owned(), v.to_owned())].into()),
            hosts: vec![],
        };
        let all = [
            sc("istio-system", "root", "1", None),
            sc("shop", "ns-wide", "2", None),
            sc("shop", "for-cart", "3", Some(("app", "cart"))),
        ];
        let cart =
            SidecarScope::new("shop").with_labels([("app".to_owned(), "cart".to_owned())].into());
        assert_eq!(applicable(&all, &cart).unwrap().name, "for-cart");
        assert_eq!(
            applicable(&all, &SidecarScope::new("shop")).unwrap().name,
            "ns-wide"
        );
        assert_eq!(
            applicable(&all, &SidecarScope::new("prod")).unwrap().name,
            "root"
        );
        assert!(applicable(&all[1..], &SidecarScope::new("prod")).is_none());
    }
}
