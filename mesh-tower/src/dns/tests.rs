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
    let one =
        "  endpoints:\n  - {address: a.example.test, labels: {version: v1}, ports: {http: 8080}}\n";
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
