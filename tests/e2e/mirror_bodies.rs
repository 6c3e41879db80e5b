//! A mirror never fails the request it copies, whatever the body: streamed (no length) or
//! sized, under or over the 64 KiB replay cap, with a mirror target that reads fast, slowly,
//! or not at all. The primary receives every byte once; a copy that cannot follow is dropped
//! and counted, never the primary.

use std::time::Duration;

use http::StatusCode;
use mesh_tests::{body_hash, Backend};
use tokio::io::AsyncReadExt;
use tower::ServiceExt;

use crate::support::mesh::mesh;
use crate::support::raw::{read_head, RawServer};
use crate::support::requests::{drain, full, pattern, streamed};
use crate::support::yaml::{api_entry, api_rule, load, route_to, V1_V2_V3};

/// How the mirror target reads request bodies.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A normal HTTP server: reads at once, answers 200.
    Fast,
    /// Reads the head, then 4 KiB every 5 ms, never answers.
    Slow,
    /// Reads the head, then nothing.
    Stalled,
}

/// A mirror target of `kind`: its port, and the server to keep alive while it is used.
async fn mirror_target(kind: Target) -> (u16, Option<Backend>, Option<RawServer>) {
    match kind {
        Target::Fast => {
            let b = Backend::start_version("shadow", "v2").await.unwrap();
            (b.addr().port(), Some(b), None)
        }
        Target::Slow | Target::Stalled => {
            let server = RawServer::start(move |mut stream| async move {
                if read_head(&mut stream).await.is_none() {
                    return;
                }
                let mut buf = vec![0u8; 4096];
                loop {
                    if matches!(kind, Target::Stalled) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            (server.port(), None, Some(server))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_never_fails_the_request_it_copies() {
    for target in [Target::Fast, Target::Slow, Target::Stalled] {
        for size in [128 * 1024, 1024 * 1024] {
            for sized in [false, true] {
                let primary = Backend::start_version("primary", "v1").await.unwrap();
                let (shadow_port, shadow, _raw) = mirror_target(target).await;
                let cfg = load(&[
                    &api_entry(&[(primary.addr().port(), "v1"), (shadow_port, "v2")]),
                    &api_rule(V1_V2_V3, ""),
                    &route_to("v1", "    mirror: {host: api, subset: v2}\n"),
                ]);
                let (svc, handle) = mesh(cfg);
                let data = pattern(size);
                let n = 6;
                for i in 0..n {
                    let path = format!("/m/{i}");
                    let req = if sized {
                        full("POST", &path, data.clone())
                    } else {
                        streamed(&path, &data, 16 * 1024)
                    };
                    let what = format!("{target:?} mirror, {size} bytes, sized {sized}, #{i}");
                    let res =
                        tokio::time::timeout(Duration::from_secs(20), svc.clone().oneshot(req))
                            .await
                            .unwrap_or_else(|_| panic!("{what}: the primary hung"))
                            .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(res.status(), StatusCode::OK, "{what}");
                    drain(res.into_body()).await.unwrap();
                }
                assert_eq!(primary.count(), n, "{target:?} {size} {sized}");
                assert_eq!(
                    primary.count_body(body_hash(&data)),
                    n as usize,
                    "{target:?} {size} {sized}: the primary received every byte of every body"
                );
                let stats = handle.stats();
                assert_eq!(stats.totals().failures, 0, "{target:?} {size} {sized}");
                assert_eq!(
                    stats.mirrors_sent() + stats.mirrors_dropped(),
                    n,
                    "{target:?} {size} {sized}: every copy was sent or counted as dropped"
                );
                if sized {
                    // Over the cap with a known length: never buffered, so never mirrored.
                    assert_eq!(stats.mirrors_dropped(), n, "{target:?} {size} sized");
                }
                if let Some(shadow) = shadow {
                    shadow.shutdown().await;
                }
                primary.shutdown().await;
            }
        }
    }
}
