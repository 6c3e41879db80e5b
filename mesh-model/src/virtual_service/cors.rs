//! `corsPolicy` (C1-C4).

use crate::diag::{Cx, Path};
use crate::matching::StringMatch;
use crate::names;
use crate::{raw, Duration};

use super::http_match::validate_string_match;

/// `corsPolicy`, validated (`mesh_routing::cors` applies it as Envoy's CORS filter does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    pub(crate) allow_origins: Vec<StringMatch>,
    pub(crate) allow_methods: Vec<String>,
    pub(crate) allow_headers: Vec<String>,
    pub(crate) expose_headers: Vec<String>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) allow_credentials: Option<bool>,
    pub(crate) unmatched_preflights: Option<String>,
}

impl CorsPolicy {
    /// Allowed origins.
    pub fn allow_origins(&self) -> &[StringMatch] {
        &self.allow_origins
    }
    /// Allowed methods.
    pub fn allow_methods(&self) -> &[String] {
        &self.allow_methods
    }
    /// Allowed request headers.
    pub fn allow_headers(&self) -> &[String] {
        &self.allow_headers
    }
    /// Exposed response headers.
    pub fn expose_headers(&self) -> &[String] {
        &self.expose_headers
    }
    /// Preflight cache time.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }
    /// Allow credentials.
    pub fn allow_credentials(&self) -> Option<bool> {
        self.allow_credentials
    }
    /// `unmatchedPreflights` as written (`FORWARD` or `IGNORE`; unset means `FORWARD`).
    pub fn unmatched_preflights(&self) -> Option<&str> {
        self.unmatched_preflights.as_deref()
    }
    /// Whether a preflight from an origin no pattern allows goes upstream: `true` unless
    /// `unmatchedPreflights: IGNORE` (Envoy's `forward_not_matching_preflights`).
    pub fn forwards_unmatched_preflights(&self) -> bool {
        self.unmatched_preflights.as_deref() != Some("IGNORE")
    }
}

const CORS_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// C1-C4: origins, methods, header names, max age.
pub(crate) fn validate_cors(cx: &mut Cx<'_>, p: &Path<'_>, c: &raw::CorsPolicy) -> CorsPolicy {
    let mut allow_origins = Vec::new();
    let op = p.key("allowOrigins");
    for (i, o) in c.allow_origins.iter().enumerate() {
        let ip = op.index(i);
        match o {
            None => cx.error(&ip, "allowOrigins entry may not be null"),
            Some(o) => {
                let empty = o.exact.as_deref().is_some_and(str::is_empty)
                    || o.prefix.as_deref().is_some_and(str::is_empty)
                    || (o.exact.is_none() && o.prefix.is_none() && o.regex.is_none());
                if empty {
                    cx.error(&ip, "'' is not a valid match type for CORS allow origins; give exact, prefix or regex a value");
                    continue;
                }
                if let Some(m) = validate_string_match(cx, &ip, o, false, false) {
                    allow_origins.push(m);
                }
            }
        }
    }
    allow_origins.extend(c.allow_origin.iter().map(|s| StringMatch::Exact(s.clone())));
    let mp = p.key("allowMethods");
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            cx.error(&mp.index(i), format!("method {m:?} is not a supported HTTP method: use one of GET, HEAD, POST, PUT, PATCH, DELETE, CONNECT, OPTIONS, TRACE (upper case)"));
        }
    }
    for (field, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        let fp = p.key(field);
        for (i, h) in list.iter().enumerate() {
            if h.is_empty() {
                cx.error(
                    &fp.index(i),
                    "header name cannot be empty: use \"*\" or a header name",
                );
            } else if h != "*" && !names::is_token(h) {
                cx.error(
                    &fp.index(i),
                    format!("header name {h:?} is not a valid header name: use \"*\" or token characters"),
                );
            }
        }
    }
    let max_age = c
        .max_age
        .as_deref()
        .and_then(|s| match Duration::parse_istio_seconds(s) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.error(&p.key("maxAge"), e.to_string());
                None
            }
        });
    if let Some(u) = &c.unmatched_preflights {
        if !["FORWARD", "IGNORE", "UNSPECIFIED"].contains(&u.as_str()) {
            cx.error(
                &p.key("unmatchedPreflights"),
                format!("unknown unmatchedPreflights {u:?}: expected one of FORWARD, IGNORE"),
            );
        }
    }
    CorsPolicy {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age,
        allow_credentials: c.allow_credentials,
        unmatched_preflights: c.unmatched_preflights.clone(),
    }
}
