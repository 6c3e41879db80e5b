//! Gateway names (V6), written in `spec.gateways` and in match blocks.

use crate::diag::{Cx, Path};
use crate::names;

/// V6: `mesh`, `namespace/name`, or a (legacy) domain name.
pub(crate) fn validate_gateway(cx: &mut Cx<'_>, p: &Path<'_>, g: &str) {
    if g == "mesh" {
        return;
    }
    if let Some((ns, name)) = g.split_once('/') {
        if ns.is_empty() || name.is_empty() {
            cx.error(
                p,
                format!("gateway {g:?}: namespace and name cannot be empty; write namespace/name"),
            );
        } else if !names::is_dns1123_label(ns) {
            cx.error(p, format!("gateway {g:?}: invalid value for namespace {ns:?}: it must be a DNS-1123 label (lower-case letters, digits, '-')"));
        } else if !names::is_dns1123_label(name) {
            cx.error(p, format!("gateway {g:?}: invalid value for gateway name {name:?}: it must be a DNS-1123 label (lower-case letters, digits, '-')"));
        }
    } else if let Some(why) = names::wildcard_domain_problem(g) {
        cx.error(p, format!("invalid gateway name {g:?}: not a valid domain name ({why}); write namespace/name or mesh"));
    } else if g.contains('.') {
        cx.warn(
            p,
            format!("using legacy gatewayName format {g:?}; write namespace/name"),
        );
    }
}
