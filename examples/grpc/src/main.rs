//! gRPC through the mesh: a tonic client over the mesh-owned connector calls two tonic
//! servers (subsets v1 and v2) split 80/20; v2 answers `UNAVAILABLE` to its first calls,
//! which the mesh retries; the output says where the calls went.
//!
//! Run with: `cargo run -p example-grpc`

use example_grpc::{config_yaml, serve, Behaviour, Echo, EchoClient, ORIGIN};
use mesh_tower::body::ReplayBody;
use mesh_tower::client::MeshClient;
use mesh_tower::{BoxError, MeshLayer};
use tower::Layer;

/// Runs the demo: 100 calls; returns how many v1 and v2 answered and how many calls v2 saw.
async fn run() -> Result<(usize, usize, usize), BoxError> {
    let (v1, v2) = (Echo::new("v1"), Echo::new("v2"));
    v2.set_behaviour(Behaviour {
        fail: (tonic::Code::Unavailable, 2),
        ..Behaviour::default()
    });
    let yaml = config_yaml(serve(v1.clone()).await?, serve(v2.clone()).await?, 80, "2s");
    let config = mesh_tower::load_str("echo.yaml", &yaml)?;
    let layer = MeshLayer::builder().config(config).build()?;
    let connector = MeshClient::builder().build_for::<ReplayBody<tonic::body::Body>>(&layer);
    let mut client = EchoClient::new(layer.layer(connector), ORIGIN.parse()?);
    let (mut from_v1, mut from_v2) = (0, 0);
    for i in 0..100 {
        let reply = client.say(&format!("hello {i}"), None).await?;
        match reply.version.as_str() {
            "v1" => from_v1 += 1,
            _ => from_v2 += 1,
        }
    }
    println!(
        "100 calls: {from_v1} answered by v1, {from_v2} by v2; v2 saw {} calls (its first 2 failed UNAVAILABLE and were retried)",
        v2.calls()
    );
    Ok((from_v1, from_v2, v2.calls()))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_runs_and_masks_v2s_failures() {
        let (v1, v2, v2_calls) = super::run().await.unwrap();
        assert_eq!(v1 + v2, 100, "every call answered");
        assert!(v2 > 0 && v1 > v2, "{v1}/{v2}");
        assert_eq!(v2_calls, v2 + 2, "v2's two failures were retried on it");
    }
}
