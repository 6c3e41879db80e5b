//! The inner client of `meshctl curl`: the mesh's own hyper client, with every attempt the
//! mesh makes recorded (endpoint, answer, when and how long), and sends refused to any address
//! that is neither loopback nor private.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use mesh_tower::client::LegacyClient;
use mesh_tower::BoxError;
use tower::Service;

/// One attempt, as the client saw it.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// The endpoint (`ip:port`, or the name of a passthrough).
    pub(crate) endpoint: String,
    /// When it started, from the start of the run.
    pub(crate) start: Duration,
    /// Until the response headers (or the error).
    pub(crate) duration: Duration,
    /// The status, or the error's text.
    pub(crate) result: Result<u16, String>,
}

/// What the recorder keeps: every attempt when asked (one request), else counts per endpoint.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) per_endpoint: BTreeMap<String, u64>,
    pub(crate) total: u64,
}

/// The recording client.
#[derive(Clone)]
pub(crate) struct Recorder<B> {
    inner: LegacyClient<B>,
    log: Arc<Mutex<Log>>,
    keep_each: bool,
    epoch: Instant,
}

impl<B> Recorder<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    /// Records into `log`; `keep_each` keeps every attempt, not only the counts.
    pub(crate) fn new(log: Arc<Mutex<Log>>, keep_each: bool, epoch: Instant) -> Self {
        Recorder {
            inner: mesh_tower::client::legacy_client(),
            log,
            keep_each,
            epoch,
        }
    }
}

/// Whether `meshctl curl` may send to `host`: a loopback or private address (RFC 1918,
/// unique local, link local) or `localhost`.
pub(crate) fn allowed(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_loopback() || a.is_private() || a.is_link_local(),
        Ok(IpAddr::V6(a)) => {
            a.is_loopback()
                || (a.segments()[0] & 0xfe00) == 0xfc00
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
        Err(_) => false,
    }
}

impl<B> Service<Request<B>> for Recorder<B>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let endpoint = req
            .uri()
            .authority()
            .map_or_else(String::new, |a| a.as_str().to_owned());
        let host = req.uri().host().unwrap_or("").to_owned();
        let inner = self.inner.clone();
        let log = Arc::clone(&self.log);
        let keep_each = self.keep_each;
        let started = Instant::now();
        let start = started.duration_since(self.epoch);
        Box::pin(async move {
            let result = if allowed(&host) {
                inner.request(req).await.map_err(BoxError::from)
            } else {
                Err(format!(
                    "meshctl curl sends only to loopback and private addresses; {host:?} is neither"
                )
                .into())
            };
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            log.total += 1;
            *log.per_endpoint.entry(endpoint.clone()).or_default() += 1;
            if keep_each {
                log.attempts.push(Attempt {
                    endpoint,
                    start,
                    duration: started.elapsed(),
                    result: match &result {
                        Ok(r) => Ok(r.status().as_u16()),
                        Err(e) => Err(error_text(e.as_ref())),
                    },
                });
            }
            result
        })
    }
}

/// An error and its causes, joined with `: `.
pub(crate) fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = s_source(source);
    }
    text
}

fn s_source<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(std::error::Error::source)
}
