//! The client adapters and the error classifier against real loopback servers.

use std::convert::Infallible;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use mesh_tests::{body_hash, Action, Backend, Rule, Select};
use tower::ServiceExt;

use super::{legacy_client, LegacyClient, ReqwestService};
use crate::body::{ReplayBody, DEFAULT_REPLAY_CAP};
use crate::error::{MeshError, UpstreamFailure};

fn payload() -> Vec<Bytes> {
    (0..8u8)
        .map(|i| Bytes::from(vec![b'a' + i; 1000]))
        .collect()
}

/// A streamed body (no size hint) fed by a task, wrapped for replay.
fn streamed(chunks: Vec<Bytes>) -> ReplayBody<http_body_util::channel::Channel<Bytes, Infallible>> {
    let (mut tx, rx) = http_body_util::channel::Channel::new(1);
    tokio::spawn(async move {
        for c in chunks {
            if tx.send_data(c).await.is_err() {
                return;
            }
        }
    });
    let body = ReplayBody::try_new(rx, DEFAULT_REPLAY_CAP).unwrap();
    assert!(!body.is_in_memory());
    body
}

fn refused_url() -> String {
    // Bind, note the port, close: nothing listens there any more.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/")
}

#[tokio::test]
async fn reqwest_streams_a_replay_body_and_replays_it() {
    let backend = Backend::start_version("v1", "v1").await.unwrap();
    let svc = ReqwestService::with_mesh_defaults().unwrap();
    let chunks = payload();
    let whole: Vec<u8> = chunks.concat();
    let body = streamed(chunks);
    let retry = body.clone();

    let req = Request::post(backend.url("/upload")).body(body).unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "v1");
    assert!(retry.is_replayable());

    let req = Request::post(backend.url("/upload")).body(retry).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-echo-body-len"], "8000");
    assert_eq!(
        backend.count_body(body_hash(&whole)),
        2,
        "byte-identical twice"
    );
}

#[tokio::test]
async fn legacy_client_streams_a_replay_body_and_replays_it() {
    let backend = Backend::start_version("v2", "v2").await.unwrap();
    let chunks = payload();
    let whole: Vec<u8> = chunks.concat();
    let body = streamed(chunks);
    let retry = body.clone();
    let client: LegacyClient<_> = legacy_client();
    for b in [body, retry] {
        let req = Request::put(backend.url("/put")).body(b).unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(backend.count_body(body_hash(&whole)), 2);
}

#[tokio::test]
async fn explicit_host_header_is_kept_by_both_clients() {
    let backend = Backend::start_version("v1", "v1").await.unwrap();
    let host = "reviews.default.svc.cluster.local";
    let req = || {
        Request::get(backend.url("/h"))
            .header("host", host)
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let svc = ReqwestService::with_mesh_defaults().unwrap();
    let res = svc.oneshot(req()).await.unwrap();
    assert_eq!(res.headers()["x-echo-host"], host);
    let client: LegacyClient<Full<Bytes>> = legacy_client();
    let res = client.request(req()).await.unwrap();
    assert_eq!(res.headers()["x-echo-host"], host);
    assert!(backend.received().iter().all(|r| r.host() == Some(host)));
}

#[tokio::test]
async fn reqwest_relative_uri_is_a_builder_error_and_sends_nothing() {
    let svc = ReqwestService::with_mesh_defaults().unwrap();
    let req = Request::get("/relative")
        .body(Full::<Bytes>::default())
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert!(err.is_builder(), "{err:?}");
}

#[tokio::test]
async fn reqwest_does_not_follow_redirects() {
    let backend = Backend::builder()
        .rule(Rule::new(Select::All, Action::Status(302)).on_path("/start"))
        .start()
        .await
        .unwrap();
    let svc = ReqwestService::with_mesh_defaults().unwrap();
    let req = Request::get(backend.url("/start"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(backend.count(), 1);
    assert_eq!(backend.count_path("/redirected"), 0);
}

async fn reqwest_error(url: &str) -> MeshError {
    let svc = ReqwestService::with_mesh_defaults().unwrap();
    let req = Request::get(url).body(Full::<Bytes>::default()).unwrap();
    MeshError::upstream(svc.oneshot(req).await.unwrap_err())
}

async fn hyper_error(url: &str) -> MeshError {
    let client: LegacyClient<Full<Bytes>> = legacy_client();
    let req = Request::get(url).body(Full::<Bytes>::default()).unwrap();
    MeshError::upstream(client.request(req).await.unwrap_err())
}

#[tokio::test]
async fn connection_refused_is_a_connect_failure_for_both_clients() {
    for err in [
        hyper_error(&refused_url()).await,
        reqwest_error(&refused_url()).await,
    ] {
        assert!(err.is_connect(), "{err:?}");
        assert_eq!(
            err.failure(),
            Some(UpstreamFailure::ConnectFailure),
            "{err:?}"
        );
        let res: http::Response<Full<Bytes>> = err.to_response();
        assert_eq!(res.status(), 503);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            "upstream connect error or disconnect/reset before headers. \
             reset reason: remote connection failure"
        );
    }
}

#[tokio::test]
async fn reset_and_close_after_the_request_are_terminations_for_both_clients() {
    for action in [Action::Reset, Action::CloseBeforeHeaders] {
        let backend = Backend::builder()
            .rule(Rule::new(Select::All, action))
            .start()
            .await
            .unwrap();
        for err in [
            hyper_error(&backend.url("/")).await,
            reqwest_error(&backend.url("/")).await,
        ] {
            assert!(!err.is_connect(), "{action:?}: {err:?}");
            assert_eq!(
                err.failure(),
                Some(UpstreamFailure::ConnectionTermination),
                "{action:?}: {err:?}"
            );
            assert_eq!(err.status(), 503);
        }
        assert_eq!(backend.count(), 2, "reqwest did not retry on its own");
    }
}
