//! Envoy's retry conditions, outcome by outcome (`retryOn` parsing is tested in mesh-model).

mod support;

use http::StatusCode;
use mesh_model::{GrpcStatus, RetryCondition, RetryOn};
use mesh_resilience::retry::would_retry;
use mesh_resilience::Outcome;
use support::resp;

#[test]
fn istio_default_conditions() {
    let d = RetryOn::istio_default();
    let on: Vec<_> = d.conditions().collect();
    assert_eq!(
        on,
        [
            RetryCondition::ConnectFailure,
            RetryCondition::RefusedStream,
            RetryCondition::RetriableStatusCodes,
            RetryCondition::Cancelled,
            RetryCondition::Unavailable
        ]
    );
    assert!(
        d.status_codes().is_empty(),
        "503 left the default in Istio 1.24"
    );
    assert!(!would_retry(&d, &resp(503)));
}

#[test]
fn with_status_code_bounds() {
    let on = RetryOn::empty().with_status_code(599).unwrap();
    assert!(on.contains(RetryCondition::RetriableStatusCodes));
    assert!(would_retry(&on, &resp(599)));
    assert!(RetryOn::empty().with_status_code(600).is_err());
    assert!(RetryOn::empty().with_status_code(99).is_err());
}

fn grpc(g: GrpcStatus) -> Outcome {
    Outcome::Response {
        status: StatusCode::OK,
        grpc_status: Some(g),
        rate_limited: false,
    }
}

fn limited(code: u16) -> Outcome {
    Outcome::Response {
        status: StatusCode::from_u16(code).unwrap(),
        grpc_status: None,
        rate_limited: true,
    }
}

/// The full matrix: for each single `retryOn`, the outcomes Envoy retries; every other
/// outcome must not be retried.
#[test]
fn condition_matrix() {
    let reset_before = Outcome::reset(false);
    let reset_after = Outcome::reset(true);
    let h3_reset = Outcome::Reset {
        request_sent: true,
        http3: true,
    };
    let all: Vec<(&str, Outcome)> = vec![
        ("200", resp(200)),
        ("404", resp(404)),
        ("409", resp(409)),
        ("425", resp(425)),
        ("500", resp(500)),
        ("501", resp(501)),
        ("502", resp(502)),
        ("503", resp(503)),
        ("504", resp(504)),
        ("grpc-cancelled", grpc(GrpcStatus::Cancelled)),
        ("grpc-deadline", grpc(GrpcStatus::DeadlineExceeded)),
        ("grpc-internal", grpc(GrpcStatus::Internal)),
        ("grpc-exhausted", grpc(GrpcStatus::ResourceExhausted)),
        ("grpc-unavailable", grpc(GrpcStatus::Unavailable)),
        ("grpc-unknown", grpc(GrpcStatus::Unknown)),
        ("limited-503", limited(503)),
        ("limited-429", limited(429)),
        ("connect-failure", Outcome::ConnectFailure),
        ("reset-before", reset_before),
        ("reset-after", reset_after),
        ("h3-reset", h3_reset),
        ("refused", Outcome::RefusedStream),
        ("timeout", Outcome::Timeout),
        ("overflow", Outcome::Overflow),
    ];
    let transport = [
        "connect-failure",
        "reset-before",
        "reset-after",
        "h3-reset",
        "refused",
        "timeout",
    ];
    let five_xx: Vec<&str> = ["500", "501", "502", "503", "504"]
        .iter()
        .chain(&transport)
        .copied()
        .collect();
    let gateway: Vec<&str> = ["502", "503", "504"]
        .iter()
        .chain(&transport)
        .copied()
        .collect();
    let table: Vec<(&str, Vec<&str>)> = vec![
        ("5xx", five_xx),
        ("gateway-error", gateway),
        ("reset", transport.to_vec()),
        (
            "reset-before-request",
            vec!["connect-failure", "reset-before"],
        ),
        ("connect-failure", vec!["connect-failure"]),
        ("retriable-4xx", vec!["409"]),
        ("refused-stream", vec!["refused"]),
        ("retriable-status-codes", vec![]),
        ("retriable-headers", vec![]),
        ("503", vec!["503"]),
        ("409,425", vec!["409", "425"]),
        ("envoy-ratelimited", vec!["limited-503", "limited-429"]),
        ("http3-post-connect-failure", vec!["h3-reset"]),
        ("cancelled", vec!["grpc-cancelled"]),
        ("deadline-exceeded", vec!["grpc-deadline"]),
        ("internal", vec!["grpc-internal"]),
        ("resource-exhausted", vec!["grpc-exhausted"]),
        ("unavailable", vec!["grpc-unavailable"]),
        ("5xx,envoy-ratelimited", {
            let mut v: Vec<&str> = [
                "500",
                "501",
                "502",
                "503",
                "504",
                "limited-503",
                "limited-429",
            ]
            .to_vec();
            v.extend(transport);
            v
        }),
    ];
    for (on, retried) in &table {
        let on: RetryOn = on.parse().unwrap();
        for (name, outcome) in &all {
            assert_eq!(
                would_retry(&on, outcome),
                retried.contains(name),
                "retryOn {on} with {name}"
            );
        }
    }
}
