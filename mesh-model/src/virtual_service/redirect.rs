//! `redirect` (RD1-RD5).

use crate::diag::{Cx, Path};
use crate::raw;

/// Where a redirect's port comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPort {
    /// Keep the request's port (Envoy's default: no port change).
    Unchanged,
    /// This port.
    Explicit(u16),
    /// 80 for http, 443 for https.
    FromProtocolDefault,
    /// The port the request was sent to.
    FromRequestPort,
}

/// `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub(crate) uri: Option<String>,
    pub(crate) prefix_rewrite: Option<String>,
    pub(crate) authority: Option<String>,
    pub(crate) scheme: Option<String>,
    pub(crate) port: RedirectPort,
    pub(crate) code: u16,
}

impl Redirect {
    /// Whole-path replacement.
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }
    /// Matched-prefix replacement.
    pub fn prefix_rewrite(&self) -> Option<&str> {
        self.prefix_rewrite.as_deref()
    }
    /// New authority.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }
    /// New scheme.
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_deref()
    }
    /// Port rule.
    pub fn port(&self) -> RedirectPort {
        self.port
    }
    /// Status code: 301 (default), 302, 303, 307 or 308.
    pub fn code(&self) -> u16 {
        self.code
    }
}

/// RD1-RD5; `matches` are the route's match blocks (prefixRewrite needs prefix matches).
pub(crate) fn validate_redirect(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    r: &raw::HttpRedirect,
    matches: &[Option<raw::HttpMatchRequest>],
) -> Redirect {
    if r.uri.is_some() && r.prefix_rewrite.is_some() {
        cx.error(
            p,
            "only one of uri or prefixRewrite can be set in a redirect; pick one",
        );
    }
    if r.prefix_rewrite.is_some() {
        let non_prefix = matches
            .iter()
            .flatten()
            .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()));
        if non_prefix {
            cx.error(
                &p.key("prefixRewrite"),
                "prefixRewrite needs every match block's uri to be a prefix match",
            );
        }
    }
    if r.uri.is_none()
        && r.prefix_rewrite.is_none()
        && r.authority.is_none()
        && r.port.is_none()
        && r.derive_port.is_none()
        && r.scheme.is_none()
    {
        cx.error(p, "redirect must specify URI, authority, scheme, or port");
    }
    if r.port.is_some() && r.derive_port.is_some() {
        cx.error(p, "only one of port or derivePort can be set in a redirect");
    }
    let mut port = RedirectPort::Unchanged;
    if let Some(n) = r.port {
        match u16::try_from(n) {
            Ok(n) if n > 0 => port = RedirectPort::Explicit(n),
            _ => cx.error(
                &p.key("port"),
                format!("port number {n} must be in the range 1..65535"),
            ),
        }
    }
    match r.derive_port.as_deref() {
        None => {}
        Some("FROM_PROTOCOL_DEFAULT") => port = RedirectPort::FromProtocolDefault,
        Some("FROM_REQUEST_PORT") => port = RedirectPort::FromRequestPort,
        Some(other) => cx.error(
            &p.key("derivePort"),
            format!("unknown derivePort {other:?}: expected one of FROM_PROTOCOL_DEFAULT, FROM_REQUEST_PORT"),
        ),
    }
    if let Some(s) = &r.scheme {
        if s != "http" && s != "https" {
            cx.error(
                &p.key("scheme"),
                format!("invalid redirect scheme {s:?}: use http or https"),
            );
        }
    }
    let code = match r.redirect_code {
        None | Some(0) => 301,
        Some(c) if (300..=399).contains(&c) => {
            if ![301, 302, 303, 307, 308].contains(&c) {
                cx.error(&p.key("redirectCode"), format!("{c} is not a valid redirect code for Envoy (Istio's 300..399 range check passes it, but Envoy cannot send it); use 301, 302, 303, 307 or 308"));
            }
            c as u16
        }
        Some(c) => {
            cx.error(
                &p.key("redirectCode"),
                format!(
                    "{c} is not a valid redirect code: use 301, 302, 303, 307 or 308 (Istio allows 300..399)"
                ),
            );
            301
        }
    };
    Redirect {
        uri: r.uri.clone(),
        prefix_rewrite: r.prefix_rewrite.clone(),
        authority: r.authority.clone(),
        scheme: r.scheme.clone(),
        port,
        code,
    }
}
