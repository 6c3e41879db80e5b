//! What `meshctl curl` prints: one request in full ([`single_text`], [`single_json`]), or a
//! [`Summary`] of many.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use mesh_routing::endpoints::StaticEndpoints;
use mesh_routing::{RequestView, RouteDecision, RouteTable, Trace};
use serde_json::{json, Value};

use super::record::{Attempt, Log};
use super::{error_kind, Ended};
use crate::route;

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The wait between the end of attempt `i - 1` and the start of attempt `i` (the backoff,
/// plus any wait for a pool permit).
fn waited_before(attempts: &[Attempt], i: usize) -> Option<Duration> {
    let prev = attempts.get(i.checked_sub(1)?)?;
    Some(attempts[i].start.saturating_sub(prev.start + prev.duration))
}

/// One request, for people.
#[allow(clippy::too_many_arguments)]
pub(super) fn single_text(
    table: &RouteTable,
    endpoints: &StaticEndpoints,
    decision: &RouteDecision<'_>,
    view: &RequestView<'_>,
    trace: &Trace,
    roll: u64,
    attempts: &[Attempt],
    ended: &Ended,
    elapsed: Duration,
) -> String {
    let mut out = route::text::decision_text(table, endpoints, decision, view, trace, roll);
    let _ = writeln!(out, "\nattempts:");
    if attempts.is_empty() {
        let _ = writeln!(out, "  none (the mesh answered itself)");
    }
    for (i, a) in attempts.iter().enumerate() {
        let result = match &a.result {
            Ok(status) => status.to_string(),
            Err(e) => format!("error: {e}"),
        };
        let _ = write!(
            out,
            "  {:>2}  {:<22} {:<8} {:>9.3} ms",
            i + 1,
            a.endpoint,
            result,
            ms(a.duration)
        );
        if let Some(w) = waited_before(attempts, i) {
            let _ = write!(out, "   after {:.3} ms", ms(w));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "flags:    {}", ended.flags());
    let _ = writeln!(out, "time:     {:.3} ms\n", ms(elapsed));
    match ended {
        Ended::Response {
            status,
            version,
            headers,
            body,
            ..
        } => {
            let _ = writeln!(out, "{version:?} {status}");
            for (k, v) in headers {
                let _ = writeln!(out, "{k}: {}", String::from_utf8_lossy(v.as_bytes()));
            }
            out.push('\n');
            match body {
                Ok(b) => out.push_str(&String::from_utf8_lossy(b)),
                Err(e) => {
                    let _ = write!(out, "(the body failed: {e})");
                }
            }
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Ended::Error { error, reply } => {
            let _ = writeln!(out, "error:    {error}");
            let _ = writeln!(out, "the local reply a sidecar sends:\n");
            let _ = writeln!(out, "HTTP/1.1 {}", reply.status());
            for (k, v) in reply.headers() {
                let _ = writeln!(out, "{k}: {}", String::from_utf8_lossy(v.as_bytes()));
            }
            out.push('\n');
            let body = reply.body().clone();
            let text = futures_free_body(body);
            out.push_str(&text);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Ended::OutOfTime => {
            let _ = writeln!(out, "no response within --max-time");
        }
    }
    out
}

/// The bytes of a whole local-reply body.
fn futures_free_body(body: http_body_util::Full<bytes::Bytes>) -> String {
    use http_body::Body as _;
    let mut body = std::pin::pin!(body);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut out = Vec::new();
    while let std::task::Poll::Ready(Some(Ok(frame))) = body.as_mut().poll_frame(&mut cx) {
        if let Ok(d) = frame.into_data() {
            out.extend_from_slice(&d);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn headers_json(h: &http::HeaderMap) -> Value {
    Value::Array(
        h.iter()
            .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
            .collect(),
    )
}

/// One request, as one JSON object.
#[allow(clippy::too_many_arguments)]
pub(super) fn single_json(
    table: &RouteTable,
    endpoints: &StaticEndpoints,
    decision: &RouteDecision<'_>,
    view: &RequestView<'_>,
    trace: &Trace,
    roll: u64,
    seed: u64,
    attempts: &[Attempt],
    ended: &Ended,
    elapsed: Duration,
) -> Value {
    let attempts: Vec<Value> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut v = json!({
                "attempt": i + 1,
                "endpoint": a.endpoint,
                "startMs": ms(a.start),
                "durationMs": ms(a.duration),
                "waitedMs": waited_before(attempts, i).map(ms),
            });
            match &a.result {
                Ok(s) => v["status"] = json!(s),
                Err(e) => v["error"] = json!(e),
            }
            v
        })
        .collect();
    let (response, error) = match ended {
        Ended::Response {
            status,
            headers,
            body,
            ..
        } => (
            json!({
                "status": status.as_u16(),
                "headers": headers_json(headers),
                "body": body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).ok(),
                "bodyError": body.as_ref().err(),
            }),
            Value::Null,
        ),
        Ended::Error { error, reply } => (
            json!({
                "status": reply.status().as_u16(),
                "headers": headers_json(reply.headers()),
                "body": futures_free_body(reply.body().clone()),
                "localReply": true,
            }),
            json!({"kind": error_kind(error), "message": error.to_string()}),
        ),
        Ended::OutOfTime => (
            Value::Null,
            json!({"kind": "maxTime", "message": "no response within --max-time"}),
        ),
    };
    json!({
        "request": {
            "method": view.method(),
            "authority": view.authority(),
            "path": view.path_and_query(),
        },
        "seed": seed,
        "decision": route::json::decision_json(table, endpoints, decision, view, trace),
        "roll": roll,
        "attempts": attempts,
        "responseFlags": ended.flags().to_string(),
        "response": response,
        "error": error,
        "durationMs": ms(elapsed),
    })
}

/// A progress bar on a terminal's stderr (hidden elsewhere).
pub(super) fn progress(n: u64) -> ProgressBar {
    let bar = ProgressBar::new(n);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests, {per_sec}, {eta} left")
    {
        bar.set_style(style);
    }
    bar
}

/// The counts of many requests.
#[derive(Debug, Default)]
pub(super) struct Summary {
    requests: u64,
    success: u64,
    status: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    flags: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

impl Summary {
    /// Counts one request.
    pub(super) fn add(&mut self, ended: &Ended, took: Duration) {
        self.requests += 1;
        if ended.is_success() {
            self.success += 1;
        }
        if let Some(s) = ended.status() {
            *self.status.entry(s.to_string()).or_default() += 1;
        }
        match ended {
            Ended::Error { error, .. } => {
                *self.errors.entry(error_kind(error).to_owned()).or_default() += 1;
            }
            Ended::Response { body: Err(_), .. } => {
                *self.errors.entry("body".to_owned()).or_default() += 1;
            }
            Ended::OutOfTime => {
                *self.errors.entry("maxTime".to_owned()).or_default() += 1;
            }
            Ended::Response { .. } => {}
        }
        for f in ended.flags().iter() {
            *self.flags.entry(f.short().to_owned()).or_default() += 1;
        }
        if !matches!(ended, Ended::OutOfTime) {
            self.latencies.push(took);
        }
    }

    /// Counts a request whose task failed.
    pub(super) fn add_panic(&mut self, why: &str) {
        self.requests += 1;
        *self.errors.entry(format!("task: {why}")).or_default() += 1;
    }

    /// Counts requests never sent because the time ran out.
    pub(super) fn not_sent(&mut self, n: u64) {
        self.requests += n;
        *self.errors.entry("maxTime".to_owned()).or_default() += n;
    }

    /// Whether every request got a 2xx.
    pub(super) fn all_success(&self) -> bool {
        self.success == self.requests
    }

    fn percentiles(&self) -> Option<[f64; 3]> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        // Nearest rank: the smallest value with at least p% of the samples at or below it.
        let at = |p: f64| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            ms(sorted[rank.clamp(1, sorted.len()) - 1])
        };
        Some([at(50.0), at(90.0), at(99.0)])
    }

    /// The summary as one JSON object, in the documented shape.
    pub(super) fn json(&self, log: &Log) -> Value {
        let latency = match self.percentiles() {
            Some([p50, p90, p99]) => json!({"p50": p50, "p90": p90, "p99": p99}),
            None => json!({"p50": null, "p90": null, "p99": null}),
        };
        json!({
            "requests": self.requests,
            "status": self.status,
            "errors": self.errors,
            "attempts": log.total,
            "endpoints": log.per_endpoint,
            "responseFlags": self.flags,
            "latencyMs": latency,
        })
    }

    /// The summary for people.
    pub(super) fn text(&self, log: &Log) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "requests   {}  ({} got a 2xx)",
            self.requests, self.success
        );
        let list = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "-".to_owned()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = writeln!(out, "status     {}", list(&self.status));
        let _ = writeln!(out, "errors     {}", list(&self.errors));
        let _ = writeln!(out, "flags      {}", list(&self.flags));
        let _ = writeln!(out, "attempts   {}", log.total);
        for (endpoint, n) in &log.per_endpoint {
            let _ = writeln!(out, "  {endpoint:<24} {n}");
        }
        match self.percentiles() {
            Some([p50, p90, p99]) => {
                let _ = writeln!(
                    out,
                    "latency    p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms"
                );
            }
            None => {
                let _ = writeln!(out, "latency    -");
            }
        }
        out
    }
}
