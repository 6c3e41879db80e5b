//! `retryOn` parsing (Istio rule T4) and Envoy's retry conditions, outcome by outcome.

mod support;

use http::StatusCode;
use mesh_resilience::{GrpcStatus, Outcome, ParseRetryOnError, RetryCondition, RetryOn};
use support::resp;

#[test]
fn accepted_strings() {
    let cases: &[(&str, &str)] = &[
        ("5xx", "5xx"),
        (
            "gateway-error,connect-failure,refused-stream",
            "gateway-error,connect-failure,refused-stream",
        ),
        ("reset,reset-before-request", "reset,reset-before-request"),
        ("retriable-4xx", "retriable-4xx"),
        ("envoy-ratelimited", "envoy-ratelimited"),
        ("retriable-headers", "retriable-headers"),
        ("http3-post-connect-failure", "http3-post-connect-failure"),
        (
            "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable",
            "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable",
        ),
        // Numeric tokens add retriable-status-codes (Istio's translation).
        ("503", "retriable-status-codes,503"),
        ("503,5xx", "5xx,retriable-status-codes,503"),
        ("retriable-status-codes", "retriable-status-codes"),
        // Go's Atoi accepts a sign and leading zeros.
        ("+503", "retriable-status-codes,503"),
        ("0503", "retriable-status-codes,503"),
        ("5xx,5xx", "5xx"),
        (
            "100,103,226,308,418,421,425,451,511",
            "retriable-status-codes,100,103,226,308,418,421,425,451,511",
        ),
        (
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            "connect-failure,refused-stream,retriable-status-codes,cancelled,unavailable",
        ),
    ];
    for (input, canonical) in cases {
        let on: RetryOn = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(on.to_string(), *canonical, "{input}");
        assert_eq!(canonical.parse::<RetryOn>().unwrap(), on, "{input}");
    }
}

#[test]
fn refused_strings() {
    use ParseRetryOnError::*;
    let cases: &[(&str, ParseRetryOnError)] = &[
        ("", Empty),
        ("5xx, reset", UnknownPolicy(" reset".into())),
        (" 5xx", UnknownPolicy(" 5xx".into())),
        ("5xx,", UnknownPolicy("".into())),
        ("5xx,,reset", UnknownPolicy("".into())),
        ("gateway_error", UnknownPolicy("gateway_error".into())),
        ("Reset", UnknownPolicy("Reset".into())),
        ("5XX", UnknownPolicy("5XX".into())),
        ("599", InvalidStatusCode("599".into())),
        ("600", InvalidStatusCode("600".into())),
        ("0", InvalidStatusCode("0".into())),
        ("509", InvalidStatusCode("509".into())),
        ("420", InvalidStatusCode("420".into())),
        ("499", InvalidStatusCode("499".into())),
        ("306", InvalidStatusCode("306".into())),
        ("-503", InvalidStatusCode("-503".into())),
        (" 503", UnknownPolicy(" 503".into())),
        (
            "99999999999999999999",
            UnknownPolicy("99999999999999999999".into()),
        ),
        ("5xx;reset", UnknownPolicy("5xx;reset".into())),
    ];
    for (input, want) in cases {
        assert_eq!(input.parse::<RetryOn>().as_ref(), Err(want), "{input:?}");
    }
    assert_eq!(
        "599".parse::<RetryOn>().unwrap_err().to_string(),
        "\"599\" is not a valid httpStatus code"
    );
    assert_eq!(
        "5xx, reset".parse::<RetryOn>().unwrap_err().to_string(),
        "\" reset\" is not a valid retryOn policy"
    );
}

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
    assert!(!d.would_retry(&resp(503)));
}

#[test]
fn with_status_code_bounds() {
    let on = RetryOn::empty().with_status_code(599).unwrap();
    assert!(on.contains(RetryCondition::RetriableStatusCodes));
    assert!(on.would_retry(&resp(599)));
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
                on.would_retry(outcome),
                retried.contains(name),
                "retryOn {on} with {name}"
            );
        }
    }
}
