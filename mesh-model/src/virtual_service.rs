//! Validated `VirtualService`.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

use crate::diag::{Cx, Path};
use crate::matching::{Regex, StringMatch};
use crate::meta::Meta;
use crate::names;
use crate::policy::{AbortStatus, FaultAbort, FaultDelay, FaultInjection, RetryPolicy};
use crate::retry_on::RetryOn;
use crate::{raw, Duration, Percentage};

/// A validated `VirtualService`.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualService {
    pub(crate) meta: Meta,
    pub(crate) hosts: Vec<String>,
    pub(crate) gateways: Vec<String>,
    pub(crate) http: Vec<HttpRoute>,
    pub(crate) tcp: Vec<raw::OpaqueValue>,
    pub(crate) tls: Vec<raw::OpaqueValue>,
    pub(crate) export_to: Vec<String>,
    /// Root routes whose delegation contributed no route (delegate missing, not exported, or
    /// every delegate route in conflict). They route nothing, as in Istio, but are written back
    /// by [`VirtualService::to_raw`] so that the written configuration loads to the same value.
    pub(crate) skipped_delegations: Vec<HttpRoute>,
}

impl VirtualService {
    /// Name, namespace, origin.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// Hosts as written, lower-cased (short names are not expanded: see
    /// [`crate::resolve_short_name`]). Empty for a delegate.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
    /// Gateways as written; empty means `mesh`.
    pub fn gateways(&self) -> &[String] {
        &self.gateways
    }
    /// Whether the rules apply to sidecars (the `mesh` gateway), which is where this library runs.
    pub fn applies_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == "mesh")
    }
    /// HTTP routes in order.
    pub fn http(&self) -> &[HttpRoute] {
        &self.http
    }
    /// Visibility list as written; empty means everywhere.
    pub fn export_to(&self) -> &[String] {
        &self.export_to
    }
    /// Whether this is a delegate (no hosts; only reachable through a root's `delegate`).
    pub fn is_delegate(&self) -> bool {
        self.hosts.is_empty()
    }
    /// Number of `tcp` and `tls` routes, kept but not applied by this library.
    pub fn non_http_routes(&self) -> usize {
        self.tcp.len() + self.tls.len()
    }

    /// Back to the wire form.
    pub fn to_raw(&self) -> raw::VirtualService {
        raw::VirtualService {
            api_version: Some("networking.istio.io/v1".into()),
            kind: Some("VirtualService".into()),
            metadata: self.meta.to_raw(),
            spec: raw::VirtualServiceSpec {
                hosts: self.hosts.clone(),
                gateways: self.gateways.clone(),
                http: self
                    .http
                    .iter()
                    .chain(&self.skipped_delegations)
                    .map(|r| Some(r.to_raw()))
                    .collect(),
                tls: self.tls.clone(),
                tcp: self.tcp.clone(),
                export_to: self.export_to.clone(),
            },
        }
    }
}

/// One entry of `http[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub(crate) name: Option<String>,
    pub(crate) matches: Vec<HttpMatch>,
    pub(crate) action: RouteAction,
    pub(crate) rewrite: Option<Rewrite>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: RetryPolicy,
    pub(crate) fault: Option<FaultInjection>,
    pub(crate) mirrors: Vec<Mirror>,
    pub(crate) cors: Option<CorsPolicy>,
    pub(crate) headers: Headers,
}

impl HttpRoute {
    /// Route name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// Match blocks, OR-ed; empty means "matches everything".
    pub fn matches(&self) -> &[HttpMatch] {
        &self.matches
    }
    /// What the route does.
    pub fn action(&self) -> &RouteAction {
        &self.action
    }
    /// URI / authority rewrite.
    pub fn rewrite(&self) -> Option<&Rewrite> {
        self.rewrite.as_ref()
    }
    /// Route timeout; `None` means disabled (Istio's default).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The effective retry policy (Istio's default when the route has none).
    pub fn retries(&self) -> &RetryPolicy {
        &self.retries
    }
    /// Fault injection.
    pub fn fault(&self) -> Option<&FaultInjection> {
        self.fault.as_ref()
    }
    /// Mirrors (from `mirror` + `mirrorPercentage` or from `mirrors`).
    pub fn mirrors(&self) -> &[Mirror] {
        &self.mirrors
    }
    /// CORS policy (validated; a client library does not enforce it).
    pub fn cors(&self) -> Option<&CorsPolicy> {
        self.cors.as_ref()
    }
    /// Route-level header operations.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
    /// Whether the route matches every request (no match block, or a block with no condition).
    pub fn is_catch_all(&self) -> bool {
        self.matches.is_empty() || self.matches.iter().any(HttpMatch::is_catch_all)
    }

    fn to_raw(&self) -> raw::HttpRoute {
        let mut r = raw::HttpRoute {
            name: self.name.clone(),
            matches: self.matches.iter().map(|m| Some(m.to_raw())).collect(),
            rewrite: self.rewrite.as_ref().map(Rewrite::to_raw),
            timeout: self.timeout.map(|d| d.to_string()),
            retries: self.retries.written.then(|| retry_to_raw(&self.retries)),
            fault: self.fault.as_ref().map(fault_to_raw),
            mirrors: self
                .mirrors
                .iter()
                .filter(|m| !m.legacy)
                .map(|m| {
                    Some(raw::HttpMirrorPolicy {
                        destination: Some(m.destination.to_raw()),
                        percentage: Some(raw::Percent {
                            value: Some(m.percentage.value()),
                        }),
                    })
                })
                .collect(),
            cors_policy: self.cors.as_ref().map(CorsPolicy::to_raw),
            headers: self.headers.to_raw(),
            ..Default::default()
        };
        if let Some(m) = self.mirrors.iter().find(|m| m.legacy) {
            r.mirror = Some(m.destination.to_raw());
            r.mirror_percentage = Some(raw::Percent {
                value: Some(m.percentage.value()),
            });
        }
        match &self.action {
            RouteAction::Route(ds) => {
                r.route = ds
                    .iter()
                    .map(|d| {
                        Some(raw::HttpRouteDestination {
                            destination: Some(d.destination.to_raw()),
                            weight: Some(i64::from(d.weight)),
                            headers: d.headers.to_raw(),
                        })
                    })
                    .collect();
            }
            RouteAction::Redirect(rd) => r.redirect = Some(rd.to_raw()),
            RouteAction::DirectResponse(dr) => r.direct_response = Some(dr.to_raw()),
            RouteAction::Delegate(d) => {
                r.delegate = Some(raw::Delegate {
                    name: Some(d.name.clone()),
                    namespace: d.namespace.clone(),
                })
            }
        }
        r
    }
}

/// What a route does with a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// Forward to weighted destinations. Weights are resolved: a single destination carries 100,
    /// destinations with weight 0 are dropped, the rest keep their relative weights.
    Route(Vec<RouteDestination>),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed response.
    DirectResponse(DirectResponse),
    /// Hand the request to the routes of another virtual service. Seen only while validating:
    /// [`crate::Loader::finish`] replaces every such route by the delegate's routes merged into
    /// it (istio-semantics §1.16), or drops it when the delegate is missing, so a loaded
    /// [`crate::MeshConfig`] never holds this variant.
    Delegate(Delegate),
}

/// A weighted destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDestination {
    pub(crate) destination: Destination,
    pub(crate) weight: u32,
    pub(crate) headers: Headers,
}

impl RouteDestination {
    /// Where to send.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }
    /// Relative weight, always > 0.
    pub fn weight(&self) -> u32 {
        self.weight
    }
    /// Destination-level header operations.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// `Destination`: a registry host, an optional subset and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub(crate) host: String,
    pub(crate) subset: Option<String>,
    pub(crate) port: Option<u16>,
}

impl Destination {
    /// A destination built in code.
    pub fn new(host: impl Into<String>, subset: Option<&str>, port: Option<u16>) -> Self {
        Destination {
            host: host.into().to_ascii_lowercase(),
            subset: subset.map(str::to_owned),
            port,
        }
    }
    /// Host as written (lower-cased).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// Subset name.
    pub fn subset(&self) -> Option<&str> {
        self.subset.as_deref()
    }
    /// Port number.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    fn to_raw(&self) -> raw::Destination {
        raw::Destination {
            host: Some(self.host.clone()),
            subset: self.subset.clone(),
            port: self.port.map(|n| raw::PortSelector {
                number: Some(i64::from(n)),
            }),
        }
    }
}

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

    fn to_raw(&self) -> raw::HttpMatchRequest {
        let map = |v: &[(String, StringMatch)]| {
            v.iter()
                .map(|(k, m)| (k.clone(), Some(sm_to_raw(m))))
                .collect()
        };
        raw::HttpMatchRequest {
            name: self.name.clone(),
            uri: self.uri.as_ref().map(sm_to_raw),
            scheme: self.scheme.as_ref().map(sm_to_raw),
            method: self.method.as_ref().map(sm_to_raw),
            authority: self.authority.as_ref().map(sm_to_raw),
            headers: map(&self.headers),
            port: self.port.map(i64::from),
            source_labels: self.source_labels.clone(),
            gateways: self.gateways.clone(),
            query_params: map(&self.query_params),
            ignore_uri_case: self.ignore_uri_case.then_some(true),
            without_headers: map(&self.without_headers),
            source_namespace: self.source_namespace.clone(),
            stat_prefix: self.stat_prefix.clone(),
        }
    }
}

fn sm_to_raw(m: &StringMatch) -> raw::StringMatch {
    match m {
        StringMatch::Exact(s) => raw::StringMatch {
            exact: Some(s.clone()),
            ..Default::default()
        },
        StringMatch::Prefix(s) => raw::StringMatch {
            prefix: Some(s.clone()),
            ..Default::default()
        },
        StringMatch::Regex(r) => raw::StringMatch {
            regex: Some(r.as_str().to_owned()),
            ..Default::default()
        },
        StringMatch::Present => raw::StringMatch::default(),
    }
}

/// Header operations for requests and responses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    pub(crate) request: HeaderOps,
    pub(crate) response: HeaderOps,
}

impl Headers {
    /// Operations on the request sent upstream.
    pub fn request(&self) -> &HeaderOps {
        &self.request
    }
    /// Operations on the response returned to the caller.
    pub fn response(&self) -> &HeaderOps {
        &self.response
    }
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }

    fn to_raw(&self) -> Option<raw::Headers> {
        (!self.is_empty()).then(|| raw::Headers {
            request: self.request.to_raw(),
            response: self.response.to_raw(),
        })
    }
}

/// `set`, `add`, `remove` in Istio's order: all sets (by name), then all adds (by name), then
/// removes. A request `set`/`add` of `host` or `:authority` is an authority rewrite, kept apart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderOps {
    pub(crate) set: Vec<(HeaderName, HeaderValue)>,
    pub(crate) add: Vec<(HeaderName, HeaderValue)>,
    pub(crate) remove: Vec<HeaderName>,
    pub(crate) authority: Option<(String, bool)>,
    /// The values of `set` and `add` as written (`%%` escapes and `%VARIABLE%`s kept), index for
    /// index, so that writing the configuration back says exactly what was read.
    pub(crate) set_written: Vec<String>,
    pub(crate) add_written: Vec<String>,
}

impl HeaderOps {
    /// Overwrite or add.
    pub fn set(&self) -> &[(HeaderName, HeaderValue)] {
        &self.set
    }
    /// Append.
    pub fn add(&self) -> &[(HeaderName, HeaderValue)] {
        &self.add
    }
    /// Remove.
    pub fn remove(&self) -> &[HeaderName] {
        &self.remove
    }
    /// Authority set through `host` / `:authority` (request operations only).
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_ref().map(|(a, _)| a.as_str())
    }
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.authority.is_none()
    }

    fn to_raw(&self) -> Option<raw::HeaderOperations> {
        if self.is_empty() {
            return None;
        }
        // A value built in code has no written form: escape its '%' signs.
        let s = |i: usize, v: &HeaderValue, written: &[String]| {
            written
                .get(i)
                .cloned()
                .unwrap_or_else(|| String::from_utf8_lossy(v.as_bytes()).replace('%', "%%"))
        };
        let mut set: BTreeMap<String, String> = self
            .set
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (k.to_string(), s(i, v, &self.set_written)))
            .collect();
        let mut add: BTreeMap<String, String> = self
            .add
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (k.to_string(), s(i, v, &self.add_written)))
            .collect();
        if let Some((a, via_set)) = &self.authority {
            if *via_set {
                set.insert("host".into(), a.clone());
            } else {
                add.insert("host".into(), a.clone());
            }
        }
        Some(raw::HeaderOperations {
            set,
            add,
            remove: self.remove.iter().map(ToString::to_string).collect(),
        })
    }
}

/// `rewrite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub(crate) uri: Option<String>,
    pub(crate) uri_regex: Option<RegexRewrite>,
    pub(crate) authority: Option<String>,
}

impl Rewrite {
    /// Replacement for the matched part of the path (Envoy `prefix_rewrite`).
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }
    /// Regex substitution on the path.
    pub fn uri_regex(&self) -> Option<&RegexRewrite> {
        self.uri_regex.as_ref()
    }
    /// Authority sent upstream.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    fn to_raw(&self) -> raw::HttpRewrite {
        raw::HttpRewrite {
            uri: self.uri.clone(),
            authority: self.authority.clone(),
            uri_regex_rewrite: self.uri_regex.as_ref().map(|r| raw::RegexRewrite {
                matcher: Some(r.pattern.as_str().to_owned()),
                rewrite: Some(r.rewrite.clone()),
            }),
        }
    }
}

/// `uriRegexRewrite`: every non-overlapping match of `pattern` in the path is replaced.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    pub(crate) pattern: regex::Regex,
    pub(crate) rewrite: String,
    pub(crate) replacement: String,
}

impl PartialEq for RegexRewrite {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.rewrite == other.rewrite
    }
}

impl Eq for RegexRewrite {}

impl RegexRewrite {
    /// The compiled (unanchored) pattern.
    pub fn pattern(&self) -> &regex::Regex {
        &self.pattern
    }
    /// The rewrite as written, with `\1` group references.
    pub fn rewrite(&self) -> &str {
        &self.rewrite
    }
    /// Applies the substitution to a path.
    ///
    /// ```
    /// # let loaded = mesh_model::load_str("x", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - rewrite:\n      uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}\n    route:\n    - destination: {host: a}\n");
    /// # let vs = &loaded.config().virtual_services()[0];
    /// let rw = vs.http()[0].rewrite().unwrap().uri_regex().unwrap();
    /// assert_eq!(rw.apply("/service/update/v1/api"), "/v1/api/instance/update");
    /// ```
    pub fn apply<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        self.pattern.replace_all(path, self.replacement.as_str())
    }
}

/// Converts RE2-style `\1` references into the `${1}` form the regex crate expands.
fn rewrite_to_replacement(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len() + 8);
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

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

    fn to_raw(&self) -> raw::HttpRedirect {
        let (port, derive_port) = match self.port {
            RedirectPort::Unchanged => (None, None),
            RedirectPort::Explicit(p) => (Some(i64::from(p)), None),
            RedirectPort::FromProtocolDefault => (None, Some("FROM_PROTOCOL_DEFAULT".to_owned())),
            RedirectPort::FromRequestPort => (None, Some("FROM_REQUEST_PORT".to_owned())),
        };
        raw::HttpRedirect {
            uri: self.uri.clone(),
            authority: self.authority.clone(),
            port,
            derive_port,
            scheme: self.scheme.clone(),
            redirect_code: Some(i64::from(self.code)),
            prefix_rewrite: self.prefix_rewrite.clone(),
        }
    }
}

/// `directResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    pub(crate) status: u16,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) body_is_text: bool,
}

impl DirectResponse {
    /// Status code.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// Body bytes (decoded from base64 when written as `bytes`).
    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    fn to_raw(&self) -> raw::HttpDirectResponse {
        use base64::Engine;
        raw::HttpDirectResponse {
            status: Some(i64::from(self.status)),
            body: self.body.as_ref().map(|b| {
                if self.body_is_text {
                    raw::HttpBody {
                        string: Some(String::from_utf8_lossy(b).into_owned()),
                        bytes: None,
                    }
                } else {
                    raw::HttpBody {
                        string: None,
                        bytes: Some(base64::engine::general_purpose::STANDARD.encode(b)),
                    }
                }
            }),
        }
    }
}

/// `delegate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
}

impl Delegate {
    /// Delegate virtual service name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Delegate namespace; the root's when `None`.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

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

/// `corsPolicy`, validated. A client-side library does not act on it.
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

    fn to_raw(&self) -> raw::CorsPolicy {
        raw::CorsPolicy {
            allow_origin: Vec::new(),
            allow_origins: self
                .allow_origins
                .iter()
                .map(|m| Some(sm_to_raw(m)))
                .collect(),
            allow_methods: self.allow_methods.clone(),
            allow_headers: self.allow_headers.clone(),
            expose_headers: self.expose_headers.clone(),
            max_age: self.max_age.map(|d| d.to_string()),
            allow_credentials: self.allow_credentials,
            unmatched_preflights: self.unmatched_preflights.clone(),
        }
    }
}

fn retry_to_raw(p: &RetryPolicy) -> raw::HttpRetry {
    raw::HttpRetry {
        attempts: Some(i64::from(p.attempts)),
        per_try_timeout: p.per_try_timeout.map(|d| d.to_string()),
        retry_on: p.retry_on_written.then(|| p.retry_on.to_string()),
        retry_remote_localities: p.retry_remote_localities,
        retry_ignore_previous_hosts: p.retry_ignore_previous_hosts,
        backoff: p.backoff.map(|d| d.to_string()),
    }
}

fn fault_to_raw(f: &FaultInjection) -> raw::HttpFaultInjection {
    raw::HttpFaultInjection {
        delay: f.delay.as_ref().map(|d| raw::FaultDelay {
            fixed_delay: Some(d.fixed_delay.to_string()),
            percentage: Some(raw::Percent {
                value: Some(d.percentage.value()),
            }),
            ..Default::default()
        }),
        abort: f.abort.as_ref().map(|a| raw::FaultAbort {
            http_status: match a.status {
                AbortStatus::Http(s) => Some(i64::from(s)),
                AbortStatus::Grpc(_) => None,
            },
            grpc_status: match a.status {
                AbortStatus::Grpc(g) => Some(g.name().to_owned()),
                AbortStatus::Http(_) => None,
            },
            http2_error: None,
            percentage: Some(raw::Percent {
                value: Some(a.percentage.value()),
            }),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: raw -> validated, collecting every problem with its path.
// ---------------------------------------------------------------------------------------------

pub(crate) fn validate(cx: &mut Cx<'_>, raw: &raw::VirtualService) -> VirtualService {
    let root = Path::ROOT;
    let spec_p = root.key("spec");
    let spec = &raw.spec;
    let meta = Meta::from_raw(&raw.metadata, cx.source.clone(), cx.document);
    crate::load::check_metadata(cx, &raw.metadata);

    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        cx.error(
            &spec_p,
            "http, tcp or tls must be provided in virtual service",
        );
    }
    let applies_to_mesh = spec.gateways.is_empty() || spec.gateways.iter().any(|g| g == "mesh");
    let is_delegate = spec.hosts.is_empty();

    // Hosts (V2, V3, V4).
    let hosts_p = spec_p.key("hosts");
    let mut hosts = Vec::new();
    for (i, h) in spec.hosts.iter().enumerate() {
        let p = hosts_p.index(i);
        if h == "*" && applies_to_mesh {
            cx.error(&p, "wildcard host * is not allowed for virtual services bound to the mesh gateway; name the hosts, or bind the virtual service to a gateway");
        } else if !names::is_ip(h) {
            if let Some(why) = names::wildcard_domain_problem(h) {
                cx.error(
                    &p,
                    format!("invalid host {h:?}: not a valid domain name or IP address ({why})"),
                );
            }
        }
        for (j, earlier) in spec.hosts[..i].iter().enumerate() {
            if names::hosts_overlap(earlier, h) {
                cx.error(&p, format!("duplicate hosts in virtual service: {h:?} overlaps hosts[{j}] {earlier:?}; list each host once"));
            }
        }
        hosts.push(h.to_ascii_lowercase());
    }

    // Delegate rules (V5).
    if is_delegate {
        if !spec.gateways.is_empty() {
            cx.error(
                &spec_p.key("gateways"),
                "virtual service delegate must have no gateways specified: a delegate (no hosts) inherits the root's gateways",
            );
        }
        if !spec.tls.is_empty() {
            cx.error(
                &spec_p.key("tls"),
                "virtual service delegate must have no tls route specified: delegation covers http routes only",
            );
        }
        if !spec.tcp.is_empty() {
            cx.error(
                &spec_p.key("tcp"),
                "virtual service delegate must have no tcp route specified: delegation covers http routes only",
            );
        }
    }

    // Gateways (V6).
    let gw_p = spec_p.key("gateways");
    for (i, g) in spec.gateways.iter().enumerate() {
        check_gateway(cx, &gw_p.index(i), g);
    }

    if !applies_to_mesh {
        cx.warn(
            &gw_p,
            "this virtual service is bound to gateways only (no `mesh` in gateways): it does not apply to sidecars, so not to this library; it is validated but not applied by this library",
        );
    }

    // exportTo (V9).
    check_export_to(cx, &spec_p.key("exportTo"), &spec.export_to);

    if !spec.tcp.is_empty() {
        cx.warn(
            &spec_p.key("tcp"),
            "tcp routes are accepted but not applied by this library; only http routes act",
        );
    }
    if !spec.tls.is_empty() {
        cx.warn(
            &spec_p.key("tls"),
            "tls routes are accepted but not applied by this library; only http routes act",
        );
    }

    let http_p = spec_p.key("http");
    let mut http = Vec::new();
    for (i, r) in spec.http.iter().enumerate() {
        let p = http_p.index(i);
        match r {
            None => cx.error(&p, "http route may not be null"),
            Some(r) => {
                if let Some(route) =
                    validate_route(cx, &p, r, is_delegate, applies_to_mesh, &meta.namespace)
                {
                    http.push(route);
                }
            }
        }
    }
    check_unreachable(cx, &http_p, &spec.http, &http);
    VirtualService {
        meta,
        hosts,
        gateways: spec.gateways.clone(),
        http,
        tcp: spec.tcp.clone(),
        tls: spec.tls.clone(),
        export_to: spec.export_to.clone(),
        skipped_delegations: Vec::new(),
    }
}

/// V10: routes after a catch-all, and match blocks an earlier block already covers.
fn check_unreachable(
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

pub(crate) fn check_export_to(cx: &mut Cx<'_>, p: &Path<'_>, list: &[String]) {
    let own = cx
        .resource
        .as_ref()
        .map(|r| r.namespace.clone())
        .unwrap_or_default();
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
        let canon = |s: &str| if s == "." { own.clone() } else { s.to_owned() };
        if list[..i].iter().any(|x| canon(x) == canon(e)) {
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

fn check_gateway(cx: &mut Cx<'_>, p: &Path<'_>, g: &str) {
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

fn validate_route(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    r: &raw::HttpRoute,
    in_delegate: bool,
    applies_to_mesh: bool,
    namespace: &str,
) -> Option<HttpRoute> {
    let _ = namespace;
    let has_route = !r.route.is_empty();
    let has_redirect = r.redirect.is_some();
    let has_direct = r.direct_response.is_some();
    let has_delegate = r.delegate.is_some();

    // R1-R4.
    if !has_route && !has_redirect && !has_direct && !has_delegate {
        cx.error(p, "HTTP route, redirect or direct_response is required; add route:, redirect:, directResponse: or delegate:");
    }
    if has_redirect {
        if has_route {
            cx.error(p, "HTTP route cannot contain both route and redirect: a redirect answers the request itself; keep one");
        }
        if r.fault.is_some() {
            cx.error(p, "HTTP route cannot contain both fault and redirect: faults apply to forwarded requests only");
        }
        if r.rewrite.is_some() {
            cx.error(p, "HTTP route rule cannot contain both rewrite and redirect: use the redirect's uri/authority instead");
        }
        if has_direct {
            cx.error(
                p,
                "HTTP route cannot contain both directResponse and redirect: keep one",
            );
        }
    }
    if has_direct {
        if has_route {
            cx.error(p, "HTTP route cannot contain both route and directResponse: a direct response answers the request itself; keep one");
        }
        if r.fault.is_some() {
            cx.error(p, "HTTP route cannot contain both fault and directResponse: faults apply to forwarded requests only");
        }
        if r.rewrite.is_some() {
            cx.error(p, "HTTP route rule cannot contain both rewrite and directResponse: nothing is forwarded to rewrite");
        }
    }
    if has_delegate {
        if in_delegate {
            cx.error(
                &p.key("delegate"),
                "http route of a delegate virtual service cannot contain delegate: delegation is one level only",
            );
        } else {
            if has_route {
                cx.error(p, "http route with delegate must not specify route: the delegate virtual service supplies the destinations");
            }
            if has_redirect {
                cx.error(p, "http route with delegate must not specify redirect: the delegate virtual service supplies the action");
            }
        }
    }

    // Matches (M*).
    let mp = p.key("match");
    let mut matches = Vec::new();
    for (i, m) in r.matches.iter().enumerate() {
        let ip = mp.index(i);
        match m {
            None => cx.error(&ip, "match may not be null"),
            Some(m) => matches.push(validate_match(cx, &ip, m, applies_to_mesh)),
        }
    }

    // Action.
    let action = if has_delegate {
        let d = r.delegate.as_ref()?;
        let name = d.name.clone().unwrap_or_default();
        if name.is_empty() {
            cx.error(&p.key("delegate").key("name"), "delegate name is required");
        }
        RouteAction::Delegate(Delegate {
            name,
            namespace: d.namespace.clone(),
        })
    } else if let Some(rd) = &r.redirect {
        RouteAction::Redirect(validate_redirect(cx, &p.key("redirect"), rd, &r.matches))
    } else if let Some(dr) = &r.direct_response {
        RouteAction::DirectResponse(validate_direct_response(cx, &p.key("directResponse"), dr))
    } else {
        RouteAction::Route(validate_destinations(cx, &p.key("route"), &r.route))
    };

    // Rewrite (RW*).
    let rewrite = r
        .rewrite
        .as_ref()
        .map(|rw| validate_rewrite(cx, &p.key("rewrite"), rw));

    // Timeout (R6).
    let timeout = duration(cx, &p.key("timeout"), r.timeout.as_deref());

    // Retries (T*).
    let retries = validate_retries(cx, &p.key("retries"), r.retries.as_ref());

    // Fault (F*).
    let fault = r
        .fault
        .as_ref()
        .and_then(|f| validate_fault(cx, &p.key("fault"), f));

    // Mirrors (R5, R7, R8).
    let mirrors = validate_mirrors(cx, p, r);

    // CORS (C*).
    let cors = r
        .cors_policy
        .as_ref()
        .map(|c| validate_cors(cx, &p.key("corsPolicy"), c));

    // Headers (H*, R9).
    let hp = p.key("headers");
    let headers = validate_headers(cx, &hp, r.headers.as_ref());
    // R9: every authority write after the first is reported where it is written.
    let mut first_authority: Option<String> = r
        .rewrite
        .as_ref()
        .and_then(|rw| rw.authority.as_ref())
        .map(|_| "rewrite.authority".to_owned());
    if let Some(h) = r.headers.as_ref().and_then(|h| h.request.as_ref()) {
        let rq = hp.key("request");
        for (field, map) in [("set", &h.set), ("add", &h.add)] {
            for k in map.keys() {
                if !(k.eq_ignore_ascii_case("host") || k == ":authority") {
                    continue;
                }
                match &first_authority {
                    None => first_authority = Some(format!("headers.request.{field}.{k}")),
                    Some(first) => cx.error(
                        &rq.key(field).key(k),
                        format!("authority header cannot be set multiple times: it is already set by {first}; keep one of them"),
                    ),
                }
            }
        }
    }

    Some(HttpRoute {
        name: r.name.clone(),
        matches,
        action,
        rewrite,
        timeout,
        retries,
        fault,
        mirrors,
        cors,
        headers,
    })
}

pub(crate) fn duration(cx: &mut Cx<'_>, p: &Path<'_>, s: Option<&str>) -> Option<Duration> {
    let s = s?;
    match Duration::parse_istio(s) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(p, e.to_string());
            None
        }
    }
}

fn string_match(
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
        return match Regex::new(re) {
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

fn validate_match(
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
        .and_then(|s| string_match(cx, &p.key("uri"), s, true, false));
    out.scheme = m
        .scheme
        .as_ref()
        .and_then(|s| string_match(cx, &p.key("scheme"), s, false, false));
    out.method = m
        .method
        .as_ref()
        .and_then(|s| string_match(cx, &p.key("method"), s, false, false));
    out.authority = m
        .authority
        .as_ref()
        .and_then(|s| string_match(cx, &p.key("authority"), s, false, false));

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
            if let Some(s) = string_match(cx, &np, sm, false, negated) {
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
        if let Some(s) = string_match(cx, &np, sm, false, false) {
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
        check_gateway(cx, &gp.index(i), g);
    }
    out
}

pub(crate) fn validate_destination(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    d: &raw::Destination,
) -> Option<Destination> {
    let host = match d.host.as_deref() {
        None | Some("") => {
            cx.error(
                &p.key("host"),
                "destination host is required: name the service to send to",
            );
            return None;
        }
        Some("*") => {
            cx.error(
                &p.key("host"),
                "invalid destination host *: name the service",
            );
            return None;
        }
        Some(h) => {
            if names::is_ip(h) {
                cx.error(
                    &p.key("host"),
                    format!("invalid destination host {h:?}: an IP address is not allowed here; use the service's domain name (a ServiceEntry can name an IP endpoint)"),
                );
                return None;
            }
            if let Some(why) = names::wildcard_domain_problem(h) {
                cx.error(
                    &p.key("host"),
                    format!("invalid destination host {h:?}: not a valid domain name ({why})"),
                );
                return None;
            }
            h.to_ascii_lowercase()
        }
    };
    if let Some(s) = d.subset.as_deref() {
        if !s.is_empty() && !names::is_dns1123_label(s) {
            cx.error(
                &p.key("subset"),
                format!(
                    "subset name {s:?} is invalid: use a DNS-1123 label (letters, digits, '-')"
                ),
            );
        }
    }
    let mut port = None;
    if let Some(ps) = &d.port {
        let n = ps.number.unwrap_or(0);
        match u16::try_from(n) {
            Ok(n) if n > 0 => port = Some(n),
            _ => cx.error(
                &p.key("port").key("number"),
                format!("port number {n} must be in the range 1..65535"),
            ),
        }
    }
    Some(Destination {
        host,
        subset: d.subset.clone().filter(|s| !s.is_empty()),
        port,
    })
}

fn validate_destinations(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    list: &[Option<raw::HttpRouteDestination>],
) -> Vec<RouteDestination> {
    let mut out = Vec::new();
    let mut total: i64 = 0;
    let single = list.len() == 1;
    for (i, rd) in list.iter().enumerate() {
        let ip = p.index(i);
        let Some(rd) = rd else {
            cx.error(&ip, "weight may not be nil: a route entry is null");
            continue;
        };
        let Some(d) = &rd.destination else {
            cx.error(
                &ip.key("destination"),
                "destination is required: give the host (and optionally subset and port)",
            );
            continue;
        };
        let dest = validate_destination(cx, &ip.key("destination"), d);
        let w = rd.weight.unwrap_or(0);
        if w < 0 {
            cx.error(
                &ip.key("weight"),
                format!("weight {w} cannot be negative; weights are relative shares >= 0"),
            );
            continue;
        }
        if w > i64::from(i32::MAX) {
            cx.error(
                &ip.key("weight"),
                format!("weight {w} is larger than the int32 field allows"),
            );
            continue;
        }
        total += w;
        let headers = validate_headers(cx, &ip.key("headers"), rd.headers.as_ref());
        if let Some(destination) = dest {
            let weight = if single { 100 } else { w as u32 };
            if weight > 0 {
                out.push(RouteDestination {
                    destination,
                    weight,
                    headers,
                });
            }
        }
    }
    if list.len() > 1 && total == 0 {
        cx.error(p, "total destination weight = 0: give at least one destination a weight above 0 (weights are relative; an omitted weight is 0)");
    }
    out
}

fn header_ops(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    ops: Option<&raw::HeaderOperations>,
    request: bool,
) -> HeaderOps {
    let mut out = HeaderOps::default();
    let Some(ops) = ops else { return out };
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        let fp = p.key(field);
        for (name, value) in map {
            let np = fp.key(name);
            if name.is_empty() {
                cx.error(&np, "header name cannot be empty");
                continue;
            }
            let is_authority = name.eq_ignore_ascii_case("host") || name == ":authority";
            if let Some(why) = names::header_value_problem(value) {
                cx.error(&np, why);
                continue;
            }
            if request && is_authority {
                if out.authority.is_none() || field == "set" {
                    out.authority = Some((value.clone(), field == "set"));
                }
                continue;
            }
            if !request && name.eq_ignore_ascii_case("host") {
                cx.error(&np, "the host header cannot be changed on a response");
                continue;
            }
            if name.starts_with(':') {
                cx.error(&np, format!("pseudo-header {name:?} cannot be changed; only :authority (on requests) can"));
                continue;
            }
            if value.contains('%') && value.replace("%%", "").contains('%') {
                cx.warn(&np, "Envoy %VARIABLE% substitution is not performed by this library; the value is sent as written");
            }
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value.replace("%%", "%")),
            ) {
                (Ok(n), Ok(v)) => {
                    if field == "set" {
                        out.set.push((n, v));
                        out.set_written.push(value.clone());
                    } else {
                        out.add.push((n, v));
                        out.add_written.push(value.clone());
                    }
                }
                (Err(_), _) => cx.error(&np, format!("{name:?} is not a valid HTTP header name")),
                (_, Err(_)) => cx.error(&np, "not a valid HTTP header value"),
            }
        }
    }
    let rp = p.key("remove");
    for (i, name) in ops.remove.iter().enumerate() {
        let ip = rp.index(i);
        if name.is_empty() {
            cx.error(&ip, "header name cannot be empty");
        } else if name.eq_ignore_ascii_case("host") {
            cx.error(&ip, "the host header cannot be removed");
        } else if name.starts_with(':') {
            cx.error(&ip, format!("pseudo-header {name:?} cannot be removed"));
        } else {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => out.remove.push(n),
                Err(_) => cx.error(&ip, format!("{name:?} is not a valid HTTP header name")),
            }
        }
    }
    out
}

fn validate_headers(cx: &mut Cx<'_>, p: &Path<'_>, h: Option<&raw::Headers>) -> Headers {
    let Some(h) = h else {
        return Headers::default();
    };
    Headers {
        request: header_ops(cx, &p.key("request"), h.request.as_ref(), true),
        response: header_ops(cx, &p.key("response"), h.response.as_ref(), false),
    }
}

fn validate_redirect(
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

fn http_status(cx: &mut Cx<'_>, p: &Path<'_>, status: i64) -> Option<u16> {
    if (200..=599).contains(&status) {
        Some(status as u16)
    } else if status == 600 {
        cx.error(
            p,
            "status 600 is not in range 200-599: Istio's check lets 600 pass but Envoy refuses it",
        );
        None
    } else {
        cx.error(
            p,
            format!("status {status} is not in range 200-599: use a final HTTP status code"),
        );
        None
    }
}

fn validate_direct_response(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    d: &raw::HttpDirectResponse,
) -> DirectResponse {
    use base64::Engine;
    let status = match d.status {
        None => {
            cx.error(
                &p.key("status"),
                "directResponse status is required (e.g. 503)",
            );
            200
        }
        Some(s) => http_status(cx, &p.key("status"), s).unwrap_or(200),
    };
    let mut body = None;
    let mut body_is_text = true;
    if let Some(b) = &d.body {
        let bp = p.key("body");
        match (&b.string, &b.bytes) {
            (Some(_), Some(_)) => cx.error(
                &bp,
                "only one of string or bytes can be set in a directResponse body",
            ),
            (Some(s), None) => body = Some(s.as_bytes().to_vec()),
            (None, Some(enc)) => {
                body_is_text = false;
                match base64::engine::general_purpose::STANDARD.decode(enc) {
                    Ok(v) => body = Some(v),
                    Err(e) => cx.error(&bp.key("bytes"), format!("bytes must be base64: {e}")),
                }
            }
            (None, None) => {}
        }
        if let Some(b) = &body {
            if b.len() > 1 << 20 {
                cx.error(
                    &bp,
                    format!(
                        "direct_response body must be less than 1MB (it is {} bytes); serve large bodies from a backend",
                        b.len()
                    ),
                );
            } else if b.len() > 100 << 10 {
                cx.warn(
                    &bp,
                    format!(
                        "body is {} bytes: large direct_responses may impact control plane performance (over 100 KiB)",
                        b.len()
                    ),
                );
            }
        }
    }
    DirectResponse {
        status,
        body,
        body_is_text,
    }
}

fn validate_rewrite(cx: &mut Cx<'_>, p: &Path<'_>, r: &raw::HttpRewrite) -> Rewrite {
    if r.uri.is_some() && r.uri_regex_rewrite.is_some() {
        cx.error(
            p,
            "only one of uri or uriRegexRewrite can be set in a rewrite",
        );
    }
    if r.uri.is_none() && r.uri_regex_rewrite.is_none() && r.authority.is_none() {
        cx.error(
            p,
            "rewrite must specify at least one of uri, uriRegexRewrite or authority",
        );
    }
    let mut uri_regex = None;
    if let Some(rr) = &r.uri_regex_rewrite {
        let rp = p.key("uriRegexRewrite");
        let m = rr.matcher.as_deref().unwrap_or("");
        let w = rr.rewrite.as_deref().unwrap_or("");
        if m.is_empty() {
            cx.error(
                &rp.key("match"),
                "uriRegexRewrite match cannot be empty: give a regex",
            );
        }
        if w.is_empty() {
            cx.error(
                &rp.key("rewrite"),
                "uriRegexRewrite rewrite cannot be empty: give the replacement",
            );
        }
        if !m.is_empty() {
            match crate::matching::compile(m, m) {
                Ok(re) if !w.is_empty() => {
                    uri_regex = Some(RegexRewrite {
                        pattern: re,
                        rewrite: w.to_owned(),
                        replacement: rewrite_to_replacement(w),
                    })
                }
                Ok(_) => {}
                Err(e) => cx.error(&rp.key("match"), e.to_string()),
            }
        }
    }
    Rewrite {
        uri: r.uri.clone(),
        uri_regex,
        authority: r.authority.clone(),
    }
}

fn validate_retries(cx: &mut Cx<'_>, p: &Path<'_>, r: Option<&raw::HttpRetry>) -> RetryPolicy {
    let Some(r) = r else {
        return RetryPolicy::istio_default();
    };
    let mut policy = RetryPolicy::istio_default();
    policy.written = true;
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        cx.error(
            &p.key("attempts"),
            "attempts cannot be negative; use 0 to disable retries or a positive count",
        );
    }
    if attempts > i64::from(i32::MAX) {
        cx.error(
            &p.key("attempts"),
            "attempts is larger than the int32 field allows",
        );
    }
    policy.attempts = attempts.clamp(0, i64::from(i32::MAX)) as u32;
    if attempts == 0
        && (r.per_try_timeout.is_some()
            || r.retry_on.as_deref().is_some_and(|s| !s.is_empty())
            || r.retry_remote_localities.is_some())
    {
        cx.error(p, "http retry policy configured when attempts are set to 0 (disabled): remove perTryTimeout, retryOn and retryRemoteLocalities, or set attempts above 0");
    }
    policy.per_try_timeout = duration(cx, &p.key("perTryTimeout"), r.per_try_timeout.as_deref());
    policy.backoff = duration(cx, &p.key("backoff"), r.backoff.as_deref());
    policy.retry_remote_localities = r.retry_remote_localities;
    policy.retry_ignore_previous_hosts = r.retry_ignore_previous_hosts;
    if let Some(s) = r.retry_on.as_deref().filter(|s| !s.is_empty()) {
        match s.parse::<RetryOn>() {
            Ok(on) => {
                policy.retry_on = on;
                policy.retry_on_written = true;
            }
            Err(e) => cx.error(&p.key("retryOn"), e.to_string()),
        }
    }
    policy
}

fn percentage(
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

fn validate_fault(
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
        let pct = percentage(
            cx,
            &dp.key("percentage"),
            d.percentage.as_ref(),
            d.percent,
            true,
        );
        match &d.fixed_delay {
            Some(s) => {
                if let Some(fixed) = duration(cx, &dp.key("fixedDelay"), Some(s)) {
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
        let pct = percentage(cx, &ap.key("percentage"), a.percentage.as_ref(), None, true);
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
            if let Some(s) = http_status(cx, &ap.key("httpStatus"), s) {
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

fn validate_mirrors(cx: &mut Cx<'_>, p: &Path<'_>, r: &raw::HttpRoute) -> Vec<Mirror> {
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
            (mp, dep) => percentage(cx, &p.key("mirrorPercentage"), mp.as_ref(), dep, false),
        };
        if let Some(d) = validate_destination(cx, &p.key("mirror"), m) {
            out.push(Mirror {
                destination: d,
                percentage: pct,
                legacy: true,
            });
        }
    } else if r.mirror_percentage.is_some() {
        let _ = percentage(
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
            Some(x) => percentage(cx, &ip.key("percentage"), Some(x), None, false),
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

const CORS_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

fn validate_cors(cx: &mut Cx<'_>, p: &Path<'_>, c: &raw::CorsPolicy) -> CorsPolicy {
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
                if let Some(m) = string_match(cx, &ip, o, false, false) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backreferences_become_named_expansions() {
        assert_eq!(
            rewrite_to_replacement(r"/customprefix/\2/\1"),
            "/customprefix/${2}/${1}"
        );
        assert_eq!(rewrite_to_replacement("/a$b"), "/a$$b");
    }
}
