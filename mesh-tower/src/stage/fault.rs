//! Fault injection: Envoy's fault filter, before the router. A delay sleeps on tokio's clock
//! (the route timeout starts after it); an abort is a local reply that is never retried and
//! never reaches a pool or the outlier detector.

use http::Response;
use mesh_resilience::rng::Rolls;
use mesh_resilience::{FaultAction, FaultInjection};

use crate::body::MeshBody;
use crate::stage::reply;

/// Applies the route's fault, if any: `Some(reply)` when the request is aborted. Draws two
/// rolls (delay, abort) only when the route has a fault.
pub(crate) async fn inject<RB>(
    fault: Option<&FaultInjection>,
    rolls: &mut Rolls,
) -> Option<Response<MeshBody<RB>>> {
    let fault = fault?;
    match fault.decide(rolls.decide(), rolls.decide()) {
        FaultAction::None => None,
        FaultAction::Delay(d) => {
            tracing::debug!(delay_ms = d.as_millis() as u64, "fault delay");
            // Boxed: the rare path stays out of the request future's size.
            Box::pin(tokio::time::sleep(d)).await;
            None
        }
        FaultAction::Abort(kind) => Some(reply::abort(kind)),
        FaultAction::DelayThenAbort { delay, abort } => {
            tracing::debug!(delay_ms = delay.as_millis() as u64, "fault delay");
            Box::pin(tokio::time::sleep(delay)).await;
            Some(reply::abort(abort))
        }
    }
}
