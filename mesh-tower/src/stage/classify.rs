//! Classification: what happened to an attempt, in the one vocabulary retries and outlier
//! detection share ([`Outcome`]).

use http::Response;
use mesh_resilience::headers::{GRPC_STATUS, X_ENVOY_RATELIMITED};
use mesh_resilience::{GrpcStatus, Outcome};

use crate::error::{MeshError, UpstreamFailure};

/// The outcome of an attempt: the response's status and `grpc-status` (headers only, as
/// Envoy reads them), the client's error classified, or `Timeout` when the per-try or route
/// deadline fired (`result` is `None`).
pub(crate) fn outcome<RB>(result: Option<&Result<Response<RB>, MeshError>>) -> Outcome {
    match result {
        None => Outcome::Timeout,
        Some(Ok(res)) => {
            let headers = res.headers();
            Outcome::Response {
                status: res.status(),
                grpc_status: headers
                    .get(&GRPC_STATUS)
                    .map(|v| GrpcStatus::from_header_value(v.as_bytes())),
                rate_limited: headers.contains_key(&X_ENVOY_RATELIMITED),
            }
        }
        Some(Err(e)) => match e.failure() {
            Some(UpstreamFailure::ConnectFailure | UpstreamFailure::ConnectTimeout) => {
                Outcome::ConnectFailure
            }
            Some(UpstreamFailure::ResetBeforeRequest) => Outcome::reset(false),
            Some(UpstreamFailure::RefusedStream) => Outcome::RefusedStream,
            Some(UpstreamFailure::Timeout) => Outcome::Timeout,
            Some(
                UpstreamFailure::ConnectionTermination
                | UpstreamFailure::RemoteReset
                | UpstreamFailure::Protocol
                | UpstreamFailure::Other,
            )
            | None => Outcome::reset(true),
        },
    }
}
