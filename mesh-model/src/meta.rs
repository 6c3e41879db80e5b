//! Resource identity shared by the three kinds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::raw;

/// Name, namespace and labels of a resource, plus where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) source: Arc<str>,
    pub(crate) document: usize,
}

/// The Kubernetes cluster domain short host names expand into
/// (`name.namespace.svc.cluster.local`, [`resolve_short_name`]).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The namespace Istio assumes when a resource names none.
pub const DEFAULT_NAMESPACE: &str = "default";

impl Meta {
    pub(crate) fn from_raw(m: &raw::ObjectMeta, source: Arc<str>, document: usize) -> Self {
        Meta {
            name: m.name.clone().unwrap_or_default(),
            namespace: m
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
            source,
            document,
        }
    }

    pub(crate) fn to_raw(&self) -> raw::ObjectMeta {
        raw::ObjectMeta {
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// The resource name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The namespace (`default` when none was written).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// Resource labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    /// The source name the resource was read from.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The index of the YAML document in its source.
    pub fn document(&self) -> usize {
        self.document
    }
}

/// Expands a short host name (no dot) to `name.namespace.svc.cluster.local`, as Istio does for
/// hosts written in a resource of that namespace. Names with a dot, `*` and IP addresses are
/// returned unchanged (lower-cased).
///
/// ```
/// assert_eq!(mesh_model::resolve_short_name("reviews", "prod"), "reviews.prod.svc.cluster.local");
/// assert_eq!(mesh_model::resolve_short_name("reviews.prod", "x"), "reviews.prod");
/// assert_eq!(mesh_model::resolve_short_name("*", "x"), "*");
/// ```
pub fn resolve_short_name(host: &str, namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains('.') || host.contains(':') || host == "*" || host.is_empty() {
        host
    } else {
        format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}")
    }
}
