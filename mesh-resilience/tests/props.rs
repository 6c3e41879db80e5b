//! Property tests for the invariants that have a space of inputs.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use mesh_model::{GrpcStatus, RetryCondition, RetryOn};
use mesh_resilience::{
    Admission, Backoff, ConnectionPool, Deadlines, Outcome, OutlierConfig, OutlierDetector,
    PendingTicket, PoolLimits, Protocol, RequestPermit, RetryBudget, RetryDecision, RetryPermit,
    RetryPolicy, RetryState,
};
use proptest::prelude::*;
use support::{ms, t0};

const GO_CODES: &[u16] = &[
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

fn retry_on() -> impl Strategy<Value = RetryOn> {
    let conditions: Vec<RetryCondition> = RetryCondition::all().collect();
    (
        proptest::sample::subsequence(conditions.clone(), 0..=conditions.len()),
        proptest::sample::subsequence(GO_CODES.to_vec(), 0..4),
    )
        .prop_map(|(conds, codes)| {
            let mut on = RetryOn::empty();
            for c in conds {
                on = on.with(c);
            }
            for code in codes {
                on = on.with_status_code(code).unwrap();
            }
            on
        })
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (100u16..600).prop_map(|s| Outcome::response(StatusCode::from_u16(s).unwrap())),
        (0u32..17, any::<bool>()).prop_map(|(g, rl)| Outcome::Response {
            status: StatusCode::OK,
            grpc_status: GrpcStatus::from_code(g),
            rate_limited: rl,
        }),
        Just(Outcome::ConnectFailure),
        (any::<bool>(), any::<bool>()).prop_map(|(sent, h3)| Outcome::Reset {
            request_sent: sent,
            http3: h3
        }),
        Just(Outcome::RefusedStream),
        Just(Outcome::Timeout),
        Just(Outcome::Overflow),
    ]
}

struct Run {
    retries: u32,
    max_attempts: u64,
    attempts: u32,
    /// (attempt start, attempt end) in ms since t0.
    spans: Vec<(u64, u64)>,
    end: u64,
}

/// The scripted driver of `support::drive`, but tolerant of any script length.
fn simulate(policy: &RetryPolicy, script: &[(u64, Outcome, u64)]) -> Run {
    let t = t0();
    let mut pool = ConnectionPool::new(PoolLimits::default());
    let mut state = RetryState::new(policy, t);
    let mut now = t;
    let mut spans = Vec::new();
    let mut retries = 0;
    for &(took, outcome, roll) in script.iter().cycle().take(200) {
        let start = now;
        let finish = now + ms(took);
        let (at, outcome) = match state.attempt_deadline(now) {
            Some(d) if d <= finish => (d, Outcome::Timeout),
            _ => (finish, outcome),
        };
        now = at;
        spans.push((since(t, start), since(t, now)));
        match state.on_outcome(outcome, now, roll, &mut pool) {
            RetryDecision::Retry { after } => {
                retries += 1;
                now += after;
            }
            RetryDecision::Done(_) => break,
        }
    }
    assert!(state.done_reason().is_some(), "200 attempts without an end");
    assert_eq!(pool.retries_in_flight(), 0);
    Run {
        retries,
        max_attempts: policy.max_attempts(),
        attempts: state.attempt(),
        spans,
        end: since(t, now),
    }
}

fn since(t: Instant, now: Instant) -> u64 {
    (now - t).as_millis() as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn attempts_never_exceed_one_plus_retries(
        retries in 0u32..8,
        on in retry_on(),
        script in proptest::collection::vec((0u64..50, outcome(), any::<u64>()), 1..12),
    ) {
        let policy = RetryPolicy::new(retries, on);
        let run = simulate(&policy, &script);
        prop_assert!(run.retries <= run.retries_allowed());
        prop_assert!(u64::from(run.attempts) <= run.max_attempts);
        prop_assert_eq!(run.spans.len() as u64, u64::from(run.attempts));
    }

    #[test]
    fn elapsed_never_exceeds_the_route_timeout(
        retries in 0u32..10,
        on in retry_on(),
        route in 1u64..3000,
        per_try in proptest::option::of(1u64..1000),
        base in 1u64..200,
        script in proptest::collection::vec((0u64..2000, outcome(), any::<u64>()), 1..12),
    ) {
        let policy = RetryPolicy::new(retries, on)
            .with_backoff(Backoff::new(ms(base)).unwrap())
            .with_deadlines(Deadlines::new(Some(ms(route)), per_try.map(ms)).unwrap());
        let run = simulate(&policy, &script);
        for (start, end) in &run.spans {
            prop_assert!(start < &route || *start == 0, "attempt started at {start} >= {route}");
            prop_assert!(*end <= route, "attempt ended at {end} > {route}");
        }
        prop_assert!(run.end <= route);
    }

    #[test]
    fn backoff_within_its_window(
        base in 1u64..10_000,
        extra in proptest::option::of(0u64..100_000),
        retry in 0u32..80,
        roll in any::<u64>(),
    ) {
        let b = match extra {
            Some(e) => Backoff::with_max(ms(base), ms(base + e)).unwrap(),
            None => Backoff::new(ms(base)).unwrap(),
        };
        let w = b.window(retry);
        prop_assert!(w >= b.base() && w <= b.max());
        prop_assert!(b.window(retry + 1) >= w);
        let d = b.delay(retry, roll);
        prop_assert!(d < w);
        prop_assert_eq!(d.as_millis() as u64, roll % w.as_millis() as u64);
    }

    #[test]
    fn retry_state_backoff_follows_the_windows(
        base in 1u64..500,
        rolls in proptest::collection::vec(any::<u64>(), 1..15),
    ) {
        let backoff = Backoff::new(ms(base)).unwrap();
        let policy = RetryPolicy::new(rolls.len() as u32, "5xx".parse().unwrap()).with_backoff(backoff);
        let t = t0();
        let mut pool = ConnectionPool::new(PoolLimits::default());
        let mut state = RetryState::new(&policy, t);
        for (i, roll) in rolls.iter().enumerate() {
            let d = state.on_outcome(Outcome::response(StatusCode::BAD_GATEWAY), t, *roll, &mut pool);
            let window = backoff.window(i as u32 + 1);
            prop_assert_eq!(d, RetryDecision::Retry { after: Duration::from_millis(roll % window.as_millis() as u64) });
        }
    }

    #[test]
    fn never_more_ejected_than_the_cap_allows(
        n in 1usize..16,
        percent in 0u32..=100,
        threshold in 1u32..4,
        gateway in 0u32..4,
        split in any::<bool>(),
        steps in proptest::collection::vec((0usize..16, outcome(), 0u64..20_000), 1..300),
    ) {
        let mut b = OutlierConfig::builder()
            .consecutive_5xx_errors(threshold)
            .consecutive_gateway_errors(gateway)
            .max_ejection_percent(percent)
            .split_external_local_origin_errors(split)
            .interval(Duration::from_secs(1))
            .base_ejection_time(Duration::from_secs(3));
        if split {
            b = b.consecutive_local_origin_failures(threshold);
        }
        let config = b.build().unwrap();
        let cap = u64::from(config.max_ejection_percent());
        let t = t0();
        let mut od = OutlierDetector::new(config, 0..n, t);
        let mut now = t;
        for (endpoint, outcome, advance) in steps {
            now += ms(advance);
            if now >= od.next_sweep() {
                od.sweep(now, |_| {});
            }
            od.record(endpoint % n, outcome, now);
            let ejected = (0..n).filter(|e| od.is_ejected(*e)).count();
            prop_assert_eq!(ejected, od.ejected_count());
            prop_assert!(100 * ejected as u64 <= cap * n as u64, "{} of {} ejected at {}%", ejected, n, cap);
        }
    }

    #[test]
    fn late_sweeps_equal_punctual_sweeps(
        n in 1usize..6,
        steps in proptest::collection::vec((0usize..6, 0u64..15_000), 1..80),
    ) {
        let config = OutlierConfig::builder()
            .consecutive_5xx_errors(1)
            .max_ejection_percent(100)
            .interval(Duration::from_secs(2))
            .base_ejection_time(Duration::from_secs(5))
            .max_ejection_time(Duration::from_secs(17))
            .build()
            .unwrap();
        let t = t0();
        let mut punctual = OutlierDetector::new(config, 0..n, t);
        let mut late = OutlierDetector::new(config, 0..n, t);
        let (mut ep, mut el) = (Vec::new(), Vec::new());
        let mut now = t;
        for (e, advance) in steps {
            now += ms(advance);
            while punctual.next_sweep() <= now {
                let s = punctual.next_sweep();
                punctual.sweep(s, |ev| ep.push(ev));
            }
            late.sweep(now, |ev| el.push(ev));
            let o = Outcome::response(StatusCode::INTERNAL_SERVER_ERROR);
            prop_assert_eq!(punctual.record(e % n, o, now), late.record(e % n, o, now));
            prop_assert_eq!(&ep, &el);
            for i in 0..n {
                prop_assert_eq!(punctual.ejection_multiplier(i), late.ejection_multiplier(i));
            }
        }
    }

    #[test]
    fn pool_never_admits_past_its_limits(
        conns in 1u32..5,
        pending_max in 1u32..5,
        requests in 1u32..8,
        max_retries in 1u32..4,
        http2 in proptest::option::of(1u32..3),
        budget in proptest::option::of((0.0f64..=100.0, 0u32..3)),
        ops in proptest::collection::vec((0u8..6, any::<prop::sample::Index>()), 1..200),
    ) {
        let protocol = match http2 {
            Some(s) => Protocol::Http2 { max_concurrent_streams: s },
            None => Protocol::Http1,
        };
        let limits = PoolLimits::default()
            .with_max_connections(conns)
            .with_max_pending_requests(pending_max)
            .with_max_requests(requests)
            .with_max_retries(max_retries)
            .with_protocol(protocol)
            .with_retry_budget(budget.map(|(p, m)| RetryBudget::new(p, m).unwrap()));
        let slots = u64::from(conns) * u64::from(http2.unwrap_or(1));
        let mut pool = ConnectionPool::new(limits);
        let mut permits: Vec<RequestPermit> = Vec::new();
        let mut tickets: Vec<PendingTicket> = Vec::new();
        let mut retry_permits: Vec<RetryPermit> = Vec::new();
        for (op, idx) in ops {
            match op {
                0 => match pool.try_acquire_request() {
                    Ok(Admission::Ready(p)) => permits.push(p),
                    Ok(Admission::Pending(t)) => tickets.push(t),
                    Err(_) => {}
                },
                1 if !permits.is_empty() => {
                    let p = permits.swap_remove(idx.index(permits.len()));
                    let wake = pool.release(p);
                    if wake && !tickets.is_empty() {
                        // A woken request finds its connection.
                        let t = tickets.swap_remove(idx.index(tickets.len()));
                        match pool.try_promote(t) {
                            Ok(Admission::Ready(p)) => permits.push(p),
                            other => prop_assert!(false, "woken request not admitted: {:?}", other),
                        }
                    }
                }
                2 if !tickets.is_empty() => {
                    let t = tickets.swap_remove(idx.index(tickets.len()));
                    match pool.try_promote(t) {
                        Ok(Admission::Ready(p)) => permits.push(p),
                        Ok(Admission::Pending(t)) => tickets.push(t),
                        Err(_) => {}
                    }
                }
                3 if !tickets.is_empty() => {
                    let t = tickets.swap_remove(idx.index(tickets.len()));
                    let _ = pool.cancel_pending(t);
                }
                4 => {
                    let allowed = pool.allowed_retries();
                    if let Ok(r) = pool.try_acquire_retry() {
                        retry_permits.push(r);
                        prop_assert!(u64::from(pool.retries_in_flight()) <= allowed);
                    }
                }
                5 if !retry_permits.is_empty() => {
                    pool.release_retry(retry_permits.swap_remove(idx.index(retry_permits.len())));
                }
                _ => {}
            }
            prop_assert!(pool.active_requests() <= requests);
            prop_assert!(u64::from(pool.active_requests()) <= slots);
            prop_assert!(pool.pending_requests() <= pending_max);
            prop_assert!(pool.retries_in_flight() <= max_retries);
            // Every ticket is pending or holds a handed-over connection counted as active.
            let handed = pool.active_requests() as usize - permits.len();
            prop_assert_eq!(pool.pending_requests() as usize + handed, tickets.len());
        }
        for t in tickets {
            let _ = pool.cancel_pending(t);
        }
        for p in permits {
            let _ = pool.release(p);
        }
        for r in retry_permits {
            pool.release_retry(r);
        }
        prop_assert_eq!(
            (pool.active_requests(), pool.pending_requests(), pool.retries_in_flight()),
            (0, 0, 0)
        );
    }

    #[test]
    fn retry_on_display_round_trips(on in retry_on()) {
        prop_assume!(!on.is_empty());
        let text = on.to_string();
        prop_assert_eq!(text.parse::<RetryOn>().unwrap(), on);
    }

    #[test]
    fn retry_on_parse_then_display_is_stable(
        tokens in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(RetryCondition::all().map(|c| c.as_str().to_owned()).collect::<Vec<_>>()),
                (0i64..700).prop_map(|n| n.to_string()),
                "[a-z0-9+ -]{0,6}",
            ],
            1..6,
        ),
    ) {
        let text = tokens.join(",");
        if let Ok(on) = text.parse::<RetryOn>() {
            prop_assert_eq!(on.to_string().parse::<RetryOn>().unwrap(), on);
        }
    }
}

impl Run {
    fn retries_allowed(&self) -> u32 {
        (self.max_attempts - 1) as u32
    }
}
