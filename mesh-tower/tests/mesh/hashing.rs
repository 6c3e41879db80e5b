//! Consistent hashing keys the mesh makes itself: a `httpCookie` with a `ttl` is generated
//! (and sent back in `set-cookie`) for a request that lacks it, as Envoy's router does.

use crate::support::*;

const STICKY: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: sticky, path: /, ttl: 60s}
";

#[tokio::test(start_paused = true)]
async fn a_missing_hash_cookie_is_generated_and_then_sticks() {
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, STICKY, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    let set = header(&res, "set-cookie")
        .expect("a generated cookie")
        .to_owned();
    let value = set
        .strip_prefix("sticky=\"")
        .and_then(|r| r.split_once('"'))
        .map(|(v, rest)| {
            assert_eq!(rest, "; Max-Age=60; Path=/; HttpOnly");
            v.to_owned()
        })
        .expect("Envoy's set-cookie form");
    assert_eq!(value.len(), 16);
    let first = mock.seen()[0].authority().to_owned();
    for _ in 0..20 {
        let req = Request::get("http://api.mesh.test:8080/")
            .header("cookie", format!("sticky={value}"))
            .body(Full::default())
            .unwrap();
        let res = send(&mut svc, req).await.unwrap();
        assert_eq!(header(&res, "set-cookie"), None, "the request carried it");
    }
    let seen = mock.seen();
    assert!(
        seen.iter().all(|s| s.authority() == first),
        "every request with the cookie reaches the endpoint the first one did"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_ttl_no_cookie_is_generated() {
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    let dr = STICKY.replace(", path: /, ttl: 60s", "");
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, &dr, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(header(&res, "set-cookie"), None);
}
