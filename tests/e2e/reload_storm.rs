//! Reload storm: up to 100 reloads a second under continuous load, alternating two valid weight
//! splits (`MeshHandle::reload`) with an invalid file set (`MeshHandle::reload_files`) whose
//! routes would send everything to a backend that must receive nothing.
//!
//! The storm lasts `MESH_RELOAD_STORM_SECS` seconds (default 5, so CI stays fast):
//!
//! ```text
//! MESH_RELOAD_STORM_SECS=30 cargo test -p mesh-tests --test e2e reload_storm -- --nocapture
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use mesh_tests::Backend;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::support::leak::settled;
use crate::support::mesh::mesh;
use crate::support::requests::{drain, full};
use crate::support::yaml::{api_entry, api_rule, load, route_to, split, V1_V2_V3};

/// Splits `v1`:`v2` between subsets v1 and v2, with no retries.
fn split_without_retries(v1: u32, v2: u32) -> String {
    split(v1, v2, "    retries: {attempts: 0}\n")
}

/// Sends everything to v3, and is invalid (a timeout that is not a duration): it must never
/// take effect.
fn forbidden() -> String {
    route_to("v3", "    timeout: soon\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_storm_under_load_loses_nothing_and_never_applies_an_invalid_config() {
    let secs: u64 = std::env::var("MESH_RELOAD_STORM_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .clamp(1, 600);
    let v1 = Backend::start_version("v1", "v1").await.unwrap();
    let v2 = Backend::start_version("v2", "v2").await.unwrap();
    let v3 = Backend::start_version("v3-forbidden", "v3").await.unwrap();
    let entry = api_entry(&[
        (v1.addr().port(), "v1"),
        (v2.addr().port(), "v2"),
        (v3.addr().port(), "v3"),
    ]);
    let dr = api_rule(V1_V2_V3, "");
    let split_a = load(&[&split_without_retries(90, 10), &dr, &entry]);
    let split_b = load(&[&split_without_retries(10, 90), &dr, &entry]);

    let dir = std::env::temp_dir().join(format!("mesh-reload-storm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("api.yaml");
    let others = dir.join("rest.yaml");
    std::fs::write(&bad, forbidden()).unwrap();
    std::fs::write(&others, format!("{dr}---\n{entry}")).unwrap();

    let (svc, handle) = mesh(split_a.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let mut load_tasks = JoinSet::new();
    for w in 0..4 {
        let svc = svc.clone();
        let stop = Arc::clone(&stop);
        load_tasks.spawn(async move {
            let (mut sent, mut failures) = (0u64, Vec::new());
            // Bounded in count as well as by the storm.
            while !stop.load(Ordering::Relaxed) && sent < 2_000_000 {
                let body = format!("w{w}-{sent}");
                let path = format!("/s/{w}/{sent}");
                // The configs set no timeout: the guard turns a hung request into a failure
                // instead of a hung test.
                let call = svc.clone().oneshot(full("POST", &path, body));
                let Ok(result) = tokio::time::timeout(Duration::from_secs(20), call).await else {
                    failures.push(format!("{path}: no answer within 20 s"));
                    sent += 1;
                    continue;
                };
                match result {
                    Ok(res) if res.status() == StatusCode::OK => {
                        match tokio::time::timeout(Duration::from_secs(20), drain(res.into_body()))
                            .await
                        {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => failures.push(format!("{path}: body: {e}")),
                            Err(_) => failures.push(format!("{path}: body hung")),
                        }
                    }
                    Ok(res) => failures.push(format!("status {}", res.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                sent += 1;
            }
            (sent, failures)
        });
    }

    // The storm runs on a blocking thread: compiling a config is synchronous work, and the two
    // runtime workers stay free for the load.
    let storm_handle = handle.clone();
    let (bad_path, others_path) = (bad.clone(), others.clone());
    let (valid, refused, storm) = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        let period = Duration::from_millis(10);
        let (mut valid, mut refused) = (0u64, 0u64);
        let mut next = start;
        let mut step = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            match step % 4 {
                0 => {
                    storm_handle.reload(split_b.clone()).expect("valid");
                    valid += 1;
                }
                2 => {
                    storm_handle.reload(split_a.clone()).expect("valid");
                    valid += 1;
                }
                _ => {
                    let err = storm_handle
                        .reload_files(&[&bad_path, &others_path])
                        .expect_err("an invalid config is refused");
                    assert!(err.to_string().contains("soon"), "{err}");
                    refused += 1;
                }
            }
            step += 1;
            // At most one reload per 10 ms; a late reload does not make the next one early.
            next = (next + period).max(std::time::Instant::now());
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
        (valid, refused, start.elapsed())
    })
    .await
    .expect("the storm did not panic");
    stop.store(true, Ordering::Relaxed);

    let mut sent = 0;
    while let Some(r) = load_tasks.join_next().await {
        let (n, failures) = r.unwrap();
        assert!(
            failures.is_empty(),
            "{} failures during the storm, first: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        sent += n;
    }
    let stats = settled(&handle).await;
    println!(
        "reload storm: {secs} s, {} reloads ({valid} valid, {refused} refused) = {:.0}/s, {sent} requests = {:.0}/s, 0 failed",
        valid + refused,
        (valid + refused) as f64 / storm.as_secs_f64(),
        sent as f64 / storm.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&dir);

    assert!(valid >= 2 && refused >= 2, "the storm reloaded both ways");
    assert_eq!(v3.count(), 0, "the invalid config never took effect");
    assert!(
        stats.clusters().iter().all(|c| c.subset() != Some("v3")),
        "no v3 cluster was ever used"
    );
    assert!(v1.count() > 0 && v2.count() > 0);
    assert_eq!(v1.count() + v2.count(), sent, "nothing lost or duplicated");
    assert_eq!(stats.totals().requests, sent);
    assert_eq!(stats.totals().failures, 0);
    assert!(stats
        .clusters()
        .iter()
        .all(|c| c.active_requests() == 0 && c.pending_requests() == 0));
}
