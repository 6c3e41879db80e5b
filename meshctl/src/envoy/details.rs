//! The details of an Envoy route, translated field by field from the VirtualService's
//! `http[]` entry (the table decided which routes, blocks and clusters; these say how):
//! match blocks, redirects, direct responses, header operations, retries, hash policies,
//! faults.

use http::{HeaderName, HeaderValue};
use mesh_model::{
    AbortStatus, FaultInjection, HashKey, HttpMatch, Redirect, RedirectPort, RetryPolicy,
    StringMatch,
};
use mesh_routing::DirectResponse;
use serde_json::{json, Map, Value};

use super::{dur, fraction};

/// Istio's `host_selection_retry_max_attempts` (retry.go).
const HOST_SELECTION_RETRY_MAX_ATTEMPTS: u32 = 5;

pub(super) fn redirect(rd: &Redirect, name: &str, port: u16) -> Result<Value, String> {
    let mut red = Map::new();
    if let Some(u) = rd.uri() {
        red.insert("path_redirect".into(), json!(u));
    }
    if let Some(p) = rd.prefix_rewrite() {
        red.insert("prefix_rewrite".into(), json!(p));
    }
    if let Some(a) = rd.authority() {
        red.insert("host_redirect".into(), json!(a));
    }
    if let Some(s) = rd.scheme() {
        red.insert("scheme_redirect".into(), json!(s));
    }
    let redirect_port = match rd.port() {
        RedirectPort::Unchanged => None,
        RedirectPort::Explicit(p) => Some(p),
        RedirectPort::FromRequestPort => Some(port),
        RedirectPort::FromProtocolDefault => Some(if rd.scheme() == Some("https") {
            443
        } else {
            80
        }),
    };
    if let Some(p) = redirect_port {
        red.insert("port_redirect".into(), json!(p));
    }
    let code = match rd.code() {
        301 => "MOVED_PERMANENTLY",
        302 => "FOUND",
        303 => "SEE_OTHER",
        307 => "TEMPORARY_REDIRECT",
        308 => "PERMANENT_REDIRECT",
        other => {
            return Err(format!(
                "route {name}: redirect code {other} has no Envoy equivalent"
            ))
        }
    };
    red.insert("response_code".into(), json!(code));
    Ok(Value::Object(red))
}

pub(super) fn direct_response(d: &DirectResponse) -> Value {
    let mut dr = Map::new();
    dr.insert("status".into(), json!(d.status().as_u16()));
    if let Some(b) = d.body() {
        dr.insert(
            "body".into(),
            json!({"inline_string": String::from_utf8_lossy(b)}),
        );
    }
    Value::Object(dr)
}

fn string_match(m: &StringMatch) -> Value {
    match m {
        StringMatch::Exact(s) => json!({"exact": s}),
        StringMatch::Prefix(s) => json!({"prefix": s}),
        StringMatch::Regex(r) => json!({"safe_regex": {"regex": r.as_str()}}),
        StringMatch::Present => json!({"safe_regex": {"regex": ".*"}}),
    }
}

fn header_matcher(name: &str, m: &StringMatch, invert: bool) -> Value {
    let mut h = match m {
        StringMatch::Present => json!({"name": name, "present_match": true}),
        other => json!({"name": name, "string_match": string_match(other)}),
    };
    if invert {
        h["invert_match"] = json!(true);
    }
    h
}

/// One Istio match block as an Envoy `RouteMatch`.
pub(super) fn route_match(m: &HttpMatch) -> Value {
    let mut out = Map::new();
    match m.uri() {
        None | Some(StringMatch::Present) => {
            out.insert("prefix".into(), json!("/"));
        }
        Some(StringMatch::Exact(p)) => {
            out.insert("path".into(), json!(p));
        }
        Some(StringMatch::Prefix(p)) => {
            out.insert("prefix".into(), json!(p));
        }
        Some(StringMatch::Regex(r)) => {
            out.insert("safe_regex".into(), json!({"regex": r.as_str()}));
        }
    }
    if m.ignore_uri_case() {
        out.insert("case_sensitive".into(), json!(false));
    }
    let mut headers = Vec::new();
    for (name, sm) in m.headers() {
        headers.push(header_matcher(name, sm, false));
    }
    for (name, sm) in m.without_headers() {
        headers.push(header_matcher(name, sm, true));
    }
    if let Some(sm) = m.method() {
        headers.push(header_matcher(":method", sm, false));
    }
    if let Some(sm) = m.authority() {
        headers.push(header_matcher(":authority", sm, false));
    }
    if let Some(sm) = m.scheme() {
        headers.push(header_matcher(":scheme", sm, false));
    }
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    if !m.query_params().is_empty() {
        let qs: Vec<Value> = m
            .query_params()
            .iter()
            .map(|(name, sm)| match sm {
                StringMatch::Present => json!({"name": name, "present_match": true}),
                other => json!({"name": name, "string_match": string_match(other)}),
            })
            .collect();
        out.insert("query_parameters".into(), Value::Array(qs));
    }
    Value::Object(out)
}

/// Header operations for one direction, from the model (route level) or the table
/// (destination level): the same lists either way.
#[derive(Clone, Copy)]
pub(super) struct Ops<'a> {
    set: &'a [(HeaderName, HeaderValue)],
    add: &'a [(HeaderName, HeaderValue)],
    remove: &'a [HeaderName],
}

impl<'a> Ops<'a> {
    pub(super) fn of(o: &'a mesh_model::HeaderOps) -> Self {
        Ops {
            set: o.set(),
            add: o.add(),
            remove: o.remove(),
        }
    }

    pub(super) fn of_routing(o: &'a mesh_routing::headers::HeaderOps) -> Self {
        Ops {
            set: o.set(),
            add: o.add(),
            remove: o.remove(),
        }
    }
}

/// Header operations on a route or a weighted cluster.
pub(super) fn header_ops(out: &mut Map<String, Value>, request: Ops<'_>, response: Ops<'_>) {
    let mut put = |ops: Ops<'_>, add_key: &str, remove_key: &str| {
        let mut add = Vec::new();
        for (n, v) in ops.set {
            add.push(
                json!({"header": {"key": n.as_str(), "value": v.to_str().unwrap_or_default()},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}),
            );
        }
        for (n, v) in ops.add {
            add.push(
                json!({"header": {"key": n.as_str(), "value": v.to_str().unwrap_or_default()},
                "append_action": "APPEND_IF_EXISTS_OR_ADD"}),
            );
        }
        if !add.is_empty() {
            out.insert(add_key.to_owned(), Value::Array(add));
        }
        if !ops.remove.is_empty() {
            let rm: Vec<&str> = ops.remove.iter().map(HeaderName::as_str).collect();
            out.insert(remove_key.to_owned(), json!(rm));
        }
    };
    put(
        request,
        "request_headers_to_add",
        "request_headers_to_remove",
    );
    put(
        response,
        "response_headers_to_add",
        "response_headers_to_remove",
    );
}

/// A route's retry policy as istiod writes it (retry.go): the conditions without the status
/// codes, `retriable-status-codes` added when codes are listed, the `previous_hosts` predicate
/// unless `retryIgnorePreviousHosts: false`, 5 host-selection attempts.
pub(super) fn retry_policy(p: &RetryPolicy) -> Value {
    // Numeric codes already turned `retriable-status-codes` on when they were parsed.
    let conds: Vec<&str> = p.retry_on().conditions().map(|c| c.as_str()).collect();
    let codes: Vec<u16> = p.retry_on().status_codes().iter().collect();
    let mut out = Map::new();
    out.insert("retry_on".into(), json!(conds.join(",")));
    out.insert("num_retries".into(), json!(p.attempts()));
    if let Some(t) = p.per_try_timeout() {
        out.insert("per_try_timeout".into(), json!(dur(t.as_std())));
    }
    if !codes.is_empty() {
        out.insert("retriable_status_codes".into(), json!(codes));
    }
    if p.retry_ignore_previous_hosts() {
        out.insert(
            "retry_host_predicate".into(),
            json!([{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
            }]),
        );
    }
    out.insert(
        "host_selection_retry_max_attempts".into(),
        json!(HOST_SELECTION_RETRY_MAX_ATTEMPTS),
    );
    if let Some(b) = p.backoff() {
        out.insert(
            "retry_back_off".into(),
            json!({"base_interval": dur(b.as_std())}),
        );
    }
    Value::Object(out)
}

pub(super) fn hash_policy(key: &HashKey) -> Value {
    match key {
        HashKey::Header(h) => json!({"header": {"header_name": h}}),
        HashKey::Cookie { name, path, ttl } => {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            if let Some(p) = path {
                c.insert("path".into(), json!(p));
            }
            if let Some(t) = ttl {
                c.insert("ttl".into(), json!(dur(*t)));
            }
            json!({"cookie": c})
        }
        HashKey::SourceIp => json!({"connection_properties": {"source_ip": true}}),
        HashKey::QueryParameter(q) => json!({"query_parameter": {"name": q}}),
    }
}

pub(super) fn fault(f: &FaultInjection) -> Value {
    let mut out = Map::new();
    out.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"),
    );
    if let Some(d) = f.delay() {
        out.insert(
            "delay".into(),
            json!({"fixed_delay": dur(d.fixed_delay().as_std()), "percentage": fraction(d.percentage())}),
        );
    }
    if let Some(a) = f.abort() {
        let mut ab = Map::new();
        match a.status() {
            AbortStatus::Http(code) => {
                ab.insert("http_status".into(), json!(code));
            }
            AbortStatus::Grpc(_) => {
                ab.insert(
                    "grpc_status".into(),
                    json!(a.status().grpc_code().unwrap_or(2)),
                );
            }
        }
        ab.insert("percentage".into(), fraction(a.percentage()));
        out.insert("abort".into(), Value::Object(ab));
    }
    Value::Object(out)
}
