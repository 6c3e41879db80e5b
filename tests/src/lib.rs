//! Real loopback HTTP backends for the workspace's end-to-end tests.
//!
//! A [`Backend`] is a hyper 1 server (HTTP/1 and HTTP/2 prior knowledge) on
//! `127.0.0.1:0`, named and labelled like a pod (`version=v1`). Tests steer
//! its behaviour while it runs with [`Rule`]s and read back exactly what it
//! received:
//!
//! - **Behaviour**: answer with a status, delay (tokio time, so a paused clock
//!   drives it), reset the TCP connection (RST), close it before the response
//!   head (FIN), or hang forever, for all requests, the first *n*, every
//!   *n*-th, or a seeded pseudo-random share; optionally only for one path
//!   prefix. The first rule that fires decides; with none, the answer is `200`
//!   with the backend's name as body.
//! - **Echo**: every answer carries the request's method, path, `Host`
//!   (or `:authority`), body length and body hash, and the backend's name and
//!   labels, in `x-echo-*` / `x-backend*` headers.
//! - **Records**: every request that reached the backend, with its headers
//!   and body hash, and counters per path and per body hash.
//!
//! The server stops accepting and closes its connections when the `Backend`
//! is dropped (or, awaiting completion, on [`Backend::shutdown`]).
//!
//! # Example
//!
//! ```
//! use mesh_tests::{Action, Backend, Rule, Select};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let v1 = Backend::builder().name("reviews-v1").label("version", "v1").start().await.unwrap();
//! v1.push_rule(Rule::new(Select::FirstN(1), Action::Status(503)));
//! assert_eq!(v1.url("/x"), format!("http://{}/x", v1.addr()));
//! assert_eq!(v1.count(), 0);
//! # }
//! ```

pub mod pki;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// A 64-bit FNV-1a hash of a body, as reported in `x-echo-body-hash`.
///
/// Deterministic across runs and platforms, so a test can compute the hash
/// of what it sent and compare with what the backend saw.
pub fn body_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Which requests a [`Rule`] fires on, counting the requests that match its
/// path (1 is the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every request.
    All,
    /// The first `n` requests, then never.
    FirstN(u64),
    /// Requests number `n`, `2n`, `3n`, ... (`0` never fires).
    EveryNth(u64),
    /// A pseudo-random share, `per_million` out of 1 000 000, fixed by `seed`:
    /// the same seed fires on the same request numbers in every run.
    Seeded {
        /// Seed of the sequence.
        seed: u64,
        /// Share of requests to fire on, in millionths.
        per_million: u32,
    },
}

impl Select {
    fn fires(self, n: u64) -> bool {
        match self {
            Select::All => true,
            Select::FirstN(k) => n <= k,
            Select::EveryNth(k) => k != 0 && n.is_multiple_of(k),
            Select::Seeded { seed, per_million } => {
                let roll = mesh_resilience::rng::Rng::with_seed(seed.wrapping_add(n)).next_u64();
                roll % 1_000_000 < u64::from(per_million)
            }
        }
    }
}

/// What a backend does with a request a [`Rule`] fired on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer with this status (echo headers included, body = backend name;
    /// a 3xx status also gets `location: /redirected`).
    Status(u16),
    /// Wait this long (tokio time), then answer normally.
    Delay(Duration),
    /// Wait this long, then answer with this status.
    DelayThenStatus(Duration, u16),
    /// Reset the TCP connection (RST) without answering.
    Reset,
    /// Close the TCP connection (FIN) without answering.
    CloseBeforeHeaders,
    /// Never answer; the connection stays open.
    Hang,
}

/// A behaviour rule: which requests ([`Select`], optional path prefix) get
/// which [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    select: Select,
    path_prefix: Option<String>,
    action: Action,
}

impl Rule {
    /// A rule over every path.
    pub fn new(select: Select, action: Action) -> Self {
        Self {
            select,
            path_prefix: None,
            action,
        }
    }

    /// Restricts the rule to paths starting with `prefix`; only those requests
    /// advance its count.
    pub fn on_path(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }
}

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// 1-based arrival number on this backend.
    pub index: u64,
    /// Request method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// HTTP version of the connection.
    pub version: Version,
    /// Request headers (HTTP/2 `:authority` is added as `host` when absent).
    pub headers: HeaderMap,
    /// Bytes of body received.
    pub body_len: usize,
    /// [`body_hash`] of the body received.
    pub body_hash: u64,
    /// Whether the body arrived whole (false if the client went away mid-body).
    pub body_complete: bool,
    /// The rule action applied, if any.
    pub action: Option<Action>,
}

impl Received {
    /// The `Host` the request carried (or its HTTP/2 `:authority`).
    pub fn host(&self) -> Option<&str> {
        self.headers.get(http::header::HOST)?.to_str().ok()
    }
}

struct RuleState {
    rule: Rule,
    matched: u64,
}

struct Shared {
    name: String,
    labels: BTreeMap<String, String>,
    rules: Mutex<Vec<RuleState>>,
    received: Mutex<Vec<Received>>,
    arrivals: AtomicU64,
    connections: AtomicU64,
    /// Connections open now, the most ever open at once, and closed so far.
    open: AtomicU64,
    max_open: AtomicU64,
    closed: AtomicU64,
    closed_notify: Notify,
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_connections: Mutex<Vec<TlsConnection>>,
    h2_max_concurrent_streams: Option<u32>,
}

/// What a TLS backend learnt of one connection's handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConnection {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The protocols the client offered by ALPN, in its order.
    pub offered_alpn: Vec<String>,
    /// The protocol agreed by ALPN.
    pub alpn: Option<String>,
    /// The client's certificate (DER), when it sent one.
    pub client_certificate: Option<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds a [`Backend`].
#[derive(Debug, Default)]
pub struct BackendBuilder {
    name: Option<String>,
    labels: BTreeMap<String, String>,
    rules: Vec<Rule>,
    bind: Option<SocketAddr>,
    tls: Option<Arc<rustls::ServerConfig>>,
    h2_max_concurrent_streams: Option<u32>,
}

impl BackendBuilder {
    /// The backend's name (default `backend`), returned as the default body.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a label, such as `version=v1`.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a behaviour rule from the start.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Binds `addr` instead of `127.0.0.1:0`: another loopback address (`127.0.0.2:8080`),
    /// so that several backends share a port the way pods behind one Service do.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Serves TLS with this configuration (its ALPN list and client verification included);
    /// what each handshake carried is recorded ([`Backend::tls_connections`]).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` the backend advertises.
    pub fn h2_max_concurrent_streams(mut self, n: u32) -> Self {
        self.h2_max_concurrent_streams = Some(n);
        self
    }

    /// Binds `127.0.0.1:0` (or the [`bind`](Self::bind) address) and starts serving on the
    /// current tokio runtime.
    pub async fn start(self) -> std::io::Result<Backend> {
        let listener = match self.bind {
            Some(addr) => TcpListener::bind(addr).await?,
            None => TcpListener::bind("127.0.0.1:0").await?,
        };
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: self.name.unwrap_or_else(|| "backend".to_owned()),
            labels: self.labels,
            rules: Mutex::new(
                self.rules
                    .into_iter()
                    .map(|rule| RuleState { rule, matched: 0 })
                    .collect(),
            ),
            received: Mutex::new(Vec::new()),
            arrivals: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: AtomicU64::new(0),
            max_open: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            closed_notify: Notify::new(),
            tls: self.tls,
            tls_connections: Mutex::new(Vec::new()),
            h2_max_concurrent_streams: self.h2_max_concurrent_streams,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), stop_rx));
        Ok(Backend {
            addr,
            shared,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A running loopback backend. See the [crate documentation](crate).
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.shared.name)
            .field("addr", &self.addr)
            .field("labels", &self.shared.labels)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// A builder for a backend.
    pub fn builder() -> BackendBuilder {
        BackendBuilder::default()
    }

    /// Starts a backend with a name and a `version` label.
    pub async fn start_version(name: &str, version: &str) -> std::io::Result<Self> {
        Self::builder()
            .name(name)
            .label("version", version)
            .start()
            .await
    }

    /// The bound address (`127.0.0.1:<port>` unless bound elsewhere).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The backend's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.shared.labels
    }

    /// Replaces all rules (their counts start again from zero).
    pub fn set_rules(&self, rules: impl IntoIterator<Item = Rule>) {
        *lock(&self.shared.rules) = rules
            .into_iter()
            .map(|rule| RuleState { rule, matched: 0 })
            .collect();
    }

    /// Adds a rule after the existing ones.
    pub fn push_rule(&self, rule: Rule) {
        lock(&self.shared.rules).push(RuleState { rule, matched: 0 });
    }

    /// Removes every rule: the backend answers `200` again.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// Every request received so far, in order of completion.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Requests whose head arrived (including ones still in progress).
    pub fn count(&self) -> u64 {
        self.shared.arrivals.load(Ordering::SeqCst)
    }

    /// Recorded requests whose path starts with `prefix`.
    pub fn count_path(&self, prefix: &str) -> usize {
        lock(&self.shared.received)
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }

    /// Recorded requests whose whole body hashed to `hash`.
    pub fn count_body(&self, hash: u64) -> usize {
        lock(&self.shared.received)
            .iter()
            .filter(|r| r.body_complete && r.body_hash == hash)
            .count()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The most connections ever open at the same time.
    pub fn max_open_connections(&self) -> u64 {
        self.shared.max_open.load(Ordering::SeqCst)
    }

    /// Connections closed so far (by either side).
    pub fn closed_connections(&self) -> u64 {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections have closed (no timer: bound it yourself).
    pub async fn wait_closed(&self, n: u64) {
        loop {
            let notified = self.shared.closed_notify.notified();
            if self.closed_connections() >= n {
                return;
            }
            notified.await;
        }
    }

    /// What each TLS handshake carried, in order (TLS backends only).
    pub fn tls_connections(&self) -> Vec<TlsConnection> {
        lock(&self.shared.tls_connections).clone()
    }

    /// Forgets the records and counters (rules are kept, with their counts).
    pub fn reset_counts(&self) {
        lock(&self.shared.received).clear();
        self.shared.arrivals.store(0, Ordering::SeqCst);
        self.shared.connections.store(0, Ordering::SeqCst);
    }

    /// Stops accepting, closes connections and waits for the server to end.
    ///
    /// Requests in progress get up to one second (tokio time) to finish;
    /// hanging ones are then cut off.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Per-connection controls the request handler uses to kill its connection.
struct ConnControl {
    kill: Notify,
    reset: AtomicBool,
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
                shared.max_open.fetch_max(open, Ordering::SeqCst);
                let Ok((stream, handle)) = split_handle(stream) else {
                    connection_closed(&shared);
                    continue;
                };
                let ctl = Arc::new(ConnControl { kill: Notify::new(), reset: AtomicBool::new(false) });
                let shared = Arc::clone(&shared);
                let watcher = graceful.watcher();
                conns.spawn(async move {
                    match shared.tls.clone() {
                        None => serve_connection(stream, &shared, &ctl, watcher).await,
                        Some(config) => {
                            let acceptor = tokio_rustls::LazyConfigAcceptor::new(
                                rustls::server::Acceptor::default(),
                                stream,
                            );
                            if let Ok(start) = acceptor.await {
                                let offered: Vec<String> = start
                                    .client_hello()
                                    .alpn()
                                    .into_iter()
                                    .flatten()
                                    .map(|p| String::from_utf8_lossy(p).into_owned())
                                    .collect();
                                if let Ok(tls) = start.into_stream(config).await {
                                    record_tls(&shared, tls.get_ref().1, offered);
                                    serve_connection(tls, &shared, &ctl, watcher).await;
                                }
                            }
                        }
                    }
                    if ctl.reset.load(Ordering::SeqCst) {
                        let _ = handle.set_zero_linger();
                    }
                    drop(handle);
                    connection_closed(&shared);
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
    conns.shutdown().await;
}

fn connection_closed(shared: &Shared) {
    shared.open.fetch_sub(1, Ordering::SeqCst);
    shared.closed.fetch_add(1, Ordering::SeqCst);
    shared.closed_notify.notify_waiters();
}

fn record_tls(shared: &Shared, conn: &rustls::ServerConnection, offered_alpn: Vec<String>) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let record = TlsConnection {
        sni: conn.server_name().map(str::to_owned),
        offered_alpn,
        alpn: conn.alpn_protocol().map(text),
        client_certificate: conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec()),
    };
    lock(&shared.tls_connections).push(record);
}

/// Serves one connection (plain or TLS) until it ends or a rule kills it.
async fn serve_connection<S>(
    stream: S,
    shared: &Arc<Shared>,
    ctl: &Arc<ConnControl>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = Arc::clone(shared);
    let svc_ctl = Arc::clone(ctl);
    let service = hyper::service::service_fn(move |req| {
        handle_request(Arc::clone(&svc_shared), Arc::clone(&svc_ctl), req)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if let Some(n) = shared.h2_max_concurrent_streams {
        builder.http2().max_concurrent_streams(n);
    }
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let conn = watcher.watch(conn.into_owned());
    tokio::select! {
        _ = conn => {}
        _ = ctl.kill.notified() => {}
    }
}

/// Duplicates the socket so the connection task can still reach it (to set
/// `SO_LINGER` 0 for a reset) after hyper owns the stream.
fn split_handle(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let std = stream.into_std()?;
    let dup = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, TcpStream::from_std(dup)?))
}

async fn handle_request(
    shared: Arc<Shared>,
    ctl: Arc<ConnControl>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let index = shared.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut headers = parts.headers;
    if !headers.contains_key(http::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(http::header::HOST, v);
            }
        }
    }
    let action = {
        let mut rules = lock(&shared.rules);
        let mut chosen = None;
        for state in rules.iter_mut() {
            if let Some(prefix) = &state.rule.path_prefix {
                if !path.starts_with(prefix.as_str()) {
                    continue;
                }
            }
            state.matched += 1;
            if chosen.is_none() && state.rule.select.fires(state.matched) {
                chosen = Some(state.rule.action);
            }
        }
        chosen
    };
    let (body_bytes, body_complete) = match body.collect().await {
        Ok(collected) => (collected.to_bytes(), true),
        Err(_) => (Bytes::new(), false),
    };
    let hash = body_hash(&body_bytes);
    let received = Received {
        index,
        method: parts.method,
        path,
        version: parts.version,
        headers,
        body_len: body_bytes.len(),
        body_hash: hash,
        body_complete,
        action,
    };
    lock(&shared.received).push(received.clone());

    let status = match action {
        None => 200,
        Some(Action::Status(s)) => s,
        Some(Action::Delay(d)) => {
            tokio::time::sleep(d).await;
            200
        }
        Some(Action::DelayThenStatus(d, s)) => {
            tokio::time::sleep(d).await;
            s
        }
        Some(Action::Reset) => {
            ctl.reset.store(true, Ordering::SeqCst);
            ctl.kill.notify_one();
            match std::future::pending::<Infallible>().await {}
        }
        Some(Action::CloseBeforeHeaders) => {
            ctl.kill.notify_one();
            match std::future::pending::<Infallible>().await {}
        }
        Some(Action::Hang) => match std::future::pending::<Infallible>().await {},
    };
    Ok(echo(&shared, &received, status))
}

fn echo(shared: &Shared, r: &Received, status: u16) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(shared.name.clone())));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = res.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put("x-backend", shared.name.clone());
    put(
        "x-backend-labels",
        shared
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    put("x-request-index", r.index.to_string());
    put("x-echo-method", r.method.to_string());
    put("x-echo-path", r.path.clone());
    put("x-echo-host", r.host().unwrap_or_default().to_owned());
    put("x-echo-body-len", r.body_len.to_string());
    put("x-echo-body-hash", format!("{:016x}", r.body_hash));
    put("x-echo-version", format!("{:?}", r.version));
    if (300..400).contains(&status) {
        put("location", "/redirected".to_owned());
    }
    res
}
