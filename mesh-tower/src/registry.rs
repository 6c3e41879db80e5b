//! The cluster registry: every [`ClusterState`] by name, and every host's endpoints as the
//! sources publish them. It outlives configurations: a reload finds the state of clusters
//! that still exist here, and an endpoint update reaches the clusters of its host without
//! recompiling any route.
//!
//! Sources are numbered in the order they register; the configuration's ServiceEntry
//! `STATIC` endpoints are source 0. When several sources know a host, the newest source's
//! endpoints are the host's (a discovery source added by the application overrides the
//! configuration's static entries).
//!
//! Cluster states are held weakly: a state lives as long as a compiled configuration (or a
//! request) uses it, so clusters a reload removed are freed after their last request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use mesh_resilience::RetryBudget;
use mesh_routing::endpoints::{Endpoint, EndpointSelector, EndpointSink};
use mesh_routing::{ClusterName, ClusterPolicy};

use crate::cluster::{lock, ClusterState};
use crate::telemetry::metrics::{ClusterMetrics, ServiceLabels, SourceLabels};

/// The number of a source of endpoints.
pub(crate) type SourceId = u32;

/// The configuration's own source: ServiceEntry `STATIC` endpoints.
pub(crate) const CONFIG_SOURCE: SourceId = 0;

#[derive(Debug, Default)]
struct HostEntry {
    /// Endpoints per source that knows the host; the last one wins.
    sources: BTreeMap<SourceId, Arc<[Endpoint]>>,
    /// The clusters of this host (any subset, any port).
    clusters: Vec<Weak<ClusterState>>,
}

impl HostEntry {
    fn effective(&self) -> Option<Arc<[Endpoint]>> {
        self.sources.values().next_back().cloned()
    }
}

#[derive(Debug, Default)]
struct Inner {
    clusters: HashMap<ClusterName, Weak<ClusterState>>,
    hosts: HashMap<Box<str>, HostEntry>,
    next_source: SourceId,
}

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    /// The retry budget of clusters whose DestinationRule sets none
    /// ([`MeshBuilder::retry_budget`](crate::MeshBuilder::retry_budget)).
    default_budget: Option<RetryBudget>,
    /// The client's metric labels, shared by every cluster's series.
    source: Arc<SourceLabels>,
}

impl Registry {
    pub(crate) fn new(default_budget: Option<RetryBudget>, source: Arc<SourceLabels>) -> Self {
        Registry {
            inner: Mutex::new(Inner {
                next_source: CONFIG_SOURCE + 1,
                ..Inner::default()
            }),
            default_budget,
            source,
        }
    }

    /// A new source's number (higher than every earlier one).
    pub(crate) fn register_source(&self) -> SourceId {
        let mut inner = lock(&self.inner);
        let id = inner.next_source;
        inner.next_source += 1;
        id
    }

    /// The state of cluster `name`: the existing one, reconfigured with `policy` and
    /// `selector`, or a new one (whose metrics name `service`).
    pub(crate) fn cluster(
        &self,
        name: ClusterName,
        policy: &ClusterPolicy,
        selector: EndpointSelector,
        now: Instant,
        service: ServiceLabels,
    ) -> Arc<ClusterState> {
        let mut inner = lock(&self.inner);
        let host_endpoints = inner
            .hosts
            .get(selector.host())
            .and_then(HostEntry::effective);
        if let Some(state) = inner.clusters.get(&name).and_then(Weak::upgrade) {
            drop(inner);
            state.reconfigure(
                policy,
                self.default_budget,
                selector,
                host_endpoints.as_deref(),
                now,
            );
            return state;
        }
        let host: Box<str> = selector.host().into();
        let state = Arc::new(ClusterState::new(
            name.clone(),
            policy,
            self.default_budget,
            selector,
            host_endpoints.as_deref(),
            now,
            ClusterMetrics::new(Arc::clone(&self.source), service),
        ));
        inner.clusters.insert(name, Arc::downgrade(&state));
        let entry = inner.hosts.entry(host).or_default();
        entry.clusters.retain(|c| c.strong_count() > 0);
        entry.clusters.push(Arc::downgrade(&state));
        state
    }

    /// Source `source` now says `host` has `endpoints` (`None`: it no longer knows the host).
    /// The host's clusters select their endpoints again if the host's effective endpoints
    /// changed.
    pub(crate) fn publish(&self, source: SourceId, host: &str, endpoints: Option<Arc<[Endpoint]>>) {
        let host = host.to_ascii_lowercase();
        let (effective, clusters) = {
            let mut inner = lock(&self.inner);
            let entry = inner.hosts.entry(host.as_str().into()).or_default();
            let before = entry.effective();
            match endpoints {
                Some(list) => {
                    entry.sources.insert(source, list);
                }
                None => {
                    entry.sources.remove(&source);
                }
            }
            let after = entry.effective();
            let unchanged = match (&before, &after) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a[..] == b[..],
                (None, None) => true,
                _ => false,
            };
            entry.clusters.retain(|c| c.strong_count() > 0);
            let clusters: Vec<Arc<ClusterState>> =
                entry.clusters.iter().filter_map(Weak::upgrade).collect();
            if entry.sources.is_empty() && entry.clusters.is_empty() {
                inner.hosts.remove(host.as_str());
            }
            if unchanged {
                return;
            }
            (after, clusters)
        };
        for c in clusters {
            c.update_endpoints(effective.as_deref());
        }
    }

    /// Replaces everything `source` publishes with `hosts` (hosts it published before and
    /// not now are removed).
    pub(crate) fn publish_all(&self, source: SourceId, hosts: Vec<(String, Arc<[Endpoint]>)>) {
        let stale: Vec<String> = {
            let inner = lock(&self.inner);
            inner
                .hosts
                .iter()
                .filter(|(h, e)| {
                    e.sources.contains_key(&source) && !hosts.iter().any(|(n, _)| n == &***h)
                })
                .map(|(h, _)| h.to_string())
                .collect()
        };
        for host in stale {
            self.publish(source, &host, None);
        }
        for (host, list) in hosts {
            self.publish(source, &host, Some(list));
        }
    }

    /// Forgets clusters no configuration or request uses any more.
    pub(crate) fn prune(&self) {
        let mut inner = lock(&self.inner);
        inner.clusters.retain(|_, c| c.strong_count() > 0);
        inner.hosts.retain(|_, e| {
            e.clusters.retain(|c| c.strong_count() > 0);
            !e.sources.is_empty() || !e.clusters.is_empty()
        });
    }

    /// Number of cluster states alive.
    pub(crate) fn live_clusters(&self) -> usize {
        lock(&self.inner)
            .clusters
            .values()
            .filter(|c| c.strong_count() > 0)
            .count()
    }
}

/// Publishes one source's endpoints into a [`Registry`] (the [`EndpointSink`] of
/// `mesh-routing`, for sources written against it).
#[derive(Debug, Clone)]
pub(crate) struct SourceSink {
    pub(crate) registry: Arc<Registry>,
    pub(crate) source: SourceId,
}

impl EndpointSink for SourceSink {
    fn set_endpoints(&mut self, host: &str, endpoints: Vec<Endpoint>) {
        self.registry
            .publish(self.source, host, Some(endpoints.into()));
    }

    fn remove_host(&mut self, host: &str) {
        self.registry.publish(self.source, host, None);
    }
}
