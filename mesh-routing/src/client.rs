//! [`ClientContext`]: the workload a table is compiled for.

use crate::endpoints::Labels;

/// Who is calling: the client workload the table is compiled for. Selectors
/// (`sourceLabels`, `sourceNamespace`, `gateways`), `exportTo` visibility, the DestinationRule
/// lookup order and the short host names a client may use all depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientContext {
    namespace: String,
    labels: Labels,
    gateway: String,
    root_namespace: String,
    ip: Option<std::net::IpAddr>,
    workload_name: String,
    cluster_id: String,
}

impl ClientContext {
    /// A sidecar-like client (gateway `mesh`) in `namespace`, without labels, with mesh root
    /// namespace `istio-system`.
    pub fn new(namespace: &str) -> Self {
        ClientContext {
            namespace: namespace.to_owned(),
            labels: Labels::new(),
            gateway: "mesh".to_owned(),
            root_namespace: mesh_model::DEFAULT_ROOT_NAMESPACE.to_owned(),
            ip: None,
            workload_name: String::new(),
            cluster_id: String::new(),
        }
    }

    /// Add a workload label.
    #[must_use]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Replace the workload labels.
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }

    /// Act as gateway `namespace/name` instead of `mesh`.
    #[must_use]
    pub fn with_gateway(mut self, gateway: &str) -> Self {
        self.gateway = gateway.to_owned();
        self
    }

    /// Use another mesh root namespace than `istio-system`.
    #[must_use]
    pub fn with_root_namespace(mut self, ns: &str) -> Self {
        self.root_namespace = ns.to_owned();
        self
    }

    /// The workload's own IP address (its pod IP, e.g. from the downward API's
    /// `status.podIP`): what Envoy sees as the downstream address of a request an application
    /// sends through its sidecar, and so the key of `consistentHash.useSourceIp`. Without it,
    /// a `useSourceIp` cluster has no hash key and picks a random endpoint per request, as
    /// Envoy does for a request without one.
    #[must_use]
    pub fn with_ip(mut self, ip: std::net::IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// The workload's own IP address, if set ([`with_ip`](Self::with_ip)).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.ip
    }

    /// Name the client's workload (a sidecar's `WORKLOAD_NAME`: the Deployment's name in
    /// Kubernetes). Telemetry only: Istio's `source_workload` label. Default empty, as a
    /// sidecar without it reports.
    #[must_use]
    pub fn with_workload_name(mut self, name: &str) -> Self {
        self.workload_name = name.to_owned();
        self
    }

    /// Name the cluster the client runs in (a sidecar's `CLUSTER_ID`, `Kubernetes` in a
    /// single-cluster install). Telemetry only: Istio's `source_cluster` label. Default empty.
    #[must_use]
    pub fn with_cluster_id(mut self, id: &str) -> Self {
        self.cluster_id = id.to_owned();
        self
    }

    /// The client's workload name (empty when not set).
    pub fn workload_name(&self) -> &str {
        &self.workload_name
    }

    /// The client's cluster id (empty when not set).
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The client's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The client's workload labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
    /// The gateway the client acts as (`mesh` for a sidecar-like client).
    pub fn gateway(&self) -> &str {
        &self.gateway
    }
    /// The mesh root namespace (`istio-system`).
    pub fn root_namespace(&self) -> &str {
        &self.root_namespace
    }
    /// The client as mesh-model's DestinationRule lookup sees it (namespace, labels, root
    /// namespace): [`mesh_model::applicable_destination_rules`] with this viewer answers
    /// which rules the table compiles for a host.
    pub fn viewer(&self) -> mesh_model::Viewer<'_> {
        mesh_model::Viewer::new(&self.namespace)
            .with_labels(&self.labels)
            .with_root_namespace(&self.root_namespace)
    }
}

impl Default for ClientContext {
    fn default() -> Self {
        Self::new("default")
    }
}
