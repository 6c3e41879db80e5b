//! Retry timelines: every case is a scripted request with times in ms since t0.

mod support;

use mesh_model::RetryOn;
use mesh_resilience::{
    Backoff, ConnectionPool, Deadlines, DoneReason, Outcome, Overflow, PoolLimits, RetryBudget,
    RetryDecision, RetryPolicy, RetryState,
};
use support::{drive, drive_with_pool, ms, resp, t0, Timeline};

use DoneReason::*;
use RetryDecision::{Done, Retry};

fn retry_after(n: u64) -> RetryDecision {
    Retry { after: ms(n) }
}

fn policy(retries: u32, on: &str, route: Option<u64>, per_try: Option<u64>) -> RetryPolicy {
    RetryPolicy::new(retries, on.parse().unwrap())
        .with_deadlines(Deadlines::new(route.map(ms), per_try.map(ms)).unwrap())
}

struct Case {
    name: &'static str,
    policy: RetryPolicy,
    script: Vec<(u64, Outcome)>,
    roll: u64,
    want: Timeline,
}

fn run(cases: Vec<Case>) {
    for c in cases {
        let (timeline, state) = drive(&c.policy, &c.script, c.roll);
        assert_eq!(timeline, c.want, "{}", c.name);
        assert!(
            u64::from(state.attempt()) <= c.policy.max_attempts(),
            "{}: attempts",
            c.name
        );
    }
}

#[test]
fn istio_default_policy() {
    let d = RetryPolicy::istio_default();
    run(vec![
        Case {
            name: "connect failures: 2 retries with growing backoff windows, then URX",
            policy: d,
            script: vec![(1, Outcome::ConnectFailure); 4],
            roll: 30, // 30 % 25 = 5, 30 % 50 = 30
            want: vec![
                (1, retry_after(5)),
                (7, retry_after(30)),
                (38, Done(AttemptsExhausted)),
            ],
        },
        Case {
            name: "503 is not retried by default since Istio 1.24",
            policy: d,
            script: vec![(3, resp(503))],
            roll: 0,
            want: vec![(3, Done(NotRetriable))],
        },
        Case {
            name: "refused stream then success",
            policy: d,
            script: vec![(2, Outcome::RefusedStream), (4, resp(200))],
            roll: 11,
            want: vec![(2, retry_after(11)), (17, Done(Success))],
        },
        Case {
            name: "a reset after the request was sent is not retried by default",
            policy: d,
            script: vec![(2, Outcome::reset(true))],
            roll: 0,
            want: vec![(2, Done(NotRetriable))],
        },
        Case {
            name: "gRPC UNAVAILABLE in headers is retried",
            policy: d,
            script: vec![
                (
                    2,
                    Outcome::from_status_and_grpc(
                        http::StatusCode::OK,
                        Some(&http::HeaderValue::from_static("14")),
                    ),
                ),
                (2, resp(200)),
            ],
            roll: 1,
            want: vec![(2, retry_after(1)), (5, Done(Success))],
        },
        Case {
            name: "a 4xx is a final answer",
            policy: d,
            script: vec![(2, resp(404))],
            roll: 0,
            want: vec![(2, Done(Success))],
        },
    ]);
}

#[test]
fn per_try_timeout_is_retried_only_by_5xx_gateway_error_and_reset() {
    let hang = (10_000, resp(200)); // never answers within the per-try timeout
    for (on, retried) in [
        ("5xx", true),
        ("gateway-error", true),
        ("reset", true),
        ("connect-failure", false),
        ("reset-before-request", false),
        ("refused-stream", false),
        (
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            false,
        ),
        ("retriable-4xx,503", false),
    ] {
        let p = policy(3, on, None, Some(100));
        let (timeline, _) = drive(&p, &[hang, hang, hang, hang], 0);
        let want: Timeline = if retried {
            vec![
                (100, retry_after(0)),
                (200, retry_after(0)),
                (300, retry_after(0)),
                (400, Done(AttemptsExhausted)),
            ]
        } else {
            vec![(100, Done(NotRetriable))]
        };
        assert_eq!(timeline, want, "retryOn {on}");
    }
}

#[test]
fn route_timeout_spans_attempts_and_backoff() {
    run(vec![
        Case {
            name: "third attempt cut by the route deadline at 300",
            policy: policy(5, "5xx", Some(300), None),
            script: vec![(120, resp(503)); 4],
            roll: 0,
            want: vec![
                (120, retry_after(0)),
                (240, retry_after(0)),
                (300, Done(RouteTimeout)),
            ],
        },
        Case {
            name: "backoff that would end after the deadline ends the request now",
            policy: policy(5, "5xx", Some(100), None),
            script: vec![(90, resp(503))],
            roll: 24, // 90 + 24 >= 100
            want: vec![(90, Done(RouteTimeout))],
        },
        Case {
            name: "backoff ending exactly at the deadline also times out",
            policy: policy(5, "5xx", Some(100), None),
            script: vec![(90, resp(503))],
            roll: 10,
            want: vec![(90, Done(RouteTimeout))],
        },
        Case {
            name: "backoff ending before the deadline retries; the retry gets what is left",
            policy: policy(5, "5xx", Some(100), None),
            script: vec![(90, resp(503)), (50, resp(200))],
            roll: 9,
            want: vec![(90, retry_after(9)), (100, Done(RouteTimeout))],
        },
        Case {
            // Envoy docs: a 3 s timeout and a 2.7 s first attempt leave 0.3 s for the retry.
            name: "3s timeout, 2.7s first attempt",
            policy: policy(2, "5xx", Some(3000), None),
            script: vec![(2700, resp(500)), (250, resp(200))],
            roll: 20,
            want: vec![(2700, retry_after(20)), (2970, Done(Success))],
        },
        Case {
            // Istio docs: attempts 3, backoff 2s, timeout 3s: only one retry.
            name: "2s backoff under a 3s timeout allows one retry",
            policy: policy(3, "5xx", Some(3000), None)
                .with_backoff(Backoff::new(ms(2000)).unwrap()),
            script: vec![(10, resp(503)); 3],
            roll: 1999, // [0,2000) then [0,4000)
            want: vec![(10, retry_after(1999)), (2019, Done(RouteTimeout))],
        },
        Case {
            name: "per-try timeout bounds each try; the route bounds the last",
            policy: policy(5, "reset", Some(250), Some(100)),
            script: vec![(1000, resp(200)); 3],
            roll: 0,
            want: vec![
                (100, retry_after(0)),
                (200, retry_after(0)),
                (250, Done(RouteTimeout)),
            ],
        },
        Case {
            name: "per-try >= route is ignored (finalTimeout): the route timeout fires",
            policy: policy(5, "5xx", Some(100), Some(100)),
            script: vec![(1000, resp(200))],
            roll: 0,
            want: vec![(100, Done(RouteTimeout))],
        },
        Case {
            name: "per-try just below route applies",
            policy: policy(5, "5xx", Some(100), Some(99)),
            script: vec![(1000, resp(200)); 2],
            roll: 0,
            want: vec![(99, retry_after(0)), (100, Done(RouteTimeout))],
        },
        Case {
            name: "a route timeout fires even when the policy would not retry",
            policy: policy(0, "connect-failure", Some(50), None),
            script: vec![(1000, resp(200))],
            roll: 0,
            want: vec![(50, Done(RouteTimeout))],
        },
    ]);
}

#[test]
fn backoff_windows_follow_envoy_code() {
    // roll = u64::MAX: the wait is (2^64 - 1) % window, in 25, 50, 100, 200, 250, 250 windows.
    let roll = u64::MAX;
    let p = policy(6, "5xx", None, None);
    let (timeline, _) = drive(&p, &[(0, resp(500)); 7], roll);
    let waits: Vec<u64> = timeline
        .iter()
        .filter_map(|(_, d)| match d {
            Retry { after } => Some(after.as_millis() as u64),
            Done(_) => None,
        })
        .collect();
    let windows = [25u64, 50, 100, 200, 250, 250];
    assert_eq!(waits, windows.map(|w| roll % w).to_vec());
    assert_eq!(timeline.last().unwrap().1, Done(AttemptsExhausted));
}

#[test]
fn immediate_retries_do_not_advance_backoff() {
    run(vec![
        Case {
            name: "425 in retriable codes is retried at once, the next backoff is still the first window",
            policy: policy(3, "5xx,425", None, None),
            script: vec![(5, resp(425)), (5, resp(503)), (5, resp(200))],
            roll: 49, // 49 % 25 = 24
            want: vec![(5, retry_after(0)), (10, retry_after(24)), (39, Done(Success))],
        },
        Case {
            name: "HTTP/3 post-connect failure is retried at once",
            policy: policy(1, "http3-post-connect-failure", None, None),
            script: vec![
                (5, Outcome::Reset { request_sent: true, http3: true }),
                (5, Outcome::Reset { request_sent: true, http3: true }),
            ],
            roll: 7,
            want: vec![(5, retry_after(0)), (10, Done(AttemptsExhausted))],
        },
    ]);
}

#[test]
fn overflow_and_ratelimited_are_special() {
    run(vec![
        Case {
            name: "pool overflow is never retried, whatever retryOn says",
            policy: policy(
                3,
                "5xx,gateway-error,reset,reset-before-request,connect-failure",
                None,
                None,
            ),
            script: vec![(0, Outcome::Overflow)],
            roll: 0,
            want: vec![(0, Done(NotRetriable))],
        },
        Case {
            name: "x-envoy-ratelimited blocks 5xx retries",
            policy: policy(3, "5xx", None, None),
            script: vec![(
                1,
                Outcome::Response {
                    status: http::StatusCode::SERVICE_UNAVAILABLE,
                    grpc_status: None,
                    rate_limited: true,
                },
            )],
            roll: 0,
            want: vec![(1, Done(NotRetriable))],
        },
        Case {
            name: "retries disabled: failures are final",
            policy: RetryPolicy::disabled(),
            script: vec![(1, resp(500))],
            roll: 0,
            want: vec![(1, Done(NotRetriable))],
        },
        Case {
            name: "retriable but zero retries allowed",
            policy: policy(0, "5xx", None, None),
            script: vec![(1, resp(500))],
            roll: 0,
            want: vec![(1, Done(AttemptsExhausted))],
        },
    ]);
}

#[test]
fn done_is_sticky() {
    let mut pool = ConnectionPool::new(PoolLimits::default());
    let t = t0();
    let mut s = RetryState::new(&policy(3, "5xx", None, None), t);
    assert_eq!(s.on_outcome(resp(200), t, 0, &mut pool), Done(Success));
    assert_eq!(s.on_outcome(resp(500), t, 0, &mut pool), Done(Success));
    assert_eq!(s.done_reason(), Some(Success));
    assert_eq!(s.attempt(), 1);
}

#[test]
fn attempt_deadline_queries() {
    let t = t0();
    // (route, per_try, now offset, expected deadline offset)
    let cases = [
        (None, None, 0, None),
        (Some(1000), None, 300, Some(1000)),
        (None, Some(200), 300, Some(500)),
        (Some(1000), Some(200), 0, Some(200)),
        (Some(1000), Some(200), 900, Some(1000)),
        (Some(1000), Some(1000), 0, Some(1000)),
        (Some(1000), Some(1500), 0, Some(1000)),
    ];
    for (route, per_try, now, want) in cases {
        let p = policy(1, "5xx", route, per_try);
        let s = RetryState::new(&p, t);
        assert_eq!(
            s.attempt_deadline(t + ms(now)),
            want.map(|w| t + ms(w)),
            "{route:?} {per_try:?} @{now}"
        );
        assert_eq!(s.route_deadline(), route.map(|r| t + ms(r)));
    }
}

#[test]
fn max_retries_caps_concurrent_retries_across_requests() {
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_retries(1)
            .with_retry_budget(None),
    );
    let t = t0();
    let p = policy(3, "5xx", None, None);
    let mut a = RetryState::new(&p, t);
    let mut b = RetryState::new(&p, t);
    assert_eq!(a.on_outcome(resp(503), t, 0, &mut pool), retry_after(0));
    assert_eq!(pool.retries_in_flight(), 1);
    // The original failed response is returned with flag UO.
    assert_eq!(
        b.on_outcome(resp(503), t, 0, &mut pool),
        Done(RetryOverflow(Overflow::Retries))
    );
    // a's retry finishes: the slot is given back at its next decision.
    assert_eq!(
        a.on_outcome(resp(200), t + ms(5), 0, &mut pool),
        Done(Success)
    );
    assert_eq!(pool.retries_in_flight(), 0);
    let mut c = RetryState::new(&p, t);
    assert_eq!(c.on_outcome(resp(503), t, 0, &mut pool), retry_after(0));
    // c is abandoned during its backoff: release gives the slot back.
    c.release(&mut pool);
    assert_eq!(pool.retries_in_flight(), 0);
}

#[test]
fn no_retry_budget_by_default_as_under_istio() {
    let t = t0();
    let p = policy(3, "5xx", None, None);
    let mut pool = ConnectionPool::new(PoolLimits::default());
    assert_eq!(pool.limits().retry_budget(), None);
    let mut states: Vec<RetryState> = (0..50).map(|_| RetryState::new(&p, t)).collect();
    let retried = states
        .iter_mut()
        .map(|s| s.on_outcome(resp(503), t, 0, &mut pool))
        .filter(|d| matches!(d, Retry { .. }))
        .count();
    assert_eq!(
        retried, 50,
        "only maxRetries (2^32 - 1) limits concurrent retries"
    );
    for s in &mut states {
        s.release(&mut pool);
    }
    assert_eq!(pool.retries_in_flight(), 0);
}

#[test]
fn the_default_retry_budget_when_asked_for() {
    let t = t0();
    let p = policy(3, "5xx", None, None);
    let mut pool =
        ConnectionPool::new(PoolLimits::default().with_retry_budget(Some(RetryBudget::default())));
    // Few active requests: the minimum of 3 concurrent retries applies.
    let mut states: Vec<RetryState> = (0..4).map(|_| RetryState::new(&p, t)).collect();
    let decisions: Vec<_> = states
        .iter_mut()
        .map(|s| s.on_outcome(resp(503), t, 0, &mut pool))
        .collect();
    assert_eq!(
        decisions,
        [
            retry_after(0),
            retry_after(0),
            retry_after(0),
            Done(RetryOverflow(Overflow::RetryBudget))
        ]
    );
    for s in &mut states {
        s.release(&mut pool);
    }
    assert_eq!(pool.retries_in_flight(), 0);

    // 20 active requests: 20% is 4 concurrent retries.
    let mut permits = Vec::new();
    for _ in 0..20 {
        match pool.try_acquire_request() {
            Ok(mesh_resilience::Admission::Ready(p)) => permits.push(p),
            other => panic!("{other:?}"),
        }
    }
    let mut states: Vec<RetryState> = (0..5).map(|_| RetryState::new(&p, t)).collect();
    let retried = states
        .iter_mut()
        .map(|s| s.on_outcome(resp(503), t, 0, &mut pool))
        .filter(|d| matches!(d, Retry { .. }))
        .count();
    assert_eq!(retried, 4);
    for s in &mut states {
        s.release(&mut pool);
    }
    for permit in permits {
        let _ = pool.release(permit);
    }
    assert_eq!((pool.active_requests(), pool.retries_in_flight()), (0, 0));
}

#[test]
fn route_timeout_during_backoff_gives_the_retry_slot_back() {
    let mut pool = ConnectionPool::new(PoolLimits::default());
    let (timeline, _) = drive_with_pool(
        &policy(3, "5xx", Some(10), None),
        &mut pool,
        &[(9, resp(500))],
        5,
    );
    assert_eq!(timeline, vec![(9, Done(RouteTimeout))]);
    assert_eq!(pool.retries_in_flight(), 0);
}

#[test]
fn previous_hosts_reselection() {
    let t = t0();
    let mut pool = ConnectionPool::new(PoolLimits::default());
    // Istio: host_selection_retry_max_attempts 5, so up to 6 picks on a retry.
    let mut s = RetryState::new(&policy(2, "5xx", None, None), t);
    assert_eq!(
        s.host_picks(),
        2,
        "Envoy: hostSelectionRetryCount() is 1 on a first attempt"
    );
    let mut calls = 0;
    assert_eq!(
        s.select_endpoint(|| {
            calls += 1;
            0
        }),
        0
    );
    assert_eq!(calls, 1, "first attempt: nothing tried yet");
    assert_eq!(s.on_outcome(resp(500), t, 0, &mut pool), retry_after(0));
    assert_eq!(s.host_picks(), 6);
    let mut calls = 0;
    assert_eq!(
        s.select_endpoint(|| {
            calls += 1;
            0
        }),
        0,
        "all picks rejected: keep the last"
    );
    assert_eq!(calls, 6);
    let mut picks = [0usize, 0, 2].into_iter();
    assert_eq!(s.on_outcome(resp(500), t, 0, &mut pool), retry_after(0));
    assert_eq!(s.select_endpoint(|| picks.next().unwrap()), 2);
    assert_eq!(s.tried_endpoints().iter().collect::<Vec<_>>(), [0, 0, 2]);
    assert!(s.should_reselect(2) && !s.should_reselect(1));

    // retryIgnorePreviousHosts: false (or consistent hashing): one pick, repeats allowed.
    let mut s = RetryState::new(&policy(2, "5xx", None, None).with_previous_hosts(false), t);
    s.record_endpoint(0);
    let mut calls = 0;
    assert_eq!(
        s.select_endpoint(|| {
            calls += 1;
            0
        }),
        0
    );
    assert_eq!(calls, 1);
    assert!(!s.should_reselect(0));

    // Envoy's own default of 1 re-selection: 2 picks on a retry.
    let mut s = RetryState::new(
        &policy(2, "5xx", None, None).with_host_selection_retry_max_attempts(1),
        t,
    );
    s.record_endpoint(3);
    assert_eq!(s.on_outcome(resp(500), t, 0, &mut pool), retry_after(0));
    let mut calls = 0;
    s.select_endpoint(|| {
        calls += 1;
        3
    });
    assert_eq!(calls, 2);
}

#[test]
fn attempt_counter_and_policy_accessors() {
    let p = RetryPolicy::new(4, RetryOn::istio_default())
        .with_backoff(Backoff::with_max(ms(10), ms(30)).unwrap());
    assert_eq!(p.max_attempts(), 5);
    assert_eq!(p.backoff().max(), ms(30));
    assert_eq!(p.host_selection_retry_max_attempts(), 5);
    assert!(p.previous_hosts());
    let (timeline, s) = drive(&p, &[(1, Outcome::ConnectFailure); 5], 29);
    // windows 10, 20, 30, 30
    assert_eq!(
        timeline.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        [
            retry_after(9),
            retry_after(9),
            retry_after(29),
            retry_after(29),
            Done(AttemptsExhausted)
        ]
    );
    assert_eq!(s.attempt(), 5);
    assert!(s.is_retry());
    assert_eq!(s.retries_remaining(), 0);
    assert_eq!(
        DoneReason::RetryOverflow(Overflow::RetryBudget).to_string(),
        "retry retryBudget overflow"
    );
}
