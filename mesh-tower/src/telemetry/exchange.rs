//! One request's telemetry: what is known when it enters ([`Exchange`]), recorded when its
//! response ends ([`Tail`], carried by the response body) or at once for an error or a local
//! reply.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Body;
use mesh_model::GrpcStatus;
use mesh_resilience::headers::GRPC_STATUS;

use crate::body::MeshBody;
use crate::cluster::ClusterState;
use crate::error::MeshError;
use crate::shared::Shared;
use crate::telemetry::access_log::AccessEntry;
use crate::telemetry::metrics::{Completed, Series};
use crate::telemetry::{ResponseFlag, ResponseFlags};

/// What one request's telemetry needs from its start to its end. Cheap when nothing
/// records: a few words, one flag checked.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// Whether metrics are recorded for this request (enabled, and a recorder installed).
    pub(crate) metrics: bool,
    pub(crate) start: tokio::time::Instant,
    grpc: bool,
    request_bytes: u64,
    cluster: Option<Arc<ClusterState>>,
    /// The destination series of the last attempt's endpoint in `cluster` (0: none).
    pub(crate) peer: u32,
    passthrough: bool,
    /// The access-log entry, when the log is on.
    log: Option<Box<AccessEntry>>,
}

impl Exchange {
    /// A request enters the mesh now.
    pub(crate) fn start<B: Body>(shared: &Shared, req: &Request<B>) -> Self {
        let metrics = shared.telemetry.metrics && crate::telemetry::metrics::recorder_installed();
        let log = shared
            .settings
            .access_log
            .then(|| Box::new(AccessEntry::new(req)));
        let (grpc, request_bytes) = if metrics || log.is_some() {
            let hint = req.body().size_hint();
            (is_grpc(req.headers()), hint.exact().unwrap_or(hint.lower()))
        } else {
            (false, 0)
        };
        Exchange {
            metrics,
            start: crate::time::now(),
            grpc,
            request_bytes,
            cluster: None,
            peer: 0,
            passthrough: false,
            log,
        }
    }

    /// Whether anything is recorded for this request (else [`finish`](Self::finish) has
    /// nothing to do).
    pub(crate) fn active(&self) -> bool {
        self.metrics || self.log.is_some()
    }

    /// The id the mesh generated for the request.
    pub(crate) fn request_id(&mut self, id: Option<&HeaderValue>) {
        if let (Some(log), Some(id)) = (self.log.as_mut(), id) {
            log.set_request_id(id);
        }
    }

    /// The route that took the request (for the access log's `route_name`).
    pub(crate) fn route(&mut self, decision: &mesh_routing::RouteDecision<'_>, passthrough: bool) {
        if let Some(log) = self.log.as_mut() {
            log.route_name = match decision.route() {
                Some(r) => match (r.name, r.match_name) {
                    (Some(n), Some(m)) => format!("{n}.{m}"),
                    (Some(n), None) => n.to_owned(),
                    _ => "-".to_owned(),
                },
                // Istio's default route of a service, or its catch-all for unknown hosts.
                None if passthrough => "allow_any".to_owned(),
                None => "default".to_owned(),
            };
        }
    }

    /// An attempt starts now, to `endpoint` of `cluster`.
    pub(crate) fn attempt(
        &mut self,
        now: std::time::Instant,
        cluster: Option<&mesh_routing::ClusterName>,
        endpoint: Option<&http::uri::Authority>,
    ) {
        if let Some(log) = self.log.as_mut() {
            log.attempt_start = Some(tokio::time::Instant::from_std(now));
            log.upstream_cluster = cluster.map(ToString::to_string);
            log.upstream_host = endpoint.map(ToString::to_string);
        }
    }

    /// Routing sent the request to `cluster` (`None`: a passthrough to a host no service
    /// names).
    pub(crate) fn routed(&mut self, cluster: Option<&Arc<ClusterState>>) {
        if self.metrics {
            self.cluster = cluster.cloned();
            self.passthrough = cluster.is_none();
        }
    }

    /// Records an error or a local reply now, or hands the telemetry to the upstream
    /// response's body, which records when it ends.
    pub(crate) fn finish<RB: Body>(
        self,
        shared: &Shared,
        result: Result<Response<MeshBody<RB>>, MeshError>,
    ) -> Result<Response<MeshBody<RB>>, MeshError> {
        if !self.active() {
            return result;
        }
        let series = self.metrics.then(|| match self.cluster {
            Some(cluster) => SeriesRef::Cluster {
                cluster,
                peer: self.peer,
            },
            None if self.passthrough => SeriesRef::Other(Arc::clone(&shared.telemetry.passthrough)),
            None => SeriesRef::Other(Arc::clone(&shared.telemetry.unrouted)),
        });
        let mut log = self.log;
        match result {
            Err(e) => {
                // A gRPC caller gets Envoy's local reply as a trailers-only 200 with the
                // gRPC status of the HTTP one.
                let status = e.status().as_u16();
                let (status, grpc_status) = if self.grpc {
                    (200, Some(GrpcStatus::from_http_status(status).code() as u8))
                } else {
                    (status, None)
                };
                let c = Completed {
                    status,
                    grpc_status,
                    flags: e.response_flags(),
                    duration: crate::time::now() - self.start,
                    request_bytes: self.request_bytes,
                    response_bytes: e.reply_len() as u64,
                };
                if let Some(s) = &series {
                    s.get().record(&c);
                }
                if let Some(log) = log {
                    log.emit(&c, e.details());
                }
                Err(e)
            }
            Ok(mut res) => {
                let flags = ResponseFlags::of(&res);
                let details = match res.body().local_len() {
                    None => "via_upstream",
                    Some(_) if flags.contains(ResponseFlag::FaultInjected) => "fault_filter_abort",
                    Some(_) => "direct_response",
                };
                if let Some(log) = log.as_mut() {
                    log.upstream_service_time = log
                        .attempt_start
                        .map(|at| crate::time::now().saturating_duration_since(at));
                }
                let mut tail = Tail {
                    series,
                    log,
                    details,
                    start: self.start,
                    status: res.status().as_u16(),
                    grpc: self.grpc,
                    grpc_status: None,
                    flags,
                    request_bytes: self.request_bytes,
                    response_bytes: 0,
                };
                tail.headers(res.headers());
                if let Some(len) = res.body().local_len() {
                    tail.response_bytes = len;
                    tail.finish(None);
                } else {
                    res.body_mut().set_tail(tail);
                }
                Ok(res)
            }
        }
    }
}

/// The series a request is recorded in: its cluster's (the cluster is held anyway from
/// routing on, so finding the series takes no further reference), or one of the two series of
/// requests that reach no cluster.
#[derive(Debug)]
enum SeriesRef {
    Cluster {
        cluster: Arc<ClusterState>,
        /// The destination series of the last attempt's endpoint (0: none).
        peer: u32,
    },
    Other(Arc<Series>),
}

impl SeriesRef {
    fn get(&self) -> &Series {
        match self {
            SeriesRef::Cluster { cluster, peer } => cluster.metrics.series(*peer),
            SeriesRef::Other(s) => s,
        }
    }
}

/// Envoy's `isGrpcRequestHeaders`: `content-type` is `application/grpc` or
/// `application/grpc+<subtype>`.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .is_some_and(|v| {
            v.strip_prefix(b"application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"+"))
        })
}

/// The telemetry of a response whose body is still streaming: recorded when the body ends,
/// fails, or is dropped before its end (flag `DC`, as Envoy's for a caller that went away).
#[derive(Debug)]
pub(crate) struct Tail {
    series: Option<SeriesRef>,
    log: Option<Box<AccessEntry>>,
    details: &'static str,
    start: tokio::time::Instant,
    status: u16,
    grpc: bool,
    /// From the response headers, then the trailers.
    grpc_status: Option<u8>,
    flags: ResponseFlags,
    request_bytes: u64,
    response_bytes: u64,
}

impl Tail {
    /// Reads the `grpc-status` of response headers or trailers (trailers win, as in Envoy).
    pub(crate) fn headers(&mut self, headers: &HeaderMap) {
        if self.grpc {
            if let Some(v) = headers.get(GRPC_STATUS) {
                self.grpc_status = Some(GrpcStatus::from_header_value(v.as_bytes()).code() as u8);
            }
        }
    }

    /// `n` more response body bytes went to the caller.
    pub(crate) fn data(&mut self, n: usize) {
        self.response_bytes += n as u64;
    }

    /// The response ended (with `flag` when it ended badly): record it.
    pub(crate) fn finish(mut self, flag: Option<ResponseFlag>) {
        if let Some(f) = flag {
            self.flags.insert(f);
        }
        let grpc_status = self.grpc.then(|| {
            self.grpc_status
                .unwrap_or_else(|| GrpcStatus::from_http_status(self.status).code() as u8)
        });
        let c = Completed {
            status: self.status,
            grpc_status,
            flags: self.flags,
            duration: crate::time::now() - self.start,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
        };
        if let Some(s) = &self.series {
            s.get().record(&c);
        }
        if let Some(log) = &self.log {
            log.emit(&c, self.details);
        }
    }
}

/// Holds a body's [`Tail`]: records it with `DC` if the body is dropped before its end.
#[derive(Debug, Default)]
pub(crate) struct TailSlot(pub(crate) Option<Tail>);

impl Drop for TailSlot {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.finish(Some(ResponseFlag::DownstreamConnectionTermination));
        }
    }
}
