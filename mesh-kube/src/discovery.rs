//! [`Discovery`]: the watches, the task that applies what they say to a mesh, and its
//! status.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use mesh_model::{Diagnostic, MeshConfig};
use mesh_tower::dns::DnsDiscovery;
use mesh_tower::{EndpointPublisher, MeshHandle};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Applied, ConfigFilter, ConfigState, IstioKind, GROUP, VERSION};
use crate::objects::{service_fqdn, ObjKey, ServiceInfo, SliceInfo};
use crate::scope::{applicable, EgressHosts, InvalidEgressHost, Scope, SidecarObject};
use crate::state::{EndpointState, ServiceFilter};

/// Something the discovery refused or could not do. Each is also a `tracing` event; none
/// stops the discovery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// An Istio object istiod would reject: it is skipped (an earlier valid version of it,
    /// if any, keeps applying); the other objects apply.
    Refused {
        /// Its kind.
        kind: IstioKind,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What `mesh-model` says about it, with the source name
        /// `kubernetes:<kind>/<namespace>/<name>`.
        diagnostics: Vec<Diagnostic>,
        /// Whether an earlier valid version keeps applying.
        kept_previous: bool,
    },
    /// The objects are valid one by one but the configuration does not build; the previous
    /// configuration keeps serving.
    Reload {
        /// [`mesh_tower::BuildError`]'s message.
        message: String,
    },
    /// A watch failed (it is retried with backoff; a `410 Gone` relists).
    Watch {
        /// The resource (`services`, `endpointslices`, `pods`, `virtualservices`, ...).
        resource: &'static str,
        /// The namespace watched, `None` for every namespace.
        namespace: Option<String>,
        /// The watcher's error.
        message: String,
    },
    /// An egress host of the Sidecar that scopes the discovery was dropped.
    Sidecar(InvalidEgressHost),
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::Refused {
                kind,
                namespace,
                name,
                diagnostics,
                kept_previous,
            } => {
                write!(f, "{kind} {namespace}/{name} refused")?;
                if *kept_previous {
                    f.write_str(" (its previous version keeps applying)")?;
                }
                for d in diagnostics.iter().filter(|d| d.is_error()) {
                    write!(f, "; {d}")?;
                }
                Ok(())
            }
            DiscoveryError::Reload { message } => write!(
                f,
                "the configuration from the cluster does not build; the previous one keeps serving: {message}"
            ),
            DiscoveryError::Watch {
                resource,
                namespace,
                message,
            } => match namespace {
                Some(ns) => write!(f, "watch of {resource} in {ns} failed: {message}"),
                None => write!(f, "watch of {resource} failed: {message}"),
            },
            DiscoveryError::Sidecar(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// Why [`DiscoveryBuilder::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The Sidecar resources could not be listed (for [`Scope::Sidecar`]).
    #[error("cannot list Sidecar resources: {0}")]
    Sidecars(#[source] kube::Error),
}

/// A snapshot of what the discovery holds and has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Every watch has listed once and the first configuration and endpoints are applied.
    pub ready: bool,
    /// Configurations applied to the mesh (reloads that succeeded).
    pub config_generation: u64,
    /// Reloads the mesh refused (the previous configuration kept serving).
    pub reload_failures: u64,
    /// Istio objects refused (counted per version refused).
    pub objects_refused: u64,
    /// Host publications made (one per Service whose endpoints changed).
    pub endpoint_publications: u64,
    /// Relists after the first list (a `410 Gone`, a failed list).
    pub relists: u64,
    /// Lists completed (every watch lists once at start, then once per relist).
    pub lists_completed: u64,
    /// Watch errors seen (each retried).
    pub watch_errors: u64,
    /// Services held.
    pub services: usize,
    /// EndpointSlices held.
    pub endpoint_slices: usize,
    /// Pods held (labels only).
    pub pods: usize,
    /// Istio objects that apply.
    pub config_objects: usize,
}

/// Builds a [`Discovery`]; from [`Discovery::builder`].
pub struct DiscoveryBuilder {
    client: kube::Client,
    mesh: MeshHandle,
    scope: Scope,
    domain: String,
    debounce: Duration,
    page_size: u32,
    on_error: Option<Arc<dyn Fn(&DiscoveryError) + Send + Sync>>,
    dns: Option<DnsDiscovery>,
}

impl fmt::Debug for DiscoveryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryBuilder")
            .field("scope", &self.scope)
            .field("domain", &self.domain)
            .field("debounce", &self.debounce)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl DiscoveryBuilder {
    /// What to watch and hold ([`Scope::AllNamespaces`] by default).
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The cluster's DNS domain (`cluster.local` by default): Services are
    /// `<name>.<namespace>.svc.<domain>`.
    #[must_use]
    pub fn domain_suffix(mut self, domain: &str) -> Self {
        self.domain = domain.to_ascii_lowercase();
        self
    }

    /// How long configuration changes are collected before one reload (100 ms by default):
    /// the first change arms the timer, every change until it fires joins the same reload.
    /// Endpoint changes are never delayed.
    #[must_use]
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// Objects per list page (500 by default, as kube-runtime and client-go).
    #[must_use]
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Resolves the `DNS` and `DNS_ROUND_ROBIN` ServiceEntries of every configuration applied
    /// with `dns` (see [`mesh_tower::dns`]), so their addresses are balanced and ejected like
    /// pods. Without it, requests to them go to the host name.
    #[must_use]
    pub fn dns(mut self, dns: DnsDiscovery) -> Self {
        self.dns = Some(dns);
        self
    }

    /// Called for every [`DiscoveryError`] (after its `tracing` event), on the discovery's
    /// task: keep it short.
    #[must_use]
    pub fn on_error(mut self, f: impl Fn(&DiscoveryError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// Starts the watches on a tokio task (for [`Scope::Sidecar`], after listing the Sidecar
    /// resources once). Must be called inside a tokio runtime. The task runs until the
    /// returned [`Discovery`] is dropped.
    pub async fn start(self) -> Result<Discovery, StartError> {
        let ResolvedScope {
            namespaces,
            service_filter,
            config_filter,
            errors,
        } = resolve_scope(&self.client, &self.scope, &self.domain).await?;
        let (status_tx, status_rx) = watch::channel(Status::default());
        let (config_tx, config_rx) = watch::channel(None);
        let mut streams = SelectAll::new();
        let mut infos = Vec::new();
        let ns_list: Vec<Option<String>> = match namespaces {
            None => vec![None],
            Some(set) => set.into_iter().map(Some).collect(),
        };
        let base = watcher::Config::default().page_size(self.page_size);
        for ns in &ns_list {
            let mut add = |resource: Resource, s: BoxStream<'static, WatchItem>| {
                let id = infos.len();
                infos.push(StreamInfo {
                    resource,
                    namespace: ns.clone(),
                    synced: false,
                    lists: 0,
                    seen: None,
                });
                streams.push(s.map(move |item| (id, item)).boxed());
            };
            let client = &self.client;
            add(
                Resource::Service,
                watch(api::<Service>(client, ns.as_deref()), base.clone(), |o| {
                    Obj::Service(Box::new(o))
                }),
            );
            add(
                Resource::Slice,
                watch(
                    api::<EndpointSlice>(client, ns.as_deref()),
                    base.clone(),
                    |o| Obj::Slice(Box::new(o)),
                ),
            );
            add(
                Resource::Pod,
                watch(
                    api::<PartialObjectMeta<Pod>>(client, ns.as_deref()),
                    base.clone().fields("status.phase!=Failed"),
                    |o| Obj::Pod(Box::new(o)),
                ),
            );
            for kind in IstioKind::ALL {
                let ar = istio_resource(kind);
                let api = match ns {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                    None => Api::all_with(client.clone(), &ar),
                };
                add(
                    Resource::Istio(kind),
                    watch(api, base.clone(), move |o| Obj::Istio(kind, Box::new(o))),
                );
            }
        }
        let mut driver = Driver {
            mesh: self.mesh.clone(),
            publisher: self.mesh.endpoint_source(),
            endpoints: EndpointState::new(&self.domain, service_filter),
            config: ConfigState::new(config_filter),
            infos,
            status: Status::default(),
            status_tx,
            config_tx,
            on_error: self.on_error,
            debounce: self.debounce,
            config_dirty: false,
            deadline: None,
            events: 0,
            dns: self.dns,
        };
        for e in errors {
            driver.report(e);
        }
        let task = tokio::spawn(driver.run(streams));
        Ok(Discovery {
            status: status_rx,
            config: config_rx,
            task,
        })
    }
}

/// Watches a cluster and applies it to a mesh: Istio configuration through
/// [`MeshHandle::reload`], endpoints through an [`EndpointPublisher`]. See the
/// [crate docs](crate).
///
/// Dropping it stops the watches; what was applied stays applied.
#[derive(Debug)]
pub struct Discovery {
    status: watch::Receiver<Status>,
    config: watch::Receiver<Option<Arc<MeshConfig>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    /// A builder for a discovery that reads the cluster `client` talks to and applies it to
    /// `mesh`.
    pub fn builder(client: kube::Client, mesh: MeshHandle) -> DiscoveryBuilder {
        DiscoveryBuilder {
            client,
            mesh,
            scope: Scope::AllNamespaces,
            domain: "cluster.local".to_owned(),
            debounce: Duration::from_millis(100),
            page_size: 500,
            on_error: None,
            dns: None,
        }
    }

    /// Waits until every watch has listed once and the mesh has the first configuration and
    /// endpoints. Call it before the first request. Returns at once if already ready; never
    /// returns if the API server cannot be reached (wrap it in a timeout).
    pub async fn wait_until_ready(&self) {
        let mut rx = self.status.clone();
        // The sender lives in the task; if the task ended, there is nothing to wait for.
        let _ = rx.wait_for(|s| s.ready).await;
    }

    /// What the discovery holds and has done, now.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver of [`Status`] changes (for `wait_for`).
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The configuration last applied to the mesh (`None` before the first).
    pub fn config(&self) -> Option<Arc<MeshConfig>> {
        self.config.borrow().clone()
    }
}

/// What a [`Scope`] comes to: the namespaces to read (`None`: all), the filters of Services
/// and Istio objects (`None`: keep everything), and the egress hosts a Sidecar dropped.
pub(crate) struct ResolvedScope {
    pub(crate) namespaces: Option<BTreeSet<String>>,
    pub(crate) service_filter: Option<ServiceFilter>,
    pub(crate) config_filter: Option<ConfigFilter>,
    pub(crate) errors: Vec<DiscoveryError>,
}

/// Resolves `scope` (for [`Scope::Sidecar`], by listing the Sidecar resources once).
pub(crate) async fn resolve_scope(
    client: &kube::Client,
    scope: &Scope,
    domain: &str,
) -> Result<ResolvedScope, StartError> {
    let mut errors = Vec::new();
    let (namespaces, service_filter, config_filter) = match scope {
        Scope::AllNamespaces => (None, None, None),
        Scope::Namespaces(list) => (Some(list.iter().cloned().collect()), None, None),
        Scope::Sidecar(workload) => {
            let ar = sidecar_resource();
            let mut sidecars = Vec::new();
            let mut seen = BTreeSet::new();
            for ns in [workload.namespace(), workload.root_namespace()] {
                if !seen.insert(ns.to_owned()) {
                    continue;
                }
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
                let list = api
                    .list(&ListParams::default())
                    .await
                    .map_err(StartError::Sidecars)?;
                for o in list.items {
                    let created = o
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .and_then(|t| serde_json::to_value(t).ok())
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    sidecars.push(SidecarObject::from_json(
                        o.metadata.namespace.as_deref().unwrap_or(ns),
                        o.metadata.name.as_deref().unwrap_or(""),
                        &created,
                        o.data.get("spec").unwrap_or(&serde_json::Value::Null),
                    ));
                }
            }
            let egress = match applicable(&sidecars, workload) {
                Some(sc) => {
                    tracing::info!(sidecar = %format!("{}/{}", sc.namespace, sc.name), "scope from Sidecar");
                    let (egress, invalid) =
                        EgressHosts::parse(sc.hosts.iter().map(String::as_str), &sc.namespace);
                    errors.extend(invalid.into_iter().map(DiscoveryError::Sidecar));
                    egress
                }
                None => EgressHosts::everything(),
            };
            let namespaces = egress.namespaces().map(|mut set| {
                set.insert(workload.namespace().to_owned());
                set.insert(workload.root_namespace().to_owned());
                set
            });
            let egress = Arc::new(egress);
            let domain = domain.to_owned();
            let e = Arc::clone(&egress);
            let service_filter: ServiceFilter = Arc::new(move |ns: &str, name: &str| {
                e.allows(ns, &service_fqdn(name, ns, &domain))
            });
            let e = egress;
            let config_filter: ConfigFilter = Arc::new(
                move |kind: IstioKind, ns: &str, hosts: &[String]| match kind {
                    IstioKind::DestinationRule => true,
                    IstioKind::VirtualService | IstioKind::ServiceEntry => hosts
                        .iter()
                        .any(|h| e.allows(ns, &mesh_model::resolve_short_name(h, ns))),
                },
            );
            (namespaces, Some(service_filter), Some(config_filter))
        }
    };
    Ok(ResolvedScope {
        namespaces,
        service_filter,
        config_filter,
        errors,
    })
}

pub(crate) fn istio_resource(kind: IstioKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, kind.as_str()),
        kind.plural(),
    )
}

fn sidecar_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "Sidecar"),
        "sidecars",
    )
}

pub(crate) fn api<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What a watch yields, typed per resource.
enum Obj {
    Service(Box<Service>),
    Slice(Box<EndpointSlice>),
    Pod(Box<PartialObjectMeta<Pod>>),
    Istio(IstioKind, Box<DynamicObject>),
}

enum Ev {
    Init,
    InitApply(Obj),
    InitDone,
    Apply(Obj),
    Delete(Obj),
}

type WatchItem = Result<Ev, watcher::Error>;

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: impl Fn(K) -> Obj + Send + Sync + 'static,
) -> BoxStream<'static, WatchItem>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + 'static,
{
    watcher::watcher(api, config)
        .default_backoff()
        .map(move |item| {
            item.map(|ev| match ev {
                Event::Init => Ev::Init,
                Event::InitApply(o) => Ev::InitApply(wrap(o)),
                Event::InitDone => Ev::InitDone,
                Event::Apply(o) => Ev::Apply(wrap(o)),
                Event::Delete(o) => Ev::Delete(wrap(o)),
            })
        })
        .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Service,
    Slice,
    Pod,
    Istio(IstioKind),
}

impl Resource {
    fn plural(self) -> &'static str {
        match self {
            Resource::Service => "services",
            Resource::Slice => "endpointslices",
            Resource::Pod => "pods",
            Resource::Istio(k) => k.plural(),
        }
    }
}

struct StreamInfo {
    resource: Resource,
    namespace: Option<String>,
    /// Listed at least once.
    synced: bool,
    /// Lists started.
    lists: u64,
    /// During a (re)list: the keys listed so far.
    seen: Option<HashSet<ObjKey>>,
}

/// The task: applies watch events to the endpoint and configuration state, publishes
/// endpoints at once and reloads the configuration after the debounce.
struct Driver {
    mesh: MeshHandle,
    publisher: EndpointPublisher,
    endpoints: EndpointState,
    config: ConfigState,
    infos: Vec<StreamInfo>,
    status: Status,
    status_tx: watch::Sender<Status>,
    config_tx: watch::Sender<Option<Arc<MeshConfig>>>,
    on_error: Option<Arc<dyn Fn(&DiscoveryError) + Send + Sync>>,
    debounce: Duration,
    config_dirty: bool,
    deadline: Option<Instant>,
    events: u64,
    dns: Option<DnsDiscovery>,
}

/// Events handled before publishing when many are queued (bounds the latency of the first).
const BATCH: usize = 256;

impl Driver {
    async fn run(mut self, mut streams: SelectAll<BoxStream<'static, (usize, WatchItem)>>) {
        loop {
            let deadline = self.deadline;
            tokio::select! {
                item = streams.next() => {
                    let Some((id, item)) = item else { return };
                    self.handle(id, item);
                    // Take what is already queued, then publish once.
                    for _ in 1..BATCH {
                        match streams.next().now_or_never() {
                            Some(Some((id, item))) => self.handle(id, item),
                            _ => break,
                        }
                    }
                    self.after_batch();
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.deadline = None;
                    self.reload();
                    self.publish_status();
                }
            }
        }
    }

    fn report(&mut self, e: DiscoveryError) {
        match &e {
            DiscoveryError::Refused { .. } => tracing::warn!(error = %e, "Istio object refused"),
            DiscoveryError::Reload { .. } => tracing::warn!(error = %e, "reload refused"),
            DiscoveryError::Watch { .. } => tracing::warn!(error = %e, "watch error"),
            DiscoveryError::Sidecar(_) => tracing::warn!(error = %e, "Sidecar egress host dropped"),
        }
        if let Some(f) = &self.on_error {
            f(&e);
        }
    }

    fn handle(&mut self, id: usize, item: WatchItem) {
        self.events += 1;
        let ev = match item {
            Ok(ev) => ev,
            Err(e) => {
                self.status.watch_errors += 1;
                let info = &self.infos[id];
                let err = DiscoveryError::Watch {
                    resource: info.resource.plural(),
                    namespace: info.namespace.clone(),
                    message: e.to_string(),
                };
                self.report(err);
                return;
            }
        };
        match ev {
            Ev::Init => {
                let info = &mut self.infos[id];
                info.lists += 1;
                if info.lists > 1 {
                    self.status.relists += 1;
                    tracing::info!(resource = info.resource.plural(), namespace = ?info.namespace, "relisting");
                }
                info.seen = Some(HashSet::new());
            }
            Ev::InitApply(obj) => {
                if let Some(key) = self.apply(obj) {
                    if let Some(seen) = &mut self.infos[id].seen {
                        seen.insert(key);
                    }
                }
            }
            Ev::InitDone => self.init_done(id),
            Ev::Apply(obj) => {
                self.apply(obj);
            }
            Ev::Delete(obj) => self.delete(obj),
        }
    }

    /// Applies an added or modified object; returns its key.
    fn apply(&mut self, obj: Obj) -> Option<ObjKey> {
        match obj {
            Obj::Service(svc) => {
                let key = self.key(&svc.metadata)?;
                let info = ServiceInfo::from_service(&svc, self.endpoints.domain()).map(|(_, i)| i);
                self.endpoints.apply_service(key.clone(), info);
                Some(key)
            }
            Obj::Slice(slice) => {
                let key = self.key(&slice.metadata)?;
                let info = SliceInfo::from_slice(&slice, self.endpoints.interner()).map(|(_, i)| i);
                self.endpoints.apply_slice(key.clone(), info);
                Some(key)
            }
            Obj::Pod(pod) => {
                let key = self.key(&pod.metadata)?;
                let labels = self
                    .endpoints
                    .intern_labels(pod.metadata.labels.clone().unwrap_or_default());
                self.endpoints.apply_pod(key.clone(), Some(labels));
                Some(key)
            }
            Obj::Istio(kind, o) => {
                let (key, applied) = self.config.apply(kind, &o);
                match applied {
                    Applied::Changed => {
                        tracing::info!(kind = %kind, object = %key, "Istio object accepted");
                        self.mark_config_dirty();
                    }
                    Applied::Unchanged => {}
                    Applied::OutOfScope { removed } => {
                        tracing::debug!(kind = %kind, object = %key, "out of the Sidecar's scope");
                        if removed {
                            self.mark_config_dirty();
                        }
                    }
                    Applied::Refused {
                        diagnostics,
                        kept_previous,
                    } => {
                        self.status.objects_refused += 1;
                        self.report(DiscoveryError::Refused {
                            kind,
                            namespace: key.namespace.to_string(),
                            name: key.name.to_string(),
                            diagnostics,
                            kept_previous,
                        });
                    }
                }
                Some(key)
            }
        }
    }

    /// An object's key, its namespace shared (interned).
    fn key(
        &mut self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Option<ObjKey> {
        Some(self.endpoints.key(
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref()?,
        ))
    }

    fn delete(&mut self, obj: Obj) {
        match obj {
            Obj::Service(o) => {
                if let Some(key) = key_of(&o.metadata) {
                    self.endpoints.apply_service(key, None);
                }
            }
            Obj::Slice(o) => {
                if let Some(key) = key_of(&o.metadata) {
                    self.endpoints.apply_slice(key, None);
                }
            }
            Obj::Pod(o) => {
                if let Some(key) = key_of(&o.metadata) {
                    self.endpoints.apply_pod(key, None);
                }
            }
            Obj::Istio(kind, o) => {
                if let Some(key) = key_of(&o.metadata) {
                    if self.config.delete(kind, &key) {
                        tracing::info!(kind = %kind, object = %key, "Istio object deleted");
                        self.mark_config_dirty();
                    }
                }
            }
        }
    }

    /// A (re)list ended: whatever this watch held and did not list is gone.
    fn init_done(&mut self, id: usize) {
        self.status.lists_completed += 1;
        let info = &mut self.infos[id];
        info.synced = true;
        let seen = info.seen.take().unwrap_or_default();
        let ns = info.namespace.clone();
        let ns = ns.as_deref();
        match info.resource {
            Resource::Service => {
                for key in self.endpoints.service_keys(ns) {
                    if !seen.contains(&key) {
                        self.endpoints.apply_service(key, None);
                    }
                }
            }
            Resource::Slice => {
                for key in self.endpoints.slice_keys(ns) {
                    if !seen.contains(&key) {
                        self.endpoints.apply_slice(key, None);
                    }
                }
            }
            Resource::Pod => {
                for key in self.endpoints.pod_keys(ns) {
                    if !seen.contains(&key) {
                        self.endpoints.apply_pod(key, None);
                    }
                }
            }
            Resource::Istio(kind) => {
                for key in self.config.keys(kind, ns) {
                    if !seen.contains(&key) && self.config.delete(kind, &key) {
                        self.mark_config_dirty();
                    }
                }
            }
        }
        self.endpoints.prune();
    }

    fn mark_config_dirty(&mut self) {
        self.config_dirty = true;
        if self.status.ready && self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.debounce);
        }
    }

    fn after_batch(&mut self) {
        if !self.status.ready {
            if !self.infos.iter().all(|i| i.synced) {
                return;
            }
            // First sync: endpoints first, so that the first routes find them.
            self.publish_endpoints();
            self.reload();
            self.status.ready = true;
            tracing::info!(
                services = self.endpoints.counts().services,
                pods = self.endpoints.counts().pods,
                objects = self.config.len(),
                "discovery ready"
            );
        } else {
            self.publish_endpoints();
        }
        if self.events > 100_000 {
            self.events = 0;
            self.endpoints.prune();
        }
        self.publish_status();
    }

    fn publish_endpoints(&mut self) {
        if self.endpoints.has_dirty() {
            let n = self.endpoints.flush(&mut self.publisher);
            self.status.endpoint_publications += n as u64;
            tracing::debug!(hosts = n, "endpoints published");
        }
    }

    fn reload(&mut self) {
        self.config_dirty = false;
        let (cfg, findings) = self.config.build();
        for d in &findings {
            tracing::warn!(diagnostic = %d, "cross-resource finding (the objects still apply)");
        }
        match self.mesh.reload(cfg.clone()) {
            Ok(()) => {
                self.status.config_generation += 1;
                tracing::info!(
                    generation = self.status.config_generation,
                    objects = self.config.len(),
                    "configuration from the cluster applied"
                );
                if let Some(dns) = &self.dns {
                    dns.update(&cfg);
                }
                self.config_tx.send_replace(Some(Arc::new(cfg)));
            }
            Err(e) => {
                self.status.reload_failures += 1;
                self.report(DiscoveryError::Reload {
                    message: e.to_string(),
                });
            }
        }
    }

    fn publish_status(&mut self) {
        let c = self.endpoints.counts();
        self.status.services = c.services;
        self.status.endpoint_slices = c.slices;
        self.status.pods = c.pods;
        self.status.config_objects = self.config.len();
        let s = self.status.clone();
        self.status_tx.send_if_modified(|old| {
            if *old == s {
                false
            } else {
                *old = s;
                true
            }
        });
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<ObjKey> {
    Some(ObjKey::new(
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref()?,
    ))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => futures::future::pending().await,
    }
}
