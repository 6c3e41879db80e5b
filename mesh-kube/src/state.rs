//! The endpoint side of a cluster: Services, EndpointSlices and pod labels, indexed so that
//! one change recomputes only the Services it touches. Pure: events in, dirty Services out;
//! [`EndpointState::flush`] publishes their endpoints into a sink.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mesh_routing::endpoints::{Endpoint, EndpointSink, Health, Labels, Locality};

use crate::objects::{
    locality, service_fqdn, Condition, Family, Interner, LabelInterner, ObjKey, ServiceInfo,
    ServiceKind, SliceInfo,
};

/// Which services are kept (the scope); the others are dropped on arrival.
pub(crate) type ServiceFilter = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// See the [module docs](self).
pub(crate) struct EndpointState {
    domain: String,
    filter: Option<ServiceFilter>,
    services: HashMap<ObjKey, ServiceInfo>,
    slices: HashMap<ObjKey, SliceInfo>,
    /// Service → the names of its slices.
    slices_of: HashMap<ObjKey, Vec<Arc<str>>>,
    /// Pods seen (labels) or named by a slice (references), in one map.
    pods: HashMap<ObjKey, PodEntry>,
    /// Pods with labels (seen by the pod watch).
    pods_known: usize,
    strings: Interner,
    labels: LabelInterner,
    zones: HashMap<Arc<str>, Arc<Locality>>,
    dirty: HashSet<ObjKey>,
}

impl std::fmt::Debug for EndpointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointState")
            .field("services", &self.services.len())
            .field("slices", &self.slices.len())
            .field("pods", &self.pods.len())
            .finish_non_exhaustive()
    }
}

/// A pod: its labels once the pod watch saw it, and which services' slices name it.
#[derive(Debug, Default)]
struct PodEntry {
    labels: Option<Arc<Labels>>,
    /// (service name, number of slice endpoints of that service naming the pod).
    refs: Vec<(Arc<str>, u32)>,
}

/// Counts of what the state holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) services: usize,
    pub(crate) slices: usize,
    pub(crate) pods: usize,
}

impl EndpointState {
    pub(crate) fn new(domain: &str, filter: Option<ServiceFilter>) -> Self {
        EndpointState {
            domain: domain.to_owned(),
            filter,
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            pods: HashMap::new(),
            pods_known: 0,
            strings: Interner::default(),
            labels: LabelInterner::default(),
            zones: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            services: self.services.len(),
            slices: self.slices.len(),
            pods: self.pods_known,
        }
    }

    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    pub(crate) fn interner(&mut self) -> &mut Interner {
        &mut self.strings
    }

    /// The key of an object in `namespace`, the namespace shared with every other key.
    pub(crate) fn key(&mut self, namespace: &str, name: &str) -> ObjKey {
        ObjKey {
            namespace: self.strings.get(namespace),
            name: name.into(),
        }
    }

    pub(crate) fn intern_labels(
        &mut self,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Arc<Labels> {
        self.labels.get(labels)
    }

    fn in_scope(&self, namespace: &str, service: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f(namespace, service))
    }

    /// Service `key` is now `info` (`None`: deleted).
    pub(crate) fn apply_service(&mut self, key: ObjKey, info: Option<ServiceInfo>) {
        let info = info.filter(|_| self.in_scope(&key.namespace, &key.name));
        let changed = match info {
            Some(info) => self.services.insert(key.clone(), info.clone()).as_ref() != Some(&info),
            None => self.services.remove(&key).is_some(),
        };
        if changed {
            self.dirty.insert(key);
        }
    }

    /// Slice `key` is now `info` (`None`: deleted).
    pub(crate) fn apply_slice(&mut self, key: ObjKey, info: Option<SliceInfo>) {
        let info = info.filter(|i| self.in_scope(&key.namespace, &i.service));
        let old = match &info {
            Some(new) => {
                let old = self.slices.insert(key.clone(), new.clone());
                if old.as_ref() == Some(new) {
                    return;
                }
                old
            }
            None => match self.slices.remove(&key) {
                Some(old) => Some(old),
                None => return,
            },
        };
        if let Some(old) = &old {
            self.unlink(&key, old);
        }
        if let Some(new) = &info {
            self.link(&key, new);
        }
    }

    fn link(&mut self, key: &ObjKey, slice: &SliceInfo) {
        let svc = ObjKey {
            namespace: Arc::clone(&key.namespace),
            name: Arc::clone(&slice.service),
        };
        let names = self.slices_of.entry(svc.clone()).or_default();
        if let Err(at) = names.binary_search(&key.name) {
            names.insert(at, Arc::clone(&key.name));
        }
        for e in &slice.endpoints {
            if let Some(pod) = &e.pod {
                let refs = &mut self
                    .pods
                    .entry(ObjKey {
                        namespace: Arc::clone(&key.namespace),
                        name: Arc::clone(pod),
                    })
                    .or_default()
                    .refs;
                match refs.iter_mut().find(|(s, _)| *s == slice.service) {
                    Some((_, n)) => *n += 1,
                    None => refs.push((Arc::clone(&slice.service), 1)),
                }
            }
        }
        self.dirty.insert(svc);
    }

    fn unlink(&mut self, key: &ObjKey, slice: &SliceInfo) {
        let svc = ObjKey {
            namespace: Arc::clone(&key.namespace),
            name: Arc::clone(&slice.service),
        };
        if let Some(names) = self.slices_of.get_mut(&svc) {
            names.retain(|n| *n != key.name);
            if names.is_empty() {
                self.slices_of.remove(&svc);
            }
        }
        for e in &slice.endpoints {
            if let Some(pod) = &e.pod {
                let pod_key = ObjKey {
                    namespace: Arc::clone(&key.namespace),
                    name: Arc::clone(pod),
                };
                if let Some(entry) = self.pods.get_mut(&pod_key) {
                    let refs = &mut entry.refs;
                    if let Some(i) = refs.iter().position(|(s, _)| *s == slice.service) {
                        refs[i].1 -= 1;
                        if refs[i].1 == 0 {
                            refs.swap_remove(i);
                        }
                    }
                    if refs.is_empty() && entry.labels.is_none() {
                        self.pods.remove(&pod_key);
                    }
                }
            }
        }
        self.dirty.insert(svc);
    }

    /// Pod `key` now has `labels` (`None`: deleted).
    pub(crate) fn apply_pod(&mut self, key: ObjKey, labels: Option<Arc<Labels>>) {
        let changed = match labels {
            Some(l) => {
                let entry = self.pods.entry(key.clone()).or_default();
                match entry.labels.replace(Arc::clone(&l)) {
                    Some(old) => !Arc::ptr_eq(&old, &l) && *old != *l,
                    None => {
                        self.pods_known += 1;
                        true
                    }
                }
            }
            None => match self.pods.get_mut(&key) {
                Some(entry) if entry.labels.is_some() => {
                    entry.labels = None;
                    self.pods_known -= 1;
                    if entry.refs.is_empty() {
                        self.pods.remove(&key);
                    }
                    true
                }
                _ => false,
            },
        };
        if !changed {
            return;
        }
        if let Some(entry) = self.pods.get(&key) {
            for (svc, _) in &entry.refs {
                self.dirty.insert(ObjKey {
                    namespace: Arc::clone(&key.namespace),
                    name: Arc::clone(svc),
                });
            }
        }
    }

    /// The keys of the services / slices / pods held in `namespace` (`None`: all).
    pub(crate) fn service_keys(&self, namespace: Option<&str>) -> Vec<ObjKey> {
        keys_in(&self.services, namespace)
    }

    pub(crate) fn slice_keys(&self, namespace: Option<&str>) -> Vec<ObjKey> {
        keys_in(&self.slices, namespace)
    }

    pub(crate) fn pod_keys(&self, namespace: Option<&str>) -> Vec<ObjKey> {
        self.pods
            .iter()
            .filter(|(k, e)| e.labels.is_some() && namespace.is_none_or(|ns| &*k.namespace == ns))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether a flush would publish anything.
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Publishes the endpoints of every service changed since the last flush; returns how
    /// many hosts were published or removed.
    pub(crate) fn flush(&mut self, sink: &mut dyn EndpointSink) -> usize {
        let dirty: Vec<ObjKey> = self.dirty.drain().collect();
        let mut n = 0;
        for key in dirty {
            let fqdn = match self.services.get(&key) {
                Some(s) => Arc::clone(&s.fqdn),
                None => service_fqdn(&key.name, &key.namespace, &self.domain).into(),
            };
            match self.endpoints_of(&key) {
                Some(list) => sink.set_endpoints(&fqdn, list),
                None => sink.remove_host(&fqdn),
            }
            n += 1;
        }
        n
    }

    /// Drops interned strings and label maps nothing uses any more.
    pub(crate) fn prune(&mut self) {
        self.strings.prune();
        self.labels.prune();
        self.zones.retain(|_, l| Arc::strong_count(l) > 1);
    }

    /// The endpoints of service `key` as istiod builds them (shared doc A.3): every slice of
    /// the service merged, the service's primary IP family first (the other family only for
    /// pods without an address of the primary one), duplicates (same address) merged,
    /// terminating endpoints left out, endpoints of pods not yet seen held back. `None` when
    /// the service is unknown or gets no endpoints (headless, ExternalName).
    fn endpoints_of(&mut self, key: &ObjKey) -> Option<Vec<Endpoint>> {
        let svc = self.services.get(key)?;
        if svc.kind != ServiceKind::Eds {
            return None;
        }
        let names = self.slices_of.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let mut out: Vec<Endpoint> = Vec::new();
        let mut by_address: HashMap<&str, usize> = HashMap::new();
        let mut pods_seen: HashSet<&str> = HashSet::new();
        let mut pairs: Vec<(u16, u16)> = Vec::with_capacity(svc.ports.len());
        for family in [svc.family, other(svc.family)] {
            let primary = family == svc.family;
            for name in names {
                let Some(slice) = self.slices.get(&ObjKey {
                    namespace: Arc::clone(&key.namespace),
                    name: Arc::clone(name),
                }) else {
                    continue;
                };
                if slice.family != family {
                    continue;
                }
                pairs.clear();
                for p in &svc.ports {
                    if let Some((_, target)) = slice.ports.iter().find(|(n, _)| *n == p.name) {
                        pairs.push((p.port, *target));
                    }
                }
                let shared_pairs: Arc<[(u16, u16)]> = pairs.as_slice().into();
                for e in &slice.endpoints {
                    let health = match e.condition {
                        Condition::Ready => Health::Healthy,
                        Condition::NotReady => Health::Unhealthy,
                        Condition::Terminating => continue,
                    };
                    let labels = match &e.pod {
                        Some(pod) => {
                            if !primary && pods_seen.contains(&**pod) {
                                continue;
                            }
                            let pod_key = ObjKey {
                                namespace: Arc::clone(&key.namespace),
                                name: Arc::clone(pod),
                            };
                            match self.pods.get(&pod_key).and_then(|e| e.labels.as_ref()) {
                                Some(l) => Arc::clone(l),
                                // istiod skips it until the pod arrives, then replays.
                                None => continue,
                            }
                        }
                        None => Arc::default(),
                    };
                    if let Some(&i) = by_address.get(&*e.address) {
                        let merged: Vec<(u16, u16)> = out[i]
                            .port_mappings()
                            .iter()
                            .chain(pairs.iter())
                            .copied()
                            .collect();
                        out[i] = out[i].clone().with_port_mappings(&merged);
                        continue;
                    }
                    if primary {
                        if let Some(pod) = &e.pod {
                            pods_seen.insert(pod);
                        }
                    }
                    let mut ep = Endpoint::from_shared(Arc::clone(&e.address))
                        .with_shared_port_mappings(Arc::clone(&shared_pairs))
                        .with_mapped_ports_only()
                        .with_health(health);
                    if labels.contains_key("topology.kubernetes.io/region")
                        || labels.contains_key("topology.istio.io/subzone")
                    {
                        ep = ep.with_locality(Arc::new(locality(&labels, e.zone.as_deref())));
                    } else if let Some(zone) = &e.zone {
                        let loc = self
                            .zones
                            .entry(Arc::clone(zone))
                            .or_insert_with(|| Arc::new(Locality::new(None, Some(zone), None)));
                        ep = ep.with_locality(Arc::clone(loc));
                    }
                    if let Some(node) = &e.node {
                        ep = ep.with_node_name(Arc::clone(node));
                    }
                    by_address.insert(&e.address, out.len());
                    out.push(ep.with_shared_labels(labels));
                }
            }
        }
        Some(out)
    }
}

fn other(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

fn keys_in<V>(map: &HashMap<ObjKey, V>, namespace: Option<&str>) -> Vec<ObjKey> {
    map.keys()
        .filter(|k| namespace.is_none_or(|ns| &*k.namespace == ns))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{ServicePort, SliceEndpoint};

    #[derive(Default)]
    struct Recorder {
        set: Vec<(String, Vec<Endpoint>)>,
        removed: Vec<String>,
    }

    impl EndpointSink for Recorder {
        fn set_endpoints(&mut self, host: &str, endpoints: Vec<Endpoint>) {
            self.set.push((host.to_owned(), endpoints));
        }
        fn remove_host(&mut self, host: &str) {
            self.removed.push(host.to_owned());
        }
    }

    const FQDN: &str = "reviews.prod.svc.cluster.local";

    fn svc(family: Family) -> ServiceInfo {
        ServiceInfo {
            fqdn: FQDN.into(),
            kind: ServiceKind::Eds,
            ports: vec![
                ServicePort {
                    name: "http".into(),
                    port: 9080,
                },
                ServicePort {
                    name: "grpc".into(),
                    port: 9090,
                },
            ],
            family,
        }
    }

    fn ep(address: &str, pod: &str, condition: Condition) -> SliceEndpoint {
        SliceEndpoint {
            address: address.into(),
            condition,
            pod: (!pod.is_empty()).then(|| pod.into()),
            zone: Some("eu-a".into()),
            node: Some("node-1".into()),
        }
    }

    fn slice(family: Family, ports: &[(&str, u16)], endpoints: Vec<SliceEndpoint>) -> SliceInfo {
        SliceInfo {
            service: "reviews".into(),
            family,
            ports: ports.iter().map(|(n, p)| ((*n).into(), *p)).collect(),
            endpoints,
        }
    }

    fn labels(version: &str) -> Option<Arc<Labels>> {
        Some(Arc::new(
            [("version".to_owned(), version.to_owned())].into(),
        ))
    }

    fn state() -> EndpointState {
        let mut s = EndpointState::new("cluster.local", None);
        s.apply_service(ObjKey::new("prod", "reviews"), Some(svc(Family::V4)));
        s.apply_pod(ObjKey::new("prod", "p1"), labels("v1"));
        s.apply_pod(ObjKey::new("prod", "p2"), labels("v2"));
        s
    }

    fn flush(s: &mut EndpointState) -> Recorder {
        let mut r = Recorder::default();
        s.flush(&mut r);
        r
    }

    fn summary(eps: &[Endpoint]) -> Vec<String> {
        eps.iter()
            .map(|e| {
                format!(
                    "{} {:?} {:?} {}",
                    e.address(),
                    e.port_mappings(),
                    e.health(),
                    e.labels().get("version").map_or("-", String::as_str)
                )
            })
            .collect()
    }

    #[test]
    fn two_slices_merge_and_deduplicate() {
        let mut s = state();
        s.apply_slice(
            ObjKey::new("prod", "reviews-a"),
            Some(slice(
                Family::V4,
                &[("http", 8080)],
                vec![ep("10.0.0.1", "p1", Condition::Ready)],
            )),
        );
        s.apply_slice(
            ObjKey::new("prod", "reviews-b"),
            Some(slice(
                Family::V4,
                &[("grpc", 8090)],
                vec![
                    ep("10.0.0.1", "p1", Condition::Ready),
                    ep("10.0.0.2", "p2", Condition::NotReady),
                    ep("10.0.0.3", "p2", Condition::Terminating),
                ],
            )),
        );
        let r = flush(&mut s);
        assert_eq!(r.set.len(), 1, "one publication for the service");
        let (host, eps) = &r.set[0];
        assert_eq!(host, FQDN);
        assert_eq!(
            summary(eps),
            [
                "10.0.0.1 [(9080, 8080), (9090, 8090)] Healthy v1",
                "10.0.0.2 [(9090, 8090)] Unhealthy v2",
            ]
        );
        assert_eq!(eps[0].locality().unwrap().zone(), Some("eu-a"));
        assert_eq!(eps[0].node_name(), Some("node-1"));
        assert!(!eps[1].serves(9080) && eps[1].serves(9090));
        assert!(flush(&mut s).set.is_empty(), "nothing dirty after a flush");
    }

    #[test]
    fn pod_label_change_republishes_only_its_services() {
        let mut s = state();
        s.apply_service(ObjKey::new("prod", "other"), Some(svc(Family::V4)));
        let sl = slice(
            Family::V4,
            &[("http", 8080)],
            vec![ep("10.0.0.1", "p1", Condition::Ready)],
        );
        s.apply_slice(ObjKey::new("prod", "reviews-a"), Some(sl));
        flush(&mut s);
        s.apply_pod(ObjKey::new("prod", "p1"), labels("v2"));
        let r = flush(&mut s);
        assert_eq!(r.set.len(), 1);
        assert_eq!(summary(&r.set[0].1), ["10.0.0.1 [(9080, 8080)] Healthy v2"]);
        // The same labels again: nothing to do.
        s.apply_pod(ObjKey::new("prod", "p1"), labels("v2"));
        assert!(!s.has_dirty());
        // A pod no slice names: nothing to do.
        s.apply_pod(ObjKey::new("prod", "p9"), labels("v9"));
        assert!(!s.has_dirty());
    }

    #[test]
    fn endpoints_wait_for_their_pod() {
        let mut s = state();
        let sl = slice(
            Family::V4,
            &[("http", 8080)],
            vec![
                ep("10.0.0.7", "p7", Condition::Ready),
                ep("10.0.0.8", "", Condition::Ready),
            ],
        );
        s.apply_slice(ObjKey::new("prod", "reviews-a"), Some(sl));
        let r = flush(&mut s);
        assert_eq!(summary(&r.set[0].1), ["10.0.0.8 [(9080, 8080)] Healthy -"]);
        s.apply_pod(ObjKey::new("prod", "p7"), labels("v1"));
        let r = flush(&mut s);
        assert_eq!(
            summary(&r.set[0].1),
            [
                "10.0.0.7 [(9080, 8080)] Healthy v1",
                "10.0.0.8 [(9080, 8080)] Healthy -"
            ]
        );
    }

    #[test]
    fn dual_stack_uses_the_primary_family_per_pod() {
        let mut s = state();
        s.apply_service(ObjKey::new("prod", "reviews"), Some(svc(Family::V6)));
        s.apply_slice(
            ObjKey::new("prod", "reviews-v4"),
            Some(slice(
                Family::V4,
                &[("http", 8080)],
                vec![
                    ep("10.0.0.1", "p1", Condition::Ready),
                    ep("10.0.0.2", "p2", Condition::Ready),
                ],
            )),
        );
        s.apply_slice(
            ObjKey::new("prod", "reviews-v6"),
            Some(slice(
                Family::V6,
                &[("http", 8080)],
                vec![ep("fd00::1", "p1", Condition::Ready)],
            )),
        );
        let r = flush(&mut s);
        let (_, eps) = r.set.last().unwrap();
        assert_eq!(
            summary(eps),
            [
                "fd00::1 [(9080, 8080)] Healthy v1",
                "10.0.0.2 [(9080, 8080)] Healthy v2"
            ]
        );
    }

    #[test]
    fn deletes_remove_hosts_and_unlink_pods() {
        let mut s = state();
        let key = ObjKey::new("prod", "reviews-a");
        let sl = slice(
            Family::V4,
            &[("http", 8080)],
            vec![ep("10.0.0.1", "p1", Condition::Ready)],
        );
        s.apply_slice(key.clone(), Some(sl));
        flush(&mut s);
        s.apply_slice(key, None);
        let r = flush(&mut s);
        assert_eq!(
            r.set[0].1.len(),
            0,
            "a service without slices has no endpoints"
        );
        assert!(s.slices_of.is_empty());
        assert!(s.pods.values().all(|e| e.refs.is_empty()));
        s.apply_service(ObjKey::new("prod", "reviews"), None);
        let r = flush(&mut s);
        assert_eq!(r.removed, [FQDN]);
    }

    #[test]
    fn out_of_scope_services_and_slices_are_dropped() {
        let filter: ServiceFilter = Arc::new(|ns, name| ns == "prod" && name == "reviews");
        let mut s = EndpointState::new("cluster.local", Some(filter));
        s.apply_service(ObjKey::new("prod", "reviews"), Some(svc(Family::V4)));
        s.apply_service(ObjKey::new("prod", "ratings"), Some(svc(Family::V4)));
        let mut other = slice(Family::V4, &[("http", 8080)], vec![]);
        other.service = "ratings".into();
        s.apply_slice(ObjKey::new("prod", "ratings-a"), Some(other));
        assert_eq!(
            s.counts(),
            Counts {
                services: 1,
                slices: 0,
                pods: 0
            }
        );
    }

    /// One endpoint update in a cluster of `services` Services × 10 pods: the watch event's
    /// JSON decoded, reduced, applied, and the host's endpoints published into a real mesh
    /// whose configuration names the host (a VirtualService and a DestinationRule with two
    /// subsets, so three clusters are updated). Returns the mean time per update.
    fn update_cost(services: usize, updates: usize) -> std::time::Duration {
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use kube::core::WatchEvent;

        let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: svc-0, namespace: ns}\nspec:\n  host: svc-0\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: svc-0, namespace: ns}\nspec:\n  hosts: [svc-0]\n  http:\n  - route:\n    - {destination: {host: svc-0, subset: v1, port: {number: 8080}}, weight: 90}\n    - {destination: {host: svc-0, subset: v2, port: {number: 8080}}, weight: 10}\n";
        let cfg = mesh_model::load_str("x", yaml).into_result().unwrap();
        let layer = mesh_tower::MeshLayer::builder()
            .config(cfg)
            .client(mesh_routing::ClientContext::new("ns"))
            .build()
            .unwrap();
        let mut publisher = layer.handle().endpoint_source();
        let mut st = EndpointState::new("cluster.local", None);
        let slice_json = |svc: usize, ready_last: bool| {
            let eps: Vec<serde_json::Value> = (0..10)
                .map(|p| {
                    serde_json::json!({
                        "addresses": [format!("10.{}.{}.{}", svc / 250, svc % 250, p + 1)],
                        "conditions": {"ready": p != 9 || ready_last, "serving": p != 9 || ready_last, "terminating": false},
                        "targetRef": {"kind": "Pod", "name": format!("svc-{svc}-{p}"), "namespace": "ns"},
                        "zone": "zone-a", "nodeName": format!("node-{}", p % 3),
                    })
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({"type": "MODIFIED", "object": {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("svc-{svc}-abcde"), "namespace": "ns", "resourceVersion": "5",
                    "labels": {"kubernetes.io/service-name": format!("svc-{svc}")}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": eps,
            }}))
            .unwrap()
        };
        let apply = |st: &mut EndpointState, bytes: &[u8]| {
            let ev: WatchEvent<EndpointSlice> = serde_json::from_slice(bytes).unwrap();
            let WatchEvent::Modified(slice) = ev else {
                panic!()
            };
            let (key, info) = SliceInfo::from_slice(&slice, st.interner()).unwrap();
            st.apply_slice(key, Some(info));
        };
        for svc in 0..services {
            st.apply_service(
                ObjKey::new("ns", &format!("svc-{svc}")),
                Some(ServiceInfo {
                    fqdn: format!("svc-{svc}.ns.svc.cluster.local").into(),
                    kind: ServiceKind::Eds,
                    ports: vec![ServicePort {
                        name: "http".into(),
                        port: 8080,
                    }],
                    family: Family::V4,
                }),
            );
            for p in 0..10 {
                let version = if p == 9 { "v2" } else { "v1" };
                let labels = st.intern_labels(
                    [
                        ("app".to_owned(), format!("svc-{svc}")),
                        ("version".to_owned(), version.to_owned()),
                    ]
                    .into(),
                );
                st.apply_pod(ObjKey::new("ns", &format!("svc-{svc}-{p}")), Some(labels));
            }
            apply(&mut st, &slice_json(svc, true));
        }
        st.flush(&mut publisher);
        let events = [slice_json(0, false), slice_json(0, true)];
        let start = std::time::Instant::now();
        for i in 0..updates {
            let ev: WatchEvent<EndpointSlice> = serde_json::from_slice(&events[i % 2]).unwrap();
            std::hint::black_box(ev);
        }
        let decode = start.elapsed() / updates as u32;
        let start = std::time::Instant::now();
        for i in 0..updates {
            apply(&mut st, &events[i % 2]);
            assert_eq!(st.flush(&mut Recorder::default()), 1);
        }
        let no_publish = start.elapsed() / updates as u32;
        let start = std::time::Instant::now();
        for i in 0..updates {
            apply(&mut st, &events[i % 2]);
            assert_eq!(st.flush(&mut publisher), 1);
        }
        let total = start.elapsed() / updates as u32;
        eprintln!(
            "  {services} services: JSON decode {decode:?}; + reduce, apply, endpoints built {no_publish:?}; + publish into the mesh {total:?}"
        );
        total
    }

    #[test]
    #[ignore = "benchmark: cargo test --release -p mesh-kube --lib endpoint_update_cost -- --ignored --nocapture"]
    fn endpoint_update_cost() {
        for services in [100, 10_000] {
            let mean = update_cost(services, 20_000);
            eprintln!("one endpoint update, {services} services x 10 pods: {mean:?} (decode + apply + publish)");
        }
    }

    #[test]
    fn endpoint_update_cost_smoke() {
        // The benchmark's code path, small, so it keeps compiling and working.
        assert!(update_cost(3, 10) < std::time::Duration::from_secs(1));
    }
}
