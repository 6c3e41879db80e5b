//! What telemetry adds to a request: the seed's canary request path (as `benches/mesh.rs`,
//! over an in-process client that answers at once) with Istio's metrics off, on without a
//! recorder, on with `metrics-exporter-prometheus`'s recorder (with Envoy's histogram
//! buckets), on with a recorder whose every handle update is one relaxed atomic add (what the
//! mesh itself spends, apart from any exporter's own work), and on without a recorder under a
//! `tracing` subscriber that wants nothing below `INFO` (the mesh's spans are `DEBUG`).
//!
//! Run with: `cargo bench -p mesh-tower --bench telemetry -- --warm-up-time 1 --measurement-time 3`
//!
//! `telemetry CASE N` (see `main`) counts instructions per request under callgrind instead,
//! a figure the machine's load does not move.
//!
//! The figures of interest: `prometheus` minus `metrics_off` (the cost of all metrics on;
//! the goal is at most 150 ns), `atomic_recorder` minus `metrics_off` (the mesh's own share of
//! it: labels, lookups, the clock read, the hand-over to the response body), `no_recorder` and
//! `info_subscriber` minus `metrics_off` (nothing measurable).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use mesh_tower::body::ReplayBody;
use mesh_tower::telemetry::ENVOY_HISTOGRAM_BUCKETS;
use mesh_tower::{BoxError, ClientContext, MeshLayer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tower::{service_fn, Layer, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer as _;

#[path = "support/poll.rs"]
mod poll;
#[path = "support/seed_canary.rs"]
mod seed_canary;

use poll::{drain, run};

fn request() -> Request<Full<Bytes>> {
    Request::get("http://api:8080/items/1")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The cases, in order: the mesh each uses (metrics on or off), and what is installed around it.
const CASES: [&str; 5] = [
    "metrics_off",
    "no_recorder",
    "info_subscriber",
    "atomic_recorder",
    "prometheus",
];

/// Requests between two upkeeps of the Prometheus recorder (which drains its histograms'
/// samples, as its exporter does every few seconds; without it they pile up unread).
const UPKEEP_EVERY: u32 = 4096;

type Bare = tower::util::ServiceFn<
    fn(
        Request<ReplayBody<Full<Bytes>>>,
    ) -> std::future::Ready<Result<Response<Full<Bytes>>, BoxError>>,
>;

fn answer(
    _req: Request<ReplayBody<Full<Bytes>>>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, BoxError>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
}

/// The seed canary's mesh over a client that answers at once, Istio's metrics on or off.
fn mesh(metrics: bool) -> mesh_tower::Mesh<Bare> {
    MeshLayer::builder()
        .config(seed_canary::config())
        .client(
            ClientContext::new("default")
                .with_workload_name("web-v1")
                .with_label("app", "web")
                .with_label("version", "v1"),
        )
        .metrics(metrics)
        .seed(1)
        .build()
        .expect("builds")
        .layer(service_fn(answer as fn(_) -> _))
}

fn prometheus() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Prefix("istio_".to_owned()),
            &ENVOY_HISTOGRAM_BUCKETS,
        )
        .unwrap()
        .build_recorder()
}

/// A recorder that does the least a recorder can: every counter, gauge and histogram of every
/// key is one shared atomic word, added to (histograms count their samples).
#[derive(Debug, Default)]
struct AtomicRecorder(Arc<Word>);

#[derive(Debug, Default)]
struct Word(AtomicU64);

impl metrics::CounterFn for Word {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Relaxed);
    }
}

impl metrics::GaugeFn for Word {
    fn increment(&self, _: f64) {
        self.0.fetch_add(1, Relaxed);
    }
    fn decrement(&self, _: f64) {
        self.0.fetch_add(1, Relaxed);
    }
    fn set(&self, _: f64) {
        self.0.fetch_add(1, Relaxed);
    }
}

impl metrics::HistogramFn for Word {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Relaxed);
    }
}

impl metrics::Recorder for AtomicRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.0.clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.0.clone())
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.0.clone())
    }
}

fn info_subscriber() -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    )
}

/// Runs `each` with `case`'s recorder or subscriber installed on this thread, with the
/// mesh it measures and what to call between requests.
fn with_case(case: &str, each: impl FnOnce(&mesh_tower::Mesh<Bare>, &mut dyn FnMut())) {
    match case {
        "metrics_off" => each(&mesh(false), &mut || {}),
        "no_recorder" => each(&mesh(true), &mut || {}),
        "info_subscriber" => {
            let _sub = tracing::subscriber::set_default(info_subscriber());
            each(&mesh(true), &mut || {});
        }
        "atomic_recorder" => {
            let recorder = AtomicRecorder::default();
            let _local = metrics::set_default_local_recorder(&recorder);
            let mut n = 0u64;
            each(&mesh(true), &mut || n += 1);
            drop(_local);
            // Four updates per request (a counter and three histograms): they were recorded.
            assert!(
                recorder.0 .0.load(Relaxed) >= 4 * n,
                "{recorder:?} after {n}"
            );
        }
        "prometheus" => {
            let recorder = prometheus();
            let handle = recorder.handle();
            {
                let _local = metrics::set_default_local_recorder(&recorder);
                let mut n = 0u32;
                each(&mesh(true), &mut || {
                    n += 1;
                    if n.is_multiple_of(UPKEEP_EVERY) {
                        handle.run_upkeep();
                    }
                });
            }
            // The recorder saw the requests: the figures are of metrics actually recorded.
            let text = handle.render();
            assert!(
                text.lines()
                    .any(|l| l.starts_with("istio_requests_total{") && !l.ends_with(" 0")),
                "{text}"
            );
        }
        other => panic!("unknown case {other}; one of {CASES:?}"),
    }
}

fn one(mesh: &mesh_tower::Mesh<Bare>) {
    let res = run(mesh.clone().oneshot(request())).unwrap();
    drain(black_box(res).into_body());
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("telemetry");
    for case in CASES {
        with_case(case, |mesh, between| {
            g.bench_function(case, |b| {
                b.iter(|| {
                    one(mesh);
                    between();
                });
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

/// `telemetry CASE N` runs `N` requests of one case and exits, for an instruction count:
/// `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/telemetry-* CASE N`
/// at two values of `N`; the difference of the totals over the difference of `N` is the
/// cost of one request. Without arguments (as `cargo bench` runs it): criterion.
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    if let [case, n] = &args[..] {
        if let (true, Ok(n)) = (CASES.contains(&case.as_str()), n.parse::<u32>()) {
            with_case(case, |mesh, between| {
                for _ in 0..n {
                    one(mesh);
                    between();
                }
            });
            return;
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
