//! V10: routes that can never be used because an earlier route or match block takes every request
//! they would match.

use crate::diag::{Cx, Path};
use crate::matching::StringMatch;
use crate::raw;

use super::http_match::HttpMatch;
use super::route::HttpRoute;

/// V10: routes after a catch-all, and match blocks an earlier block already covers.
pub(crate) fn validate_reachability(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    raw_http: &[Option<raw::HttpRoute>],
    http: &[HttpRoute],
) {
    // Only meaningful when every raw route validated (indexes line up).
    if raw_http.iter().any(Option::is_none) || raw_http.len() != http.len() {
        return;
    }
    let label = |i: usize| match http[i].name() {
        Some(n) => format!("#{i} ({n:?})"),
        None => format!("#{i}"),
    };
    let mut catch_all: Option<usize> = None;
    for (i, route) in http.iter().enumerate() {
        let rp = p.index(i);
        if let Some(j) = catch_all {
            cx.warn(&rp, format!("virtualService rule {} not used (route without matches defined before: rule {}); only the last rule can have no matches", label(i), label(j)));
            continue;
        }
        // Istio counts only identical blocks towards "all matches used"; a block covered by an
        // earlier prefix is reported on its own.
        let mut duplicates = 0;
        for (k, m) in route.matches.iter().enumerate() {
            let earlier = http[..i]
                .iter()
                .enumerate()
                .flat_map(|(j, r)| r.matches.iter().enumerate().map(move |(l, em)| (j, l, em)));
            let mut covered_by = None;
            for (j, l, em) in earlier {
                if covers(em, m) {
                    covered_by = Some((j, l));
                    break;
                }
            }
            if let Some((j, l)) = covered_by {
                if http[j].matches[l] == *m {
                    duplicates += 1;
                }
                cx.warn(&rp.key("match").index(k), format!("match #{k} of rule {} is not used (duplicate/overlapping match in rule {} match #{l})", label(i), label(j)));
            }
        }
        if duplicates > 0 && duplicates == route.matches.len() {
            cx.warn(
                &rp,
                format!(
                    "virtualService rule {} not used (all matches used by prior rules)",
                    label(i)
                ),
            );
        }
        if route.matches.is_empty() && catch_all.is_none() {
            catch_all = Some(i);
        }
    }
}

/// Whether every request `later` matches is already matched by `earlier`.
fn covers(earlier: &HttpMatch, later: &HttpMatch) -> bool {
    let same_rest = earlier.scheme == later.scheme
        && earlier.method == later.method
        && earlier.authority == later.authority
        && earlier.headers == later.headers
        && earlier.without_headers == later.without_headers
        && earlier.query_params == later.query_params
        && earlier.port == later.port
        && earlier.ignore_uri_case == later.ignore_uri_case
        && earlier.source_labels == later.source_labels
        && earlier.source_namespace == later.source_namespace
        && earlier.gateways == later.gateways;
    if !same_rest {
        return false;
    }
    match (&earlier.uri, &later.uri) {
        (None, _) => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(StringMatch::Prefix(a)), Some(StringMatch::Prefix(b) | StringMatch::Exact(b))) => {
            b.starts_with(a.as_str())
        }
        _ => false,
    }
}
