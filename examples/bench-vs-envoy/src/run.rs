//! The `run` subcommand: backends, Envoy, and every phase of every set-up, interleaved.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_tests::{Action, Backend, Rule, Select};
use tokio::process::{Child, Command};

use crate::client::PhaseResult;
use crate::report::{self, Behaviour, BehaviourRun, Report};
use crate::target::Setup;
use crate::tls::{HandshakeCheck, Handshakes, Pki};

/// The seed's canary, given to the mesh and (through `meshctl envoy`) to Envoy.
const CANARY: &str = include_str!("../config/canary.yaml");
/// The same canary with `tls: {mode: ISTIO_MUTUAL}` for the whole host (`--mtls`).
const CANARY_MTLS: &str = include_str!("../config/canary-mtls.yaml");
/// The ServiceEntry template with `{{pod}}` port placeholders.
const ENDPOINTS: &str = include_str!("../config/endpoints.yaml.tmpl");
/// Backends: name and `version` label.
const PODS: [(&str, &str); 4] = [
    ("api-v1-a", "v1"),
    ("api-v1-b", "v1"),
    ("api-v2-a", "v2"),
    ("api-v2-b", "v2"),
];
/// Share of v2 requests that fail in the behaviour comparison, per million.
pub(crate) const V2_FAILURE_PER_MILLION: u32 = 500_000;
/// Seed of the backends' failure sequence (the same for mesh and Envoy).
const FAILURE_SEED: u64 = 6;
/// Fixed rate of the behaviour comparison, requests per second. Both set-ups send at the same
/// rate for the same time, so that anything that depends on time (an ejection lasting 30 s, or a
/// retry budget for a mesh built with one, which limits retries in flight) meets the same load
/// in both. Neither side has a budget by default (Istio-exact).
const BEHAVIOUR_RATE: u64 = 1_000;
/// Longest any one behaviour phase may run.
const BEHAVIOUR_LIMIT: Duration = Duration::from_secs(120);
/// How long Envoy may take to become ready.
const ENVOY_READY_LIMIT: Duration = Duration::from_secs(20);

/// Options of a whole benchmark run.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The Envoy binary; without it set-up (c) is skipped (and the report says so).
    #[arg(long)]
    pub(crate) envoy: Option<PathBuf>,
    /// The meshctl binary that writes Envoy's bootstrap (needed with --envoy).
    #[arg(long)]
    pub(crate) meshctl: Option<PathBuf>,
    /// Where to write latest.md, latest.json, the configuration and Envoy's bootstrap.
    #[arg(long, default_value = "results")]
    pub(crate) out: PathBuf,
    /// Rounds of A B C; medians are quoted, the spread shown.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub(crate) rounds: u64,
    /// Saturation (closed loop) phase length, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) saturation_secs: f64,
    /// Fixed-rate phase length, seconds.
    #[arg(long, default_value_t = 8.0)]
    pub(crate) rate_secs: f64,
    /// Warm-up before each phase, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup_secs: f64,
    /// Fixed rates, requests per second.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub(crate) rates: Vec<u64>,
    /// Concurrent senders at saturation.
    #[arg(long, default_value_t = 32)]
    pub(crate) connections: u64,
    /// Requests in each behaviour phase (0 skips the behaviour comparison).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) behaviour_requests: u64,
    /// Tokio worker threads of each client process.
    #[arg(long, default_value_t = 1)]
    pub(crate) client_threads: u64,
    /// Mutual TLS instead of plaintext: the backends serve TLS only and require a client
    /// certificate of a mesh CA made for the run, the DestinationRule says `tls: {mode:
    /// ISTIO_MUTUAL}` (config/canary-mtls.yaml), and the set-ups are bare-mtls, mesh-mtls
    /// (`MeshClient` with the workload's certificates) and envoy-mtls (Envoy originating the
    /// TLS, from `meshctl envoy --workload-certificates`), with the same certificate files.
    /// Writes mtls.md and mtls.json; no behaviour comparison.
    #[arg(long)]
    pub(crate) mtls: bool,
}

fn secs_ms(s: f64) -> Result<u64, String> {
    if !(0.0..=600.0).contains(&s) {
        return Err(format!(
            "{s} s: durations must be between 0 and 600 seconds"
        ));
    }
    Ok((s * 1000.0).round() as u64)
}

/// The machine's load averages (`/proc/loadavg`, 1, 5 and 15 minutes): other work on the
/// machine shows up in every figure.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A free loopback port (bound, read, released).
pub(crate) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub(crate) struct Envoy {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) listen: SocketAddr,
    pub(crate) version: String,
}

impl Envoy {
    /// Kills Envoy and waits for it (at most 5 s).
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Runs the whole benchmark.
pub(crate) async fn run(a: &RunArgs) -> Result<(), String> {
    let started = Instant::now();
    let load_before = loadavg();
    let sat_ms = secs_ms(a.saturation_secs)?;
    let rate_ms = secs_ms(a.rate_secs)?;
    let warm_ms = secs_ms(a.warmup_secs)?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let work = a.out.join("run");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;

    // 1. Backends (with --mtls: a mesh CA, the workload's files, TLS-only backends).
    let pki = a.mtls.then(Pki::new);
    if let Some(p) = &pki {
        eprintln!(
            "mutual TLS: a mesh CA made for this run; the workload's cert-chain.pem, key.pem \
             and root-cert.pem in {} (removed at the end)",
            p.workload.path().display()
        );
    }
    let pods = start_pods(pki.as_ref().map(|p| Arc::clone(&p.server))).await?;

    // 2. The configuration, with the backends' ports.
    let endpoints = endpoints_yaml(&pods)?;
    let (canary_name, canary) = if a.mtls {
        ("canary-mtls.yaml", CANARY_MTLS)
    } else {
        ("canary.yaml", CANARY)
    };
    let canary_path = work.join(canary_name);
    let endpoints_path = work.join("endpoints.yaml");
    std::fs::write(&canary_path, canary).map_err(|e| e.to_string())?;
    std::fs::write(&endpoints_path, &endpoints).map_err(|e| e.to_string())?;
    let config = vec![canary_path.clone(), endpoints_path.clone()];
    let certs = pki.as_ref().map(|p| p.workload.path().to_path_buf());

    // 3. Envoy (with --mtls, given the same certificate files as the mesh).
    let meshctl_args: Vec<String> = certs
        .iter()
        .flat_map(|c| {
            [
                "--workload-certificates".to_owned(),
                c.display().to_string(),
            ]
        })
        .collect();
    let mut envoy = match (&a.envoy, &a.meshctl) {
        (Some(bin), Some(meshctl)) => {
            Some(start_envoy(bin, meshctl, &config, &meshctl_args, &work).await?)
        }
        (Some(_), None) => return Err("--envoy needs --meshctl to write its bootstrap".into()),
        (None, _) => {
            eprintln!("no --envoy: set-up (c) is skipped");
            None
        }
    };
    let all = if a.mtls { Setup::MTLS } else { Setup::ALL };
    let setups: Vec<Setup> = all
        .into_iter()
        .filter(|s| !s.is_envoy() || envoy.is_some())
        .collect();

    let base = ClientBase {
        v1: pods[..2].iter().map(Backend::addr).collect(),
        v2: pods[2..].iter().map(Backend::addr).collect(),
        config: config.clone(),
        envoy_addr: envoy.as_ref().map(|e| e.listen),
        envoy_pid: envoy.as_ref().map(|e| e.pid),
        threads: a.client_threads,
        certs: certs.clone(),
    };
    // What the backends saw of the TLS handshakes, per set-up (--mtls).
    let mut check = HandshakeCheck::default();
    let mut handshakes: BTreeMap<String, Handshakes> = BTreeMap::new();

    // 4. Performance: rounds of A B C for each phase.
    let mut results: Vec<(u64, PhaseResult)> = Vec::new();
    for round in 1..=a.rounds {
        let mut phases = vec![("saturation".to_owned(), None)];
        phases.extend(a.rates.iter().map(|r| (format!("rate-{r}"), Some(*r))));
        for (phase, rate) in &phases {
            for &setup in &setups {
                // The backends keep a record of every request; forget them between phases so
                // memory stays bounded.
                for p in &pods {
                    p.reset_counts();
                }
                let mut args = base.args(setup, phase);
                match rate {
                    None => args.extend([
                        "--mode".into(),
                        "closed".into(),
                        "--duration-ms".into(),
                        sat_ms.to_string(),
                        "--connections".into(),
                        a.connections.to_string(),
                    ]),
                    Some(r) => args.extend([
                        "--mode".into(),
                        "open".into(),
                        "--rate".into(),
                        r.to_string(),
                        "--duration-ms".into(),
                        rate_ms.to_string(),
                        "--connections".into(),
                        "8".into(),
                    ]),
                }
                args.extend(["--warmup-ms".into(), warm_ms.to_string()]);
                let limit =
                    Duration::from_millis(sat_ms.max(rate_ms) + warm_ms) + Duration::from_secs(40);
                let r = spawn_client(&args, limit).await?;
                eprintln!(
                    "round {round} {phase:<14} {:<10} {:>8.0} ok/s  p50 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  failures {:?}",
                    r.setup, r.ok_per_s, r.p50_us, r.p99_us, r.p999_us, r.failures
                );
                if let Some(p) = &pki {
                    // Every handshake must have carried the workload's certificate (the
                    // backends accept no other, so every answer came over mutual TLS).
                    let seen = handshakes.entry(setup.as_str().to_owned()).or_default();
                    check
                        .collect(&pods, &p.client_certificate, seen)
                        .map_err(|e| format!("{} {phase}: {e}", setup.as_str()))?;
                    if r.ok == 0 {
                        return Err(format!(
                            "{} {phase}: no request succeeded over mutual TLS (failures {:?}; \
                             Envoy's log is in {})",
                            setup.as_str(),
                            r.failures,
                            work.join("envoy.log").display()
                        ));
                    }
                }
                results.push((round, r));
            }
        }
    }

    for s in setups.iter().filter(|s| s.is_mtls()) {
        let seen = handshakes.get(s.as_str()).map_or(0, |h| h.connections);
        if seen == 0 {
            return Err(format!(
                "{}: the backends saw no TLS handshake in the whole run",
                s.as_str()
            ));
        }
        eprintln!("{}: {:?}", s.as_str(), handshakes[s.as_str()]);
    }

    // 5. Behaviour: the split, then v2 failing half its requests, under mesh and Envoy.
    let mut behaviour = Behaviour::default();
    if a.mtls && a.behaviour_requests > 0 {
        eprintln!("--mtls: no behaviour comparison (the plaintext run has it)");
    }
    if a.behaviour_requests > 0 && !a.mtls {
        let compared: Vec<Setup> = setups
            .iter()
            .copied()
            .filter(|s| *s != Setup::Bare)
            .collect();
        for failing in [false, true] {
            for &setup in &compared {
                for p in &pods {
                    if failing && p.labels().get("version").map(String::as_str) == Some("v2") {
                        p.set_rules([Rule::new(
                            Select::Seeded {
                                seed: FAILURE_SEED,
                                per_million: V2_FAILURE_PER_MILLION,
                            },
                            Action::Status(503),
                        )]);
                    } else {
                        p.clear_rules();
                    }
                    p.reset_counts();
                }
                let phase = if failing { "v2-failing" } else { "split" };
                let mut args = base.args(setup, phase);
                let duration_ms = (a.behaviour_requests * 1_000 / BEHAVIOUR_RATE)
                    .min(BEHAVIOUR_LIMIT.as_millis() as u64);
                args.extend([
                    "--mode".into(),
                    "open".into(),
                    "--rate".into(),
                    BEHAVIOUR_RATE.to_string(),
                    "--duration-ms".into(),
                    duration_ms.to_string(),
                    "--warmup-ms".into(),
                    "0".into(),
                ]);
                let r = spawn_client(&args, BEHAVIOUR_LIMIT + Duration::from_secs(30)).await?;
                let counts: Vec<(String, String, u64)> = pods
                    .iter()
                    .map(|p| {
                        (
                            p.name().to_owned(),
                            p.labels().get("version").cloned().unwrap_or_default(),
                            p.count(),
                        )
                    })
                    .collect();
                eprintln!(
                    "behaviour {phase:<10} {:<5} completed {} ok {} failures {:?} backends {:?}",
                    r.setup, r.completed, r.ok, r.failures, counts
                );
                if let Some(s) = &r.mesh_stats {
                    eprintln!("  mesh counters: {s}");
                }
                let run = BehaviourRun::new(&r, &counts);
                if failing {
                    behaviour.failing.insert(r.setup.clone(), run);
                } else {
                    behaviour.split.insert(r.setup.clone(), run);
                }
            }
        }
        for p in &pods {
            p.clear_rules();
        }
    }

    let envoy_version = envoy.as_ref().map(|e| e.version.clone());
    if let Some(e) = envoy.take() {
        e.stop().await;
    }

    let report = Report::build(
        a,
        &results,
        behaviour,
        handshakes,
        envoy_version,
        started.elapsed(),
        [load_before, loadavg()],
    );
    let stem = if a.mtls { "mtls" } else { "latest" };
    report::write(&report, &a.out, stem)?;
    eprintln!(
        "wrote {} and {} in {:.0} s",
        a.out.join(format!("{stem}.md")).display(),
        a.out.join(format!("{stem}.json")).display(),
        started.elapsed().as_secs_f64()
    );
    // The workload's certificate files go with `pki`, after the last client has run.
    drop(pki);
    Ok(())
}

/// The ServiceEntry template with each `{{pod}}` placeholder replaced by that backend's port.
pub(crate) fn endpoints_yaml(pods: &[Backend]) -> Result<String, String> {
    let mut endpoints = ENDPOINTS.to_owned();
    for b in pods {
        endpoints = endpoints.replace(
            &format!("{{{{{}}}}}", b.name()),
            &b.addr().port().to_string(),
        );
    }
    if let Some(left) = endpoints.lines().find(|l| l.contains("{{")) {
        return Err(format!(
            "config/endpoints.yaml.tmpl: a placeholder has no backend: {}",
            left.trim()
        ));
    }
    Ok(endpoints)
}

/// Starts the four backends (`api-v1-a`, `api-v1-b`, `api-v2-a`, `api-v2-b`), serving TLS
/// with `tls` when given (plaintext otherwise).
pub(crate) async fn start_pods(
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Vec<Backend>, String> {
    let mut pods = Vec::new();
    for (name, version) in PODS {
        let mut b = Backend::builder()
            .name(name)
            .label("app", "api")
            .label("version", version);
        if let Some(t) = &tls {
            b = b.tls(Arc::clone(t));
        }
        let b = b
            .start()
            .await
            .map_err(|e| format!("backend {name}: {e}"))?;
        eprintln!(
            "backend {name} version={version} on {}{}",
            b.addr(),
            if tls.is_some() {
                " (mutual TLS only)"
            } else {
                ""
            }
        );
        pods.push(b);
    }
    Ok(pods)
}

/// Arguments every client process gets.
struct ClientBase {
    v1: Vec<SocketAddr>,
    v2: Vec<SocketAddr>,
    config: Vec<PathBuf>,
    envoy_addr: Option<SocketAddr>,
    envoy_pid: Option<u32>,
    threads: u64,
    /// The workload's certificates (--mtls).
    certs: Option<PathBuf>,
}

impl ClientBase {
    fn args(&self, setup: Setup, phase: &str) -> Vec<String> {
        let mut v = vec![
            "client".to_owned(),
            "--setup".into(),
            setup.as_str().into(),
            "--phase".into(),
            phase.into(),
            "--threads".into(),
            self.threads.to_string(),
        ];
        if matches!(setup, Setup::BareMtls | Setup::MeshMtls) {
            if let Some(c) = &self.certs {
                v.extend(["--workload-certificates".into(), c.display().to_string()]);
            }
        }
        match setup {
            Setup::Bare | Setup::BareMtls => {
                for a in &self.v1 {
                    v.extend(["--v1".into(), a.to_string()]);
                }
                for a in &self.v2 {
                    v.extend(["--v2".into(), a.to_string()]);
                }
            }
            Setup::Mesh | Setup::MeshMtls => {
                for c in &self.config {
                    v.extend(["--config".into(), c.display().to_string()]);
                }
            }
            Setup::Envoy | Setup::EnvoyMtls => {
                if let Some(a) = self.envoy_addr {
                    v.extend(["--envoy-addr".into(), a.to_string()]);
                }
                if let Some(p) = self.envoy_pid {
                    v.extend(["--envoy-pid".into(), p.to_string()]);
                }
            }
        }
        v
    }
}

/// Runs this binary's `client` subcommand in a child process, bounded by `limit`.
async fn spawn_client(args: &[String], limit: Duration) -> Result<PhaseResult, String> {
    spawn_child(args, limit).await
}

/// Runs this binary with `args` in a child process, bounded by `limit`, and reads the JSON
/// object it prints.
pub(crate) async fn spawn_child<T: serde::de::DeserializeOwned>(
    args: &[String],
    limit: Duration,
) -> Result<T, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start a client: {e}"))?;
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| format!("client {args:?} did not finish within {limit:?}; killed"))?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("client {args:?} failed: {}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("client output: {e}"))
}

/// Writes Envoy's bootstrap with `meshctl envoy` (and `meshctl_args`), validates it, starts
/// Envoy and waits until it is ready.
pub(crate) async fn start_envoy(
    bin: &Path,
    meshctl: &Path,
    config: &[PathBuf],
    meshctl_args: &[String],
    work: &Path,
) -> Result<Envoy, String> {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?)
        .parse()
        .map_err(|e| format!("{e}"))?;
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?)
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut cmd = std::process::Command::new(meshctl);
    cmd.arg("envoy");
    for c in config {
        cmd.arg("-f").arg(c);
    }
    cmd.args(["--source-label", "app=checkout", "--listen"])
        .arg(listen.to_string())
        .arg("--admin")
        .arg(admin.to_string())
        .args(meshctl_args);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", meshctl.display()))?;
    if !out.status.success() {
        return Err(format!(
            "meshctl envoy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bootstrap = work.join("envoy.yaml");
    std::fs::write(&bootstrap, &out.stdout).map_err(|e| e.to_string())?;

    let version = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            // "<path>  version: <sha>/<version>/<status>/<build>/<ssl>": keep what follows.
            text.split_once("version:")
                .map_or(text.as_str(), |(_, v)| v)
                .trim()
                .to_owned()
        })
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let valid = std::process::Command::new(bin)
        .args(["--mode", "validate", "-c"])
        .arg(&bootstrap)
        .output()
        .map_err(|e| e.to_string())?;
    if !valid.status.success() {
        return Err(format!(
            "envoy rejects the bootstrap: {}",
            String::from_utf8_lossy(&valid.stderr)
        ));
    }
    eprintln!(
        "envoy --mode validate: bootstrap {} OK",
        bootstrap.display()
    );

    let log = std::fs::File::create(work.join("envoy.log")).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .args([
            "--concurrency",
            "1",
            "--use-dynamic-base-id",
            "--log-level",
            "warn",
            "-c",
        ])
        .arg(&bootstrap)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start envoy: {e}"))?;
    let pid = child.id().ok_or("envoy exited at once")?;
    // Wait for the admin interface to say it is ready (bounded).
    let client = mesh_tower::client::legacy_client::<http_body_util::Empty<bytes::Bytes>>();
    let ready_uri: http::Uri = format!("http://{admin}/ready")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let deadline = Instant::now() + ENVOY_READY_LIMIT;
    loop {
        let req = http::Request::get(ready_uri.clone())
            .body(http_body_util::Empty::new())
            .map_err(|e| e.to_string())?;
        if let Ok(Ok(res)) = tokio::time::timeout(Duration::from_secs(1), client.request(req)).await
        {
            if res.status() == http::StatusCode::OK {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("envoy not ready within {ENVOY_READY_LIMIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("envoy (pid {pid}, --concurrency 1) listening on {listen}, admin on {admin}");
    Ok(Envoy {
        child,
        pid,
        listen,
        version,
    })
}
