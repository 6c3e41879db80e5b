//! Kubernetes objects, reduced to what the mesh needs: [`ServiceInfo`], [`SliceInfo`] and pod
//! labels. The conversions are pure and follow istiod (`pilot/pkg/serviceregistry/kube`,
//! shared doc A.2–A.4); nothing of the original object is kept beyond them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use mesh_routing::endpoints::{Labels, Locality};

/// `namespace/name` of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjKey {
    pub(crate) namespace: Arc<str>,
    pub(crate) name: Arc<str>,
}

impl ObjKey {
    pub(crate) fn new(namespace: &str, name: &str) -> Self {
        ObjKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The label tying an EndpointSlice to its Service.
pub(crate) const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Slices carrying this label belong to a multi-cluster import; istiod ignores them.
pub(crate) const LABEL_MCS_SERVICE_NAME: &str = "multicluster.kubernetes.io/service-name";
/// Pod label giving the subzone part of the locality.
const LABEL_SUBZONE: &str = "topology.istio.io/subzone";
/// Pod label giving the region (Istio reads it from the node; pods rarely carry it).
const LABEL_REGION: &str = "topology.kubernetes.io/region";

/// An IP family (EndpointSlice `addressType`, Service `ipFamilies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    fn parse(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

/// How a Service is resolved (shared doc A.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServiceKind {
    /// ClusterIP, NodePort or LoadBalancer: endpoints from EndpointSlices (Envoy EDS).
    Eds,
    /// `clusterIP: None`: sidecars connect to the address the application resolved
    /// (`ORIGINAL_DST`), so no endpoints are published.
    Headless,
    /// `type: ExternalName`: an alias; no cluster, no endpoints.
    ExternalName,
}

/// One TCP port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServicePort {
    /// The port's name (`""` for an unnamed single port): EndpointSlice ports are matched by
    /// it (shared doc A.3).
    pub(crate) name: Box<str>,
    /// The service port number (the cluster's port).
    pub(crate) port: u16,
}

/// A Service as the mesh needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceInfo {
    pub(crate) fqdn: Arc<str>,
    pub(crate) kind: ServiceKind,
    pub(crate) ports: Vec<ServicePort>,
    /// The primary IP family (`spec.ipFamilies[0]`, IPv4 when unset).
    pub(crate) family: Family,
}

/// The FQDN of Service `name` in `namespace`: `<name>.<namespace>.svc.<domain>`.
pub(crate) fn service_fqdn(name: &str, namespace: &str, domain: &str) -> String {
    format!("{name}.{namespace}.svc.{domain}").to_ascii_lowercase()
}

impl ServiceInfo {
    /// Reduces a Service; `None` without a name or namespace.
    pub(crate) fn from_service(svc: &Service, domain: &str) -> Option<(ObjKey, ServiceInfo)> {
        let name = svc.metadata.name.as_deref()?;
        let namespace = svc.metadata.namespace.as_deref()?;
        let spec = svc.spec.as_ref();
        let kind = match spec {
            Some(s) if s.type_.as_deref() == Some("ExternalName") => ServiceKind::ExternalName,
            Some(s) if s.cluster_ip.as_deref() == Some("None") => ServiceKind::Headless,
            _ => ServiceKind::Eds,
        };
        let ports = spec
            .and_then(|s| s.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    // No cluster is built for UDP (or SCTP) ports (shared doc A.2).
                    .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
                    .filter_map(|p| {
                        Some(ServicePort {
                            name: p.name.as_deref().unwrap_or("").into(),
                            port: u16::try_from(p.port).ok().filter(|p| *p != 0)?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let family = spec
            .and_then(|s| s.ip_families.as_ref())
            .and_then(|f| f.first())
            .and_then(|f| Family::parse(f))
            .unwrap_or(Family::V4);
        Some((
            ObjKey::new(namespace, name),
            ServiceInfo {
                fqdn: service_fqdn(name, namespace, domain).into(),
                kind,
                ports,
                family,
            },
        ))
    }
}

/// What an EndpointSlice endpoint's conditions mean to istiod (`endpointHealthStatus`,
/// shared doc A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    /// `ready` unset or true: gets traffic.
    Ready,
    /// Not ready and not terminating: known, never picked.
    NotReady,
    /// Not ready, `terminating` unset or true: never published.
    Terminating,
}

impl Condition {
    pub(crate) fn from_conditions(
        ready: Option<bool>,
        _serving: Option<bool>,
        terminating: Option<bool>,
    ) -> Self {
        if ready.unwrap_or(true) {
            Condition::Ready
        } else if terminating.unwrap_or(true) {
            Condition::Terminating
        } else {
            Condition::NotReady
        }
    }
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SliceEndpoint {
    /// The first address (Kubernetes: the addresses of one endpoint are fungible; consumers
    /// may use the first).
    pub(crate) address: Arc<str>,
    pub(crate) condition: Condition,
    /// The pod's name when `targetRef` is a Pod (same namespace as the slice).
    pub(crate) pod: Option<Arc<str>>,
    pub(crate) zone: Option<Arc<str>>,
    pub(crate) node: Option<Arc<str>>,
}

/// An EndpointSlice as the mesh needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SliceInfo {
    /// The Service it belongs to (label `kubernetes.io/service-name`), same namespace.
    pub(crate) service: Arc<str>,
    pub(crate) family: Family,
    /// `(port name, port number)`.
    pub(crate) ports: Vec<(Box<str>, u16)>,
    pub(crate) endpoints: Vec<SliceEndpoint>,
}

/// Shares equal strings (zones, node names) between slices.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = s.into();
        self.strings.insert(Arc::clone(&a));
        a
    }

    /// Forgets strings nothing else holds.
    pub(crate) fn prune(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }
}

impl SliceInfo {
    /// Reduces an EndpointSlice. `None` when istiod would ignore it: no name, namespace or
    /// service-name label, a multi-cluster import, or `addressType: FQDN`.
    pub(crate) fn from_slice(
        slice: &EndpointSlice,
        interner: &mut Interner,
    ) -> Option<(ObjKey, SliceInfo)> {
        let name = slice.metadata.name.as_deref()?;
        let namespace = slice.metadata.namespace.as_deref()?;
        let labels = slice.metadata.labels.as_ref()?;
        if labels.contains_key(LABEL_MCS_SERVICE_NAME) {
            return None;
        }
        let service = labels.get(LABEL_SERVICE_NAME)?;
        let family = Family::parse(&slice.address_type)?;
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .filter_map(|p| {
                let number = u16::try_from(p.port?).ok().filter(|p| *p != 0)?;
                Some((p.name.as_deref().unwrap_or("").into(), number))
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .filter_map(|e| {
                let address = e.addresses.first()?;
                let c = e.conditions.as_ref();
                let condition = Condition::from_conditions(
                    c.and_then(|c| c.ready),
                    c.and_then(|c| c.serving),
                    c.and_then(|c| c.terminating),
                );
                let pod = e
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .filter(|r| r.namespace.as_deref().is_none_or(|ns| ns == namespace))
                    .and_then(|r| r.name.as_deref())
                    .map(Arc::from);
                Some(SliceEndpoint {
                    address: address.as_str().into(),
                    condition,
                    pod,
                    zone: e.zone.as_deref().map(|z| interner.get(z)),
                    node: e.node_name.as_deref().map(|n| interner.get(n)),
                })
            })
            .collect();
        Some((
            ObjKey::new(namespace, name),
            SliceInfo {
                service: service.as_str().into(),
                family,
                ports,
                endpoints,
            },
        ))
    }
}

/// The labels of a pod, interned: pods of one ReplicaSet share one map.
#[derive(Debug, Default)]
pub(crate) struct LabelInterner {
    maps: HashSet<Arc<Labels>>,
}

impl LabelInterner {
    pub(crate) fn get(&mut self, labels: BTreeMap<String, String>) -> Arc<Labels> {
        if let Some(a) = self.maps.get(&labels) {
            return Arc::clone(a);
        }
        let a = Arc::new(labels);
        self.maps.insert(Arc::clone(&a));
        a
    }

    pub(crate) fn prune(&mut self) {
        self.maps.retain(|m| Arc::strong_count(m) > 1);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.maps.len()
    }
}

/// The locality of an endpoint: region and subzone from the pod's labels, zone from the slice
/// (which the EndpointSlice controller copies from the node).
pub(crate) fn locality(labels: &Labels, zone: Option<&str>) -> Locality {
    Locality::new(
        labels.get(LABEL_REGION).map(String::as_str),
        zone,
        labels.get(LABEL_SUBZONE).map(String::as_str),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectReference, ServicePort as KPort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn conditions_map_as_istiod_maps_them() {
        use Condition::*;
        let cases = [
            ((None, None, None), Ready),
            ((Some(true), Some(false), Some(true)), Ready),
            ((Some(false), Some(false), Some(false)), NotReady),
            ((Some(false), Some(true), Some(false)), NotReady),
            ((Some(false), Some(true), Some(true)), Terminating),
            ((Some(false), None, None), Terminating),
        ];
        for ((r, s, t), want) in cases {
            assert_eq!(
                Condition::from_conditions(r, s, t),
                want,
                "{r:?} {s:?} {t:?}"
            );
        }
    }

    #[test]
    fn services_reduce_to_fqdn_tcp_ports_kind_and_family() {
        let svc = Service {
            metadata: meta("Prod", "Reviews", &[]),
            spec: Some(ServiceSpec {
                ports: Some(vec![
                    KPort {
                        name: Some("http".into()),
                        port: 9080,
                        ..KPort::default()
                    },
                    KPort {
                        name: Some("dns".into()),
                        port: 53,
                        protocol: Some("UDP".into()),
                        ..KPort::default()
                    },
                ]),
                ip_families: Some(vec!["IPv6".into(), "IPv4".into()]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        let (key, info) = ServiceInfo::from_service(&svc, "cluster.local").unwrap();
        assert_eq!(key.to_string(), "Prod/Reviews");
        assert_eq!(&*info.fqdn, "reviews.prod.svc.cluster.local");
        assert_eq!(info.kind, ServiceKind::Eds);
        assert_eq!(
            info.ports,
            [ServicePort {
                name: "http".into(),
                port: 9080
            }]
        );
        assert_eq!(info.family, Family::V6);

        let mut headless = svc.clone();
        headless.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let kind = ServiceInfo::from_service(&headless, "cluster.local")
            .unwrap()
            .1
            .kind;
        assert_eq!(kind, ServiceKind::Headless);
        let mut external = svc;
        external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        let kind = ServiceInfo::from_service(&external, "cluster.local")
            .unwrap()
            .1
            .kind;
        assert_eq!(kind, ServiceKind::ExternalName);
    }

    fn slice(labels: &[(&str, &str)], address_type: &str) -> EndpointSlice {
        EndpointSlice {
            metadata: meta("prod", "reviews-abc", labels),
            address_type: address_type.into(),
            endpoints: Some(vec![Endpoint {
                addresses: vec!["10.0.0.1".into(), "10.0.0.9".into()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".into()),
                    name: Some("reviews-v1-1".into()),
                    namespace: Some("prod".into()),
                    ..ObjectReference::default()
                }),
                zone: Some("eu-a".into()),
                node_name: Some("node-1".into()),
                ..Endpoint::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                ..EndpointPort::default()
            }]),
        }
    }

    #[test]
    fn slices_reduce_and_istiod_ignores_some() {
        let mut interner = Interner::default();
        let s = slice(&[(LABEL_SERVICE_NAME, "reviews")], "IPv4");
        let (key, info) = SliceInfo::from_slice(&s, &mut interner).unwrap();
        assert_eq!(key.to_string(), "prod/reviews-abc");
        assert_eq!(&*info.service, "reviews");
        assert_eq!(info.ports, [("http".into(), 8080)]);
        let e = &info.endpoints[0];
        assert_eq!(&*e.address, "10.0.0.1");
        assert_eq!(e.pod.as_deref(), Some("reviews-v1-1"));
        assert_eq!(e.zone.as_deref(), Some("eu-a"));
        assert_eq!(e.condition, Condition::Ready);

        let fqdn = slice(&[(LABEL_SERVICE_NAME, "reviews")], "FQDN");
        assert!(SliceInfo::from_slice(&fqdn, &mut interner).is_none());
        let mcs = slice(
            &[
                (LABEL_SERVICE_NAME, "reviews"),
                (LABEL_MCS_SERVICE_NAME, "reviews"),
            ],
            "IPv4",
        );
        assert!(SliceInfo::from_slice(&mcs, &mut interner).is_none());
        let orphan = slice(&[], "IPv4");
        assert!(SliceInfo::from_slice(&orphan, &mut interner).is_none());
    }

    #[test]
    fn interners_share_and_prune() {
        let mut labels = LabelInterner::default();
        let a = labels.get([("app".to_owned(), "x".to_owned())].into());
        let b = labels.get([("app".to_owned(), "x".to_owned())].into());
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        labels.prune();
        assert_eq!(labels.len(), 0);
        let mut strings = Interner::default();
        let z = strings.get("eu-a");
        assert!(Arc::ptr_eq(&z, &strings.get("eu-a")));
        strings.prune();
        assert_eq!(strings.len(), 1);
    }
}
