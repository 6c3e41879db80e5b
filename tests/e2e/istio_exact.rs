//! Istio's behaviour for details a sidecar user relies on, over real sockets: header
//! operations in Envoy's order (remove, set, add), and `useSourceIp` consistent hashing keyed
//! by the client workload's own address.

use std::collections::BTreeSet;
use std::net::IpAddr;

use http_body_util::BodyExt;
use mesh_tests::Backend;
use mesh_tower::ClientContext;
use tower::ServiceExt;

use crate::support::mesh::{mesh, MeshOptions};
use crate::support::requests::{full, get};
use crate::support::yaml::{api_entry, api_rule, load, route_to, V1_V2_V3};

#[tokio::test]
async fn header_operations_remove_then_set_then_add() {
    let backend = Backend::start_version("api-v1", "v1").await.unwrap();
    let port = backend.addr().port();
    let route_headers = "    headers:
      request:
        remove: [x-a, x-b]
        set: {x-a: from-route}
        add: {x-b: from-route, x-c: from-route}
      response:
        remove: [x-backend]
        set: {x-backend: from-route}
";
    let cfg = load(&[
        &api_entry(&[(port, "v1")]),
        &api_rule(V1_V2_V3, ""),
        &route_to("v1", route_headers),
    ]);
    let (client, _) = mesh(cfg);
    let mut req = get("/");
    for (k, v) in [("x-a", "caller"), ("x-b", "caller"), ("x-c", "caller")] {
        req.headers_mut().append(k, v.parse().unwrap());
    }
    let res = client.oneshot(req).await.unwrap();
    assert_eq!(
        res.headers()["x-backend"],
        "from-route",
        "removed, then set"
    );
    res.into_body().collect().await.unwrap();
    let seen = &backend.received()[0].headers;
    let all = |n: &str| -> Vec<&str> {
        seen.get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-a"), ["from-route"]);
    assert_eq!(all("x-b"), ["from-route"]);
    assert_eq!(all("x-c"), ["caller", "from-route"]);
    backend.shutdown().await;
}

/// Which of `backends` each of `n` requests from a client at `ip` reached.
async fn backends_reached(
    cfg: &mesh_model::MeshConfig,
    ip: Option<IpAddr>,
    backends: &[Backend],
    n: usize,
) -> BTreeSet<usize> {
    let mut client = ClientContext::new("default");
    if let Some(ip) = ip {
        client = client.with_ip(ip);
    }
    let (svc, _) = MeshOptions::new().client(client).build(cfg.clone());
    let before: Vec<u64> = backends.iter().map(Backend::count).collect();
    for _ in 0..n {
        let res = svc.clone().oneshot(get("/")).await.unwrap();
        assert_eq!(res.status(), 200);
        res.into_body().collect().await.unwrap();
    }
    backends
        .iter()
        .zip(before)
        .enumerate()
        .filter(|(_, (b, before))| b.count() > *before)
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test]
async fn use_source_ip_hashes_the_clients_own_address() {
    let mut backends = Vec::new();
    for i in 0..3 {
        backends.push(
            Backend::start_version(&format!("api-v1-{i}"), "v1")
                .await
                .unwrap(),
        );
    }
    let ports: Vec<(u16, &str)> = backends.iter().map(|b| (b.addr().port(), "v1")).collect();
    let cfg = load(&[
        &api_entry(&ports),
        &api_rule(
            V1_V2_V3,
            "    loadBalancer: {consistentHash: {useSourceIp: true}}\n",
        ),
        &route_to("v1", ""),
    ]);
    // One client address: every request to one endpoint.
    let one = backends_reached(&cfg, Some("10.1.2.3".parse().unwrap()), &backends, 30).await;
    assert_eq!(
        one.len(),
        1,
        "a client's requests stick to one endpoint: {one:?}"
    );
    // Many client addresses spread over the endpoints.
    let mut all = BTreeSet::new();
    for i in 0..24u8 {
        let ip = IpAddr::from([10, 1, 0, i]);
        all.extend(backends_reached(&cfg, Some(ip), &backends, 3).await);
    }
    assert!(
        all.len() >= 2,
        "different clients hash to different endpoints: {all:?}"
    );
    for b in backends {
        b.shutdown().await;
    }
}

#[tokio::test]
async fn cors_preflights_are_answered_and_cors_responses_get_their_headers() {
    let backend = Backend::start_version("api-v1", "v1").await.unwrap();
    let port = backend.addr().port();
    let cors = "    corsPolicy:
      allowOrigins:
      - exact: https://app.example.com
      - regex: 'https://[a-z]+\\.trusted\\.test'
      allowMethods: [GET, POST]
      allowHeaders: [x-token, content-type]
      exposeHeaders: [x-trace]
      maxAge: 1h
      allowCredentials: true
";
    let cfg = load(&[
        &api_entry(&[(port, "v1")]),
        &api_rule(V1_V2_V3, ""),
        &route_to("v1", cors),
    ]);
    let (client, _) = mesh(cfg);
    let request = |method: &str, origin: Option<&str>, preflight: bool| {
        let mut req = full(method, "/items", bytes::Bytes::new());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        if preflight {
            req.headers_mut()
                .insert("access-control-request-method", "POST".parse().unwrap());
        }
        req
    };

    // A preflight from an allowed origin: answered by the mesh.
    let res = client
        .clone()
        .oneshot(request("OPTIONS", Some("https://shop.trusted.test"), true))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(
        h["access-control-allow-origin"],
        "https://shop.trusted.test"
    );
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(h["access-control-allow-headers"], "x-token,content-type");
    assert_eq!(h["access-control-max-age"], "3600");
    assert_eq!(backend.count(), 0, "a preflight never goes upstream");

    // A preflight from another origin goes upstream, untouched.
    let res = client
        .clone()
        .oneshot(request("OPTIONS", Some("https://evil.test"), true))
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    res.into_body().collect().await.unwrap();
    assert_eq!(backend.count(), 1);

    // An actual CORS request: upstream, and its response gets the CORS headers.
    let res = client
        .clone()
        .oneshot(request("GET", Some("https://app.example.com"), false))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-expose-headers"], "x-trace");
    assert!(h.get("access-control-allow-methods").is_none());
    res.into_body().collect().await.unwrap();

    // No Origin: not a CORS request.
    let res = client.oneshot(request("GET", None, false)).await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    res.into_body().collect().await.unwrap();
    assert_eq!(backend.count(), 3);
    backend.shutdown().await;
}
