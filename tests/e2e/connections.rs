//! What the pool tells the client about connections: `maxRequestsPerConnection: 1` closes
//! every upstream connection after its request (`connection: close` over HTTP/1), counted as
//! TCP connections accepted by a real backend.

use http_body_util::BodyExt;
use mesh_tests::Backend;
use tower::ServiceExt;

use crate::support::mesh::mesh;
use crate::support::requests::get;
use crate::support::yaml::{api_entry, api_rule, load, route_to, V1_V2_V3};

/// The TCP connections a backend accepted for five requests, one after another, under the
/// DestinationRule traffic policy `policy`.
async fn connections_for(policy: &str) -> u64 {
    let backend = Backend::start_version("api-v1", "v1").await.unwrap();
    let port = backend.addr().port();
    let cfg = load(&[
        &api_entry(&[(port, "v1")]),
        &api_rule(V1_V2_V3, policy),
        &route_to("v1", ""),
    ]);
    let (client, _handle) = mesh(cfg);
    for _ in 0..5 {
        let res = client.clone().oneshot(get("/")).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
    }
    assert_eq!(backend.count(), 5);
    let n = backend.connections();
    backend.shutdown().await;
    n
}

#[tokio::test]
async fn max_requests_per_connection_one_closes_every_connection() {
    let closed =
        connections_for("    connectionPool: {http: {maxRequestsPerConnection: 1}}\n").await;
    assert_eq!(closed, 5, "one connection per request");
    let reused = connections_for("").await;
    assert_eq!(
        reused, 1,
        "without the limit, the connection is kept alive and reused"
    );
}
