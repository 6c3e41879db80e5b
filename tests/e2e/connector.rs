//! The mesh-owned connector ([`MeshClient`]) over real loopback sockets, plaintext: sockets
//! counted at the backend for `maxConnections` (HTTP/1 and HTTP/2, the peer's stream limit),
//! `maxRequestsPerConnection`, the idle timeout and the connect timeout (tokio's paused clock
//! once the sockets are set up), the endpoint port from the ServiceEntry, GOAWAY mid-stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use mesh_tests::{Action, Backend, Rule, Select};
use mesh_tower::client::MeshClient;

use crate::support::mesh::{connector_mesh, ConnectorClient};
use crate::support::requests::{conn_get, fetch, local_reply, request, send};
use crate::support::upstream::CONN_TEST;
use crate::support::yaml::{conn_entry, conn_rule, no_retries};

/// `n` requests for `path`, all at once: every answer by status (errors as their local
/// reply's).
async fn burst(client: &ConnectorClient, n: usize, path: &str) -> BTreeMap<u16, usize> {
    send(client, n, n, |_| conn_get(path)).await.replies()
}

/// A backend named `backend_name` that answers `/slow` after 20 ms.
fn slow(backend_name: &str) -> mesh_tests::BackendBuilder {
    Backend::builder()
        .name(backend_name)
        .rule(Rule::new(Select::All, Action::Delay(Duration::from_millis(20))).on_path("/slow"))
}

#[tokio::test]
async fn http1_max_connections_two_never_opens_a_third_socket() {
    let backend = slow("api").start().await.unwrap();
    let (client, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &conn_rule("    connectionPool: {tcp: {maxConnections: 2}}\n"),
        ],
        MeshClient::builder(),
    );
    let statuses = burst(&client, 50, "/slow").await;
    assert_eq!(statuses, BTreeMap::from([(200, 50)]));
    assert_eq!(backend.count(), 50);
    assert_eq!(backend.max_open_connections(), 2, "sockets at the backend");
    assert_eq!(backend.connections(), 2, "both kept alive and reused");
}

#[tokio::test]
async fn http1_pending_limit_overflows_the_rest_as_envoy_does() {
    let backend = slow("api").start().await.unwrap();
    let (client, _h) = connector_mesh(&[
        &conn_entry("HTTP", &[backend.addr()]),
        &conn_rule(
            "    connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 5}}\n",
        ),
    ], MeshClient::builder());
    let statuses = burst(&client, 50, "/slow").await;
    let ok = statuses.get(&200).copied().unwrap_or(0);
    let overflow = statuses.get(&503).copied().unwrap_or(0);
    assert_eq!(ok + overflow, 50, "{statuses:?}");
    assert!(ok >= 7, "2 at once and 5 pending at least: {ok}");
    assert!(overflow > 0, "the rest overflow: {statuses:?}");
    assert!(backend.max_open_connections() <= 2);
}

#[tokio::test]
async fn http2_multiplexes_over_one_socket() {
    let backend = slow("api").start().await.unwrap();
    let (client, _h) = connector_mesh(
        &[
            &conn_entry("HTTP2", &[backend.addr()]),
            &conn_rule("    connectionPool: {tcp: {maxConnections: 1}}\n"),
        ],
        MeshClient::builder(),
    );
    let statuses = burst(&client, 50, "/slow").await;
    assert_eq!(statuses, BTreeMap::from([(200, 50)]));
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
    let (client, _h) = connector_mesh(&[
        &conn_entry("GRPC", &[backend.addr()]),
        &conn_rule(
            "    connectionPool: {tcp: {maxConnections: 10}, http: {maxConcurrentStreams: 5}}\n",
        ),
    ], MeshClient::builder());
    let statuses = burst(&client, 20, "/slow").await;
    assert_eq!(statuses, BTreeMap::from([(200, 20)]));
    assert_eq!(backend.max_open_connections(), 4);

    // The peer's limit: it advertises one stream; two sockets allowed; ten requests.
    let backend = slow("api")
        .h2_max_concurrent_streams(1)
        .start()
        .await
        .unwrap();
    let (client, _h) = connector_mesh(
        &[
            &conn_entry("HTTP2", &[backend.addr()]),
            &conn_rule("    connectionPool: {tcp: {maxConnections: 2}}\n"),
        ],
        MeshClient::builder(),
    );
    // A first request learns the peer's settings on the first connection.
    assert_eq!(fetch(&client, conn_get("/")).await.unwrap().0, 200);
    let statuses = burst(&client, 10, "/slow").await;
    assert_eq!(statuses, BTreeMap::from([(200, 10)]));
    assert_eq!(
        backend.max_open_connections(),
        2,
        "a second socket for the second stream"
    );
}

#[tokio::test]
async fn max_requests_per_connection_one_closes_every_connection() {
    let backend = Backend::start_version("api", "v1").await.unwrap();
    let (client, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &conn_rule("    connectionPool: {http: {maxRequestsPerConnection: 1}}\n"),
        ],
        MeshClient::builder(),
    );
    for _ in 0..5 {
        assert_eq!(fetch(&client, conn_get("/")).await.unwrap().0, 200);
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
    let (client, _h) = connector_mesh(
        &[&conn_entry("HTTP", &[backend.addr()])],
        MeshClient::builder(),
    );
    // The URL says port 80; the ServiceEntry endpoint says the backend's port for `web`.
    let req = request("GET", "http://api.conn.test:80/port", Bytes::new());
    let (status, headers, _) = fetch(&client, req).await.unwrap();
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
    let (client, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &conn_rule("    connectionPool: {http: {idleTimeout: 5s}}\n"),
        ],
        MeshClient::builder(),
    );
    assert_eq!(fetch(&client, conn_get("/")).await.unwrap().0, 200);
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
    let (client, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[addr]),
            &conn_rule("    connectionPool: {tcp: {connectTimeout: 2s}}\n"),
            &no_retries(&CONN_TEST),
        ],
        MeshClient::builder(),
    );
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let err = fetch(&client, conn_get("/")).await.unwrap_err();
    // Exactly the connect timeout (tokio's timer rounds up to its next millisecond).
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(2)..=Duration::from_millis(2001)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(err.is_connect() && err.is_timeout(), "{err}");
    let (status, _, body) = local_reply(&err).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
    );
    drop(fillers);
}

#[tokio::test]
async fn endpoints_that_leave_drain_their_connections() {
    let a = Backend::start_version("a", "v1").await.unwrap();
    let b = Backend::start_version("b", "v1").await.unwrap();
    let (client, handle) = connector_mesh(
        &[&conn_entry("HTTP", &[a.addr(), b.addr()])],
        MeshClient::builder(),
    );
    for _ in 0..10 {
        assert_eq!(fetch(&client, conn_get("/")).await.unwrap().0, 200);
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
        assert_eq!(fetch(&client, conn_get("/")).await.unwrap().0, 200);
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
    let (client, _h) = connector_mesh(&[&conn_entry("HTTP2", &[addr])], MeshClient::builder());
    assert_eq!(fetch(&client, conn_get("/warm")).await.unwrap().0, 200);
    let first = {
        let client = client.clone();
        tokio::spawn(async move { fetch(&client, conn_get("/first")).await })
    };
    went_away.await.unwrap();
    // A request after the GOAWAY: never on the going-away connection.
    let second = fetch(&client, conn_get("/second")).await;
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
