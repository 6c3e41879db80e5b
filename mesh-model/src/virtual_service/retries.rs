//! `retries` (T1-T4), with Istio's default policy when the block is absent.

use crate::checks::validate_duration;
use crate::diag::{Cx, Path};
use crate::policy::RetryPolicy;
use crate::raw;
use crate::retry_on::RetryOn;

/// T1-T4: the route's retry policy, Istio's default when the block is absent.
pub(crate) fn validate_retries(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    r: Option<&raw::HttpRetry>,
) -> RetryPolicy {
    let Some(r) = r else {
        return RetryPolicy::istio_default();
    };
    let mut policy = RetryPolicy::istio_default();
    policy.written = true;
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        cx.error(
            &p.key("attempts"),
            "attempts cannot be negative; use 0 to disable retries or a positive count",
        );
    }
    if attempts > i64::from(i32::MAX) {
        cx.error(
            &p.key("attempts"),
            "attempts is larger than the int32 field allows",
        );
    }
    policy.attempts = attempts.clamp(0, i64::from(i32::MAX)) as u32;
    if attempts == 0
        && (r.per_try_timeout.is_some()
            || r.retry_on.as_deref().is_some_and(|s| !s.is_empty())
            || r.retry_remote_localities.is_some())
    {
        cx.error(p, "http retry policy configured when attempts are set to 0 (disabled): remove perTryTimeout, retryOn and retryRemoteLocalities, or set attempts above 0");
    }
    policy.per_try_timeout =
        validate_duration(cx, &p.key("perTryTimeout"), r.per_try_timeout.as_deref());
    policy.backoff = validate_duration(cx, &p.key("backoff"), r.backoff.as_deref());
    policy.retry_remote_localities = r.retry_remote_localities;
    if r.retry_remote_localities == Some(true) && attempts > 0 {
        cx.warn(
            &p.key("retryRemoteLocalities"),
            "retryRemoteLocalities is validated but not applied by this library: it steers retries to other localities under locality-prioritised load balancing, which this library does not do; retries pick from every endpoint of the cluster",
        );
    }
    policy.retry_ignore_previous_hosts = r.retry_ignore_previous_hosts;
    if let Some(s) = r.retry_on.as_deref().filter(|s| !s.is_empty()) {
        match s.parse::<RetryOn>() {
            Ok(on) => {
                policy.retry_on = on;
                policy.retry_on_written = true;
            }
            Err(e) => cx.error(&p.key("retryOn"), e.to_string()),
        }
    }
    policy
}
