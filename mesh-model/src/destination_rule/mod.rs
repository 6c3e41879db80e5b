//! Validated `DestinationRule` (DR-1-DR-6, X-1) and its traffic policies, with Istio's defaults;
//! each policy block lives in its own module with its validation.

use std::collections::BTreeMap;

use crate::checks::{validate_export_to, validate_metadata};
use crate::diag::{Cx, Path};
use crate::meta::Meta;
use crate::names;
use crate::raw;

use subset::validate_subsets;
use traffic_policy::validate_traffic_policy;

mod connection_pool;
mod load_balancer;
mod locality;
mod outlier;
mod retry_budget;
mod subset;
mod tls;
mod traffic_policy;

pub use connection_pool::{
    ConnectionPoolSettings, H2UpgradePolicy, Http2KeepAlive, TcpKeepalive, UNLIMITED,
};
pub use load_balancer::{HashKey, HashTable, LoadBalancer, SimpleLb};
pub use outlier::OutlierDetection;
pub use retry_budget::RetryBudget;
pub use subset::Subset;
pub use tls::TlsMode;
pub use traffic_policy::{PortPolicy, TrafficPolicy};

/// A validated `DestinationRule`.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationRule {
    pub(crate) meta: Meta,
    pub(crate) host: String,
    pub(crate) traffic_policy: Option<TrafficPolicy>,
    pub(crate) subsets: Vec<Subset>,
    pub(crate) export_to: Vec<String>,
    pub(crate) workload_selector: Option<BTreeMap<String, String>>,
}

impl DestinationRule {
    /// Name, namespace, origin.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// Host as written, lower-cased (see [`crate::resolve_short_name`]).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// Top-level policy.
    pub fn traffic_policy(&self) -> Option<&TrafficPolicy> {
        self.traffic_policy.as_ref()
    }
    /// Subsets in order.
    pub fn subsets(&self) -> &[Subset] {
        &self.subsets
    }
    /// A subset by name.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }
    /// Visibility.
    pub fn export_to(&self) -> &[String] {
        &self.export_to
    }
    /// Workload selector labels, when the rule applies to some workloads only.
    pub fn workload_selector(&self) -> Option<&BTreeMap<String, String>> {
        self.workload_selector.as_ref()
    }

    /// The effective policy for traffic to `subset` (or the bare host) on `port`, merged as Istio
    /// does (`MergeSubsetTrafficPolicy`): top level, replaced wholesale by a matching port-level
    /// entry; then each of loadBalancer, connectionPool, outlierDetection and tls replaced by the
    /// subset's (or the subset's port-level entry, which replaces all four) when set.
    pub fn effective_policy(&self, subset: Option<&str>, port: Option<u16>) -> TrafficPolicy {
        let mut base = self.traffic_policy.clone().unwrap_or_default();
        if let Some(pl) = port
            .and_then(|p| base.port_level.iter().find(|x| x.port == p))
            .cloned()
        {
            base = TrafficPolicy {
                load_balancer: pl.load_balancer,
                connection_pool: pl.connection_pool,
                outlier_detection: pl.outlier_detection,
                tls: pl.tls,
                port_level: Vec::new(),
                retry_budget: None,
                other: base.other.clone(),
                raw: raw::TrafficPolicy::default(),
            };
        }
        let Some(sp) = subset
            .and_then(|s| self.subset(s))
            .and_then(|s| s.traffic_policy.as_deref())
        else {
            return base;
        };
        let port_entry = port.and_then(|p| sp.port_level.iter().find(|x| x.port == p));
        match port_entry {
            Some(pl) => {
                base.load_balancer = pl.load_balancer.clone();
                base.connection_pool = pl.connection_pool.clone();
                base.outlier_detection = pl.outlier_detection.clone();
                base.tls = pl.tls.clone();
            }
            None => {
                if sp.load_balancer.is_some() {
                    base.load_balancer = sp.load_balancer.clone();
                }
                if sp.connection_pool.is_some() {
                    base.connection_pool = sp.connection_pool.clone();
                }
                if sp.outlier_detection.is_some() {
                    base.outlier_detection = sp.outlier_detection.clone();
                }
                if sp.tls.is_some() {
                    base.tls = sp.tls.clone();
                }
            }
        }
        if sp.retry_budget.is_some() {
            base.retry_budget = sp.retry_budget.clone();
        }
        base
    }

    /// Back to the wire form.
    pub fn to_raw(&self) -> raw::DestinationRule {
        raw::DestinationRule {
            api_version: Some("networking.istio.io/v1".into()),
            kind: Some("DestinationRule".into()),
            metadata: self.meta.to_raw(),
            spec: raw::DestinationRuleSpec {
                host: Some(self.host.clone()),
                traffic_policy: self.traffic_policy.as_ref().map(|t| t.raw.clone()),
                subsets: self
                    .subsets
                    .iter()
                    .map(|s| {
                        Some(raw::Subset {
                            name: Some(s.name.clone()),
                            labels: s.labels.clone(),
                            traffic_policy: s.traffic_policy.as_ref().map(|t| t.raw.clone()),
                        })
                    })
                    .collect(),
                export_to: self.export_to.clone(),
                workload_selector: self
                    .workload_selector
                    .as_ref()
                    .map(|l| raw::WorkloadSelector {
                        match_labels: l.clone(),
                    }),
            },
        }
    }
}

/// A whole `DestinationRule`: metadata, host, policies, subsets, exportTo, workload selector.
pub(crate) fn validate_destination_rule(
    cx: &mut Cx<'_>,
    raw: &raw::DestinationRule,
) -> DestinationRule {
    let root = Path::ROOT;
    let sp = root.key("spec");
    let spec = &raw.spec;
    let meta = Meta::from_raw(&raw.metadata, cx.source.clone(), cx.document);
    validate_metadata(cx, &raw.metadata);
    let host = match spec.host.as_deref() {
        None | Some("") => {
            cx.error(
                &sp.key("host"),
                "host is required: name the service the rule applies to",
            );
            String::new()
        }
        Some(h) => {
            if names::is_ip(h) {
                cx.error(
                    &sp.key("host"),
                    format!("invalid host {h:?}: an IP address is not allowed here; use the service's domain name"),
                );
            } else if let Some(why) = names::wildcard_domain_problem(h) {
                cx.error(
                    &sp.key("host"),
                    format!("invalid host {h:?}: not a valid domain name ({why})"),
                );
            }
            h.to_ascii_lowercase()
        }
    };
    let top_policy = spec
        .traffic_policy
        .as_ref()
        .map(|t| validate_traffic_policy(cx, &sp.key("trafficPolicy"), t));
    let subsets = validate_subsets(cx, &sp.key("subsets"), &spec.subsets);
    let ep = sp.key("exportTo");
    validate_export_to(cx, &ep, &spec.export_to);
    if spec.workload_selector.is_some()
        && (spec.export_to.len() > 1 || spec.export_to.first().is_some_and(|e| e != "."))
    {
        cx.error(&ep, "a DestinationRule with a workload selector can only be exported to its own namespace: set exportTo: [\".\"]");
    }
    DestinationRule {
        meta,
        host,
        traffic_policy: top_policy,
        subsets,
        export_to: spec.export_to.clone(),
        workload_selector: spec
            .workload_selector
            .as_ref()
            .map(|w| w.match_labels.clone()),
    }
}
