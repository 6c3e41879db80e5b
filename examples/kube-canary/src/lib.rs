//! The canary against Kubernetes: `reviews` split 90/10 between subsets v1 and v2 by a
//! VirtualService read from the cluster, balanced over the pods of its EndpointSlices, with
//! retries and outlier detection acting per pod.
//!
//! [`run_cluster`] reads a real cluster (see the README); [`run_stand_in`] builds the same
//! objects in `mesh_kube::testing::FakeApiServer`, with pods as real loopback backends (one
//! v1 pod failing every request), and then shifts the weights and scales a pod down.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh_kube::testing::{self, FakeApiServer, SliceEndpoint};
use mesh_kube::{Discovery, Scope};
use mesh_tests::{Action, Backend, Rule, Select};
use mesh_tower::body::ReplayBody;
use mesh_tower::{ClientContext, MeshHandle, MeshLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Any error, for the demo.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
type Client = mesh_tower::Mesh<mesh_tower::client::LegacyClient<ReplayBody<Body>>>;

/// The namespace of the demo's objects.
pub const NAMESPACE: &str = "canary";
/// The service's FQDN.
pub const HOST: &str = "reviews.canary.svc.cluster.local";
/// The Istio objects (`k8s/istio.yaml`).
pub const ISTIO_YAML: &str = include_str!("../k8s/istio.yaml");

/// What one phase of traffic did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phase {
    /// What changed before it.
    pub name: String,
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests that failed (after retries).
    pub failed: u64,
    /// Attempts per endpoint (`ip:port`, with the pod's name when known).
    pub by_endpoint: BTreeMap<String, u64>,
    /// Attempts to subset v1 and v2.
    pub v1: u64,
    /// See `v1`.
    pub v2: u64,
    /// Retries.
    pub retries: u64,
    /// Ejections by outlier detection.
    pub ejections: u64,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = (self.v1 + self.v2).max(1);
        writeln!(
            f,
            "{}: {} ok, {} failed; v1 {} ({:.1} %), v2 {} ({:.1} %); {} retries, {} ejections",
            self.name,
            self.ok,
            self.failed,
            self.v1,
            self.v1 as f64 * 100.0 / total as f64,
            self.v2,
            self.v2 as f64 * 100.0 / total as f64,
            self.retries,
            self.ejections
        )?;
        for (ep, n) in &self.by_endpoint {
            writeln!(f, "    {ep:<36} {n:>6}")?;
        }
        Ok(())
    }
}

/// Per-cluster counters now: (v1 attempts, v2 attempts, retries, ejections, per endpoint).
fn counters(handle: &MeshHandle) -> (u64, u64, u64, u64, BTreeMap<String, u64>) {
    let stats = handle.stats();
    let (mut v1, mut v2, mut retries, mut ejections) = (0, 0, 0, 0);
    let mut eps = BTreeMap::new();
    for c in stats.clusters().iter().filter(|c| c.host() == HOST) {
        match c.subset() {
            Some("v1") => v1 += c.requests(),
            Some("v2") => v2 += c.requests(),
            _ => {}
        }
        retries += c.retries();
        ejections += c.ejections();
        for (addr, n, _) in c.endpoints() {
            *eps.entry(addr.clone()).or_insert(0) += n;
        }
    }
    (v1, v2, retries, ejections, eps)
}

/// Sends `requests` GETs to `http://reviews:9080/`, 8 at a time; what the mesh counted.
async fn traffic(client: &Client, handle: &MeshHandle, name: &str, requests: usize) -> Phase {
    let before = counters(handle);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let mut client = client.clone();
        let n = requests / 8 + usize::from(w < requests % 8);
        tasks.spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            for _ in 0..n {
                let req = http::Request::get("http://reviews:9080/")
                    .body(Empty::new().boxed())
                    .expect("a valid request");
                let ready = match client.ready().await {
                    Ok(c) => c,
                    Err(_) => {
                        failed += 1;
                        continue;
                    }
                };
                match ready.call(req).await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.into_body().collect().await;
                        ok += 1;
                    }
                    Ok(r) => {
                        eprintln!("kube-canary: answer {}", r.status());
                        failed += 1;
                    }
                    Err(e) => {
                        eprintln!("kube-canary: {e}");
                        failed += 1;
                    }
                }
            }
            (ok, failed)
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (o, f) = r.unwrap_or((0, 0));
        ok += o;
        failed += f;
    }
    let after = counters(handle);
    let by_endpoint = after
        .4
        .iter()
        .map(|(ep, n)| (ep.clone(), n - before.4.get(ep).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Phase {
        name: name.to_owned(),
        ok,
        failed,
        by_endpoint,
        v1: after.0 - before.0,
        v2: after.1 - before.1,
        retries: after.2 - before.2,
        ejections: after.3 - before.3,
    }
}

fn mesh(namespace: &str) -> Result<(MeshLayer, MeshHandle), BoxError> {
    let layer = MeshLayer::builder()
        .config(mesh_model::MeshConfig::default())
        .client(ClientContext::new(namespace))
        .build()?;
    let handle = layer.handle();
    Ok((layer, handle))
}

fn wrap(layer: MeshLayer) -> Client {
    ServiceBuilder::new()
        .layer(layer)
        .service(mesh_tower::client::legacy_client())
}

/// Reads the cluster `client` talks to (namespace `namespace` and `istio-system`) and sends
/// `requests` to `reviews` as the pod network sees them: run it where pod IPs are reachable.
pub async fn run_cluster(
    client: kube::Client,
    namespace: &str,
    requests: usize,
) -> Result<Vec<Phase>, BoxError> {
    let (layer, handle) = mesh(namespace)?;
    let discovery = Discovery::builder(client, handle.clone())
        .scope(Scope::Namespaces(vec![
            namespace.to_owned(),
            "istio-system".to_owned(),
        ]))
        .on_error(|e| eprintln!("kube-canary: {e}"))
        .start()
        .await?;
    tokio::time::timeout(Duration::from_secs(30), discovery.wait_until_ready())
        .await
        .map_err(|_| "the cluster did not answer within 30 s")?;
    let s = discovery.status();
    eprintln!(
        "read {} services, {} endpoint slices, {} pods, {} Istio objects",
        s.services, s.endpoint_slices, s.pods, s.config_objects
    );
    let client = wrap(layer);
    Ok(vec![traffic(&client, &handle, "90/10", requests).await])
}

/// The stand-in cluster and its pods (kept alive while the demo runs).
struct StandIn {
    api: FakeApiServer,
    pods: Vec<(String, String, Backend)>,
}

impl StandIn {
    async fn start() -> Result<StandIn, BoxError> {
        let api = FakeApiServer::start().await?;
        // Four pods on 127.0.0.201..204, one port; reviews-v1-1 fails every request.
        let mut last = None;
        for _ in 0..20 {
            let probe = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 201), 0))?;
            let port = probe.local_addr()?.port();
            drop(probe);
            let mut pods = Vec::new();
            let names = [
                ("reviews-v1-0", "v1"),
                ("reviews-v1-1", "v1"),
                ("reviews-v1-2", "v1"),
                ("reviews-v2-0", "v2"),
            ];
            let mut ok = true;
            for (i, (name, version)) in names.iter().enumerate() {
                let mut b = Backend::builder()
                    .name(*name)
                    .label("version", *version)
                    .bind(SocketAddr::new(
                        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 201 + i as u8)),
                        port,
                    ));
                if *name == "reviews-v1-1" {
                    b = b.rule(Rule::new(Select::All, Action::Status(503)));
                }
                match b.start().await {
                    Ok(b) => pods.push(((*name).to_owned(), (*version).to_owned(), b)),
                    Err(e) => {
                        last = Some(e);
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                let s = StandIn { api, pods };
                s.api
                    .apply(testing::service(NAMESPACE, "reviews", &[("http", 9080)]));
                for (name, version, _) in &s.pods {
                    s.api.apply(testing::pod(
                        NAMESPACE,
                        name,
                        &[("app", "reviews"), ("version", version)],
                    ));
                }
                s.api.apply(s.slice(None));
                s.api.apply_all(testing::yaml(ISTIO_YAML));
                return Ok(s);
            }
        }
        Err(format!("no free port on 127.0.0.201-204: {last:?}").into())
    }

    /// The EndpointSlice with every pod but `without`.
    fn slice(&self, without: Option<&str>) -> serde_json::Value {
        let port = self.pods[0].2.addr().port();
        let eps: Vec<SliceEndpoint> = self
            .pods
            .iter()
            .filter(|(n, _, _)| Some(n.as_str()) != without)
            .map(|(n, _, b)| {
                SliceEndpoint::ready(&b.addr().ip().to_string(), n).at("zone-a", "node-1")
            })
            .collect();
        testing::endpoint_slice(
            NAMESPACE,
            "reviews-x7k2p",
            "reviews",
            "IPv4",
            &[("http", port)],
            &eps,
        )
    }

    fn name_endpoints(&self, phase: &mut Phase) {
        phase.by_endpoint = std::mem::take(&mut phase.by_endpoint)
            .into_iter()
            .map(|(ep, n)| {
                let name = self
                    .pods
                    .iter()
                    .find(|(_, _, b)| b.addr().to_string() == ep)
                    .map_or("?", |(n, _, _)| n.as_str());
                (format!("{ep} {name}"), n)
            })
            .collect();
    }
}

async fn wait(
    discovery: &Discovery,
    f: impl Fn(&mesh_kube::Status) -> bool,
) -> Result<(), BoxError> {
    let mut rx = discovery.subscribe();
    let found = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| f(s))).await;
    match found {
        Ok(Ok(_)) => Ok(()),
        _ => Err("the stand-in's change did not arrive within 10 s".into()),
    }
}

/// The demo on the stand-in: 90/10 with a failing v1 pod (retries mask it, outlier
/// detection ejects it), then 50/50 after a VirtualService update, then with `reviews-v1-0`
/// scaled down. `requests` per phase.
pub async fn run_stand_in(requests: usize) -> Result<Vec<Phase>, BoxError> {
    let cluster = StandIn::start().await?;
    let (layer, handle) = mesh(NAMESPACE)?;
    let discovery = Discovery::builder(cluster.api.client().await?, handle.clone())
        .debounce(Duration::from_millis(20))
        .on_error(|e| eprintln!("kube-canary: {e}"))
        .start()
        .await?;
    tokio::time::timeout(Duration::from_secs(10), discovery.wait_until_ready())
        .await
        .map_err(|_| "the stand-in did not sync within 10 s")?;
    let client = wrap(layer);
    let mut phases = Vec::new();
    phases.push(traffic(&client, &handle, "90/10, reviews-v1-1 failing", requests).await);

    let generation = discovery.status().config_generation;
    let shifted = ISTIO_YAML
        .replace("weight: 90", "weight: 50")
        .replace("weight: 10", "weight: 50");
    cluster.api.apply_all(testing::yaml(&shifted));
    wait(&discovery, |s| s.config_generation > generation).await?;
    phases.push(traffic(&client, &handle, "50/50 (VirtualService updated)", requests).await);

    let published = discovery.status().endpoint_publications;
    cluster.api.apply(cluster.slice(Some("reviews-v1-0")));
    cluster.api.delete("v1", "Pod", NAMESPACE, "reviews-v1-0");
    wait(&discovery, |s| s.endpoint_publications > published).await?;
    phases.push(
        traffic(
            &client,
            &handle,
            "50/50, reviews-v1-0 scaled down",
            requests,
        )
        .await,
    );
    for p in &mut phases {
        cluster.name_endpoints(p);
    }
    Ok(phases)
}
