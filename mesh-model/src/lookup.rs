//! The workspace's one DestinationRule lookup (istio-semantics §3.1), and the visibility
//! rules it is made of: `exportTo` ([`exported_to`]) and workload selectors
//! ([`labels_match`]).
//!
//! The runtime (mesh-routing compiles a route table per client) and the cross-resource
//! analysis both ask the same question, "which rules apply to this host, seen from here?",
//! and get the same answer from [`applicable_destination_rules`].

use std::collections::BTreeMap;

use crate::config::MeshConfig;
use crate::destination_rule::DestinationRule;
use crate::meta::{resolve_short_name, CLUSTER_DOMAIN};
use crate::names::host_matches;

/// The mesh root namespace Istio uses unless configured otherwise (`istio-system`): its
/// DestinationRules are the mesh-wide defaults, the last scope of the lookup.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// Whether a resource of namespace `namespace` with `export_to` is visible from
/// `viewer_namespace`: an empty list or `*` exports everywhere, `.` to the resource's own
/// namespace, any other entry to the namespace it names.
///
/// ```
/// let dot = [".".to_owned()];
/// assert!(mesh_model::exported_to(&dot, "shop", "shop"));
/// assert!(!mesh_model::exported_to(&dot, "shop", "default"));
/// assert!(mesh_model::exported_to(&[], "shop", "default"));
/// assert!(mesh_model::exported_to(&["default".to_owned()], "shop", "default"));
/// ```
pub fn exported_to(export_to: &[String], namespace: &str, viewer_namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| {
            e == "*" || e == viewer_namespace || (e == "." && namespace == viewer_namespace)
        })
}

/// Whether `labels` carry every entry of `selector` with the same value (an empty selector
/// selects everything): how a workload selector, a `sourceLabels` match or a subset's labels
/// select a workload.
///
/// ```
/// use std::collections::BTreeMap;
/// let labels = BTreeMap::from([("app".to_owned(), "web".to_owned()), ("v".to_owned(), "1".to_owned())]);
/// assert!(mesh_model::labels_match(&BTreeMap::from([("app".to_owned(), "web".to_owned())]), &labels));
/// assert!(mesh_model::labels_match(&BTreeMap::new(), &labels));
/// assert!(!mesh_model::labels_match(&BTreeMap::from([("app".to_owned(), "db".to_owned())]), &labels));
/// ```
pub fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// No labels, for a [`Viewer`] that has none.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Who looks a DestinationRule up: the namespace and labels of the calling workload, and the
/// mesh root namespace. mesh-routing builds one from its `ClientContext`; the analysis sees a
/// route's destination from its VirtualService's namespace, without labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer<'a> {
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
    root_namespace: &'a str,
}

impl<'a> Viewer<'a> {
    /// A workload in `namespace` without labels, in a mesh whose root namespace is
    /// [`DEFAULT_ROOT_NAMESPACE`].
    pub fn new(namespace: &'a str) -> Self {
        Viewer {
            namespace,
            labels: &NO_LABELS,
            root_namespace: DEFAULT_ROOT_NAMESPACE,
        }
    }

    /// The workload's labels (what workload selectors select).
    #[must_use]
    pub fn with_labels(mut self, labels: &'a BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// Another mesh root namespace than [`DEFAULT_ROOT_NAMESPACE`].
    #[must_use]
    pub fn with_root_namespace(mut self, root_namespace: &'a str) -> Self {
        self.root_namespace = root_namespace;
        self
    }

    /// The viewer's namespace.
    pub fn namespace(&self) -> &'a str {
        self.namespace
    }

    /// The viewer's workload labels.
    pub fn labels(&self) -> &'a BTreeMap<String, String> {
        self.labels
    }

    /// The mesh root namespace.
    pub fn root_namespace(&self) -> &'a str {
        self.root_namespace
    }

    /// Whether `dr` may apply to this viewer at all, whatever its host: it is exported to the
    /// viewer's namespace, and a workload selector (allowed only on a rule exported to its own
    /// namespace) is in the viewer's namespace and selects the viewer's labels.
    pub(crate) fn sees(&self, dr: &DestinationRule) -> bool {
        let ns = dr.meta.namespace.as_str();
        exported_to(&dr.export_to, ns, self.namespace)
            && match &dr.workload_selector {
                Some(sel) => ns == self.namespace && labels_match(sel, self.labels),
                None => true,
            }
    }

    /// The namespaces looked in, in order and without repeats: the viewer's, the service's
    /// (`service_namespace`, or the namespace of a `name.ns.svc.cluster.local` host), the
    /// root.
    pub(crate) fn scopes<'s>(
        &'s self,
        service_namespace: Option<&'s str>,
        host: &'s str,
    ) -> Vec<&'s str> {
        let service = service_namespace.or_else(|| {
            host.strip_suffix(CLUSTER_DOMAIN)
                .and_then(|p| p.strip_suffix(".svc."))
                .and_then(|p| p.split_once('.'))
                .map(|(_, ns)| ns)
        });
        let mut out: Vec<&str> = Vec::with_capacity(3);
        for ns in [Some(self.namespace), service, Some(self.root_namespace)]
            .into_iter()
            .flatten()
        {
            if !out.contains(&ns) {
                out.push(ns);
            }
        }
        out
    }
}

/// The DestinationRules that apply to `host` for `viewer`, in merge order (istio-semantics
/// §3.1): the first namespace among the viewer's, the service's and the root namespace that
/// holds a rule visible to the viewer ([`exported_to`], workload selectors) and matching
/// `host` wins; there, a rule for exactly `host` beats the most specific (longest) wildcard;
/// the rules for that same host in that namespace are all returned, those with a workload
/// selector first, each group in load order. Short rule hosts expand with the rule's
/// namespace ([`resolve_short_name`]); hosts compare case-insensitively.
///
/// `service_namespace` is the namespace of the service `host` names when it is known (the
/// namespace of the ServiceEntry declaring it); without it, a `name.ns.svc.cluster.local`
/// host names its namespace. mesh-routing compiles every destination's policy from this
/// list; the cross-resource analysis finds a route's subsets with it.
///
/// ```
/// use mesh_model::{applicable_destination_rules, Viewer};
/// let yaml = r#"
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: cart, namespace: shop}
/// spec:
///   host: cart
///   exportTo: ["."]
/// ---
/// apiVersion: networking.istio.io/v1
/// kind: DestinationRule
/// metadata: {name: mesh-wide, namespace: istio-system}
/// spec:
///   host: "*.svc.cluster.local"
/// "#;
/// let loaded = mesh_model::load_str("rules.yaml", yaml);
/// let cfg = loaded.config();
/// let host = "cart.shop.svc.cluster.local";
/// let names = |v: Viewer<'_>| -> Vec<String> {
///     applicable_destination_rules(cfg, &v, None, host)
///         .iter()
///         .map(|d| d.meta().name().to_owned())
///         .collect()
/// };
/// // From its own namespace the rule applies; from another one it is not exported, and the
/// // root namespace's wildcard applies instead.
/// assert_eq!(names(Viewer::new("shop")), ["cart"]);
/// assert_eq!(names(Viewer::new("default")), ["mesh-wide"]);
/// ```
pub fn applicable_destination_rules<'c>(
    config: &'c MeshConfig,
    viewer: &Viewer<'_>,
    service_namespace: Option<&str>,
    host: &str,
) -> Vec<&'c DestinationRule> {
    let host = host.to_ascii_lowercase();
    for ns in viewer.scopes(service_namespace, &host) {
        let candidates: Vec<(&DestinationRule, String)> = config
            .destination_rules
            .iter()
            .filter(|dr| dr.meta.namespace == ns && viewer.sees(dr))
            .map(|dr| (dr, resolve_short_name(&dr.host, ns)))
            .filter(|(_, h)| host_matches(h, &host))
            .collect();
        // Exact before the most specific wildcard (the longest pattern: patterns covering
        // one host and as long as each other are the same pattern).
        let Some(best) = candidates
            .iter()
            .map(|(_, h)| h)
            .max_by_key(|h| (**h == host, h.len()))
            .cloned()
        else {
            continue;
        };
        let mut chosen: Vec<&DestinationRule> = candidates
            .into_iter()
            .filter(|(_, h)| *h == best)
            .map(|(dr, _)| dr)
            .collect();
        chosen.sort_by_key(|dr| dr.workload_selector.is_none());
        return chosen;
    }
    Vec::new()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Namespaces of the generated rules and viewers.
    const NAMESPACES: &str = "a|b|istio-system|mesh-root";

    /// A generated DestinationRule: host, namespace, exportTo, workload selector.
    pub(crate) type Rule = (String, String, usize, usize);

    /// Rules over a few hosts and namespaces, with every kind of `exportTo` and selector.
    pub(crate) fn rules() -> impl Strategy<Value = Vec<Rule>> {
        proptest::collection::vec(
            (
                "[*]?(a|b|ab)?(\\.a|\\.b|\\.b\\.svc\\.cluster\\.local)?",
                NAMESPACES,
                0..EXPORTS.len(),
                0..SELECTORS.len(),
            ),
            0..10,
        )
    }

    /// A generated viewer and host: host, namespace, labels, root namespace, service namespace.
    pub(crate) type Query = (String, String, usize, String, Option<String>);

    /// Hosts (short ones expand with the viewer's namespace; some are wildcards) and viewers.
    pub(crate) fn queries() -> impl Strategy<Value = Vec<Query>> {
        proptest::collection::vec(
            (
                "[*]?(a|b|ab|x)(\\.a|\\.b|\\.b\\.svc\\.cluster\\.local)?",
                NAMESPACES,
                0..LABELS.len(),
                "istio-system|mesh-root",
                proptest::option::of(NAMESPACES),
            ),
            1..8,
        )
    }

    const EXPORTS: [&str; 6] = ["", "['.']", "['*']", "[a]", "[b]", "[a, b]"];
    const SELECTORS: [&str; 4] = ["", "{}", "{app: x}", "{app: x, v: '1'}"];
    const LABELS: [&[(&str, &str)]; 3] = [&[], &[("app", "x")], &[("app", "x"), ("v", "1")]];

    /// The rules as one multi-document YAML text.
    pub(crate) fn yaml(rules: &[Rule]) -> String {
        let docs: Vec<String> = rules
            .iter()
            .enumerate()
            .filter(|(_, (h, ..))| !h.is_empty())
            .map(|(i, (h, ns, e, s))| {
                let mut d = format!(
                    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r{i}, namespace: {ns}}}\nspec:\n  host: '{h}'\n"
                );
                if !EXPORTS[*e].is_empty() {
                    d.push_str(&format!("  exportTo: {}\n", EXPORTS[*e]));
                }
                if !SELECTORS[*s].is_empty() {
                    d.push_str(&format!("  workloadSelector: {{matchLabels: {}}}\n", SELECTORS[*s]));
                }
                d
            })
            .collect();
        docs.join("---\n")
    }

    /// The labels of a generated viewer.
    pub(crate) fn labels(i: usize) -> BTreeMap<String, String> {
        LABELS[i]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The lookup as mesh-routing wrote it before it moved here (its own host match and
    /// exportTo check, the first namespace with a candidate, exact before the longest
    /// wildcard, selector rules first): the runtime's behaviour the lookup must keep.
    fn reference<'c>(
        config: &'c MeshConfig,
        viewer: &Viewer<'_>,
        service_namespace: Option<&str>,
        host: &str,
    ) -> Vec<&'c DestinationRule> {
        fn covers(pattern: &str, host: &str) -> bool {
            match pattern.strip_prefix('*') {
                Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
                None => pattern == host,
            }
        }
        fn exported(export_to: &[String], ns: &str, client_ns: &str) -> bool {
            export_to.is_empty()
                || export_to
                    .iter()
                    .any(|e| e == "*" || e == client_ns || (e == "." && ns == client_ns))
        }
        let service_ns = service_namespace.map(str::to_owned).or_else(|| {
            host.strip_suffix("cluster.local")
                .and_then(|p| p.strip_suffix(".svc."))
                .and_then(|p| p.split_once('.'))
                .map(|(_, ns)| ns.to_owned())
        });
        let mut scopes = vec![viewer.namespace().to_owned()];
        scopes.extend(service_ns);
        scopes.push(viewer.root_namespace().to_owned());
        let mut seen = Vec::new();
        for ns in scopes {
            if seen.contains(&ns) {
                continue;
            }
            let candidates: Vec<(&DestinationRule, String)> = config
                .destination_rules()
                .iter()
                .filter(|dr| dr.meta().namespace() == ns)
                .filter(|dr| exported(dr.export_to(), &ns, viewer.namespace()))
                .filter(|dr| match dr.workload_selector() {
                    Some(sel) => {
                        ns == viewer.namespace()
                            && sel.iter().all(|(k, v)| viewer.labels().get(k) == Some(v))
                    }
                    None => true,
                })
                .map(|dr| (dr, resolve_short_name(dr.host(), &ns)))
                .filter(|(_, h)| covers(h, host))
                .collect();
            seen.push(ns);
            if candidates.is_empty() {
                continue;
            }
            let best = if candidates.iter().any(|(_, h)| h == host) {
                host.to_owned()
            } else {
                candidates
                    .iter()
                    .map(|(_, h)| h.clone())
                    .max_by_key(String::len)
                    .unwrap_or_default()
            };
            let mut chosen: Vec<&DestinationRule> = candidates
                .into_iter()
                .filter(|(_, h)| *h == best)
                .map(|(dr, _)| dr)
                .collect();
            chosen.sort_by_key(|dr| dr.workload_selector().is_none());
            return chosen;
        }
        Vec::new()
    }

    fn names(rules: &[&DestinationRule]) -> Vec<String> {
        rules.iter().map(|d| d.meta().name().to_owned()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The lookup answers what the runtime's lookup answered before it moved here, for
        /// any rules, viewer (namespace, labels, root namespace) and service namespace.
        #[test]
        fn the_lookup_agrees_with_the_runtimes_former_lookup(rules in rules(), queries in queries()) {
            let loaded = crate::load_str("rules.yaml", &yaml(&rules));
            let config = loaded.config();
            for (host, ns, l, root, service) in &queries {
                let labels = labels(*l);
                let viewer = Viewer::new(ns).with_labels(&labels).with_root_namespace(root);
                let host = resolve_short_name(host, ns);
                let got = applicable_destination_rules(config, &viewer, service.as_deref(), &host);
                let want = reference(config, &viewer, service.as_deref(), &host);
                prop_assert_eq!(names(&got), names(&want), "{} from {:?}", host, viewer);
            }
        }
    }

    #[test]
    fn scopes_are_the_viewer_the_service_and_the_root_without_repeats() {
        let v = Viewer::new("a");
        assert_eq!(
            v.scopes(None, "x.b.svc.cluster.local"),
            ["a", "b", "istio-system"]
        );
        assert_eq!(
            v.scopes(Some("c"), "x.b.svc.cluster.local"),
            ["a", "c", "istio-system"]
        );
        assert_eq!(
            v.scopes(None, "x.a.svc.cluster.local"),
            ["a", "istio-system"]
        );
        assert_eq!(v.scopes(None, "x.example.com"), ["a", "istio-system"]);
        let root = Viewer::new("istio-system");
        assert_eq!(
            root.scopes(None, "x.istio-system.svc.cluster.local"),
            ["istio-system"]
        );
    }

    #[test]
    fn a_selector_rule_applies_only_to_the_workloads_it_selects_in_its_namespace() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: sel, namespace: a}\nspec:\n  host: x\n  workloadSelector: {matchLabels: {app: web}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: all, namespace: a}\nspec:\n  host: x\n";
        let loaded = crate::load_str("rules.yaml", yaml);
        let cfg = loaded.config();
        let web = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let host = "x.a.svc.cluster.local";
        let found = |v: Viewer<'_>| names(&applicable_destination_rules(cfg, &v, None, host));
        // Merged, the selector's first.
        assert_eq!(found(Viewer::new("a").with_labels(&web)), ["sel", "all"]);
        assert_eq!(found(Viewer::new("a")), ["all"]);
        assert_eq!(found(Viewer::new("b").with_labels(&web)), ["all"]);
    }
}
