//! Fault injection and mirroring decisions.

mod support;

use http::StatusCode;
use mesh_model::{GrpcStatus, Percentage};
use mesh_resilience::{
    AbortKind, FaultAbort, FaultAction, FaultDelay, FaultInjection, InvalidFault, MirrorPolicy,
};
use support::ms;

fn pct(v: f64) -> Percentage {
    Percentage::from_value(v).unwrap()
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
fn a_fault_at_zero_percent_never_fires() {
    // mesh-model resolves an absent percentage to 0 % (Istio's default for faults).
    let f = FaultInjection::new(
        Some(FaultDelay::new(ms(1), Percentage::ZERO).unwrap()),
        Some(FaultAbort::http(503, Percentage::ZERO).unwrap()),
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
    for bad in [0, 100, 199, 601, 999] {
        assert_eq!(
            FaultAbort::http(bad, Percentage::HUNDRED),
            Err(InvalidFault::HttpStatus(bad))
        );
    }
    for good in [200, 418, 503, 599, 600] {
        assert!(FaultAbort::http(good, Percentage::HUNDRED).is_ok());
    }
}

#[test]
fn mirror_percentages() {
    // Parts per million; mesh-model resolves Istio's fields (absent: 100 %) into them.
    for ppm in [1_000_000u32, 0, 255_000, 500_000] {
        let m = MirrorPolicy::new(Percentage::from_per_million(ppm));
        assert_eq!(m.percentage().per_million(), ppm);
        assert_eq!(m.is_enabled(), ppm > 0);
        let hits = (0..1_000_000u64)
            .step_by(1000)
            .filter(|r| m.should_mirror(*r))
            .count() as u32;
        assert_eq!(hits, ppm.div_ceil(1000), "{ppm}");
    }
    assert!(MirrorPolicy::default().should_mirror(999_999));
}
