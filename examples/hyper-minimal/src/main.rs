//! The smallest hyper-util example: start a loopback backend labelled
//! `version=v1`, send one request through a bare hyper-util legacy client and
//! print what the backend saw. Later the client gets wrapped in the mesh.
//!
//! Run with: `cargo run -p example-hyper-minimal`

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use mesh_tests::Backend;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let backend = Backend::start_version("reviews-v1", "v1").await?;
    let client = mesh_tower::client::legacy_client::<Full<Bytes>>();

    let req = Request::get(backend.url("/reviews/0"))
        .header("host", "reviews.default.svc.cluster.local")
        .body(Full::default())?;
    let res = client.request(req).await?;

    let status = res.status();
    let host = res.headers()["x-echo-host"].to_str()?.to_owned();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "{status} from {} (Host seen: {host})",
        String::from_utf8_lossy(&body)
    );
    println!("backend received {} request(s)", backend.count());

    backend.shutdown().await;
    Ok(())
}
