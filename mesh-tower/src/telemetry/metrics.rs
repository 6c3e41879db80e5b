//! Istio's standard metrics, as a client sidecar reports them (`reporter="source"`), through
//! the `metrics` facade.
//!
//! Label sets are built once: the client's (`reporter`, `source_*`) when the mesh is built,
//! each destination's (`destination_*`) when a cluster first sees an endpoint with those
//! labels, and one set of handles per outcome (`response_code`, `grpc_response_status`,
//! `response_flags`, `request_protocol`) the first time that outcome happens. A request then
//! costs two slot reads (its destination's series, its outcome's handles: one atomic load
//! each, no reference count, no hashing of labels) and four handle updates; nothing at all
//! when no recorder is installed.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use mesh_routing::endpoints::Labels;
use mesh_routing::ClientContext;
use metrics::{Counter, Histogram, Key, Label, Level, Metadata};
use rustc_hash::FxHashMap;

use crate::cluster::lock;
use crate::telemetry::ResponseFlags;

/// `istio_requests_total`: a counter, one per request, at the end of its response.
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// `istio_request_duration_milliseconds`: a histogram, request start to the end of the
/// response, in milliseconds.
pub const REQUEST_DURATION_MILLISECONDS: &str = "istio_request_duration_milliseconds";
/// `istio_request_bytes`: a histogram of request sizes (body bytes; see the differences in
/// the [module docs](crate::telemetry)).
pub const REQUEST_BYTES: &str = "istio_request_bytes";
/// `istio_response_bytes`: a histogram of response sizes (body bytes).
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// Envoy's default histogram bucket bounds (`stats.proto`), which Istio keeps: give them to
/// your exporter for the three histograms so that Istio's dashboards and their
/// `histogram_quantile` queries line up, e.g. with `metrics-exporter-prometheus`:
/// `PrometheusBuilder::new().set_buckets_for_metric(Matcher::Prefix("istio_".into()), &ENVOY_HISTOGRAM_BUCKETS)`.
pub const ENVOY_HISTOGRAM_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The value Istio gives a label it cannot know.
const UNKNOWN: &str = "unknown";

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Whether a metrics recorder is in place (a thread-local one or the global one). `metrics`
/// answers with its no-op recorder otherwise, a zero-sized type: that is how it is told apart.
pub(crate) fn recorder_installed() -> bool {
    metrics::with_recorder(|r| std::mem::size_of_val(r) != 0)
}

/// `reporter` and the `source_*` labels, from the client context (Istio's node metadata:
/// `WORKLOAD_NAME`, `NAMESPACE`, `CLUSTER_ID` and the pod's labels).
#[derive(Debug)]
pub(crate) struct SourceLabels {
    labels: Vec<Label>,
}

impl SourceLabels {
    pub(crate) fn new(client: &ClientContext) -> Self {
        let l = client.labels();
        let get = |k: &str| l.get(k).map_or("", String::as_str);
        // A sidecar's pod always has the canonical labels: the injector derives them this way.
        let canonical_name = first_of(l, &[CANONICAL_NAME, "app.kubernetes.io/name", "app"])
            .unwrap_or(client.workload_name());
        let canonical_revision = first_of(
            l,
            &[CANONICAL_REVISION, "app.kubernetes.io/version", "version"],
        )
        .unwrap_or("latest");
        let labels = vec![
            label("reporter", "source"),
            label("source_workload", client.workload_name()),
            label("source_canonical_service", canonical_name),
            label("source_canonical_revision", canonical_revision),
            label("source_workload_namespace", client.namespace()),
            // The mesh speaks plaintext: no certificate names the client.
            label("source_principal", UNKNOWN),
            label("source_app", get("app")),
            label("source_version", get("version")),
            label("source_cluster", client.cluster_id()),
        ];
        SourceLabels { labels }
    }
}

const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";

fn first_of<'a>(labels: &'a Labels, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| labels.get(*k))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn label(key: &'static str, value: &str) -> Label {
    Label::new(key, value.to_owned())
}

/// What a destination's labels are taken from: the endpoint's labels (pod labels, or a
/// ServiceEntry endpoint's), standing in for what a sidecar learns from its peer by metadata
/// exchange. The values of the five labels that vary by endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PeerKey {
    app: Option<String>,
    version: Option<String>,
    canonical_name: Option<String>,
    canonical_revision: Option<String>,
    cluster: Option<String>,
}

impl PeerKey {
    /// No endpoint (none picked yet, or a host resolved by name): every peer label unknown.
    const NONE: PeerKey = PeerKey {
        app: None,
        version: None,
        canonical_name: None,
        canonical_revision: None,
        cluster: None,
    };

    fn of(labels: &Labels) -> Self {
        let owned = |v: Option<&str>| v.map(str::to_owned);
        PeerKey {
            app: owned(first_of(labels, &["app"])),
            version: owned(first_of(labels, &["version"])),
            canonical_name: owned(first_of(
                labels,
                &[CANONICAL_NAME, "app.kubernetes.io/name", "app"],
            )),
            canonical_revision: owned(first_of(
                labels,
                &[CANONICAL_REVISION, "app.kubernetes.io/version", "version"],
            )),
            cluster: owned(first_of(labels, &["topology.istio.io/cluster"])),
        }
    }
}

/// The destination a request went to, as the labels name it: a cluster's service, or one of
/// the two kinds of request that reach no cluster.
#[derive(Debug, Clone)]
pub(crate) struct ServiceLabels {
    host: String,
    name: String,
}

impl ServiceLabels {
    /// The service of a cluster: `host`, named as Istio's registries name it (a
    /// ServiceEntry's service by its host, a Kubernetes service by the first label of its
    /// name).
    pub(crate) fn service(host: &str, from_service_entry: bool) -> Self {
        let name = if from_service_entry {
            host
        } else {
            host.split('.').next().unwrap_or(host)
        };
        ServiceLabels {
            host: host.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A request no route or cluster took (404 `NR`, 503 `NC`): the service is unknown (a
    /// sidecar would fall back to the `Host` header, whose values are unbounded).
    pub(crate) fn unknown() -> Self {
        ServiceLabels {
            host: UNKNOWN.to_owned(),
            name: UNKNOWN.to_owned(),
        }
    }

    /// A passthrough to a host no service names: Istio's `PassthroughCluster`.
    pub(crate) fn passthrough() -> Self {
        ServiceLabels {
            host: UNKNOWN.to_owned(),
            name: "PassthroughCluster".to_owned(),
        }
    }
}

/// The metrics of one destination: every label but the outcome's fixed, and the handles of
/// each outcome seen so far.
#[derive(Debug)]
pub(crate) struct Series {
    /// `reporter`, `source_*` and `destination_*`, in Istio's order.
    labels: Vec<Label>,
    /// The handles of the first [`OUTCOME_SLOTS`] outcomes, by open addressing on the
    /// outcome: a slot is written once, under `register`, and read with one atomic load.
    slots: [OnceLock<(OutcomeKey, Handles)>; OUTCOME_SLOTS],
    /// The outcomes beyond the slots (a destination that has answered in more ways than
    /// that), published as a new map for each (readers never wait).
    overflow: ArcSwap<FxHashMap<OutcomeKey, Handles>>,
    /// Serialises registrations (the first request of an outcome).
    register: Mutex<()>,
}

/// Outcomes (status, gRPC status, flags) a [`Series`] keeps in slots before its overflow map:
/// a healthy destination has one or two, a failing one a handful.
const OUTCOME_SLOTS: usize = 16;

/// The outcome part of a label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct OutcomeKey {
    status: u16,
    /// `None` for a request that is not gRPC; then `Some(None)`-like "no status" cannot
    /// happen: a gRPC request always has one (inferred from the HTTP status at worst).
    grpc_status: Option<u8>,
    flags: u64,
}

impl OutcomeKey {
    /// The first slot to probe: a multiplicative hash of the three parts.
    fn slot(&self) -> usize {
        let mixed = (u64::from(self.status) << 8 | u64::from(self.grpc_status.map_or(0xff, |g| g)))
            ^ self.flags.rotate_left(24);
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % OUTCOME_SLOTS
    }
}

#[derive(Debug, Clone)]
struct Handles {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// One finished request, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completed {
    /// The status sent to the caller (0: none).
    pub(crate) status: u16,
    /// The gRPC status of a gRPC request (`None` for other requests).
    pub(crate) grpc_status: Option<u8>,
    pub(crate) flags: ResponseFlags,
    pub(crate) duration: Duration,
    pub(crate) request_bytes: u64,
    pub(crate) response_bytes: u64,
}

impl Series {
    fn new(source: &SourceLabels, service: &ServiceLabels, peer: &PeerKey) -> Self {
        let or = |v: &Option<String>, fallback: &str| v.as_deref().unwrap_or(fallback).to_owned();
        let mut labels = source.labels.clone();
        labels.extend([
            label("destination_workload", UNKNOWN),
            label("destination_workload_namespace", UNKNOWN),
            label("destination_principal", UNKNOWN),
            Label::new("destination_app", or(&peer.app, UNKNOWN)),
            Label::new("destination_version", or(&peer.version, UNKNOWN)),
            label("destination_service", &service.host),
            Label::new(
                "destination_canonical_service",
                or(&peer.canonical_name, UNKNOWN),
            ),
            Label::new(
                "destination_canonical_revision",
                or(&peer.canonical_revision, "latest"),
            ),
            label("destination_service_name", &service.name),
            label("destination_service_namespace", UNKNOWN),
            Label::new("destination_cluster", or(&peer.cluster, UNKNOWN)),
        ]);
        Series {
            labels,
            slots: std::array::from_fn(|_| OnceLock::new()),
            overflow: ArcSwap::default(),
            register: Mutex::new(()),
        }
    }

    /// A series for requests that reach no cluster.
    pub(crate) fn without_cluster(source: &SourceLabels, service: &ServiceLabels) -> Self {
        Series::new(source, service, &PeerKey::NONE)
    }

    /// Records one request.
    pub(crate) fn record(&self, c: &Completed) {
        let key = OutcomeKey {
            status: c.status,
            grpc_status: c.grpc_status,
            flags: c.flags.raw(),
        };
        if let Some(h) = self.find(&key) {
            return h.record(c);
        }
        if let Some(h) = self.overflow.load().get(&key) {
            return h.record(c);
        }
        self.register(key, c).record(c);
    }

    /// The handles of `key`, if registered: its slot (probing from the key's first slot up to
    /// the first empty one), else the overflow map once every slot is taken.
    fn find(&self, key: &OutcomeKey) -> Option<&Handles> {
        let first = key.slot();
        for i in 0..OUTCOME_SLOTS {
            match self.slots[(first + i) % OUTCOME_SLOTS].get() {
                Some((k, h)) if k == key => return Some(h),
                Some(_) => {}
                // Slots fill in probe order and are never emptied: not registered.
                None => return None,
            }
        }
        None
    }

    /// The handles of a new outcome: registered with the recorder once, then published in
    /// the first free slot of its probe sequence, or in a new overflow map.
    #[cold]
    fn register(&self, key: OutcomeKey, c: &Completed) -> Handles {
        let _serial = lock(&self.register);
        if let Some(h) = self.find(&key) {
            return h.clone();
        }
        if let Some(h) = self.overflow.load().get(&key) {
            return h.clone();
        }
        let mut labels = self.labels.clone();
        labels.push(label(
            "request_protocol",
            if c.grpc_status.is_some() {
                "grpc"
            } else {
                "http"
            },
        ));
        labels.push(Label::new("response_code", c.status.to_string()));
        labels.push(Label::new(
            "grpc_response_status",
            c.grpc_status.map(|g| g.to_string()).unwrap_or_default(),
        ));
        labels.push(Label::new("response_flags", c.flags.to_string()));
        labels.push(label("connection_security_policy", UNKNOWN));
        let handles = metrics::with_recorder(|r| {
            let key = |name: &'static str| Key::from_parts(name, labels.clone());
            Handles {
                requests: r.register_counter(&key(REQUESTS_TOTAL), &METADATA),
                duration: r.register_histogram(&key(REQUEST_DURATION_MILLISECONDS), &METADATA),
                request_bytes: r.register_histogram(&key(REQUEST_BYTES), &METADATA),
                response_bytes: r.register_histogram(&key(RESPONSE_BYTES), &METADATA),
            }
        });
        let first = key.slot();
        let free = (0..OUTCOME_SLOTS)
            .map(|i| &self.slots[(first + i) % OUTCOME_SLOTS])
            .find(|slot| slot.get().is_none());
        match free {
            // Under `register`: nobody else sets it.
            Some(slot) => {
                let _ = slot.set((key, handles.clone()));
            }
            None => {
                let mut next = FxHashMap::clone(&self.overflow.load());
                next.insert(key, handles.clone());
                self.overflow.store(Arc::new(next));
            }
        }
        handles
    }
}

impl Handles {
    fn record(&self, c: &Completed) {
        self.requests.increment(1);
        self.duration.record(c.duration.as_secs_f64() * 1000.0);
        self.request_bytes.record(c.request_bytes as f64);
        self.response_bytes.record(c.response_bytes as f64);
    }
}

/// The metrics of one cluster: a [`Series`] per distinct destination label set among its
/// endpoints (index 0: no endpoint), built when endpoints are published, never per request.
#[derive(Debug)]
pub(crate) struct ClusterMetrics {
    source: Arc<SourceLabels>,
    service: ServiceLabels,
    /// Append-only: an index handed out stays valid, and reading it takes no reference.
    series: AppendOnly<Series>,
    index: Mutex<FxHashMap<PeerKey, u32>>,
}

impl ClusterMetrics {
    pub(crate) fn new(source: Arc<SourceLabels>, service: ServiceLabels) -> Self {
        let series = AppendOnly::default();
        series.set(0, Series::new(&source, &service, &PeerKey::NONE));
        let mut index = FxHashMap::default();
        index.insert(PeerKey::NONE, 0);
        ClusterMetrics {
            source,
            service,
            series,
            index: Mutex::new(index),
        }
    }

    /// The series index of an endpoint with `labels` (registry time: when endpoints change).
    pub(crate) fn index_of(&self, labels: &Labels) -> u32 {
        let key = PeerKey::of(labels);
        let mut index = lock(&self.index);
        if let Some(i) = index.get(&key) {
            return *i;
        }
        let i = index.len() as u32;
        self.series
            .set(i, Series::new(&self.source, &self.service, &key));
        index.insert(key, i);
        i
    }

    /// The series at `index` (0, "no endpoint", for an index this cluster never gave).
    pub(crate) fn series(&self, index: u32) -> &Series {
        match self.series.get(index) {
            Some(s) => s,
            None => self.series.get(0).expect("set at construction"),
        }
    }
}

/// A list that only grows, read without locks or reference counts: segment `k` holds
/// `FIRST << k` slots, allocated when its first slot is set; each slot is written once.
#[derive(Debug)]
struct AppendOnly<T> {
    segments: [OnceLock<Box<[OnceLock<T>]>>; SEGMENTS],
}

/// Slots of segment 0.
const FIRST: u32 = 4;
/// Segments: room for `FIRST * (2^SEGMENTS - 1)` items, over 250 million.
const SEGMENTS: usize = 26;

impl<T> Default for AppendOnly<T> {
    fn default() -> Self {
        AppendOnly {
            segments: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl<T> AppendOnly<T> {
    /// The segment and the offset in it of item `i`.
    fn locate(i: u32) -> (usize, usize) {
        let n = u64::from(i) + u64::from(FIRST);
        let segment = (63 - n.leading_zeros()) - FIRST.trailing_zeros();
        (
            segment as usize,
            (n - (u64::from(FIRST) << segment)) as usize,
        )
    }

    fn get(&self, i: u32) -> Option<&T> {
        let (segment, offset) = Self::locate(i);
        self.segments.get(segment)?.get()?.get(offset)?.get()
    }

    /// Sets item `i` (a no-op if it is set already, or beyond the last segment).
    fn set(&self, i: u32, value: T) {
        let (k, offset) = Self::locate(i);
        let Some(segment) = self.segments.get(k) else {
            return;
        };
        let len = (FIRST as usize) << k;
        let slots = segment.get_or_init(|| (0..len).map(|_| OnceLock::new()).collect());
        let _ = slots[offset].set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_only_keeps_every_item_at_its_index_across_segments() {
        let list = AppendOnly::default();
        for i in 0..1000u32 {
            assert_eq!(list.get(i), None);
            list.set(i, i * 3);
        }
        for i in 0..1000u32 {
            assert_eq!(list.get(i), Some(&(i * 3)), "item {i}");
        }
        assert_eq!(list.get(1000), None);
        // Set once: a second value does not replace the first.
        list.set(7, 0);
        assert_eq!(list.get(7), Some(&21));
        assert_eq!(AppendOnly::<u32>::locate(0), (0, 0));
        assert_eq!(AppendOnly::<u32>::locate(3), (0, 3));
        assert_eq!(AppendOnly::<u32>::locate(4), (1, 0));
        assert_eq!(AppendOnly::<u32>::locate(11), (1, 7));
        assert_eq!(AppendOnly::<u32>::locate(12), (2, 0));
        // Beyond the last segment: never stored, never found.
        assert!(AppendOnly::<u32>::locate(u32::MAX).0 >= SEGMENTS);
        list.set(u32::MAX, 1);
        assert_eq!(list.get(u32::MAX), None);
    }
}
