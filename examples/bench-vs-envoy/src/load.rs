//! The load generator: open loop at a fixed rate (latency from the intended send time) and
//! closed loop (N concurrent senders), both bounded in requests and time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::target::{Outcome, Target};

/// How long requests still in flight at the end of a phase may take before they are cut off.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Latencies (microseconds) and outcomes of one phase.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Latency of every completed request (any status), in microseconds.
    pub(crate) hist: Histogram<u64>,
    /// Requests answered 2xx.
    pub(crate) ok: u64,
    /// Non-2xx answers by status (`"503"` from a backend, `"503 local reply"` from the mesh or
    /// Envoy), errors under `"error: <message>"`, requests not sent because
    /// too many were in flight under `"overload"`, requests cut off at the end under
    /// `"unfinished"`.
    pub(crate) failures: BTreeMap<String, u64>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            // 1 µs to 60 s, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 60_000_000, 3)
                .unwrap_or_else(|_| unreachable!("valid histogram bounds")),
            ok: 0,
            failures: BTreeMap::new(),
        }
    }

    fn record(&mut self, outcome: &Outcome, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
        match outcome {
            Ok((s, _)) if (200..300).contains(s) => self.ok += 1,
            Ok((s, true)) => self.fail(&s.to_string()),
            Ok((s, false)) => self.fail(&format!("{s} local reply")),
            Err(e) => {
                let short: String = e.chars().take(60).collect();
                self.fail(&format!("error: {short}"));
            }
        }
    }

    fn fail(&mut self, key: &str) {
        *self.failures.entry(key.to_owned()).or_default() += 1;
    }

    /// Requests that got an answer or an error.
    pub(crate) fn completed(&self) -> u64 {
        self.hist.len()
    }
}

fn lock(r: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    r.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends `rate` requests per second for `duration` (at most `rate × duration` requests). A
/// pacing thread wakes at each intended send time and hands the request number to the runtime;
/// latency runs from that intended time, so a slow answer does not delay the measurement of the
/// next request (no coordinated omission). Requests beyond `max_in_flight` are not sent and are
/// counted as `overload`.
pub(crate) async fn open_loop(
    target: Arc<Target>,
    rate: u64,
    duration: Duration,
    max_in_flight: usize,
) -> (Recorder, Duration) {
    let rate = rate.max(1);
    let total = rate.saturating_mul(duration.as_millis() as u64) / 1000;
    let period_ns = 1_000_000_000 / rate;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let start = Instant::now() + Duration::from_millis(5);
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + Duration::from_nanos(i.saturating_mul(period_ns));
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send((i, at)).is_err() {
                break;
            }
        }
    });
    let rec = Arc::new(Mutex::new(Recorder::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    while let Some((i, at)) = rx.recv().await {
        while tasks.try_join_next().is_some() {}
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            lock(&rec).fail("overload");
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (target, rec, in_flight) = (
            Arc::clone(&target),
            Arc::clone(&rec),
            Arc::clone(&in_flight),
        );
        tasks.spawn(async move {
            let outcome = target.send(i).await;
            let latency = at.elapsed();
            lock(&rec).record(&outcome, latency);
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let _ = pacer.join();
    let elapsed = start.elapsed();
    drain(&mut tasks, &rec).await;
    let rec = take(rec);
    (rec, elapsed)
}

/// `connections` senders each send a request, wait for the answer, and send the next, until
/// `duration` has passed or `max_requests` have been started. Latency runs from the send.
pub(crate) async fn closed_loop(
    target: Arc<Target>,
    connections: usize,
    duration: Duration,
    max_requests: u64,
) -> (Recorder, Duration) {
    let rec = Arc::new(Mutex::new(Recorder::new()));
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..connections.max(1) {
        let (target, rec, issued) = (Arc::clone(&target), Arc::clone(&rec), Arc::clone(&issued));
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= max_requests {
                    break;
                }
                let sent = Instant::now();
                let outcome = target.send(i).await;
                lock(&rec).record(&outcome, sent.elapsed());
            }
        });
    }
    let bounded = tokio::time::timeout(duration + DRAIN_LIMIT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let elapsed = start.elapsed();
    if bounded.is_err() {
        let left = tasks.len() as u64;
        tasks.abort_all();
        *lock(&rec)
            .failures
            .entry("unfinished".to_owned())
            .or_default() += left;
    }
    (take(rec), elapsed)
}

async fn drain(tasks: &mut JoinSet<()>, rec: &Arc<Mutex<Recorder>>) {
    let done = tokio::time::timeout(DRAIN_LIMIT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if done.is_err() {
        let left = tasks.len() as u64;
        tasks.abort_all();
        *lock(rec)
            .failures
            .entry("unfinished".to_owned())
            .or_default() += left;
    }
}

fn take(rec: Arc<Mutex<Recorder>>) -> Recorder {
    match Arc::try_unwrap(rec) {
        Ok(m) => m.into_inner().unwrap_or_else(PoisonError::into_inner),
        Err(shared) => {
            let r = lock(&shared);
            Recorder {
                hist: r.hist.clone(),
                ok: r.ok,
                failures: r.failures.clone(),
            }
        }
    }
}
