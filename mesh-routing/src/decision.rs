//! [`RouteDecision`]: what [`RouteTable::route`](crate::RouteTable::route) returns.

use std::fmt;

use std::time::Duration;

use http::HeaderValue;
use mesh_model::{CorsPolicy, Redirect, RedirectPort, Rewrite};
use mesh_resilience::{FaultInjection, MirrorPolicy, RetryPolicy};

use crate::cluster::{ClusterId, ClusterPolicy};
use crate::compiled::{
    CompiledDest, CompiledRoute, DirectResponse, PrefixMode, RouteTable, VirtualHost,
};
use crate::headers::RouteHeaders;
use crate::weighted::Weighted;
use crate::RequestView;

/// The identity of the virtual service that handled a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualServiceId<'t> {
    /// Namespace of the VirtualService.
    pub namespace: &'t str,
    /// Name of the VirtualService.
    pub name: &'t str,
}

impl fmt::Display for VirtualServiceId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The identity of the route (`http[]` entry) that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId<'t> {
    /// Index in the VirtualService's `http[]` list, as written.
    pub index: usize,
    /// The route's `name`, if any.
    pub name: Option<&'t str>,
    /// Index of the match block that matched in the route's `match[]` as written, or `None`
    /// for a route without match blocks.
    pub match_index: Option<usize>,
    /// The matching block's `name`, if any.
    pub match_name: Option<&'t str>,
}

impl fmt::Display for RouteId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http[{}]", self.index)?;
        match (self.name, self.match_name) {
            (Some(r), Some(m)) => write!(f, " ({r}.{m})"),
            (Some(r), None) => write!(f, " ({r})"),
            (None, Some(m)) => write!(f, " (match {m})"),
            (None, None) => Ok(()),
        }
    }
}

/// A destination of a route, resolved at compile time.
#[derive(Debug, Clone, Copy)]
pub struct DestinationRef<'t> {
    pub(crate) dest: &'t CompiledDest,
    pub(crate) table: &'t RouteTable,
}

impl<'t> DestinationRef<'t> {
    /// The destination host as an FQDN (short names expanded with the VirtualService's
    /// namespace).
    pub fn host(&self) -> &'t str {
        self.table.dest_host(self.dest.dest)
    }
    /// The subset, if any.
    pub fn subset(&self) -> Option<&'t str> {
        self.table.dest_subset(self.dest.dest)
    }
    /// The port written in the destination, if any.
    pub fn port(&self) -> Option<u16> {
        self.dest.port
    }
    /// The weight (the whole traffic for a single destination is reported as its written
    /// weight or 100).
    pub fn weight(&self) -> u32 {
        self.dest.weight
    }
    /// Destination-level header operations.
    pub fn headers(&self) -> &'t RouteHeaders {
        &self.dest.headers
    }
    /// Whether the subset is undefined (no DestinationRule visible to this client declares
    /// it): requests to it get Envoy's 503 `NC`.
    pub fn is_unknown_subset(&self) -> bool {
        !self.table.dest_subset_known(self.dest.dest)
    }
}

/// The chosen destination of a [`Action::Route`].
#[derive(Debug, Clone, Copy)]
pub struct Routed<'t> {
    pub(crate) chosen: usize,
    pub(crate) split: &'t Weighted<CompiledDest>,
    pub(crate) cluster: ClusterId,
    pub(crate) table: &'t RouteTable,
}

impl<'t> Routed<'t> {
    /// The chosen destination.
    pub fn destination(&self) -> DestinationRef<'t> {
        self.destination_at(self.chosen)
    }
    /// Index of the chosen destination among [`destinations`](Self::destinations).
    pub fn chosen_index(&self) -> usize {
        self.chosen
    }
    /// The cluster (host, subset, port) the request goes to.
    pub fn cluster(&self) -> ClusterId {
        self.cluster
    }
    /// Every weighted destination of the route (zero weights dropped), in config order.
    pub fn destinations(&self) -> impl ExactSizeIterator<Item = DestinationRef<'t>> + 't {
        let table = self.table;
        self.split
            .iter()
            .map(move |(dest, _)| DestinationRef { dest, table })
    }
    /// Number of weighted destinations.
    pub fn destination_count(&self) -> usize {
        self.split.len()
    }
    pub(crate) fn dest(&self) -> &'t CompiledDest {
        self.split
            .get(self.chosen)
            .unwrap_or_else(|| self.split.pick(0).1)
    }
    fn destination_at(&self, i: usize) -> DestinationRef<'t> {
        DestinationRef {
            dest: self.split.get(i).unwrap_or_else(|| self.split.pick(0).1),
            table: self.table,
        }
    }
}

/// Traffic to a host no virtual service covers: a default route to the host itself (§5.7).
#[derive(Debug, Clone, Copy)]
pub struct Passthrough<'t> {
    pub(crate) host: Option<&'t str>,
    pub(crate) cluster: Option<ClusterId>,
}

impl<'t> Passthrough<'t> {
    /// The service FQDN, if the authority names a known service (from a ServiceEntry, a
    /// DestinationRule or a route destination). `None`: forward to the request's own
    /// authority, resolved as usual (Istio's `ALLOW_ANY` passthrough).
    pub fn host(&self) -> Option<&'t str> {
        self.host
    }
    /// The cluster, when the host is a known service.
    pub fn cluster(&self) -> Option<ClusterId> {
        self.cluster
    }
}

/// What to do with the request.
#[derive(Debug, Clone, Copy)]
pub enum Action<'t> {
    /// Forward to the chosen destination.
    Route(Routed<'t>),
    /// The chosen destination names a subset that no DestinationRule declares: Envoy answers
    /// 503 with flag `NC` (cluster not found) and an empty body. The other fields of the
    /// decision are those of the route.
    UnknownSubset(Routed<'t>),
    /// Answer with a redirect ([`RouteDecision::redirect_location`] builds the `Location`,
    /// [`RouteDecision::redirect_code`] gives the status).
    Redirect(&'t Redirect),
    /// Answer with a fixed response.
    DirectResponse(&'t DirectResponse),
    /// A virtual service covers the host but no route matched: Envoy answers 404 with flag
    /// `NR` and an empty body.
    NoRoute,
    /// No virtual service covers the host: forward to the host itself with the default retry
    /// policy, no timeout, and its DestinationRule policy if one applies.
    Passthrough(Passthrough<'t>),
}

/// A mirror target of the route.
#[derive(Debug, Clone, Copy)]
pub struct MirrorTarget<'t> {
    /// Where to send the copy.
    pub destination: DestinationRef<'t>,
    /// The cluster of the copy.
    pub cluster: ClusterId,
    /// Which requests to mirror (sample it with a roll).
    pub policy: MirrorPolicy,
}

/// The outcome of routing one request. Borrowed from the table; building it did not allocate.
#[derive(Debug, Clone, Copy)]
pub struct RouteDecision<'t> {
    pub(crate) table: &'t RouteTable,
    pub(crate) vhost: Option<&'t VirtualHost>,
    pub(crate) route: Option<(&'t CompiledRoute, Option<usize>)>,
    pub(crate) action: Action<'t>,
    pub(crate) port: u16,
    /// Where the virtual host and the route sit in the table ([`NONE`] when absent).
    pub(crate) at: (u32, u32),
}

impl<'t> RouteDecision<'t> {
    /// The virtual service that handled the request (`None` for passthrough).
    pub fn virtual_service(&self) -> Option<VirtualServiceId<'t>> {
        self.vhost.map(|v| VirtualServiceId {
            namespace: &v.namespace,
            name: &v.name,
        })
    }

    /// The route that matched (`None` for passthrough and no-route).
    pub fn route(&self) -> Option<RouteId<'t>> {
        self.route.map(|(r, block)| RouteId {
            index: r.index,
            name: r.name.as_deref(),
            match_index: block.map(|b| r.blocks[b].index),
            match_name: block.and_then(|b| r.blocks[b].block.name()),
        })
    }

    /// What to do.
    pub fn action(&self) -> &Action<'t> {
        &self.action
    }

    /// The cluster the request goes to: the chosen destination's for a route, the host's for
    /// a passthrough to a known service.
    pub fn cluster(&self) -> Option<ClusterId> {
        match self.action {
            Action::Route(r) => Some(r.cluster),
            Action::Passthrough(p) => p.cluster,
            _ => None,
        }
    }

    /// The merged DestinationRule policy of the cluster (top level → port level → subset →
    /// subset port level, §3.8), or the defaults when none applies.
    pub fn policy(&self) -> &'t ClusterPolicy {
        match self.cluster() {
            Some(c) => self.table.policy(c),
            None => self.table.default_policy(),
        }
    }

    /// The consistent-hash key of the request under the cluster's policy, if it uses one
    /// and the request carries the key.
    pub fn hash_key(&self, req: &RequestView<'_>) -> Option<u64> {
        self.policy().hash_policy().and_then(|h| h.hash(req))
    }

    /// The route's `rewrite` as written (for explanations; [`rewritten_path`] applies it).
    ///
    /// [`rewritten_path`]: Self::rewritten_path
    pub fn rewrite(&self) -> Option<&'t Rewrite> {
        self.route.and_then(|(r, _)| r.rewrite.as_ref())
    }

    /// The path and query to send upstream when the route rewrites the path, computed from
    /// the match block that won: `rewrite.uri` replaces the matched prefix (the whole path
    /// after an exact or regex match; the leading `/` when the route has no `uri` match, as
    /// Istio matches prefix `/` then); `uriRegexRewrite` substitutes in the path. The query
    /// is kept. `None` when the route does not rewrite the path. Allocates the new path.
    pub fn rewritten_path(&self, req: &RequestView<'_>) -> Option<String> {
        let (route, block) = self.route?;
        let rw = route.rewrite.as_ref()?;
        let path = req.path();
        let mut out = if let Some(rx) = rw.uri_regex() {
            rx.apply(path).into_owned()
        } else {
            let uri = rw.uri()?;
            let prefix = block.map_or(PrefixMode::Slash, |b| route.blocks[b].prefix);
            let rest = match prefix {
                PrefixMode::Prefix(n) => path.get(n..).unwrap_or(""),
                PrefixMode::Whole => "",
                PrefixMode::Slash => path.get(1..).unwrap_or(""),
            };
            let mut s = String::with_capacity(uri.len() + rest.len());
            s.push_str(uri);
            s.push_str(rest);
            s
        };
        if let Some(q) = req.query() {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }

    /// Header operations in the order Istio applies them: for a single destination the
    /// route's then the destination's; for a weighted split the chosen destination's (on the
    /// cluster weight) then the route's.
    pub fn header_operations(&self) -> impl Iterator<Item = &'t RouteHeaders> + 't {
        let route = self.route.map(|(r, _)| &r.headers);
        let (dest, weighted) = match self.action {
            Action::Route(r) | Action::UnknownSubset(r) => {
                (Some(r.destination().headers()), r.split.len() > 1)
            }
            _ => (None, false),
        };
        let (first, second) = if weighted {
            (dest, route)
        } else {
            (route, dest)
        };
        first.into_iter().chain(second).filter(|h| !h.is_empty())
    }

    /// Whether the route (or its destinations) has any header operation.
    fn has_header_ops(&self) -> bool {
        self.route.is_some_and(|(r, _)| r.any_header_ops)
    }

    /// Applies the request header operations to `headers`, in Istio's order.
    pub fn apply_request_headers(&self, headers: &mut http::HeaderMap) {
        if !self.has_header_ops() {
            return;
        }
        for ops in self.header_operations() {
            ops.request().apply(headers);
        }
    }

    /// Applies the response header operations to `headers`, in Istio's order.
    pub fn apply_response_headers(&self, headers: &mut http::HeaderMap) {
        if !self.has_header_ops() {
            return;
        }
        for ops in self.header_operations() {
            ops.response().apply(headers);
        }
    }

    /// The `Host` to send upstream when the route rewrites it (`rewrite.authority` or a
    /// `host`/`:authority` header operation). For a single destination the route level wins;
    /// for a weighted split the destination level (set on the cluster weight) wins.
    pub fn authority_rewrite(&self) -> Option<&'t HeaderValue> {
        match self.action {
            Action::Route(r) | Action::UnknownSubset(r) => r.dest().authority.as_ref(),
            _ => None,
        }
    }

    /// The route timeout; `None` means disabled (Istio's default).
    pub fn timeout(&self) -> Option<Duration> {
        self.route
            .and_then(|(r, _)| r.retry.policy.deadlines().route())
    }

    /// The retry policy to run, with the route timeout and per-try timeout as its deadlines:
    /// the route's, or Istio's default when the route sets none (also for passthrough).
    /// Envoy's previous-hosts predicate follows `retryIgnorePreviousHosts` (default true),
    /// except that Istio leaves it out when the destination uses consistent hashing.
    pub fn retry_policy(&self) -> RetryPolicy {
        let retry = match self.route {
            Some((r, _)) => &r.retry,
            None => &self.table.default_retry,
        };
        let p = retry.policy;
        if p.previous_hosts() && self.policy().load_balancer().is_consistent_hash() {
            p.with_previous_hosts(false)
        } else {
            p
        }
    }

    /// Whether the retry policy is Istio's default (the route has no `retries` block).
    pub fn retry_is_istio_default(&self) -> bool {
        self.route.is_none_or(|(r, _)| r.retry.istio_default)
    }

    /// Fault injection of the route, in the form the resilience machines run.
    pub fn fault(&self) -> Option<&'t FaultInjection> {
        self.route.and_then(|(r, _)| r.fault.as_ref())
    }

    /// CORS policy of the route, as written.
    pub fn cors(&self) -> Option<&'t CorsPolicy> {
        self.route.and_then(|(r, _)| r.cors.as_ref())
    }

    /// The CORS filter for the route's `corsPolicy`, compiled.
    pub fn cors_filter(&self) -> Option<&'t crate::cors::Cors> {
        self.route.and_then(|(r, _)| r.cors_filter.as_ref())
    }

    /// Mirror targets of the route. Istio does not mirror when the primary cluster does not
    /// exist, so an [`Action::UnknownSubset`] has none.
    pub fn mirrors(&self) -> impl ExactSizeIterator<Item = MirrorTarget<'t>> + 't {
        let table = self.table;
        let port = self.port;
        let mirrors = match (self.route, self.action) {
            (Some((r, _)), Action::Route(_)) => &r.mirrors[..],
            _ => &[][..],
        };
        mirrors.iter().map(move |(dest, policy)| MirrorTarget {
            destination: DestinationRef { dest, table },
            cluster: table.cluster_for(dest, port),
            policy: *policy,
        })
    }

    /// The `Location` of a redirect for `req`, or `None` if the action is not a redirect.
    /// Computed on demand (it allocates the string).
    pub fn redirect_location(&self, req: &RequestView<'_>) -> Option<String> {
        let Action::Redirect(r) = self.action else {
            return None;
        };
        let scheme = r.scheme().unwrap_or(req.scheme());
        let host = r.authority().unwrap_or_else(|| req.host());
        let (host, authority_port) = crate::request::split_host_port(host);
        let port = match r.port() {
            RedirectPort::Explicit(p) => Some(p),
            RedirectPort::FromProtocolDefault => None,
            RedirectPort::FromRequestPort => Some(req.port()),
            RedirectPort::Unchanged => {
                authority_port.or_else(|| crate::request::split_host_port(req.authority()).1)
            }
        };
        let default_port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        let path = match (r.uri(), r.prefix_rewrite()) {
            (Some(uri), _) => uri.to_owned(),
            (None, Some(prefix)) => {
                let matched = self
                    .route
                    .and_then(|(route, b)| b.map(|b| &route.blocks[b].block))
                    .and_then(|b| b.uri_prefix())
                    .unwrap_or("/");
                let rest = req.path().get(matched.len()..).unwrap_or("");
                format!("{prefix}{rest}")
            }
            (None, None) => req.path().to_owned(),
        };
        let mut out = format!("{scheme}://{host}");
        if let Some(p) = port.filter(|&p| p != default_port) {
            out.push_str(&format!(":{p}"));
        }
        out.push_str(&path);
        if let Some(q) = req.query() {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }

    /// The redirect status code (301 unless configured).
    pub fn redirect_code(&self) -> Option<u16> {
        match self.action {
            Action::Redirect(r) => Some(r.code()),
            _ => None,
        }
    }
}

impl fmt::Display for RouteDecision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.virtual_service(), self.route()) {
            (Some(vs), Some(r)) => write!(f, "{vs} {r}: ")?,
            (Some(vs), None) => write!(f, "{vs}: ")?,
            _ => {}
        }
        match self.action {
            Action::Route(r) => {
                let key = self.table.cluster_key(r.cluster);
                write!(f, "route to {key}")?;
                if r.split.len() > 1 {
                    write!(
                        f,
                        " (destination {} of {}, weight {}/{})",
                        r.chosen + 1,
                        r.split.len(),
                        r.destination().weight(),
                        r.split.total()
                    )?;
                }
                Ok(())
            }
            Action::UnknownSubset(r) => write!(
                f,
                "503 NC: subset {:?} of {} is not defined by any DestinationRule",
                r.destination().subset().unwrap_or(""),
                r.destination().host()
            ),
            Action::Redirect(r) => write!(f, "redirect {}", r.code()),
            Action::DirectResponse(d) => write!(f, "direct response {}", d.status().as_u16()),
            Action::NoRoute => f.write_str("404 NR: no route matched"),
            Action::Passthrough(p) => match p.cluster {
                Some(c) => write!(f, "passthrough to {}", self.table.cluster_key(c)),
                None => f.write_str("passthrough to the requested authority"),
            },
        }
    }
}
