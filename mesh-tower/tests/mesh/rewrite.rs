//! Request rewriting.

use crate::support::*;

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
