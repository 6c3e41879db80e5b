//! `retryOn` parsing with the strictness of Istio's webhook (rule T4): Go's `Atoi` for numbers,
//! Go's `net/http.StatusText` table for which numbers are status codes, no trimming.

use mesh_model::{RetryOn, RetryOnError};

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
    use RetryOnError::*;
    let cases: &[(&str, RetryOnError)] = &[
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
    let msg = "599".parse::<RetryOn>().unwrap_err().to_string();
    assert!(
        msg.starts_with(
            "\"599\" is not a valid retryOn policy: Go's net/http knows no such status code"
        ),
        "{msg}"
    );
    let msg = "5xx, reset".parse::<RetryOn>().unwrap_err().to_string();
    assert!(
        msg.starts_with("\" reset\" is not a valid retryOn policy; use a comma-separated list"),
        "{msg}"
    );
}
