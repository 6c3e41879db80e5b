//! Instructions per request, for a count that does not depend on the machine's load:
//! run the same loop of `N` requests, bare or through the mesh, under
//! `valgrind --tool=callgrind` at two values of `N`; the difference of the totals divided
//! by the difference of `N` is the cost of one request (the set-up cancels out).
//!
//! ```text
//! cargo bench -p mesh-tower --bench instructions --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/instructions-* mesh 20000
//! ```
//!
//! Without arguments (as `cargo bench` runs it) it times 100,000 requests of each kind.

// Wall time of the loop, printed when run without valgrind.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use mesh_tower::body::ReplayBody;
use mesh_tower::{BoxError, MeshLayer};
use tower::{service_fn, Layer, ServiceExt};

#[path = "support/poll.rs"]
mod poll;
#[path = "support/seed_canary.rs"]
mod seed_canary;

use poll::{drain, run};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let bare = service_fn(|_req: Request<ReplayBody<Full<Bytes>>>| async {
        Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    let layer = MeshLayer::builder()
        .config(seed_canary::config())
        .seed(1)
        .build()
        .expect("builds");
    let mesh = layer.layer(bare);
    let modes: Vec<&str> = match mode.as_deref() {
        Some(m) => vec![if m == "mesh" { "mesh" } else { "bare" }],
        None => vec!["bare", "mesh"],
    };
    for m in modes {
        let start = std::time::Instant::now();
        for _ in 0..n {
            let req = Request::get("http://api:8080/items/1")
                .body(Full::new(Bytes::new()))
                .unwrap();
            if m == "mesh" {
                let res = run(mesh.clone().oneshot(req)).unwrap();
                drain(res.into_body());
            } else {
                let (parts, body) = req.into_parts();
                let body = ReplayBody::try_new(body, 1024).unwrap();
                let res = run(bare.oneshot(Request::from_parts(parts, body))).unwrap();
                drain(res.into_body());
            }
        }
        let per = start.elapsed() / u32::try_from(n).unwrap_or(u32::MAX);
        println!("{m}: {n} requests, {per:?} each");
    }
}
