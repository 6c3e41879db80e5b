//! After an attempt: count it, feed its outcome to the cluster's outlier detector, and ask
//! the retry state whether to try again.

use std::sync::Arc;
use std::time::Instant;

use mesh_resilience::{
    ConnectionPool, Outcome, OutlierEvent, PoolLimits, RetryDecision, RetryPolicy, RetryState,
};

use crate::cluster::{ClusterState, Counters};
use crate::stage::pick::Target;

/// A request's retry state, with the cluster whose pool counts its retries (a scratch pool
/// for a passthrough to a host no service names). Dropping it gives back the retry slot the
/// request holds, if any.
pub(crate) struct Retry {
    pub(crate) state: RetryState,
    cluster: Option<Arc<ClusterState>>,
    scratch: Option<ConnectionPool>,
}

impl Retry {
    pub(crate) fn new(
        policy: &RetryPolicy,
        start: Instant,
        cluster: Option<Arc<ClusterState>>,
    ) -> Self {
        Retry {
            state: RetryState::new(policy, start),
            cluster,
            scratch: None,
        }
    }

    /// Records `outcome` of an attempt sent to `target` (counters; outlier detection for a
    /// registered endpoint) and returns the retry decision.
    pub(crate) fn decide(
        &mut self,
        target: Option<&Target>,
        outcome: Outcome,
        now: Instant,
        roll: u64,
    ) -> RetryDecision {
        let Some(cs) = &self.cluster else {
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

    /// Gives the retry slot back now (the request ends without the retry it was granted).
    pub(crate) fn give_back(&mut self) {
        if !self.state.holds_retry_permit() {
            return;
        }
        match (&self.cluster, self.scratch.as_mut()) {
            (Some(cs), _) => self.state.release(&mut cs.lock().pool),
            (None, Some(pool)) => self.state.release(pool),
            (None, None) => {}
        }
    }
}

impl Drop for Retry {
    fn drop(&mut self) {
        self.give_back();
    }
}
