//! `fault` (F1-F6): delays and aborts injected into forwarded requests.

use crate::checks::{validate_duration, validate_http_status, validate_percentage};
use crate::diag::{Cx, Path};
use crate::policy::{AbortStatus, FaultAbort, FaultDelay, FaultInjection};
use crate::raw;

/// F1-F6: a delay and/or an abort, each with a valid percentage.
pub(crate) fn validate_fault(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    f: &raw::HttpFaultInjection,
) -> Option<FaultInjection> {
    if f.delay.is_none() && f.abort.is_none() {
        cx.error(
            p,
            "fault must have an abort and/or a delay; an empty fault does nothing",
        );
        return None;
    }
    let mut delay = None;
    if let Some(d) = &f.delay {
        let dp = p.key("delay");
        if d.exponential_delay.is_some() {
            cx.error(
                &dp.key("exponentialDelay"),
                "exponentialDelay is not supported yet; use fixedDelay",
            );
        }
        if d.percent.is_some() {
            cx.note(
                &dp.key("percent"),
                "percent is deprecated; use percentage: {value: N}",
            );
        }
        let pct = validate_percentage(
            cx,
            &dp.key("percentage"),
            d.percentage.as_ref(),
            d.percent,
            true,
        );
        match &d.fixed_delay {
            Some(s) => {
                if let Some(fixed) = validate_duration(cx, &dp.key("fixedDelay"), Some(s)) {
                    delay = Some(FaultDelay {
                        fixed_delay: fixed,
                        percentage: pct,
                    });
                }
            }
            None if d.exponential_delay.is_none() => {
                cx.error(&dp.key("fixedDelay"), "delay needs fixedDelay")
            }
            None => {}
        }
    }
    let mut abort = None;
    if let Some(a) = &f.abort {
        let ap = p.key("abort");
        let pct = validate_percentage(cx, &ap.key("percentage"), a.percentage.as_ref(), None, true);
        let set = usize::from(a.http_status.is_some())
            + usize::from(a.grpc_status.is_some())
            + usize::from(a.http2_error.is_some());
        if set > 1 {
            cx.error(
                &ap,
                "only one of httpStatus, grpcStatus or http2Error can be set in an abort",
            );
        }
        if a.http2_error.is_some() {
            cx.error(
                &ap.key("http2Error"),
                "http2Error is not supported yet; use httpStatus or grpcStatus",
            );
        }
        if let Some(s) = a.http_status {
            if let Some(s) = validate_http_status(cx, &ap.key("httpStatus"), s) {
                abort = Some(FaultAbort {
                    status: AbortStatus::Http(s),
                    percentage: pct,
                });
            }
        } else if let Some(g) = &a.grpc_status {
            match crate::grpc::GrpcStatus::from_name(g) {
                Ok(c) => abort = Some(FaultAbort { status: AbortStatus::Grpc(c), percentage: pct }),
                Err(_) => cx.error(&ap.key("grpcStatus"), format!("grpcStatus {g:?} is not a gRPC status name; use an upper-case name such as UNAVAILABLE")),
            }
        } else if a.http2_error.is_none() {
            cx.warn(&ap, "abort configured, but error type not set: nothing will be aborted; set httpStatus or grpcStatus");
        }
    }
    // An abort without an error type (a warning above) injects nothing, as in Istio's
    // translation; with no delay either, the route has no fault at all.
    if delay.is_none() && abort.is_none() {
        return None;
    }
    Some(FaultInjection { delay, abort })
}
