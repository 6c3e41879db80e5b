//! Medians, spreads, goals and the behaviour comparison; `latest.md` and `latest.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::client::PhaseResult;
use crate::run::{RunArgs, V2_FAILURE_PER_MILLION};
use crate::target::{Setup, BARE_MTLS_IN_FLIGHT};
use crate::tls::Handshakes;

/// The route's v2 weight in the seed canary (10 of 100).
const V2_WEIGHT: f64 = 0.10;
/// The route's retries in the seed canary (`attempts: 3`): at most 4 tries per request.
const TRIES: i32 = 4;
/// Agreement tolerance, in standard errors of the difference.
const SIGMAS: f64 = 3.0;

/// Median and spread of one figure over the rounds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stat {
    /// Median over the rounds.
    pub(crate) median: f64,
    /// Smallest.
    pub(crate) min: f64,
    /// Largest.
    pub(crate) max: f64,
    /// Every round, in order.
    pub(crate) rounds: Vec<f64>,
}

impl Stat {
    fn of(values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut s = values.clone();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: s[0],
            max: s[n - 1],
            rounds: values,
        })
    }
}

/// The figures of one set-up.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SetupSummary {
    /// 2xx answers per second at saturation.
    pub(crate) saturation_ok_per_s: Option<Stat>,
    /// Latency (µs) per phase and percentile (`p50`, `p90`, `p99`, `p99.9`).
    pub(crate) latency_us: BTreeMap<String, BTreeMap<String, Stat>>,
    /// Client CPU µs per request, per phase.
    pub(crate) client_cpu_us_per_request: BTreeMap<String, Stat>,
    /// Envoy CPU µs per request, per phase (set-up c only).
    pub(crate) envoy_cpu_us_per_request: BTreeMap<String, Stat>,
    /// Failures (non-2xx, errors, overload) summed over every round, per phase.
    pub(crate) failures: BTreeMap<String, BTreeMap<String, u64>>,
    /// Largest peak resident set of a client process, kB.
    pub(crate) client_peak_rss_kb: Option<u64>,
    /// Envoy's peak resident set, kB (set-up c only).
    pub(crate) envoy_peak_rss_kb: Option<u64>,
}

/// One behaviour phase of one set-up.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct BehaviourRun {
    /// Requests completed.
    pub(crate) requests: u64,
    /// 2xx answers.
    pub(crate) ok: u64,
    /// The others.
    pub(crate) failures: BTreeMap<String, u64>,
    /// Share of requests the client saw fail.
    pub(crate) error_rate: f64,
    /// Requests each backend received: name, version, count.
    pub(crate) backends: Vec<(String, String, u64)>,
    /// Requests all backends received.
    pub(crate) attempts: u64,
    /// `attempts / requests`.
    pub(crate) attempts_per_request: f64,
    /// Share of attempts that reached v2.
    pub(crate) v2_share: f64,
}

impl BehaviourRun {
    /// Summarises a client's result and the backends' counts.
    pub(crate) fn new(r: &PhaseResult, counts: &[(String, String, u64)]) -> Self {
        let attempts: u64 = counts.iter().map(|c| c.2).sum();
        let v2: u64 = counts.iter().filter(|c| c.1 == "v2").map(|c| c.2).sum();
        let n = r.completed.max(1) as f64;
        BehaviourRun {
            requests: r.completed,
            ok: r.ok,
            failures: r.failures.clone(),
            error_rate: (r.completed - r.ok.min(r.completed)) as f64 / n,
            backends: counts.to_vec(),
            attempts,
            attempts_per_request: attempts as f64 / n,
            v2_share: v2 as f64 / attempts.max(1) as f64,
        }
    }
}

/// One mesh-versus-Envoy agreement check.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Agreement {
    /// What is compared.
    pub(crate) what: String,
    /// The value under the mesh.
    pub(crate) mesh: f64,
    /// The value under Envoy.
    pub(crate) envoy: f64,
    /// What the configuration predicts.
    pub(crate) expected: f64,
    /// `|mesh − envoy|`.
    pub(crate) difference: f64,
    /// Allowed difference: `SIGMAS` standard errors of the difference.
    pub(crate) tolerance: f64,
    /// Whether the difference is within the tolerance.
    pub(crate) agree: bool,
}

/// The behaviour comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Behaviour {
    /// No failures: where the requests went.
    pub(crate) split: BTreeMap<String, BehaviourRun>,
    /// v2 failing half its requests.
    pub(crate) failing: BTreeMap<String, BehaviourRun>,
    /// Mesh against Envoy.
    pub(crate) agreement: Vec<Agreement>,
}

/// One goal of issue 6.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Goal {
    /// The goal.
    pub(crate) goal: String,
    /// The measured ratio.
    pub(crate) measured: Option<f64>,
    /// The bound.
    pub(crate) bound: f64,
    /// Met, not met, or not measurable.
    pub(crate) met: Option<bool>,
    /// How the ratio was computed.
    pub(crate) detail: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// How the run was set up.
    pub(crate) meta: BTreeMap<String, serde_json::Value>,
    /// Per set-up.
    pub(crate) setups: BTreeMap<String, SetupSummary>,
    /// The goals.
    pub(crate) goals: Vec<Goal>,
    /// Behaviour side by side.
    pub(crate) behaviour: Behaviour,
    /// With `--mtls`: what the backends saw of each set-up's TLS handshakes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tls_handshakes: BTreeMap<String, Handshakes>,
    /// Every phase of every round, as measured.
    pub(crate) raw: Vec<(u64, PhaseResult)>,
}

fn per_request_us(cpu_s: f64, requests: u64) -> f64 {
    cpu_s * 1e6 / requests.max(1) as f64
}

fn summarise(results: &[(u64, PhaseResult)], setup: &str) -> SetupSummary {
    let mine: Vec<&PhaseResult> = results
        .iter()
        .map(|r| &r.1)
        .filter(|r| r.setup == setup)
        .collect();
    let mut phases: Vec<String> = mine.iter().map(|r| r.phase.clone()).collect();
    phases.dedup();
    phases.sort();
    phases.dedup();
    let of = |phase: &str, f: &dyn Fn(&PhaseResult) -> f64| {
        Stat::of(
            mine.iter()
                .filter(|r| r.phase == phase)
                .map(|r| f(r))
                .collect(),
        )
    };
    let mut latency = BTreeMap::new();
    let mut client_cpu = BTreeMap::new();
    let mut envoy_cpu = BTreeMap::new();
    let mut failures: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for p in &phases {
        let mut pct = BTreeMap::new();
        for (name, f) in [
            (
                "p50",
                (|r: &PhaseResult| r.p50_us as f64) as fn(&PhaseResult) -> f64,
            ),
            ("p90", |r| r.p90_us as f64),
            ("p99", |r| r.p99_us as f64),
            ("p99.9", |r| r.p999_us as f64),
        ] {
            if let Some(s) = of(p, &f) {
                pct.insert(name.to_owned(), s);
            }
        }
        latency.insert(p.clone(), pct);
        if let Some(s) = of(p, &|r| per_request_us(r.client_cpu_s, r.completed)) {
            client_cpu.insert(p.clone(), s);
        }
        let with_envoy: Vec<f64> = mine
            .iter()
            .filter(|r| &r.phase == p)
            .filter_map(|r| r.envoy_cpu_s.map(|c| per_request_us(c, r.completed)))
            .collect();
        if let Some(s) = Stat::of(with_envoy) {
            envoy_cpu.insert(p.clone(), s);
        }
        for r in mine.iter().filter(|r| &r.phase == p) {
            for (k, v) in &r.failures {
                *failures
                    .entry(p.clone())
                    .or_default()
                    .entry(k.clone())
                    .or_default() += v;
            }
        }
    }
    SetupSummary {
        saturation_ok_per_s: of("saturation", &|r| r.ok_per_s),
        latency_us: latency,
        client_cpu_us_per_request: client_cpu,
        envoy_cpu_us_per_request: envoy_cpu,
        failures,
        client_peak_rss_kb: mine.iter().filter_map(|r| r.client_peak_rss_kb).max(),
        envoy_peak_rss_kb: mine.iter().filter_map(|r| r.envoy_peak_rss_kb).max(),
    }
}

/// Expected error rate and attempts per request (mean, variance) under the canary with v2
/// failing a share `f` of its requests, every try independent.
fn expected_failing(f: f64) -> (f64, f64, f64) {
    let mut v2_mean = 0.0;
    let mut v2_sq = 0.0;
    for k in 1..=TRIES {
        let p = if k < TRIES {
            f.powi(k - 1) * (1.0 - f)
        } else {
            f.powi(TRIES - 1)
        };
        v2_mean += f64::from(k) * p;
        v2_sq += f64::from(k * k) * p;
    }
    let mean = V2_WEIGHT.mul_add(v2_mean, 1.0 - V2_WEIGHT);
    let sq = V2_WEIGHT.mul_add(v2_sq, 1.0 - V2_WEIGHT);
    (V2_WEIGHT * f.powi(TRIES), mean, sq - mean * mean)
}

fn proportion_agreement(
    what: &str,
    mesh: (f64, u64),
    envoy: (f64, u64),
    expected: f64,
) -> Agreement {
    let (n1, n2) = (mesh.1.max(1) as f64, envoy.1.max(1) as f64);
    let pooled = mesh.0.mul_add(n1, envoy.0 * n2) / (n1 + n2);
    let p = if pooled > 0.0 { pooled } else { expected };
    let se = (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let difference = (mesh.0 - envoy.0).abs();
    Agreement {
        what: what.to_owned(),
        mesh: mesh.0,
        envoy: envoy.0,
        expected,
        difference,
        tolerance: SIGMAS * se,
        agree: difference <= SIGMAS * se,
    }
}

impl Behaviour {
    fn compare(&mut self) {
        let f = f64::from(V2_FAILURE_PER_MILLION) / 1e6;
        let (exp_err, exp_attempts, var_attempts) = expected_failing(f);
        if let (Some(m), Some(e)) = (self.split.get("mesh"), self.split.get("envoy")) {
            self.agreement.push(proportion_agreement(
                "split: share of requests reaching v2 (no failures)",
                (m.v2_share, m.attempts),
                (e.v2_share, e.attempts),
                V2_WEIGHT,
            ));
        }
        if let (Some(m), Some(e)) = (self.failing.get("mesh"), self.failing.get("envoy")) {
            self.agreement.push(proportion_agreement(
                "v2 failing 50%: error rate the client sees",
                (m.error_rate, m.requests),
                (e.error_rate, e.requests),
                exp_err,
            ));
            let se = (var_attempts
                * (1.0 / m.requests.max(1) as f64 + 1.0 / e.requests.max(1) as f64))
                .sqrt();
            let difference = (m.attempts_per_request - e.attempts_per_request).abs();
            self.agreement.push(Agreement {
                what: "v2 failing 50%: backend attempts per request".to_owned(),
                mesh: m.attempts_per_request,
                envoy: e.attempts_per_request,
                expected: exp_attempts,
                difference,
                tolerance: SIGMAS * se,
                agree: difference <= SIGMAS * se,
            });
        }
    }
}

impl Report {
    /// Summarises every phase and checks the goals.
    pub(crate) fn build(
        a: &RunArgs,
        results: &[(u64, PhaseResult)],
        behaviour: Behaviour,
        tls_handshakes: BTreeMap<String, Handshakes>,
        envoy_version: Option<String>,
        took: Duration,
        load: [String; 2],
    ) -> Self {
        let mut meta = BTreeMap::new();
        let mut put = |k: &str, v: serde_json::Value| {
            meta.insert(k.to_owned(), v);
        };
        put("rounds", a.rounds.into());
        put("saturation_secs", a.saturation_secs.into());
        put("rate_secs", a.rate_secs.into());
        put("warmup_secs", a.warmup_secs.into());
        put("rates", a.rates.clone().into());
        put("connections", a.connections.into());
        put("client_threads", a.client_threads.into());
        put(
            "behaviour_requests",
            if a.mtls { 0 } else { a.behaviour_requests }.into(),
        );
        put("mtls", a.mtls.into());
        put("envoy_version", envoy_version.clone().into());
        put(
            "envoy_concurrency",
            if envoy_version.is_some() {
                1.into()
            } else {
                serde_json::Value::Null
            },
        );
        put(
            "cpus",
            std::thread::available_parallelism()
                .map_or(0, std::num::NonZero::get)
                .into(),
        );
        put("took_secs", took.as_secs_f64().round().into());
        put("loadavg_before", load[0].clone().into());
        put("loadavg_after", load[1].clone().into());
        put(
            "command",
            without_directories(&std::env::args().collect::<Vec<_>>().join(" ")).into(),
        );
        Self::summarise(meta, results, behaviour, tls_handshakes)
    }

    /// Re-reads a `latest.json` and summarises its raw figures again (the report's code may have
    /// changed since the run).
    pub(crate) fn rebuild(json: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Saved {
            meta: BTreeMap<String, serde_json::Value>,
            behaviour: SavedBehaviour,
            #[serde(default)]
            tls_handshakes: BTreeMap<String, Handshakes>,
            raw: Vec<(u64, PhaseResult)>,
        }
        #[derive(serde::Deserialize)]
        struct SavedBehaviour {
            split: BTreeMap<String, BehaviourRun>,
            failing: BTreeMap<String, BehaviourRun>,
        }
        let mut saved: Saved =
            serde_json::from_str(json).map_err(|e| format!("latest.json: {e}"))?;
        if let Some(serde_json::Value::String(c)) = saved.meta.get_mut("command") {
            *c = without_directories(c);
        }
        let behaviour = Behaviour {
            split: saved.behaviour.split,
            failing: saved.behaviour.failing,
            agreement: Vec::new(),
        };
        Ok(Self::summarise(
            saved.meta,
            &saved.raw,
            behaviour,
            saved.tls_handshakes,
        ))
    }

    fn summarise(
        meta: BTreeMap<String, serde_json::Value>,
        results: &[(u64, PhaseResult)],
        mut behaviour: Behaviour,
        tls_handshakes: BTreeMap<String, Handshakes>,
    ) -> Self {
        let mut setups = BTreeMap::new();
        for s in Setup::ALL.iter().chain(&Setup::MTLS).map(|s| s.as_str()) {
            if results.iter().any(|r| r.1.setup == s) {
                setups.insert(s.to_owned(), summarise(results, s));
            }
        }
        behaviour.compare();
        let rates: Vec<u64> = meta
            .get("rates")
            .and_then(|v| v.as_array())
            .map(|v| v.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        let mtls = meta.get("mtls").and_then(serde_json::Value::as_bool) == Some(true);
        let goals = if mtls {
            mtls_goals(&setups, &rates)
        } else {
            goals(&setups, &rates)
        };
        Report {
            meta,
            setups,
            goals,
            behaviour,
            tls_handshakes,
            raw: results.to_vec(),
        }
    }
}

fn median_of(
    s: &BTreeMap<String, SetupSummary>,
    setup: &str,
    f: impl Fn(&SetupSummary) -> Option<&Stat>,
) -> Option<f64> {
    s.get(setup).and_then(f).map(|st| st.median)
}

/// A command line with every path cut down to its file name, so that a report names no
/// directory of the machine it ran on.
pub(crate) fn without_directories(command: &str) -> String {
    command
        .split(' ')
        .map(|w| match w.rsplit_once('/') {
            Some((_, name)) if !name.is_empty() => name,
            _ => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The same comparison at p50, for context.
fn p50_detail(s: &BTreeMap<String, SetupSummary>, phase: &str) -> String {
    let p50 = |setup: &str| {
        median_of(s, setup, |x| {
            x.latency_us.get(phase).and_then(|m| m.get("p50"))
        })
    };
    match (p50("bare"), p50("mesh"), p50("envoy")) {
        (Some(b), Some(m), Some(e)) => format!(
            "; at p50: bare {b:.0} us, mesh {m:.0} us ({:+.0}), envoy {e:.0} us ({:+.0})",
            m - b,
            e - b
        ),
        _ => String::new(),
    }
}

fn goals(s: &BTreeMap<String, SetupSummary>, rates: &[u64]) -> Vec<Goal> {
    let mut out = Vec::new();
    for r in rates {
        let phase = format!("rate-{r}");
        let p99 = |setup: &str| {
            median_of(s, setup, |x| {
                x.latency_us.get(&phase).and_then(|m| m.get("p99"))
            })
        };
        let (bare, mesh, envoy) = (p99("bare"), p99("mesh"), p99("envoy"));
        let (measured, met, detail) = match (bare, mesh, envoy) {
            (Some(b), Some(m), Some(e)) => {
                let (added_m, added_e) = (m - b, e - b);
                let ratio = if added_e > 0.0 {
                    Some(added_m.max(0.0) / added_e)
                } else {
                    None
                };
                (
                    ratio,
                    ratio.map(|x| x <= 0.05),
                    format!("median p99 at {r}/s: bare {b:.0} us, mesh {m:.0} us ({added_m:+.0}), envoy {e:.0} us ({added_e:+.0}); ratio = max(mesh added, 0) / envoy added{}", p50_detail(s, &phase)),
                )
            }
            _ => (None, None, "set-up missing".to_owned()),
        };
        out.push(Goal {
            goal: format!("latency mesh adds at p99 <= 1/20 of what Envoy adds ({r} req/s)"),
            measured,
            bound: 0.05,
            met,
            detail,
        });
    }
    for r in rates {
        let phase = format!("rate-{r}");
        let cpu = |setup: &str| median_of(s, setup, |x| x.client_cpu_us_per_request.get(&phase));
        let envoy_proc = median_of(s, "envoy", |x| x.envoy_cpu_us_per_request.get(&phase));
        let (measured, met, detail) = match (cpu("bare"), cpu("mesh"), cpu("envoy"), envoy_proc) {
            (Some(b), Some(m), Some(ec), Some(ep)) => {
                let mesh_cost = m - b;
                let envoy_cost = ep + (ec - b);
                let ratio = if envoy_cost > 0.0 {
                    Some(mesh_cost.max(0.0) / envoy_cost)
                } else {
                    None
                };
                (
                    ratio,
                    ratio.map(|x| x <= 0.1),
                    format!("CPU us/request at {r}/s: bare client {b:.1}, mesh client {m:.1} (mesh cost {mesh_cost:.1}), envoy-set-up client {ec:.1} + Envoy process {ep:.1} (sidecar cost {envoy_cost:.1}); ratio = mesh cost / sidecar cost; mesh client total / Envoy process = {:.2}", m / ep),
                )
            }
            _ => (None, None, "set-up missing".to_owned()),
        };
        out.push(Goal {
            goal: format!("client CPU per request the mesh costs <= 1/10 of what the sidecar costs ({r} req/s)"),
            measured,
            bound: 0.1,
            met,
            detail,
        });
    }
    let sat = |setup: &str| median_of(s, setup, |x| x.saturation_ok_per_s.as_ref());
    let (measured, met, detail) = match (sat("bare"), sat("mesh")) {
        (Some(b), Some(m)) if b > 0.0 => (
            Some(m / b),
            Some(m / b >= 0.95),
            format!("median saturation: bare {b:.0}/s, mesh {m:.0}/s"),
        ),
        _ => (None, None, "set-up missing".to_owned()),
    };
    out.push(Goal {
        goal: "mesh throughput >= 95% of bare".to_owned(),
        measured,
        bound: 0.95,
        met,
        detail,
    });
    out
}

/// The goal of the mutual TLS run, per fixed rate: the mesh client's CPU per request below that
/// of the Envoy set-up (its client plus the Envoy process). With the bare mTLS client, the
/// detail also gives what each costs over it.
fn mtls_goals(s: &BTreeMap<String, SetupSummary>, rates: &[u64]) -> Vec<Goal> {
    let mut out = Vec::new();
    for r in rates {
        let phase = format!("rate-{r}");
        let cpu = |setup: &str| median_of(s, setup, |x| x.client_cpu_us_per_request.get(&phase));
        let envoy_proc = median_of(s, "envoy-mtls", |x| x.envoy_cpu_us_per_request.get(&phase));
        let (measured, met, detail) = match (cpu("mesh-mtls"), cpu("envoy-mtls"), envoy_proc) {
            (Some(m), Some(ec), Some(ep)) => {
                let envoy_total = ec + ep;
                let ratio = (envoy_total > 0.0).then(|| m / envoy_total);
                let mut detail = format!(
                    "CPU us/request at {r}/s: mesh-mtls client {m:.1}; envoy-mtls client {ec:.1} + Envoy process {ep:.1} = {envoy_total:.1}; ratio = mesh client / (Envoy set-up's client + Envoy)"
                );
                if let Some(b) = cpu("bare-mtls") {
                    let (mesh_cost, sidecar_cost) = (m - b, ep + (ec - b));
                    let _ = write!(
                        detail,
                        "; over the bare mTLS client ({b:.1}): mesh cost {mesh_cost:.1}, sidecar cost {sidecar_cost:.1}"
                    );
                    if sidecar_cost > 0.0 {
                        let _ = write!(detail, " (ratio {:.3})", mesh_cost.max(0.0) / sidecar_cost);
                    }
                }
                (ratio, ratio.map(|x| x < 1.0), detail)
            }
            _ => (None, None, "set-up missing".to_owned()),
        };
        out.push(Goal {
            goal: format!(
                "mTLS: mesh client CPU per request < envoy set-up CPU per request (client + Envoy) ({r} req/s)"
            ),
            measured,
            bound: 1.0,
            met,
            detail,
        });
    }
    out
}

fn stat_cell(s: Option<&Stat>, scale: f64, digits: usize) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) => format!(
            "{:.d$} ({:.d$}–{:.d$})",
            s.median / scale,
            s.min / scale,
            s.max / scale,
            d = digits
        ),
    }
}

/// The report as markdown.
pub(crate) fn markdown(r: &Report) -> String {
    let mut m = String::new();
    let meta = |k: &str| match r.meta.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let mtls = r.meta.get("mtls").and_then(serde_json::Value::as_bool) == Some(true);
    if mtls {
        let _ = writeln!(
            m,
            "# bench-vs-envoy, mutual TLS: bare vs mesh vs Envoy sidecar, ISTIO_MUTUAL to the backends\n"
        );
        let _ = writeln!(
            m,
            "The backends serve TLS only and require a client certificate of the run's mesh CA; the DestinationRule says `tls: {{mode: ISTIO_MUTUAL}}`. mesh-mtls: `MeshLayer` over `MeshClient` with the workload's certificates; envoy-mtls: plaintext to Envoy on loopback, Envoy originating the mutual TLS (`meshctl envoy --workload-certificates`) with the same files; bare-mtls: the hyper-util client over a rustls connector with the same certificate, SNI and ALPN, picking the backends itself, with at most {BARE_MTLS_IN_FLIGHT} requests in flight.\n"
        );
    } else {
        let _ = writeln!(m, "# bench-vs-envoy: bare vs mesh vs Envoy sidecar\n");
    }
    let _ = writeln!(
        m,
        "{} rounds of A B C interleaved; saturation {} s with {} connections, fixed rates {} for {} s each, {} s warm-up; client: one process per phase, {} tokio thread(s); Envoy {} with `--concurrency 1`; {} CPUs, load average (1, 5, 15 min) {} before and {} after. Medians, with (min–max) over the rounds. Took {} s.\n",
        meta("rounds"), meta("saturation_secs"), meta("connections"), meta("rates"), meta("rate_secs"), meta("warmup_secs"), meta("client_threads"), meta("envoy_version"), meta("cpus"), meta("loadavg_before"), meta("loadavg_after"), meta("took_secs"),
    );
    let _ = writeln!(
        m,
        "Command: `{}`\n",
        r.meta.get("command").and_then(|v| v.as_str()).unwrap_or("")
    );

    let rates: Vec<String> = r
        .setups
        .values()
        .flat_map(|s| {
            s.latency_us
                .keys()
                .filter(|k| k.starts_with("rate-"))
                .cloned()
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rates = rates;
    rates.sort_by_key(|p| p.trim_start_matches("rate-").parse::<u64>().unwrap_or(0));
    let mib = |k: Option<u64>| {
        k.map_or("–".to_owned(), |k| {
            format!("{:.1} MiB", k as f64 / 1024.0)
        })
    };
    let _ = writeln!(m, "## Throughput and memory\n");
    let _ = writeln!(
        m,
        "| set-up | saturation (2xx/s) | client peak RSS | Envoy peak RSS |"
    );
    let _ = writeln!(m, "|---|---|---|---|");
    for (name, s) in &r.setups {
        let _ = writeln!(
            m,
            "| {name} | {} | {} | {} |",
            stat_cell(s.saturation_ok_per_s.as_ref(), 1.0, 0),
            mib(s.client_peak_rss_kb),
            mib(s.envoy_peak_rss_kb),
        );
    }
    let _ = writeln!(m, "\n## CPU seconds per 1,000 requests\n");
    let _ = writeln!(m, "Client: the load generator process (the same work in every set-up, plus the mesh in (b)). Envoy: the Envoy process, Envoy set-ups only.\n");
    let _ = writeln!(m, "| phase | set-up | client | Envoy |");
    let _ = writeln!(m, "|---|---|---|---|");
    let mut phases = vec!["saturation".to_owned()];
    phases.extend(rates.iter().cloned());
    for phase in &phases {
        for (name, s) in &r.setups {
            let _ = writeln!(
                m,
                "| {phase} | {name} | {} | {} |",
                stat_cell(s.client_cpu_us_per_request.get(phase), 1000.0, 3),
                stat_cell(s.envoy_cpu_us_per_request.get(phase), 1000.0, 3),
            );
        }
    }
    for rate in &rates {
        let _ = writeln!(
            m,
            "\n## Latency at {} req/s (µs, from the intended send time)\n",
            rate.trim_start_matches("rate-")
        );
        let _ = writeln!(m, "| set-up | p50 | p90 | p99 | p99.9 |");
        let _ = writeln!(m, "|---|---|---|---|---|");
        for (name, s) in &r.setups {
            let l = s.latency_us.get(rate);
            let cell = |p: &str| stat_cell(l.and_then(|l| l.get(p)), 1.0, 0);
            let _ = writeln!(
                m,
                "| {name} | {} | {} | {} | {} |",
                cell("p50"),
                cell("p90"),
                cell("p99"),
                cell("p99.9")
            );
        }
    }
    let _ = writeln!(m, "\n## Failures (summed over rounds)\n");
    for (name, s) in &r.setups {
        let nonempty: BTreeMap<_, _> = s.failures.iter().filter(|(_, v)| !v.is_empty()).collect();
        let _ = writeln!(
            m,
            "- {name}: {}",
            if nonempty.is_empty() {
                "none".to_owned()
            } else {
                format!("{nonempty:?}")
            }
        );
    }
    let _ = writeln!(m, "\n## Goals\n");
    let _ = writeln!(m, "| goal | measured | bound | met | how |");
    let _ = writeln!(m, "|---|---|---|---|---|");
    for g in &r.goals {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |",
            g.goal,
            g.measured.map_or("–".to_owned(), |x| format!("{x:.3}")),
            g.bound,
            match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            },
            g.detail
        );
    }
    if !r.tls_handshakes.is_empty() {
        let _ = writeln!(
            m,
            "\n## TLS handshakes the backends saw (summed over phases)\n"
        );
        let _ = writeln!(
            m,
            "| set-up | connections | with the workload's certificate | SNI | ALPN offered | ALPN agreed |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|");
        let list = |b: &BTreeMap<String, u64>| {
            b.iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        for (name, h) in &r.tls_handshakes {
            let _ = writeln!(
                m,
                "| {name} | {} | {} | {} | {} | {} |",
                h.connections,
                h.with_client_certificate,
                list(&h.sni),
                list(&h.offered_alpn),
                list(&h.agreed_alpn)
            );
        }
    }
    if r.behaviour.split.is_empty() && r.behaviour.failing.is_empty() {
        return m;
    }
    let _ = writeln!(m, "\n## Behaviour side by side\n");
    let _ = writeln!(m, "| phase | set-up | requests | client errors | error rate | backend attempts | attempts / request | v2 share of attempts | per backend |");
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|");
    for (phase, runs) in [
        ("split", &r.behaviour.split),
        ("v2 failing 50%", &r.behaviour.failing),
    ] {
        for (name, b) in runs {
            let per: Vec<String> = b
                .backends
                .iter()
                .map(|(n, _, c)| format!("{n} {c}"))
                .collect();
            let _ = writeln!(
                m,
                "| {phase} | {name} | {} | {} | {:.4} | {} | {:.4} | {:.4} | {} |",
                b.requests,
                b.requests - b.ok.min(b.requests),
                b.error_rate,
                b.attempts,
                b.attempts_per_request,
                b.v2_share,
                per.join(", ")
            );
        }
    }
    let _ = writeln!(
        m,
        "\n| comparison | mesh | Envoy | expected | difference | tolerance ({SIGMAS}σ) | agree |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|");
    for a in &r.behaviour.agreement {
        let _ = writeln!(
            m,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
            a.what,
            a.mesh,
            a.envoy,
            a.expected,
            a.difference,
            a.tolerance,
            if a.agree { "yes" } else { "**no**" }
        );
    }
    m
}

/// Writes `STEM.md` and `STEM.json` into `dir` (`latest`, or `mtls` for the mutual TLS run).
pub(crate) fn write(r: &Report, dir: &Path, stem: &str) -> Result<(), String> {
    let json = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(format!("{stem}.json")), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(dir.join(format!("{stem}.md")), markdown(r)).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_lose_their_directories() {
        assert_eq!(
            without_directories(
                "/a/b/bench-vs-envoy run --envoy /x/envoy --out results --rounds 3"
            ),
            "bench-vs-envoy run --envoy envoy --out results --rounds 3"
        );
    }

    #[test]
    fn median_and_spread() {
        let s = Stat::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.rounds, [3.0, 1.0, 2.0]);
        assert_eq!(Stat::of(vec![4.0, 1.0]).unwrap().median, 2.5);
        assert!(Stat::of(Vec::new()).is_none());
    }

    #[test]
    fn expected_behaviour_of_the_canary_with_v2_half_failing() {
        let (err, mean, var) = expected_failing(0.5);
        // 10% to v2, all four tries fail with 0.5^4.
        assert!((err - 0.006_25).abs() < 1e-12);
        // 0.9 × 1 + 0.1 × (1 + 0.5 + 0.25 + 0.125).
        assert!((mean - 1.0875).abs() < 1e-12);
        assert!(var > 0.0 && var < 1.0);
        // No failures: one attempt each, no variance.
        let (err, mean, var) = expected_failing(0.0);
        assert_eq!((err, mean), (0.0, 1.0));
        assert!(var.abs() < 1e-12);
    }

    #[test]
    fn agreement_uses_the_standard_error_of_the_difference() {
        let a = proportion_agreement("x", (0.10, 10_000), (0.11, 10_000), 0.1);
        // se = sqrt(0.105 × 0.895 × 2 / 10000) ≈ 0.00434; 3σ ≈ 0.013 > 0.01.
        assert!(a.agree, "{a:?}");
        let b = proportion_agreement("x", (0.10, 10_000), (0.12, 10_000), 0.1);
        assert!(!b.agree, "{b:?}");
    }

    fn phase(
        setup: &str,
        phase: &str,
        ok_per_s: f64,
        p99: u64,
        cpu_s: f64,
        envoy: Option<f64>,
    ) -> PhaseResult {
        PhaseResult {
            setup: setup.to_owned(),
            phase: phase.to_owned(),
            completed: 10_000,
            ok: 10_000,
            failures: BTreeMap::new(),
            elapsed_s: 1.0,
            ok_per_s,
            p50_us: p99 / 4,
            p90_us: p99 / 2,
            p99_us: p99,
            p999_us: p99 * 2,
            max_us: p99 * 3,
            client_cpu_s: cpu_s,
            envoy_cpu_s: envoy,
            client_peak_rss_kb: Some(1000),
            envoy_peak_rss_kb: envoy.map(|_| 5000),
            mesh_stats: None,
        }
    }

    #[test]
    fn goals_are_computed_from_the_medians_and_survive_a_json_round_trip() {
        let mut raw = Vec::new();
        for (round, noise) in [(1, 0.0), (2, 1.0), (3, -1.0)] {
            raw.push((
                round,
                phase("bare", "saturation", 20_000.0 + noise, 900, 0.2, None),
            ));
            raw.push((
                round,
                phase("mesh", "saturation", 19_500.0 + noise, 950, 0.25, None),
            ));
            raw.push((
                round,
                phase(
                    "envoy",
                    "saturation",
                    5_000.0 + noise,
                    5_000,
                    0.3,
                    Some(1.0),
                ),
            ));
            raw.push((round, phase("bare", "rate-1000", 1000.0, 1_000, 0.5, None)));
            raw.push((round, phase("mesh", "rate-1000", 1000.0, 1_040, 0.55, None)));
            // Envoy adds 1000 us at p99; its process uses 0.6 s per 10,000 requests.
            raw.push((
                round,
                phase("envoy", "rate-1000", 1000.0, 2_000, 0.5, Some(0.6)),
            ));
        }
        let mut meta = BTreeMap::new();
        meta.insert("rates".to_owned(), serde_json::json!([1000]));
        let r = Report::summarise(meta, &raw, Behaviour::default(), BTreeMap::new());
        assert_eq!(
            r.setups["bare"]
                .saturation_ok_per_s
                .as_ref()
                .unwrap()
                .median,
            20_000.0
        );
        let g: Vec<(Option<f64>, Option<bool>)> =
            r.goals.iter().map(|g| (g.measured, g.met)).collect();
        // p99: mesh +40 us, Envoy +1000 us: 0.04 <= 0.05.
        assert!((g[0].0.unwrap() - 0.04).abs() < 1e-9, "{g:?}");
        assert_eq!(g[0].1, Some(true));
        // CPU per request: bare 50 us, mesh 55 us (+5), Envoy 60 us + (50 − 50): 5/60 <= 0.1.
        assert!((g[1].0.unwrap() - 5.0 / 60.0).abs() < 1e-9, "{g:?}");
        assert_eq!(g[1].1, Some(true));
        // Throughput 19,500 / 20,000 = 0.975.
        assert!((g[2].0.unwrap() - 0.975).abs() < 1e-9, "{g:?}");
        assert_eq!(g[2].1, Some(true));

        let json = serde_json::to_string(&r).unwrap();
        let again = Report::rebuild(&json).unwrap();
        assert_eq!(again.goals.len(), 3);
        assert_eq!(again.goals[1].measured, r.goals[1].measured);
        let md = markdown(&again);
        assert!(
            md.contains("| rate-1000 | envoy | 0.050 (0.050–0.050) | 0.060 (0.060–0.060) |"),
            "{md}"
        );
    }

    #[test]
    fn mtls_goal_compares_the_mesh_client_with_client_plus_envoy() {
        let mut raw = Vec::new();
        for round in 1..=3 {
            for rate in ["rate-1000", "rate-5000"] {
                raw.push((round, phase("bare-mtls", rate, 1000.0, 1_000, 0.8, None)));
                raw.push((round, phase("mesh-mtls", rate, 1000.0, 1_000, 1.0, None)));
                // Envoy's client 0.9 s, Envoy 2.1 s per 10,000 requests: 300 us per request.
                raw.push((
                    round,
                    phase("envoy-mtls", rate, 1000.0, 2_000, 0.9, Some(2.1)),
                ));
            }
        }
        let mut meta = BTreeMap::new();
        meta.insert("rates".to_owned(), serde_json::json!([1000, 5000]));
        meta.insert("mtls".to_owned(), serde_json::json!(true));
        let mut seen = BTreeMap::new();
        seen.insert(
            "mesh-mtls".to_owned(),
            Handshakes {
                connections: 4,
                with_client_certificate: 4,
                ..Handshakes::default()
            },
        );
        let r = Report::summarise(meta, &raw, Behaviour::default(), seen);
        assert_eq!(
            r.setups.keys().collect::<Vec<_>>(),
            ["bare-mtls", "envoy-mtls", "mesh-mtls"]
        );
        assert_eq!(r.goals.len(), 2, "{:?}", r.goals);
        for g in &r.goals {
            assert!(g
                .goal
                .starts_with("mTLS: mesh client CPU per request < envoy set-up"));
            // 100 us against 90 + 210 us.
            assert!((g.measured.unwrap() - 100.0 / 300.0).abs() < 1e-9, "{g:?}");
            assert_eq!(g.met, Some(true));
            // Over the bare client (80 us): mesh 20, sidecar 210 + 10.
            assert!(
                g.detail.contains("mesh cost 20.0, sidecar cost 220.0"),
                "{g:?}"
            );
        }
        let json = serde_json::to_string(&r).unwrap();
        let again = Report::rebuild(&json).unwrap();
        assert_eq!(again.goals[1].measured, r.goals[1].measured);
        assert_eq!(again.tls_handshakes["mesh-mtls"].connections, 4);
        let md = markdown(&again);
        assert!(md.contains("mutual TLS"), "{md}");
        assert!(md.contains("| mesh-mtls | 4 | 4 |"), "{md}");
        assert!(!md.contains("Behaviour side by side"), "{md}");
    }
}
