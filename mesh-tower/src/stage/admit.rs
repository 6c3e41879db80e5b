//! Admission: the cluster's connection pool (Envoy's circuit breakers) gives the attempt a
//! permit, queues it as pending, or refuses it (overflow: 503 with `x-envoy-overloaded`,
//! never retried, never seen by outlier detection).

use std::sync::Arc;

use mesh_resilience::{Admission, PendingTicket, RequestPermit};

use crate::cluster::{ClusterState, Counters};
use crate::error::MeshError;

/// Asks `cluster`'s pool for a permit for one attempt: `Ok(Ok(permit))` at once,
/// `Ok(Err(ticket))` when the attempt must wait as pending ([`wait`]), `Err` on overflow.
pub(crate) fn try_admit(
    cluster: &ClusterState,
) -> Result<Result<RequestPermit, PendingTicket>, MeshError> {
    let admission = cluster.lock().pool.try_acquire_request();
    match admission {
        Ok(Admission::Ready(permit)) => Ok(Ok(permit)),
        Ok(Admission::Pending(ticket)) => Ok(Err(ticket)),
        Err(_) => {
            Counters::bump(&cluster.counters.overflows);
            Err(MeshError::overflow())
        }
    }
}

/// An attempt waiting as pending for a permit.
pub(crate) type Waiting =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RequestPermit, MeshError>> + Send>>;

/// Waits as pending until promoted, refused, or the route deadline passes (boxed: the rare
/// slow path stays out of the request future).
pub(crate) fn wait(
    cluster: Arc<ClusterState>,
    ticket: PendingTicket,
    deadline: Option<tokio::time::Instant>,
) -> Waiting {
    Box::pin(async move { wait_pending(&cluster, ticket, deadline).await })
}

/// Waits as pending until promoted, refused, or the route deadline passes.
async fn wait_pending(
    cluster: &ClusterState,
    ticket: PendingTicket,
    deadline: Option<tokio::time::Instant>,
) -> Result<RequestPermit, MeshError> {
    let mut pending = PendingGuard {
        cluster,
        ticket: Some(ticket),
    };
    loop {
        let notified = cluster.notify.notified();
        let woke = match deadline {
            Some(d) => tokio::time::timeout_at(d, notified).await.is_ok(),
            None => {
                notified.await;
                true
            }
        };
        if !woke {
            Counters::bump(&cluster.counters.timeouts);
            Counters::bump(&cluster.counters.route_timeouts);
            return Err(MeshError::route_timeout());
        }
        let Some(ticket) = pending.ticket.take() else {
            Counters::bump(&cluster.counters.overflows);
            return Err(MeshError::overflow());
        };
        let promoted = cluster.lock().pool.try_promote(ticket);
        match promoted {
            Ok(Admission::Ready(permit)) => return Ok(permit),
            Ok(Admission::Pending(t)) => pending.ticket = Some(t),
            Err(_) => {
                Counters::bump(&cluster.counters.overflows);
                return Err(MeshError::overflow());
            }
        }
    }
}

/// Cancels a pending admission if the request goes away while waiting.
struct PendingGuard<'a> {
    cluster: &'a ClusterState,
    ticket: Option<PendingTicket>,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            let wake = self.cluster.lock().pool.cancel_pending(t);
            if wake {
                self.cluster.notify.notify_one();
            }
        }
    }
}
