//! `meshctl curl`: real requests through the mesh, and what happened to them.
//!
//! The mesh is the library's own [`MeshLayer`], over the mesh's hyper client wrapped in a
//! [`record::Recorder`] that sees every attempt. One request prints its decision, attempts,
//! flags and response ([`report::single_text`], [`report::single_json`]); many print a summary
//! ([`report::Summary`]).

mod body;
mod record;
mod report;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mesh_tower::{MeshError, MeshLayer, ResponseFlags};
use tower::{Layer, ServiceExt};

use crate::request::{self, Request};
use crate::{exit, rng, route, sources, CurlArgs, Failure, Format};
use body::{CurlBody, Data};
use record::{Log, Recorder};

/// Most requests one run sends.
pub(crate) const MAX_REQUESTS: u64 = 1_000_000;
/// Most requests in flight at once.
pub(crate) const MAX_CONCURRENCY: u64 = 1_000;
/// Most bytes of a response body kept for printing.
const MAX_BODY: usize = 1 << 20;

/// How one request ended.
pub(crate) enum Ended {
    /// The response, its flags and its body (as much as was kept).
    Response {
        status: http::StatusCode,
        version: http::Version,
        headers: http::HeaderMap,
        flags: ResponseFlags,
        body: Result<Bytes, String>,
    },
    /// The mesh's error, and the local reply a sidecar would have sent for it.
    Error {
        error: MeshError,
        reply: http::Response<Full<Bytes>>,
    },
    /// Not finished within `--max-time`.
    OutOfTime,
}

impl Ended {
    /// The status the caller got (a local reply's for an error).
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Ended::Response { status, .. } => Some(status.as_u16()),
            Ended::Error { reply, .. } => Some(reply.status().as_u16()),
            Ended::OutOfTime => None,
        }
    }

    /// The response flags.
    pub(crate) fn flags(&self) -> ResponseFlags {
        match self {
            Ended::Response { flags, .. } => *flags,
            Ended::Error { error, .. } => error.response_flags(),
            Ended::OutOfTime => ResponseFlags::new(),
        }
    }

    /// Whether the caller got a 2xx with its whole body.
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, Ended::Response { status, body: Ok(_), .. } if status.is_success())
    }
}

/// The kind of a mesh error, as the summary counts it.
pub(crate) fn error_kind(e: &MeshError) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_overflow() {
        "overflow"
    } else if e.is_no_route() {
        "noRoute"
    } else if e.is_no_healthy_upstream() {
        "noHealthyUpstream"
    } else if e.is_unknown_cluster() {
        "unknownCluster"
    } else if e.is_body_too_large_to_retry() {
        "bodyTooLargeToRetry"
    } else if e.is_connect() {
        "connect"
    } else if e.is_upstream() {
        "upstream"
    } else {
        "other"
    }
}

/// Runs `curl`.
pub(crate) fn run(args: &CurlArgs) -> Result<u8, Failure> {
    if args.request.port.is_some() {
        return Err(Failure::usage(
            "--port does not apply to curl: the request goes to the URL's port",
        ));
    }
    let req = Request::parse(&args.request)?;
    let client = request::client(&args.request)?;
    let data = Data::parse(args.data.as_deref())?;
    if matches!(data, Data::Stdin) && args.requests > 1 {
        return Err(Failure::usage(
            "-d @- streams standard input, which can be sent once: use -n 1, or -d @FILE",
        ));
    }
    // A configuration that does not load is a usage error here: exit 1 means "not all 2xx".
    let routing = sources::load_for_routing(&args.config).map_err(|f| Failure::usage(f.message))?;
    let table = route::compile(&routing.config, &client).map_err(|f| Failure::usage(f.message))?;
    let endpoints = routing.endpoints(&table);
    let seed = args.seed.unwrap_or_else(rng::clock_seed);
    let layer = MeshLayer::builder()
        .config(routing.config.clone())
        .client(client)
        .seed(seed)
        .build()
        .map_err(|e| Failure::usage(format!("the mesh cannot be built: {e}")))?;
    // A cluster's endpoints reach the mesh as a discovery's do: one more source, overriding
    // the configuration's ServiceEntry endpoints per host.
    if routing.discovered.hosts() > 0 {
        layer
            .handle()
            .endpoint_source()
            .publish_source(&routing.discovered);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
    let deadline = Duration::from_secs(args.max_time);
    // The decision the mesh makes for its first request: the same view, the same roll.
    let view_req = req.to_http(());
    let view = mesh_routing::RequestView::from_request(&view_req);
    let roll = mesh_resilience::rng::Rolls::for_request(seed, 0).route();
    let decision = table.route(&view, roll);
    if let mesh_routing::Action::Passthrough(_) = decision.action() {
        let host = view_req.uri().host().unwrap_or("");
        if decision.cluster().is_none() && !record::allowed(host) {
            return Err(Failure::usage(format!(
                "meshctl curl sends only to loopback and private addresses, and no service \
                 of the configuration names {host:?}: it would go there directly"
            )));
        }
    }
    if args.requests == 1 {
        let log = Arc::new(Mutex::new(Log::default()));
        let epoch = Instant::now();
        let svc = layer.layer(Recorder::new(Arc::clone(&log), true, epoch));
        let http_req = req.to_http(data.body());
        let trace = table.explain(&view);
        let ended = runtime.block_on(async {
            match tokio::time::timeout(deadline, send(svc, http_req)).await {
                Ok(ended) => ended,
                Err(_) => Ended::OutOfTime,
            }
        });
        let elapsed = epoch.elapsed();
        let log = log.lock().unwrap_or_else(PoisonError::into_inner);
        match args.format {
            Format::Text => crate::out(&report::single_text(
                &table,
                &endpoints,
                &decision,
                &view,
                &trace,
                roll,
                &log.attempts,
                &ended,
                elapsed,
            ))?,
            Format::Json => {
                let v = report::single_json(
                    &table,
                    &endpoints,
                    &decision,
                    &view,
                    &trace,
                    roll,
                    seed,
                    &log.attempts,
                    &ended,
                    elapsed,
                );
                crate::out(&crate::output::json_text(&v)?)?;
            }
        }
        return Ok(if ended.is_success() {
            exit::OK
        } else {
            exit::CONFIG
        });
    }

    let log = Arc::new(Mutex::new(Log::default()));
    let epoch = Instant::now();
    let svc = layer.layer(Recorder::new(Arc::clone(&log), false, epoch));
    let progress = report::progress(args.requests);
    let summary = runtime.block_on(async {
        let mut summary = report::Summary::default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut sent = 0u64;
        let stop = tokio::time::Instant::now() + deadline;
        loop {
            while sent < args.requests && (tasks.len() as u64) < args.concurrency {
                let svc = svc.clone();
                let http_req = req.to_http(data.body());
                tasks.spawn(async move {
                    let started = Instant::now();
                    let ended = tokio::time::timeout_at(stop, send(svc, http_req))
                        .await
                        .unwrap_or(Ended::OutOfTime);
                    (ended, started.elapsed())
                });
                sent += 1;
            }
            match tasks.join_next().await {
                Some(Ok((ended, took))) => {
                    summary.add(&ended, took);
                    progress.inc(1);
                }
                Some(Err(e)) => {
                    summary.add_panic(&e.to_string());
                    progress.inc(1);
                }
                None => break,
            }
            if tokio::time::Instant::now() >= stop && sent < args.requests {
                // Out of time: what was not sent counts as not finished.
                summary.not_sent(args.requests - sent);
                sent = args.requests;
            }
        }
        summary
    });
    progress.finish_and_clear();
    let log = log.lock().unwrap_or_else(PoisonError::into_inner);
    match args.format {
        Format::Text => crate::out(&summary.text(&log))?,
        Format::Json => crate::out(&crate::output::json_text(&summary.json(&log))?)?,
    }
    Ok(if summary.all_success() {
        exit::OK
    } else {
        exit::CONFIG
    })
}

/// Sends one request through the mesh and reads the response body (at most [`MAX_BODY`]
/// bytes are kept; the rest is read and dropped, so the body's fate is known).
async fn send<S>(svc: S, req: http::Request<CurlBody>) -> Ended
where
    S: tower::Service<
        http::Request<CurlBody>,
        Response = http::Response<mesh_tower::MeshBody<hyper::body::Incoming>>,
        Error = MeshError,
    >,
{
    match svc.oneshot(req).await {
        Ok(res) => {
            let flags = ResponseFlags::of(&res);
            let (parts, mut body) = res.into_parts();
            let mut kept = Vec::new();
            let body = loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            let room = MAX_BODY.saturating_sub(kept.len());
                            kept.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                    Some(Err(e)) => break Err(record::error_text(e.as_ref())),
                    None => break Ok(Bytes::from(kept)),
                }
            };
            Ended::Response {
                status: parts.status,
                version: parts.version,
                headers: parts.headers,
                flags,
                body,
            }
        }
        Err(error) => {
            let reply = error.to_response();
            Ended::Error { error, reply }
        }
    }
}
