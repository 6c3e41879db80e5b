//! Tests of the loopback backends themselves: what they answer, what they record.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use mesh_tests::{body_hash, Action, Backend, Rule, Select};
use mesh_tower::client::{http_connector, legacy_builder, legacy_client, LegacyClient};

/// hyper-util's legacy client, straight to the backends (no mesh).
type Client = LegacyClient<Full<Bytes>>;

/// A GET of `url`, its body read whole.
async fn get(
    client: &Client,
    url: &str,
) -> Result<http::Response<Bytes>, hyper_util::client::legacy::Error> {
    let req = Request::get(url).body(Full::default()).unwrap();
    let res = client.request(req).await?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

/// The statuses of `n` GETs of `/s` on `backend`, one after another.
async fn statuses(client: &Client, backend: &Backend, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            get(client, &backend.url("/s"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn echoes_and_records_the_request() {
    let backend = Backend::builder()
        .name("reviews-v2")
        .label("version", "v2")
        .label("app", "reviews")
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    let body = Bytes::from_static(b"{\"rating\":5}");
    let req = Request::post(backend.url("/reviews/1?x=y"))
        .header("host", "reviews.default.svc.cluster.local")
        .header("x-user", "jason")
        .body(Full::new(body.clone()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["x-backend"], "reviews-v2");
    assert_eq!(h["x-backend-labels"], "app=reviews,version=v2");
    assert_eq!(h["x-echo-method"], "POST");
    assert_eq!(h["x-echo-path"], "/reviews/1?x=y");
    assert_eq!(h["x-echo-host"], "reviews.default.svc.cluster.local");
    assert_eq!(h["x-echo-body-len"], "12");
    assert_eq!(h["x-echo-body-hash"], format!("{:016x}", body_hash(&body)));
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "reviews-v2"
    );

    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].index, 1);
    assert_eq!(got[0].headers["x-user"], "jason");
    assert!(got[0].body_complete);
    assert_eq!(backend.count(), 1);
    assert_eq!(backend.count_path("/reviews"), 1);
    assert_eq!(backend.count_path("/ratings"), 0);
    assert_eq!(backend.count_body(body_hash(&body)), 1);
    assert_eq!(backend.count_body(body_hash(b"other")), 0);
    assert_eq!(backend.connections(), 1);
}

#[test]
fn body_hash_is_fnv1a() {
    // Published FNV-1a 64 test vectors.
    assert_eq!(body_hash(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(body_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(body_hash(b"foobar"), 0x8594_4171_f739_67e8);
}

#[tokio::test]
async fn first_n_and_every_nth_are_exact() {
    let backend = Backend::builder()
        .rule(Rule::new(Select::FirstN(2), Action::Status(503)))
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    assert_eq!(statuses(&client, &backend, 4).await, [503, 503, 200, 200]);

    backend.set_rules([Rule::new(Select::EveryNth(3), Action::Status(500))]);
    assert_eq!(
        statuses(&client, &backend, 7).await,
        [200, 200, 500, 200, 200, 500, 200]
    );
    backend.clear_rules();
    assert_eq!(statuses(&client, &backend, 2).await, [200, 200]);
    assert_eq!(backend.count(), 13);
}

#[tokio::test]
async fn seeded_failures_repeat_with_the_seed() {
    let select = Select::Seeded {
        seed: 99,
        per_million: 300_000,
    };
    let a = Backend::builder()
        .rule(Rule::new(select, Action::Status(503)))
        .start()
        .await
        .unwrap();
    let b = Backend::builder()
        .rule(Rule::new(select, Action::Status(503)))
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    let sa = statuses(&client, &a, 60).await;
    let sb = statuses(&client, &b, 60).await;
    assert_eq!(sa, sb, "same seed, same pattern");
    let failures = sa.iter().filter(|s| **s == 503).count();
    assert!(
        (6..=30).contains(&failures),
        "about 30% of 60, got {failures}"
    );
}

#[tokio::test]
async fn rules_can_target_a_path() {
    let backend = Backend::builder()
        .rule(Rule::new(Select::All, Action::Status(404)).on_path("/missing"))
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    let ok = get(&client, &backend.url("/present")).await.unwrap();
    let missing = get(&client, &backend.url("/missing/1")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn redirect_status_carries_a_location() {
    let backend = Backend::builder()
        .rule(Rule::new(Select::All, Action::Status(302)))
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    let res = get(&client, &backend.url("/")).await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/redirected");
}

#[tokio::test(start_paused = true)]
async fn delay_follows_the_paused_clock() {
    let backend = Backend::builder()
        .rule(Rule::new(
            Select::All,
            Action::DelayThenStatus(Duration::from_secs(30), 201),
        ))
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    let start = tokio::time::Instant::now();
    let res = get(&client, &backend.url("/slow")).await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn reset_and_close_fail_the_request_and_are_recorded() {
    let backend = Backend::builder()
        .rule(Rule::new(Select::FirstN(1), Action::Reset))
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    let err = get(&client, &backend.url("/r")).await.unwrap_err();
    assert!(!err.is_connect(), "connected, then reset: {err:?}");
    assert_eq!(
        get(&client, &backend.url("/r")).await.unwrap().status(),
        200
    );

    backend.set_rules([Rule::new(Select::FirstN(1), Action::CloseBeforeHeaders)]);
    let err = get(&client, &backend.url("/c")).await.unwrap_err();
    assert!(!err.is_connect(), "{err:?}");
    assert_eq!(
        get(&client, &backend.url("/c")).await.unwrap().status(),
        200
    );

    let actions: Vec<_> = backend.received().iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            Some(Action::Reset),
            None,
            Some(Action::CloseBeforeHeaders),
            None
        ]
    );
}

/// Waits (bounded) until the backend has seen `n` requests.
async fn wait_for_count(backend: &Backend, n: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while backend.count() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("requests arrived");
}

#[tokio::test]
async fn hang_never_answers() {
    let backend = Backend::builder()
        .rule(Rule::new(Select::All, Action::Hang))
        .start()
        .await
        .unwrap();
    let client: Client = legacy_client();
    let url = backend.url("/");
    let hung = tokio::spawn(async move { get(&client, &url).await });
    wait_for_count(&backend, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!hung.is_finished(), "a hung backend must not answer");
    hung.abort();
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let backend = Backend::start_version("v1", "v1").await.unwrap();
    let mut builder = legacy_builder();
    builder.http2_only(true);
    let client: Client = builder.build(http_connector());
    let res = get(&client, &backend.url("/h2")).await.unwrap();
    assert_eq!(res.headers()["x-echo-version"], "HTTP/2.0");
    assert_eq!(
        backend.received()[0].host(),
        Some(backend.addr().to_string().as_str())
    );
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let backend = Backend::start_version("v1", "v1").await.unwrap();
    let addr = backend.addr();
    let client: Client = legacy_client();
    assert_eq!(get(&client, &backend.url("/")).await.unwrap().status(), 200);
    backend.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn drop_stops_the_server_even_with_a_hung_request() {
    let backend = Backend::builder()
        .rule(Rule::new(Select::All, Action::Hang))
        .start()
        .await
        .unwrap();
    let addr = backend.addr();
    let client: Client = legacy_client();
    let url = backend.url("/");
    let hung = tokio::spawn(async move { get(&client, &url).await });
    wait_for_count(&backend, 1).await;
    drop(backend);
    // The hung request is cut off within the one-second grace period.
    let res = tokio::time::timeout(Duration::from_secs(10), hung)
        .await
        .expect("request ended")
        .unwrap();
    assert!(res.is_err());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
