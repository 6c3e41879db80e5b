//! The canary demo, end to end on loopback.
//!
//! 1. Starts four labelled backends (`api` v1 ×2, v2 ×2) on free loopback ports.
//! 2. Loads the seed's canary config (`config/canary.yaml`: VirtualService `api-vs-canary`,
//!    DestinationRule `api-dr`) plus a ServiceEntry declaring the backends (the template
//!    `config/endpoints.yaml.tmpl` with the backends' ports filled in), and prints what the
//!    validator says about them, each diagnostic once.
//! 3. Puts the mesh in front of its own connector (`MeshClient`) and sends traffic to
//!    `http://api:8080/...`: the 90/10 split, then with one v2 pod failing every request
//!    (retries mask it, outlier detection ejects it), then after reloading with
//!    `reload/shift.yaml` (all traffic to v2).
//! 4. Telemetry: Istio's standard metrics and Envoy's cluster stats are served at
//!    `http://ADDR/metrics` (Prometheus text, Envoy's histogram buckets) while it runs; at the
//!    end it scrapes its own `/metrics` and prints, per `destination_version`, the requests
//!    `istio_requests_total` counted, the responses the client got from that version's pods
//!    (counted without the metrics), the request rate and the p99 of
//!    `istio_request_duration_milliseconds`.
//!
//! `--serve ADDR` (e.g. `--serve 127.0.0.1:9464`) serves `/metrics` there from the start and
//! keeps serving after the phases until interrupted (Ctrl-C), for a real Prometheus to scrape;
//! without it the endpoint is on a free loopback port for the run only. `--requests N` sets the
//! requests per phase (default 3,000).
//!
//! The v2 pods accept only mutual TLS, as pods under a STRICT PeerAuthentication do: subset
//! v2 of `api-dr` says `tls: {mode: ISTIO_MUTUAL}`. The demo makes a mesh CA on the spot and
//! gives the v2 pods the identity `spiffe://cluster.local/ns/default/sa/api` (they accept only
//! clients with a certificate of that CA) and the calling workload the identity
//! `spiffe://cluster.local/ns/default/sa/checkout`, whose certificate, key and mesh root are
//! written as istio-agent writes them for a proxyless workload (`cert-chain.pem`, `key.pem`,
//! `root-cert.pem`, in a temporary directory here, removed at exit) for `MeshClient` to read.
//! After each phase it prints what the v2 pods saw of the new TLS handshakes (the SNI and the
//! ALPN a sidecar sends), and stops with an error if one came without the workload's client
//! certificate. The v1 pods speak plaintext: their policy has no
//! `tls` block (and the mesh does not do auto mTLS).
//!
//! `config/` validates on its own (`meshctl validate examples/canary/config/`): the template
//! is not read by the loaders (they read `*.yaml` and `*.yml` only), and the reload's
//! VirtualService, which redefines `api-vs-canary`, lives outside it in `reload/`.
//!
//! Run with: `cargo run --release -p example-canary [-- --serve 127.0.0.1:9464]`

mod exposition;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use indicatif::{ProgressBar, ProgressStyle};
use mesh_tests::pki::{server_config, workload_dir, Ca};
use mesh_tests::{Action, Backend, Rule, Select};
use mesh_tower::client::{MeshClient, MeshClientBody};
use mesh_tower::{ClientContext, MeshHandle, MeshLayer};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::{Service, ServiceBuilder, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Requests per phase, unless `--requests N` says otherwise.
const REQUESTS: usize = 3_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 32;
/// Backends: name and `version` label.
const PODS: [(&str, &str); 4] = [
    ("api-v1-a", "v1"),
    ("api-v1-b", "v1"),
    ("api-v2-a", "v2"),
    ("api-v2-b", "v2"),
];

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    errors: BTreeMap<String, usize>,
    /// Successful responses, by the pod that answered (`x-backend`).
    by_pod: BTreeMap<String, usize>,
    /// Every response (any status), by the pod that answered (`-` when no pod's name came
    /// back), and every error without a response under [`NO_RESPONSE`].
    answered: BTreeMap<String, usize>,
    attempts: usize,
}

/// The key of [`Tally::answered`] for the requests that ended in an error, without a response.
const NO_RESPONSE: &str = "no-response";

impl Tally {
    /// What the client saw, by the `version` label of the pod that answered: the counts
    /// `istio_requests_total` must have by `destination_version`, tallied without the metrics.
    /// Requests no known pod answered are under `-` (a response without `x-backend`) or
    /// [`NO_RESPONSE`].
    fn by_version(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (pod, n) in &self.answered {
            let version = PODS
                .iter()
                .find(|(name, _)| name == pod)
                .map_or(pod.as_str(), |(_, version)| version);
            *out.entry(version.to_owned()).or_default() += n;
        }
        out
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Errors are printed with Display: a missing placeholder or an invalid configuration is a
    // multi-line message meant for people, which `Result` from `main` would print escaped.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canary: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line: `--serve ADDR`, `--requests N`.
#[derive(Debug)]
struct Args {
    serve: Option<std::net::SocketAddr>,
    requests: usize,
}

fn args() -> Result<Args, BoxError> {
    let mut out = Args {
        serve: None,
        requests: REQUESTS,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--serve" => out.serve = Some(value("--serve")?.parse()?),
            "--requests" => out.requests = value("--requests")?.parse()?,
            other => {
                return Err(
                    format!("unknown argument {other} (try --serve ADDR, --requests N)").into(),
                )
            }
        }
    }
    Ok(out)
}

async fn run() -> Result<(), BoxError> {
    let started = Instant::now();
    let args = args()?;
    let prom = exposition::install()?;
    let listener = exposition::bind(
        args.serve
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    )
    .await?;
    let metrics_addr = listener.local_addr()?;
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let reload_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reload");

    // 1. A mesh CA and identities; backends (v2 accepts only mutual TLS).
    let ca = Ca::new("mesh-root");
    let api_identity = ca.leaf(&[], &[API_IDENTITY], false);
    let checkout = ca.leaf(&[], &[CHECKOUT_IDENTITY], false);
    let certs = workload_dir(&ca, &checkout);
    let mut tls = TlsReport {
        client_certificate: checkout.der.to_vec(),
        seen: Vec::new(),
    };
    let mtls = server_config(&api_identity, Some(&ca));
    let mut pods = Vec::new();
    for (name, version) in PODS {
        let mut b = Backend::builder()
            .name(name)
            .label("app", "api")
            .label("version", version);
        if version == "v2" {
            b = b.tls(Arc::clone(&mtls));
        }
        pods.push(b.start().await?);
    }
    println!("backends:");
    for b in &pods {
        println!(
            "  {:<9} version={}  {}  {}",
            b.name(),
            b.labels()["version"],
            b.addr(),
            if b.labels()["version"] == "v2" {
                "mutual TLS only"
            } else {
                "plaintext"
            }
        );
    }
    println!(
        "client identity {CHECKOUT_IDENTITY}: its certificates in {} (removed at exit)",
        certs.path().display()
    );

    // 2. Config: the seed's canary plus a ServiceEntry with the backends' real ports.
    let canary = std::fs::read_to_string(config_dir.join("canary.yaml"))?;
    let template = std::fs::read_to_string(config_dir.join(ENDPOINTS_TEMPLATE))?;
    let ports: BTreeMap<String, String> = pods
        .iter()
        .map(|b| (b.name().to_owned(), b.addr().port().to_string()))
        .collect();
    let endpoints = fill_template(&format!("config/{ENDPOINTS_TEMPLATE}"), &template, &ports)?;
    let mut shown = Shown::default();
    let config = load(
        &[
            ("config/canary.yaml", &canary),
            ("config/endpoints.yaml", &endpoints),
        ],
        &mut shown,
    )?;

    // 3. The mesh around its connector. The calling workload is `checkout` in `default`: not
    //    `frontend`, so the 90/10 rule applies rather than the frontend-only one.
    let layer = MeshLayer::builder()
        .config(config)
        .client(
            ClientContext::new("default")
                .with_label("app", "checkout")
                .with_workload_name("checkout"),
        )
        .attempt_count_header(true)
        .attempt_count_in_response(true)
        .build()?;
    let handle = layer.handle();
    let server = tokio::spawn(exposition::serve(listener, prom.clone(), handle.clone()));
    println!("\nmetrics: http://{metrics_addr}/metrics");
    let traffic = Instant::now();
    let mut clusters = Clusters::default();
    let mut seen = Seen::default();
    let connector = MeshClient::builder()
        .workload_certificates(certs.path())
        .build_for::<mesh_tower::body::ReplayBody<Empty<Bytes>>>(&layer);
    let client = ServiceBuilder::new().layer(layer).service(connector);

    println!("\n== phase 1: the canary split, 90% v1 / 10% v2 ==");
    let t = run_phase(&client, "90/10", args.requests).await;
    seen.add(&t);
    report(&t, &handle, &pods, &mut clusters);
    tls.print(&pods)?;

    println!("\n== phase 2: pod api-v2-b answers 503 to everything ==");
    pods[3].set_rules([Rule::new(Select::All, Action::Status(503))]);
    let t = run_phase(&client, "v2-b failing", args.requests).await;
    seen.add(&t);
    report(&t, &handle, &pods, &mut clusters);
    tls.print(&pods)?;
    println!(
        "  -> retries to the other v2 pod masked the failures (the client saw {} of {} fail; as under\n     Istio, no retry budget limits the retries); outlier detection ejected api-v2-b after 5\n     consecutive 5xx (maxEjectionPercent 50 allows one of the two v2 pods)",
        t.errors.values().sum::<usize>(),
        args.requests
    );

    println!("\n== phase 3: reload with reload/shift.yaml: 0% v1 / 100% v2 ==");
    let shift = std::fs::read_to_string(reload_dir.join("shift.yaml"))?;
    // The reload validates api-dr again: under its own file name and line numbers, so a
    // diagnostic about it is the one already shown, and is not printed a second time.
    let shifted = load(
        &[
            ("reload/shift.yaml", &shift),
            ("config/canary.yaml", &dr_only(&canary)),
            ("config/endpoints.yaml", &endpoints),
        ],
        &mut shown,
    )?;
    handle.reload(shifted)?;
    let t = run_phase(&client, "0/100", args.requests).await;
    seen.add(&t);
    report(&t, &handle, &pods, &mut clusters);
    tls.print(&pods)?;
    let elapsed = traffic.elapsed();

    println!("\n== telemetry: from http://{metrics_addr}/metrics ==");
    let text = exposition::scrape(metrics_addr).await?;
    let samples = exposition::parse(&text);
    let from_metrics = exposition::per_version(&samples);
    // `requests`: `sum by (destination_version) (istio_requests_total)` from the text above;
    // `client`: the responses the client got from that version's pods, counted without the
    // metrics (the two agree unless a request ended without a response).
    println!(
        "  {:<20} {:>9} {:>9} {:>10} {:>9}",
        "destination_version", "requests", "client", "rate", "p99"
    );
    let mut versions: Vec<&String> = from_metrics.keys().chain(seen.0.keys()).collect();
    versions.sort();
    versions.dedup();
    for version in versions {
        let (requests, p99) = from_metrics.get(version).copied().unwrap_or((0.0, None));
        println!(
            "  {:<20} {:>9} {:>9} {:>8.1}/s {:>9}",
            version,
            requests,
            seen.0.get(version).copied().unwrap_or(0),
            requests / elapsed.as_secs_f64(),
            p99.map_or_else(|| "-".to_owned(), |p| format!("{p:.1} ms"))
        );
    }
    println!(
        "  sent {} requests in {:.1?}",
        seen.0.values().sum::<usize>(),
        elapsed
    );
    println!("\ndone in {:.1?}", started.elapsed());
    if args.serve.is_some() {
        println!("serving http://{metrics_addr}/metrics until interrupted (Ctrl-C)");
        tokio::signal::ctrl_c().await?;
    }
    server.abort();
    for b in pods {
        b.shutdown().await;
    }
    Ok(())
}

/// The identity of the `api` pods.
const API_IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/api";
/// The identity of the calling workload.
const CHECKOUT_IDENTITY: &str = "spiffe://cluster.local/ns/default/sa/checkout";

/// What the v2 pods saw of the mesh's TLS handshakes, phase by phase: the evidence that the
/// traffic to v2 was mutual TLS with the workload's certificate, with the SNI and the ALPN a
/// sidecar sends.
#[derive(Debug)]
struct TlsReport {
    /// The certificate (DER) the client was given in its workload directory.
    client_certificate: Vec<u8>,
    /// Per v2 pod, the handshakes already reported.
    seen: Vec<usize>,
}

impl TlsReport {
    /// Prints, per v2 pod of `pods`, the handshakes since the last report, grouped by what they
    /// carried.
    ///
    /// Fails when a handshake did not carry the workload's certificate: the v2 pods require a
    /// client certificate of the mesh CA, so that would mean another identity reached them.
    fn print(&mut self, pods: &[Backend]) -> Result<(), BoxError> {
        let v2: Vec<&Backend> = pods
            .iter()
            .filter(|b| b.labels()["version"] == "v2")
            .collect();
        self.seen.resize(v2.len(), 0);
        for (b, seen) in v2.into_iter().zip(&mut self.seen) {
            let all = b.tls_connections();
            let new = &all[(*seen).min(all.len())..];
            *seen = all.len();
            if new
                .iter()
                .any(|h| h.client_certificate.as_deref() != Some(&self.client_certificate[..]))
            {
                return Err(format!(
                    "{}: a TLS connection without the workload's client certificate",
                    b.name()
                )
                .into());
            }
            if new.is_empty() {
                println!(
                    "  {}: no new TLS connection ({} in all)",
                    b.name(),
                    all.len()
                );
                continue;
            }
            let mut kinds: BTreeMap<(String, String, String), usize> = BTreeMap::new();
            for h in new {
                let key = (
                    h.sni.clone().unwrap_or_else(|| "-".to_owned()),
                    h.offered_alpn.join(", "),
                    h.alpn.clone().unwrap_or_else(|| "-".to_owned()),
                );
                *kinds.entry(key).or_default() += 1;
            }
            for ((sni, offered, agreed), n) in kinds {
                println!(
                    "  {}: {n} new mutual TLS connection(s) with the checkout certificate; \
                     SNI {sni}, ALPN offered [{offered}], agreed {agreed}",
                    b.name()
                );
            }
        }
        Ok(())
    }
}

/// The template of the ServiceEntry for the backends, in `config/`. Its `.tmpl` suffix keeps
/// the loaders (which read `*.yaml` and `*.yml`) from taking it for a configuration file.
const ENDPOINTS_TEMPLATE: &str = "endpoints.yaml.tmpl";

/// Replaces every `{{name}}` in `template` with `values[name]`.
///
/// Fails, naming the template, the line and the placeholder, when a placeholder has no value or
/// a `{{` is never closed: a placeholder left in would only surface later as a YAML error far
/// from its cause.
fn fill_template(
    source: &str,
    template: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut missing = Vec::new();
    for (i, line) in template.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "{source}:{}: a placeholder opened with {{{{ is not closed with }}}}",
                    i + 1
                ));
            };
            let name = &after[..close];
            match values.get(name) {
                Some(value) => out.push_str(value),
                None => missing.push(format!("{source}:{}: {{{{{name}}}}}", i + 1)),
            }
            rest = &after[close + 2..];
        }
        out.push_str(rest);
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        let known: Vec<&str> = values.keys().map(String::as_str).collect();
        Err(format!(
            "placeholders without a value (the demo fills {}):\n  {}",
            known.join(", "),
            missing.join("\n  ")
        ))
    }
}

/// The canary file with its VirtualService blanked out: the DestinationRule alone, on the
/// lines where it is in the file, so its diagnostics point at the real file and line (the
/// reload replaces the VirtualService only).
fn dr_only(canary: &str) -> String {
    let mut out = String::with_capacity(canary.len());
    let mut in_dr = false;
    for line in canary.split_inclusive('\n') {
        if in_dr {
            out.push_str(line);
        } else {
            in_dr = line.trim_end() == "---";
            out.push('\n');
        }
    }
    out
}

/// The diagnostics printed so far, so that one shown at the start is not shown again when the
/// same file is validated again for the reload.
#[derive(Debug, Default)]
struct Shown(HashSet<String>);

fn load(sources: &[(&str, &str)], shown: &mut Shown) -> Result<mesh_model::MeshConfig, BoxError> {
    let mut loader = mesh_model::Loader::new();
    for (name, text) in sources {
        loader.add_str(name, text);
    }
    let loaded = loader.finish();
    for d in loaded.diagnostics() {
        let line = d.to_string();
        if d.severity() != mesh_model::Severity::Note && shown.0.insert(line.clone()) {
            println!("  {line}");
        }
    }
    loaded.into_result().map_err(|diags| {
        let lines: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        format!("invalid configuration:\n{}", lines.join("\n")).into()
    })
}

async fn run_phase<S>(client: &S, label: &str, requests: usize) -> Tally
where
    S: Service<
            Request<Empty<Bytes>>,
            Response = http::Response<mesh_tower::MeshBody<MeshClientBody>>,
            Error = mesh_tower::MeshError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let bar = ProgressBar::new(requests as u64);
    bar.set_style(
        ProgressStyle::with_template("  {prefix:>12} [{bar:40}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut set = JoinSet::new();
    let mut tally = Tally::default();
    for i in 0..requests {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let svc = client.clone();
        set.spawn(async move {
            let _permit = permit;
            let req = Request::get(format!("http://api:8080/items/{i}"))
                .body(Empty::<Bytes>::new())
                .expect("request");
            match svc.oneshot(req).await {
                Ok(res) => {
                    let status = res.status();
                    let pod = header(&res, "x-backend");
                    let attempts = header(&res, "x-envoy-attempt-count").parse().unwrap_or(1);
                    let _ = res.into_body().collect().await;
                    (Some((status, pod)), attempts, None)
                }
                Err(e) => (None, 1, Some(e.to_string())),
            }
        });
        while let Some(done) = set.try_join_next() {
            absorb(&mut tally, done);
            bar.inc(1);
        }
    }
    while let Some(done) = set.join_next().await {
        absorb(&mut tally, done);
        bar.inc(1);
    }
    bar.finish_and_clear();
    tally
}

type Outcome = (Option<(http::StatusCode, String)>, usize, Option<String>);

fn absorb(t: &mut Tally, done: Result<Outcome, tokio::task::JoinError>) {
    let Ok((res, attempts, err)) = done else {
        return;
    };
    t.attempts += attempts;
    let answered = match &res {
        Some((_, pod)) => pod.clone(),
        None => NO_RESPONSE.to_owned(),
    };
    *t.answered.entry(answered).or_default() += 1;
    match (res, err) {
        (Some((status, pod)), _) if status.is_success() => {
            t.ok += 1;
            *t.by_pod.entry(pod).or_default() += 1;
        }
        (Some((status, pod)), _) => {
            *t.errors.entry(format!("{status} from {pod}")).or_default() += 1;
        }
        (None, Some(e)) => *t.errors.entry(e).or_default() += 1,
        (None, None) => {}
    }
}

fn header<B>(res: &http::Response<B>, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// The client's per-version counts ([`Tally::by_version`]) over every phase.
#[derive(Debug, Default)]
struct Seen(BTreeMap<String, usize>);

impl Seen {
    fn add(&mut self, t: &Tally) {
        for (version, n) in t.by_version() {
            *self.0.entry(version).or_default() += n;
        }
    }
}

/// One row of the cumulative cluster table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClusterRow {
    requests: u64,
    retries: u64,
    timeouts: u64,
    overflows: u64,
    ejections: u64,
    ejected: usize,
    /// Whether the current configuration still has this cluster.
    current: bool,
}

/// Every cluster seen since the start, keyed by `host|subset`. `MeshHandle::stats` reports
/// the clusters of the current configuration only; a cluster a reload removed keeps its last
/// counts here (no request can reach it after the reload, so they are final).
#[derive(Debug, Default)]
struct Clusters(BTreeMap<String, ClusterRow>);

impl Clusters {
    fn update(&mut self, stats: &mesh_tower::Stats) {
        for row in self.0.values_mut() {
            row.current = false;
        }
        for c in stats.clusters() {
            self.0.insert(
                format!("{}|{}", c.host(), c.subset().unwrap_or("-")),
                ClusterRow {
                    requests: c.requests(),
                    retries: c.retries(),
                    timeouts: c.timeouts(),
                    overflows: c.overflows(),
                    ejections: c.ejections(),
                    ejected: c.ejected_endpoints(),
                    current: true,
                },
            );
        }
    }
}

fn report(t: &Tally, handle: &MeshHandle, pods: &[Backend], clusters: &mut Clusters) {
    let total = t.ok + t.errors.values().sum::<usize>();
    println!(
        "  {:<10} {:>9} {:>8} {:>9}",
        "pod", "answered", "share", "received"
    );
    for b in pods {
        let answered = t.by_pod.get(b.name()).copied().unwrap_or(0);
        println!(
            "  {:<10} {:>9} {:>7.1}% {:>9}",
            b.name(),
            answered,
            100.0 * answered as f64 / total.max(1) as f64,
            b.count()
        );
        b.reset_counts();
    }
    let v1: usize = t
        .by_pod
        .iter()
        .filter(|(p, _)| p.contains("v1"))
        .map(|(_, n)| n)
        .sum();
    println!(
        "  split: v1 {:.1}%  v2 {:.1}%   ok {}  errors {}  attempts {} (retries {})",
        100.0 * v1 as f64 / total.max(1) as f64,
        100.0 * (t.ok - v1) as f64 / total.max(1) as f64,
        t.ok,
        total - t.ok,
        t.attempts,
        t.attempts.saturating_sub(total)
    );
    for (e, n) in &t.errors {
        println!("  error x{n}: {e}");
    }
    clusters.update(&handle.stats());
    println!(
        "  {:<36} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}",
        "cluster (cumulative)",
        "requests",
        "retries",
        "timeouts",
        "overflows",
        "ejections",
        "ejected"
    );
    for (name, c) in &clusters.0 {
        println!(
            "  {:<36} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}{}",
            name,
            c.requests,
            c.retries,
            c.timeouts,
            c.overflows,
            c.ejections,
            c.ejected,
            if c.current {
                ""
            } else {
                "  (no route to it since the reload)"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_owned(), (18001 + i).to_string()))
            .collect()
    }

    #[test]
    fn the_client_counts_by_the_version_of_the_pod_that_answered() {
        let mut t = Tally::default();
        let ok = Ok((Some((http::StatusCode::OK, "api-v1-a".to_owned())), 1, None));
        absorb(&mut t, ok);
        let failed = Ok((
            Some((http::StatusCode::SERVICE_UNAVAILABLE, "api-v2-b".to_owned())),
            3,
            None,
        ));
        absorb(&mut t, failed);
        absorb(
            &mut t,
            Ok((Some((http::StatusCode::OK, "api-v1-b".to_owned())), 1, None)),
        );
        absorb(&mut t, Ok((None, 1, Some("overflow".to_owned()))));
        assert_eq!(
            t.by_version(),
            BTreeMap::from([
                ("v1".to_owned(), 2),
                ("v2".to_owned(), 1),
                (NO_RESPONSE.to_owned(), 1)
            ])
        );
        let mut seen = Seen::default();
        seen.add(&t);
        seen.add(&t);
        assert_eq!(seen.0["v1"], 4);
    }

    #[test]
    fn a_filled_template_has_no_placeholder_left() {
        let out =
            fill_template("t", "a: {{x}}\nb: [{{y}}, {{x}}]\n", &values(&["x", "y"])).unwrap();
        assert_eq!(out, "a: 18001\nb: [18002, 18001]\n");
    }

    #[test]
    fn a_placeholder_without_a_value_is_named_with_its_line() {
        let err =
            fill_template("t.tmpl", "a: {{x}}\nb: {{z}}\nc: {{w}}\n", &values(&["x"])).unwrap_err();
        assert!(err.contains("t.tmpl:2: {{z}}"), "{err}");
        assert!(err.contains("t.tmpl:3: {{w}}"), "{err}");
        assert!(err.contains("the demo fills x"), "{err}");
    }

    #[test]
    fn an_unclosed_placeholder_is_an_error() {
        let err = fill_template("t", "ok: 1\na: {{x\n", &values(&["x"])).unwrap_err();
        assert!(err.starts_with("t:2: "), "{err}");
    }

    #[test]
    fn the_template_needs_exactly_the_pods_the_demo_starts() {
        let template = include_str!("../config/endpoints.yaml.tmpl");
        let pods: Vec<&str> = PODS.iter().map(|(name, _)| *name).collect();
        let filled = fill_template("endpoints", template, &values(&pods)).unwrap();
        assert!(!filled.contains("{{"), "{filled}");
        for (i, _) in pods.iter().enumerate() {
            assert!(
                filled.contains(&format!("{{http: {}}}", 18001 + i)),
                "{filled}"
            );
        }
    }

    #[test]
    fn the_destination_rule_keeps_its_lines() {
        let canary = include_str!("../config/canary.yaml");
        let dr = dr_only(canary);
        assert_eq!(dr.lines().count(), canary.lines().count());
        let line_of = |text: &str, needle: &str| text.lines().position(|l| l.contains(needle));
        assert_eq!(
            line_of(&dr, "kind: DestinationRule"),
            line_of(canary, "kind: DestinationRule")
        );
        assert_eq!(line_of(&dr, "kind: VirtualService"), None);
    }

    /// The endpoints of the demo's own four pods.
    fn endpoints() -> String {
        let pods: Vec<&str> = PODS.iter().map(|(name, _)| *name).collect();
        fill_template(
            "t",
            include_str!("../config/endpoints.yaml.tmpl"),
            &values(&pods),
        )
        .unwrap()
    }

    /// The warnings of a configuration that must validate.
    fn warnings(sources: &[(&str, &str)]) -> Vec<String> {
        let mut loader = mesh_model::Loader::new();
        for (name, text) in sources {
            loader.add_str(name, text);
        }
        let loaded = loader.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        loaded.warnings().map(ToString::to_string).collect()
    }

    /// The start and the reload state both validate, with no warning: the `tls` block of
    /// subset v2 (ISTIO_MUTUAL) is applied by the connector, not warned about.
    #[test]
    fn both_states_validate_without_a_warning() {
        let canary = include_str!("../config/canary.yaml");
        let shift = include_str!("../reload/shift.yaml");
        let endpoints = endpoints();
        let start = warnings(&[
            ("config/canary.yaml", canary),
            ("config/endpoints.yaml", &endpoints),
        ]);
        assert_eq!(start, Vec::<String>::new());
        let reload = warnings(&[
            ("reload/shift.yaml", shift),
            ("config/canary.yaml", &dr_only(canary)),
            ("config/endpoints.yaml", &endpoints),
        ]);
        assert_eq!(reload, Vec::<String>::new());
    }

    /// Subset v2 of the canary is mutual TLS with the mesh's certificates, as the demo's v2
    /// pods require; v1 is plaintext, as its pods are.
    #[test]
    fn subset_v2_is_istio_mutual_and_v1_is_plaintext() {
        let mut loader = mesh_model::Loader::new();
        loader.add_str("config/canary.yaml", include_str!("../config/canary.yaml"));
        let config = loader.finish().into_result().expect("valid");
        let [dr] = config.destination_rules() else {
            panic!("one DestinationRule");
        };
        let mode = |subset| {
            dr.effective_policy(Some(subset), Some(8080))
                .tls()
                .and_then(|t| t.mode.clone())
        };
        assert_eq!(mode("v2").as_deref(), Some("ISTIO_MUTUAL"));
        assert_eq!(mode("v1"), None);
    }

    /// A diagnostic of the DestinationRule, which the start and the reload state both contain,
    /// reads the same in both, so the demo prints it once. The canary has none, so the test
    /// gives its DestinationRule one (an unknown field, a warning).
    #[test]
    fn a_destination_rule_diagnostic_is_printed_once() {
        let field = "      maxEjectionPercent: 50\n";
        let canary = include_str!("../config/canary.yaml");
        assert_eq!(canary.matches(field).count(), 1);
        let canary = canary.replace(field, &format!("{field}      maxEjectionPercnt: 50\n"));
        let shift = include_str!("../reload/shift.yaml");
        let endpoints = endpoints();
        let start_sources = [
            ("config/canary.yaml", canary.as_str()),
            ("config/endpoints.yaml", endpoints.as_str()),
        ];
        let dr = dr_only(&canary);
        let reload_sources = [
            ("reload/shift.yaml", shift),
            ("config/canary.yaml", dr.as_str()),
            ("config/endpoints.yaml", endpoints.as_str()),
        ];
        let start = warnings(&start_sources);
        assert!(
            start.iter().any(|w| w.contains("maxEjectionPercnt")),
            "{start:?}"
        );
        assert_eq!(start, warnings(&reload_sources));
        let mut shown = Shown::default();
        load(&start_sources, &mut shown).unwrap();
        let before = shown.0.len();
        assert!(before > 0);
        load(&reload_sources, &mut shown).unwrap();
        assert_eq!(shown.0.len(), before, "nothing new to print on reload");
    }
}
