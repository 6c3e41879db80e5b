//! Local replies, errors.

use crate::support::*;

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
    // (An undefined subset: see `an_undefined_subset_answers_503_nc`.)
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

#[tokio::test(start_paused = true)]
async fn the_routers_local_replies_carry_the_routes_response_headers() {
    let route = vs("  - match: [{uri: {prefix: /refused}}]
    headers: {response: {set: {x-route: refused}, remove: [x-envoy-overloaded]}}
    retries: {attempts: 1, retryOn: connect-failure}
    route: [{destination: {host: api.mesh.test}, headers: {response: {add: {x-dest: v}}}}]
");
    let mock = Mock::new(|_, _| Reply::Refused);
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/refused")).await.unwrap_err();
    let res: Response<Full<Bytes>> = err.to_response();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&res, "x-route"), Some("refused"));
    assert_eq!(header(&res, "x-dest"), Some("v"));
    // No route matched: no route, no route headers (Envoy's NR reply has none either).
    let nr: Response<Full<Bytes>> = send(&mut svc, get("/x")).await.unwrap_err().to_response();
    assert_eq!(nr.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&nr, "x-route"), None);
}

#[tokio::test(start_paused = true)]
async fn an_undefined_subset_answers_503_nc_and_the_rest_of_the_config_runs() {
    // istiod accepts a route to a subset no DestinationRule defines (`istioctl analyze` says
    // IST0101); Envoy has no cluster for it and answers 503 with the flag NC.
    let route = vs("  - match: [{uri: {prefix: /gone}}]
    route: [{destination: {host: api.mesh.test, subset: v9}}]
  - route: [{destination: {host: api.mesh.test, subset: v1}}]
");
    let docs = [SE, SUBSETS, route.as_str()];
    let mut loader = mesh_model::Loader::new();
    for (i, d) in docs.iter().enumerate() {
        loader.add_str(&format!("doc{i}.yaml"), d);
    }
    let loaded = loader.finish();
    let analysis: Vec<_> = loaded.errors().filter(|d| d.is_analysis()).collect();
    assert_eq!(analysis.len(), 1, "{:?}", loaded.diagnostics());
    assert!(analysis[0]
        .message()
        .contains("subset \"v9\" is not defined"));
    assert_eq!(
        analysis[0].path(),
        "spec.http[0].route[0].destination.subset"
    );
    assert!(!loaded.has_refusals());
    let config = loaded.into_result().expect("analysis errors do not refuse");

    let mock = Mock::always(200);
    let layer = MeshLayer::builder()
        .config(config.clone())
        .seed(7)
        .build()
        .expect("builds");
    let mut svc = layer.layer(mock.clone());
    let err = send(&mut svc, get("/gone")).await.unwrap_err();
    assert_eq!(err.response_flags().to_string(), "NC", "{err:?}");
    let reply = err.to_response::<Full<Bytes>>();
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        mock.count(),
        0,
        "no request leaves for a cluster that does not exist"
    );
    let res = send(&mut svc, get("/other")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(mock.seen()[0].authority(), "10.0.0.1:8080");

    // Fatal on request: the build refuses it, and so does a reload (the old table serves).
    let strict = MeshLayer::builder()
        .config(config.clone())
        .analysis_errors_fatal(true)
        .build();
    match strict {
        Err(mesh_tower::BuildError::Analysis(d)) => {
            assert_eq!(d.len(), 1);
            assert!(d[0].is_analysis() && d[0].is_error());
        }
        other => panic!("expected BuildError::Analysis, got {other:?}"),
    }
    let good = crate::support::config(&[SE, SUBSETS]);
    let strict = MeshLayer::builder()
        .config(good)
        .analysis_errors_fatal(true)
        .build()
        .expect("no analysis error");
    let err = strict.handle().reload(config).unwrap_err();
    assert!(matches!(err, mesh_tower::BuildError::Analysis(_)), "{err}");
    assert!(err.to_string().contains("v9"), "{err}");
}
