//! The `client` subcommand: one phase of one set-up in its own process, so that its CPU time and
//! memory are its own. Prints one JSON object ([`PhaseResult`]) on stdout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::{closed_loop, open_loop};
use crate::procfs;
use crate::target::{Setup, Target};

/// How the load is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// A fixed rate (`--rate`), latency from the intended send time.
    Open,
    /// `--connections` senders back to back (saturation).
    Closed,
}

/// Options of one client phase.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {
    /// The set-up to drive.
    #[arg(long, value_enum)]
    pub(crate) setup: Setup,
    /// Open (fixed rate) or closed loop.
    #[arg(long, value_enum)]
    pub(crate) mode: Mode,
    /// A name for the phase, copied into the result.
    #[arg(long)]
    pub(crate) phase: String,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    pub(crate) rate: u64,
    /// Measured duration, milliseconds (at most 10 minutes).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub(crate) duration_ms: u64,
    /// Unmeasured closed-loop warm-up before the phase, milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub(crate) warmup_ms: u64,
    /// Concurrent senders (closed loop and warm-up).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) connections: u64,
    /// At most this many requests in the measured phase.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) max_requests: u64,
    /// At most this many requests in flight (open loop); more are counted as `overload`.
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_in_flight: usize,
    /// A v1 backend (bare set-up); repeat.
    #[arg(long)]
    pub(crate) v1: Vec<SocketAddr>,
    /// A v2 backend (bare set-up); repeat.
    #[arg(long)]
    pub(crate) v2: Vec<SocketAddr>,
    /// A mesh configuration file (mesh set-up); repeat.
    #[arg(long)]
    pub(crate) config: Vec<PathBuf>,
    /// Envoy's listener (envoy set-up).
    #[arg(long)]
    pub(crate) envoy_addr: Option<SocketAddr>,
    /// Envoy's process id, to read its CPU time around the measured phase.
    #[arg(long)]
    pub(crate) envoy_pid: Option<u32>,
    /// The workload's `cert-chain.pem`, `key.pem` and `root-cert.pem` (mesh-mtls and bare-mtls
    /// set-ups).
    #[arg(long)]
    pub(crate) workload_certificates: Option<PathBuf>,
    /// Tokio worker threads of the client (1: a current-thread runtime).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub(crate) threads: u64,
}

/// What one client phase measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PhaseResult {
    /// `bare`, `mesh` or `envoy` (`-mtls` appended for the mutual TLS set-ups).
    pub(crate) setup: String,
    /// The phase name.
    pub(crate) phase: String,
    /// Requests that got an answer (any status) or a transport error.
    pub(crate) completed: u64,
    /// Requests answered 2xx.
    pub(crate) ok: u64,
    /// The others, by status or kind.
    pub(crate) failures: BTreeMap<String, u64>,
    /// Length of the measured phase, seconds.
    pub(crate) elapsed_s: f64,
    /// 2xx answers per second.
    pub(crate) ok_per_s: f64,
    /// Latency percentiles, microseconds.
    pub(crate) p50_us: u64,
    /// 90th percentile.
    pub(crate) p90_us: u64,
    /// 99th percentile.
    pub(crate) p99_us: u64,
    /// 99.9th percentile.
    pub(crate) p999_us: u64,
    /// Slowest.
    pub(crate) max_us: u64,
    /// CPU seconds of the client process during the measured phase.
    pub(crate) client_cpu_s: f64,
    /// CPU seconds of Envoy during the measured phase.
    pub(crate) envoy_cpu_s: Option<f64>,
    /// Peak resident set of the client process, kB.
    pub(crate) client_peak_rss_kb: Option<u64>,
    /// Peak resident set of Envoy so far, kB.
    pub(crate) envoy_peak_rss_kb: Option<u64>,
    /// The mesh's counters at the end (mesh set-up only; warm-up included).
    pub(crate) mesh_stats: Option<serde_json::Value>,
}

/// Runs one phase and prints its result.
pub(crate) fn run(a: &ClientArgs) -> Result<(), String> {
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads as usize)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = rt.block_on(phase(a))?;
    let json = serde_json::to_string(&result).map_err(|e| e.to_string())?;
    println!("{json}");
    Ok(())
}

async fn phase(a: &ClientArgs) -> Result<PhaseResult, String> {
    let target = Arc::new(Target::build(
        a.setup,
        &a.v1,
        &a.v2,
        &a.config,
        a.envoy_addr,
        a.workload_certificates.as_deref(),
    )?);
    let connections = a.connections as usize;
    if a.warmup_ms > 0 {
        let _ = closed_loop(
            Arc::clone(&target),
            connections,
            Duration::from_millis(a.warmup_ms),
            u64::MAX,
        )
        .await;
    }
    let envoy_pid = a.envoy_pid.map(|p| p.to_string());
    let envoy_cpu = || envoy_pid.as_deref().and_then(procfs::cpu_seconds);
    let cpu0 = procfs::cpu_seconds("self").ok_or("cannot read /proc/self/stat")?;
    let envoy0 = envoy_cpu();
    let duration = Duration::from_millis(a.duration_ms);
    let (rec, elapsed) = match a.mode {
        Mode::Open => open_loop(Arc::clone(&target), a.rate, duration, a.max_in_flight).await,
        Mode::Closed => {
            closed_loop(Arc::clone(&target), connections, duration, a.max_requests).await
        }
    };
    let cpu1 = procfs::cpu_seconds("self").ok_or("cannot read /proc/self/stat")?;
    let envoy1 = envoy_cpu();
    let elapsed_s = elapsed.as_secs_f64();
    let q = |p: f64| rec.hist.value_at_quantile(p);
    Ok(PhaseResult {
        setup: a.setup.as_str().to_owned(),
        phase: a.phase.clone(),
        completed: rec.completed(),
        ok: rec.ok,
        failures: rec.failures.clone(),
        elapsed_s,
        ok_per_s: if elapsed_s > 0.0 {
            rec.ok as f64 / elapsed_s
        } else {
            0.0
        },
        p50_us: q(0.5),
        p90_us: q(0.9),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: rec.hist.max(),
        client_cpu_s: cpu1 - cpu0,
        envoy_cpu_s: envoy0.zip(envoy1).map(|(a, b)| b - a),
        client_peak_rss_kb: procfs::status_kb("self", "VmHWM"),
        envoy_peak_rss_kb: envoy_pid
            .as_deref()
            .and_then(|p| procfs::status_kb(p, "VmHWM")),
        mesh_stats: target.mesh_stats(),
    })
}
