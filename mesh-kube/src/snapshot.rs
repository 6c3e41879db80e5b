//! [`Snapshot`]: the cluster read once, for tools that answer one question and exit (such as
//! `meshctl`), and [`client_from_kubeconfig`] to reach it.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DynamicObject, ListParams, ObjectList};
use kube::config::{KubeConfigOptions, Kubeconfig};
use mesh_model::{Diagnostic, Loaded, Loader, MeshConfig, Strictness};
use mesh_routing::endpoints::StaticEndpoints;

use crate::config::{object_yaml, source_name, Applied, ConfigState, IstioKind};
use crate::discovery::{api, istio_resource, resolve_scope, DiscoveryError, ResolvedScope};
use crate::objects::{ObjKey, ServiceInfo, SliceInfo};
use crate::scope::Scope;
use crate::state::EndpointState;
use crate::StartError;

/// Why [`client_from_kubeconfig`] could not build a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeconfigError {
    /// The kubeconfig file (or, without a path, `KUBECONFIG` / `~/.kube/config`) cannot be
    /// read or parsed.
    #[error(
        "cannot read the kubeconfig {}: {source}{}",
        path_text(.path.as_deref()),
        if .path.is_none() { " (name the file, or set KUBECONFIG)" } else { "" }
    )]
    Read {
        /// The file given, `None` for the default (`KUBECONFIG`, else `~/.kube/config`).
        path: Option<PathBuf>,
        /// kube's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig does not have the context asked for.
    #[error(
        "the kubeconfig {} has no context {context:?}; its contexts: {}",
        path_text(.path.as_deref()),
        if .available.is_empty() { "none".to_owned() } else { .available.join(", ") }
    )]
    NoSuchContext {
        /// The file given, `None` for the default.
        path: Option<PathBuf>,
        /// The context asked for.
        context: String,
        /// The contexts the kubeconfig has.
        available: Vec<String>,
    },
    /// The kubeconfig was read, but its context, cluster or user is unusable (no current
    /// context, a cluster without a server URL, a certificate that does not load, ...).
    #[error("the kubeconfig {} cannot be used: {source}", path_text(.path.as_deref()))]
    Config {
        /// The file given, `None` for the default.
        path: Option<PathBuf>,
        /// kube's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The HTTP client for the API server cannot be built (TLS set-up).
    #[error("cannot build a client for the API server: {0}")]
    Client(#[source] kube::Error),
}

fn path_text(path: Option<&Path>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "(KUBECONFIG, else ~/.kube/config)".to_owned(),
    }
}

/// A `kube::Client` for the cluster of a kubeconfig, as `kubectl` picks it: the file `path`
/// (`None`: the files in `KUBECONFIG`, merged, else `~/.kube/config`) and its `context`
/// (`None`: the current context). No in-cluster fallback: a tool asked to read a kubeconfig
/// reads one.
pub async fn client_from_kubeconfig(
    path: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Client, KubeconfigError> {
    let owned = path.map(Path::to_path_buf);
    let kubeconfig = match path {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(|source| KubeconfigError::Read {
        path: owned.clone(),
        source,
    })?;
    if let Some(context) = context {
        if !kubeconfig.contexts.iter().any(|c| c.name == context) {
            return Err(KubeconfigError::NoSuchContext {
                path: owned,
                context: context.to_owned(),
                available: kubeconfig.contexts.iter().map(|c| c.name.clone()).collect(),
            });
        }
    }
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| KubeconfigError::Config {
            path: owned,
            source,
        })?;
    kube::Client::try_from(config).map_err(KubeconfigError::Client)
}

/// Why [`Snapshot::read`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A list request failed.
    #[error("cannot list {resource}{}: {source}{}", in_namespace(.namespace.as_deref()), hint(.resource, .source))]
    List {
        /// The resource (`services`, `endpointslices`, `pods`, `virtualservices`, ...).
        resource: &'static str,
        /// The namespace listed, `None` for every namespace.
        namespace: Option<String>,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// The Sidecar resources could not be listed (for [`Scope::Sidecar`]).
    #[error(transparent)]
    Scope(#[from] StartError),
}

fn in_namespace(ns: Option<&str>) -> String {
    ns.map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default()
}

/// What to do about the usual causes of a failed list.
fn hint(resource: &str, e: &kube::Error) -> &'static str {
    let code = match e {
        kube::Error::Api(s) => s.code,
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            return " (check that the API server the kubeconfig names can be reached from here)"
        }
        _ => 0,
    };
    let istio = IstioKind::ALL.iter().any(|k| k.plural() == resource);
    match code {
        404 if istio => {
            " (is Istio installed? the cluster has no networking.istio.io/v1 resource of this kind)"
        }
        401 => " (the kubeconfig's credentials were refused: log in again)",
        403 => {
            " (the kubeconfig's user may not list it: it needs get/list on it, or a narrower scope)"
        }
        _ => "",
    }
}

/// One Istio object as read from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotObject {
    kind: IstioKind,
    namespace: String,
    name: String,
    created: String,
    yaml: String,
}

impl SnapshotObject {
    /// Its kind.
    pub fn kind(&self) -> IstioKind {
        self.kind
    }

    /// Its namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source name its diagnostics carry: `kubernetes:<kind>/<namespace>/<name>`.
    pub fn source_name(&self) -> String {
        source_name(self.kind, &ObjKey::new(&self.namespace, &self.name))
    }

    /// The object as the loader reads it: `apiVersion`, `kind`, `metadata` (name, namespace,
    /// labels) and `spec`.
    pub fn yaml(&self) -> &str {
        &self.yaml
    }
}

/// The cluster read once: every Istio object in scope, the configuration a [`Discovery`]
/// would apply from them, and the endpoints of every Service (from its EndpointSlices and
/// pod labels), as a [`Discovery`] would publish them. Nothing is watched.
///
/// [`Discovery`]: crate::Discovery
#[derive(Debug)]
pub struct Snapshot {
    objects: Vec<SnapshotObject>,
    config: MeshConfig,
    refused: Vec<DiscoveryError>,
    findings: Vec<Diagnostic>,
    endpoints: StaticEndpoints,
    services: usize,
    endpoint_slices: usize,
    pods: usize,
}

impl Snapshot {
    /// Lists, once and page by page, what a [`Discovery`](crate::Discovery) with the same
    /// `scope` watches (Istio objects, Services, EndpointSlices, pod metadata; `cluster.local`
    /// as the domain), and builds from it what the discovery would apply.
    pub async fn read(client: &kube::Client, scope: &Scope) -> Result<Snapshot, SnapshotError> {
        Self::read_with_domain(client, scope, "cluster.local").await
    }

    /// [`read`](Self::read) for a cluster whose DNS domain is `domain`.
    pub async fn read_with_domain(
        client: &kube::Client,
        scope: &Scope,
        domain: &str,
    ) -> Result<Snapshot, SnapshotError> {
        let domain = domain.to_ascii_lowercase();
        let ResolvedScope {
            namespaces,
            service_filter,
            config_filter,
            errors,
        } = resolve_scope(client, scope, &domain).await?;
        let mut refused = errors;
        let mut endpoints = EndpointState::new(&domain, service_filter);
        let mut config = ConfigState::new(config_filter);
        let mut objects = Vec::new();
        let ns_list: Vec<Option<String>> = match namespaces {
            None => vec![None],
            Some(set) => set.into_iter().map(Some).collect(),
        };
        for ns in &ns_list {
            let n = ns.as_deref();
            let err = |resource: &'static str| {
                move |source| SnapshotError::List {
                    resource,
                    namespace: ns.clone(),
                    source,
                }
            };
            let lp = ListParams::default();
            let services = list_all(&lp, |p| {
                let a = api::<Service>(client, n);
                async move { a.list(&p).await }
            })
            .await
            .map_err(err("services"))?;
            for svc in services {
                let Some(key) = key(&mut endpoints, &svc.metadata) else {
                    continue;
                };
                let info = ServiceInfo::from_service(&svc, endpoints.domain()).map(|(_, i)| i);
                endpoints.apply_service(key, info);
            }
            let slices = list_all(&lp, |p| {
                let a = api::<EndpointSlice>(client, n);
                async move { a.list(&p).await }
            })
            .await
            .map_err(err("endpointslices"))?;
            for slice in slices {
                let Some(key) = key(&mut endpoints, &slice.metadata) else {
                    continue;
                };
                let info = SliceInfo::from_slice(&slice, endpoints.interner()).map(|(_, i)| i);
                endpoints.apply_slice(key, info);
            }
            let pods_lp = ListParams::default().fields("status.phase!=Failed");
            let pods = list_all(&pods_lp, |p| {
                let a = api::<Pod>(client, n);
                async move { a.list_metadata(&p).await }
            })
            .await
            .map_err(err("pods"))?;
            for pod in pods {
                let Some(key) = key(&mut endpoints, &pod.metadata) else {
                    continue;
                };
                let labels =
                    endpoints.intern_labels(pod.metadata.labels.clone().unwrap_or_default());
                endpoints.apply_pod(key, Some(labels));
            }
            for kind in IstioKind::ALL {
                let ar = istio_resource(kind);
                let list = list_all(&lp, |p| {
                    let a: Api<DynamicObject> = match n {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                        None => Api::all_with(client.clone(), &ar),
                    };
                    async move { a.list(&p).await }
                })
                .await
                .map_err(err(kind.plural()))?;
                for o in list {
                    let (key, applied) = config.apply(kind, &o);
                    match applied {
                        Applied::OutOfScope { .. } => continue,
                        Applied::Refused { diagnostics, .. } => {
                            refused.push(DiscoveryError::Refused {
                                kind,
                                namespace: key.namespace.to_string(),
                                name: key.name.to_string(),
                                diagnostics,
                                kept_previous: false,
                            });
                        }
                        Applied::Changed | Applied::Unchanged => {}
                    }
                    objects.push(SnapshotObject {
                        kind,
                        namespace: key.namespace.to_string(),
                        name: key.name.to_string(),
                        created: created(&o),
                        yaml: object_yaml(kind, &o),
                    });
                }
            }
        }
        // Istio's order, as the discovery loads them: creation time, then namespace and name.
        objects.sort_by(|a, b| {
            (&a.created, &a.namespace, &a.name, a.kind).cmp(&(
                &b.created,
                &b.namespace,
                &b.name,
                b.kind,
            ))
        });
        let (cfg, findings) = config.build();
        let mut registry = StaticEndpoints::new();
        endpoints.flush(&mut registry);
        let counts = endpoints.counts();
        Ok(Snapshot {
            objects,
            config: cfg,
            refused,
            findings,
            endpoints: registry,
            services: counts.services,
            endpoint_slices: counts.slices,
            pods: counts.pods,
        })
    }

    /// Every Istio object read (refused ones included), in Istio's order: creation time, then
    /// namespace and name.
    pub fn objects(&self) -> &[SnapshotObject] {
        &self.objects
    }

    /// Every object read, loaded together into one [`Loader`] with `strictness`, each under its
    /// [`source_name`](SnapshotObject::source_name), with the cross-resource analysis: what
    /// validating the same objects as files gives, refused objects included.
    pub fn load(&self, strictness: Strictness) -> Loaded {
        let mut loader = Loader::new().strictness(strictness);
        for o in &self.objects {
            loader.add_str(&o.source_name(), &o.yaml);
        }
        loader.finish()
    }

    /// The configuration a [`Discovery`](crate::Discovery) would apply: every valid object;
    /// the refused ones left out.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// The objects left out of [`config`](Self::config) (each a
    /// [`DiscoveryError::Refused`]), and the egress hosts a Sidecar scope dropped.
    pub fn refused(&self) -> &[DiscoveryError] {
        &self.refused
    }

    /// The errors the cross-resource analysis finds in [`config`](Self::config) (the objects
    /// still apply, as istiod applies them).
    pub fn findings(&self) -> &[Diagnostic] {
        &self.findings
    }

    /// The endpoints of every Service with endpoints, per host
    /// (`<service>.<namespace>.svc.<domain>`), as a discovery publishes them: ready endpoints
    /// healthy, not-ready ones unhealthy, terminating ones left out, labels from the pods.
    /// ServiceEntry `STATIC` endpoints are not here (they are in the configuration); where
    /// both know a host, these win, as they do in a mesh.
    pub fn endpoints(&self) -> &StaticEndpoints {
        &self.endpoints
    }

    /// Services, EndpointSlices and pods read (in scope).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.services, self.endpoint_slices, self.pods)
    }
}

/// `namespace/name (Kind)`.
impl fmt::Display for SnapshotObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.name, self.kind)
    }
}

fn key(
    endpoints: &mut EndpointState,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjKey> {
    Some(endpoints.key(
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref()?,
    ))
}

fn created(o: &DynamicObject) -> String {
    o.metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Objects per list page, as kube-runtime and client-go.
const PAGE: u32 = 500;

/// Every item of a list, page by page (`limit` / `continue`).
async fn list_all<K, F, Fut>(base: &ListParams, mut list: F) -> Result<Vec<K>, kube::Error>
where
    K: Clone,
    F: FnMut(ListParams) -> Fut,
    Fut: Future<Output = Result<ObjectList<K>, kube::Error>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut p = base.clone().limit(PAGE);
        if let Some(t) = &token {
            p = p.continue_token(t);
        }
        let page = list(p).await?;
        items.extend(page.items);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(items);
        }
    }
}
