//! A loopback stand-in Kubernetes API server, for tests and demos without a cluster
//! (feature `testing`).
//!
//! [`FakeApiServer`] is a hyper server on `127.0.0.1:0` that holds objects as JSON and
//! answers the requests `kube::Client` and `kube::runtime::watcher` send:
//!
//! * **list** of a collection, cluster-wide or in a namespace, with `limit` / `continue`
//!   pages (each list is a snapshot), `labelSelector` (`k=v`, `k!=v`, `k`, `!k`) and
//!   `fieldSelector` (`path=v`, `path!=v` over the object's JSON, e.g.
//!   `status.phase!=Failed`), answering with the list's `resourceVersion`;
//! * **watch** from a `resourceVersion`: the events after it, then new ones as they happen,
//!   `BOOKMARK` events every [`bookmark_interval`](FakeApiServer::set_bookmark_interval) when
//!   asked (`allowWatchBookmarks=true`), and an in-stream `ERROR` with code `410` (`Expired`)
//!   when the version is older than the event log keeps ([`compact`](FakeApiServer::compact));
//!   the stream ends after `timeoutSeconds`;
//! * the **metadata-only** form: an `Accept` of
//!   `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (list) or
//!   `…as=PartialObjectMetadata…` (watch) gets `PartialObjectMetadata` objects.
//!
//! Tests change the cluster with [`apply`](FakeApiServer::apply) and
//! [`delete`](FakeApiServer::delete) (each one resource version, one watch event), and break
//! it with [`drop_watches`](FakeApiServer::drop_watches) (connections cut mid-stream) and
//! [`expire_watches`](FakeApiServer::expire_watches) (`410 Gone` in every open watch, and the
//! log compacted so a re-watch from an old version gets `410` too).
//!
//! [`FakeApiServer::client`] builds a real `kube::Client` from a kubeconfig pointing at the
//! server. The object builders ([`service`], [`endpoint_slice`], [`pod`], [`yaml`]) write
//! the JSON a real cluster would hold.
//!
//! What it does not do: authentication, TLS, HTTP/2, writes through the API (`POST`, `PUT`,
//! `PATCH`), `resourceVersionMatch`, streaming lists (`sendInitialEvents`), admission
//! (validation webhooks), and `DELETED` events for objects that stop matching a selector.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, std::io::Error>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `(api group, plural)`; the core group is `""`.
type Collection = (String, String);

/// The plural of a kind, as the API server names its collection.
fn plural(kind: &str) -> String {
    match kind {
        "ServiceEntry" => "serviceentries".to_owned(),
        "Endpoints" => "endpoints".to_owned(),
        k => format!("{}s", k.to_ascii_lowercase()),
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    collection: Collection,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Debug)]
struct Watcher {
    collection: Collection,
    namespace: Option<String>,
    metadata_only: bool,
    labels: Option<String>,
    fields: Option<String>,
    tx: mpsc::UnboundedSender<Result<Frame<Bytes>, std::io::Error>>,
}

#[derive(Debug, Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<(Collection, String, String), Value>,
    /// Every change after `compacted`.
    log: Vec<Event>,
    compacted: u64,
    watchers: Vec<Watcher>,
    pages: HashMap<String, (Vec<Value>, u64)>,
    next_page: u64,
    bookmark_every: Option<Duration>,
    keep_log: bool,
}

/// Request counters of a [`FakeApiServer`].
#[derive(Debug, Default)]
struct Counters {
    lists: AtomicU64,
    watches: AtomicU64,
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
        lock(&self.store).watchers.clear();
    }
}

impl FakeApiServer {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime. Bookmarks every second.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Store {
            bookmark_every: Some(Duration::from_secs(1)),
            keep_log: true,
            ..Store::default()
        }));
        let counters = Arc::new(Counters::default());
        let (s, c) = (Arc::clone(&store), Arc::clone(&counters));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (s, c) = (Arc::clone(&s), Arc::clone(&c));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (s, c) = (Arc::clone(&s), Arc::clone(&c));
                        async move { Ok::<_, Infallible>(handle(&s, &c, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(FakeApiServer {
            addr,
            store,
            counters,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML) whose current context points at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: http://{}\nusers:\n- name: stand-in\n  user: {{}}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: stand-in\n    namespace: default\ncurrent-context: stand-in\n",
            self.addr
        )
    }

    /// A `kube::Client` built from [`kubeconfig`](Self::kubeconfig), as an application builds
    /// one from its kubeconfig file.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())
            .map_err(kube::Error::InferKubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(kube::Error::InferKubeconfig)?;
        kube::Client::try_from(config)
    }

    /// Sends bookmarks to watches that allow them every `every` (`None`: never).
    pub fn set_bookmark_interval(&self, every: Option<Duration>) {
        lock(&self.store).bookmark_every = every;
    }

    /// Whether changes are kept in the event log (for watches that start from an older
    /// version). Turning it off (for large benchmarks) makes such watches get `410`.
    pub fn set_keep_log(&self, keep: bool) {
        let mut st = lock(&self.store);
        st.keep_log = keep;
        if !keep {
            st.compacted = st.rv;
            st.log.clear();
        }
    }

    /// Creates or replaces an object (JSON with `apiVersion`, `kind`, `metadata.name` and,
    /// for namespaced kinds, `metadata.namespace`). Sets `resourceVersion`, `uid`,
    /// `creationTimestamp` (kept on updates) and `generation`; sends `ADDED` or `MODIFIED` to
    /// the watches. Returns the new resource version.
    pub fn apply(&self, object: Value) -> u64 {
        self.apply_all(std::iter::once(object))
    }

    /// [`apply`](Self::apply) for many objects under one lock (one resource version each).
    pub fn apply_all(&self, objects: impl IntoIterator<Item = Value>) -> u64 {
        let mut st = lock(&self.store);
        for mut object in objects {
            let (collection, ns, name) = identity(&object);
            st.rv += 1;
            let rv = st.rv;
            let key = (collection.clone(), ns.clone(), name.clone());
            let old = st.objects.get(&key);
            let created = old
                .and_then(|o| o["metadata"]["creationTimestamp"].as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| timestamp(rv));
            let generation = old
                .and_then(|o| o["metadata"]["generation"].as_u64())
                .unwrap_or(0)
                + 1;
            let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
            let meta = &mut object["metadata"];
            meta["resourceVersion"] = json!(rv.to_string());
            meta["creationTimestamp"] = json!(created);
            meta["uid"] = json!(format!("uid-{}-{}-{}", collection.1, ns, name));
            meta["generation"] = json!(generation);
            st.objects.insert(key, object.clone());
            st.record(Event {
                rv,
                collection,
                namespace: ns,
                kind,
                object,
            });
        }
        st.rv
    }

    /// Deletes an object; sends `DELETED`. Returns whether it existed.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let mut st = lock(&self.store);
        let collection = (group_of(api_version).to_owned(), plural(kind));
        let key = (collection.clone(), namespace.to_owned(), name.to_owned());
        let Some(mut object) = st.objects.remove(&key) else {
            return false;
        };
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.record(Event {
            rv,
            collection,
            namespace: namespace.to_owned(),
            kind: "DELETED",
            object,
        });
        true
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let collection = (group_of(api_version).to_owned(), plural(kind));
        lock(&self.store)
            .objects
            .get(&(collection, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The current resource version.
    pub fn resource_version(&self) -> u64 {
        lock(&self.store).rv
    }

    /// Forgets the event log: a watch from an older version gets `410 Gone`.
    pub fn compact(&self) {
        let mut st = lock(&self.store);
        st.compacted = st.rv;
        st.log.clear();
    }

    /// Cuts every open watch connection mid-stream (clients re-watch from their last
    /// version). Returns how many were cut.
    pub fn drop_watches(&self) -> usize {
        let mut st = lock(&self.store);
        let n = st.watchers.len();
        for w in st.watchers.drain(..) {
            let _ = w.tx.send(Err(std::io::Error::other(
                "connection dropped by the stand-in",
            )));
        }
        n
    }

    /// Sends `410 Gone` (`Expired`) in every open watch and compacts the log, as an API server
    /// whose watch cache moved on does: clients relist. Returns how many watches were told.
    pub fn expire_watches(&self) -> usize {
        let mut st = lock(&self.store);
        st.compacted = st.rv;
        st.log.clear();
        let n = st.watchers.len();
        for w in st.watchers.drain(..) {
            let _ = w.tx.send(Ok(Frame::data(line(&gone_event()))));
        }
        n
    }

    /// Number of open watches.
    pub fn open_watches(&self) -> usize {
        let mut st = lock(&self.store);
        st.watchers.retain(|w| !w.tx.is_closed());
        st.watchers.len()
    }

    /// List requests served so far (each page counts).
    pub fn lists(&self) -> u64 {
        self.counters.lists.load(Ordering::SeqCst)
    }

    /// Watch requests served so far.
    pub fn watches(&self) -> u64 {
        self.counters.watches.load(Ordering::SeqCst)
    }
}

impl Store {
    fn record(&mut self, ev: Event) {
        self.watchers.retain(|w| !w.tx.is_closed());
        for w in &self.watchers {
            if w.collection == ev.collection
                && w.namespace.as_ref().is_none_or(|ns| *ns == ev.namespace)
                && selected(&ev.object, w.labels.as_deref(), w.fields.as_deref())
            {
                let _ =
                    w.tx.send(Ok(Frame::data(line(&event_json(&ev, w.metadata_only)))));
            }
        }
        if self.keep_log {
            self.log.push(ev);
        } else {
            self.compacted = self.rv;
        }
    }
}

/// A fixed, sortable creation time per resource version (RFC 3339), formatted by the time
/// library the Kubernetes types already use.
fn timestamp(rv: u64) -> String {
    let secs = 1_700_000_000 + i64::try_from(rv).unwrap_or(i64::MAX / 2);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap_or(k8s_openapi::jiff::Timestamp::MAX)
        .to_string()
}

fn identity(object: &Value) -> (Collection, String, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let kind = object["kind"].as_str().unwrap_or("");
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    ((group_of(api_version).to_owned(), plural(kind)), ns, name)
}

fn line(v: &Value) -> Bytes {
    let mut s = serde_json::to_vec(v).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn gone_event() -> Value {
    json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410,
    }})
}

fn metadata_only(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object["metadata"].clone(),
    })
}

fn event_json(ev: &Event, meta_only: bool) -> Value {
    let object = if meta_only {
        metadata_only(&ev.object)
    } else {
        ev.object.clone()
    };
    json!({"type": ev.kind, "object": object})
}

/// Whether `object` passes a label and a field selector (the forms in the module docs).
fn selected(object: &Value, labels: Option<&str>, fields: Option<&str>) -> bool {
    let label_ok = labels.is_none_or(|sel| {
        sel.split(',').filter(|t| !t.is_empty()).all(|term| {
            let get = |k: &str| object["metadata"]["labels"][k.trim()].as_str();
            if let Some((k, v)) = term.split_once("!=") {
                get(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k).is_none()
            } else {
                get(term).is_some()
            }
        })
    });
    let field_ok = fields.is_none_or(|sel| {
        sel.split(',').filter(|t| !t.is_empty()).all(|term| {
            let get = |path: &str| {
                let mut v = object;
                for part in path.trim().split('.') {
                    v = &v[part];
                }
                v.as_str().unwrap_or("").to_owned()
            };
            if let Some((k, v)) = term.split_once("!=") {
                get(k) != v.trim()
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k) == v.trim()
            } else {
                true
            }
        })
    });
    label_ok && field_ok
}

/// `/api/v1[/namespaces/NS]/PLURAL` or `/apis/G/V[/namespaces/NS]/PLURAL`.
fn parse_path(path: &str) -> Option<(Collection, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    match rest {
        [plural] => Some(((group.to_owned(), (*plural).to_owned()), None)),
        ["namespaces", ns, plural] => Some((
            (group.to_owned(), (*plural).to_owned()),
            Some((*ns).to_owned()),
        )),
        _ => None,
    }
}

fn query(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn full(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed()))
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    full(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
    )
}

fn list_kind(collection: &Collection, st: &Store) -> String {
    st.objects
        .iter()
        .find(|((c, _, _), _)| c == collection)
        .and_then(|(_, o)| o["kind"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "Object".to_owned())
}

fn handle(
    store: &Arc<Mutex<Store>>,
    counters: &Counters,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.method() != http::Method::GET {
        return status(405, "MethodNotAllowed", "the stand-in serves GET only");
    }
    let Some((collection, namespace)) = parse_path(req.uri().path()) else {
        return status(404, "NotFound", "no such collection");
    };
    let q = query(req.uri());
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let meta_only = accept.contains("as=PartialObjectMetadata");
    let labels = q.get("labelSelector").cloned();
    let fields = q.get("fieldSelector").cloned();
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        counters.watches.fetch_add(1, Ordering::SeqCst);
        return watch(store, collection, namespace, meta_only, labels, fields, &q);
    }
    counters.lists.fetch_add(1, Ordering::SeqCst);
    let mut st = lock(store);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let (mut items, rv) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match st.pages.remove(token) {
            Some(page) => page,
            None => return status(410, "Expired", "the continue token is no longer valid"),
        },
        None => {
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((c, ns, _), _)| {
                    *c == collection && namespace.as_ref().is_none_or(|n| n == ns)
                })
                .map(|(_, o)| o)
                .filter(|o| selected(o, labels.as_deref(), fields.as_deref()))
                .cloned()
                .collect();
            (items, st.rv)
        }
    };
    let rest = if items.len() > limit {
        items.split_off(limit)
    } else {
        Vec::new()
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if !rest.is_empty() {
        st.next_page += 1;
        let token = format!("page-{}", st.next_page);
        st.pages.insert(token.clone(), (rest, rv));
        metadata["continue"] = json!(token);
    }
    let kind = list_kind(&collection, &st);
    drop(st);
    let (api_version, kind, items) = if meta_only {
        (
            "meta.k8s.io/v1".to_owned(),
            "PartialObjectMetadataList".to_owned(),
            items.iter().map(metadata_only).collect(),
        )
    } else {
        let av = items
            .first()
            .and_then(|o| o["apiVersion"].as_str())
            .unwrap_or("v1")
            .to_owned();
        (av, format!("{kind}List"), items)
    };
    full(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items}),
    )
}

fn watch(
    store: &Arc<Mutex<Store>>,
    collection: Collection,
    namespace: Option<String>,
    metadata_only: bool,
    labels: Option<String>,
    fields: Option<String>,
    q: &HashMap<String, String>,
) -> Response<Body> {
    let (tx, rx) = mpsc::unbounded_channel();
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs);
    let mut st = lock(store);
    if from < st.compacted {
        let _ = tx.send(Ok(Frame::data(line(&gone_event()))));
        drop(tx);
    } else {
        for ev in st.log.iter().filter(|e| {
            e.rv > from
                && e.collection == collection
                && namespace.as_ref().is_none_or(|ns| *ns == e.namespace)
                && selected(&e.object, labels.as_deref(), fields.as_deref())
        }) {
            let _ = tx.send(Ok(Frame::data(line(&event_json(ev, metadata_only)))));
        }
        let kind = list_kind(&collection, &st);
        let api_version = st
            .objects
            .iter()
            .find(|((c, _, _), _)| *c == collection)
            .and_then(|(_, o)| o["apiVersion"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "v1".to_owned());
        if let (true, Some(every)) = (bookmarks, st.bookmark_every) {
            let store = Arc::downgrade(store);
            let tx = tx.clone();
            let (kind, api_version) = if metadata_only {
                (
                    "PartialObjectMetadata".to_owned(),
                    "meta.k8s.io/v1".to_owned(),
                )
            } else {
                (kind, api_version)
            };
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(store) = store.upgrade() else { return };
                    let rv = lock(&store).rv;
                    let bm = json!({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": rv.to_string()}}});
                    if tx.send(Ok(Frame::data(line(&bm)))).is_err() {
                        return;
                    }
                }
            });
        }
        if let Some(t) = timeout {
            let tx = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                // Ends the stream cleanly: the watch "timed out" as a real server's does.
                drop(tx);
            });
        }
        st.watchers.push(Watcher {
            collection,
            namespace,
            metadata_only,
            labels,
            fields,
            tx,
        });
    }
    drop(st);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed()))
}

/// A `v1` Service with TCP ports `(name, port)` and `selector: {app: NAME}`.
pub fn service(namespace: &str, name: &str, ports: &[(&str, u16)]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "clusterIP": "10.96.0.10", "type": "ClusterIP", "ipFamilies": ["IPv4"],
            "selector": {"app": name},
            "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP", "targetPort": n})).collect::<Vec<_>>(),
        },
    })
}

/// One endpoint of an [`endpoint_slice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    address: String,
    ready: bool,
    serving: bool,
    terminating: bool,
    pod: Option<String>,
    zone: Option<String>,
    node: Option<String>,
}

impl SliceEndpoint {
    /// A ready endpoint of pod `pod` at `address`.
    pub fn ready(address: &str, pod: &str) -> Self {
        SliceEndpoint {
            address: address.to_owned(),
            ready: true,
            serving: true,
            terminating: false,
            pod: Some(pod.to_owned()),
            zone: None,
            node: None,
        }
    }

    /// Not ready (the pod's readiness probe fails): `ready: false, serving: false,
    /// terminating: false`.
    #[must_use]
    pub fn not_ready(mut self) -> Self {
        self.ready = false;
        self.serving = false;
        self
    }

    /// Terminating (the pod is being deleted): `ready: false, terminating: true`.
    #[must_use]
    pub fn terminating(mut self) -> Self {
        self.ready = false;
        self.terminating = true;
        self
    }

    /// Without a `targetRef`.
    #[must_use]
    pub fn without_pod(mut self) -> Self {
        self.pod = None;
        self
    }

    /// In zone `zone` on node `node`.
    #[must_use]
    pub fn at(mut self, zone: &str, node: &str) -> Self {
        self.zone = Some(zone.to_owned());
        self.node = Some(node.to_owned());
        self
    }
}

/// A `discovery.k8s.io/v1` EndpointSlice of Service `service` with ports `(name, port)`.
/// `address_type` is `IPv4`, `IPv6` or `FQDN`.
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    address_type: &str,
    ports: &[(&str, u16)],
    endpoints: &[SliceEndpoint],
) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
        },
        "addressType": address_type,
        "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"})).collect::<Vec<_>>(),
        "endpoints": endpoints.iter().map(|e| {
            let mut v = json!({
                "addresses": [e.address],
                "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
            });
            if let Some(p) = &e.pod {
                v["targetRef"] = json!({"kind": "Pod", "name": p, "namespace": namespace});
            }
            if let Some(z) = &e.zone {
                v["zone"] = json!(z);
            }
            if let Some(n) = &e.node {
                v["nodeName"] = json!(n);
            }
            v
        }).collect::<Vec<_>>(),
    })
}

/// A running `v1` Pod with `labels` (its status has `phase: Running`).
pub fn pod(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
        "status": {"phase": "Running"},
    })
}

/// The objects of a multi-document YAML text (Istio resources as `kubectl apply` takes them).
pub fn yaml(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|doc| Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let p = pod("ns", "p", &[("app", "x"), ("version", "v1")]);
        assert!(selected(
            &p,
            Some("app=x,version!=v2"),
            Some("status.phase!=Failed")
        ));
        assert!(selected(&p, Some("app==x,!tier,version"), None));
        assert!(!selected(&p, Some("app=y"), None));
        assert!(!selected(&p, None, Some("status.phase=Failed")));
        assert!(selected(
            &p,
            None,
            Some("metadata.name=p,metadata.namespace=ns")
        ));
    }

    #[test]
    fn paths_and_queries() {
        assert_eq!(
            parse_path("/apis/networking.istio.io/v1/namespaces/prod/virtualservices"),
            Some((
                ("networking.istio.io".into(), "virtualservices".into()),
                Some("prod".into())
            ))
        );
        assert_eq!(
            parse_path("/api/v1/pods"),
            Some((("".into(), "pods".into()), None))
        );
        let uri: http::Uri = "/api/v1/pods?&fieldSelector=status.phase%21%3DFailed&limit=500"
            .parse()
            .unwrap();
        let q = query(&uri);
        assert_eq!(q["fieldSelector"], "status.phase!=Failed");
        assert_eq!(q["limit"], "500");
    }

    #[test]
    fn timestamps_sort_as_resource_versions() {
        assert_eq!(timestamp(0), "2023-11-14T22:13:20Z");
        assert!(timestamp(9) < timestamp(10));
        assert!(timestamp(99_999) < timestamp(100_000));
    }
}
