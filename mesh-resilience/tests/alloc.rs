//! Decisions never allocate: a counting global allocator watches the hot paths.
//!
//! This file holds a single test so that no other test thread allocates while it measures.

mod support;

use std::alloc::System;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use mesh_model::Percentage;
use mesh_resilience::*;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use support::{ms, t0};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Runs `f` and returns how many allocations (and reallocations) it made.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let region = Region::new(GLOBAL);
    let r = f();
    let stats = region.change();
    (stats.allocations + stats.reallocations, r)
}

#[test]
fn hot_paths_do_not_allocate() {
    let t = t0();
    // Everything built up front: construction may allocate, decisions may not.
    let policy = RetryPolicy::new(3, "5xx,connect-failure,503".parse().unwrap())
        .with_deadlines(Deadlines::new(Some(ms(1000)), Some(ms(100))).unwrap());
    let mut pool = ConnectionPool::new(PoolLimits::default().with_max_connections(1));
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(2)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = OutlierDetector::new(config, ["a", "b", "c"], t);
    let fault = FaultInjection::new(
        Some(FaultDelay::new(ms(10), Percentage::from_value(50.0).unwrap()).unwrap()),
        Some(FaultAbort::http(503, Percentage::HUNDRED).unwrap()),
    )
    .unwrap();
    let mirror = MirrorPolicy::new(Percentage::from_value(10.0).unwrap());
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from_static("14"));

    // A retry decision (retry, then done), with the state, endpoint selection and deadline.
    let (n, decisions) = allocations(|| {
        let mut retry = RetryState::new(&policy, t);
        let _ = retry.attempt_deadline(t);
        let e = retry.select_endpoint(|| 0);
        let d1 = retry.on_outcome(
            Outcome::response(StatusCode::BAD_GATEWAY),
            t + ms(5),
            17,
            &mut pool,
        );
        let e2 = retry.select_endpoint(|| (e + 1) % 3);
        let d2 = retry.on_outcome(Outcome::ConnectFailure, t + ms(30), 17, &mut pool);
        let d3 = retry.on_outcome(Outcome::response(StatusCode::OK), t + ms(60), 17, &mut pool);
        (d1, d2, d3, e2)
    });
    assert_eq!(n, 0, "retry decisions allocated");
    assert!(matches!(decisions.0, RetryDecision::Retry { .. }));
    assert_eq!(decisions.2, RetryDecision::Done(DoneReason::Success));

    // A pool admission and release, including the pending path.
    let (n, counts) = allocations(|| {
        let Ok(Admission::Ready(first)) = pool.try_acquire_request() else {
            unreachable!()
        };
        let Ok(Admission::Pending(ticket)) = pool.try_acquire_request() else {
            unreachable!()
        };
        let woke = pool.release(first);
        let Ok(Admission::Ready(second)) = pool.try_promote(ticket) else {
            unreachable!()
        };
        let _ = pool.release(second);
        let r = pool.try_acquire_retry().unwrap();
        pool.release_retry(r);
        (woke, pool.active_requests(), pool.pending_requests())
    });
    assert_eq!(n, 0, "pool admission allocated");
    assert_eq!(counts, (true, 0, 0));

    // Outlier records, an ejection, and the sweep that returns the host.
    let (n, events) = allocations(|| {
        let a = od.record(1, Outcome::response(StatusCode::INTERNAL_SERVER_ERROR), t);
        let b = od.record(1, Outcome::Timeout, t);
        let mut returned = 0;
        od.sweep(t + Duration::from_secs(40), |_| returned += 1);
        (a, b, returned, od.is_available(1))
    });
    assert_eq!(n, 0, "outlier detection allocated");
    assert!(events.0.is_none() && matches!(events.1, Some(OutlierEvent::Ejected { .. })));
    assert_eq!((events.2, events.3), (1, true));

    // Faults, mirrors, outcome classification.
    let (n, _) = allocations(|| {
        let a = fault.decide(1, 2);
        let b = mirror.should_mirror(3);
        let o = Outcome::from_headers(StatusCode::OK, &headers);
        let c = mesh_resilience::retry::would_retry(policy.retry_on(), &o);
        (a, b, c)
    });
    assert_eq!(n, 0, "fault, mirror or outcome allocated");

    // The counter itself works: an allocation is seen.
    let (n, v) = allocations(|| vec![1u8; 16]);
    assert!(n >= 1 && v.len() == 16);
}
