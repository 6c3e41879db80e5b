//! The compiled table's data: what [`RouteTable::compile`](crate::RouteTable::compile) builds
//! once per configuration and every decision borrows. Data only; the functions that read it
//! live in `table`, `decision` and `explain`.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use mesh_model::{CorsPolicy, Redirect, Rewrite};
use mesh_resilience::{FaultInjection, MirrorPolicy, RetryPolicy};

use crate::client::ClientContext;
use crate::cluster::ClusterPolicy;
use crate::endpoints::{Labels, StaticEndpoints};
use crate::headers::RouteHeaders;
use crate::host::HostIndex;
use crate::matcher::MatchBlock;
use crate::weighted::Weighted;

/// One virtual host: the routes of the VirtualService that won a host name.
#[derive(Debug)]
pub(crate) struct VirtualHost {
    pub(crate) namespace: Box<str>,
    pub(crate) name: Box<str>,
    pub(crate) routes: Vec<CompiledRoute>,
    /// How many `queryParams` entries the routes test in all (a request may meet each once).
    pub(crate) query_tests: usize,
}

/// How `rewrite.uri` replaces the path when a block matched: what Envoy's `prefix_rewrite`
/// replaces depends on the match that won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixMode {
    /// The matched prefix of this many bytes is replaced.
    Prefix(usize),
    /// The whole path is replaced (exact or regex match).
    Whole,
    /// No `uri` match: Istio matches prefix `/`, so the leading `/` is replaced.
    Slash,
}

/// A match block kept for this client, with its index in the route's `match[]` as written.
#[derive(Debug)]
pub(crate) struct KeptBlock {
    pub(crate) index: usize,
    pub(crate) block: MatchBlock,
    /// What a `rewrite.uri` replaces when this block matched.
    pub(crate) prefix: PrefixMode,
}

/// A route's retry policy, converted for the resilience machines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteRetry {
    /// With the route timeout and per-try timeout folded in as deadlines. The previous-hosts
    /// predicate is as written; the decision turns it off for consistent-hash clusters.
    pub(crate) policy: RetryPolicy,
    /// Whether this is Istio's default policy (the route has no `retries` block).
    pub(crate) istio_default: bool,
}

/// One `http[]` entry, compiled for this client.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) index: usize,
    pub(crate) name: Option<Box<str>>,
    /// Empty means the route has no `match` (matches everything).
    pub(crate) blocks: Vec<KeptBlock>,
    pub(crate) action: CompiledAction,
    pub(crate) rewrite: Option<Rewrite>,
    pub(crate) headers: RouteHeaders,
    /// Whether the route or any of its destinations has header operations.
    pub(crate) any_header_ops: bool,
    pub(crate) retry: RouteRetry,
    pub(crate) fault: Option<FaultInjection>,
    pub(crate) mirrors: Vec<(CompiledDest, MirrorPolicy)>,
    pub(crate) cors: Option<CorsPolicy>,
    /// The CORS filter's compiled form of `cors`.
    pub(crate) cors_filter: Option<crate::cors::Cors>,
}

#[derive(Debug)]
pub(crate) enum CompiledAction {
    Route(Weighted<CompiledDest>),
    Redirect(Redirect),
    DirectResponse(DirectResponse),
}

/// A `directResponse`, ready to answer: the status parsed and the body shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Option<Bytes>,
}

impl DirectResponse {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The body, if any (a cheap clone of shared bytes).
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }
}

/// A route destination: an interned (host, subset) plus what the route adds.
#[derive(Debug, Clone)]
pub(crate) struct CompiledDest {
    pub(crate) dest: u32,
    pub(crate) port: Option<u16>,
    pub(crate) weight: u32,
    pub(crate) headers: RouteHeaders,
    /// The `Host` to send upstream when the route or destination rewrites it
    /// (`rewrite.authority` or a `host`/`:authority` header operation), with Istio's
    /// precedence for this destination already applied.
    pub(crate) authority: Option<HeaderValue>,
}

/// The policies of one (host, subset): the default one and the port-level ones.
#[derive(Debug)]
pub(crate) struct DestEntry {
    pub(crate) host: Box<str>,
    pub(crate) subset: Option<Box<str>>,
    /// Whether the subset is declared (always true without a subset).
    pub(crate) subset_known: bool,
    /// The subset's label selector (`None` without a subset or when it is undefined).
    pub(crate) subset_labels: Option<Labels>,
    /// The only port of the service, when a ServiceEntry declares exactly one.
    pub(crate) single_port: Option<u16>,
    pub(crate) policy: ClusterPolicy,
    pub(crate) port_policies: Vec<(u16, ClusterPolicy)>,
}

/// Something the compiler left out, with the reason (shown by
/// [`RouteTable::explain`](crate::RouteTable::explain) and
/// [`RouteTable::notes`](crate::RouteTable::notes)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileNote {
    /// `namespace/name` of the resource concerned.
    pub resource: String,
    /// What was left out and why.
    pub message: String,
}

impl std::fmt::Display for CompileNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.resource, self.message)
    }
}

/// A compiled, immutable route table for one client. `Send + Sync`; share it as
/// `Arc<RouteTable>` and swap the `Arc` to reload.
///
/// See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) client: ClientContext,
    pub(crate) vhosts: Vec<VirtualHost>,
    pub(crate) hosts: HostIndex<u32>,
    pub(crate) services: HostIndex<u32>,
    pub(crate) dests: Vec<DestEntry>,
    pub(crate) static_endpoints: StaticEndpoints,
    pub(crate) default_retry: RouteRetry,
    pub(crate) default_policy: ClusterPolicy,
    pub(crate) notes: Vec<CompileNote>,
}
