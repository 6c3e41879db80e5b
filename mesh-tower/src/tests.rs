//! Unit tests of the mesh service against an in-process mock client, all on
//! tokio's paused clock.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};

use crate::{BoxError, Mesh, MeshError, MeshHandle, MeshLayer};

/// What the mock received for one attempt.
#[derive(Debug, Clone)]
struct Seen {
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
    }
    fn host(&self) -> &str {
        self.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    }
    fn path(&self) -> &str {
        self.uri.path_and_query().map_or("", |p| p.as_str())
    }
}

/// How the mock answers.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    /// Waits, then answers with the status.
    Slow(Duration, u16),
    /// Fails like a refused connection.
    Refused,
    /// Answers with a status and extra headers.
    WithHeaders(u16, Vec<(&'static str, &'static str)>),
}

type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// A hand-written mock client: records every request, answers by script.
#[derive(Clone)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

impl Mock {
    fn new(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            seen: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(script),
        }
    }

    fn always(status: u16) -> Self {
        Self::new(move |_, _| Reply::Status(status))
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl<B> Service<Request<B>> for Mock
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let seen = Arc::clone(&self.seen);
        let script = Arc::clone(&self.script);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let s = Seen {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
            };
            let n = {
                let mut v = seen.lock().unwrap();
                v.push(s.clone());
                v.len()
            };
            let reply = script(&s, n);
            let (status, headers) = match reply {
                Reply::Status(st) => (st, Vec::new()),
                Reply::Slow(d, st) => {
                    tokio::time::sleep(d).await;
                    (st, Vec::new())
                }
                Reply::Refused => {
                    return Err(
                        Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
                            as BoxError,
                    )
                }
                Reply::WithHeaders(st, h) => (st, h),
            };
            let mut res = Response::new(Full::new(Bytes::from_static(b"upstream body")));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                res.headers_mut().insert(k, v.parse().unwrap());
            }
            Ok(res)
        })
    }
}

/// A ServiceEntry with endpoints 10.0.0.1 (v1) and 10.0.0.2 (v2), port 8080.
const SE: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.mesh.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
";

const SUBSETS: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
";

fn config(docs: &[&str]) -> mesh_model::MeshConfig {
    let mut loader = mesh_model::Loader::new();
    for (i, d) in docs.iter().enumerate() {
        loader.add_str(&format!("doc{i}.yaml"), d);
    }
    let loaded = loader.finish();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "config errors: {errors:#?}");
    loaded.into_config()
}

/// A VirtualService for `api.mesh.test` with the given `http:` routes.
fn vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.mesh.test]
  http:
{http}"
    )
}

fn mesh(docs: &[&str], mock: &Mock) -> (Mesh<Mock>, MeshHandle) {
    let layer = MeshLayer::builder()
        .config(config(docs))
        .seed(7)
        .attempt_count_header(true)
        .build()
        .expect("builds");
    (layer.layer(mock.clone()), layer.handle())
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://api.mesh.test:8080{path}"))
        .body(Full::default())
        .unwrap()
}

async fn send(
    svc: &mut Mesh<Mock>,
    req: Request<Full<Bytes>>,
) -> Result<Response<crate::MeshBody<Full<Bytes>>>, MeshError> {
    ServiceExt::<Request<Full<Bytes>>>::ready(svc)
        .await?
        .call(req)
        .await
}

async fn body_of(res: Response<crate::MeshBody<Full<Bytes>>>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

fn header<'a>(res: &'a Response<crate::MeshBody<Full<Bytes>>>, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------- retries

#[tokio::test(start_paused = true)]
async fn retries_gateway_error_then_succeeds() {
    let mock = Mock::new(|_, n| Reply::Status(if n < 3 { 503 } else { 200 }));
    let route = vs("  - retries: {attempts: 3, retryOn: gateway-error}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, handle) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/x")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-envoy-attempt-count"), Some("3"));
    assert_eq!(body_of(res).await, "upstream body");
    let seen = mock.seen();
    assert_eq!(seen.len(), 3);
    let counts: Vec<_> = seen
        .iter()
        .map(|s| {
            s.headers["x-envoy-attempt-count"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(counts, ["1", "2", "3"]);
    // A retry prefers the endpoint not yet tried.
    assert_ne!(seen[0].authority(), seen[1].authority());
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(
        (c.requests(), c.retries(), c.failures(), c.successes()),
        (3, 2, 2, 1)
    );
    assert_eq!(c.active_requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn non_retriable_status_is_returned_at_once() {
    let mock = Mock::always(500);
    let route = vs("  - retries: {attempts: 3, retryOn: gateway-error}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(mock.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_never_exceed_one_plus_retries_and_last_response_is_returned() {
    for attempts in [0u32, 1, 2, 4] {
        let mock = Mock::new(|_, _| Reply::WithHeaders(503, vec![("x-last", "yes")]));
        let retries = if attempts == 0 {
            "{attempts: 0}".to_owned()
        } else {
            format!("{{attempts: {attempts}, retryOn: 5xx}}")
        };
        let route = vs(&format!(
            "  - retries: {retries}
    route: [{{destination: {{host: api.mesh.test}}}}]
"
        ));
        let (mut svc, _) = mesh(&[SE, &route], &mock);
        let res = send(&mut svc, get("/")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&res, "x-last"), Some("yes"));
        assert_eq!(
            body_of(res).await,
            "upstream body",
            "the upstream's own response"
        );
        assert_eq!(mock.count(), 1 + attempts as usize);
    }
}

#[tokio::test(start_paused = true)]
async fn per_try_timeout_is_retried_only_when_retry_on_says_so() {
    // `5xx` covers per-try timeouts: 1 + 2 attempts, then the timeout error.
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs(
        "  - retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, handle) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(mock.count(), 3);
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        handle
            .stats()
            .cluster("api.mesh.test", None)
            .unwrap()
            .timeouts(),
        3
    );

    // `connect-failure` does not: one attempt.
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs(
        "  - retries: {attempts: 2, perTryTimeout: 100ms, retryOn: connect-failure}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let started = tokio::time::Instant::now();
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(mock.count(), 1);
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn route_timeout_spans_every_attempt_and_backoff() {
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs("  - timeout: 250ms
    retries: {attempts: 5, perTryTimeout: 100ms, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let started = tokio::time::Instant::now();
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_timeout());
    assert!(
        started.elapsed() <= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!((2..=3).contains(&mock.count()), "{}", mock.count());
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.into_body().collect().await.unwrap().to_bytes(),
        "upstream request timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn passthrough_uses_istio_default_retries() {
    // No VirtualService covers the host: the request goes out unchanged, and
    // Istio's default policy retries a connect failure.
    let mock = Mock::new(|_, n| {
        if n == 1 {
            Reply::Refused
        } else {
            Reply::Status(200)
        }
    });
    let (mut svc, _) = mesh(&[SE], &mock);
    let req = Request::get("http://elsewhere.test:9000/a?b=c")
        .body(Full::default())
        .unwrap();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].uri.to_string(), "http://elsewhere.test:9000/a?b=c");

    // ... but not a 503 (not among the default conditions).
    let mock = Mock::always(503);
    let (mut svc, _) = mesh(&[SE], &mock);
    let req = Request::get("http://elsewhere.test/")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&mut svc, req).await.unwrap().status(), 503);
    assert_eq!(mock.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn connect_failures_exhausted_give_the_upstream_error() {
    let mock = Mock::new(|_, _| Reply::Refused);
    let route = vs("  - retries: {attempts: 2, retryOn: connect-failure}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_upstream() && err.is_connect(), "{err:?}");
    assert_eq!(mock.count(), 3);
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = reply.into_body().collect().await.unwrap().to_bytes();
    assert!(text.ends_with(b"retried and the latest reset reason: remote connection failure"));
}

#[tokio::test(start_paused = true)]
async fn a_body_larger_than_the_replay_cap_is_never_retried() {
    let mock = Mock::always(503);
    let route = vs("  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .replay_cap(8)
        .build()
        .unwrap();
    let mut svc = layer.layer(mock.clone());
    let req = Request::post("http://api.mesh.test:8080/")
        .body(Full::new(Bytes::from_static(
            b"a body of more than eight bytes",
        )))
        .unwrap();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(mock.count(), 1);
    assert_eq!(mock.seen()[0].body, "a body of more than eight bytes");

    // A small body is replayed whole on every attempt.
    let req = Request::post("http://api.mesh.test:8080/")
        .body(Full::new(Bytes::from_static(b"tiny")))
        .unwrap();
    send(&mut svc, req).await.unwrap();
    let seen = mock.seen();
    assert_eq!(seen.len(), 1 + 4);
    assert!(seen[1..]
        .iter()
        .all(|s| s.body == "tiny" && s.method == "POST"));
}

// ---------------------------------------------------------------- faults

#[tokio::test(start_paused = true)]
async fn fault_abort_never_reaches_the_client() {
    let mock = Mock::always(200);
    let route = vs(
        "  - fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    retries: {attempts: 3, retryOn: retriable-4xx}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, handle) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert!(res.body().is_local());
    assert_eq!(body_of(res).await, "fault filter abort");
    assert_eq!(mock.count(), 0);
    // Never counted by the cluster.
    assert!(handle.stats().cluster("api.mesh.test", None).is_none());
}

#[tokio::test(start_paused = true)]
async fn grpc_fault_abort_is_http_200_with_grpc_status() {
    let mock = Mock::always(200);
    let route = vs(
        "  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "grpc-status"), Some("14"));
    assert_eq!(header(&res, "grpc-message"), Some("fault filter abort"));
    assert_eq!(mock.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn fault_delay_waits_then_forwards_and_the_route_timeout_starts_after_it() {
    let mock = Mock::always(200);
    let route = vs(
        "  - fault: {delay: {fixedDelay: 5s, percentage: {value: 100}}}
    timeout: 1s
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let started = tokio::time::Instant::now();
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(mock.count(), 1);
}

// ---------------------------------------------------------------- pools

const ONE_REQUEST: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
";

#[tokio::test(start_paused = true)]
async fn overflow_until_the_first_response_body_is_dropped() {
    let mock = Mock::always(200);
    let route = vs("  - retries: {attempts: 3, retryOn: 5xx,reset}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, handle) = mesh(&[SE, ONE_REQUEST, &route], &mock);
    let first = send(&mut svc, get("/1")).await.unwrap();
    let stats = handle.stats();
    assert_eq!(
        stats
            .cluster("api.mesh.test", None)
            .unwrap()
            .active_requests(),
        1
    );

    let err = send(&mut svc, get("/2")).await.unwrap_err();
    assert!(err.is_overflow());
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers()["x-envoy-overloaded"], "true");
    assert_eq!(mock.count(), 1, "overflow is never retried");

    drop(first);
    let third = send(&mut svc, get("/3")).await.unwrap();
    assert_eq!(third.status(), 200);
    let body = body_of(third).await;
    assert_eq!(body, "upstream body");
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.overflows(), 1);
    assert_eq!(
        c.active_requests(),
        0,
        "reading the body to its end released the permit"
    );
    assert_eq!(stats.totals().overflows, 1);
}

#[tokio::test(start_paused = true)]
async fn pending_request_waits_for_a_permit_then_proceeds() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
";
    let mock = Mock::always(200);
    let (svc, handle) = mesh(&[SE, dr], &mock);
    let first = svc.clone().oneshot(get("/1")).await.unwrap();
    let waiting = tokio::spawn(svc.clone().oneshot(get("/2")));
    tokio::task::yield_now().await;
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!((c.active_requests(), c.pending_requests()), (1, 1));
    // A third overflows the pending queue.
    assert!(svc
        .clone()
        .oneshot(get("/3"))
        .await
        .unwrap_err()
        .is_overflow());
    drop(first);
    let second = waiting.await.unwrap().unwrap();
    assert_eq!(second.status(), 200);
    drop(second);
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!((c.active_requests(), c.pending_requests()), (0, 0));
}

// ---------------------------------------------------------------- outlier detection

#[tokio::test(start_paused = true)]
async fn failing_endpoint_is_ejected_then_returns() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
";
    let route = vs("  - retries: {attempts: 0}
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::new(|s, _| {
        Reply::Status(if s.authority() == "10.0.0.1:8080" {
            500
        } else {
            200
        })
    });
    let (mut svc, handle) = mesh(&[SE, dr, &route], &mock);
    for _ in 0..4 {
        let _ = send(&mut svc, get("/")).await.unwrap();
    }
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.ejections(), 1);
    assert_eq!(c.ejected_endpoints(), 1);
    assert!(c
        .endpoints()
        .iter()
        .any(|(a, _, ejected)| a == "10.0.0.1:8080" && *ejected));

    // While ejected, every request goes to the healthy endpoint.
    let before = mock.count();
    for _ in 0..6 {
        assert_eq!(send(&mut svc, get("/")).await.unwrap().status(), 200);
    }
    assert!(mock.seen()[before..]
        .iter()
        .all(|s| s.authority() == "10.0.0.2:8080"));

    // After baseEjectionTime, the next sweep brings it back.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let _ = send(&mut svc, get("/")).await.unwrap();
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.ejected_endpoints(), 0);
    let before = mock.count();
    for _ in 0..2 {
        let _ = send(&mut svc, get("/")).await.unwrap();
    }
    assert!(mock.seen()[before..]
        .iter()
        .any(|s| s.authority() == "10.0.0.1:8080"));
}

/// After outlier detection ejects one of two endpoints, retries keep going to the one left
/// (previous-hosts avoidance falls back to the last pick, as Envoy does), and the default retry
/// budget, a limit on *concurrent* retries held through the backoff, lets every request retry
/// when requests arrive one after another but only `max(20% of active, 3)` of a burst. This is
/// why a closed-loop comparison of a fast and a slow client with the same budget shows more
/// retries per request for the slow one: the budget is spent per unit of time, not per request.
#[tokio::test(start_paused = true)]
async fn retries_continue_on_the_endpoint_left_after_an_ejection() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
";
    let route = vs("  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    // 10.0.0.1 always fails; 10.0.0.2 fails every first attempt and answers retries after
    // 10 ms (so that retries of a burst overlap).
    let mock = Mock::new(|s, _| {
        let first = s
            .headers
            .get("x-envoy-attempt-count")
            .is_some_and(|v| v == "1");
        if s.authority() == "10.0.0.1:8080" || first {
            Reply::Status(503)
        } else {
            Reply::Slow(Duration::from_millis(10), 200)
        }
    });
    let (mut svc, handle) = mesh(&[SE, dr, &route], &mock);

    // One request after another: the retry slot is always free.
    for i in 0..20 {
        let res = send(&mut svc, get(&format!("/seq/{i}"))).await.unwrap();
        assert_eq!(res.status(), 200, "request {i}");
        drop(body_of(res).await);
    }
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.ejections(), 1, "10.0.0.1 is ejected");
    assert_eq!(c.ejected_endpoints(), 1);
    let seen = mock.seen();
    let last_on_ejected = seen
        .iter()
        .rposition(|s| s.authority() == "10.0.0.1:8080")
        .unwrap();
    let after: Vec<&Seen> = seen[last_on_ejected + 1..].iter().collect();
    assert!(after.iter().all(|s| s.authority() == "10.0.0.2:8080"));
    let retries_after = after
        .iter()
        .filter(|s| s.headers["x-envoy-attempt-count"] != "1")
        .count();
    assert!(
        retries_after >= 15,
        "the endpoint left gets the retries: {retries_after}"
    );
    assert_eq!(stats.totals().retries, (seen.len() - 20) as u64);
    assert_eq!(c.active_requests(), 0);

    // A burst of 16 at once: each first attempt fails at the same instant, and only
    // max(20% x active, 3) = 3 of them get a concurrent-retry slot.
    let before = mock.count();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let mut svc = svc.clone();
        tasks.spawn(async move {
            let res = send(&mut svc, get(&format!("/burst/{i}"))).await.unwrap();
            let status = res.status().as_u16();
            drop(body_of(res).await);
            status
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(s) = tasks.join_next().await {
        *statuses.entry(s.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(statuses, BTreeMap::from([(200, 3), (503, 13)]));
    assert_eq!(mock.count() - before, 16 + 3);
    assert!(mock.seen()[before..]
        .iter()
        .all(|s| s.authority() == "10.0.0.2:8080"));
}

// ---------------------------------------------------------------- local replies, errors

#[tokio::test(start_paused = true)]
async fn redirect_and_direct_response_are_answered_locally() {
    let route = vs("  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: other.test, redirectCode: 308}
  - match: [{uri: {exact: /down}}]
    directResponse: {status: 503, body: {string: maintenance}}
  - route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/old/page?q=1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        header(&res, "location"),
        Some("http://other.test:8080/new?q=1")
    );
    let res = send(&mut svc, get("/down")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&res, "content-type"), Some("text/plain"));
    assert_eq!(body_of(res).await, "maintenance");
    assert_eq!(mock.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_route_and_empty_subset_are_envoys_errors() {
    // (An undefined subset is refused by mesh-model's validation, so the
    // unknown-cluster reply cannot be reached from a loaded configuration.)
    let route = vs("  - match: [{uri: {prefix: /empty}}]
    route: [{destination: {host: api.mesh.test, subset: v3}}]
  - match: [{uri: {prefix: /ok}}]
    route: [{destination: {host: api.mesh.test, subset: v1}}]
");
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, SUBSETS, &route], &mock);
    let nr = send(&mut svc, get("/elsewhere")).await.unwrap_err();
    assert!(nr.is_no_route());
    assert_eq!(
        nr.to_response::<Full<Bytes>>().status(),
        StatusCode::NOT_FOUND
    );
    let uh = send(&mut svc, get("/empty")).await.unwrap_err();
    assert!(uh.is_no_healthy_upstream(), "{uh:?}");
    assert_eq!(mock.count(), 0);
    send(&mut svc, get("/ok")).await.unwrap();
    assert_eq!(mock.seen()[0].authority(), "10.0.0.1:8080");
}

// ---------------------------------------------------------------- request rewriting

#[tokio::test(start_paused = true)]
async fn header_operations_rewrite_and_authority_reach_the_client() {
    let route = vs("  - match: [{uri: {prefix: /v1/}}]
    rewrite: {uri: /api/}
    headers:
      request:
        set: {x-route: r}
        add: {x-multi: one}
        remove: [x-secret]
      response:
        set: {x-served-by: mesh}
        remove: [x-internal]
    route:
    - destination: {host: api.mesh.test}
      headers:
        request: {add: {x-multi: two}}
  - match: [{uri: {prefix: /moved}}]
    rewrite: {authority: new.example}
    route: [{destination: {host: api.mesh.test}}]
  - match: [{uri: {regex: '/users/[0-9]+/.*'}}]
    rewrite:
      uriRegexRewrite: {match: '^/users/([0-9]+)/(.*)$', rewrite: '/u/\\2/\\1'}
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::new(|_, _| Reply::WithHeaders(200, vec![("x-internal", "1")]));
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let req = Request::get("http://api.mesh.test:8080/v1/items?page=2")
        .header("x-secret", "s")
        .header("x-route", "client")
        .body(Full::default())
        .unwrap();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(header(&res, "x-served-by"), Some("mesh"));
    assert!(res.headers().get("x-internal").is_none());
    let s = &mock.seen()[0];
    assert_eq!(s.path(), "/api/items?page=2");
    assert!(s.authority().starts_with("10.0.0."), "{}", s.authority());
    assert_eq!(
        s.host(),
        "api.mesh.test:8080",
        "Host keeps the request's authority"
    );
    assert_eq!(s.headers["x-route"], "r");
    let multi: Vec<_> = s.headers.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["one", "two"]);
    assert!(s.headers.get("x-secret").is_none());

    send(&mut svc, get("/moved/x")).await.unwrap();
    let s = &mock.seen()[1];
    assert_eq!(s.host(), "new.example");
    assert_eq!(s.path(), "/moved/x");

    send(&mut svc, get("/users/42/profile")).await.unwrap();
    assert_eq!(mock.seen()[2].path(), "/u/profile/42");
}

// ---------------------------------------------------------------- mirrors

#[tokio::test(start_paused = true)]
async fn mirror_copy_goes_to_the_mirror_cluster_with_a_shadow_host() {
    let mirror_se = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec:
  hosts: [mirror.mesh.test]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.9.9.9}
";
    let route = vs("  - mirror: {host: mirror.mesh.test}
    mirrorPercentage: {value: 100}
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::new(|s, _| {
        Reply::Status(if s.authority() == "10.9.9.9:8080" {
            500
        } else {
            200
        })
    });
    let (mut svc, handle) = mesh(&[SE, mirror_se, &route], &mock);
    let req = Request::post("http://api.mesh.test:8080/m")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "the mirror's 500 never reaches the caller"
    );
    // Let the spawned copy run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    let copy = seen
        .iter()
        .find(|s| s.authority() == "10.9.9.9:8080")
        .expect("mirror copy");
    assert_eq!(copy.host(), "api.mesh.test-shadow:8080");
    assert_eq!(copy.body, "payload");
    assert_eq!(copy.path(), "/m");
    let primary = seen
        .iter()
        .find(|s| s.authority() != "10.9.9.9:8080")
        .unwrap();
    assert_eq!(primary.host(), "api.mesh.test:8080");
    assert_eq!(handle.stats().mirrors_sent(), 1);
}

#[tokio::test(start_paused = true)]
async fn mirrors_beyond_the_limit_are_dropped_and_never_delay_the_primary() {
    let route = vs("  - mirror: {host: api.mesh.test}
    route: [{destination: {host: api.mesh.test}}]
");
    // Mirror copies hang; the primary answers at once.
    let mock = Mock::new(|s, _| {
        if s.host().ends_with("-shadow:8080") {
            Reply::Slow(Duration::from_secs(3600), 200)
        } else {
            Reply::Status(200)
        }
    });
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .max_concurrent_mirrors(1)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(mock.clone());
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        assert_eq!(send(&mut svc, get("/")).await.unwrap().status(), 200);
        assert_eq!(started.elapsed(), Duration::ZERO);
        tokio::task::yield_now().await;
    }
    let stats = handle.stats();
    assert_eq!((stats.mirrors_sent(), stats.mirrors_dropped()), (1, 2));
}

#[test]
fn shadow_host_suffixes_the_name_before_the_port() {
    use crate::service::shadow_host;
    assert_eq!(shadow_host("api:8080"), "api-shadow:8080");
    assert_eq!(shadow_host("api"), "api-shadow");
    assert_eq!(
        shadow_host("api.ns.svc.cluster.local"),
        "api.ns.svc.cluster.local-shadow"
    );
    assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
}

// ---------------------------------------------------------------- reload

fn split(v1: u32, v2: u32) -> String {
    vs(&format!(
        "  - route:
    - {{destination: {{host: api.mesh.test, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: api.mesh.test, subset: v2}}, weight: {v2}}}
"
    ))
}

fn share_v1(mock: &Mock, from: usize) -> usize {
    mock.seen()[from..]
        .iter()
        .filter(|s| s.authority() == "10.0.0.1:8080")
        .count()
}

#[tokio::test(start_paused = true)]
async fn reload_shifts_traffic_from_90_10_to_0_100() {
    let mock = Mock::always(200);
    let (mut svc, handle) = mesh(&[SE, SUBSETS, &split(90, 10)], &mock);
    for _ in 0..200 {
        send(&mut svc, get("/")).await.unwrap();
    }
    let v1 = share_v1(&mock, 0);
    assert!((160..=195).contains(&v1), "v1 got {v1} of 200");

    handle
        .reload(config(&[SE, SUBSETS, &split(0, 100)]))
        .unwrap();
    for _ in 0..50 {
        send(&mut svc, get("/")).await.unwrap();
    }
    assert_eq!(share_v1(&mock, 200), 0);
    // Cluster state carried over: v2's counters include the first phase.
    let stats = handle.stats();
    let v2 = stats.cluster("api.mesh.test", Some("v2")).unwrap();
    assert_eq!(v2.requests(), (200 - v1 + 50) as u64);
}

#[tokio::test(start_paused = true)]
async fn invalid_reload_keeps_the_old_configuration() {
    let dir = std::env::temp_dir().join(format!("mesh-tower-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("a.yaml");
    std::fs::write(&good, format!("{SE}---\n{SUBSETS}---\n{}", split(100, 0))).unwrap();
    let cfg = crate::load_files(&[&dir]).unwrap();
    let layer = MeshLayer::builder().config(cfg).build().unwrap();
    let handle = layer.handle();
    let mock = Mock::always(200);
    let mut svc = layer.layer(mock.clone());

    std::fs::write(&good, split(101, 0)).unwrap();
    let err = handle.reload_files(&[&dir]).unwrap_err();
    assert!(
        matches!(err, crate::ReloadError::Load(ref e) if !e.diagnostics().is_empty()),
        "{err}"
    );
    let missing = handle
        .reload_files(&[dir.join("missing.yaml")])
        .unwrap_err();
    assert!(matches!(
        missing,
        crate::ReloadError::Load(crate::LoadFilesError::Io { .. })
    ));

    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(
        mock.seen()[0].authority(),
        "10.0.0.1:8080",
        "old table still serves"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn watch_reloads_on_change_and_reports_failures() {
    let dir = std::env::temp_dir().join(format!("mesh-tower-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mesh.yaml");
    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{}", split(100, 0))).unwrap();
    let layer = MeshLayer::builder()
        .config(crate::load_files(&[&file]).unwrap())
        .build()
        .unwrap();
    let handle = layer.handle();
    let mock = Mock::always(200);
    let mut svc = layer.layer(mock.clone());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let f = Arc::clone(&failures);
    let watch = handle.watch(vec![file.clone()], Duration::from_secs(1), move |e| {
        f.lock().unwrap().push(e.to_string());
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{} ", split(0, 100))).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(mock.seen()[0].authority(), "10.0.0.2:8080", "reloaded");

    std::fs::write(&file, "kind: VirtualService\nspec: [").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(failures.lock().unwrap().len(), 1);
    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(
        mock.seen()[1].authority(),
        "10.0.0.2:8080",
        "still the last good table"
    );
    drop(watch);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- stats

#[tokio::test(start_paused = true)]
async fn stats_count_per_endpoint_and_active_goes_back_to_zero() {
    let mock = Mock::always(200);
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
";
    let (mut svc, handle) = mesh(
        &[
            SE,
            dr,
            &vs("  - route: [{destination: {host: api.mesh.test}}]\n"),
        ],
        &mock,
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(send(&mut svc, get("/")).await.unwrap());
    }
    assert_eq!(
        handle
            .stats()
            .cluster("api.mesh.test", None)
            .unwrap()
            .active_requests(),
        4
    );
    for res in held {
        body_of(res).await;
    }
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!(c.active_requests(), 0);
    assert_eq!(c.port(), 8080);
    assert_eq!(c.requests(), 4);
    let per: BTreeMap<_, _> = c
        .endpoints()
        .iter()
        .map(|(a, n, _)| (a.clone(), *n))
        .collect();
    assert_eq!(per.values().sum::<u64>(), 4);
    assert_eq!(
        per.values().copied().collect::<Vec<_>>(),
        [2, 2],
        "round robin"
    );
    assert_eq!(stats.totals().requests, 4);
    assert_eq!(stats.totals().successes, 4);
}

#[test]
fn mesh_body_is_unpin_when_the_upstream_body_is() {
    fn unpin<T: Unpin>() {}
    unpin::<crate::MeshBody<Full<Bytes>>>();
}

#[test]
fn build_without_config_is_an_error() {
    assert!(matches!(
        MeshLayer::builder().build().unwrap_err(),
        crate::BuildError::MissingConfig
    ));
}

/// A client that, like hyper-util's, accepts one request body type only.
#[derive(Clone)]
struct Typed<B>(Mock, std::marker::PhantomData<fn(B)>);

impl<B> Service<Request<B>> for Typed<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = <Mock as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::<Request<B>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.0.call(req)
    }
}

/// Spawning `svc.clone().oneshot(req)` here does not compile ("implementation
/// of `Service` is not general enough": rustc erases the trait-object lifetimes
/// of the task's future and cannot match them again); `Mesh::request` returns a
/// future that names no associated type, so the task compiles and runs.
#[tokio::test(start_paused = true)]
async fn spawned_requests_with_trait_object_bodies() {
    type Boxed = http_body_util::combinators::BoxBody<Bytes, BoxError>;
    let mock = Mock::always(200);
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .build()
        .unwrap();
    let svc: Mesh<Typed<crate::body::ReplayBody<Boxed>>> =
        layer.layer(Typed(mock.clone(), std::marker::PhantomData));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..3 {
        let svc = svc.clone();
        set.spawn(async move {
            let body: Boxed = Full::new(Bytes::from(format!("n{i}")))
                .map_err(|e| match e {})
                .boxed();
            let req = Request::post("http://api.mesh.test:8080/")
                .body(body)
                .unwrap();
            svc.request(req).await.map(|r| r.status())
        });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap(), StatusCode::OK);
    }
    assert_eq!(mock.count(), 3);
}

mod props {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

        /// With `retryOn: 5xx`, a request makes attempts until the first
        /// non-5xx answer or until `1 + attempts`, never more, and returns the
        /// last answer as it is; the pool ends empty.
        #[test]
        fn attempts_stop_at_success_or_the_limit(
            attempts in 0u32..5,
            statuses in vec(prop_oneof![Just(200u16), Just(404), Just(500), Just(503)], 1..8),
        ) {
            runtime().block_on(async {
                let script = statuses.clone();
                let mock = Mock::new(move |_, n| {
                    Reply::Status(script[(n - 1).min(script.len() - 1)])
                });
                let retries = if attempts == 0 {
                    "{attempts: 0}".to_owned()
                } else {
                    format!("{{attempts: {attempts}, retryOn: 5xx}}")
                };
                let route = vs(&format!(
                    "  - retries: {retries}\n    route: [{{destination: {{host: api.mesh.test}}}}]\n"
                ));
                let (mut svc, handle) = mesh(&[SE, &route], &mock);
                let res = send(&mut svc, get("/")).await.unwrap();
                let status_at = |k: usize| statuses[(k - 1).min(statuses.len() - 1)];
                let mut expected = 1;
                while expected < 1 + attempts as usize && status_at(expected) >= 500 {
                    expected += 1;
                }
                prop_assert_eq!(mock.count(), expected);
                prop_assert_eq!(res.status().as_u16(), status_at(expected));
                drop(res);
                let stats = handle.stats();
                let c = stats.cluster("api.mesh.test", None).unwrap();
                prop_assert_eq!(c.requests(), expected as u64);
                prop_assert_eq!(c.retries(), expected as u64 - 1);
                prop_assert_eq!(c.active_requests(), 0);
                Ok(())
            })?;
        }

        /// `http2MaxRequests: n` admits exactly `n` requests whose bodies are
        /// still open; the others overflow; once the bodies are dropped the
        /// pool is empty and admits again.
        #[test]
        fn pool_admits_at_most_max_requests(n in 1u32..4, m in 0usize..8) {
            runtime().block_on(async {
                let dr = format!(
                    "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      http: {{http2MaxRequests: {n}}}
"
                );
                let mock = Mock::always(200);
                let (mut svc, handle) = mesh(&[SE, &dr], &mock);
                let mut held = Vec::new();
                let mut overflows = 0;
                for _ in 0..m {
                    match send(&mut svc, get("/")).await {
                        Ok(res) => held.push(res),
                        Err(e) => {
                            prop_assert!(e.is_overflow());
                            overflows += 1;
                        }
                    }
                }
                prop_assert_eq!(held.len(), m.min(n as usize));
                prop_assert_eq!(overflows, m - held.len());
                if m > 0 {
                    let stats = handle.stats();
                    let c = stats.cluster("api.mesh.test", None).unwrap();
                    prop_assert_eq!(c.active_requests() as usize, held.len());
                    prop_assert_eq!(c.overflows() as usize, overflows);
                }
                drop(held);
                let res = send(&mut svc, get("/")).await;
                prop_assert!(res.is_ok());
                drop(res);
                let stats = handle.stats();
                prop_assert_eq!(stats.cluster("api.mesh.test", None).unwrap().active_requests(), 0);
                Ok(())
            })?;
        }

        /// The shadow host inserts `-shadow` before the port, or at the end.
        #[test]
        fn shadow_host_keeps_the_port(name in "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}", port in proptest::option::of(1u16..)) {
            let host = match port {
                Some(p) => format!("{name}:{p}"),
                None => name.clone(),
            };
            let shadow = crate::service::shadow_host(&host);
            let expected = match port {
                Some(p) => format!("{name}-shadow:{p}"),
                None => format!("{name}-shadow"),
            };
            prop_assert_eq!(shadow, expected);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn grpc_status_in_headers_drives_retries() {
    let mock = Mock::new(|_, n| {
        if n == 1 {
            Reply::WithHeaders(
                200,
                vec![("grpc-status", "14"), ("content-type", "application/grpc")],
            )
        } else {
            Reply::WithHeaders(
                200,
                vec![("grpc-status", "0"), ("content-type", "application/grpc")],
            )
        }
    });
    let route = vs("  - retries: {attempts: 2, retryOn: unavailable}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/pkg.Svc/Call")).await.unwrap();
    assert_eq!(header(&res, "grpc-status"), Some("0"));
    assert_eq!(mock.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn consistent_hash_keeps_a_key_on_one_endpoint() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
";
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, dr], &mock);
    for user in ["alice", "bob", "carol", "dave"] {
        for _ in 0..5 {
            let req = Request::get("http://api.mesh.test:8080/")
                .header("x-user", user)
                .body(Full::default())
                .unwrap();
            send(&mut svc, req).await.unwrap();
        }
        let seen = mock.seen();
        let last5: Vec<_> = seen[seen.len() - 5..]
            .iter()
            .map(|s| s.authority().to_owned())
            .collect();
        assert!(last5.iter().all(|a| *a == last5[0]), "{user}: {last5:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn least_request_avoids_the_busy_endpoint() {
    // Default load balancer: LEAST_REQUEST, two draws with replacement, the
    // one with fewer in-flight requests wins. Hold one response open: the busy
    // endpoint is only chosen when both draws land on it (1 in 4).
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE], &mock);
    let held = send(&mut svc, get("/")).await.unwrap();
    let busy = mock.seen()[0].authority().to_owned();
    for _ in 0..80 {
        drop(send(&mut svc, get("/")).await.unwrap());
    }
    let to_busy = mock.seen()[1..]
        .iter()
        .filter(|s| s.authority() == busy)
        .count();
    assert!(
        (8..=32).contains(&to_busy),
        "{to_busy} of 80 to the busy endpoint"
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_an_ejection_and_the_pool_occupancy() {
    let dr = |pool: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.mesh.test
  trafficPolicy:
    loadBalancer: {{simple: ROUND_ROBIN}}
    connectionPool: {{http: {{http2MaxRequests: {pool}}}}}
    outlierDetection: {{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 50}}
"
        )
    };
    let route = vs("  - retries: {attempts: 0}
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::new(|s, _| {
        Reply::Status(if s.authority() == "10.0.0.1:8080" {
            500
        } else {
            200
        })
    });
    let (mut svc, handle) = mesh(&[SE, &dr("10"), &route], &mock);
    drop(send(&mut svc, get("/")).await.unwrap());
    drop(send(&mut svc, get("/")).await.unwrap());
    let held = send(&mut svc, get("/")).await.unwrap();
    let stats = handle.stats();
    assert_eq!(
        stats
            .cluster("api.mesh.test", None)
            .unwrap()
            .ejected_endpoints(),
        1
    );

    // Same cluster, new limits: the ejection and the open request carry over.
    handle.reload(config(&[SE, &dr("1"), &route])).unwrap();
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(
        err.is_overflow(),
        "the held request still counts against the new limit"
    );
    drop(held);
    let before = mock.count();
    for _ in 0..4 {
        assert_eq!(send(&mut svc, get("/")).await.unwrap().status(), 200);
    }
    assert!(mock.seen()[before..]
        .iter()
        .all(|s| s.authority() == "10.0.0.2:8080"));
    let stats = handle.stats();
    let c = stats.cluster("api.mesh.test", None).unwrap();
    assert_eq!((c.ejected_endpoints(), c.active_requests()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn an_explicit_host_header_is_sent_as_it_was() {
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(
        &[
            SE,
            &vs("  - route: [{destination: {host: api.mesh.test}}]\n"),
        ],
        &mock,
    );
    let req = Request::get("http://api.mesh.test:8080/")
        .header("host", "api.mesh.test")
        .body(Full::default())
        .unwrap();
    send(&mut svc, req).await.unwrap();
    let s = &mock.seen()[0];
    assert_eq!(s.host(), "api.mesh.test");
    assert_eq!(s.headers.get_all(http::header::HOST).iter().count(), 1);
    assert!(s.authority().starts_with("10.0.0."));
}

/// A response body that yields one chunk every `every`, `chunks` times.
struct Trickle {
    every: Duration,
    chunks: usize,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if self.chunks == 0 {
            return Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        self.chunks -= 1;
        let next = tokio::time::Instant::now() + self.every;
        self.sleep.as_mut().reset(next);
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b".")))))
    }
}

#[tokio::test(start_paused = true)]
async fn the_route_timeout_covers_the_response_body() {
    let route = vs("  - timeout: 1s
    route: [{destination: {host: api.mesh.test}}]
");
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .build()
        .unwrap();
    let handle = layer.handle();
    let client = tower::service_fn(
        |_req: Request<crate::body::ReplayBody<Full<Bytes>>>| async {
            let every = Duration::from_millis(300);
            let body = Trickle {
                every,
                chunks: 10,
                sleep: Box::pin(tokio::time::sleep(every)),
            };
            Ok::<_, BoxError>(Response::new(body))
        },
    );
    let svc = layer.layer(client);
    let started = tokio::time::Instant::now();
    let res = svc.oneshot(get("/")).await.unwrap();
    let mut body = res.into_body();
    let mut chunks = 0;
    let err = loop {
        match body.frame().await {
            Some(Ok(_)) => chunks += 1,
            Some(Err(e)) => break e,
            None => panic!("the body ended before the timeout"),
        }
    };
    assert_eq!(chunks, 3, "chunks at 300, 600, 900 ms");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let err = err.downcast::<MeshError>().expect("a MeshError");
    assert!(err.is_timeout());
    assert!(
        body.frame().await.is_none(),
        "the body ends after the timeout"
    );
    let stats = handle.stats();
    assert_eq!(
        stats
            .cluster("api.mesh.test", None)
            .unwrap()
            .active_requests(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn hung_mirror_copies_end_with_the_route_timeout() {
    let route = vs("  - timeout: 200ms
    mirror: {host: api.mesh.test}
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::new(|s, _| {
        if s.host().ends_with("-shadow:8080") {
            Reply::Slow(Duration::from_secs(3600), 200)
        } else {
            Reply::Status(200)
        }
    });
    let layer = MeshLayer::builder()
        .config(config(&[SE, &route]))
        .max_concurrent_mirrors(2)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(mock.clone());
    for _ in 0..2 {
        send(&mut svc, get("/")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..2 {
        send(&mut svc, get("/")).await.unwrap();
    }
    tokio::task::yield_now().await;
    let stats = handle.stats();
    assert_eq!((stats.mirrors_sent(), stats.mirrors_dropped()), (4, 0));
}

#[tokio::test(start_paused = true)]
async fn a_pending_request_gives_up_at_the_route_deadline_or_when_dropped() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
";
    let route = vs("  - timeout: 1s
    route: [{destination: {host: api.mesh.test}}]
");
    let mock = Mock::always(200);
    let (svc, handle) = mesh(&[SE, dr, &route], &mock);
    let held = svc.clone().oneshot(get("/1")).await.unwrap();

    let started = tokio::time::Instant::now();
    let err = svc.clone().oneshot(get("/2")).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let pending = |h: &MeshHandle| {
        h.stats()
            .cluster("api.mesh.test", None)
            .unwrap()
            .pending_requests()
    };
    assert_eq!(pending(&handle), 0, "the timed-out waiter left the queue");

    // A waiter whose future is dropped leaves the queue too.
    let waiter = tokio::spawn(svc.clone().oneshot(get("/3")));
    tokio::task::yield_now().await;
    assert_eq!(pending(&handle), 1);
    waiter.abort();
    let _ = waiter.await;
    assert_eq!(pending(&handle), 0);

    drop(held);
    assert_eq!(svc.clone().oneshot(get("/4")).await.unwrap().status(), 200);
    assert_eq!(mock.count(), 2);
}
