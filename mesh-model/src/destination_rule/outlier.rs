//! Outlier detection (OD-1-OD-4) with Envoy's and Istio's defaults.

use crate::checks::validate_duration;
use crate::diag::{Cx, Path};
use crate::raw;

/// Outlier detection with Envoy's and Istio's defaults: 5 consecutive 5xx, gateway errors off,
/// 5 local-origin failures (split mode only), interval 10 s, base ejection 30 s, at most 10%
/// ejected, panic threshold 0 (disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierDetection {
    pub(crate) consecutive_5xx_errors: u32,
    pub(crate) consecutive_gateway_errors: u32,
    pub(crate) consecutive_local_origin_failures: u32,
    pub(crate) split_external_local_origin_errors: bool,
    pub(crate) interval: std::time::Duration,
    pub(crate) base_ejection_time: std::time::Duration,
    pub(crate) max_ejection_percent: u32,
    pub(crate) min_health_percent: u32,
    pub(crate) http_error_codes: Vec<u16>,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx_errors: 5,
            consecutive_gateway_errors: 0,
            consecutive_local_origin_failures: 5,
            split_external_local_origin_errors: false,
            interval: std::time::Duration::from_secs(10),
            base_ejection_time: std::time::Duration::from_secs(30),
            max_ejection_percent: 10,
            min_health_percent: 0,
            http_error_codes: Vec::new(),
        }
    }
}

impl OutlierDetection {
    /// Consecutive 5xx before ejection; 0 disables.
    pub fn consecutive_5xx_errors(&self) -> u32 {
        self.consecutive_5xx_errors
    }
    /// Consecutive 502/503/504 before ejection; 0 disables.
    pub fn consecutive_gateway_errors(&self) -> u32 {
        self.consecutive_gateway_errors
    }
    /// Consecutive local-origin failures before ejection (split mode).
    pub fn consecutive_local_origin_failures(&self) -> u32 {
        self.consecutive_local_origin_failures
    }
    /// Whether local-origin failures are counted apart.
    pub fn split_external_local_origin_errors(&self) -> bool {
        self.split_external_local_origin_errors
    }
    /// Sweep interval.
    pub fn interval(&self) -> std::time::Duration {
        self.interval
    }
    /// Base ejection time.
    pub fn base_ejection_time(&self) -> std::time::Duration {
        self.base_ejection_time
    }
    /// Maximum share of hosts ejected, percent.
    pub fn max_ejection_percent(&self) -> u32 {
        self.max_ejection_percent
    }
    /// Panic threshold, percent; 0 disables panic mode.
    pub fn min_health_percent(&self) -> u32 {
        self.min_health_percent
    }
    /// Codes that count as errors; empty means every 5xx.
    pub fn http_error_codes(&self) -> &[u16] {
        &self.http_error_codes
    }
}

/// OD-1-OD-4: counts, durations and percentages in range.
pub(crate) fn validate_outlier_detection(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    o: &raw::OutlierDetection,
) -> OutlierDetection {
    let mut out = OutlierDetection::default();
    let nonneg = |cx: &mut Cx<'_>, field: &str, v: Option<i64>| -> Option<u32> {
        match v {
            None => None,
            Some(n) if n < 0 || n > i64::from(u32::MAX) => {
                cx.error(
                    &p.key(field),
                    format!("{n} must be between 0 and 4294967295"),
                );
                None
            }
            Some(n) => Some(n as u32),
        }
    };
    if o.consecutive_errors.is_some() {
        cx.warn(
            &p.key("consecutiveErrors"),
            "consecutiveErrors is deprecated and ignored; use consecutive5xxErrors",
        );
    }
    out.split_external_local_origin_errors = o.split_external_local_origin_errors.unwrap_or(false);
    if let Some(n) = nonneg(cx, "consecutive5xxErrors", o.consecutive_5xx_errors) {
        out.consecutive_5xx_errors = n;
    }
    if let Some(n) = nonneg(cx, "consecutiveGatewayErrors", o.consecutive_gateway_errors) {
        out.consecutive_gateway_errors = n;
    }
    if let Some(n) = nonneg(
        cx,
        "consecutiveLocalOriginFailures",
        o.consecutive_local_origin_failures,
    ) {
        if n > 0 && !out.split_external_local_origin_errors {
            cx.error(
                &p.key("consecutiveLocalOriginFailures"),
                "consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true",
            );
        }
        if n > 0 {
            out.consecutive_local_origin_failures = n;
        }
    }
    if let Some(d) = validate_duration(cx, &p.key("interval"), o.interval.as_deref()) {
        out.interval = d.as_std();
    }
    if let Some(d) = validate_duration(
        cx,
        &p.key("baseEjectionTime"),
        o.base_ejection_time.as_deref(),
    ) {
        out.base_ejection_time = d.as_std();
    }
    for (field, v, slot) in [
        (
            "maxEjectionPercent",
            o.max_ejection_percent,
            &mut out.max_ejection_percent,
        ),
        (
            "minHealthPercent",
            o.min_health_percent,
            &mut out.min_health_percent,
        ),
    ] {
        if let Some(n) = v {
            if !(0..=100).contains(&n) {
                cx.error(&p.key(field), format!("{field} {n} is not in range 0..100"));
            } else if n > 0 || field == "minHealthPercent" {
                *slot = n as u32;
            }
        }
    }
    let cp = p.key("outlierDetectionHttpErrorCodes");
    for (i, c) in o.outlier_detection_http_error_codes.iter().enumerate() {
        if (100..=599).contains(c) {
            out.http_error_codes.push(*c as u16);
        } else {
            cx.error(
                &cp.index(i),
                format!("status code {c} is not in range 100..599"),
            );
        }
    }
    out
}
