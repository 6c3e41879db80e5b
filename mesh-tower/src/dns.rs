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
mod tests;
