//! Traffic while the endpoints change 100 times per second.
//!
//! Runs 10 s by default (CI time); `MESH_KUBE_CHURN_SECS=30` runs the 30 s of issue 15.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use mesh_kube::testing;
use tower::{Service, ServiceExt};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_change_100_times_a_second_under_traffic() {
    let secs: u64 = std::env::var("MESH_KUBE_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let pods = Arc::new(Pods::start(120, &["v1", "v1", "v1", "v1", "v1", "v1"]).await);
    let mut objects = pods.objects();
    objects.extend(testing::yaml(&destination_rule("")));
    objects.extend(testing::yaml(&virtual_service(100)));
    let env = Env::start(objects).await;

    // Bit i set: pod i is in the slice and ready, as the API server holds it now.
    let in_service = Arc::new(AtomicU64::new((1 << pods.pods.len()) - 1));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let early = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = env.client.clone();
            let (in_service, stop, early, pods) = (
                Arc::clone(&in_service),
                Arc::clone(&stop),
                Arc::clone(&early),
                Arc::clone(&pods),
            );
            tokio::spawn(async move {
                let (mut ok, mut failures) = (0u64, Vec::new());
                for _ in 0..1_000_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let mask = in_service.load(Ordering::SeqCst);
                    match client.ready().await.unwrap().call(get()).await {
                        Ok(r) if r.status() == 200 => {
                            let name = r.headers()["x-backend"].to_str().unwrap().to_owned();
                            let _ = r.into_body().collect().await;
                            ok += 1;
                            let i = pods.pods.iter().position(|p| p.name == name).unwrap();
                            if mask & (1 << i) == 0 {
                                // Sent while the pod was out of the API server's slice: the
                                // update had not reached the mesh yet.
                                early.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(r) => failures.push(format!("status {}", r.status())),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (ok, failures)
            })
        })
        .collect();

    // 100 changes a second: pod i leaves (not ready, or removed from the slice), then comes
    // back; at least three pods stay in at any time.
    let publications_before = env.discovery.status().endpoint_publications;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let changes = secs * 100;
    let n = pods.pods.len();
    for k in 0..changes {
        tick.tick().await;
        let i = (k as usize / 2) % n;
        let leaving = k % 2 == 0;
        let mask = if leaving {
            in_service.load(Ordering::SeqCst) & !(1 << i)
        } else {
            in_service.load(Ordering::SeqCst) | (1 << i)
        };
        let endpoints: Vec<_> = pods
            .pods
            .iter()
            .enumerate()
            .filter_map(|(j, p)| {
                if mask & (1 << j) != 0 {
                    Some(p.ready())
                } else if k % 4 == 0 {
                    Some(p.ready().not_ready())
                } else {
                    None
                }
            })
            .collect();
        if leaving {
            // The slice first, the mask after: a request that sees the bit cleared was sent
            // after the API server changed.
            env.api.apply(pods.slice("a", &endpoints));
            in_service.store(mask, Ordering::SeqCst);
        } else {
            in_service.store(mask, Ordering::SeqCst);
            env.api.apply(pods.slice("a", &endpoints));
        }
    }
    env.wait("the last change", |s| {
        s.endpoint_publications > publications_before
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failures) = (0, Vec::new());
    for w in workers {
        let (o, f) = w.await.unwrap();
        ok += o;
        failures.extend(f);
    }
    let status = env.discovery.status();
    let served: u64 = pods.pods.iter().map(|p| p.count()).sum();
    let stats = settled_stats(&env).await;
    let cluster = stats
        .cluster(HOST, Some("v1"))
        .expect("the v1 cluster has counters");
    eprintln!(
        "churn: {secs} s, {changes} endpoint changes, {} publications, {ok} requests ok, {} failed, \
         {} sent to a pod the API server had already taken out (update in flight)",
        status.endpoint_publications - publications_before,
        failures.len(),
        early.load(Ordering::SeqCst),
    );
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > secs * 100, "traffic kept flowing: {ok}");
    // Exact counters: every request reached exactly one pod, once, and the mesh counted it.
    assert_eq!(served, ok);
    assert_eq!(cluster.requests(), ok);
    assert_eq!(cluster.successes(), ok);
    assert_eq!((cluster.failures(), cluster.retries()), (0, 0));
    assert!(status.endpoint_publications - publications_before > changes / 2);
}

async fn settled_stats(env: &Env) -> mesh_tower::Stats {
    for _ in 0..500 {
        let stats = env.handle.stats();
        if stats
            .clusters()
            .iter()
            .all(|c| c.active_requests() == 0 && c.pending_requests() == 0)
        {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("requests still active after 5 s");
}
