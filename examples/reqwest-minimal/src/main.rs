//! The smallest reqwest example: start a loopback backend labelled
//! `version=v1`, send one request through `reqwest` seen as a
//! `tower::Service<http::Request<_>>` and print what the backend saw. Later
//! the service gets wrapped in the mesh.
//!
//! Run with: `cargo run -p example-reqwest-minimal`

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use mesh_tests::Backend;
use mesh_tower::client::ReqwestService;
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let backend = Backend::start_version("reviews-v1", "v1").await?;
    let service = ReqwestService::with_mesh_defaults()?;

    let req = Request::post(backend.url("/reviews/0"))
        .header("host", "reviews.default.svc.cluster.local")
        .body(Full::new(Bytes::from_static(b"{\"stars\":4}")))?;
    let res = service.oneshot(req).await?;

    let status = res.status();
    let seen_len = res.headers()["x-echo-body-len"].to_str()?.to_owned();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "{status} from {} (body bytes seen: {seen_len})",
        String::from_utf8_lossy(&body)
    );
    println!("backend received {} request(s)", backend.count());

    backend.shutdown().await;
    Ok(())
}
