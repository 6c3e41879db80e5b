//! The canary demo, end to end on loopback.
//!
//! 1. Starts four labelled backends (`api` v1 ×2, v2 ×2) on free loopback ports.
//! 2. Loads the seed's canary config (`config/canary.yaml`: VirtualService `api-vs-canary`,
//!    DestinationRule `api-dr`) plus a ServiceEntry declaring the backends
//!    (`config/endpoints.yaml`), and prints what the validator says about them.
//! 3. Wraps a hyper-util client in the mesh and sends traffic to `http://api:8080/...`:
//!    the 90/10 split, then with one v2 pod failing every request (retries mask it, outlier
//!    detection ejects it), then after reloading `config/shift.yaml` (all traffic to v2).
//!
//! Run with: `cargo run --release -p example-canary`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use indicatif::{ProgressBar, ProgressStyle};
use mesh_tests::{Action, Backend, Rule, Select};
use mesh_tower::{ClientContext, MeshHandle, MeshLayer};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::{Service, ServiceBuilder, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Requests per phase.
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
    by_pod: BTreeMap<String, usize>,
    attempts: usize,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");

    // 1. Backends.
    let mut pods = Vec::new();
    for (name, version) in PODS {
        let b = Backend::builder()
            .name(name)
            .label("app", "api")
            .label("version", version)
            .start()
            .await?;
        pods.push(b);
    }
    println!("backends:");
    for b in &pods {
        println!(
            "  {:<9} version={}  {}",
            b.name(),
            b.labels()["version"],
            b.addr()
        );
    }

    // 2. Config: the seed's canary plus a ServiceEntry with the backends' real ports.
    let canary = std::fs::read_to_string(config_dir.join("canary.yaml"))?;
    let mut endpoints = std::fs::read_to_string(config_dir.join("endpoints.yaml"))?;
    for b in &pods {
        endpoints = endpoints.replace(
            &format!("{{{{{}}}}}", b.name()),
            &b.addr().port().to_string(),
        );
    }
    let config = load(&[
        ("config/canary.yaml", &canary),
        ("config/endpoints.yaml", &endpoints),
    ])?;

    // 3. The mesh around a hyper-util client. The calling workload is `checkout` in `default`:
    //    not `frontend`, so the 90/10 rule applies rather than the frontend-only one.
    let layer = MeshLayer::builder()
        .config(config)
        .client(ClientContext::new("default").with_label("app", "checkout"))
        .attempt_count_header(true)
        .build()?;
    let handle = layer.handle();
    let client = ServiceBuilder::new()
        .layer(layer)
        .service(mesh_tower::client::legacy_client::<
            mesh_tower::body::ReplayBody<Empty<Bytes>>,
        >());

    println!("\n== phase 1: the canary split, 90% v1 / 10% v2 ==");
    let t = run_phase(&client, "90/10").await;
    report(&t, &handle, &pods);

    println!("\n== phase 2: pod api-v2-b answers 503 to everything ==");
    pods[3].set_rules([Rule::new(Select::All, Action::Status(503))]);
    let t = run_phase(&client, "v2-b failing").await;
    report(&t, &handle, &pods);
    println!(
        "  -> retries to the other v2 pod masked the failures (the client saw {} of {} fail: a retry the\n     default retry budget refused, or one that found api-v2-b again); outlier detection ejected\n     api-v2-b after 5 consecutive 5xx (maxEjectionPercent 50 allows one of the two v2 pods)",
        t.errors.values().sum::<usize>(),
        REQUESTS
    );

    println!("\n== phase 3: reload config/shift.yaml: 0% v1 / 100% v2 ==");
    let shift = std::fs::read_to_string(config_dir.join("shift.yaml"))?;
    let shifted = load(&[
        ("config/shift.yaml", &shift),
        ("config/canary.yaml#api-dr", dr_only(&canary)),
        ("config/endpoints.yaml", &endpoints),
    ])?;
    handle.reload(shifted)?;
    let t = run_phase(&client, "0/100").await;
    report(&t, &handle, &pods);

    println!("\ndone in {:.1?}", started.elapsed());
    for b in pods {
        b.shutdown().await;
    }
    Ok(())
}

/// The DestinationRule document of the canary file (the reload replaces the VirtualService only).
fn dr_only(canary: &str) -> &str {
    canary.split("\n---\n").nth(1).unwrap_or("")
}

fn load(sources: &[(&str, &str)]) -> Result<mesh_model::MeshConfig, BoxError> {
    let mut loader = mesh_model::Loader::new();
    for (name, text) in sources {
        loader.add_str(name, text);
    }
    let loaded = loader.finish();
    for d in loaded.diagnostics() {
        if d.severity() != mesh_model::Severity::Note {
            println!("  {d}");
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

async fn run_phase<S>(client: &S, label: &str) -> Tally
where
    S: Service<
            Request<Empty<Bytes>>,
            Response = http::Response<mesh_tower::MeshBody<hyper::body::Incoming>>,
            Error = mesh_tower::MeshError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let bar = ProgressBar::new(REQUESTS as u64);
    bar.set_style(
        ProgressStyle::with_template("  {prefix:>12} [{bar:40}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut set = JoinSet::new();
    let mut tally = Tally::default();
    for i in 0..REQUESTS {
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

fn report(t: &Tally, handle: &MeshHandle, pods: &[Backend]) {
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
    let stats = handle.stats();
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
    for c in stats.clusters() {
        println!(
            "  {:<36} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}",
            format!("{}|{}", c.host(), c.subset().unwrap_or("-")),
            c.requests(),
            c.retries(),
            c.timeouts(),
            c.overflows(),
            c.ejections(),
            c.ejected_endpoints()
        );
    }
}
