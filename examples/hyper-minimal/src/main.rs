//! The shortest real program with hyper-util: load Istio YAML, wrap the client in the mesh,
//! send requests, print the routing decision and where the requests went.
//!
//! Two loopback backends play the pods of `reviews` (versions v1 and v2); a ServiceEntry
//! declares them, a DestinationRule names the subsets, a VirtualService splits 90/10.
//!
//! Run with: `cargo run -p example-hyper-minimal`

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use mesh_tests::Backend;
use mesh_tower::routing::{ClientContext, RequestView, RouteTable};
use mesh_tower::{BoxError, MeshLayer};
use tower::ServiceExt;

/// The YAML a user would `kubectl apply`, with the backends' ports filled in.
fn config_yaml(v1: u16, v2: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews-pods}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {v1}}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {v2}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - {{destination: {{host: reviews, subset: v1}}, weight: 90}}
    - {{destination: {{host: reviews, subset: v2}}, weight: 10}}
"
    )
}

/// Sends `n` requests through the mesh; returns how many v1 and v2 answered.
async fn run(n: usize) -> Result<(usize, usize), BoxError> {
    let v1 = Backend::start_version("reviews-v1", "v1").await?;
    let v2 = Backend::start_version("reviews-v2", "v2").await?;
    let yaml = config_yaml(v1.addr().port(), v2.addr().port());
    let config = mesh_tower::load_str("reviews.yaml", &yaml)?;

    // The routing decision, as a unit test computes it: a plain function.
    let table = RouteTable::compile(&config, &ClientContext::new("default"))?;
    let probe = Request::get("http://reviews:9080/reviews/1").body(())?;
    println!(
        "decision: {}",
        table.route(&RequestView::from_request(&probe), 95)
    );

    // The client, wrapped: every request now routes, retries and balances as in Istio.
    let layer = MeshLayer::builder().config(config).build()?;
    let client = tower::ServiceBuilder::new()
        .layer(layer)
        .service(mesh_tower::client::legacy_client());
    let (mut from_v1, mut from_v2) = (0, 0);
    for _ in 0..n {
        let req = Request::get("http://reviews:9080/reviews/1").body(Full::<Bytes>::default())?;
        let res = client.clone().oneshot(req).await?;
        let body = res.into_body().collect().await?.to_bytes();
        match &body[..] {
            b"reviews-v1" => from_v1 += 1,
            b"reviews-v2" => from_v2 += 1,
            other => return Err(format!("unexpected body {other:?}").into()),
        }
    }
    println!("{n} requests: {from_v1} to v1, {from_v2} to v2");
    v1.shutdown().await;
    v2.shutdown().await;
    Ok((from_v1, from_v2))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    run(100).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_example_splits_its_requests() {
        let (v1, v2) = super::run(400).await.unwrap();
        assert_eq!(v1 + v2, 400);
        // 90/10 of 400: sd = 6; allow 5 sd.
        assert!((330..=390).contains(&v1), "{v1} to v1");
    }
}
