//! The tonic example end to end: a tonic client over the mesh-owned connector, two tonic
//! servers behind subsets v1 and v2 on loopback HTTP/2: the weighted split, retries on the
//! gRPC statuses the route names (trailers-only responses), the per-try timeout, the caller's
//! `grpc-timeout`.

use std::time::Duration;

use example_grpc::{config_yaml, serve, Behaviour, Echo, EchoClient, ORIGIN};
use mesh_tower::body::ReplayBody;
use mesh_tower::client::MeshClient;
use mesh_tower::{Mesh, MeshLayer};
use tower::Layer;

type Client = EchoClient<Mesh<MeshClient<ReplayBody<tonic::body::Body>>>>;

async fn setup(v1_weight: u32, per_try: &str) -> (Echo, Echo, Client) {
    let (v1, v2) = (Echo::new("v1"), Echo::new("v2"));
    let yaml = config_yaml(
        serve(v1.clone()).await.unwrap(),
        serve(v2.clone()).await.unwrap(),
        v1_weight,
        per_try,
    );
    let config = mesh_tower::load_str("echo.yaml", &yaml).unwrap();
    let layer = MeshLayer::builder().config(config).seed(3).build().unwrap();
    let connector = MeshClient::builder().build_for(&layer);
    let client = EchoClient::new(layer.layer(connector), ORIGIN.parse().unwrap());
    (v1, v2, client)
}

#[tokio::test]
async fn calls_split_80_20_between_the_subsets() {
    let (v1, v2, mut client) = setup(80, "2s").await;
    let mut to_v1 = 0;
    for i in 0..1000 {
        let reply = client.say(&format!("{i}"), None).await.unwrap();
        assert_eq!(reply.text, format!("{i}"));
        if reply.version == "v1" {
            to_v1 += 1;
        }
    }
    // 80 % of 1000: sd 12.6; allow 5 sd.
    assert!((737..=863).contains(&to_v1), "{to_v1} to v1");
    assert_eq!(v1.calls() + v2.calls(), 1000);
}

#[tokio::test]
async fn retriable_grpc_statuses_are_retried_others_are_not() {
    let (v1, _v2, mut client) = setup(100, "2s").await;
    for code in [
        tonic::Code::Unavailable,
        tonic::Code::Cancelled,
        tonic::Code::ResourceExhausted,
    ] {
        v1.set_behaviour(Behaviour {
            fail: (code, 2),
            ..Behaviour::default()
        });
        let reply = client.say("x", None).await;
        assert!(reply.is_ok(), "{code:?}: {reply:?}");
        assert_eq!(v1.calls(), 3, "{code:?}: two failures, then an answer");
    }
    v1.set_behaviour(Behaviour {
        fail: (tonic::Code::PermissionDenied, 1),
        ..Behaviour::default()
    });
    let err = client.say("x", None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(v1.calls(), 1, "not a retriable status");
}

#[tokio::test]
async fn a_stalled_call_is_retried_after_the_per_try_timeout() {
    let (v1, _v2, mut client) = setup(100, "100ms").await;
    v1.set_behaviour(Behaviour {
        stall: 1,
        stall_for: Duration::from_secs(30),
        ..Behaviour::default()
    });
    let reply = client.say("x", None).await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(v1.calls(), 2, "the stalled attempt, then its retry");
}

#[tokio::test]
async fn the_callers_grpc_timeout_bounds_the_call_and_goes_upstream() {
    let (v1, _v2, mut client) = setup(100, "2s").await;
    // A deadline well inside the route's: sent upstream as it is.
    let reply = client.say("x", Some(Duration::from_secs(5))).await;
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(
        v1.grpc_timeouts(),
        [Some("2000m".to_owned())],
        "the per-try timeout is below it"
    );
    // A caller's deadline shorter than the per-try timeout: it is the request's deadline.
    v1.set_behaviour(Behaviour {
        stall: 1,
        stall_for: Duration::from_secs(30),
        ..Behaviour::default()
    });
    let err = client
        .say("x", Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    assert_eq!(v1.calls(), 1, "the deadline ends the call: no retry");
    assert_eq!(v1.grpc_timeouts()[1].as_deref(), Some("200m"));
}
