//! Stats.

use crate::support::*;

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
    unpin::<mesh_tower::MeshBody<Full<Bytes>>>();
}

#[test]
fn build_without_config_is_an_error() {
    assert!(matches!(
        MeshLayer::builder().build().unwrap_err(),
        mesh_tower::BuildError::MissingConfig
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
    let svc: Mesh<Typed<mesh_tower::body::ReplayBody<Boxed>>> =
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

    use crate::support::*;

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
    let mut chosen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let user = format!("user-{i}");
        for _ in 0..5 {
            let req = Request::get("http://api.mesh.test:8080/")
                .header("x-user", user.as_str())
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
        chosen.insert(last5[0].clone());
    }
    // Keys spread: a balancer sending every key to one endpoint fails here (40 keys, two
    // endpoints: both are used).
    assert_eq!(chosen.len(), 2, "{chosen:?}");
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
        |_req: Request<mesh_tower::body::ReplayBody<Full<Bytes>>>| async {
            let every = Duration::from_millis(300);
            let body = Trickle::new(every, 10);
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
