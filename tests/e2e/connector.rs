//! The mesh-owned connector ([`MeshClient`]) over real loopback sockets, plaintext: sockets
//! counted at the backend for `maxConnections` (HTTP/1 and HTTP/2, the peer's stream limit),
//! `maxRequestsPerConnection`, the idle timeout and the connect timeout (tokio's paused clock
//! once the sockets are set up), the endpoint port from the ServiceEntry, GOAWAY mid-stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_tests::{Action, Backend, Rule, Select};
use mesh_tower::body::{MeshBody, ReplayBody};
use mesh_tower::client::{MeshClient, MeshClientBody};
use mesh_tower::{Mesh, MeshError, MeshLayer};
use tower::Layer;

pub(crate) type Client = Mesh<MeshClient<ReplayBody<Full<Bytes>>>>;

/// A mesh over a [`MeshClient`] for `docs`.
pub(crate) fn mesh_client(docs: &[&str]) -> (Client, mesh_tower::MeshHandle) {
    mesh_client_with(docs, MeshClient::builder())
}

pub(crate) fn mesh_client_with(
    docs: &[&str],
    builder: mesh_tower::client::MeshClientBuilder,
) -> (Client, mesh_tower::MeshHandle) {
    let yaml = docs.join("---\n");
    let config = mesh_model::load_str("connector.yaml", &yaml)
        .into_result()
        .unwrap_or_else(|e| panic!("config: {e:?}\n{yaml}"));
    let layer = MeshLayer::builder().config(config).seed(7).build().unwrap();
    let client = builder.build_for(&layer);
    (layer.layer(client), layer.handle())
}

/// A ServiceEntry for `api.conn.test` port 80 (`protocol`) with `endpoints` (`ip:port`).
pub(crate) fn service_entry(protocol: &str, endpoints: &[std::net::SocketAddr]) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|a| {
            format!(
                "  - {{address: {}, ports: {{web: {}}}}}\n",
                a.ip(),
                a.port()
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.conn.test]
  ports: [{{number: 80, name: web, protocol: {protocol}}}]
  resolution: STATIC
  endpoints:
{}",
        eps.concat()
    )
}

pub(crate) fn destination_rule(policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.conn.test
  trafficPolicy:
{policy}"
    )
}

pub(crate) fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://api.conn.test{path}"))
        .body(Full::default())
        .unwrap()
}

pub(crate) async fn send(
    client: &Client,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, http::HeaderMap, Bytes), MeshError> {
    let res: Response<MeshBody<MeshClientBody>> = client.request(req).await?;
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Ok((parts.status, parts.headers, body))
}

/// Sends `n` requests at once and returns their statuses (errors as their local reply's).
async fn burst(client: &Client, n: usize, path: &str) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let req = get(path);
        tasks.spawn(async move {
            match send(&client, req).await {
                Ok((s, _, _)) => s.as_u16(),
                Err(e) => e.status().as_u16(),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap());
    }
    out
}

fn slow(backend_name: &str) -> mesh_tests::BackendBuilder {
    Backend::builder()
        .name(backend_name)
        .rule(Rule::new(Select::All, Action::Delay(Duration::from_millis(20))).on_path("/slow"))
}

#[tokio::test]
async fn http1_max_connections_two_never_opens_a_third_socket() {
    let backend = slow("api").start().await.unwrap();
    let (client, _h) = mesh_client(&[
        &service_entry("HTTP", &[backend.addr()]),
        &destination_rule("    connectionPool: {tcp: {maxConnections: 2}}\n"),
    ]);
    let statuses = burst(&client, 50, "/slow").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backend.count(), 50);
    assert_eq!(backend.max_open_connections(), 2, "sockets at the backend");
    assert_eq!(backend.connections(), 2, "both kept alive and reused");
}

#[tokio::test]
async fn http1_pending_limit_overflows_the_rest_as_envoy_does() {
    let backend = slow("api").start().await.unwrap();
    let (client, _h) = mesh_client(&[
        &service_entry("HTTP", &[backend.addr()]),
        &destination_rule(
            "    connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 5}}\n",
        ),
    ]);
    let statuses = burst(&client, 50, "/slow").await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let overflow = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(ok + overflow, 50, "{statuses:?}");
    assert!(ok >= 7, "2 at once and 5 pending at least: {ok}");
    assert!(overflow > 0, "the rest overflow: {statuses:?}");
    assert!(backend.max_open_connections() <= 2);
}

#[tokio::test]
async fn http2_multiplexes_over_one_socket() {
    let backend = slow("api").start().await.unwrap();
    let (client, _h) = mesh_client(&[
        &service_entry("HTTP2", &[backend.addr()]),
        &destination_rule("    connectionPool: {tcp: {maxConnections: 1}}\n"),
    ]);
    let statuses = burst(&client, 50, "/slow").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backend.max_open_connections(), 1);
    let versions: Vec<_> = backend.received().iter().map(|r| r.version).collect();
    assert!(
        versions.iter().all(|v| *v == http::Version::HTTP_2),
        "{versions:?}"
    );
}

#[tokio::test]
async fn http2_respects_our_stream_limit_and_the_peers() {
    // Our limit: 5 streams a connection, 20 requests at once, up to 10 sockets: 4 sockets.
    let backend = slow("api").start().await.unwrap();
    let (client, _h) = mesh_client(&[
        &service_entry("GRPC", &[backend.addr()]),
        &destination_rule(
            "    connectionPool: {tcp: {maxConnections: 10}, http: {maxConcurrentStreams: 5}}\n",
        ),
    ]);
    let statuses = burst(&client, 20, "/slow").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backend.max_open_connections(), 4);

    // The peer's limit: it advertises one stream; two sockets allowed; ten requests.
    let backend = slow("api")
        .h2_max_concurrent_streams(1)
        .start()
        .await
        .unwrap();
    let (client, _h) = mesh_client(&[
        &service_entry("HTTP2", &[backend.addr()]),
        &destination_rule("    connectionPool: {tcp: {maxConnections: 2}}\n"),
    ]);
    // A first request learns the peer's settings on the first connection.
    assert_eq!(send(&client, get("/")).await.unwrap().0, 200);
    let statuses = burst(&client, 10, "/slow").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        backend.max_open_connections(),
        2,
        "a second socket for the second stream"
    );
}

#[tokio::test]
async fn max_requests_per_connection_one_closes_every_connection() {
    let backend = Backend::start_version("api", "v1").await.unwrap();
    let (client, _h) = mesh_client(&[
        &service_entry("HTTP", &[backend.addr()]),
        &destination_rule("    connectionPool: {http: {maxRequestsPerConnection: 1}}\n"),
    ]);
    for _ in 0..5 {
        assert_eq!(send(&client, get("/")).await.unwrap().0, 200);
    }
    assert_eq!(backend.connections(), 5);
    tokio::time::timeout(Duration::from_secs(30), backend.wait_closed(5))
        .await
        .expect("every connection closed");
    assert_eq!(backend.open_connections(), 0);
}

#[tokio::test]
async fn the_endpoint_port_comes_from_the_service_entry_not_the_url() {
    let backend = Backend::start_version("api", "v1").await.unwrap();
    let (client, _h) = mesh_client(&[&service_entry("HTTP", &[backend.addr()])]);
    // The URL says port 80; the ServiceEntry endpoint says the backend's port for `web`.
    let req = Request::get("http://api.conn.test:80/port")
        .body(Full::default())
        .unwrap();
    let (status, headers, _) = send(&client, req).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-echo-host"], "api.conn.test:80",
        "the Host is the service's"
    );
    assert_eq!(backend.count(), 1);
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let backend = Backend::start_version("api", "v1").await.unwrap();
    let (client, _h) = mesh_client(&[
        &service_entry("HTTP", &[backend.addr()]),
        &destination_rule("    connectionPool: {http: {idleTimeout: 5s}}\n"),
    ]);
    assert_eq!(send(&client, get("/")).await.unwrap().0, 200);
    assert_eq!(backend.open_connections(), 1);
    // The sockets are set up: the rest runs on tokio's paused clock.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(backend.closed_connections(), 0, "not idle long enough yet");
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::time::timeout(Duration::from_secs(60), backend.wait_closed(1))
        .await
        .expect("closed by the idle timeout");
    assert_eq!(backend.open_connections(), 0);
}

#[tokio::test]
async fn a_black_hole_is_bounded_by_the_connect_timeout() {
    // A listener whose accept queue is full: further connections are never answered.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let (client, _h) = mesh_client(&[
        &service_entry("HTTP", &[addr]),
        &destination_rule("    connectionPool: {tcp: {connectTimeout: 2s}}\n"),
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.conn.test]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: api.conn.test}}]
",
    ]);
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let err = send(&client, get("/")).await.unwrap_err();
    // Exactly the connect timeout (tokio's timer rounds up to its next millisecond).
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(2)..=Duration::from_millis(2001)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(err.is_connect() && err.is_timeout(), "{err}");
    let res: Response<Full<Bytes>> = err.to_response();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
    );
    drop(fillers);
}

#[tokio::test]
async fn endpoints_that_leave_drain_their_connections() {
    let a = Backend::start_version("a", "v1").await.unwrap();
    let b = Backend::start_version("b", "v1").await.unwrap();
    let (client, handle) = mesh_client(&[&service_entry("HTTP", &[a.addr(), b.addr()])]);
    for _ in 0..10 {
        assert_eq!(send(&client, get("/")).await.unwrap().0, 200);
    }
    assert_eq!((a.open_connections(), b.open_connections()), (1, 1));
    // A discovery source now says only `b` serves the host.
    let source = handle.endpoint_source();
    source.publish(
        "api.conn.test",
        vec![
            mesh_tower::routing::endpoints::Endpoint::new(&b.addr().ip().to_string())
                .with_port_mapping(80, b.addr().port()),
        ],
    );
    tokio::time::timeout(Duration::from_secs(30), a.wait_closed(1))
        .await
        .expect("a's idle connection closed");
    for _ in 0..5 {
        assert_eq!(send(&client, get("/")).await.unwrap().0, 200);
    }
    assert_eq!(a.count() + b.count(), 15);
    assert_eq!(a.connections(), 1, "no new connection to a");
    assert_eq!(b.open_connections(), 1);
}

#[tokio::test]
async fn goaway_mid_stream_lets_the_stream_finish_and_moves_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let (went_away_tx, went_away) = tokio::sync::oneshot::channel::<()>();
    let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let mut signals = Some((went_away_tx, finish_rx));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let signals = signals.take();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let ok = || http::Response::new(());
                    if req.uri().path() == "/first" {
                        if let Some((went_away, finish)) = signals {
                            // GOAWAY while /first is in flight; take no other stream here;
                            // answer /first once the test says so.
                            conn.graceful_shutdown();
                            let _ = went_away.send(());
                            tokio::spawn(async move {
                                let _ = finish.await;
                                if let Ok(mut s) = respond.send_response(ok(), false) {
                                    let _ = s.send_data(Bytes::from_static(b"first"), true);
                                }
                            });
                            let _ = std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
                            return;
                        }
                    }
                    if let Ok(mut s) = respond.send_response(ok(), false) {
                        let _ = s.send_data(Bytes::from_static(b"ok"), true);
                    }
                }
            });
        }
    });
    let (client, _h) = mesh_client(&[&service_entry("HTTP2", &[addr])]);
    assert_eq!(send(&client, get("/warm")).await.unwrap().0, 200);
    let first = {
        let client = client.clone();
        tokio::spawn(async move { send(&client, get("/first")).await })
    };
    went_away.await.unwrap();
    // A request after the GOAWAY: never on the going-away connection.
    let second = send(&client, get("/second")).await;
    assert!(
        matches!(&second, Ok((StatusCode::OK, _, b)) if b == "ok"),
        "{second:?}"
    );
    let _ = finish.send(());
    let first = first.await.unwrap();
    assert!(
        matches!(&first, Ok((StatusCode::OK, _, b)) if b == "first"),
        "the stream in flight finishes: {first:?}"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}
