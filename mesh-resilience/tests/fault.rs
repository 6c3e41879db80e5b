//! Fault injection and mirroring decisions.

mod support;

use http::StatusCode;
use mesh_resilience::{
    AbortKind, FaultAbort, FaultAction, FaultDelay, FaultInjection, GrpcStatus, InvalidFault,
    MirrorPolicy, Percentage,
};
use support::ms;

fn pct(v: f64) -> Percentage {
    Percentage::from_percent(v).unwrap()
}

#[test]
fn delay_then_abort_with_independent_rolls() {
    let fault = FaultInjection::new(
        Some(FaultDelay::new(ms(5000), pct(50.0)).unwrap()),
        Some(FaultAbort::http(503, pct(10.0)).unwrap()),
    )
    .unwrap();
    let abort = AbortKind::Http(StatusCode::SERVICE_UNAVAILABLE);
    // (delay roll, abort roll, action)
    let cases = [
        (
            0,
            0,
            FaultAction::DelayThenAbort {
                delay: ms(5000),
                abort,
            },
        ),
        (
            499_999,
            99_999,
            FaultAction::DelayThenAbort {
                delay: ms(5000),
                abort,
            },
        ),
        (500_000, 99_999, FaultAction::Abort(abort)),
        (499_999, 100_000, FaultAction::Delay(ms(5000))),
        (500_000, 100_000, FaultAction::None),
        (
            1_000_000,
            1_000_000,
            FaultAction::DelayThenAbort {
                delay: ms(5000),
                abort,
            },
        ),
        (1_500_000, 1_150_000, FaultAction::None),
    ];
    for (d, a, want) in cases {
        assert_eq!(fault.decide(d, a), want, "rolls {d} {a}");
        let split = (fault.delay_for(d), fault.abort_for(a));
        let recombined = match split {
            (None, None) => FaultAction::None,
            (Some(d), None) => FaultAction::Delay(d),
            (None, Some(a)) => FaultAction::Abort(a),
            (Some(delay), Some(abort)) => FaultAction::DelayThenAbort { delay, abort },
        };
        assert_eq!(recombined, want);
    }
}

#[test]
fn smallest_percentage_is_one_per_million() {
    let fault =
        FaultInjection::new(None, Some(FaultAbort::http(500, pct(0.0001)).unwrap())).unwrap();
    let hits = (0..3_000_000u64)
        .filter(|r| fault.abort_for(*r).is_some())
        .count();
    assert_eq!(hits, 3);
    assert!(fault.abort_for(0).is_some() && fault.abort_for(1).is_none());
}

#[test]
fn istio_percentage_fields() {
    let p = FaultInjection::percentage_from_istio;
    assert_eq!(
        p(Some(12.5), Some(90)).unwrap().parts_per_million(),
        125_000,
        "percentage wins"
    );
    assert_eq!(
        p(None, Some(90)).unwrap().parts_per_million(),
        900_000,
        "deprecated percent"
    );
    assert_eq!(
        p(None, None).unwrap(),
        Percentage::ZERO,
        "unset means never"
    );
    assert!(p(Some(101.0), None).is_err());
    // A fault with no percentage never fires.
    let f = FaultInjection::new(
        Some(FaultDelay::new(ms(1), p(None, None).unwrap()).unwrap()),
        None,
    )
    .unwrap();
    assert!((0..10_000u64).all(|r| f.decide(r, r) == FaultAction::None));
}

#[test]
fn grpc_abort() {
    let f = FaultInjection::new(
        None,
        Some(FaultAbort::grpc(
            GrpcStatus::from_name("UNAVAILABLE").unwrap(),
            Percentage::HUNDRED,
        )),
    )
    .unwrap();
    let FaultAction::Abort(kind) = f.decide(7, 7) else {
        panic!()
    };
    assert_eq!(kind.http_status(), StatusCode::OK);
    assert_eq!(kind.grpc_status(), Some(GrpcStatus::Unavailable));
    assert_eq!(mesh_resilience::FAULT_ABORT_BODY, "fault filter abort");
    let http = AbortKind::Http(StatusCode::IM_A_TEAPOT);
    assert_eq!(
        (http.http_status(), http.grpc_status()),
        (StatusCode::IM_A_TEAPOT, None)
    );
}

#[test]
fn validation() {
    assert_eq!(FaultInjection::new(None, None), Err(InvalidFault::Empty));
    assert_eq!(
        FaultDelay::new(ms(0), Percentage::HUNDRED),
        Err(InvalidFault::ZeroDelay)
    );
    for bad in [0, 100, 199, 600, 601] {
        assert_eq!(
            FaultAbort::http(bad, Percentage::HUNDRED),
            Err(InvalidFault::HttpStatus(bad))
        );
    }
    for good in [200, 418, 503, 599] {
        assert!(FaultAbort::http(good, Percentage::HUNDRED).is_ok());
    }
}

#[test]
fn mirror_percentages() {
    // (mirrorPercentage, mirrorPercent, parts per million)
    let cases = [
        (None, None, 1_000_000),
        (Some(0.0), None, 0),
        (Some(0.0), Some(50), 0),
        (Some(25.5), Some(50), 255_000),
        (None, Some(50), 500_000),
        (None, Some(0), 0),
        (None, Some(200), 1_000_000),
    ];
    for (value, percent, ppm) in cases {
        let m = MirrorPolicy::from_istio(value, percent).unwrap();
        assert_eq!(
            m.percentage().parts_per_million(),
            ppm,
            "{value:?} {percent:?}"
        );
        assert_eq!(m.is_enabled(), ppm > 0);
        let hits = (0..1_000_000u64)
            .step_by(1000)
            .filter(|r| m.should_mirror(*r))
            .count() as u32;
        assert_eq!(hits, ppm.div_ceil(1000), "{value:?} {percent:?}");
    }
    assert!(MirrorPolicy::from_istio(Some(-1.0), None).is_err());
    assert!(MirrorPolicy::default().should_mirror(999_999));
}
