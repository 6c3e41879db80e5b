//! Mirroring: fire-and-forget copies of the request to the route's mirror clusters, as
//! Envoy's shadows. A copy never delays or fails the request: it is spawned on the current
//! runtime, bounded by the route timeout, limited to
//! [`MeshBuilder::max_concurrent_mirrors`](crate::MeshBuilder::max_concurrent_mirrors) in
//! flight, its response dropped; one that cannot be sent is dropped and counted.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use mesh_resilience::rng::Rolls;
use mesh_routing::endpoints::EndpointChoice;
use mesh_routing::RouteDecision;
use tower::ServiceExt;
use tracing::Instrument;

use crate::cluster::Counters;
use crate::driver::{CallerBody, Client, ClientBody};
use crate::shared::Shared;
use crate::stage::attempt::Template;
use crate::stage::route::Forward;
use crate::BoxError;

/// Sends a copy of the request to every mirror of the route whose percentage roll passes.
/// A route without mirrors (the common case) costs one check here, inlined into the driver.
#[inline(always)]
pub(crate) fn spawn_copies<S, B, RB>(
    shared: &Shared,
    fwd: &Forward,
    decision: &RouteDecision<'_>,
    template: &Template<B>,
    client: &S,
    rolls: &mut Rolls,
) where
    S: Client<B, RB>,
    B: CallerBody,
    RB: ClientBody,
{
    if decision.mirrors().len() > 0 {
        spawn_each(shared, fwd, decision, template, client, rolls);
    }
}

/// [`spawn_copies`] for a route with mirrors.
fn spawn_each<S, B, RB>(
    shared: &Shared,
    fwd: &Forward,
    decision: &RouteDecision<'_>,
    template: &Template<B>,
    client: &S,
    rolls: &mut Rolls,
) where
    S: Client<B, RB>,
    B: CallerBody,
    RB: ClientBody,
{
    // Copies end with the route timeout, as Envoy's shadows do; without one, after the stream
    // idle timeout or the fallback, so a target that never answers cannot hold mirror slots
    // for good.
    let route_timeout = decision
        .timeout()
        .or(shared.settings.stream_idle_timeout)
        .unwrap_or(crate::MIRROR_TIMEOUT_FALLBACK);
    for target in decision.mirrors() {
        if !target.policy.should_mirror(rolls.decide()) {
            continue;
        }
        let dropped = || shared.mirrors_dropped.fetch_add(1, Relaxed);
        if !template.body.is_replayable() {
            dropped();
            continue;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Not polled inside a tokio runtime: nowhere to run the copy.
            dropped();
            continue;
        };
        let Ok(permit) = Arc::clone(&shared.mirrors).try_acquire_owned() else {
            dropped();
            tracing::debug!("mirror dropped: too many mirrors in flight");
            continue;
        };
        let cluster = fwd.compiled.cluster(target.cluster, &shared.registry);
        let to = {
            let mut guard = cluster.lock();
            let inner = &mut *guard;
            let outlier = inner.outlier.as_ref();
            let ejected = |i: usize| outlier.is_some_and(|od| !od.is_available(i));
            match inner.endpoints.pick(
                &inner.balancer,
                &mut inner.lb,
                &inner.in_flight,
                &ejected,
                rolls.pick(),
                None,
            ) {
                EndpointChoice::Endpoint { index, endpoint } => {
                    let a = endpoint.authority().clone();
                    if let Some(n) = inner.sent.get_mut(index) {
                        *n += 1;
                    }
                    Some(a)
                }
                EndpointChoice::Resolve(a) => Some(a.clone()),
                EndpointChoice::NoHealthyUpstream => None,
            }
        };
        let Some(to) = to else {
            dropped();
            continue;
        };
        Counters::bump(&cluster.counters.requests);
        let req = template.shadow(&to, &cluster);
        shared.mirrors_sent.fetch_add(1, Relaxed);
        let client = client.clone();
        runtime.spawn(
            async move {
                let _permit = permit;
                let call = client.oneshot(req);
                match tokio::time::timeout(route_timeout, call).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        let e: BoxError = e.into();
                        tracing::debug!(error = %e, "mirror request failed");
                    }
                    Err(_) => tracing::debug!("mirror request timed out"),
                }
            }
            .instrument(tracing::debug_span!("mesh.mirror")),
        );
    }
}
