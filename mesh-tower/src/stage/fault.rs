//! Fault injection: Envoy's fault filter, before the router. A delay sleeps on tokio's clock
//! (the route timeout starts after it); an abort is a local reply that is never retried and
//! never reaches a pool or the outlier detector.

use std::time::Duration;

use http::Response;
use mesh_resilience::rng::Rolls;
use mesh_resilience::{AbortKind, FaultAction, FaultInjection};

use crate::body::MeshBody;
use crate::stage::reply;
use crate::telemetry::{ResponseFlag, ResponseFlags};

/// What the route's fault does to one request.
pub(crate) enum Fault {
    /// Nothing: the request goes on.
    None,
    /// Wait this long, then abort (or, without an abort, go on).
    Delay(Duration, Option<AbortKind>),
    /// Answer with this abort now.
    Abort(AbortKind),
}

/// Rolls the route's fault, if any. Draws two rolls (delay, abort) only when the route has
/// a fault. Sets `DI` in `flags` for a delay.
pub(crate) fn decide(
    fault: Option<&FaultInjection>,
    rolls: &mut Rolls,
    flags: &mut ResponseFlags,
) -> Fault {
    let Some(fault) = fault else {
        return Fault::None;
    };
    let (delay, abort) = match fault.decide(rolls.decide(), rolls.decide()) {
        FaultAction::None => return Fault::None,
        FaultAction::Delay(d) => (d, None),
        FaultAction::Abort(kind) => return Fault::Abort(kind),
        FaultAction::DelayThenAbort { delay, abort } => (delay, Some(abort)),
    };
    tracing::debug!(delay_ms = delay.as_millis() as u64, "fault delay");
    flags.insert(ResponseFlag::DelayInjected);
    Fault::Delay(delay, abort)
}

/// The abort's local reply, with `FI` (and the flags set before it) attached.
pub(crate) fn abort<RB>(kind: AbortKind, flags: &mut ResponseFlags) -> Response<MeshBody<RB>> {
    let mut res = reply::abort(kind);
    flags.insert(ResponseFlag::FaultInjected);
    flags.attach(&mut res);
    res
}
