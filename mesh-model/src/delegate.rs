//! Delegation (istio-semantics §1.16): the routes of a delegate virtual service are merged into
//! the root route that names it, once every source is loaded.
//!
//! For each root route with `delegate: {name, namespace}`:
//! * the delegate is looked up by name in the given namespace (the root's when none is given) and
//!   must be exported to the root's namespace; otherwise the root route is skipped, as Istio does;
//! * each delegate route's match blocks are combined with the root route's: a delegate block is
//!   kept (merged with every root block it does not conflict with) only when at least one root
//!   block admits it, otherwise the whole delegate route is dropped;
//! * route-level fields the delegate route leaves unset are inherited from the root route
//!   (`rewrite`, `timeout`, `retries`, `fault`, mirrors, `corsPolicy`, `headers`), and names
//!   become `root-delegate`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::analysis::Finding;
use crate::config::MeshConfig;
use crate::diag::{Kind, ResourceRef, Severity};
use crate::matching::StringMatch;
use crate::meta::resolve_short_name;
use crate::virtual_service::{HttpMatch, HttpRoute, RouteAction, VirtualService};

fn vs_ref(vs: &VirtualService) -> ResourceRef {
    ResourceRef {
        kind: Some(Kind::VirtualService),
        kind_name: "VirtualService".into(),
        namespace: vs.meta.namespace.clone(),
        name: vs.meta.name.clone(),
    }
}

/// Whether a delegate in `ns` with this `exportTo` is visible from `root_ns`.
fn exported_to(ns: &str, export_to: &[String], root_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == root_ns || (e == "." && ns == root_ns))
}

/// How much merging one configuration may do: each pair of a root match block and a delegate
/// match block costs one plus the conditions (headers, query parameters, ...) of both. Merging
/// makes every pair, so a few large routes could otherwise make billions of blocks.
pub const MAX_DELEGATION_WORK: usize = 1 << 20;

/// Conditions of a match block (what comparing or merging it costs).
fn conditions(m: &HttpMatch) -> usize {
    1 + m.headers.len()
        + m.without_headers.len()
        + m.query_params.len()
        + m.source_labels.len()
        + m.gateways.len()
}

/// What [`merge_route`] costs for one root route and one delegate route.
fn merge_cost(root: &HttpRoute, leaf: &HttpRoute) -> usize {
    let (r, l) = (root.matches.len(), leaf.matches.len());
    let rc: usize = root.matches.iter().map(conditions).sum();
    let lc: usize = leaf.matches.iter().map(conditions).sum();
    1 + l.saturating_mul(rc) + r.saturating_mul(lc) + r.saturating_mul(l)
}

/// Replaces every root route that delegates by the merged delegate routes. Returns what the
/// caller may report (skipped roots, dropped delegate routes, an error when merging would
/// exceed [`MAX_DELEGATION_WORK`]).
pub(crate) fn merge_delegates(config: &mut MeshConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut work_left = MAX_DELEGATION_WORK;
    let has_delegating_root = config.virtual_services.iter().any(|vs| {
        !vs.is_delegate()
            && vs
                .http
                .iter()
                .any(|r| matches!(r.action, RouteAction::Delegate(_)))
    });
    if !has_delegating_root {
        return findings;
    }
    // Delegates by (namespace, name); the first loaded wins.
    let mut delegates: BTreeMap<(String, String), (Vec<String>, Vec<HttpRoute>)> = BTreeMap::new();
    for vs in config.virtual_services.iter().filter(|v| v.is_delegate()) {
        delegates
            .entry((vs.meta.namespace.clone(), vs.meta.name.clone()))
            .or_insert_with(|| (vs.export_to.clone(), vs.http.clone()));
    }
    for vs in config.virtual_services.iter_mut() {
        if vs.is_delegate()
            || !vs
                .http
                .iter()
                .any(|r| matches!(r.action, RouteAction::Delegate(_)))
        {
            continue;
        }
        let root_ns = vs.meta.namespace.clone();
        let mut out = Vec::with_capacity(vs.http.len());
        let mut skipped = Vec::new();
        for (ri, root) in std::mem::take(&mut vs.http).into_iter().enumerate() {
            let RouteAction::Delegate(d) = &root.action else {
                out.push(root);
                continue;
            };
            let ns = d.namespace.clone().unwrap_or_else(|| root_ns.clone());
            let path = vec![
                "spec".to_owned(),
                "http".to_owned(),
                format!("[{ri}]"),
                "delegate".to_owned(),
            ];
            let found = delegates
                .get(&(ns.clone(), d.name.clone()))
                .filter(|(export_to, _)| exported_to(&ns, export_to, &root_ns));
            let Some((_, leaf_routes)) = found else {
                findings.push(Finding {
                    severity: Severity::Warning,
                    source: vs.meta.source.clone(),
                    document: vs.meta.document,
                    resource: vs_ref(vs),
                    path,
                    message: format!(
                        "delegate VirtualService {ns}/{} is not loaded or not exported to namespace {root_ns:?}, so Istio skips this route; load the delegate (a VirtualService with no hosts) or fix its exportTo",
                        d.name
                    ),
                });
                skipped.push(root);
                continue;
            };
            let before = out.len();
            let cost = leaf_routes
                .iter()
                .fold(0usize, |c, leaf| c.saturating_add(merge_cost(&root, leaf)));
            if cost > work_left {
                findings.push(Finding {
                    severity: Severity::Error,
                    source: vs.meta.source.clone(),
                    document: vs.meta.document,
                    resource: vs_ref(vs),
                    path,
                    message: format!(
                        "merging delegate {ns}/{} into this route pairs every match block of both, and the delegations of this configuration would need more than {MAX_DELEGATION_WORK} such steps; use fewer match blocks (or conditions) in the root and delegate routes, or fewer routes delegating to the same delegate",
                        d.name
                    ),
                });
                skipped.push(root);
                continue;
            }
            work_left -= cost;
            for (li, leaf) in leaf_routes.iter().enumerate() {
                // Short names in the delegate mean services of the delegate's namespace, as
                // istiod expands them before merging.
                let mut leaf = leaf.clone();
                if let RouteAction::Route(ds) = &mut leaf.action {
                    for d in ds {
                        d.destination.host = resolve_short_name(&d.destination.host, &ns);
                    }
                }
                for m in &mut leaf.mirrors {
                    m.destination.host = resolve_short_name(&m.destination.host, &ns);
                }
                match merge_route(&root, &leaf) {
                    Some(r) => out.push(r),
                    None => findings.push(Finding {
                        severity: Severity::Warning,
                        source: vs.meta.source.clone(),
                        document: vs.meta.document,
                        resource: vs_ref(vs),
                        path: path.clone(),
                        message: format!(
                            "route http[{li}] of delegate {ns}/{} has a match block that no match block of this route admits (conflicting uri, method, headers, port, ...), so Istio drops that delegate route; narrow the delegate's matches to fit inside this route's",
                            d.name
                        ),
                    }),
                }
            }
            if out.len() == before {
                skipped.push(root);
            }
        }
        vs.http = out;
        vs.skipped_delegations = skipped;
    }
    findings
}

/// One root route combined with one delegate route; `None` when they conflict.
pub(crate) fn merge_route(root: &HttpRoute, leaf: &HttpRoute) -> Option<HttpRoute> {
    let matches = if root.matches.is_empty() {
        leaf.matches.clone()
    } else if leaf.matches.is_empty() {
        root.matches.clone()
    } else {
        let mut out = Vec::new();
        for lm in &leaf.matches {
            let before = out.len();
            for rm in &root.matches {
                if !has_conflict(rm, lm) {
                    out.push(merge_match(rm, lm));
                }
            }
            if out.len() == before {
                return None;
            }
        }
        out
    };
    Some(HttpRoute {
        name: join_names(root.name.as_deref(), leaf.name.as_deref()),
        matches,
        action: leaf.action.clone(),
        rewrite: leaf.rewrite.clone().or_else(|| root.rewrite.clone()),
        timeout: leaf.timeout.or(root.timeout),
        retries: if leaf.retries.written {
            leaf.retries.clone()
        } else {
            root.retries.clone()
        },
        fault: leaf.fault.clone().or_else(|| root.fault.clone()),
        mirrors: if leaf.mirrors.is_empty() {
            root.mirrors.clone()
        } else {
            leaf.mirrors.clone()
        },
        cors: leaf.cors.clone().or_else(|| root.cors.clone()),
        headers: if leaf.headers.is_none() {
            root.headers.clone()
        } else {
            leaf.headers.clone()
        },
    })
}

fn join_names(root: Option<&str>, leaf: Option<&str>) -> Option<String> {
    match (root, leaf) {
        (_, None) => root.map(str::to_owned),
        (None, Some(l)) => Some(l.to_owned()),
        (Some(r), Some(l)) => Some(format!("{r}-{l}")),
    }
}

/// Istio's `stringMatchConflict`: whether a leaf condition can fall outside the root's.
fn string_match_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    match (root, leaf) {
        (StringMatch::Regex(_), _) | (_, StringMatch::Regex(_)) => true,
        (StringMatch::Exact(r), StringMatch::Exact(e)) if !r.is_empty() => e != r,
        (StringMatch::Prefix(r), StringMatch::Prefix(l) | StringMatch::Exact(l))
            if !r.is_empty() && !l.is_empty() =>
        {
            !l.starts_with(r.as_str())
        }
        // An exact root with a prefix leaf, and every empty or presence-only condition.
        _ => true,
    }
}

/// The conditions of a list by name (the first of a name, as a scan would find).
fn by_name(list: &[(String, StringMatch)]) -> HashMap<&str, &StringMatch> {
    let mut map = HashMap::with_capacity(list.len());
    for (k, m) in list {
        map.entry(k.as_str()).or_insert(m);
    }
    map
}

/// Istio's `hasConflict` between a root match block and a delegate match block.
pub(crate) fn has_conflict(root: &HttpMatch, leaf: &HttpMatch) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_match_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    for (rl, ll) in [
        (&root.headers, &leaf.headers),
        (&root.without_headers, &leaf.without_headers),
        (&root.query_params, &leaf.query_params),
    ] {
        let rl = by_name(rl);
        if ll
            .iter()
            .any(|(k, m)| string_match_conflict(rl.get(k.as_str()).copied(), Some(m)))
        {
            return true;
        }
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if let (Some(a), Some(b)) = (root.port, leaf.port) {
        if a != b {
            return true;
        }
    }
    if let Some(ns) = &root.source_namespace {
        if leaf.source_namespace.as_ref() != Some(ns) {
            return true;
        }
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
    {
        return true;
    }
    if !root.gateways.is_empty() && !leaf.gateways.is_empty() {
        if root.gateways.len() < leaf.gateways.len() {
            return true;
        }
        let root_gateways: HashSet<&String> = root.gateways.iter().collect();
        if leaf.gateways.iter().any(|g| !root_gateways.contains(g)) {
            return true;
        }
    }
    false
}

fn union(
    root: &[(String, StringMatch)],
    leaf: &[(String, StringMatch)],
) -> Vec<(String, StringMatch)> {
    let in_leaf: HashSet<&str> = leaf.iter().map(|(k, _)| k.as_str()).collect();
    let mut out: Vec<(String, StringMatch)> = root
        .iter()
        .filter(|(k, _)| !in_leaf.contains(k.as_str()))
        .cloned()
        .collect();
    out.extend(leaf.iter().cloned());
    out
}

/// Istio's `mergeHTTPMatchRequest`: the delegate's fields win, unset ones come from the root,
/// maps are unioned.
pub(crate) fn merge_match(root: &HttpMatch, leaf: &HttpMatch) -> HttpMatch {
    let mut source_labels = root.source_labels.clone();
    source_labels.extend(leaf.source_labels.clone());
    HttpMatch {
        name: join_names(root.name.as_deref(), leaf.name.as_deref()),
        uri: leaf.uri.clone().or_else(|| root.uri.clone()),
        scheme: leaf.scheme.clone().or_else(|| root.scheme.clone()),
        method: leaf.method.clone().or_else(|| root.method.clone()),
        authority: leaf.authority.clone().or_else(|| root.authority.clone()),
        headers: union(&root.headers, &leaf.headers),
        without_headers: union(&root.without_headers, &leaf.without_headers),
        query_params: union(&root.query_params, &leaf.query_params),
        ignore_uri_case: leaf.ignore_uri_case,
        port: leaf.port.or(root.port),
        source_labels,
        source_namespace: leaf
            .source_namespace
            .clone()
            .or_else(|| root.source_namespace.clone()),
        gateways: if leaf.gateways.is_empty() {
            root.gateways.clone()
        } else {
            leaf.gateways.clone()
        },
        stat_prefix: leaf
            .stat_prefix
            .clone()
            .or_else(|| root.stat_prefix.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uri(m: StringMatch) -> HttpMatch {
        HttpMatch {
            uri: Some(m),
            ..Default::default()
        }
    }

    #[test]
    fn string_match_conflicts_follow_istio() {
        let p = |s: &str| StringMatch::Prefix(s.into());
        let e = |s: &str| StringMatch::Exact(s.into());
        let r = StringMatch::Regex(crate::Regex::new("/a.*").unwrap());
        let c = |a: &StringMatch, b: &StringMatch| string_match_conflict(Some(a), Some(b));
        assert!(!string_match_conflict(None, Some(&p("/a"))));
        assert!(!string_match_conflict(Some(&p("/a")), None));
        assert!(c(&r, &p("/a")) && c(&p("/a"), &r));
        assert!(c(&e("/a"), &p("/a")), "exact root, prefix leaf");
        assert!(c(&e("/a"), &e("/b")) && !c(&e("/a"), &e("/a")));
        assert!(!c(&p("/a"), &p("/a/b")) && c(&p("/a/b"), &p("/a")));
        assert!(!c(&p("/a"), &e("/a/x")) && c(&p("/a"), &e("/b")));
        assert!(
            c(&StringMatch::Present, &p("/a")),
            "presence root admits nothing narrower"
        );
    }

    #[test]
    fn selectors_conflict_follow_istio() {
        let root = HttpMatch {
            port: Some(80),
            source_namespace: Some("web".into()),
            gateways: vec!["mesh".into()],
            ..Default::default()
        };
        let ok = HttpMatch {
            port: Some(80),
            source_namespace: Some("web".into()),
            ..Default::default()
        };
        assert!(!has_conflict(&root, &ok));
        let other_port = HttpMatch {
            port: Some(81),
            ..ok.clone()
        };
        assert!(has_conflict(&root, &other_port));
        let no_ns = HttpMatch {
            source_namespace: None,
            ..ok.clone()
        };
        assert!(
            has_conflict(&root, &no_ns),
            "root sourceNamespace must be kept"
        );
        let more_gateways = HttpMatch {
            gateways: vec!["mesh".into(), "gw".into()],
            ..ok.clone()
        };
        assert!(has_conflict(&root, &more_gateways));
        let case = HttpMatch {
            ignore_uri_case: true,
            ..ok
        };
        assert!(has_conflict(&root, &case));
    }

    proptest! {
        #[test]
        fn prefix_leaf_conflicts_unless_inside_root(r in "/[a-c]{1,3}", l in "/[a-c]{1,4}") {
            let root = uri(StringMatch::Prefix(r.clone()));
            let leaf = uri(StringMatch::Prefix(l.clone()));
            prop_assert_eq!(has_conflict(&root, &leaf), !l.starts_with(&r));
            if !has_conflict(&root, &leaf) {
                // The delegate's narrower condition wins.
                prop_assert_eq!(merge_match(&root, &leaf).uri, Some(StringMatch::Prefix(l)));
            }
        }

        #[test]
        fn merged_block_keeps_every_header_condition(
            rk in prop::collection::btree_set("x-[a-c]", 0..3),
            lk in prop::collection::btree_set("x-[b-d]", 0..3),
        ) {
            let h = |ks: &std::collections::BTreeSet<String>, v: &str| HttpMatch {
                headers: ks.iter().map(|k| (k.clone(), StringMatch::Exact(v.into()))).collect(),
                ..Default::default()
            };
            let (root, leaf) = (h(&rk, "root"), h(&lk, "leaf"));
            let m = merge_match(&root, &leaf);
            let keys: std::collections::BTreeSet<String> =
                m.headers.iter().map(|(k, _)| k.clone()).collect();
            prop_assert_eq!(&keys, &rk.union(&lk).cloned().collect());
            prop_assert_eq!(keys.len(), m.headers.len(), "no duplicate keys");
            for (k, v) in &m.headers {
                let want = if lk.contains(k) { "leaf" } else { "root" };
                prop_assert_eq!(v, &StringMatch::Exact(want.into()));
            }
        }
    }
}
