//! Subsets (DR-2, DR-3): named groups of endpoints selected by labels.

use std::collections::BTreeMap;

use crate::diag::{Cx, Path};
use crate::names;
use crate::raw;

use super::traffic_policy::{validate_traffic_policy, TrafficPolicy};

/// A named subset: endpoints whose labels include all of `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    /// Boxed: a policy is large and most subsets have none.
    pub(crate) traffic_policy: Option<Box<TrafficPolicy>>,
}

impl Subset {
    /// Subset name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Label selector.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    /// The subset's own policy (merged with the top level by [`crate::DestinationRule::effective_policy`]).
    pub fn traffic_policy(&self) -> Option<&TrafficPolicy> {
        self.traffic_policy.as_deref()
    }
    /// Whether an endpoint with `endpoint_labels` belongs to the subset.
    pub fn selects(&self, endpoint_labels: &BTreeMap<String, String>) -> bool {
        crate::lookup::labels_match(&self.labels, endpoint_labels)
    }
}

/// DR-2, DR-3: each subset has a unique DNS-1123 name and valid labels.
pub(crate) fn validate_subsets(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    list: &[Option<raw::Subset>],
) -> Vec<Subset> {
    let mut subsets: Vec<Subset> = Vec::with_capacity(list.len());
    let mut names = std::collections::HashSet::new();
    for (i, s) in list.iter().enumerate() {
        let ip = p.index(i);
        let Some(s) = s else {
            cx.error(&ip, "subset may not be null");
            continue;
        };
        let name = s.name.clone().unwrap_or_default();
        if s.name.is_none() {
            cx.error(
                &ip.key("name"),
                "subset name is required: give the subset a DNS-1123 label name",
            );
        } else if name.is_empty() {
            cx.error(
                &ip.key("name"),
                "subset name cannot be empty: give the subset a DNS-1123 label name",
            );
        } else if !names::is_dns1123_label(&name) {
            cx.error(
                &ip.key("name"),
                format!(
                    "subset name {name:?} is invalid: use a DNS-1123 label (letters, digits, '-')"
                ),
            );
        }
        if !name.is_empty() && !names.insert(name.clone()) {
            cx.error(
                &ip.key("name"),
                format!("duplicate subset names: {name:?} is defined twice; rename or merge one of them"),
            );
        }
        let lp = ip.key("labels");
        for (k, v) in &s.labels {
            if let Some(why) = names::label_key_problem(k).or_else(|| names::label_value_problem(v))
            {
                cx.error(&lp.key(k), why);
            }
        }
        let tp = s
            .traffic_policy
            .as_ref()
            .map(|t| Box::new(validate_traffic_policy(cx, &ip.key("trafficPolicy"), t)));
        subsets.push(Subset {
            name,
            labels: s.labels.clone(),
            traffic_policy: tp,
        });
    }
    subsets
}
