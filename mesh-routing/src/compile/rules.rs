//! The policy merge (§3.7, §3.8) of the DestinationRules that apply to a destination (found
//! by mesh-model's lookup, §3.1): the [`ClusterPolicy`] of each (subset, port), with the
//! resilience forms converted once.

use mesh_model::{DestinationRule, HashKey, HashTable, SimpleLb};

use super::id;
use super::policy;
use crate::cluster::ClusterPolicy;
use crate::lb::{CookieHash, HashPolicy, LoadBalancer};

/// The policy of (subset, port) from the rules that apply to a host (§3.8). The first rule
/// with a top-level policy gives the base; the first rule declaring the subset gives the
/// subset's policy.
pub(crate) fn merged_policy(
    drs: &[&DestinationRule],
    subset: Option<&str>,
    port: Option<u16>,
) -> Result<ClusterPolicy, String> {
    let Some(first) = drs.first() else {
        return ClusterPolicy::default().resolved();
    };
    let policy_dr = drs
        .iter()
        .find(|dr| dr.traffic_policy().is_some())
        .unwrap_or(first);
    let subset_dr = subset.and_then(|s| drs.iter().find(|dr| dr.subset(s).is_some()));
    let base = policy_dr.effective_policy(None, port);
    let mut out = ClusterPolicy::from_traffic_policy(&base, id(policy_dr.meta()));
    let (Some(s), Some(sdr)) = (subset, subset_dr) else {
        return out.resolved();
    };
    let Some(sp) = sdr.subset(s).and_then(|x| x.traffic_policy()) else {
        return out.resolved();
    };
    out.source = Some(if std::ptr::eq(*sdr, *policy_dr) {
        id(sdr.meta())
    } else {
        format!("{} + {}", id(policy_dr.meta()), id(sdr.meta()))
    });
    let port_entry = port.is_some_and(|p| sp.port_level().iter().any(|x| x.port() == p));
    if port_entry {
        // A subset port-level entry replaces all four blocks, set or not.
        let e = sdr.effective_policy(Some(s), port);
        out.settings = e.load_balancer().cloned();
        out.connection_pool = e.connection_pool().cloned();
        out.outlier_detection = e.outlier_detection().cloned();
        out.tls = e.tls().cloned();
    } else {
        if let Some(x) = sp.load_balancer() {
            out.settings = Some(x.clone());
        }
        if let Some(x) = sp.connection_pool() {
            out.connection_pool = Some(x.clone());
        }
        if let Some(x) = sp.outlier_detection() {
            out.outlier_detection = Some(x.clone());
        }
        if let Some(x) = sp.tls() {
            out.tls = Some(x.clone());
        }
    }
    if let Some(x) = sp.retry_budget() {
        out.retry_budget = Some(x.clone());
    }
    out.resolved()
}

impl ClusterPolicy {
    fn from_traffic_policy(tp: &mesh_model::TrafficPolicy, source: String) -> Self {
        ClusterPolicy {
            source: Some(source),
            settings: tp.load_balancer().cloned(),
            connection_pool: tp.connection_pool().cloned(),
            outlier_detection: tp.outlier_detection().cloned(),
            tls: tp.tls().cloned(),
            retry_budget: tp.retry_budget().cloned(),
            ..ClusterPolicy::default()
        }
    }

    /// Resolve the algorithm and hash policy from the settings.
    /// Resolves the algorithm and hash policy from the settings, and converts the connection
    /// pool and outlier detection for the resilience machines.
    fn resolved(mut self) -> Result<Self, String> {
        let (lb, hash) = match &self.settings {
            None => (LoadBalancer::LeastRequest, None),
            Some(mesh_model::LoadBalancer::Simple(s)) => (
                match s {
                    SimpleLb::LeastRequest => LoadBalancer::LeastRequest,
                    SimpleLb::RoundRobin => LoadBalancer::RoundRobin,
                    SimpleLb::Random => LoadBalancer::Random,
                    SimpleLb::Passthrough => LoadBalancer::Passthrough,
                },
                None,
            ),
            Some(mesh_model::LoadBalancer::ConsistentHash { key, table }) => {
                let lb = match *table {
                    HashTable::RingHash { minimum_ring_size } => {
                        LoadBalancer::RingHash { minimum_ring_size }
                    }
                    HashTable::Maglev { table_size } => LoadBalancer::Maglev { table_size },
                };
                let hash = match key {
                    HashKey::Header(h) => http::HeaderName::from_bytes(h.as_bytes())
                        .ok()
                        .map(HashPolicy::Header),
                    HashKey::Cookie { name, path, ttl } => Some(HashPolicy::Cookie(
                        CookieHash::new(name, path.as_deref(), *ttl),
                    )),
                    HashKey::SourceIp => Some(HashPolicy::SourceIp),
                    HashKey::QueryParameter(q) => {
                        Some(HashPolicy::QueryParameter(q.as_str().into()))
                    }
                };
                (lb, hash)
            }
        };
        self.load_balancer = lb;
        self.hash = hash;
        self.pool_limits =
            policy::pool_limits(self.connection_pool.as_ref(), self.retry_budget.as_ref())?;
        self.outlier = self
            .outlier_detection
            .as_ref()
            .map(policy::outlier_config)
            .transpose()?;
        Ok(self)
    }
}
