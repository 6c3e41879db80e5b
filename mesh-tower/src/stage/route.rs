//! Routing: the route table's decision for a request, and the local replies it can end in.

use std::sync::Arc;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Response};
use mesh_resilience::rng::Rolls;
use mesh_routing::cors::{Cors, CorsVerdict};
use mesh_routing::lb::HashPolicy;
use mesh_routing::{Action, DecisionKey, RequestView, RouteDecision};

use crate::body::MeshBody;
use crate::cluster::ClusterState;
use crate::compiled::Compiled;
use crate::error::MeshError;
use crate::shared::Shared;
use crate::stage::reply;

/// What routing decided for a request that goes upstream. Owned (the table it was decided
/// on, and the decision as indices into it), so that a request's future can keep it.
pub(crate) struct Forward {
    /// The table the request was routed on.
    pub(crate) compiled: Arc<Compiled>,
    pub(crate) key: DecisionKey,
    /// The cluster's state; `None` for a passthrough to a host no service names.
    pub(crate) cluster: Option<Arc<ClusterState>>,
    /// The request's consistent-hash key, when the cluster hashes.
    pub(crate) hash: Option<u64>,
    /// The rewritten path and query, when the route rewrites the path (taken by the
    /// request's template).
    pub(crate) path: Option<PathAndQuery>,
    /// Whether the route has header operations (else its responses need no look at it).
    pub(crate) header_ops: bool,
    /// The origin of an actual CORS request, whose response gets the route's CORS headers.
    cors_origin: Option<HeaderValue>,
    /// The `set-cookie` of a hash cookie generated for this request (a `httpCookie` with a
    /// `ttl` the request did not carry), added to the upstream response.
    pub(crate) set_cookie: Option<HeaderValue>,
}

impl Forward {
    /// The route decision.
    pub(crate) fn decision(&self) -> RouteDecision<'_> {
        self.compiled.table.decision(self.key)
    }

    /// The route's CORS filter and the origin, for an actual CORS request.
    pub(crate) fn cors(&self) -> Option<(&Cors, &HeaderValue)> {
        let origin = self.cors_origin.as_ref()?;
        Some((self.decision().cors_filter()?, origin))
    }

    /// Sets the CORS headers of an actual CORS request's response.
    pub(crate) fn add_cors(&self, headers: &mut http::HeaderMap) {
        if let Some((c, origin)) = self.cors() {
            c.response_headers(origin, headers);
        }
    }
}

/// Where routing sends a request.
pub(crate) enum Routing<'t, RB> {
    /// Upstream, with the decision (borrowed from the caller's table, which the [`Forward`]
    /// holds too).
    Forward(Forward, RouteDecision<'t>),
    /// Nowhere: this local reply (or error) is the answer.
    Done(Result<Response<MeshBody<RB>>, MeshError>),
}

/// Routes the request.
pub(crate) fn route<'t, RB>(
    shared: &Shared,
    compiled: &'t Arc<Compiled>,
    parts: &Parts,
    rolls: &mut Rolls,
    span: &tracing::Span,
) -> Routing<'t, RB> {
    let mut view = RequestView::from_parts(parts);
    if let Some(ip) = shared.client.ip() {
        view = view.with_source_ip(ip);
    }
    let decision = compiled.table.route(&view, rolls.route());
    // Envoy's CORS filter runs before the fault filter and the router: a preflight is
    // answered here; an actual CORS request's response gets the CORS headers, whoever
    // answers it.
    let cors = match decision.cors_filter().map(|c| (c, c.evaluate(&view))) {
        Some((_, CorsVerdict::Preflight(headers))) => {
            return Routing::Done(Ok(reply::preflight(headers)));
        }
        Some((c, CorsVerdict::Actual(origin))) => Some((c, origin)),
        Some((_, CorsVerdict::Pass)) | None => None,
    };
    let with_cors = |mut res: Response<MeshBody<RB>>| {
        if let Some((c, origin)) = &cors {
            c.response_headers(origin, res.headers_mut());
        }
        res
    };
    match decision.action() {
        Action::Redirect(_) => {
            return Routing::Done(Ok(with_cors(reply::redirect(&decision, &view))));
        }
        Action::DirectResponse(d) => {
            return Routing::Done(Ok(with_cors(reply::direct(&decision, d))));
        }
        Action::NoRoute => return Routing::Done(Err(MeshError::no_route())),
        Action::UnknownSubset(r) => {
            let name = compiled.table.cluster_name(r.cluster());
            let err = MeshError::unknown_cluster()
                .with_context(Some(&name), None, 0)
                .with_route_headers(&decision, cors);
            return Routing::Done(Err(err));
        }
        Action::Route(_) | Action::Passthrough(_) => {}
    }
    crate::telemetry::spans::record_route(span, compiled, &decision);
    let path = decision.rewritten_path(&view).and_then(|p| {
        PathAndQuery::try_from(p)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "rewritten path is not a valid URI path; path kept");
            })
            .ok()
    });
    let mut hash = decision.hash_key(&view);
    let mut set_cookie = None;
    if let (None, Some(HashPolicy::Cookie(c))) = (hash, decision.policy().hash_policy()) {
        if let Some(g) = c.generate(rolls.decide()) {
            hash = Some(g.key);
            set_cookie = HeaderValue::try_from(g.set_cookie).ok();
        }
    }
    let cluster = decision
        .cluster()
        .map(|id| compiled.cluster(id, &shared.registry));
    let key = decision.key();
    let header_ops = decision.header_operations().next().is_some();
    let cors_origin = cors.map(|(_, origin)| origin.clone());
    let forward = Forward {
        compiled: Arc::clone(compiled),
        key,
        cluster,
        hash,
        path,
        header_ops,
        cors_origin,
        set_cookie,
    };
    Routing::Forward(forward, decision)
}
