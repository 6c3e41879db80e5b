//! Checks shared by the three kinds: metadata, `exportTo`, durations, percentages and HTTP
//! status codes. Each reports at the path it is given and knows nothing of the resource around it.

use crate::diag::{Cx, Path};
use crate::names;
use crate::{raw, Duration, Percentage};

/// Checks the metadata every kind has.
pub(crate) fn validate_metadata(cx: &mut Cx<'_>, m: &raw::ObjectMeta) {
    let p = Path::ROOT.key("metadata");
    match m.name.as_deref() {
        None | Some("") => cx.error(&p.key("name"), "metadata.name is required"),
        Some(n) => {
            let ok = n.len() <= 253
                && n.split('.')
                    .all(|l| names::is_dns1123_label(l) && l == l.to_ascii_lowercase());
            if !ok {
                cx.error(
                    &p.key("name"),
                    format!(
                        "name {n:?} must be a lower-case DNS subdomain (letters, digits, '-', '.')"
                    ),
                );
            }
        }
    }
    if let Some(ns) = m.namespace.as_deref() {
        if !(ns.is_empty() || names::is_dns1123_label(ns) && ns == ns.to_ascii_lowercase()) {
            cx.error(
                &p.key("namespace"),
                format!("namespace {ns:?} must be a lower-case DNS-1123 label"),
            );
        }
    }
}

/// V9 and its siblings: `.`, `*` or namespace names, no duplicates, `*` alone.
pub(crate) fn validate_export_to(cx: &mut Cx<'_>, p: &Path<'_>, list: &[String]) {
    let own = cx
        .resource
        .as_ref()
        .map(|r| r.namespace.clone())
        .unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    for (i, e) in list.iter().enumerate() {
        let ip = p.index(i);
        if e == "~" {
            cx.error(
                &ip,
                "exportTo \"~\" is not allowed for this kind; use \".\", \"*\" or namespace names",
            );
        } else if e != "." && e != "*" && !names::is_dns1123_label(e) {
            cx.error(
                &ip,
                format!("invalid exportTo entry {e:?}: use \".\", \"*\" or a namespace name (DNS-1123 label)"),
            );
        }
        let canon = if e == "." { own.as_str() } else { e.as_str() };
        if !seen.insert(canon) {
            cx.error(
                &ip,
                format!("exportTo {e:?}: duplicate entries are not allowed (\".\" is the own namespace)"),
            );
        }
    }
    if list.len() > 1 && list.iter().any(|e| e == "*") {
        cx.error(
            p,
            "exportTo cannot have both public (\"*\") and other entries: \"*\" already exports everywhere",
        );
    }
}

/// An Istio duration (`1h`, `1m`, `1s`, `1ms`, at least 1 ms), when one is written.
pub(crate) fn validate_duration(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    s: Option<&str>,
) -> Option<Duration> {
    let s = s?;
    match Duration::parse_istio(s) {
        Ok(d) => Some(d),
        Err(e @ crate::DurationError::Syntax { .. }) => {
            let msg = duration_without_unit(p.last_key(), s).unwrap_or_else(|| e.to_string());
            cx.error(p, msg);
            None
        }
        Err(e) => {
            cx.error(p, e.to_string());
            None
        }
    }
}

/// The one message for a duration written as a bare number, quoted or not (`timeout: 5` and
/// `timeout: "5"`): what to write instead. `None` when `number` is not digits.
pub(crate) fn duration_without_unit(field: &str, number: &str) -> Option<String> {
    let digits = number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().any(|b| b.is_ascii_digit());
    if !digits {
        return None;
    }
    let field = if field.is_empty() { "duration" } else { field };
    Some(format!("{number} is not a duration: it has no unit; write `{field}: {number}s` (a number with a unit: ms, s, m or h, e.g. 500ms or 1m30s)"))
}

/// A status an abort or direct response may send: 200..=600, as istiod's check allows (600
/// with a warning: Envoy's own range ends at 599).
pub(crate) fn validate_http_status(cx: &mut Cx<'_>, p: &Path<'_>, status: i64) -> Option<u16> {
    if (200..=599).contains(&status) {
        Some(status as u16)
    } else if status == 600 {
        cx.warn(
            p,
            "status 600 is outside Envoy's range 200-599: istiod accepts it, but a sidecar's Envoy rejects the whole route configuration that holds it (and keeps its previous routes); this library sends 600. Use a status from 200 to 599",
        );
        Some(600)
    } else {
        cx.error(
            p,
            format!("status {status} is not in range 200-599: use a final HTTP status code"),
        );
        None
    }
}

/// A `Percent` (`{value: N}`), or the deprecated integer form; fault percentages allow 0 or
/// 0.0001..=100, others 0..=100. Unset is 0 %.
pub(crate) fn validate_percentage(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    pct: Option<&raw::Percent>,
    deprecated: Option<i64>,
    fault: bool,
) -> Percentage {
    if let Some(v) = pct.and_then(|x| x.value) {
        let ok = if fault {
            v == 0.0 || (0.0001..=100.0).contains(&v)
        } else {
            (0.0..=100.0).contains(&v)
        };
        if !ok {
            if fault {
                cx.error(
                    &p.key("value"),
                    format!("percentage {v} is neither 0.0, nor in range [0.0001, 100.0]"),
                );
            } else {
                let bound = if v < 0.0 {
                    "min value of 0"
                } else {
                    "max value of 100"
                };
                cx.error(
                    &p.key("value"),
                    format!("percentage {v} is out of range: it must have a {bound} (0..100)"),
                );
            }
            return Percentage::ZERO;
        }
        return Percentage::from_value(v).unwrap_or(Percentage::ZERO);
    }
    if pct.is_some() {
        return Percentage::ZERO;
    }
    match deprecated {
        Some(n) => Percentage::from_whole(n.clamp(0, 100) as u32),
        None => Percentage::ZERO,
    }
}
