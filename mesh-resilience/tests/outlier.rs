//! Outlier detection timelines.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use mesh_model::GrpcStatus;
use mesh_resilience::{
    EjectionReason, InvalidOutlierConfig, Outcome, OutlierConfig, OutlierDetector, OutlierEvent,
};
use support::{resp, t0};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn detector(config: OutlierConfig, n: usize, t: Instant) -> OutlierDetector<usize> {
    OutlierDetector::new(config, 0..n, t)
}

/// Records `outcomes` on `endpoint` at `at`, returning the events.
fn feed(
    od: &mut OutlierDetector<usize>,
    endpoint: usize,
    outcomes: &[Outcome],
    at: Instant,
) -> Vec<OutlierEvent> {
    outcomes
        .iter()
        .filter_map(|o| od.record(endpoint, *o, at))
        .collect()
}

fn sweep(od: &mut OutlierDetector<usize>, at: Instant) -> Vec<OutlierEvent> {
    let mut events = Vec::new();
    od.sweep(at, |e| events.push(e));
    events
}

fn grpc(g: GrpcStatus) -> Outcome {
    Outcome::Response {
        status: StatusCode::OK,
        grpc_status: Some(g),
        rate_limited: false,
    }
}

fn ejected(endpoint: usize, reason: EjectionReason, until: Instant) -> OutlierEvent {
    OutlierEvent::Ejected {
        endpoint,
        reason,
        until,
    }
}

#[test]
fn default_ten_percent_never_ejects_below_ten_endpoints() {
    let t = t0();
    let mut od = detector(OutlierConfig::default(), 9, t);
    let events = feed(&mut od, 0, &[resp(500); 5], t);
    assert_eq!(
        events,
        vec![OutlierEvent::EjectionSkipped {
            endpoint: 0,
            reason: EjectionReason::Consecutive5xx
        }]
    );
    assert!(!od.is_ejected(0));
    let mut od = detector(OutlierConfig::default(), 10, t);
    let events = feed(&mut od, 0, &[resp(500); 5], t);
    assert_eq!(
        events,
        vec![ejected(0, EjectionReason::Consecutive5xx, t + secs(30))]
    );
}

#[test]
fn ejection_cap_rounding() {
    // (endpoints, maxEjectionPercent, how many can be ejected at once)
    let cases = [
        (2, 50, 1),
        (3, 50, 1),
        (4, 50, 2),
        (5, 50, 2),
        (10, 10, 1),
        (9, 10, 0),
        (20, 10, 2),
        (3, 34, 1),
        (3, 67, 2),
        (3, 100, 3),
        (1, 100, 1),
        (1, 99, 0),
        (7, 0, 0), // 0 means the default, 10
    ];
    let t = t0();
    for (n, pct, want) in cases {
        let config = OutlierConfig::builder()
            .consecutive_5xx_errors(1)
            .max_ejection_percent(pct)
            .build()
            .unwrap();
        let mut od = detector(config, n, t);
        for e in 0..n {
            od.record(e, resp(503), t);
        }
        assert_eq!(od.ejected_count(), want, "{n} endpoints at {pct}%");
        assert_eq!((0..n).filter(|e| od.is_ejected(*e)).count(), want);
    }
}

#[test]
fn consecutive_5xx_counts_until_a_success() {
    let t = t0();
    let config = OutlierConfig::builder()
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 2, t);
    assert!(feed(&mut od, 0, &[resp(500), resp(501), resp(502), resp(599)], t).is_empty());
    assert!(
        feed(&mut od, 0, &[resp(404)], t).is_empty(),
        "a non-5xx resets"
    );
    assert!(feed(&mut od, 0, &[resp(500); 4], t).is_empty());
    assert_eq!(
        feed(&mut od, 0, &[resp(500)], t),
        vec![ejected(0, EjectionReason::Consecutive5xx, t + secs(30))]
    );
}

#[test]
fn gateway_errors() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(0) // off
        .consecutive_gateway_errors(3)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 1, t);
    // A non-gateway 5xx resets the gateway counter only.
    assert!(feed(
        &mut od,
        0,
        &[resp(502), resp(503), resp(500), resp(502), resp(503)],
        t
    )
    .is_empty());
    assert_eq!(
        feed(&mut od, 0, &[resp(504)], t),
        vec![ejected(
            0,
            EjectionReason::ConsecutiveGatewayFailure,
            t + secs(30)
        )]
    );

    // Both on: the gateway threshold (3) is reached first on 503s.
    let config = OutlierConfig::builder()
        .consecutive_gateway_errors(3)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 1, t);
    assert_eq!(
        feed(&mut od, 0, &[resp(503); 3], t),
        vec![ejected(
            0,
            EjectionReason::ConsecutiveGatewayFailure,
            t + secs(30)
        )]
    );
}

#[test]
fn local_origin_failures_map_to_503_and_504_without_split() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(0)
        .consecutive_gateway_errors(4)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 1, t);
    let events = feed(
        &mut od,
        0,
        &[
            Outcome::ConnectFailure,
            Outcome::Timeout,
            Outcome::reset(true),
            Outcome::RefusedStream,
        ],
        t,
    );
    assert_eq!(
        events,
        vec![ejected(
            0,
            EjectionReason::ConsecutiveGatewayFailure,
            t + secs(30)
        )]
    );
}

#[test]
fn split_mode_counts_local_failures_apart() {
    let t = t0();
    let config = OutlierConfig::builder()
        .split_external_local_origin_errors(true)
        .consecutive_local_origin_failures(3)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 4, t);
    // Connect failures accumulate.
    assert_eq!(
        feed(&mut od, 0, &[Outcome::ConnectFailure; 3], t),
        vec![ejected(
            0,
            EjectionReason::ConsecutiveLocalOriginFailure,
            t + secs(30)
        )]
    );
    // A response (the attempt had a connection) resets the local counter.
    let events = feed(
        &mut od,
        1,
        &[
            Outcome::ConnectFailure,
            Outcome::reset(false),
            resp(500),
            Outcome::ConnectFailure,
        ],
        t,
    );
    assert!(events.is_empty());
    // Failures after a connection was obtained count 1 each time (Envoy resets the counter on
    // "connect success"): they never accumulate.
    assert!(feed(&mut od, 2, &[Outcome::Timeout; 10], t).is_empty());
    assert!(feed(&mut od, 2, &[Outcome::reset(true); 10], t).is_empty());
    assert!(feed(&mut od, 2, &[Outcome::RefusedStream; 10], t).is_empty());
    // Local failures do not feed the 5xx counter in split mode.
    assert!(feed(
        &mut od,
        3,
        &[
            resp(500),
            resp(500),
            Outcome::ConnectFailure,
            Outcome::ConnectFailure,
            resp(500),
            resp(500)
        ],
        t
    )
    .is_empty());
    assert_eq!(
        feed(&mut od, 3, &[resp(500)], t),
        vec![ejected(3, EjectionReason::Consecutive5xx, t + secs(30))]
    );
}

#[test]
fn split_mode_default_local_threshold_is_five() {
    let t = t0();
    let config = OutlierConfig::builder()
        .split_external_local_origin_errors(true)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    assert_eq!(config.consecutive_local_origin_failures(), Some(5));
    let mut od = detector(config, 1, t);
    assert!(feed(&mut od, 0, &[Outcome::ConnectFailure; 4], t).is_empty());
    assert_eq!(feed(&mut od, 0, &[Outcome::ConnectFailure], t).len(), 1);
}

#[test]
fn http_error_codes_restrict_what_counts() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(3)
        .http_error_codes([429, 503])
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 3, t);
    assert!(
        feed(&mut od, 0, &[resp(500); 10], t).is_empty(),
        "500 is not listed"
    );
    assert!(feed(
        &mut od,
        0,
        &[resp(429), resp(503), resp(500), resp(429), resp(429)],
        t
    )
    .is_empty());
    assert_eq!(feed(&mut od, 0, &[resp(429)], t).len(), 1);
    // Local-origin failures always count.
    assert_eq!(feed(&mut od, 1, &[Outcome::ConnectFailure; 3], t).len(), 1);
}

#[test]
fn grpc_statuses_count_with_their_http_mapping() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(2)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 3, t);
    assert_eq!(
        feed(&mut od, 0, &[grpc(GrpcStatus::Unavailable); 2], t).len(),
        1
    );
    assert!(feed(&mut od, 1, &[grpc(GrpcStatus::NotFound); 5], t).is_empty());
    assert!(feed(&mut od, 1, &[grpc(GrpcStatus::ResourceExhausted); 5], t).is_empty()); // 429
    assert_eq!(
        feed(
            &mut od,
            2,
            &[
                grpc(GrpcStatus::Internal),
                grpc(GrpcStatus::DeadlineExceeded)
            ],
            t
        )
        .len(),
        1
    );
}

#[test]
fn overflow_is_never_counted_and_never_resets() {
    let t = t0();
    let config = OutlierConfig::builder()
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 1, t);
    assert!(feed(&mut od, 0, &[resp(500), resp(500), resp(500), resp(500)], t).is_empty());
    assert!(feed(&mut od, 0, &[Outcome::Overflow; 20], t).is_empty());
    assert_eq!(feed(&mut od, 0, &[resp(500)], t).len(), 1);
}

#[test]
fn ejected_hosts_ignore_results_until_they_return() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(2)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 1, t);
    assert_eq!(feed(&mut od, 0, &[resp(500); 2], t).len(), 1);
    assert!(feed(&mut od, 0, &[resp(500); 7], t + secs(1)).is_empty());
    assert_eq!(od.ejection_count(0), Some(1));
    assert_eq!(
        sweep(&mut od, t + secs(30)),
        vec![OutlierEvent::Unejected { endpoint: 0 }]
    );
    // Counters were reset on return: one error is not enough.
    assert!(feed(&mut od, 0, &[resp(500)], t + secs(31)).is_empty());
    assert_eq!(feed(&mut od, 0, &[resp(500)], t + secs(31)).len(), 1);
}

#[test]
fn sweeps_uneject_and_decay_multipliers() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(1)
        .max_ejection_percent(100)
        .build()
        .unwrap(); // interval 10 s, base 30 s
    let mut od = detector(config, 2, t);
    assert_eq!(od.next_sweep(), t + secs(10));
    // Ejected at 5 s for 30 s: the sweeps at 10, 20, 30 keep it out, the one at 40 returns it.
    assert_eq!(
        feed(&mut od, 0, &[resp(500)], t + secs(5)),
        vec![ejected(0, EjectionReason::Consecutive5xx, t + secs(35))]
    );
    for s in [10, 20, 30] {
        assert!(sweep(&mut od, t + secs(s)).is_empty(), "sweep at {s}");
        assert!(od.is_ejected(0));
    }
    assert_eq!(
        sweep(&mut od, t + secs(40)),
        vec![OutlierEvent::Unejected { endpoint: 0 }]
    );
    assert_eq!(od.ejection_multiplier(0), Some(1));
    // Re-ejected at 41 s: multiplier 2, 60 s, until 101 s; returns at the 110 s sweep.
    assert_eq!(
        feed(&mut od, 0, &[resp(500)], t + secs(41)),
        vec![ejected(0, EjectionReason::Consecutive5xx, t + secs(101))]
    );
    assert_eq!(od.ejected_until(0), Some(t + secs(101)));
    for s in (50..=100).step_by(10) {
        assert!(sweep(&mut od, t + secs(s)).is_empty(), "sweep at {s}");
    }
    assert_eq!(
        sweep(&mut od, t + secs(110)),
        vec![OutlierEvent::Unejected { endpoint: 0 }]
    );
    assert_eq!(od.ejection_multiplier(0), Some(2));
    // Healthy sweeps decay the multiplier one step each.
    sweep(&mut od, t + secs(120));
    assert_eq!(od.ejection_multiplier(0), Some(1));
    sweep(&mut od, t + secs(130));
    assert_eq!(od.ejection_multiplier(0), Some(0));
    sweep(&mut od, t + secs(140));
    assert_eq!(od.ejection_multiplier(0), Some(0));
    assert_eq!(
        feed(&mut od, 0, &[resp(500)], t + secs(141)),
        vec![ejected(0, EjectionReason::Consecutive5xx, t + secs(171))]
    );
    // A sweep is due only at its time.
    assert_eq!(od.next_sweep(), t + secs(150));
    assert!(sweep(&mut od, t + secs(149)).is_empty());
    assert_eq!(od.next_sweep(), t + secs(150));
}

#[test]
fn ejection_time_is_capped() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(1)
        .max_ejection_percent(100)
        .interval(Duration::from_millis(1))
        .build()
        .unwrap();
    assert_eq!(config.max_ejection_time(), secs(300));
    let mut od = detector(config, 1, t);
    let mut now = t;
    let mut times = Vec::new();
    for _ in 0..13 {
        let Some(OutlierEvent::Ejected { until, .. }) = od.record(0, resp(500), now) else {
            panic!("not ejected at {now:?}");
        };
        times.push((until - now).as_secs());
        now = until;
        assert_eq!(
            sweep(&mut od, now),
            vec![OutlierEvent::Unejected { endpoint: 0 }]
        );
    }
    assert_eq!(
        times,
        [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300]
    );
    // Envoy stops incrementing once multiplier × base ≥ max + base.
    assert_eq!(od.ejection_multiplier(0), Some(11));

    // A base above 300 s raises the cap to the base.
    let config = OutlierConfig::builder()
        .base_ejection_time(secs(400))
        .build()
        .unwrap();
    assert_eq!(config.max_ejection_time(), secs(400));
}

#[test]
fn late_sweep_equals_punctual_sweeps() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(1)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let script: &[(u64, usize)] = &[(1, 0), (3, 1), (41, 0), (45, 2), (112, 0), (118, 1)];
    let mut punctual = detector(config, 3, t);
    let mut late = detector(config, 3, t);
    let mut punctual_events = Vec::new();
    let mut late_events = Vec::new();
    for &(at, e) in script {
        let now = t + secs(at);
        while punctual.next_sweep() <= now {
            let s = punctual.next_sweep();
            punctual.sweep(s, |ev| punctual_events.push(ev));
        }
        late.sweep(now, |ev| late_events.push(ev));
        assert_eq!(
            punctual.record(e, resp(500), now),
            late.record(e, resp(500), now)
        );
    }
    let end = t + secs(3600);
    while punctual.next_sweep() <= end {
        let s = punctual.next_sweep();
        punctual.sweep(s, |ev| punctual_events.push(ev));
    }
    late.sweep(end, |ev| late_events.push(ev));
    assert_eq!(punctual_events, late_events);
    assert_eq!(punctual.next_sweep(), late.next_sweep());
    for e in 0..3 {
        assert_eq!(punctual.ejection_multiplier(e), late.ejection_multiplier(e));
        assert_eq!(punctual.is_ejected(e), late.is_ejected(e));
    }
    assert_eq!(late.ejected_count(), 0);
}

#[test]
fn panic_threshold() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(1)
        .max_ejection_percent(100)
        .min_health_percent(50)
        .build()
        .unwrap();
    let mut od = detector(config, 4, t);
    od.record(0, resp(500), t);
    od.record(1, resp(500), t);
    assert!(!od.in_panic(), "50% healthy is not below 50%");
    assert!(!od.is_available(0) && od.is_available(2));
    od.record(2, resp(500), t);
    assert!(od.in_panic(), "25% healthy < 50%");
    assert!((0..4).all(|e| od.is_available(e)));
    assert!(!od.is_available(4), "unknown index");

    // Istio's default 0 never panics, even with every host ejected.
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(1)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 2, t);
    od.record(0, resp(500), t);
    od.record(1, resp(500), t);
    assert_eq!(od.ejected_count(), 2);
    assert!(!od.in_panic());
    assert!(!od.is_available(0) && !od.is_available(1));
}

#[test]
fn endpoint_updates_keep_state() {
    let t = t0();
    let config = OutlierConfig::builder()
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = OutlierDetector::new(config, ["a", "b"], t);
    feed_key(&mut od, "a", 4, t);
    feed_key(&mut od, "b", 5, t);
    assert!(od.is_ejected(1));
    od.update_endpoints(["c", "b", "a"]);
    assert_eq!(od.len(), 3);
    assert_eq!(od.index_of(&"b"), Some(1));
    assert!(od.is_ejected(1), "b stays ejected");
    assert_eq!(od.ejected_count(), 1);
    assert_eq!(od.ejected_until(1), Some(t + secs(30)));
    // a kept its 4 consecutive errors: one more ejects it.
    assert!(od.record(2, resp(500), t).is_some());
    // c starts clean.
    assert_eq!(od.ejection_count(0), Some(0));
    // Removing an ejected endpoint frees its share of the cap.
    od.update_endpoints(["c"]);
    assert_eq!(od.ejected_count(), 0);
    assert_eq!(od.key(0), Some(&"c"));
    // Stale indexes are ignored.
    assert_eq!(od.record(5, resp(500), t), None);
    assert!(!od.is_ejected(5));
}

fn feed_key(od: &mut OutlierDetector<&'static str>, key: &'static str, n: usize, t: Instant) {
    let i = od.index_of(&key).unwrap();
    for _ in 0..n {
        od.record(i, resp(500), t);
    }
}

#[test]
fn config_reload_keeps_ejections() {
    let t = t0();
    let config = OutlierConfig::builder()
        .consecutive_5xx_errors(1)
        .max_ejection_percent(100)
        .build()
        .unwrap();
    let mut od = detector(config, 2, t);
    od.record(0, resp(500), t);
    let faster = OutlierConfig::builder()
        .consecutive_5xx_errors(1)
        .max_ejection_percent(100)
        .interval(secs(1))
        .build()
        .unwrap();
    od.set_config(faster);
    assert_eq!(od.next_sweep(), t + secs(1));
    assert!(od.is_ejected(0));
    assert!(sweep(&mut od, t + secs(29)).is_empty());
    assert_eq!(
        sweep(&mut od, t + secs(30)),
        vec![OutlierEvent::Unejected { endpoint: 0 }]
    );
}

#[test]
fn config_validation() {
    use InvalidOutlierConfig::*;
    let b = OutlierConfig::builder;
    assert_eq!(
        b().consecutive_local_origin_failures(3).build(),
        Err(LocalOriginWithoutSplit)
    );
    assert!(b().consecutive_local_origin_failures(0).build().is_ok());
    assert_eq!(
        b().max_ejection_percent(101).build(),
        Err(MaxEjectionPercent(101))
    );
    assert_eq!(
        b().min_health_percent(101).build(),
        Err(MinHealthPercent(101))
    );
    assert_eq!(b().interval(Duration::ZERO).build(), Err(ZeroInterval));
    assert_eq!(
        b().base_ejection_time(Duration::ZERO).build(),
        Err(ZeroBaseEjectionTime)
    );
    assert_eq!(
        b().base_ejection_time(secs(60))
            .max_ejection_time(secs(59))
            .build(),
        Err(MaxEjectionTimeBelowBase)
    );
    assert_eq!(
        b().http_error_codes([500, 600]).build(),
        Err(ErrorCode(600))
    );
    assert_eq!(b().http_error_codes([99]).build(), Err(ErrorCode(99)));
    assert_eq!(
        b().interval(secs(u64::MAX / 2)).build(),
        Err(DurationTooLarge)
    );
    let c = b().http_error_codes([]).build().unwrap();
    assert_eq!(c.http_error_codes(), None, "an empty list means all 5xx");
    let d = OutlierConfig::default();
    assert_eq!(b().build().unwrap(), d);
    assert_eq!(
        (
            d.consecutive_5xx(),
            d.consecutive_gateway_errors(),
            d.consecutive_local_origin_failures()
        ),
        (Some(5), None, None)
    );
    assert_eq!(
        (
            d.interval(),
            d.base_ejection_time(),
            d.max_ejection_percent(),
            d.min_health_percent()
        ),
        (secs(10), secs(30), 10, 0)
    );
    assert_eq!(
        b().consecutive_5xx_errors(0)
            .build()
            .unwrap()
            .consecutive_5xx(),
        None
    );
}
