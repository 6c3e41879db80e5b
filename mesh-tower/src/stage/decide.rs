//! After an attempt: count it, feed its outcome to the cluster's outlier detector, and ask
//! the retry state whether to try again.

use std::time::Instant;

use mesh_resilience::{
    ConnectionPool, Outcome, OutlierEvent, PoolLimits, RetryDecision, RetryPolicy, RetryState,
};

use crate::cluster::{ClusterState, Counters};
use crate::stage::pick::Target;

/// A request's retry state. Its retries are counted by the pool of the request's cluster,
/// which each call names (a scratch pool for a passthrough to a host no service names). The
/// request gives back the retry slot it holds, if any, when it ends ([`give_back`]).
///
/// [`give_back`]: Retry::give_back
pub(crate) struct Retry {
    pub(crate) state: RetryState,
    scratch: Option<ConnectionPool>,
}

impl Retry {
    pub(crate) fn new(policy: &RetryPolicy, start: Instant) -> Self {
        Retry {
            state: RetryState::new(policy, start),
            scratch: None,
        }
    }

    /// Records `outcome` of an attempt sent to `target` (counters; outlier detection for a
    /// registered endpoint) and returns the retry decision.
    pub(crate) fn decide(
        &mut self,
        cluster: Option<&ClusterState>,
        target: Option<&Target>,
        outcome: Outcome,
        now: Instant,
        roll: u64,
    ) -> RetryDecision {
        let Some(cs) = cluster else {
            let pool = self
                .scratch
                .get_or_insert_with(|| ConnectionPool::new(PoolLimits::default()));
            return self.state.on_outcome(outcome, now, roll, pool);
        };
        let c = &cs.counters;
        Counters::bump(if outcome.is_failure() {
            &c.failures
        } else {
            &c.successes
        });
        if outcome == Outcome::Timeout {
            Counters::bump(&c.timeouts);
        }
        let mut guard = cs.lock();
        let inner = &mut *guard;
        cs.sweep(inner, now);
        let mut ejected = None;
        if let Some(Target::Endpoint(e)) = target {
            if let Some(index) = inner.index_of(e) {
                let event = inner
                    .outlier
                    .as_mut()
                    .and_then(|od| od.record(index, outcome, now));
                if let Some(OutlierEvent::Ejected { endpoint, .. }) = &event {
                    ejected = inner
                        .endpoints
                        .get(*endpoint)
                        .map(|e| e.authority().clone());
                }
                cs.log_outlier(inner, event);
            }
        }
        let decision = self.state.on_outcome(outcome, now, roll, &mut inner.pool);
        drop(guard);
        if let Some(endpoint) = ejected {
            // No new request goes there: its connections drain.
            cs.drain_endpoint(&endpoint);
        }
        decision
    }

    /// Gives the retry slot back to `cluster`'s pool now (the request ends, or ends without
    /// the retry it was granted).
    pub(crate) fn give_back(&mut self, cluster: Option<&ClusterState>) {
        if !self.state.holds_retry_permit() {
            return;
        }
        match (cluster, self.scratch.as_mut()) {
            (Some(cs), _) => self.state.release(&mut cs.lock().pool),
            (None, Some(pool)) => self.state.release(pool),
            (None, None) => {}
        }
    }
}
