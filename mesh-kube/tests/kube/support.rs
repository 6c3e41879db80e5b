//! The shared set-up: a stand-in API server, pods as real loopback backends (one loopback
//! address each, one port for all, as pods behind a Service), the mesh around hyper-util's
//! client, and a discovery reading the stand-in through a real `kube::Client`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use mesh_kube::testing::{self, FakeApiServer, SliceEndpoint};
use mesh_kube::{Discovery, DiscoveryError, Scope, Status};
use mesh_tests::Backend;
use mesh_tower::body::ReplayBody;
use mesh_tower::{ClientContext, MeshHandle, MeshLayer};
use serde_json::Value;
use tower::{Service, ServiceBuilder, ServiceExt};

pub(crate) type Body = BoxBody<Bytes, Infallible>;
pub(crate) type Client = mesh_tower::Mesh<mesh_tower::client::LegacyClient<ReplayBody<Body>>>;

/// Every wait is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

pub(crate) const NS: &str = "shop";
pub(crate) const HOST: &str = "reviews.shop.svc.cluster.local";
/// The Service port; pods listen on their own port (the target port).
pub(crate) const SERVICE_PORT: u16 = 9080;

/// A pod: a real backend on its own loopback address.
#[derive(Debug)]
pub(crate) struct Pod {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) backend: Backend,
}

impl Pod {
    pub(crate) fn ip(&self) -> String {
        self.backend.addr().ip().to_string()
    }

    pub(crate) fn count(&self) -> u64 {
        self.backend.count()
    }

    pub(crate) fn ready(&self) -> SliceEndpoint {
        SliceEndpoint::ready(&self.ip(), &self.name).at("zone-a", "node-1")
    }

    pub(crate) fn object(&self) -> Value {
        testing::pod(
            NS,
            &self.name,
            &[("app", "reviews"), ("version", &self.version)],
        )
    }
}

/// Pods on `127.0.0.<first + i>:<port>`, one port for all.
#[derive(Debug)]
pub(crate) struct Pods {
    pub(crate) port: u16,
    pub(crate) pods: Vec<Pod>,
    next_ip: u8,
}

impl Pods {
    /// Starts pods named `reviews-<version>-<i>`; `first` is the first address's last octet
    /// (tests running at once use different ranges).
    pub(crate) async fn start(first: u8, versions: &[&str]) -> Pods {
        for _ in 0..20 {
            // A free port on the first address (closed at once, synchronously).
            let probe = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, first), 0))
                .expect("bind a loopback address");
            let port = probe.local_addr().unwrap().port();
            drop(probe);
            let mut pods = Pods {
                port,
                pods: Vec::new(),
                next_ip: first,
            };
            let mut ok = true;
            for v in versions {
                if pods.add(v).await.is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                return pods;
            }
        }
        panic!("no free port shared by the loopback addresses");
    }

    /// Starts one more pod of `version`.
    pub(crate) async fn add(&mut self, version: &str) -> std::io::Result<&Pod> {
        let ip = Ipv4Addr::new(127, 0, 0, self.next_ip);
        self.next_ip += 1;
        let n = self.pods.iter().filter(|p| p.version == version).count();
        let name = format!("reviews-{version}-{n}");
        let backend = Backend::builder()
            .name(&name)
            .label("version", version)
            .bind(SocketAddr::new(IpAddr::V4(ip), self.port))
            .start()
            .await?;
        self.pods.push(Pod {
            name,
            version: version.to_owned(),
            backend,
        });
        Ok(self.pods.last().unwrap())
    }

    pub(crate) fn get(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name == name).unwrap()
    }

    /// One EndpointSlice `reviews-<suffix>` holding `endpoints`.
    pub(crate) fn slice(&self, suffix: &str, endpoints: &[SliceEndpoint]) -> Value {
        testing::endpoint_slice(
            NS,
            &format!("reviews-{suffix}"),
            "reviews",
            "IPv4",
            &[("http", self.port)],
            endpoints,
        )
    }

    /// The Service, every pod, and one slice with every pod ready.
    pub(crate) fn objects(&self) -> Vec<Value> {
        let mut out = vec![testing::service(NS, "reviews", &[("http", SERVICE_PORT)])];
        out.extend(self.pods.iter().map(Pod::object));
        let ready: Vec<SliceEndpoint> = self.pods.iter().map(Pod::ready).collect();
        out.push(self.slice("a", &ready));
        out
    }

    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        self.pods
            .iter()
            .map(|p| (p.name.clone(), p.count()))
            .collect()
    }

    pub(crate) fn reset_counts(&self) {
        for p in &self.pods {
            p.backend.reset_counts();
        }
    }
}

/// A DestinationRule for `reviews` with subsets v1 and v2.
pub(crate) fn destination_rule(extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: {NS}}}
spec:
  host: reviews
{extra}  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"
    )
}

/// A VirtualService for `reviews` splitting `v1_weight` / `100 - v1_weight`.
pub(crate) fn virtual_service(v1_weight: u32) -> String {
    let v2 = 100 - v1_weight;
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: {NS}}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v1}}
      weight: {v1_weight}
    - destination: {{host: reviews, subset: v2}}
      weight: {v2}
"
    )
}

/// A running set-up.
pub(crate) struct Env {
    pub(crate) api: FakeApiServer,
    pub(crate) handle: MeshHandle,
    pub(crate) client: Client,
    pub(crate) discovery: Discovery,
    pub(crate) errors: Arc<Mutex<Vec<DiscoveryError>>>,
}

impl Env {
    /// A stand-in holding `objects`, and a ready discovery reading it into a mesh.
    pub(crate) async fn start(objects: Vec<Value>) -> Env {
        Self::start_scoped(objects, Scope::AllNamespaces).await
    }

    pub(crate) async fn start_scoped(objects: Vec<Value>, scope: Scope) -> Env {
        let api = FakeApiServer::start().await.unwrap();
        api.set_bookmark_interval(Some(Duration::from_millis(200)));
        api.apply_all(objects);
        let layer = MeshLayer::builder()
            .config(mesh_model::MeshConfig::default())
            .client(ClientContext::new(NS))
            .seed(7)
            .build()
            .unwrap();
        let handle = layer.handle();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&errors);
        let discovery = Discovery::builder(api.client().await.unwrap(), handle.clone())
            .scope(scope)
            .debounce(Duration::from_millis(20))
            .on_error(move |e| sink.lock().unwrap().push(e.clone()))
            .start()
            .await
            .unwrap();
        tokio::time::timeout(WAIT, discovery.wait_until_ready())
            .await
            .expect("ready in time");
        let client = ServiceBuilder::new()
            .layer(layer)
            .service(mesh_tower::client::legacy_client());
        Env {
            api,
            handle,
            client,
            discovery,
            errors,
        }
    }

    /// Waits (bounded) until the status satisfies `f`; returns it.
    pub(crate) async fn wait(&self, what: &str, f: impl Fn(&Status) -> bool) -> Status {
        let mut rx = self.discovery.subscribe();
        let found = match tokio::time::timeout(WAIT, rx.wait_for(|s| f(s))).await {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        };
        found.unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what}; status {:?}",
                self.discovery.status()
            )
        })
    }

    /// Applies `objects` and waits until the discovery has published endpoints for them.
    pub(crate) async fn apply_endpoints(&self, objects: Vec<Value>) -> Status {
        let before = self.discovery.status().endpoint_publications;
        self.api.apply_all(objects);
        self.wait("an endpoint publication", |s| {
            s.endpoint_publications > before
        })
        .await
    }

    /// Applies Istio YAML and waits until a new configuration is applied.
    pub(crate) async fn apply_config(&self, yaml: &str) -> Status {
        let before = self.discovery.status().config_generation;
        self.api.apply_all(testing::yaml(yaml));
        self.wait("a configuration reload", |s| s.config_generation > before)
            .await
    }

    pub(crate) fn errors(&self) -> Vec<DiscoveryError> {
        self.errors.lock().unwrap().clone()
    }
}

/// A GET to `http://reviews:9080/`.
pub(crate) fn get() -> http::Request<Body> {
    http::Request::get(format!("http://reviews:{SERVICE_PORT}/"))
        .body(Empty::new().boxed())
        .unwrap()
}

/// Sends `n` requests one after the other; returns the statuses.
pub(crate) async fn send(client: &mut Client, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let res = client.ready().await.unwrap().call(get()).await;
        match res {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.into_body().collect().await;
                out.push(status);
            }
            // Envoy answers these 503 (`UH`); the mesh returns them as errors.
            Err(e) if e.is_no_healthy_upstream() => out.push(503),
            Err(e) => panic!("request failed: {e}"),
        }
    }
    out
}

/// Sends `n` requests and asserts every one got 200.
pub(crate) async fn send_ok(client: &mut Client, n: usize) {
    let statuses = send(client, n).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// Requests sent by several tasks until stopped, every outcome recorded.
pub(crate) struct Traffic {
    stop: Arc<std::sync::atomic::AtomicBool>,
    done: Arc<Vec<std::sync::atomic::AtomicU64>>,
    tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

impl Traffic {
    /// `workers` tasks, each sending one request after the other.
    pub(crate) fn start(client: &Client, workers: usize) -> Traffic {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let done: Arc<Vec<AtomicU64>> = Arc::new((0..workers).map(|_| AtomicU64::new(0)).collect());
        let tasks = (0..workers)
            .map(|i| {
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                let mut client = client.clone();
                tokio::spawn(async move {
                    let (mut ok, mut failures) = (0u64, Vec::new());
                    // Bounded: at most 200,000 requests per worker.
                    for _ in 0..200_000 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        match client.ready().await.unwrap().call(get()).await {
                            Ok(r) if r.status() == 200 => {
                                let _ = r.into_body().collect().await;
                                ok += 1;
                            }
                            Ok(r) => failures.push(format!("status {}", r.status())),
                            Err(e) => failures.push(e.to_string()),
                        }
                        done[i].fetch_add(1, Ordering::SeqCst);
                    }
                    (ok, failures)
                })
            })
            .collect();
        Traffic { stop, done, tasks }
    }

    /// Returns once every worker has finished a request it started after this call (bounded).
    pub(crate) async fn barrier(&self) {
        use std::sync::atomic::Ordering;
        let start: Vec<u64> = self.done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
        tokio::time::timeout(WAIT, async {
            while self
                .done
                .iter()
                .zip(&start)
                .any(|(d, s)| d.load(Ordering::SeqCst) < s + 2)
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("traffic keeps flowing");
    }

    /// Stops the workers; returns the requests that got 200 and the failures.
    pub(crate) async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (mut ok, mut failures) = (0, Vec::new());
        for t in self.tasks {
            let (o, f) = t.await.unwrap();
            ok += o;
            failures.extend(f);
        }
        (ok, failures)
    }
}

/// Waits (bounded) until `f` holds, polling every few milliseconds.
pub(crate) async fn eventually(what: &str, f: impl Fn() -> bool) {
    let ok = tokio::time::timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "timed out waiting for {what}");
}
