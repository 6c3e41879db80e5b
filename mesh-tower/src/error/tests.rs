use std::error::Error as StdError;
use std::fmt;
use std::io;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};

use super::{classify, MeshError, UpstreamFailure};

/// A wrapper error, to build source chains of any depth.
#[derive(Debug)]
struct Wrap(&'static str, Box<dyn StdError + Send + Sync>);

impl fmt::Display for Wrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl StdError for Wrap {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.1)
    }
}

fn wrap(e: impl StdError + Send + Sync + 'static) -> Wrap {
    Wrap("outer", Box::new(Wrap("middle", Box::new(e))))
}

async fn reply(err: &MeshError) -> (StatusCode, http::HeaderMap, String) {
    let res: http::Response<Full<Bytes>> = err.to_response();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn timeouts_reply_504_upstream_request_timeout() {
    for err in [MeshError::route_timeout(), MeshError::per_try_timeout()] {
        assert!(err.is_timeout());
        assert!(!err.is_upstream());
        let (status, headers, body) = reply(&err).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(body, "upstream request timeout");
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["content-length"], "24");
    }
}

#[tokio::test]
async fn overflow_replies_503_with_overloaded_header() {
    let err = MeshError::overflow();
    assert!(err.is_overflow());
    assert!(!err.is_timeout());
    let (status, headers, body) = reply(&err).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-envoy-overloaded"], "true");
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow"
    );
}

#[tokio::test]
async fn no_route_replies_404_empty() {
    let err = MeshError::no_route();
    assert!(err.is_no_route());
    let (status, headers, body) = reply(&err).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "");
    assert_eq!(headers["content-length"], "0");
    assert!(headers.get("content-type").is_none());
    assert!(headers.get("x-envoy-overloaded").is_none());
}

#[tokio::test]
async fn unknown_cluster_replies_503_empty() {
    let err = MeshError::unknown_cluster();
    assert!(err.is_unknown_cluster());
    assert!(!err.is_no_route());
    let (status, _, body) = reply(&err).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "");
}

#[tokio::test]
async fn no_healthy_upstream_replies_503() {
    let err = MeshError::no_healthy_upstream();
    assert!(err.is_no_healthy_upstream());
    let (status, _, body) = reply(&err).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "no healthy upstream");
}

#[tokio::test]
async fn body_too_large_replies_507() {
    let err = MeshError::body_too_large_to_retry();
    assert!(err.is_body_too_large_to_retry());
    let (status, _, body) = reply(&err).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        body,
        "exceeded request buffer limit while retrying upstream"
    );
}

#[tokio::test]
async fn connect_failure_replies_503_with_reset_reason() {
    let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
    let err = MeshError::upstream(wrap(refused));
    assert!(err.is_upstream());
    assert!(err.is_connect());
    assert_eq!(err.failure(), Some(UpstreamFailure::ConnectFailure));
    let (status, _, body) = reply(&err).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. \
         reset reason: remote connection failure"
    );
    let (_, _, body) = reply(&err.with_context(None, None, 2)).await;
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. \
         retried and the latest reset reason: remote connection failure"
    );
}

#[tokio::test]
async fn refused_stream_and_protocol_error_texts() {
    let refused = MeshError::upstream(h2::Error::from(h2::Reason::REFUSED_STREAM));
    let (status, _, body) = reply(&refused).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.ends_with("reset reason: remote refused stream reset"),
        "{body}"
    );

    let proto = MeshError::upstream(h2::Error::from(h2::Reason::PROTOCOL_ERROR));
    let (status, _, body) = reply(&proto).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.ends_with("reset reason: protocol error"), "{body}");

    let reset = MeshError::upstream(wrap(io::Error::from(io::ErrorKind::ConnectionReset)));
    let (status, _, body) = reply(&reset).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.ends_with("reset reason: connection termination"),
        "{body}"
    );
}

#[tokio::test]
async fn upstream_timeout_replies_504() {
    let elapsed = tokio::time::timeout(std::time::Duration::ZERO, std::future::pending::<()>())
        .await
        .unwrap_err();
    let err = MeshError::upstream(wrap(elapsed));
    assert!(err.is_timeout());
    assert!(err.is_upstream());
    let (status, _, body) = reply(&err).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "upstream request timeout");
}

#[test]
fn classify_io_kinds() {
    let cases = [
        (
            io::ErrorKind::ConnectionRefused,
            UpstreamFailure::ConnectFailure,
        ),
        (io::ErrorKind::TimedOut, UpstreamFailure::Timeout),
        (
            io::ErrorKind::ConnectionReset,
            UpstreamFailure::ConnectionTermination,
        ),
        (
            io::ErrorKind::BrokenPipe,
            UpstreamFailure::ConnectionTermination,
        ),
        (
            io::ErrorKind::UnexpectedEof,
            UpstreamFailure::ConnectionTermination,
        ),
        (io::ErrorKind::PermissionDenied, UpstreamFailure::Other),
    ];
    for (kind, want) in cases {
        let e = io::Error::from(kind);
        assert_eq!(classify(&e), want, "{kind:?}");
        assert_eq!(
            classify(&wrap(io::Error::from(kind))),
            want,
            "wrapped {kind:?}"
        );
    }
}

#[test]
fn classify_h2_reasons() {
    let cases = [
        (h2::Reason::REFUSED_STREAM, UpstreamFailure::RefusedStream),
        (h2::Reason::CANCEL, UpstreamFailure::RemoteReset),
        (h2::Reason::INTERNAL_ERROR, UpstreamFailure::RemoteReset),
        (h2::Reason::PROTOCOL_ERROR, UpstreamFailure::Protocol),
    ];
    for (reason, want) in cases {
        assert_eq!(classify(&wrap(h2::Error::from(reason))), want, "{reason:?}");
    }
}

#[test]
fn refused_stream_is_found_deep_in_the_chain() {
    // A chain with a refused stream deep inside still classifies as refused,
    // even below wrappers that carry nothing.
    let chain = Wrap(
        "top",
        Box::new(Wrap(
            "h2",
            Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)),
        )),
    );
    assert_eq!(classify(&chain), UpstreamFailure::RefusedStream);
    // io TimedOut alone is a request timeout, not a connect timeout.
    assert_eq!(
        classify(&wrap(io::Error::from(io::ErrorKind::TimedOut))),
        UpstreamFailure::Timeout
    );
}

#[test]
fn unknown_errors_are_other() {
    let e = Wrap("a", Box::new(fmt::Error));
    assert_eq!(classify(&e), UpstreamFailure::Other);
    let err = MeshError::upstream("plain string error");
    assert_eq!(err.failure(), Some(UpstreamFailure::Other));
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn source_chain_is_kept() {
    let err = MeshError::upstream(wrap(io::Error::from(io::ErrorKind::ConnectionRefused)));
    let mut depth = 0;
    let mut next = err.source();
    let mut found_io = false;
    while let Some(e) = next {
        depth += 1;
        found_io |= e.is::<io::Error>();
        next = e.source();
    }
    assert_eq!(depth, 3, "outer, middle, io");
    assert!(found_io);
    assert!(MeshError::no_route().source().is_none());
}

#[test]
fn debug_and_display_name_the_failure() {
    let err = MeshError::upstream(io::Error::from(io::ErrorKind::ConnectionRefused));
    assert!(err.to_string().contains("connect failure"), "{err}");
    assert!(format!("{err:?}").contains("ConnectFailure"), "{err:?}");
    let name = mesh_routing::ClusterName::new("api.default.svc.cluster.local", Some("v2"), 8080);
    let endpoint = http::uri::Authority::from_static("10.1.2.3:8080");
    let retried = err.with_context(Some(&name), Some(&endpoint), 4);
    assert_eq!(
        retried.to_string(),
        "connect failure to 10.1.2.3:8080 in outbound|8080|v2|api.default.svc.cluster.local \
         after 4 attempts: connection refused"
    );
}

#[test]
fn mesh_error_is_send_sync_and_small() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<MeshError>();
    assert_eq!(
        std::mem::size_of::<MeshError>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn each_kind_has_envoys_response_flag() {
    use crate::telemetry::{ResponseFlag, ResponseFlags};
    let cases: [(MeshError, &str); 10] = [
        (MeshError::route_timeout(), "UT"),
        (MeshError::per_try_timeout(), "UT"),
        (MeshError::stream_idle_timeout(), "SI"),
        (MeshError::overflow(), "UO"),
        (MeshError::no_route(), "NR"),
        (MeshError::no_healthy_upstream(), "UH"),
        (MeshError::unknown_cluster(), "NC"),
        (MeshError::body_too_large_to_retry(), "-"),
        (
            MeshError::upstream(io::Error::from(io::ErrorKind::ConnectionRefused)),
            "UF",
        ),
        (
            MeshError::upstream(io::Error::from(io::ErrorKind::ConnectionReset)),
            "UC",
        ),
    ];
    for (err, flags) in cases {
        assert_eq!(err.response_flags().to_string(), flags, "{err:?}");
    }
    let earlier = ResponseFlags::from_flag(ResponseFlag::DelayInjected)
        .with(ResponseFlag::UpstreamRetryLimitExceeded);
    let err = MeshError::per_try_timeout().with_flags(earlier);
    assert_eq!(err.response_flags().to_string(), "DI,URX,UT");
    let res: http::Response<Full<Bytes>> = err.to_response();
    assert_eq!(ResponseFlags::of(&res).to_string(), "DI,URX,UT");
}
