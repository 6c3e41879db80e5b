//! Endpoint pick: Envoy's host selection. The cluster's load balancer chooses among the
//! endpoints outlier detection has not ejected (all of them in panic), re-picking up to the
//! retry policy's host-selection attempts to avoid endpoints this request already tried.

use http::uri::Authority;
use mesh_resilience::rng::Rolls;
use mesh_resilience::RetryState;
use mesh_routing::endpoints::EndpointChoice;

use crate::cluster::{ClusterState, EndpointRef};
use crate::error::MeshError;

/// Where an attempt goes.
pub(crate) enum Target {
    /// A registered endpoint.
    Endpoint(EndpointRef),
    /// No source knows the cluster's host: this `host:port`, resolved by the client.
    Resolve(Authority),
}

impl Target {
    /// The authority to connect to.
    pub(crate) fn authority(&self) -> &Authority {
        match self {
            Target::Endpoint(e) => &e.authority,
            Target::Resolve(a) => a,
        }
    }
}

/// Picks the endpoint of an attempt to `cluster` and counts it as in flight there. A cluster
/// with no endpoint left fails with no healthy upstream (503 `UH`).
pub(crate) fn pick(
    cluster: &ClusterState,
    hash: Option<u64>,
    retry: &mut RetryState,
    rolls: &mut Rolls,
    now: std::time::Instant,
) -> Result<Target, MeshError> {
    let mut guard = cluster.lock();
    let inner = &mut *guard;
    if inner
        .outlier
        .as_ref()
        .is_some_and(|od| now >= od.next_sweep())
    {
        cluster.sweep(inner, now);
    }
    let outlier = inner.outlier.as_ref();
    let ejected = |i: usize| outlier.is_some_and(|od| !od.is_available(i));
    let mut chosen = None;
    for _ in 0..retry.host_picks() {
        match inner.endpoints.pick(
            &inner.balancer,
            &mut inner.lb,
            &inner.in_flight,
            &ejected,
            rolls.pick(),
            hash,
        ) {
            EndpointChoice::Endpoint { index, .. } => {
                chosen = Some(index);
                if !retry.should_reselect(index) {
                    break;
                }
            }
            EndpointChoice::Resolve(a) => return Ok(Target::Resolve(a.clone())),
            EndpointChoice::NoHealthyUpstream => break,
        }
    }
    let Some(index) = chosen else {
        return Err(MeshError::no_healthy_upstream());
    };
    retry.record_endpoint(index);
    let Some(endpoint) = inner.endpoints.get(index) else {
        return Err(MeshError::no_healthy_upstream());
    };
    let authority = endpoint.authority().clone();
    let series = inner.series.get(index).copied().unwrap_or(0);
    if let Some(n) = inner.in_flight.get_mut(index) {
        *n += 1;
    }
    if let Some(n) = inner.sent.get_mut(index) {
        *n += 1;
    }
    Ok(Target::Endpoint(EndpointRef {
        index,
        generation: inner.generation,
        authority,
        series,
    }))
}

/// Where a cluster with no registered endpoints goes: the destination host and port, except
/// that the request's own host name is kept when it names the same service (a short name or
/// another form of the FQDN), so that names resolvable where the client runs stay usable.
pub(crate) fn resolve_fallback(
    resolve: &Authority,
    requested_host: Option<&str>,
    requested: Option<&Authority>,
) -> Authority {
    let Some(requested_host) = requested_host.filter(|h| !h.is_empty()) else {
        return resolve.clone();
    };
    let host = resolve.host();
    let same = host.eq_ignore_ascii_case(requested_host)
        || host
            .get(..requested_host.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(requested_host))
            && host.as_bytes().get(requested_host.len()) == Some(&b'.');
    if !same {
        return resolve.clone();
    }
    let port = resolve.port_u16();
    if let Some(a) = requested.filter(|a| a.port_u16() == port) {
        return a.clone();
    }
    match port {
        Some(p) => {
            Authority::try_from(format!("{requested_host}:{p}")).unwrap_or_else(|_| resolve.clone())
        }
        None => resolve.clone(),
    }
}
