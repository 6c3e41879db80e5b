//! One entry of `http[]`: what it matches, what it does, and the R1-R9 rules that tie its parts
//! together.

use crate::checks::validate_duration;
use crate::diag::{Cx, Path};
use crate::policy::{FaultInjection, RetryPolicy};
use crate::{raw, Duration};

use super::cors::{validate_cors, CorsPolicy};
use super::destination::{validate_destinations, RouteDestination};
use super::direct_response::{validate_direct_response, DirectResponse};
use super::fault::validate_fault;
use super::headers::{validate_headers, Headers, NO_HEADERS};
use super::http_match::{validate_match, HttpMatch};
use super::mirror::{validate_mirrors, Mirror};
use super::redirect::{validate_redirect, Redirect};
use super::retries::validate_retries;
use super::rewrite::{validate_rewrite, Rewrite};

/// One entry of `http[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    pub(crate) name: Option<String>,
    pub(crate) matches: Vec<HttpMatch>,
    pub(crate) action: RouteAction,
    pub(crate) rewrite: Option<Box<Rewrite>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: RetryPolicy,
    pub(crate) fault: Option<FaultInjection>,
    pub(crate) mirrors: Vec<Mirror>,
    pub(crate) cors: Option<Box<CorsPolicy>>,
    /// `None` when there is nothing to do (most routes): boxed, as the larger optional parts,
    /// so that a route without them stays small.
    pub(crate) headers: Option<Box<Headers>>,
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
        self.rewrite.as_deref()
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
        self.cors.as_deref()
    }
    /// Route-level header operations.
    pub fn headers(&self) -> &Headers {
        self.headers.as_deref().unwrap_or(&NO_HEADERS)
    }
    /// Whether the route matches every request (no match block, or a block with no condition).
    pub fn is_catch_all(&self) -> bool {
        self.matches.is_empty() || self.matches.iter().any(HttpMatch::is_catch_all)
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

/// R1-R9: one entry of `http[]` and its parts.
pub(crate) fn validate_route(
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
            // istiod accepts a null element and translates it as an empty match: every
            // request (prefix `/`).
            None => {
                cx.warn(
                    &ip,
                    "a null match block matches every request, as istiod translates it (prefix /); write {} or remove it if that is not meant",
                );
                matches.push(validate_match(
                    cx,
                    &ip,
                    &raw::HttpMatchRequest::default(),
                    applies_to_mesh,
                ));
            }
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
        .map(|rw| Box::new(validate_rewrite(cx, &p.key("rewrite"), rw)));

    // Timeout (R6).
    let timeout = validate_duration(cx, &p.key("timeout"), r.timeout.as_deref());

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
        .map(|c| Box::new(validate_cors(cx, &p.key("corsPolicy"), c)));

    // Headers (H*, R9).
    let hp = p.key("headers");
    let headers = validate_headers(cx, &hp, r.headers.as_ref()).boxed();
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
