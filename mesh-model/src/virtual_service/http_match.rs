//! `HTTPMatchRequest` (M1-M10): one match block, every condition of which must hold, and the
//! string matches it is made of.

use std::collections::BTreeMap;

use crate::diag::{Cx, Path};
use crate::matching::{Regex, StringMatch};
use crate::names;
use crate::raw;

use super::gateway::validate_gateway;

/// One match block: every condition must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpMatch {
    pub(crate) name: Option<String>,
    pub(crate) uri: Option<StringMatch>,
    pub(crate) scheme: Option<StringMatch>,
    pub(crate) method: Option<StringMatch>,
    pub(crate) authority: Option<StringMatch>,
    pub(crate) headers: Vec<(String, StringMatch)>,
    pub(crate) without_headers: Vec<(String, StringMatch)>,
    pub(crate) query_params: Vec<(String, StringMatch)>,
    pub(crate) ignore_uri_case: bool,
    pub(crate) port: Option<u16>,
    pub(crate) source_labels: BTreeMap<String, String>,
    pub(crate) source_namespace: Option<String>,
    pub(crate) gateways: Vec<String>,
    pub(crate) stat_prefix: Option<String>,
}

impl HttpMatch {
    /// Block name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// Path (without query) condition.
    pub fn uri(&self) -> Option<&StringMatch> {
        self.uri.as_ref()
    }
    /// Scheme condition.
    pub fn scheme(&self) -> Option<&StringMatch> {
        self.scheme.as_ref()
    }
    /// Method condition (case-sensitive).
    pub fn method(&self) -> Option<&StringMatch> {
        self.method.as_ref()
    }
    /// Authority condition (port included as sent).
    pub fn authority(&self) -> Option<&StringMatch> {
        self.authority.as_ref()
    }
    /// Header conditions; names lower-cased.
    pub fn headers(&self) -> &[(String, StringMatch)] {
        &self.headers
    }
    /// Negative header conditions; names lower-cased.
    pub fn without_headers(&self) -> &[(String, StringMatch)] {
        &self.without_headers
    }
    /// Query parameter conditions (names case-sensitive).
    pub fn query_params(&self) -> &[(String, StringMatch)] {
        &self.query_params
    }
    /// Whether `uri` exact/prefix compare case-insensitively.
    pub fn ignore_uri_case(&self) -> bool {
        self.ignore_uri_case
    }
    /// Service port selector.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// Calling-workload label selector.
    pub fn source_labels(&self) -> &BTreeMap<String, String> {
        &self.source_labels
    }
    /// Calling-workload namespace selector.
    pub fn source_namespace(&self) -> Option<&str> {
        self.source_namespace.as_deref()
    }
    /// Gateways selector (overrides the virtual service's).
    pub fn gateways(&self) -> &[String] {
        &self.gateways
    }
    /// Envoy stats prefix.
    pub fn stat_prefix(&self) -> Option<&str> {
        self.stat_prefix.as_deref()
    }
    /// Whether the block matches every request from every client, as Istio's `isCatchAllMatch`:
    /// no condition at all, or only a `/` prefix or `.*` regex on the uri. Selectors (`port`,
    /// `sourceLabels`, `sourceNamespace`, `gateways`) make a block specific too.
    pub fn is_catch_all(&self) -> bool {
        let uri_all = match &self.uri {
            None => true,
            Some(StringMatch::Prefix(p)) => p == "/" || p.is_empty(),
            Some(StringMatch::Regex(r)) => r.as_str() == ".*",
            Some(_) => false,
        };
        uri_all
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.without_headers.is_empty()
            && self.query_params.is_empty()
            && self.port.is_none()
            && self.source_labels.is_empty()
            && self.source_namespace.is_none()
            && self.gateways.is_empty()
    }
}

/// M-rules of one string match: one of exact, prefix or regex; `{}` (or `regex: "*"` where
/// `star_is_presence`) tests presence.
pub(crate) fn validate_string_match(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    m: &raw::StringMatch,
    allow_empty_prefix: bool,
    star_is_presence: bool,
) -> Option<StringMatch> {
    let set = usize::from(m.exact.is_some())
        + usize::from(m.prefix.is_some())
        + usize::from(m.regex.is_some());
    if set > 1 {
        cx.error(
            p,
            "only one of exact, prefix or regex can be set in a string match",
        );
        return None;
    }
    if let Some(e) = &m.exact {
        return Some(StringMatch::Exact(e.clone()));
    }
    if let Some(pr) = &m.prefix {
        if pr.is_empty() && !allow_empty_prefix {
            cx.error(&p.key("prefix"), "prefix string match should not be empty; remove the condition or use {} to test presence");
            return None;
        }
        return Some(StringMatch::Prefix(pr.clone()));
    }
    if let Some(re) = &m.regex {
        if star_is_presence && re == "*" {
            return Some(StringMatch::Present);
        }
        return match Regex::within(re, &mut cx.regex_budget) {
            Ok(r) => Some(StringMatch::Regex(r)),
            Err(e) => {
                cx.error(
                    &p.key("regex"),
                    format!("{e}; patterns use RE2 syntax and must match the whole value"),
                );
                None
            }
        };
    }
    Some(StringMatch::Present)
}

/// M1-M10: one match block.
pub(crate) fn validate_match(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    m: &raw::HttpMatchRequest,
    applies_to_mesh: bool,
) -> HttpMatch {
    let mut out = HttpMatch {
        name: m.name.clone(),
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
        source_labels: m.source_labels.clone(),
        source_namespace: m.source_namespace.clone(),
        gateways: m.gateways.clone(),
        stat_prefix: m.stat_prefix.clone(),
        ..Default::default()
    };
    out.uri = m
        .uri
        .as_ref()
        .and_then(|s| validate_string_match(cx, &p.key("uri"), s, true, false));
    out.scheme = m
        .scheme
        .as_ref()
        .and_then(|s| validate_string_match(cx, &p.key("scheme"), s, false, false));
    out.method = m
        .method
        .as_ref()
        .and_then(|s| validate_string_match(cx, &p.key("method"), s, false, false));
    out.authority = m
        .authority
        .as_ref()
        .and_then(|s| validate_string_match(cx, &p.key("authority"), s, false, false));

    for (field, map, negated) in [
        ("headers", &m.headers, false),
        ("withoutHeaders", &m.without_headers, true),
    ] {
        let fp = p.key(field);
        let mut list = Vec::new();
        for (name, sm) in map {
            let np = fp.key(name);
            if name.is_empty() {
                cx.error(&np, "header name cannot be empty: name the header to match");
                continue;
            }
            if name.starts_with("@request.auth.claims") {
                if applies_to_mesh {
                    cx.error(&np, format!("header {name:?} routes on JWT claims, which is only supported for gateway virtual services; remove it from this mesh virtual service"));
                }
                continue;
            }
            if !names::is_match_header_name(name) {
                cx.error(&np, format!("header name {name:?} is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~, or a pseudo-header"));
                continue;
            }
            let Some(sm) = sm else {
                cx.error(
                    &np,
                    format!("header match {name:?} cannot be null; use {{}} to test presence"),
                );
                continue;
            };
            if let Some(s) = validate_string_match(cx, &np, sm, false, negated) {
                list.push((name.to_ascii_lowercase(), s));
            }
        }
        if negated {
            out.without_headers = list;
        } else {
            out.headers = list;
        }
    }
    let qp = p.key("queryParams");
    for (name, sm) in &m.query_params {
        let np = qp.key(name);
        let Some(sm) = sm else {
            cx.error(
                &np,
                format!("query parameter match {name:?} cannot be null; use {{}} to test presence"),
            );
            continue;
        };
        if let Some(s) = validate_string_match(cx, &np, sm, false, false) {
            out.query_params.push((name.clone(), s));
        }
    }
    if let Some(port) = m.port {
        if port != 0 {
            match u16::try_from(port) {
                Ok(n) if n > 0 => out.port = Some(n),
                _ => cx.error(
                    &p.key("port"),
                    format!("port number {port} must be in the range 1..65535"),
                ),
            }
        }
    }
    let lp = p.key("sourceLabels");
    for (k, v) in &m.source_labels {
        if let Some(why) = names::label_key_problem(k).or_else(|| names::label_value_problem(v)) {
            cx.error(&lp.key(k), why);
        }
    }
    if let Some(ns) = &m.source_namespace {
        if !names::is_dns1123_label(ns) {
            cx.error(
                &p.key("sourceNamespace"),
                format!("sourceNamespace {ns:?} is invalid: it must be a namespace name (DNS-1123 label)"),
            );
        }
    }
    let gp = p.key("gateways");
    for (i, g) in m.gateways.iter().enumerate() {
        validate_gateway(cx, &gp.index(i), g);
    }
    out
}
