//! Locality and zone-aware load balancing settings (LB-5, LB-6): validated, not applied.

use std::collections::HashMap;

use crate::diag::{Cx, Path};
use crate::raw;

/// Which of the two locality settings is checked: they share the failover rules (LB-5, LB-6).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalityKind {
    Locality,
    ZoneAware,
}

fn is_topology_label(l: &str) -> bool {
    matches!(
        l,
        "topology.kubernetes.io/region"
            | "topology.kubernetes.io/zone"
            | "topology.istio.io/subzone"
            | "failure-domain.beta.kubernetes.io/region"
            | "failure-domain.beta.kubernetes.io/zone"
    ) || l.starts_with("topology.kubernetes.io/")
}

/// LB-5, LB-6: distribute or failover, well-formed localities, weights adding up to 100.
pub(crate) fn validate_locality(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    l: &raw::LocalityLbSetting,
    has_outlier: bool,
    kind: LocalityKind,
) {
    let what = match kind {
        LocalityKind::Locality => "locality load balancing",
        LocalityKind::ZoneAware => "zoneAwareLbSetting",
    };
    cx.warn(
        p,
        format!("{what} is validated but not applied by this library: requests are balanced without regard to locality"),
    );
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        cx.error(
            p,
            "only one of distribute or failover can be set in localityLbSetting",
        );
    }
    if (!l.failover.is_empty() || !l.failover_priority.is_empty()) && !has_outlier {
        let field = if l.failover.is_empty() {
            "failoverPriority"
        } else {
            "failover"
        };
        cx.warn(
            &p.key(field),
            "outlier detection policy must be provided for failover to take effect: add outlierDetection to this traffic policy",
        );
    }
    let fpp = p.key("failoverPriority");
    for (i, lab) in l.failover_priority.iter().enumerate() {
        if is_topology_label(lab) && (kind == LocalityKind::ZoneAware || !l.failover.is_empty()) {
            let msg = match kind {
                LocalityKind::Locality => format!("{lab:?} is a region/zone/subzone topology label, which failoverPriority cannot hold when failover is set; drop the label or the failover list"),
                LocalityKind::ZoneAware => format!("{lab:?} is a region/zone/subzone topology label, which zone-aware failoverPriority cannot hold (zone order is implied); list other labels only"),
            };
            cx.error(&fpp.index(i), msg);
        }
    }
    let fp = p.key("failover");
    for (i, f) in l.failover.iter().enumerate() {
        let ip = fp.index(i);
        let (from, to) = (
            f.from.as_deref().unwrap_or(""),
            f.to.as_deref().unwrap_or(""),
        );
        if from == to {
            cx.error(
                &ip,
                format!("locality lb failover settings must specify different regions (from and to are both {from:?})"),
            );
        }
        if from.contains('/') || to.contains('/') {
            let msg = match kind {
                LocalityKind::Locality => "locality lb failover only specify region: write from/to as region names without zone, e.g. us-east",
                LocalityKind::ZoneAware => "zone-aware failover only specifies regions: write from/to as region names without zone, e.g. us-east",
            };
            cx.error(&ip, msg);
        }
        if from.contains('*') || to.contains('*') {
            cx.error(
                &ip,
                "locality lb failover region should not contain '*' wildcard; name the regions",
            );
        }
    }
    let dp = p.key("distribute");
    let mut froms = Seen::default();
    for (i, d) in l.distribute.iter().enumerate() {
        let ip = dp.index(i);
        let from = d.from.as_deref().unwrap_or("");
        if let Some(why) = locality_problem(from) {
            cx.error(&ip.key("from"), why);
        } else if let Some((j, other)) = froms.first_overlap(from) {
            cx.error(
                &ip.key("from"),
                format!("locality {from:?} overlaps with {other:?} (distribute[{j}].from); each source locality may be listed once"),
            );
        }
        froms.insert(i, from);
        let mut sum = 0;
        let mut bad_weight = false;
        let mut tos = Seen::default();
        for (n, (loc, w)) in d.to.iter().enumerate() {
            let lp = ip.key("to");
            let lp = lp.key(loc);
            if !(1..=100).contains(w) {
                cx.error(
                    &lp,
                    format!("locality weight {w} must be in range [1, 100]"),
                );
                bad_weight = true;
                continue;
            }
            if let Some(why) = locality_problem(loc) {
                cx.error(&lp, why);
            } else if let Some((_, other)) = tos.first_overlap(loc) {
                cx.error(
                    &lp,
                    format!("locality {loc:?} overlaps with {other:?}; list each destination locality once"),
                );
            }
            tos.insert(n, loc);
            sum += w;
        }
        if !bad_weight && sum != 100 {
            cx.error(
                &ip.key("to"),
                format!("total locality weight {sum} != 100: the weights for one 'from' must add up to 100"),
            );
        }
    }
}

/// Localities listed so far, so that the first one a new locality overlaps
/// ([`localities_overlap`]) is found without scanning them all: a valid locality has at most three
/// parts, so at most four part-wise prefixes to look up.
#[derive(Debug, Default)]
struct Seen<'a> {
    /// Each locality of at most three parts, by its parts.
    whole: HashMap<Vec<&'a str>, (usize, &'a str)>,
    /// Each part-wise prefix (up to three parts) of each locality.
    prefixes: HashMap<Vec<&'a str>, (usize, &'a str)>,
}

impl<'a> Seen<'a> {
    /// The parts that matter: `*` parts dropped, at most four kept.
    fn parts(l: &'a str) -> Vec<&'a str> {
        l.split('/').filter(|s| *s != "*").take(4).collect()
    }

    fn insert(&mut self, at: usize, l: &'a str) {
        let parts = Self::parts(l);
        if parts.len() <= 3 {
            self.whole.entry(parts.clone()).or_insert((at, l));
        }
        for n in 0..=parts.len().min(3) {
            self.prefixes.entry(parts[..n].to_vec()).or_insert((at, l));
        }
    }

    /// The first locality listed that overlaps `l` (which has at most three parts).
    fn first_overlap(&self, l: &'a str) -> Option<(usize, &'a str)> {
        let parts = Self::parts(l);
        (0..=parts.len())
            .filter_map(|n| self.whole.get(&parts[..n]))
            .chain(self.prefixes.get(&parts))
            .min()
            .copied()
    }
}

/// Whether two localities (`region[/zone[/subzone]]`, optionally ending in `*`) select a
/// common endpoint: one is a part-wise prefix of the other. The definition [`Seen`] implements
/// without comparing every pair.
#[cfg(test)]
fn localities_overlap(a: &str, b: &str) -> bool {
    let parts = |l: &str| -> Vec<String> {
        l.split('/')
            .filter(|s| *s != "*")
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn locality_problem(l: &str) -> Option<String> {
    if l.is_empty() {
        return Some("locality cannot be empty: write region[/zone[/subzone]]".into());
    }
    let stars = l.matches('*').count();
    if stars > 1 || (stars == 1 && !(l == "*" || l.ends_with("/*"))) {
        return Some(format!(
            "locality {l:?}: wildcard '*' number can not exceed 1 and must be in the end, as the whole last part"
        ));
    }
    let parts: Vec<&str> = l.split('/').collect();
    if parts.len() > 3 || parts.iter().any(|s| s.is_empty()) {
        return Some(format!(
            "locality {l:?} must not contain empty region/zone/subzone info: write region[/zone[/subzone]]"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locality_overlap_is_part_wise() {
        assert!(localities_overlap("us-west/*", "us-west/zone1/*"));
        assert!(localities_overlap("us-west/zone1/*", "us-west/*"));
        assert!(localities_overlap("us-west", "us-west/zone1"));
        assert!(localities_overlap("*", "eu/zone"));
        assert!(!localities_overlap("us-west/zone1/*", "us-west/zone2/*"));
        assert!(
            !localities_overlap("us-west/*", "us-westish/*"),
            "parts, not string prefixes"
        );
    }

    #[test]
    fn locality_shapes() {
        assert!(locality_problem("us-west/zone1/*").is_none());
        assert!(locality_problem("*").is_none());
        assert!(locality_problem("us-west/*/*")
            .unwrap()
            .contains("wildcard"));
        assert!(locality_problem("us-west/*/rack")
            .unwrap()
            .contains("wildcard"));
        assert!(locality_problem("us-west//rack").unwrap().contains("empty"));
        assert!(locality_problem("a/b/c/d").is_some());
        assert!(locality_problem("").is_some());
    }

    proptest::proptest! {
        /// The index finds the first overlapping locality a scan finds.
        #[test]
        fn seen_agrees_with_a_scan(list in proptest::collection::vec("[ab*]{0,1}(/[ab*]){0,3}", 0..12)) {
            let mut seen = Seen::default();
            for (i, l) in list.iter().enumerate() {
                if locality_problem(l).is_none() {
                    let scan = list[..i]
                        .iter()
                        .enumerate()
                        .find(|(_, o)| localities_overlap(o, l))
                        .map(|(j, o)| (j, o.as_str()));
                    proptest::prop_assert_eq!(seen.first_overlap(l), scan, "{:?}", list);
                }
                seen.insert(i, l);
            }
        }
    }
}
