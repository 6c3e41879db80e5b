//! Envoy's response flags on responses and errors.

use mesh_tower::telemetry::{ResponseFlag, ResponseFlags};

use crate::support::*;

fn flags_of(res: &Response<mesh_tower::MeshBody<Full<Bytes>>>) -> String {
    ResponseFlags::of(res).to_string()
}

#[tokio::test(start_paused = true)]
async fn a_plain_success_has_no_flag_and_no_extension() {
    let mock = Mock::always(200);
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(flags_of(&res), "-");
    assert!(res.extensions().get::<ResponseFlags>().is_none());
}

#[tokio::test(start_paused = true)]
async fn retries_exhausted_on_responses_leave_urx_on_the_backend_response() {
    let mock = Mock::always(503);
    let route = vs("  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(mock.count(), 3);
    assert_eq!(flags_of(&res), "URX");
    assert_eq!(body_of(res).await, "upstream body");
}

#[tokio::test(start_paused = true)]
async fn a_response_that_is_not_retried_carries_no_urx() {
    // 500 is not a gateway error: returned at once, with no flag.
    let mock = Mock::always(500);
    let route = vs("  - retries: {attempts: 2, retryOn: gateway-error}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(
        (res.status().as_u16(), flags_of(&res)),
        (500, "-".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn connect_failures_until_retries_run_out_are_urx_then_uf() {
    let mock = Mock::new(|_, _| Reply::Refused);
    let route = vs("  - retries: {attempts: 2, retryOn: connect-failure}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert_eq!(mock.count(), 3);
    assert_eq!(err.response_flags().to_string(), "URX,UF");
    // The local reply carries them too.
    let reply: Response<Full<Bytes>> = err.to_response();
    assert_eq!(ResponseFlags::of(&reply).to_string(), "URX,UF");
}

#[tokio::test(start_paused = true)]
async fn a_connect_failure_that_is_not_retried_is_uf_alone() {
    let mock = Mock::new(|_, _| Reply::Refused);
    let route = vs("  - retries: {attempts: 0}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert_eq!(err.response_flags().to_string(), "UF");
}

#[tokio::test(start_paused = true)]
async fn per_try_timeouts_until_retries_run_out_are_urx_then_ut() {
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs("  - retries: {attempts: 1, perTryTimeout: 1s, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.response_flags().to_string(), "URX,UT");
}

#[tokio::test(start_paused = true)]
async fn the_route_timeout_is_ut() {
    let mock = Mock::new(|_, _| Reply::Slow(Duration::from_secs(10), 200));
    let route = vs("  - timeout: 1s
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let err = send(&mut svc, get("/")).await.unwrap_err();
    assert_eq!(err.response_flags().to_string(), "UT");
}

#[tokio::test(start_paused = true)]
async fn overflow_is_uo() {
    let dr = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.mesh.test
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
";
    let mock = Mock::always(200);
    let route = vs("  - route: [{destination: {host: api.mesh.test}}]\n");
    let (mut svc, _) = mesh(&[SE, dr, &route], &mock);
    let held = send(&mut svc, get("/1")).await.unwrap();
    let err = send(&mut svc, get("/2")).await.unwrap_err();
    assert!(err.is_overflow());
    assert_eq!(
        err.response_flags(),
        ResponseFlags::from_flag(ResponseFlag::UpstreamOverflow)
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn no_route_is_nr_and_an_empty_subset_is_uh() {
    let route = vs("  - match: [{uri: {prefix: /empty}}]
    route: [{destination: {host: api.mesh.test, subset: v3}}]
");
    let mock = Mock::always(200);
    let (mut svc, _) = mesh(&[SE, SUBSETS, &route], &mock);
    let nr = send(&mut svc, get("/elsewhere")).await.unwrap_err();
    assert_eq!(nr.response_flags().to_string(), "NR");
    let uh = send(&mut svc, get("/empty")).await.unwrap_err();
    assert_eq!(uh.response_flags().to_string(), "UH");
}

#[tokio::test(start_paused = true)]
async fn fault_delay_is_di_and_an_abort_after_it_is_di_fi() {
    let mock = Mock::always(200);
    let route = vs("  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}
    route: [{destination: {host: api.mesh.test}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: api.mesh.test}}]
  - fault:
      delay: {fixedDelay: 1s, percentage: {value: 100}}
      abort: {httpStatus: 503, percentage: {value: 100}}
    route: [{destination: {host: api.mesh.test}}]
");
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let delayed = send(&mut svc, get("/delay")).await.unwrap();
    assert_eq!(
        (delayed.status().as_u16(), flags_of(&delayed)),
        (200, "DI".to_owned())
    );
    let aborted = send(&mut svc, get("/abort")).await.unwrap();
    assert_eq!(
        (aborted.status().as_u16(), flags_of(&aborted)),
        (418, "FI".to_owned())
    );
    let both = send(&mut svc, get("/both")).await.unwrap();
    assert_eq!(
        (both.status().as_u16(), flags_of(&both)),
        (503, "DI,FI".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn a_delay_before_exhausted_retries_is_di_then_urx() {
    let mock = Mock::always(503);
    let route = vs(
        "  - fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}
    retries: {attempts: 1, retryOn: 5xx}
    route: [{destination: {host: api.mesh.test}}]
",
    );
    let (mut svc, _) = mesh(&[SE, &route], &mock);
    let res = send(&mut svc, get("/")).await.unwrap();
    assert_eq!(flags_of(&res), "DI,URX");
}
