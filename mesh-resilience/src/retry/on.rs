//! `retryOn` evaluated against an [`Outcome`]: Envoy's `wouldRetryFromHeaders` and
//! `wouldRetryFromReset`. The set itself ([`RetryOn`]) is `mesh-model`'s.

use mesh_model::{GrpcStatus, RetryCondition, RetryOn};

use crate::outcome::{is_gateway_code, Outcome};

/// Envoy's verdict for `outcome` under `on`, before retry counts, budgets and deadlines.
pub(crate) fn verdict(on: &RetryOn, outcome: &Outcome) -> Verdict {
    let has = |c: RetryCondition| on.contains(c);
    match *outcome {
        Outcome::Response {
            status,
            grpc_status,
            rate_limited,
        } => {
            // wouldRetryFromHeaders
            if rate_limited {
                return if has(RetryCondition::EnvoyRateLimited) {
                    Verdict::Backoff
                } else {
                    Verdict::No
                };
            }
            let code = status.as_u16();
            if has(RetryCondition::FiveXx) && status.is_server_error() {
                return Verdict::Backoff;
            }
            if has(RetryCondition::GatewayError) && is_gateway_code(code) {
                return Verdict::Backoff;
            }
            if has(RetryCondition::Retriable4xx) && code == 409 {
                return Verdict::Backoff;
            }
            if has(RetryCondition::RetriableStatusCodes) && on.status_codes().contains(code) {
                // 425 Too Early: retried immediately with early data disabled, when the
                // downstream request was not itself early data (never the case here).
                return if code == 425 {
                    Verdict::Immediately
                } else {
                    Verdict::Backoff
                };
            }
            // retriable-headers: no header matchers can be configured through Istio.
            if let Some(g) = grpc_status {
                let cond = match g {
                    GrpcStatus::Cancelled => Some(RetryCondition::Cancelled),
                    GrpcStatus::DeadlineExceeded => Some(RetryCondition::DeadlineExceeded),
                    GrpcStatus::ResourceExhausted => Some(RetryCondition::ResourceExhausted),
                    GrpcStatus::Unavailable => Some(RetryCondition::Unavailable),
                    GrpcStatus::Internal => Some(RetryCondition::Internal),
                    _ => None,
                };
                if cond.is_some_and(has) {
                    return Verdict::Backoff;
                }
            }
            Verdict::No
        }
        Outcome::Overflow => Verdict::No,
        _ => {
            // wouldRetryFromReset
            if matches!(outcome, Outcome::ConnectFailure) && has(RetryCondition::ConnectFailure) {
                return Verdict::Backoff;
            }
            if matches!(outcome, Outcome::Reset { http3: true, .. })
                && has(RetryCondition::Http3PostConnectFailure)
            {
                return Verdict::Immediately;
            }
            if has(RetryCondition::ResetBeforeRequest) && !outcome.request_started() {
                return Verdict::Backoff;
            }
            if has(RetryCondition::FiveXx)
                || has(RetryCondition::GatewayError)
                || has(RetryCondition::Reset)
            {
                return Verdict::Backoff;
            }
            if matches!(outcome, Outcome::RefusedStream) && has(RetryCondition::RefusedStream) {
                return Verdict::Backoff;
            }
            Verdict::No
        }
    }
}

/// Whether Envoy would retry `outcome` under `on` (ignoring retry counts, budgets and
/// deadlines, which [`RetryState`](crate::RetryState) adds).
///
/// ```
/// use http::StatusCode;
/// use mesh_model::RetryOn;
/// use mesh_resilience::{retry::would_retry, Outcome};
///
/// let on: RetryOn = "gateway-error".parse()?;
/// assert!(would_retry(&on, &Outcome::response(StatusCode::BAD_GATEWAY)));
/// assert!(!would_retry(&on, &Outcome::response(StatusCode::INTERNAL_SERVER_ERROR)));
/// # Ok::<(), mesh_model::RetryOnError>(())
/// ```
pub fn would_retry(on: &RetryOn, outcome: &Outcome) -> bool {
    verdict(on, outcome) != Verdict::No
}

/// Envoy's `RetryDecision` before counts: no, with backoff, or immediately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    No,
    Backoff,
    Immediately,
}
