//! Retry budgets.

use crate::diag::{Cx, Path};
use crate::{raw, Duration};

/// Retry budget: `percent` of active requests may be retries, at least `min_retry_concurrency`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    pub(crate) percent: f64,
    pub(crate) min_retry_concurrency: u32,
}

impl RetryBudget {
    /// Share of active requests, percent (default 20).
    pub fn percent(&self) -> f64 {
        self.percent
    }
    /// Retries always allowed (default 3).
    pub fn min_retry_concurrency(&self) -> u32 {
        self.min_retry_concurrency
    }
}

/// The `retryBudget` block: percent in 0..=100, a non-negative minimum, a valid interval.
pub(crate) fn validate_retry_budget(
    cx: &mut Cx<'_>,
    bp: &Path<'_>,
    rb: &raw::RetryBudget,
) -> RetryBudget {
    let percent = rb.percent.unwrap_or(20.0);
    if !(0.0..=100.0).contains(&percent) {
        cx.error(
            &bp.key("percent").key("value"),
            format!("retry budget percent {percent} must be in range [0, 100]"),
        );
    }
    let min = rb.min_retry_concurrency.unwrap_or(3);
    if min < 0 || min > i64::from(u32::MAX) {
        cx.error(
            &bp.key("minRetryConcurrency"),
            "minRetryConcurrency must be between 0 and 2^32-1",
        );
    }
    if let Some(s) = &rb.budget_interval {
        if let Err(e) = Duration::parse_unbounded(s) {
            cx.error(&bp.key("budgetInterval"), e.to_string());
        }
    }
    RetryBudget {
        percent: percent.clamp(0.0, 100.0),
        min_retry_concurrency: min.clamp(0, i64::from(u32::MAX)) as u32,
    }
}
