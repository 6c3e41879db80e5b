//! The `behaviour` subcommand: mesh against Envoy, scenario by scenario, Istio-exact on both
//! sides (no retry budget: the mesh's default and what `meshctl envoy` writes by default).
//!
//! Every scenario has its own configuration (`config/scenarios/*.yaml`, or the seed canary),
//! scripts the backends' failures with `mesh_tests::Backend` rules, and runs sequentially (one
//! request at a time), concurrently (a fixed number of senders back to back) or as bursts. Each
//! run of each set-up is a fresh process (`probe`) and, for Envoy, a fresh Envoy, so no state
//! (ejections, connections) carries over. Every request carries its number in
//! [`SEQ_HEADER`]; the backends' records tie each attempt to its request, so attempts per
//! request and the pods they reached are counted exactly, not inferred.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mesh_tests::{Action, Backend, Rule, Select};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::run::{endpoints_yaml, spawn_child, start_envoy, start_pods};
use crate::target::{Setup, Target, SEQ_HEADER};

/// Agreement tolerance, in standard errors.
pub(crate) const SIGMAS: f64 = 3.0;
/// Seed of the backends' failure sequence (the same for mesh and Envoy).
const FAILURE_SEED: u64 = 6;
/// Longest one probe (one run of one set-up) may take.
const PROBE_LIMIT: Duration = Duration::from_secs(120);
/// Pause between bursts, so each burst meets an idle pool.
const BURST_PAUSE: Duration = Duration::from_millis(300);

/// Options of the behaviour comparison.
#[derive(Debug, clap::Args)]
pub(crate) struct BehaviourArgs {
    /// The Envoy binary.
    #[arg(long)]
    pub(crate) envoy: PathBuf,
    /// The meshctl binary that writes Envoy's bootstrap.
    #[arg(long)]
    pub(crate) meshctl: PathBuf,
    /// Where to write behaviour.md, behaviour.json and each scenario's configuration.
    #[arg(long, default_value = "results")]
    pub(crate) out: PathBuf,
    /// Multiplies every scenario's request count (0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) scale: f64,
    /// Senders in the concurrent runs.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=64))]
    pub(crate) concurrency: u64,
    /// Only these scenarios (repeat; default: all).
    #[arg(long)]
    pub(crate) only: Vec<String>,
}

/// Options of one probe (one run of one set-up, in its own process).
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// `mesh` or `envoy`.
    #[arg(long, value_enum)]
    setup: Setup,
    /// A mesh configuration file (mesh set-up); repeat.
    #[arg(long)]
    config: Vec<PathBuf>,
    /// Envoy's listener (envoy set-up).
    #[arg(long)]
    envoy_addr: Option<SocketAddr>,
    /// Requests in all (closed loop) or per burst.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    requests: u64,
    /// Senders (closed loop); ignored for bursts.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
    /// Bursts of `--requests` simultaneous requests (0: a closed loop instead). One request
    /// is sent alone first (burst 0), so the bursts meet an established connection.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100))]
    bursts: u64,
}

/// One request as a probe saw it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Seen {
    /// Request number ([`SEQ_HEADER`]).
    seq: u64,
    /// Burst number (0 outside bursts, and the single warm-up request before them).
    burst: u64,
    /// Status (0: transport error).
    status: u16,
    /// Whether a backend wrote the answer.
    from_backend: bool,
    /// `x-envoy-overloaded: true`.
    overloaded: bool,
    /// From send to the end of the body, µs.
    latency_us: u64,
}

/// What one probe prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProbeOutput {
    requests: Vec<Seen>,
    /// Requests cut off by the time limit.
    unfinished: u64,
}

/// Runs one probe and prints its result.
pub(crate) fn probe(a: &ProbeArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let out = rt.block_on(probe_async(a))?;
    println!(
        "{}",
        serde_json::to_string(&out).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn one(target: &Target, seq: u64, burst: u64) -> Seen {
    let sent = Instant::now();
    let p = target.probe(seq).await;
    Seen {
        seq,
        burst,
        status: p.status,
        from_backend: p.from_backend,
        overloaded: p.overloaded,
        latency_us: u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX),
    }
}

async fn probe_async(a: &ProbeArgs) -> Result<ProbeOutput, String> {
    let target = Arc::new(Target::build(
        a.setup,
        &[],
        &[],
        &a.config,
        a.envoy_addr,
        None,
    )?);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + PROBE_LIMIT;
    let mut unfinished = 0;
    if a.bursts == 0 {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..a.concurrency {
            let (target, seen, next, n) = (
                Arc::clone(&target),
                Arc::clone(&seen),
                Arc::clone(&next),
                a.requests,
            );
            tasks.spawn(async move {
                while Instant::now() < deadline {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= n {
                        break;
                    }
                    let s = one(&target, seq, 0).await;
                    seen.lock().unwrap_or_else(PoisonError::into_inner).push(s);
                }
            });
        }
        if tokio::time::timeout_at(deadline.into(), async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tasks.abort_all();
        }
    } else {
        let warm = one(&target, 0, 0).await;
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(warm);
        for burst in 1..=a.bursts {
            let mut tasks = JoinSet::new();
            for k in 0..a.requests {
                let (target, seen) = (Arc::clone(&target), Arc::clone(&seen));
                let seq = burst * a.requests + k;
                tasks.spawn(async move {
                    let s = one(&target, seq, burst).await;
                    seen.lock().unwrap_or_else(PoisonError::into_inner).push(s);
                });
            }
            if tokio::time::timeout_at(deadline.into(), async {
                while tasks.join_next().await.is_some() {}
            })
            .await
            .is_err()
            {
                tasks.abort_all();
                break;
            }
            tokio::time::sleep(BURST_PAUSE).await;
        }
    }
    let mut requests = seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    requests.sort_by_key(|s| s.seq);
    let expected = if a.bursts == 0 {
        a.requests
    } else {
        a.bursts * a.requests + 1
    };
    unfinished += expected.saturating_sub(requests.len() as u64);
    Ok(ProbeOutput {
        requests,
        unfinished,
    })
}

/// How a scenario sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// One request at a time.
    Sequential,
    /// `--concurrency` senders back to back.
    Concurrent,
    /// Bursts of simultaneous requests.
    Burst,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Sequential => "sequential",
            Mode::Concurrent => "concurrent",
            Mode::Burst => "burst",
        }
    }
}

/// Which backends misbehave, and how.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Every backend answers 200.
    Healthy,
    /// `api-v2-a` answers 503 to a seeded half of its requests.
    V2aHalf503,
    /// `api-v2-a` answers 503 to everything.
    V2aAll503,
    /// `api-v1-a` answers after 100 ms.
    V1aSlow100ms,
    /// `api-v2-a` answers after 1 s.
    V2aSlow1s,
    /// Both v2 pods answer after 1 s.
    V2Slow1s,
}

impl Script {
    fn rules(self, pod: &str) -> Vec<Rule> {
        let slow = Rule::new(Select::All, Action::Delay(Duration::from_secs(1)));
        match (self, pod) {
            (Script::V2aHalf503, "api-v2-a") => vec![Rule::new(
                Select::Seeded {
                    seed: FAILURE_SEED,
                    per_million: 500_000,
                },
                Action::Status(503),
            )],
            (Script::V2aAll503, "api-v2-a") => {
                vec![Rule::new(Select::All, Action::Status(503))]
            }
            (Script::V1aSlow100ms, "api-v1-a") => vec![Rule::new(
                Select::All,
                Action::Delay(Duration::from_millis(100)),
            )],
            (Script::V2aSlow1s, "api-v2-a") | (Script::V2Slow1s, "api-v2-a" | "api-v2-b") => {
                vec![slow]
            }
            _ => Vec::new(),
        }
    }
}

/// One behaviour scenario.
#[derive(Debug)]
struct Scenario {
    name: &'static str,
    title: &'static str,
    /// File name under `config/` (for the report) and its text.
    file: &'static str,
    config: &'static str,
    script: Script,
    modes: &'static [Mode],
    /// Requests per run, sequential (and concurrent unless `concurrent` is set), at scale 1.
    requests: u64,
    /// Requests per concurrent run, when different.
    concurrent: Option<u64>,
    /// Runs of each mode and set-up (the ejection count is one figure per run).
    repeats: u64,
    /// Bursts per run (burst mode).
    bursts: u64,
}

const CLOSED: &[Mode] = &[Mode::Sequential, Mode::Concurrent];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "split",
        title: "canary 90/10, healthy backends",
        file: "canary.yaml",
        config: include_str!("../config/canary.yaml"),
        script: Script::Healthy,
        modes: CLOSED,
        requests: 4000,
        concurrent: None,
        repeats: 1,
        bursts: 0,
    },
    Scenario {
        name: "half-failing-retries",
        title: "one v2 pod failing 50 %, retries on",
        file: "scenarios/half-failing-retries.yaml",
        config: include_str!("../config/scenarios/half-failing-retries.yaml"),
        script: Script::V2aHalf503,
        modes: CLOSED,
        requests: 4000,
        concurrent: None,
        repeats: 1,
        bursts: 0,
    },
    Scenario {
        name: "half-failing-no-retries",
        title: "one v2 pod failing 50 %, no retries",
        file: "scenarios/half-failing-no-retries.yaml",
        config: include_str!("../config/scenarios/half-failing-no-retries.yaml"),
        script: Script::V2aHalf503,
        modes: CLOSED,
        requests: 4000,
        concurrent: None,
        repeats: 1,
        bursts: 0,
    },
    Scenario {
        name: "ejection",
        title: "two v2 pods, one failing 100 %, outlier detection",
        file: "scenarios/ejection.yaml",
        config: include_str!("../config/scenarios/ejection.yaml"),
        script: Script::V2aAll503,
        modes: CLOSED,
        requests: 200,
        concurrent: None,
        repeats: 5,
        bursts: 0,
    },
    Scenario {
        name: "pending-overflow",
        title: "burst of 30 on 1 connection + 10 pending",
        file: "scenarios/pending-overflow.yaml",
        config: include_str!("../config/scenarios/pending-overflow.yaml"),
        script: Script::V1aSlow100ms,
        modes: &[Mode::Burst],
        requests: 30,
        concurrent: None,
        repeats: 1,
        bursts: 10,
    },
    Scenario {
        name: "per-try-timeout",
        title: "one v2 pod slow (1 s), per-try timeout 100 ms",
        file: "scenarios/per-try-timeout.yaml",
        config: include_str!("../config/scenarios/per-try-timeout.yaml"),
        script: Script::V2aSlow1s,
        modes: CLOSED,
        requests: 200,
        concurrent: Some(600),
        repeats: 1,
        bursts: 0,
    },
    Scenario {
        name: "route-timeout",
        title: "both v2 pods slow, per-try 100 ms, route timeout 250 ms",
        file: "scenarios/route-timeout.yaml",
        config: include_str!("../config/scenarios/route-timeout.yaml"),
        script: Script::V2Slow1s,
        modes: CLOSED,
        requests: 100,
        concurrent: Some(400),
        repeats: 1,
        bursts: 0,
    },
];

/// One run of one set-up, joined with what the backends received.
#[derive(Debug, Clone, Serialize, Deserialize)]
/// (The per-request vectors stay out of `behaviour.json`, which keeps only the totals.)
pub(crate) struct SideRun {
    /// Requests that got an answer or an error.
    requests: u64,
    /// Requests cut off.
    unfinished: u64,
    /// Non-2xx answers and errors, by kind (`503`, `503 local`, `504 local`, `error`).
    failures: BTreeMap<String, u64>,
    /// Answers with `x-envoy-overloaded: true`.
    overloaded: u64,
    /// Of those, requests the backends saw at all (an overflow is never retried, and the
    /// overflowing try never reaches a backend, so this should be 0).
    overloaded_reached_backend: u64,
    /// Attempts the backends received, per pod.
    pods: BTreeMap<String, u64>,
    /// Attempts the backends received without a known request number (should be 0).
    untagged: u64,
    /// Requests by the number of backend attempts they made.
    attempts_histogram: BTreeMap<u32, u64>,
    /// Backend attempts of each request, in request order.
    #[serde(skip_serializing, default)]
    attempts: Vec<u32>,
    /// Latency of each request, µs, in request order.
    #[serde(skip_serializing, default)]
    latency_us: Vec<u64>,
    /// Burst of each request (burst mode).
    #[serde(skip_serializing, default)]
    burst: Vec<u64>,
    /// Whether each request failed (non-2xx or error).
    #[serde(skip_serializing, default)]
    failed: Vec<bool>,
    /// Whether each request was answered `x-envoy-overloaded`.
    #[serde(skip_serializing, default)]
    overloaded_each: Vec<bool>,
}

impl SideRun {
    fn new(out: &ProbeOutput, pods: &[Backend]) -> Self {
        let index: BTreeMap<u64, usize> = out
            .requests
            .iter()
            .enumerate()
            .map(|(i, s)| (s.seq, i))
            .collect();
        let mut attempts = vec![0_u32; out.requests.len()];
        let mut per_pod = BTreeMap::new();
        let mut untagged = 0;
        for p in pods {
            let received = p.received();
            *per_pod.entry(p.name().to_owned()).or_insert(0) += received.len() as u64;
            for r in received {
                let seq = r
                    .headers
                    .get(SEQ_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                match seq.and_then(|s| index.get(&s)) {
                    Some(&i) => attempts[i] += 1,
                    None => untagged += 1,
                }
            }
        }
        let mut failures = BTreeMap::new();
        for s in &out.requests {
            let key = match (s.status, s.from_backend) {
                (200..=299, _) => continue,
                (0, _) => "error".to_owned(),
                (st, true) => st.to_string(),
                (st, false) => format!("{st} local"),
            };
            *failures.entry(key).or_insert(0) += 1;
        }
        let overloaded_each: Vec<bool> = out.requests.iter().map(|s| s.overloaded).collect();
        let mut attempts_histogram = BTreeMap::new();
        for a in &attempts {
            *attempts_histogram.entry(*a).or_insert(0) += 1;
        }
        SideRun {
            requests: out.requests.len() as u64,
            unfinished: out.unfinished,
            failures,
            overloaded: overloaded_each.iter().filter(|o| **o).count() as u64,
            overloaded_reached_backend: overloaded_each
                .iter()
                .zip(&attempts)
                .filter(|(o, a)| **o && **a > 0)
                .count() as u64,
            pods: per_pod,
            untagged,
            attempts_histogram,
            attempts,
            latency_us: out.requests.iter().map(|s| s.latency_us).collect(),
            burst: out.requests.iter().map(|s| s.burst).collect(),
            failed: out
                .requests
                .iter()
                .map(|s| !(200..300).contains(&s.status))
                .collect(),
            overloaded_each,
        }
    }

    fn errors(&self) -> u64 {
        self.failed.iter().filter(|f| **f).count() as u64
    }

    fn total_attempts(&self) -> u64 {
        self.pods.values().sum()
    }

    fn pod(&self, name: &str) -> u64 {
        self.pods.get(name).copied().unwrap_or(0)
    }

    fn v2_attempts(&self) -> u64 {
        self.pod("api-v2-a") + self.pod("api-v2-b")
    }
}

/// One comparison of one figure, mesh against Envoy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Comparison {
    scenario: String,
    mode: String,
    figure: String,
    mesh: String,
    envoy: String,
    /// The allowed difference and how it is computed.
    tolerance: String,
    agree: bool,
}

/// The mean and its standard error.
fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, (var / n as f64).sqrt())
}

/// Means compared within `SIGMAS` standard errors of their difference (Welch: each side's
/// sample variance over its size). With no variance on either side, only equality agrees.
fn compare_means(m: &[f64], e: &[f64], digits: usize) -> (String, String, String, bool) {
    let (mm, sm) = mean_se(m);
    let (me, se) = mean_se(e);
    let tol = SIGMAS * sm.hypot(se);
    let d = (mm - me).abs();
    let agree = if tol > 0.0 { d <= tol } else { d < 1e-9 };
    (
        format!("{mm:.digits$} (n={})", m.len()),
        format!("{me:.digits$} (n={})", e.len()),
        format!("Δ {d:.digits$} ≤ {tol:.digits$} (3 SE, Welch)"),
        agree,
    )
}

/// Shares compared within `SIGMAS` binomial standard errors of the difference (pooled share).
/// With a pooled share of 0 or 1, only equality agrees.
fn compare_shares(m: (u64, u64), e: (u64, u64)) -> (String, String, String, bool) {
    let (n1, n2) = (m.1.max(1) as f64, e.1.max(1) as f64);
    let (p1, p2) = (m.0 as f64 / n1, e.0 as f64 / n2);
    let pooled = (m.0 + e.0) as f64 / (n1 + n2);
    let tol = SIGMAS * (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let d = (p1 - p2).abs();
    let agree = if tol > 0.0 { d <= tol } else { d < 1e-12 };
    (
        format!("{p1:.4} ({}/{})", m.0, m.1),
        format!("{p2:.4} ({}/{})", e.0, e.1),
        format!("Δ {d:.4} ≤ {tol:.4} (3 SE, binomial)"),
        agree,
    )
}

/// The ranks bounding a distribution-free confidence interval of quantile `q` in a sample of
/// `n` (`n·q ± SIGMAS·√(n·q·(1−q))`, the normal approximation of the binomial count of
/// values below the quantile).
fn quantile_interval(sorted: &[u64], q: f64) -> Option<(u64, u64, u64)> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let half = SIGMAS * (nf * q * (1.0 - q)).sqrt();
    let at = |r: f64| sorted[(r.max(0.0) as usize).min(n - 1)];
    Some((
        at(nf.mul_add(q, -half).floor()),
        at((nf * q).floor()),
        at(nf.mul_add(q, half).ceil()),
    ))
}

/// Quantile `q` compared by overlap of the two distribution-free intervals.
fn compare_quantiles(m: &[u64], e: &[u64], q: f64) -> (String, String, String, bool) {
    let sort = |x: &[u64]| {
        let mut v = x.to_vec();
        v.sort_unstable();
        v
    };
    let (ms, es) = (sort(m), sort(e));
    match (quantile_interval(&ms, q), quantile_interval(&es, q)) {
        (Some((ml, mq, mh)), Some((el, eq, eh))) => {
            let ms_ = |us: u64| us as f64 / 1000.0;
            (
                format!("{:.1} ms (n={})", ms_(mq), m.len()),
                format!("{:.1} ms (n={})", ms_(eq), e.len()),
                format!(
                    "3σ rank intervals overlap? mesh {:.1}–{:.1}, Envoy {:.1}–{:.1} ms",
                    ms_(ml),
                    ms_(mh),
                    ms_(el),
                    ms_(eh)
                ),
                ml <= eh && el <= mh,
            )
        }
        _ => (
            format!("– (n={})", m.len()),
            format!("– (n={})", e.len()),
            "no sample".to_owned(),
            m.is_empty() && e.is_empty(),
        ),
    }
}

fn as_f64(x: &[u32]) -> Vec<f64> {
    x.iter().map(|v| f64::from(*v)).collect()
}

/// Every run of one mode of one scenario, per set-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ModeRuns {
    mesh: Vec<SideRun>,
    envoy: Vec<SideRun>,
}

fn concat<T: Copy>(runs: &[SideRun], f: impl Fn(&SideRun) -> &Vec<T>) -> Vec<T> {
    runs.iter().flat_map(|r| f(r).iter().copied()).collect()
}

fn sum(runs: &[SideRun], f: impl Fn(&SideRun) -> u64) -> u64 {
    runs.iter().map(f).sum()
}

/// The comparisons of one scenario in one mode.
fn compare(scenario: &str, mode: Mode, r: &ModeRuns) -> Vec<Comparison> {
    let (m, e) = (&r.mesh, &r.envoy);
    let mut out = Vec::new();
    let mut push =
        |figure: &str, (mesh, envoy, tolerance, agree): (String, String, String, bool)| {
            out.push(Comparison {
                scenario: scenario.to_owned(),
                mode: mode.as_str().to_owned(),
                figure: figure.to_owned(),
                mesh,
                envoy,
                tolerance,
                agree,
            });
        };
    let error_rate = |runs: &[SideRun]| (sum(runs, SideRun::errors), sum(runs, |r| r.requests));
    let attempts = |runs: &[SideRun]| as_f64(&concat(runs, |r| &r.attempts));
    match scenario {
        "split" => {
            push(
                "share of attempts reaching v2",
                compare_shares(
                    (
                        sum(m, SideRun::v2_attempts),
                        sum(m, SideRun::total_attempts),
                    ),
                    (
                        sum(e, SideRun::v2_attempts),
                        sum(e, SideRun::total_attempts),
                    ),
                ),
            );
            push(
                "client error rate",
                compare_shares(error_rate(m), error_rate(e)),
            );
        }
        "half-failing-retries" | "half-failing-no-retries" => {
            push(
                "client error rate",
                compare_shares(error_rate(m), error_rate(e)),
            );
            push(
                "backend attempts per request",
                compare_means(&attempts(m), &attempts(e), 4),
            );
            push(
                "share of attempts reaching api-v2-a",
                compare_shares(
                    (
                        sum(m, |r| r.pod("api-v2-a")),
                        sum(m, SideRun::total_attempts),
                    ),
                    (
                        sum(e, |r| r.pod("api-v2-a")),
                        sum(e, SideRun::total_attempts),
                    ),
                ),
            );
        }
        "ejection" => {
            let failing = |runs: &[SideRun]| -> Vec<f64> {
                runs.iter().map(|r| r.pod("api-v2-a") as f64).collect()
            };
            push(
                "attempts the failing pod got (per run)",
                compare_means(&failing(m), &failing(e), 2),
            );
            push(
                "client error rate",
                compare_shares(error_rate(m), error_rate(e)),
            );
        }
        "pending-overflow" => {
            let per_burst = |runs: &[SideRun], what: &dyn Fn(&SideRun, usize) -> u64| -> Vec<f64> {
                let mut by: BTreeMap<(usize, u64), u64> = BTreeMap::new();
                for (k, r) in runs.iter().enumerate() {
                    for (i, b) in r.burst.iter().enumerate() {
                        if *b > 0 {
                            *by.entry((k, *b)).or_insert(0) += what(r, i);
                        }
                    }
                }
                by.values().map(|v| *v as f64).collect()
            };
            let over = |r: &SideRun, i: usize| {
                u64::from(r.overloaded_each[i] && r.failed[i] && r.attempts[i] == 0)
            };
            let reached = |r: &SideRun, i: usize| u64::from(r.attempts[i]);
            push(
                "503 + x-envoy-overloaded per burst of 30",
                compare_means(&per_burst(m, &over), &per_burst(e, &over), 2),
            );
            push(
                "backend attempts per burst",
                compare_means(&per_burst(m, &reached), &per_burst(e, &reached), 2),
            );
            push(
                "overloaded answers whose request reached a backend (retried)",
                compare_shares(
                    (
                        sum(m, |r| r.overloaded_reached_backend),
                        sum(m, |r| r.overloaded),
                    ),
                    (
                        sum(e, |r| r.overloaded_reached_backend),
                        sum(e, |r| r.overloaded),
                    ),
                ),
            );
        }
        "per-try-timeout" | "route-timeout" => {
            push(
                "client error rate",
                compare_shares(error_rate(m), error_rate(e)),
            );
            push(
                "backend attempts per request",
                compare_means(&attempts(m), &attempts(e), 4),
            );
            let retried = |runs: &[SideRun]| -> Vec<u64> {
                runs.iter()
                    .flat_map(|r| {
                        r.attempts
                            .iter()
                            .zip(&r.latency_us)
                            .filter(|(a, _)| **a > 1)
                            .map(|(_, l)| *l)
                    })
                    .collect()
            };
            let all = |runs: &[SideRun]| concat(runs, |r| &r.latency_us);
            if scenario == "per-try-timeout" {
                push(
                    "p50 latency of retried requests",
                    compare_quantiles(&retried(m), &retried(e), 0.5),
                );
                push(
                    "p90 latency of retried requests",
                    compare_quantiles(&retried(m), &retried(e), 0.9),
                );
            } else {
                push("p50 latency", compare_quantiles(&all(m), &all(e), 0.5));
                push("p90 latency", compare_quantiles(&all(m), &all(e), 0.9));
            }
        }
        _ => {}
    }
    out
}

/// Everything the behaviour comparison measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BehaviourReport {
    meta: BTreeMap<String, serde_json::Value>,
    /// Scenario → mode → runs.
    runs: BTreeMap<String, BTreeMap<String, ModeRuns>>,
    comparisons: Vec<Comparison>,
}

/// Runs every scenario (or the `--only` ones), writes behaviour.md and behaviour.json.
pub(crate) async fn behaviour(a: &BehaviourArgs) -> Result<(), String> {
    let started = Instant::now();
    if !(0.01..=10.0).contains(&a.scale) {
        return Err(format!("--scale {}: must be between 0.01 and 10", a.scale));
    }
    for o in &a.only {
        if !SCENARIOS.iter().any(|s| s.name == o) {
            return Err(format!(
                "--only {o}: no such scenario (there are {})",
                SCENARIOS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let load_before = crate::run::loadavg();
    let work = a.out.join("behaviour");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let pods = start_pods(None).await?;
    let endpoints_path = work.join("endpoints.yaml");
    std::fs::write(&endpoints_path, endpoints_yaml(&pods)?).map_err(|e| e.to_string())?;

    let mut runs: BTreeMap<String, BTreeMap<String, ModeRuns>> = BTreeMap::new();
    let mut comparisons = Vec::new();
    let mut envoy_version = String::new();
    for sc in SCENARIOS
        .iter()
        .filter(|s| a.only.is_empty() || a.only.iter().any(|o| o == s.name))
    {
        let dir = work.join(sc.name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let cfg_path = dir.join("config.yaml");
        std::fs::write(&cfg_path, sc.config).map_err(|e| e.to_string())?;
        let config = vec![cfg_path, endpoints_path.clone()];
        for &mode in sc.modes {
            let base = match (mode, sc.concurrent) {
                (Mode::Concurrent, Some(n)) => n,
                _ => sc.requests,
            };
            let requests = if mode == Mode::Burst {
                sc.requests
            } else {
                ((base as f64 * a.scale).round() as u64).max(1)
            };
            let bursts = if mode == Mode::Burst {
                ((sc.bursts as f64 * a.scale).round() as u64).clamp(1, 100)
            } else {
                0
            };
            let mut mr = ModeRuns::default();
            for repeat in 1..=sc.repeats {
                for setup in [Setup::Mesh, Setup::Envoy] {
                    for p in &pods {
                        p.set_rules(sc.script.rules(p.name()));
                        p.reset_counts();
                    }
                    let mut args = vec![
                        "probe".to_owned(),
                        "--setup".into(),
                        setup.as_str().into(),
                        "--requests".into(),
                        requests.to_string(),
                        "--concurrency".into(),
                        match mode {
                            Mode::Sequential | Mode::Burst => "1".into(),
                            Mode::Concurrent => a.concurrency.to_string(),
                        },
                        "--bursts".into(),
                        bursts.to_string(),
                    ];
                    let envoy = if setup == Setup::Envoy {
                        let e = start_envoy(&a.envoy, &a.meshctl, &config, &[], &dir).await?;
                        args.extend(["--envoy-addr".into(), e.listen.to_string()]);
                        envoy_version.clone_from(&e.version);
                        Some(e)
                    } else {
                        for c in &config {
                            args.extend(["--config".into(), c.display().to_string()]);
                        }
                        None
                    };
                    let out: Result<ProbeOutput, String> =
                        spawn_child(&args, PROBE_LIMIT + Duration::from_secs(30)).await;
                    if let Some(e) = envoy {
                        e.stop().await;
                    }
                    let run = SideRun::new(&out?, &pods);
                    eprintln!(
                        "{:<24} {:<10} #{repeat} {:<5} requests {} errors {:?} attempts {} pods {:?} untagged {} unfinished {}",
                        sc.name,
                        mode.as_str(),
                        setup.as_str(),
                        run.requests,
                        run.failures,
                        run.total_attempts(),
                        run.pods,
                        run.untagged,
                        run.unfinished,
                    );
                    match setup {
                        Setup::Envoy => mr.envoy.push(run),
                        _ => mr.mesh.push(run),
                    }
                }
            }
            let c = compare(sc.name, mode, &mr);
            for x in &c {
                eprintln!(
                    "  {} {}: mesh {} envoy {} {} → {}",
                    x.mode,
                    x.figure,
                    x.mesh,
                    x.envoy,
                    x.tolerance,
                    if x.agree { "agree" } else { "DIFFER" }
                );
            }
            comparisons.extend(c);
            runs.entry(sc.name.to_owned())
                .or_default()
                .insert(mode.as_str().to_owned(), mr);
        }
    }
    for p in &pods {
        p.clear_rules();
    }
    let mut meta = BTreeMap::new();
    meta.insert("envoy_version".to_owned(), envoy_version.into());
    meta.insert("scale".to_owned(), a.scale.into());
    meta.insert("concurrency".to_owned(), a.concurrency.into());
    meta.insert(
        "took_secs".to_owned(),
        started.elapsed().as_secs_f64().round().into(),
    );
    meta.insert("loadavg_before".to_owned(), load_before.into());
    meta.insert("loadavg_after".to_owned(), crate::run::loadavg().into());
    meta.insert(
        "cpus".to_owned(),
        std::thread::available_parallelism()
            .map_or(0, std::num::NonZero::get)
            .into(),
    );
    meta.insert(
        "command".to_owned(),
        crate::report::without_directories(&std::env::args().collect::<Vec<_>>().join(" ")).into(),
    );
    let report = BehaviourReport {
        meta,
        runs,
        comparisons,
    };
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    std::fs::write(a.out.join("behaviour.json"), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(a.out.join("behaviour.md"), markdown(&report)).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} and {} in {:.0} s",
        a.out.join("behaviour.md").display(),
        a.out.join("behaviour.json").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The comparison table as markdown.
fn markdown(r: &BehaviourReport) -> String {
    let meta = |k: &str| match r.meta.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# bench-vs-envoy: behaviour, mesh against Envoy, Istio-exact\n"
    );
    let _ = writeln!(
        m,
        "Envoy {} (`--concurrency 1`, a fresh Envoy and a fresh mesh client process for every run); no retry budget on either side; scale {}, {} senders in the concurrent runs; {} CPUs, load average {} before and {} after. Took {} s.\n",
        meta("envoy_version"), meta("scale"), meta("concurrency"), meta("cpus"), meta("loadavg_before"), meta("loadavg_after"), meta("took_secs")
    );
    let _ = writeln!(m, "Command: `{}`\n", meta("command"));
    let _ = writeln!(m, "| scenario | what | configuration |");
    let _ = writeln!(m, "|---|---|---|");
    for sc in SCENARIOS.iter().filter(|s| r.runs.contains_key(s.name)) {
        let _ = writeln!(
            m,
            "| {} | {} | [`config/{}`](../config/{}) |",
            sc.name, sc.title, sc.file, sc.file
        );
    }
    let _ = writeln!(m);
    let _ = writeln!(
        m,
        "| scenario | mode | figure | mesh | Envoy | tolerance | verdict |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|");
    for c in &r.comparisons {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.scenario,
            c.mode,
            c.figure,
            c.mesh,
            c.envoy,
            c.tolerance,
            if c.agree { "agree" } else { "**differ**" }
        );
    }
    let _ = writeln!(m, "\n## Failures seen by the client, per run\n");
    let _ = writeln!(m, "| scenario | mode | set-up | run | requests | failures | attempts per pod | requests by attempts |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|");
    for (sc, modes) in &r.runs {
        for (mode, mr) in modes {
            for (setup, runs) in [("mesh", &mr.mesh), ("envoy", &mr.envoy)] {
                for (k, run) in runs.iter().enumerate() {
                    let pods: Vec<String> =
                        run.pods.iter().map(|(p, n)| format!("{p} {n}")).collect();
                    let _ = writeln!(
                        m,
                        "| {sc} | {mode} | {setup} | {} | {} | {} | {} | {} |",
                        k + 1,
                        run.requests,
                        if run.failures.is_empty() {
                            "none".to_owned()
                        } else {
                            format!("{:?}", run.failures)
                        },
                        pods.join(", "),
                        run.attempts_histogram
                            .iter()
                            .map(|(a, n)| format!("{a}: {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_agree_within_three_standard_errors() {
        let m = [1.0, 2.0, 1.0, 2.0];
        let e = [1.0, 2.0, 2.0, 2.0];
        assert!(compare_means(&m, &e, 2).3);
        // No variance anywhere: only equality agrees.
        assert!(compare_means(&[5.0, 5.0], &[5.0, 5.0], 2).3);
        assert!(!compare_means(&[5.0, 5.0], &[6.0, 6.0], 2).3);
    }

    #[test]
    fn shares_use_the_pooled_binomial_error() {
        assert!(compare_shares((100, 10_000), (110, 10_000)).3);
        assert!(!compare_shares((100, 10_000), (200, 10_000)).3);
        assert!(compare_shares((0, 100), (0, 100)).3);
        assert!(!compare_shares((0, 100), (1, 1)).3);
    }

    #[test]
    fn quantile_intervals_bracket_the_quantile() {
        let v: Vec<u64> = (1..=1000).collect();
        let (lo, q, hi) = quantile_interval(&v, 0.9).unwrap();
        assert_eq!(q, 901);
        // 3 × √(1000 × 0.9 × 0.1) ≈ 28.5 ranks either side.
        assert!(
            (870..=875).contains(&lo) && (928..=932).contains(&hi),
            "{lo} {hi}"
        );
        let shifted: Vec<u64> = (1..=1000).map(|x| x + 200).collect();
        assert!(!compare_quantiles(&v, &shifted, 0.9).3);
        assert!(compare_quantiles(&v, &v, 0.9).3);
    }

    #[test]
    fn every_scenario_has_a_config_the_mesh_loads() {
        let endpoints = include_str!("../config/endpoints.yaml.tmpl")
            .replace("{{api-v1-a}}", "18001")
            .replace("{{api-v1-b}}", "18002")
            .replace("{{api-v2-a}}", "18003")
            .replace("{{api-v2-b}}", "18004");
        for sc in SCENARIOS {
            let text = format!("{}\n---\n{endpoints}", sc.config);
            let cfg = mesh_tower::load_str(sc.name, &text);
            assert!(cfg.is_ok(), "{}: {:?}", sc.name, cfg.err());
        }
    }
}
