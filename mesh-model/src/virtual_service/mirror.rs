//! Mirrors (R5, R7, R8): `mirror` with `mirrorPercentage`, or `mirrors`.

use crate::checks::validate_percentage;
use crate::diag::{Cx, Path};
use crate::{raw, Percentage};

use super::destination::{validate_destination, Destination};

/// A mirror destination with its share of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub(crate) destination: Destination,
    pub(crate) percentage: Percentage,
    /// Written with the single-mirror fields (`mirror`, `mirrorPercentage`) rather than
    /// `mirrors`.
    pub(crate) legacy: bool,
}

impl Mirror {
    /// Where copies go.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }
    /// Share of requests copied (100% when unset).
    pub fn percentage(&self) -> Percentage {
        self.percentage
    }
}

/// R5, R7, R8: `mirror` (with `mirrorPercentage` or the deprecated `mirrorPercent`) or `mirrors`.
pub(crate) fn validate_mirrors(cx: &mut Cx<'_>, p: &Path<'_>, r: &raw::HttpRoute) -> Vec<Mirror> {
    let mut out = Vec::new();
    if r.mirror.is_some() && !r.mirrors.is_empty() {
        cx.error(
            p,
            "HTTP route cannot contain both mirror and mirrors: move the mirror into mirrors",
        );
    }
    if let Some(n) = r.mirror_percent {
        cx.warn(
            &p.key("mirrorPercent"),
            "mirrorPercent is deprecated; use mirrorPercentage: {value: N}",
        );
        if !(0..=100).contains(&n) {
            cx.error(
                &p.key("mirrorPercent"),
                format!("mirrorPercent {n} must have a max value of 100 (and a min value of 0)"),
            );
        }
    }
    if let Some(m) = &r.mirror {
        let pct = match (&r.mirror_percentage, r.mirror_percent) {
            (None, None) => Percentage::HUNDRED,
            (mp, dep) => {
                validate_percentage(cx, &p.key("mirrorPercentage"), mp.as_ref(), dep, false)
            }
        };
        if let Some(d) = validate_destination(cx, &p.key("mirror"), m) {
            out.push(Mirror {
                destination: d,
                percentage: pct,
                legacy: true,
            });
        }
    } else if r.mirror_percentage.is_some() {
        let _ = validate_percentage(
            cx,
            &p.key("mirrorPercentage"),
            r.mirror_percentage.as_ref(),
            None,
            false,
        );
    }
    let mp = p.key("mirrors");
    for (i, m) in r.mirrors.iter().enumerate() {
        let ip = mp.index(i);
        let Some(m) = m else {
            cx.error(&ip, "mirror may not be null");
            continue;
        };
        let Some(d) = &m.destination else {
            cx.error(
                &ip.key("destination"),
                "destination is required: give the host (and optionally subset and port)",
            );
            continue;
        };
        let pct = match &m.percentage {
            None => Percentage::HUNDRED,
            Some(x) => validate_percentage(cx, &ip.key("percentage"), Some(x), None, false),
        };
        if let Some(d) = validate_destination(cx, &ip.key("destination"), d) {
            out.push(Mirror {
                destination: d,
                percentage: pct,
                legacy: false,
            });
        }
    }
    out
}
