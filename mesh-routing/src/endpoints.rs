//! Endpoints: where a cluster's traffic can go, with labels for subsets.
//!
//! The route table keeps a [`StaticEndpoints`] registry filled from `ServiceEntry` `STATIC`
//! endpoints. Other discovery sources (Kubernetes EndpointSlices, DNS) implement
//! [`EndpointSource`] and use [`select_subset`] and the [`lb`](crate::lb) functions the same way.
//!
//! ```
//! use mesh_routing::endpoints::{select_subset, Endpoint, EndpointSource, Labels, StaticEndpoints};
//!
//! let mut reg = StaticEndpoints::new();
//! reg.add("api.default.svc.cluster.local", Endpoint::new("10.0.0.1").with_label("version", "v1"));
//! reg.add("api.default.svc.cluster.local", Endpoint::new("10.0.0.2").with_label("version", "v2"));
//! let all = reg.endpoints("api.default.svc.cluster.local").unwrap();
//! let v2: Labels = [("version".to_owned(), "v2".to_owned())].into();
//! assert_eq!(select_subset(all, &v2), vec![1]);
//! ```

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

/// Labels of a workload or an endpoint.
pub type Labels = BTreeMap<String, String>;

/// One upstream endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    address: Box<str>,
    weight: u32,
    labels: Labels,
    /// (service port, endpoint port) pairs, from ServiceEntry endpoint `ports`.
    ports: Vec<(u16, u16)>,
}

impl Endpoint {
    /// An endpoint at `address` (an IP or a host name), weight 1, no labels, listening on the
    /// service ports themselves.
    pub fn new(address: &str) -> Self {
        Endpoint {
            address: address.into(),
            weight: 1,
            labels: Labels::new(),
            ports: Vec::new(),
        }
    }

    /// Traffic for `service_port` goes to `endpoint_port` on this endpoint.
    #[must_use]
    pub fn with_port_mapping(mut self, service_port: u16, endpoint_port: u16) -> Self {
        self.ports.retain(|(s, _)| *s != service_port);
        self.ports.push((service_port, endpoint_port));
        self
    }

    /// The port to connect to for a request to `service_port`.
    pub fn port_for(&self, service_port: u16) -> u16 {
        self.ports
            .iter()
            .find(|(s, _)| *s == service_port)
            .map_or(service_port, |(_, e)| *e)
    }

    /// Set the load-balancing weight (0 is treated as 1, as Envoy does for missing weights).
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// Add a label.
    #[must_use]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Replace the labels.
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// The address to connect to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The load-balancing weight (≥ 1).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The endpoint's labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
}

/// A source of endpoints per host (FQDN). Implementations hold a snapshot; the route table
/// and the load balancers only read it.
pub trait EndpointSource {
    /// The endpoints of `host`, or `None` if the source knows nothing about it (the client
    /// then resolves the host name itself).
    fn endpoints(&self, host: &str) -> Option<&[Endpoint]>;
}

/// A fixed registry of endpoints, e.g. from `ServiceEntry` `STATIC` endpoints.
#[derive(Debug, Clone, Default)]
pub struct StaticEndpoints {
    by_host: FxHashMap<Box<str>, Vec<Endpoint>>,
}

impl StaticEndpoints {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add an endpoint for `host` (lowercased).
    pub fn add(&mut self, host: &str, endpoint: Endpoint) {
        self.by_host
            .entry(host.to_ascii_lowercase().into_boxed_str())
            .or_default()
            .push(endpoint);
    }

    /// Number of hosts with endpoints.
    pub fn hosts(&self) -> usize {
        self.by_host.len()
    }
}

impl EndpointSource for StaticEndpoints {
    fn endpoints(&self, host: &str) -> Option<&[Endpoint]> {
        self.by_host.get(host).map(Vec::as_slice)
    }
}

/// Whether `labels` carries every entry of `selector` with the same value.
pub fn labels_match(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Indexes of the endpoints whose labels carry every label of the subset selector.
pub fn select_subset(endpoints: &[Endpoint], selector: &Labels) -> Vec<u32> {
    endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| labels_match(selector, &e.labels))
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect()
}

/// The endpoints of one cluster: all of a host's endpoints, or the subset selected from them.
/// Positions `0..len()` are the indexes the load balancers, the in-flight counts and the
/// ejected set use.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSet<'a> {
    all: &'a [Endpoint],
    selection: Option<&'a [u32]>,
}

impl<'a> EndpointSet<'a> {
    /// Every endpoint of `all`.
    pub fn all(all: &'a [Endpoint]) -> Self {
        EndpointSet {
            all,
            selection: None,
        }
    }

    /// The endpoints of `all` at `selection` (as returned by [`select_subset`]).
    pub fn subset(all: &'a [Endpoint], selection: &'a [u32]) -> Self {
        EndpointSet {
            all,
            selection: Some(selection),
        }
    }

    /// Number of endpoints in the set.
    pub fn len(&self) -> usize {
        self.selection.map_or(self.all.len(), <[u32]>::len)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The endpoint at position `i` of the set.
    pub fn get(&self, i: usize) -> Option<&'a Endpoint> {
        match self.selection {
            None => self.all.get(i),
            Some(sel) => sel.get(i).and_then(|&j| self.all.get(j as usize)),
        }
    }

    /// The endpoints in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a Endpoint> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}
