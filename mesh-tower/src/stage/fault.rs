//! Fault injection: Envoy's fault filter, before the router. A delay sleeps on tokio's clock
//! (the route timeout starts after it); an abort is a local reply that is never retried and
//! never reaches a pool or the outlier detector.

use http::Response;
use mesh_resilience::rng::Rolls;
use mesh_resilience::{FaultAction, FaultInjection};

use crate::body::MeshBody;
use crate::stage::reply;
use crate::telemetry::{ResponseFlag, ResponseFlags};

/// Applies the route's fault, if any: `Some(reply)` when the request is aborted. Draws two
/// rolls (delay, abort) only when the route has a fault. Sets `DI` in `flags` for a delay and
/// `FI` for an abort (the abort's reply carries them).
pub(crate) async fn inject<RB>(
    fault: Option<&FaultInjection>,
    rolls: &mut Rolls,
    flags: &mut ResponseFlags,
) -> Option<Response<MeshBody<RB>>> {
    let fault = fault?;
    let (delay, abort) = match fault.decide(rolls.decide(), rolls.decide()) {
        FaultAction::None => return None,
        FaultAction::Delay(d) => (Some(d), None),
        FaultAction::Abort(kind) => (None, Some(kind)),
        FaultAction::DelayThenAbort { delay, abort } => (Some(delay), Some(abort)),
    };
    if let Some(d) = delay {
        tracing::debug!(delay_ms = d.as_millis() as u64, "fault delay");
        flags.insert(ResponseFlag::DelayInjected);
        // Boxed: the rare path stays out of the request future's size.
        Box::pin(tokio::time::sleep(d)).await;
    }
    let mut res = reply::abort(abort?);
    flags.insert(ResponseFlag::FaultInjected);
    flags.attach(&mut res);
    Some(res)
}
