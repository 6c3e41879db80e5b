//! [`Cors`]: Envoy's CORS filter as istiod configures it from a route's `corsPolicy`.
//!
//! A request is a CORS request when it carries `Origin` and the route has a `corsPolicy`
//! whose `allowOrigins` match it (an origin pattern that matches `*` allows every origin).
//! A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered by the filter
//! itself: 200 with `access-control-allow-origin` (the request's origin),
//! `access-control-allow-credentials: true` when allowed, and the allowed methods, headers
//! and max age as istiod joins them (comma-separated, seconds). Any other CORS request goes
//! on; its response gets `access-control-allow-origin`, `access-control-allow-credentials`
//! and `access-control-expose-headers`. Requests whose origin no pattern allows are left
//! alone: a preflight among them goes upstream (Istio's `unmatchedPreflights: FORWARD`, its
//! default), or, with `unmatchedPreflights: IGNORE`, is answered 200 by the filter without
//! `access-control-allow-origin` (Envoy's `forward_not_matching_preflights: false`).
//!
//! ```
//! use mesh_routing::{ClientContext, RequestView, RouteTable};
//! use mesh_routing::cors::CorsVerdict;
//!
//! let yaml = r#"
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: api}
//! spec:
//!   hosts: [api.example.com]
//!   http:
//!   - corsPolicy:
//!       allowOrigins: [{exact: "https://app.example.com"}]
//!       allowMethods: [GET, POST]
//!       maxAge: 24h
//!     route: [{destination: {host: api.example.com}}]
//! "#;
//! let config = mesh_model::load_str("api.yaml", yaml).into_result().expect("valid");
//! let table = RouteTable::compile(&config, &ClientContext::default())?;
//! let mut headers = http::HeaderMap::new();
//! headers.insert("origin", "https://app.example.com".parse()?);
//! headers.insert("access-control-request-method", "POST".parse()?);
//! let view = RequestView::new("OPTIONS", "api.example.com", "/items", &headers);
//! let decision = table.route(&view, 0);
//! let cors = decision.cors_filter().expect("the route has a corsPolicy");
//! let CorsVerdict::Preflight(reply) = cors.evaluate(&view) else { panic!("a preflight") };
//! assert_eq!(reply["access-control-allow-origin"], "https://app.example.com");
//! assert_eq!(reply["access-control-allow-methods"], "GET,POST");
//! assert_eq!(reply["access-control-max-age"], "86400");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use http::{HeaderMap, HeaderValue};

use crate::matcher::StringMatcher;
use crate::RequestView;

/// A route's CORS policy, compiled: origin matchers and the header values the filter
/// writes, made once.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<StringMatcher>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
    forward_unmatched_preflights: bool,
}

/// What the CORS filter does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsVerdict<'r> {
    /// Not a CORS request for this policy (no `Origin`, or an origin the policy does not
    /// allow): nothing to do.
    Pass,
    /// A preflight: answer 200 with these headers, without going upstream.
    Preflight(HeaderMap),
    /// A CORS request that goes on; add [`Cors::response_headers`] for this origin to its
    /// response.
    Actual(&'r HeaderValue),
}

impl Cors {
    /// The policy, from origin matchers and the values as istiod joins them.
    pub(crate) fn new(
        origins: Vec<StringMatcher>,
        methods: &[String],
        headers: &[String],
        expose: &[String],
        max_age: Option<std::time::Duration>,
        allow_credentials: bool,
        forward_unmatched_preflights: bool,
    ) -> Self {
        let joined = |items: &[String]| {
            (!items.is_empty())
                .then(|| HeaderValue::try_from(items.join(",")).ok())
                .flatten()
        };
        Cors {
            origins,
            allow_methods: joined(methods),
            allow_headers: joined(headers),
            expose_headers: joined(expose),
            max_age: max_age.map(|d| HeaderValue::from(d.as_secs())),
            allow_credentials,
            forward_unmatched_preflights,
        }
    }

    /// Whether `origin` is allowed: some pattern matches it, or matches `*`.
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.origins
            .iter()
            .any(|m| m.matches(b"*") || m.matches(origin))
    }

    /// What the filter does with `req`.
    pub fn evaluate<'r>(&self, req: &RequestView<'r>) -> CorsVerdict<'r> {
        let Some(origin) = req.headers().get(ORIGIN) else {
            return CorsVerdict::Pass;
        };
        if origin.is_empty() {
            return CorsVerdict::Pass;
        }
        let allowed = self.allows(origin.as_bytes());
        let preflight = req.method() == "OPTIONS"
            && req
                .headers()
                .get(ACCESS_CONTROL_REQUEST_METHOD)
                .is_some_and(|m| !m.is_empty());
        if !allowed && (!preflight || self.forward_unmatched_preflights) {
            return CorsVerdict::Pass;
        }
        if !preflight {
            return CorsVerdict::Actual(origin);
        }
        // A preflight: answered here. Envoy names the origin only when it is allowed; an
        // unmatched one (with `unmatchedPreflights: IGNORE`) gets the rest of the policy.
        let mut h = HeaderMap::new();
        if allowed {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        if self.allow_credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        for (name, value) in [
            (ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods),
            (ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers),
            (ACCESS_CONTROL_MAX_AGE, &self.max_age),
        ] {
            if let Some(v) = value {
                h.insert(name, v.clone());
            }
        }
        CorsVerdict::Preflight(h)
    }

    /// Sets the CORS headers of the response to an actual CORS request from `origin`
    /// (replacing any the upstream sent).
    pub fn response_headers(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.allow_credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}
