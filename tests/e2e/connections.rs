//! What the pool tells the client about connections: `maxRequestsPerConnection: 1` closes
//! every upstream connection after its request (`connection: close` over HTTP/1), counted as
//! TCP connections accepted by a real backend.

use http_body_util::BodyExt;
use mesh_tests::Backend;
use tower::ServiceExt;

use crate::rel::{destination_rule, get, load, mesh, service_entry, virtual_service};

async fn connections_for(policy: &str) -> u64 {
    let backend = Backend::start_version("api-v1", "v1").await.unwrap();
    let port = backend.addr().port();
    let cfg = load(&[
        &service_entry(&[(port, "v1")]),
        &destination_rule(policy),
        &virtual_service("v1", ""),
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
