//! The configuration side of a cluster: Istio `VirtualService`, `DestinationRule` and
//! `ServiceEntry` objects, each validated by `mesh-model` as if it were a file, the last valid
//! version of each kept, all of them loaded together into one [`MeshConfig`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use kube::core::DynamicObject;
use mesh_model::{Diagnostic, Loaded, Loader, MeshConfig};

use crate::objects::ObjKey;

/// An Istio configuration kind the mesh reads from `networking.istio.io/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum IstioKind {
    /// `VirtualService` (plural `virtualservices`).
    VirtualService,
    /// `DestinationRule` (plural `destinationrules`).
    DestinationRule,
    /// `ServiceEntry` (plural `serviceentries`).
    ServiceEntry,
}

impl IstioKind {
    /// Every kind, in the order the loader reads them.
    pub const ALL: [IstioKind; 3] = [
        IstioKind::VirtualService,
        IstioKind::DestinationRule,
        IstioKind::ServiceEntry,
    ];

    /// The kind's name (`VirtualService`).
    pub fn as_str(self) -> &'static str {
        match self {
            IstioKind::VirtualService => "VirtualService",
            IstioKind::DestinationRule => "DestinationRule",
            IstioKind::ServiceEntry => "ServiceEntry",
        }
    }

    /// The resource's plural (`virtualservices`).
    pub fn plural(self) -> &'static str {
        match self {
            IstioKind::VirtualService => "virtualservices",
            IstioKind::DestinationRule => "destinationrules",
            IstioKind::ServiceEntry => "serviceentries",
        }
    }
}

impl fmt::Display for IstioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The group and version read.
pub(crate) const GROUP: &str = "networking.istio.io";
pub(crate) const VERSION: &str = "v1";

/// The source name diagnostics give an object: `kubernetes:<kind>/<namespace>/<name>`.
pub(crate) fn source_name(kind: IstioKind, key: &ObjKey) -> String {
    format!("kubernetes:{kind}/{}/{}", key.namespace, key.name)
}

/// An accepted object: its YAML as the loader reads it, and its order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Accepted {
    yaml: Arc<str>,
    /// `metadata.creationTimestamp` (RFC 3339, so it sorts as text); Istio orders
    /// conflicting configuration by creation time, then namespace and name.
    created: Arc<str>,
}

/// What [`ConfigState::apply`] did with an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Applied {
    /// Accepted; the configuration changed.
    Changed,
    /// Accepted; identical to what was held.
    Unchanged,
    /// Out of scope (a Sidecar's egress hosts do not cover it): dropped, and a version held
    /// before is forgotten.
    OutOfScope { removed: bool },
    /// Refused with these diagnostics; `kept_previous` says whether an earlier valid version
    /// keeps applying.
    Refused {
        diagnostics: Vec<Diagnostic>,
        kept_previous: bool,
    },
}

/// Which Istio objects are in scope: `(kind, namespace, hosts)`.
pub(crate) type ConfigFilter = Arc<dyn Fn(IstioKind, &str, &[String]) -> bool + Send + Sync>;

/// See the [module docs](self).
pub(crate) struct ConfigState {
    objects: BTreeMap<(IstioKind, ObjKey), Accepted>,
    filter: Option<ConfigFilter>,
}

impl fmt::Debug for ConfigState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigState")
            .field("objects", &self.objects.len())
            .finish_non_exhaustive()
    }
}

/// `spec.hosts` (VirtualService, ServiceEntry) or `[spec.host]` (DestinationRule).
fn hosts_of(kind: IstioKind, spec: &serde_json::Value) -> Vec<String> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    match kind {
        IstioKind::DestinationRule => spec.get("host").and_then(text).into_iter().collect(),
        IstioKind::VirtualService | IstioKind::ServiceEntry => spec
            .get("hosts")
            .and_then(serde_json::Value::as_array)
            .map(|hs| hs.iter().filter_map(text).collect())
            .unwrap_or_default(),
    }
}

/// The object as YAML text: `apiVersion`, `kind`, `metadata` (name, namespace, labels) and
/// `spec`; server-set metadata, annotations and `status` are left out.
pub(crate) fn object_yaml(kind: IstioKind, obj: &DynamicObject) -> String {
    let mut meta = serde_json::Map::new();
    if let Some(n) = &obj.metadata.name {
        meta.insert("name".into(), n.clone().into());
    }
    if let Some(ns) = &obj.metadata.namespace {
        meta.insert("namespace".into(), ns.clone().into());
    }
    if let Some(labels) = obj.metadata.labels.as_ref().filter(|l| !l.is_empty()) {
        meta.insert(
            "labels".into(),
            serde_json::to_value(labels).unwrap_or_default(),
        );
    }
    let api_version = obj
        .types
        .as_ref()
        .map(|t| t.api_version.clone())
        .unwrap_or_else(|| format!("{GROUP}/{VERSION}"));
    let mut doc = serde_json::Map::new();
    doc.insert("apiVersion".into(), api_version.into());
    doc.insert("kind".into(), kind.as_str().into());
    doc.insert("metadata".into(), meta.into());
    if let Some(spec) = obj.data.get("spec") {
        doc.insert("spec".into(), spec.clone());
    }
    serde_yaml::to_string(&serde_json::Value::Object(doc)).unwrap_or_default()
}

impl ConfigState {
    pub(crate) fn new(filter: Option<ConfigFilter>) -> Self {
        ConfigState {
            objects: BTreeMap::new(),
            filter,
        }
    }

    /// Number of objects that apply.
    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }

    /// The keys held of `kind` in `namespace` (`None`: every namespace).
    pub(crate) fn keys(&self, kind: IstioKind, namespace: Option<&str>) -> Vec<ObjKey> {
        self.objects
            .keys()
            .filter(|(k, key)| *k == kind && namespace.is_none_or(|ns| *key.namespace == *ns))
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// Validates `obj` alone (as the file loader validates one document) and keeps it if
    /// valid; an invalid update keeps the previous valid version.
    pub(crate) fn apply(&mut self, kind: IstioKind, obj: &DynamicObject) -> (ObjKey, Applied) {
        let key = ObjKey::new(
            obj.metadata.namespace.as_deref().unwrap_or("default"),
            obj.metadata.name.as_deref().unwrap_or(""),
        );
        if let Some(filter) = &self.filter {
            let hosts = obj
                .data
                .get("spec")
                .map(|s| hosts_of(kind, s))
                .unwrap_or_default();
            if !filter(kind, &key.namespace, &hosts) {
                let removed = self.objects.remove(&(kind, key.clone())).is_some();
                return (key, Applied::OutOfScope { removed });
            }
        }
        let yaml = object_yaml(kind, obj);
        let source = source_name(kind, &key);
        let mut loader = Loader::new().without_analysis();
        loader.add_str(&source, &yaml);
        let loaded = loader.finish();
        if loaded.has_errors() {
            let kept_previous = self.objects.contains_key(&(kind, key.clone()));
            let diagnostics = loaded.diagnostics().to_vec();
            return (
                key,
                Applied::Refused {
                    diagnostics,
                    kept_previous,
                },
            );
        }
        let created = obj
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|v| v.as_str().map(Arc::from))
            .unwrap_or_else(|| Arc::from(""));
        let accepted = Accepted {
            yaml: yaml.into(),
            created,
        };
        match self.objects.insert((kind, key.clone()), accepted.clone()) {
            Some(old) if old == accepted => (key, Applied::Unchanged),
            _ => (key, Applied::Changed),
        }
    }

    /// Forgets an object; whether it was held.
    pub(crate) fn delete(&mut self, kind: IstioKind, key: &ObjKey) -> bool {
        self.objects.remove(&(kind, key.clone())).is_some()
    }

    /// Loads every held object into one configuration, with the cross-resource analysis, in
    /// Istio's order (creation time, then namespace and name), each under its
    /// `kubernetes:<kind>/<namespace>/<name>` source name.
    pub(crate) fn load(&self) -> Loaded {
        let mut ordered: Vec<(&(IstioKind, ObjKey), &Accepted)> = self.objects.iter().collect();
        ordered.sort_by(|(ka, a), (kb, b)| {
            (&a.created, &ka.1.namespace, &ka.1.name, ka.0).cmp(&(
                &b.created,
                &kb.1.namespace,
                &kb.1.name,
                kb.0,
            ))
        });
        let mut loader = Loader::new();
        for ((kind, key), acc) in ordered {
            loader.add_str(&source_name(*kind, key), &acc.yaml);
        }
        loader.finish()
    }

    /// [`load`](Self::load)'s configuration (analysis findings do not keep an object out:
    /// istiod does not reject a resource for what `istioctl analyze` would say).
    pub(crate) fn build(&self) -> (MeshConfig, Vec<Diagnostic>) {
        let loaded = self.load();
        let findings = loaded
            .diagnostics()
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        (loaded.into_config(), findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(
        kind: IstioKind,
        ns: &str,
        name: &str,
        created: &str,
        spec: serde_json::Value,
    ) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": kind.as_str(),
            "metadata": {
                "name": name, "namespace": ns, "resourceVersion": "7", "uid": "u",
                "creationTimestamp": created,
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl"}],
            },
            "spec": spec,
            "status": {"observedGeneration": 1},
        }))
        .unwrap()
    }

    fn dr(subset: &str) -> DynamicObject {
        obj(
            IstioKind::DestinationRule,
            "prod",
            "reviews",
            "2024-01-01T00:00:00Z",
            serde_json::json!({"host": "reviews", "subsets": [{"name": subset, "labels": {"version": subset}}]}),
        )
    }

    #[test]
    fn yaml_keeps_what_the_loader_reads_only() {
        let yaml = object_yaml(IstioKind::DestinationRule, &dr("v1"));
        assert!(yaml.contains("name: reviews") && yaml.contains("namespace: prod"));
        assert!(!yaml.contains("resourceVersion") && !yaml.contains("managedFields"));
        assert!(!yaml.contains("last-applied") && !yaml.contains("status"));
        let loaded = mesh_model::load_str("x", &yaml);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        assert!(
            loaded.warnings().next().is_none(),
            "{:?}",
            loaded.diagnostics()
        );
    }

    #[test]
    fn an_invalid_update_keeps_the_previous_version() {
        let mut c = ConfigState::new(None);
        assert_eq!(
            c.apply(IstioKind::DestinationRule, &dr("v1")).1,
            Applied::Changed
        );
        assert_eq!(
            c.apply(IstioKind::DestinationRule, &dr("v1")).1,
            Applied::Unchanged
        );
        let (key, applied) = c.apply(IstioKind::DestinationRule, &dr("Bad_Name!"));
        assert_eq!(key.to_string(), "prod/reviews");
        let Applied::Refused {
            diagnostics,
            kept_previous,
        } = applied
        else {
            panic!("refused expected, got {applied:?}");
        };
        assert!(kept_previous);
        let d = diagnostics.iter().find(|d| d.is_error()).unwrap();
        assert_eq!(d.source(), "kubernetes:DestinationRule/prod/reviews");
        let (cfg, findings) = c.build();
        assert!(findings.is_empty());
        let dr = &cfg.destination_rules()[0];
        assert_eq!(dr.subsets()[0].name(), "v1");
    }

    #[test]
    fn load_order_is_creation_time_then_namespace_and_name() {
        let mut c = ConfigState::new(None);
        let vs = |ns: &str, name: &str, created: &str| {
            obj(
                IstioKind::VirtualService,
                ns,
                name,
                created,
                serde_json::json!({"hosts": [format!("{name}.example.com")], "http": [{"route": [{"destination": {"host": "x.example.com"}}]}]}),
            )
        };
        c.apply(
            IstioKind::VirtualService,
            &vs("b", "late", "2024-01-02T00:00:00Z"),
        );
        c.apply(
            IstioKind::VirtualService,
            &vs("b", "early", "2024-01-01T00:00:00Z"),
        );
        c.apply(
            IstioKind::VirtualService,
            &vs("a", "early2", "2024-01-01T00:00:00Z"),
        );
        let (cfg, _) = c.build();
        let names: Vec<&str> = cfg
            .virtual_services()
            .iter()
            .map(|v| v.meta().name())
            .collect();
        assert_eq!(names, ["early2", "early", "late"]);
        assert!(c.delete(IstioKind::VirtualService, &ObjKey::new("b", "late")));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn out_of_scope_objects_are_dropped() {
        let filter: ConfigFilter =
            Arc::new(|_, _, hosts: &[String]| hosts.iter().any(|h| h == "reviews"));
        let mut c = ConfigState::new(Some(filter));
        assert_eq!(
            c.apply(IstioKind::DestinationRule, &dr("v1")).1,
            Applied::Changed
        );
        let other = obj(
            IstioKind::DestinationRule,
            "prod",
            "ratings",
            "2024-01-01T00:00:00Z",
            serde_json::json!({"host": "ratings"}),
        );
        assert_eq!(
            c.apply(IstioKind::DestinationRule, &other).1,
            Applied::OutOfScope { removed: false }
        );
        assert_eq!(c.len(), 1);
    }
}
