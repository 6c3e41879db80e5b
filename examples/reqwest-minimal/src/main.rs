//! The shortest real program with reqwest: load Istio YAML, wrap reqwest (seen as a
//! `tower::Service<http::Request<_>>`) in the mesh, send a request with a body, print the
//! routing decision and what the backend saw.
//!
//! One loopback backend plays the pod of `ratings`; a ServiceEntry declares it, and a
//! VirtualService routes with retries and a timeout.
//!
//! Run with: `cargo run -p example-reqwest-minimal`

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use mesh_tests::Backend;
use mesh_tower::client::ReqwestService;
use mesh_tower::routing::{ClientContext, RequestView, RouteTable};
use mesh_tower::{BoxError, MeshLayer};
use tower::ServiceExt;

fn config_yaml(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ratings-pods}}
spec:
  hosts: [ratings.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: ratings}}
spec:
  hosts: [ratings]
  http:
  - timeout: 2s
    retries: {{attempts: 2, perTryTimeout: 500ms, retryOn: 5xx}}
    route: [{{destination: {{host: ratings}}}}]
"
    )
}

/// Sends one POST through the mesh; returns the status and the body length the backend saw.
async fn run() -> Result<(u16, String), BoxError> {
    let backend = Backend::start_version("ratings-v1", "v1").await?;
    let config = mesh_tower::load_str("ratings.yaml", &config_yaml(backend.addr().port()))?;

    let table = RouteTable::compile(&config, &ClientContext::new("default"))?;
    let probe = Request::post("http://ratings:9080/ratings/0").body(())?;
    println!(
        "decision: {}",
        table.route(&RequestView::from_request(&probe), 0)
    );

    let layer = MeshLayer::builder().config(config).build()?;
    let client = tower::ServiceBuilder::new()
        .layer(layer)
        .service(ReqwestService::with_mesh_defaults()?);
    let req = Request::post("http://ratings:9080/ratings/0")
        .body(Full::new(Bytes::from_static(b"{\"stars\":4}")))?;
    let res = client.oneshot(req).await?;
    let status = res.status().as_u16();
    let seen_len = res.headers()["x-echo-body-len"].to_str()?.to_owned();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "{status} from {} (body bytes seen: {seen_len})",
        String::from_utf8_lossy(&body)
    );
    backend.shutdown().await;
    Ok((status, seen_len))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    run().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_example_reaches_its_backend_through_the_mesh() {
        let (status, seen) = super::run().await.unwrap();
        assert_eq!((status, seen.as_str()), (200, "11"));
    }
}
