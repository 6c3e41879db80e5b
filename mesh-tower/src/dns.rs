//! DNS ServiceEntries (`resolution: DNS` and `DNS_ROUND_ROBIN`) resolved by the mesh and
//! published as endpoints (feature `dns`), so endpoints outside the cluster get the same load
//! balancing, outlier detection and per-endpoint statistics as any other.
//!
//! Without it, a request to a DNS ServiceEntry goes to the host name and the client's own
//! resolver picks an address per connection. With it, [`DnsDiscovery`] resolves every name
//! the configuration asks for and publishes the addresses through an
//! [`EndpointPublisher`], as Envoy's `STRICT_DNS` and
//! `LOGICAL_DNS` clusters do:
//!
//! * the names resolved are the ServiceEntry's endpoint `address`es when it lists endpoints
//!   (each resolved address keeps the endpoint's labels, weight and ports), else its hosts
//!   (with the ports' `targetPort`); an address that is already an IP is used as it is;
//! * `DNS`: every address of every name is an endpoint (Envoy `STRICT_DNS`);
//!   `DNS_ROUND_ROBIN`: only the first address of the first name (Envoy `LOGICAL_DNS`
//!   connects to the first address the resolver returns);
//! * each name is resolved again when its answer's TTL runs out (Istio sets
//!   `respect_dns_ttl`), never sooner than [`DnsSettings::min_refresh`] (Envoy's
//!   `dns_min_refresh_rate`, 5 s); a failed lookup keeps the last addresses and is retried
//!   after [`DnsSettings::failure_refresh`]; a name never resolved publishes nothing, so
//!   requests still go to the host name.
//!
//! Time comes from tokio's clock (refreshes are `tokio::time` sleeps), so the schedule can
//! be tested with a paused clock and a [`Resolve`] stand-in.
//!
//! ```no_run
//! # async fn run(layer: mesh_tower::MeshLayer, config: mesh_model::MeshConfig) {
//! use mesh_tower::dns::{DnsDiscovery, DnsSettings, HickoryResolver};
//!
//! let resolver = HickoryResolver::system().expect("/etc/resolv.conf");
//! let dns = DnsDiscovery::start(&layer.handle(), resolver, DnsSettings::default());
//! dns.update(&config); // after every reload
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mesh_model::{MeshConfig, Resolution};
use mesh_routing::endpoints::{Endpoint, Labels};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::handle::{EndpointPublisher, MeshHandle};

/// The addresses a name resolved to and how long they are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    addrs: Vec<IpAddr>,
    ttl: Duration,
}

impl Resolved {
    /// `addrs`, valid for `ttl`.
    pub fn new(addrs: Vec<IpAddr>, ttl: Duration) -> Self {
        Resolved { addrs, ttl }
    }

    /// The addresses, in the resolver's order.
    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// How long they are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Why a lookup failed (the last addresses keep serving).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resolve {name}: {message}")]
pub struct ResolveError {
    name: String,
    message: String,
}

impl ResolveError {
    /// A failure to resolve `name`.
    pub fn new(name: &str, message: impl fmt::Display) -> Self {
        ResolveError {
            name: name.to_owned(),
            message: message.to_string(),
        }
    }
}

/// The future of [`Resolve::resolve`].
pub type ResolveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Resolved, ResolveError>> + Send + 'a>>;

/// Something that resolves host names: [`HickoryResolver`], or a stand-in in tests.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `name` (A and AAAA) and their TTL.
    fn resolve<'a>(&'a self, name: &'a str) -> ResolveFuture<'a>;
}

/// A [`Resolve`] over hickory-resolver (tokio), with the record's TTL.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: hickory_resolver::TokioResolver,
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver").finish_non_exhaustive()
    }
}

impl HickoryResolver {
    /// The system's configuration (`/etc/resolv.conf` on Unix).
    pub fn system() -> Result<Self, ResolveError> {
        let builder = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| ResolveError::new("(system configuration)", e))?;
        let inner = builder
            .build()
            .map_err(|e| ResolveError::new("(system configuration)", e))?;
        Ok(HickoryResolver { inner })
    }

    /// Asks these name servers (UDP, then TCP), nothing else: no search domains, no hosts
    /// file.
    pub fn with_name_servers(servers: &[SocketAddr]) -> Result<Self, ResolveError> {
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
        };
        let name_servers = servers
            .iter()
            .map(|s| {
                let mut udp = ConnectionConfig::udp();
                udp.port = s.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = s.port();
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                ns.connections = vec![udp, tcp];
                ns
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let inner = hickory_resolver::Resolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| ResolveError::new("(resolver configuration)", e))?;
        Ok(HickoryResolver { inner })
    }
}

impl Resolve for HickoryResolver {
    fn resolve<'a>(&'a self, name: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            // A trailing dot: the name is absolute, no search domain is tried.
            let fqdn = if name.ends_with('.') {
                name.to_owned()
            } else {
                format!("{name}.")
            };
            let lookup = self
                .inner
                .lookup_ip(fqdn.as_str())
                .await
                .map_err(|e| ResolveError::new(name, e))?;
            // hickory stamps its answers with the std clock, so the TTL left is read on it.
            #[allow(clippy::disallowed_methods)]
            let ttl = lookup
                .valid_until()
                .saturating_duration_since(std::time::Instant::now());
            Ok(Resolved {
                addrs: lookup.iter().collect(),
                ttl,
            })
        })
    }
}

/// When names are resolved again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSettings {
    /// Never sooner than this after a lookup, whatever the TTL (default 5 s, Envoy's
    /// `dns_min_refresh_rate`).
    pub min_refresh: Duration,
    /// After a failed lookup (default 60 s, Istio's `dnsRefreshRate`, which Envoy uses when no
    /// failure rate is set).
    pub failure_refresh: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            min_refresh: Duration::from_secs(5),
            failure_refresh: Duration::from_secs(60),
        }
    }
}

/// One name to resolve for a host, and what its addresses become.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameSpec {
    name: String,
    labels: Labels,
    weight: u32,
    ports: Vec<(u16, u16)>,
}

/// A DNS ServiceEntry host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    round_robin: bool,
    names: Vec<NameSpec>,
}

/// The hosts of `config` to resolve.
fn targets(config: &MeshConfig) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for se in config.service_entries() {
        let round_robin = match se.resolution() {
            Resolution::Dns => false,
            Resolution::DnsRoundRobin => true,
            Resolution::None | Resolution::Static => continue,
        };
        for host in se.hosts() {
            if host.starts_with('*') && se.endpoints().is_empty() {
                continue;
            }
            let names = if se.endpoints().is_empty() {
                let ports = se
                    .ports()
                    .iter()
                    .map(|p| (p.number(), p.target_port().unwrap_or(p.number())))
                    .collect();
                vec![NameSpec {
                    name: host.to_ascii_lowercase(),
                    labels: Labels::new(),
                    weight: 1,
                    ports,
                }]
            } else {
                se.endpoints()
                    .iter()
                    .map(|ep| NameSpec {
                        name: ep.address().to_ascii_lowercase(),
                        labels: ep.labels().clone(),
                        weight: ep.weight(),
                        ports: se
                            .ports()
                            .iter()
                            .map(|p| (p.number(), ep.port_for(p)))
                            .collect(),
                    })
                    .collect()
            };
            let host = host.to_ascii_lowercase();
            // The first ServiceEntry for a host wins, as in the route table.
            if !out.iter().any(|t| t.host == host) {
                out.push(Target {
                    host,
                    round_robin,
                    names,
                });
            }
        }
    }
    out
}

/// Resolves the DNS ServiceEntries of a configuration and publishes their addresses; see the
/// [module docs](self). The task stops when this is dropped (what it published stays).
#[derive(Debug)]
pub struct DnsDiscovery {
    targets: watch::Sender<Arc<Vec<Target>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsDiscovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsDiscovery {
    /// Starts the resolving task on the current tokio runtime, publishing into a new endpoint
    /// source of `handle`. Nothing is resolved until [`update`](Self::update).
    pub fn start(handle: &MeshHandle, resolver: impl Resolve, settings: DnsSettings) -> Self {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        let task = tokio::spawn(run(
            handle.endpoint_source(),
            Arc::new(resolver),
            settings,
            rx,
        ));
        DnsDiscovery { targets: tx, task }
    }

    /// The configuration now in force: its `DNS` and `DNS_ROUND_ROBIN` ServiceEntries are
    /// resolved from now on (new names at once), hosts no longer listed are removed.
    pub fn update(&self, config: &MeshConfig) {
        let new = targets(config);
        self.targets.send_if_modified(|old| {
            if **old == new {
                false
            } else {
                *old = Arc::new(new);
                true
            }
        });
    }
}

#[derive(Debug)]
struct NameState {
    addrs: Option<Vec<IpAddr>>,
    next: Instant,
}

async fn run(
    publisher: EndpointPublisher,
    resolver: Arc<dyn Resolve>,
    settings: DnsSettings,
    mut rx: watch::Receiver<Arc<Vec<Target>>>,
) {
    let mut names: HashMap<String, NameState> = HashMap::new();
    let mut published: HashMap<String, Vec<Endpoint>> = HashMap::new();
    let mut targets: Arc<Vec<Target>> = Arc::new(Vec::new());
    loop {
        // Resolve what is due (all at once).
        let now = crate::time::now();
        let due: Vec<String> = names
            .iter()
            .filter(|(_, s)| s.next <= now)
            .map(|(n, _)| n.clone())
            .collect();
        let lookups = due.iter().map(|name| {
            let resolver = Arc::clone(&resolver);
            async move {
                match name.parse::<IpAddr>() {
                    Ok(ip) => (name, Ok(Resolved::new(vec![ip], Duration::MAX))),
                    Err(_) => (name, resolver.resolve(name).await),
                }
            }
        });
        for (name, result) in futures_join_all(lookups).await {
            let now = crate::time::now();
            let Some(state) = names.get_mut(name) else {
                continue;
            };
            match result {
                Ok(r) => {
                    tracing::debug!(name = %name, addresses = ?r.addrs, ttl = ?r.ttl, "resolved");
                    state.next = now
                        + r.ttl
                            .max(settings.min_refresh)
                            .min(Duration::from_secs(86_400 * 365));
                    state.addrs = Some(r.addrs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DNS lookup failed; the last addresses keep serving");
                    state.next = now + settings.failure_refresh;
                }
            }
        }
        publish(&publisher, &targets, &names, &mut published);

        let next = names.values().map(|s| s.next).min();
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                targets = Arc::clone(&rx.borrow_and_update());
                let wanted: std::collections::HashSet<&str> = targets
                    .iter()
                    .flat_map(|t| t.names.iter().map(|n| n.name.as_str()))
                    .collect();
                names.retain(|n, _| wanted.contains(n.as_str()));
                let now = crate::time::now();
                for n in wanted {
                    names.entry(n.to_owned()).or_insert(NameState { addrs: None, next: now });
                }
            }
            () = sleep_until(next) => {}
        }
    }
}

/// Publishes every target host whose endpoints changed; removes hosts no longer targeted.
fn publish(
    publisher: &EndpointPublisher,
    targets: &[Target],
    names: &HashMap<String, NameState>,
    published: &mut HashMap<String, Vec<Endpoint>>,
) {
    published.retain(|host, _| {
        let keep = targets.iter().any(|t| t.host == *host);
        if !keep {
            publisher.remove(host);
        }
        keep
    });
    for t in targets {
        let mut eps = Vec::new();
        let mut known = false;
        for spec in &t.names {
            let Some(addrs) = names.get(&spec.name).and_then(|s| s.addrs.as_ref()) else {
                continue;
            };
            known = true;
            let take = if t.round_robin { 1 } else { addrs.len() };
            for ip in addrs.iter().take(take) {
                eps.push(
                    Endpoint::new(&ip.to_string())
                        .with_labels(spec.labels.clone())
                        .with_weight(spec.weight)
                        .with_port_mappings(&spec.ports),
                );
            }
            if t.round_robin && !eps.is_empty() {
                break;
            }
        }
        if !known {
            continue;
        }
        if published.get(&t.host) != Some(&eps) {
            tracing::info!(host = %t.host, endpoints = eps.len(), "DNS endpoints published");
            publisher.publish(&t.host, eps.clone());
            published.insert(t.host.clone(), eps);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs the futures concurrently on this task; results in order.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use bytes::Bytes;
    use http_body_util::Full;
    use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::body::ReplayBody;
    use crate::{BoxError, MeshLayer};

    /// Answers from a table the test changes; counts lookups.
    #[derive(Clone, Default)]
    struct Table {
        answers: Arc<Mutex<HashMap<String, Result<Resolved, ResolveError>>>>,
        lookups: Arc<AtomicUsize>,
    }

    impl Table {
        fn set(&self, name: &str, ips: &[&str], ttl_secs: u64) {
            let r = Resolved::new(
                ips.iter().map(|i| i.parse().unwrap()).collect(),
                Duration::from_secs(ttl_secs),
            );
            self.answers.lock().unwrap().insert(name.to_owned(), Ok(r));
        }
        fn fail(&self, name: &str) {
            self.answers
                .lock()
                .unwrap()
                .insert(name.to_owned(), Err(ResolveError::new(name, "SERVFAIL")));
        }
    }

    impl Resolve for Table {
        fn resolve<'a>(&'a self, name: &'a str) -> ResolveFuture<'a> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let r = self.answers.lock().unwrap().get(name).cloned();
            Box::pin(async move { r.unwrap_or_else(|| Err(ResolveError::new(name, "NXDOMAIN"))) })
        }
    }

    fn config(resolution: &str, endpoints: &str) -> MeshConfig {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext}}\nspec:\n  hosts: [api.example.test]\n  location: MESH_EXTERNAL\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: {resolution}\n{endpoints}"
        );
        mesh_model::load_str("se.yaml", &yaml)
            .into_result()
            .unwrap()
    }

    /// A mesh whose client records the authority of every attempt.
    fn mesh(
        cfg: MeshConfig,
    ) -> (
        impl Service<
                http::Request<Full<Bytes>>,
                Response = http::Response<crate::MeshBody<Full<Bytes>>>,
                Error = crate::MeshError,
            > + Clone,
        MeshHandle,
        Arc<Mutex<Vec<String>>>,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let client = service_fn(move |req: http::Request<ReplayBody<Full<Bytes>>>| {
            s.lock()
                .unwrap()
                .push(req.uri().authority().unwrap().to_string());
            async move { Ok::<_, BoxError>(http::Response::new(Full::new(Bytes::from_static(b"ok")))) }
        });
        let layer = MeshLayer::builder().config(cfg).seed(3).build().unwrap();
        let handle = layer.handle();
        (
            ServiceBuilder::new().layer(layer).service(client),
            handle,
            seen,
        )
    }

    async fn call<S>(svc: &mut S, n: usize)
    where
        S: Service<http::Request<Full<Bytes>>, Error = crate::MeshError>,
    {
        for _ in 0..n {
            let req = http::Request::get("http://api.example.test/")
                .body(Full::new(Bytes::new()))
                .unwrap();
            svc.ready().await.unwrap().call(req).await.unwrap();
        }
    }

    fn distinct(seen: &Mutex<Vec<String>>) -> Vec<String> {
        let mut v = seen.lock().unwrap().clone();
        v.sort();
        v.dedup();
        seen.lock().unwrap().clear();
        v
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn host_addresses_become_endpoints_and_refresh_on_the_ttl() {
        let cfg = config("DNS", "");
        let (mut svc, handle, seen) = mesh(cfg.clone());
        // Before any lookup the request goes to the name.
        call(&mut svc, 1).await;
        assert_eq!(distinct(&seen), ["api.example.test:80"]);

        let table = Table::default();
        table.set("api.example.test", &["10.0.0.1", "10.0.0.2"], 30);
        let dns = DnsDiscovery::start(&handle, table.clone(), DnsSettings::default());
        dns.update(&cfg);
        settle().await;
        call(&mut svc, 20).await;
        assert_eq!(distinct(&seen), ["10.0.0.1:80", "10.0.0.2:80"]);
        assert_eq!(table.lookups.load(Ordering::SeqCst), 1);

        // The answer changes; nothing moves until the TTL runs out.
        table.set("api.example.test", &["10.0.0.3"], 30);
        tokio::time::advance(Duration::from_secs(29)).await;
        settle().await;
        assert_eq!(table.lookups.load(Ordering::SeqCst), 1);
        call(&mut svc, 4).await;
        assert_eq!(distinct(&seen), ["10.0.0.1:80", "10.0.0.2:80"]);
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert_eq!(table.lookups.load(Ordering::SeqCst), 2);
        call(&mut svc, 4).await;
        assert_eq!(distinct(&seen), ["10.0.0.3:80"]);

        // A failure keeps the last addresses; a short TTL is raised to the minimum (5 s).
        table.fail("api.example.test");
        tokio::time::advance(Duration::from_secs(31)).await;
        settle().await;
        assert_eq!(table.lookups.load(Ordering::SeqCst), 3);
        call(&mut svc, 2).await;
        assert_eq!(distinct(&seen), ["10.0.0.3:80"]);
        table.set("api.example.test", &["10.0.0.4"], 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(table.lookups.load(Ordering::SeqCst), 4);
        tokio::time::advance(Duration::from_secs(4)).await;
        settle().await;
        assert_eq!(table.lookups.load(Ordering::SeqCst), 4, "not before 5 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(table.lookups.load(Ordering::SeqCst), 5);
        call(&mut svc, 2).await;
        assert_eq!(distinct(&seen), ["10.0.0.4:80"]);

        // Gone from the configuration: the host is removed, requests go to the name again.
        dns.update(&MeshConfig::default());
        settle().await;
        call(&mut svc, 1).await;
        assert_eq!(distinct(&seen), ["api.example.test:80"]);
    }

    #[tokio::test(start_paused = true)]
    async fn endpoint_names_keep_their_labels_weights_and_ports_and_round_robin_takes_one() {
        let eps = "  endpoints:\n  - {address: a.example.test, labels: {version: v1}, ports: {http: 8080}}\n  - {address: 10.9.9.9}\n";
        let cfg = config("DNS", eps);
        let (mut svc, handle, seen) = mesh(cfg.clone());
        let table = Table::default();
        table.set("a.example.test", &["10.0.0.1", "10.0.0.2"], 300);
        let dns = DnsDiscovery::start(&handle, table.clone(), DnsSettings::default());
        dns.update(&cfg);
        settle().await;
        call(&mut svc, 30).await;
        assert_eq!(
            distinct(&seen),
            ["10.0.0.1:8080", "10.0.0.2:8080", "10.9.9.9:80"]
        );
        assert_eq!(
            table.lookups.load(Ordering::SeqCst),
            1,
            "IP addresses are not looked up"
        );

        // DNS_ROUND_ROBIN takes at most one endpoint (istiod's validation), and only the first
        // address of its name.
        let one = "  endpoints:\n  - {address: a.example.test, labels: {version: v1}, ports: {http: 8080}}\n";
        let rr = config("DNS_ROUND_ROBIN", one);
        dns.update(&rr);
        settle().await;
        call(&mut svc, 10).await;
        assert_eq!(distinct(&seen), ["10.0.0.1:8080"]);
    }

    /// A DNS server on 127.0.0.1 answering A queries from a table, with a TTL.
    async fn dns_server(
        table: Arc<Mutex<HashMap<String, Vec<std::net::Ipv4Addr>>>>,
        ttl: u32,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        use hickory_resolver::proto::op::{Message, ResponseCode};
        use hickory_resolver::proto::rr::rdata::A;
        use hickory_resolver::proto::rr::{RData, Record, RecordType};
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            // Bounded: a test asks a handful of questions.
            for _ in 0..10_000 {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut answer = Message::response(query.id, query.op_code);
                answer.metadata.recursion_available = true;
                answer.metadata.recursion_desired = query.recursion_desired;
                for q in &query.queries {
                    answer.add_query(q.clone());
                    let name = q.name().to_string().trim_end_matches('.').to_owned();
                    let ips = table.lock().unwrap().get(&name).cloned();
                    match (ips, q.query_type()) {
                        (Some(ips), RecordType::A) => {
                            for ip in ips {
                                answer.add_answer(Record::from_rdata(
                                    q.name().clone(),
                                    ttl,
                                    RData::A(A(ip)),
                                ));
                            }
                        }
                        (Some(_), _) => {}
                        (None, _) => answer.metadata.response_code = ResponseCode::NXDomain,
                    }
                }
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        (addr, task)
    }

    /// hickory-resolver against a DNS server on loopback (real sockets, real time, bounded).
    #[tokio::test]
    async fn a_loopback_dns_server_through_hickory() {
        let table = Arc::new(Mutex::new(HashMap::new()));
        table.lock().unwrap().insert(
            "api.example.test".to_owned(),
            vec!["127.0.0.31".parse().unwrap(), "127.0.0.32".parse().unwrap()],
        );
        let (addr, server) = dns_server(Arc::clone(&table), 1).await;
        let resolver = HickoryResolver::with_name_servers(&[addr]).unwrap();
        let r = resolver.resolve("api.example.test").await.unwrap();
        assert_eq!(r.addrs().len(), 2);
        assert!(r.ttl() <= Duration::from_secs(1));
        assert!(resolver.resolve("missing.example.test").await.is_err());

        let cfg = config("DNS", "");
        let (mut svc, handle, seen) = mesh(cfg.clone());
        let settings = DnsSettings {
            min_refresh: Duration::from_millis(200),
            failure_refresh: Duration::from_millis(200),
        };
        let dns = DnsDiscovery::start(&handle, resolver, settings);
        dns.update(&cfg);
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                call(&mut svc, 4).await;
                if distinct(&seen) == ["127.0.0.31:80", "127.0.0.32:80"] {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the first answer is published");
        table.lock().unwrap().insert(
            "api.example.test".to_owned(),
            vec!["127.0.0.33".parse().unwrap()],
        );
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                call(&mut svc, 2).await;
                if distinct(&seen) == ["127.0.0.33:80"] {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the new answer replaces the old one after the TTL"
        );
        server.abort();
    }
}
