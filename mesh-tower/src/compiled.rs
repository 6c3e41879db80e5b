//! [`Compiled`]: one configuration as the mesh runs it: the route table and the state of
//! every cluster it names, found by [`ClusterId`] without hashing a string.

use std::sync::{Arc, PoisonError, RwLock};

use mesh_model::MeshConfig;
use mesh_routing::{ClientContext, ClusterId, RouteTable};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::cluster::ClusterState;
use crate::files::BuildError;
use crate::registry::{Registry, CONFIG_SOURCE};
use crate::telemetry::metrics::ServiceLabels;

/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) table: RouteTable,
    /// VirtualServices, DestinationRules and ServiceEntries of the configuration.
    pub(crate) resources: usize,
    /// The clusters whose port is known at compile time, created with the table.
    known: FxHashMap<ClusterId, Arc<ClusterState>>,
    /// Clusters whose port comes from requests, created on first use.
    dynamic: RwLock<FxHashMap<ClusterId, Arc<ClusterState>>>,
    /// Hosts a ServiceEntry declares (Istio names their services by host in metrics).
    service_entry_hosts: FxHashSet<Box<str>>,
}

impl Compiled {
    /// Compiles `config` for `client`, publishes its ServiceEntry `STATIC` endpoints as the
    /// configuration's source, and creates (or picks up from `registry`) the state of every
    /// cluster whose port is known. Nothing in `registry` changes unless the table compiles.
    pub(crate) fn build(
        config: &MeshConfig,
        client: &ClientContext,
        registry: &Registry,
    ) -> Result<Self, BuildError> {
        let table = RouteTable::compile(config, client).map_err(BuildError::Compile)?;
        let hosts = table
            .static_endpoints()
            .iter()
            .map(|(h, eps)| (h.to_owned(), eps.into()))
            .collect();
        registry.publish_all(CONFIG_SOURCE, hosts);
        let now = crate::time::now().into_std();
        let service_entry_hosts: FxHashSet<Box<str>> = config
            .service_entries()
            .iter()
            .flat_map(|se| se.hosts())
            .map(|h| h.to_ascii_lowercase().into())
            .collect();
        let service = |id: ClusterId| {
            let host = table.cluster_key(id).host;
            ServiceLabels::service(host, service_entry_hosts.contains(host))
        };
        let known = table
            .known_clusters()
            .into_iter()
            .map(|id| {
                let state = registry.cluster(
                    table.cluster_name(id),
                    table.policy(id),
                    table.selector(id),
                    now,
                    service(id),
                );
                (id, state)
            })
            .collect();
        Ok(Compiled {
            table,
            resources: config.virtual_services().len()
                + config.destination_rules().len()
                + config.service_entries().len(),
            known,
            dynamic: RwLock::new(FxHashMap::default()),
            service_entry_hosts,
        })
    }

    /// The state of cluster `id` of this table.
    pub(crate) fn cluster(&self, id: ClusterId, registry: &Registry) -> Arc<ClusterState> {
        if let Some(s) = self.known.get(&id) {
            return Arc::clone(s);
        }
        if let Some(s) = self
            .dynamic
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Arc::clone(s);
        }
        let mut dynamic = self.dynamic.write().unwrap_or_else(PoisonError::into_inner);
        let state = dynamic.entry(id).or_insert_with(|| {
            let host = self.table.cluster_key(id).host;
            registry.cluster(
                self.table.cluster_name(id),
                self.table.policy(id),
                self.table.selector(id),
                crate::time::now().into_std(),
                ServiceLabels::service(host, self.service_entry_hosts.contains(host)),
            )
        });
        Arc::clone(state)
    }

    /// Every cluster state of this table (known and created so far).
    pub(crate) fn states(&self) -> Vec<Arc<ClusterState>> {
        let mut out: Vec<Arc<ClusterState>> = self.known.values().cloned().collect();
        out.extend(
            self.dynamic
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .cloned(),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
