//! How an attempt failed, read from the client's error chain: the crate's small vocabulary of
//! upstream failures, Envoy's reset reason and response flag for each, and the walk over an
//! error's `source()` chain that finds it.

use std::error::Error as StdError;

use crate::telemetry::ResponseFlag;

/// How an attempt failed, read from the client's error chain.
///
/// This is the crate's own small vocabulary; the retry driver maps it onto
/// the resilience crate's outcome type: `ConnectFailure`/`ConnectTimeout` are
/// connect failures, `ResetBeforeRequest` is the only reset that is safe for
/// any request, `ConnectionTermination`/`RemoteReset` are resets after the
/// request started, `Protocol`/`Other` are plain failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamFailure {
    /// The connection could not be established (refused, unreachable, ...).
    ConnectFailure,
    /// Establishing the connection took too long.
    ConnectTimeout,
    /// The connection went away before any of the request was sent.
    ResetBeforeRequest,
    /// The connection closed after the request started.
    ConnectionTermination,
    /// The server reset the HTTP/2 stream after the request started.
    RemoteReset,
    /// The server refused the HTTP/2 stream (`REFUSED_STREAM`): not processed.
    RefusedStream,
    /// The client gave up waiting.
    Timeout,
    /// The server spoke invalid HTTP.
    Protocol,
    /// Anything else.
    Other,
}

impl UpstreamFailure {
    /// Envoy's name for this reset reason (`resetReasonToString`).
    pub(super) fn reset_reason(self) -> &'static str {
        match self {
            UpstreamFailure::ConnectFailure => "remote connection failure",
            UpstreamFailure::ConnectTimeout => "connection timeout",
            UpstreamFailure::RemoteReset => "remote reset",
            UpstreamFailure::RefusedStream => "remote refused stream reset",
            UpstreamFailure::Protocol => "protocol error",
            UpstreamFailure::ResetBeforeRequest
            | UpstreamFailure::ConnectionTermination
            | UpstreamFailure::Timeout
            | UpstreamFailure::Other => "connection termination",
        }
    }

    /// The flag Envoy sets for this reset reason (the router's
    /// `streamResetReasonToResponseFlag`).
    pub(super) fn response_flag(self) -> ResponseFlag {
        match self {
            UpstreamFailure::ConnectFailure | UpstreamFailure::ConnectTimeout => {
                ResponseFlag::UpstreamConnectionFailure
            }
            UpstreamFailure::RemoteReset | UpstreamFailure::RefusedStream => {
                ResponseFlag::UpstreamRemoteReset
            }
            UpstreamFailure::Protocol => ResponseFlag::UpstreamProtocolError,
            UpstreamFailure::Timeout => ResponseFlag::UpstreamRequestTimeout,
            UpstreamFailure::ResetBeforeRequest
            | UpstreamFailure::ConnectionTermination
            | UpstreamFailure::Other => ResponseFlag::UpstreamConnectionTermination,
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            UpstreamFailure::ConnectFailure => "connect failure",
            UpstreamFailure::ConnectTimeout => "connect timeout",
            UpstreamFailure::ResetBeforeRequest => "connection closed before the request was sent",
            UpstreamFailure::ConnectionTermination => "connection closed after the request started",
            UpstreamFailure::RemoteReset => "stream reset by the server",
            UpstreamFailure::RefusedStream => "stream refused by the server",
            UpstreamFailure::Timeout => "client timeout",
            UpstreamFailure::Protocol => "protocol error",
            UpstreamFailure::Other => "request failed",
        }
    }
}

/// What one error of a chain says about the failure.
#[derive(Debug, Default, Clone, Copy)]
struct Signals {
    connect: bool,
    timeout: bool,
    refused_stream: bool,
    canceled: bool,
    remote_reset: bool,
    terminated: bool,
    protocol: bool,
    refused_connection: bool,
}

/// Classifies an error of hyper-util's legacy client, reqwest, hyper, h2,
/// tokio's timer or `std::io` by walking its whole `source()` chain.
///
/// The most specific signal wins: a connect error is a connect failure even
/// if its cause is an io reset; `REFUSED_STREAM` beats a generic reset; a
/// request canceled before dispatch counts as reset before the request.
pub(crate) fn classify(err: &(dyn StdError + 'static)) -> UpstreamFailure {
    let mut s = Signals::default();
    let mut next = Some(err);
    // Bounded walk: chains are short; a cyclic chain would otherwise spin.
    for _ in 0..32 {
        let Some(e) = next else { break };
        inspect(e, &mut s);
        next = e.source();
    }
    if s.connect && s.timeout {
        UpstreamFailure::ConnectTimeout
    } else if s.connect || s.refused_connection {
        UpstreamFailure::ConnectFailure
    } else if s.refused_stream {
        UpstreamFailure::RefusedStream
    } else if s.canceled {
        UpstreamFailure::ResetBeforeRequest
    } else if s.timeout {
        UpstreamFailure::Timeout
    } else if s.protocol {
        UpstreamFailure::Protocol
    } else if s.remote_reset {
        UpstreamFailure::RemoteReset
    } else if s.terminated {
        UpstreamFailure::ConnectionTermination
    } else {
        UpstreamFailure::Other
    }
}

fn inspect(e: &(dyn StdError + 'static), s: &mut Signals) {
    #[cfg(feature = "mesh-client")]
    if let Some(c) = e.downcast_ref::<crate::client::ConnectError>() {
        s.connect = true;
        s.timeout |= c.is_timeout();
        return;
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as K;
        match io.kind() {
            K::ConnectionRefused | K::AddrNotAvailable => s.refused_connection = true,
            K::TimedOut => s.timeout = true,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                s.terminated = true;
            }
            _ => {}
        }
        return;
    }
    if e.is::<tokio::time::error::Elapsed>() {
        s.timeout = true;
        return;
    }
    inspect_clients(e, s);
}

#[cfg(any(feature = "hyper-util", feature = "reqwest"))]
fn inspect_clients(e: &(dyn StdError + 'static), s: &mut Signals) {
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_canceled() {
            s.canceled = true;
        }
        if h.is_timeout() {
            s.timeout = true;
        }
        if h.is_parse() || h.is_parse_status() {
            s.protocol = true;
        }
        if h.is_incomplete_message() || h.is_closed() {
            s.terminated = true;
        }
        return;
    }
    if let Some(h2) = e.downcast_ref::<h2::Error>() {
        if h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR) {
            // A stream above a graceful GOAWAY's last stream id: never processed, as a
            // refused stream (nghttp2, under Envoy, closes such streams REFUSED_STREAM).
            s.refused_stream = true;
            return;
        }
        match h2.reason() {
            Some(h2::Reason::REFUSED_STREAM) => s.refused_stream = true,
            Some(h2::Reason::PROTOCOL_ERROR | h2::Reason::FRAME_SIZE_ERROR) => {
                s.protocol = true;
            }
            Some(_) => s.remote_reset = true,
            None => {}
        }
        return;
    }
    inspect_hyper_util(e, s);
    inspect_reqwest(e, s);
}

#[cfg(not(any(feature = "hyper-util", feature = "reqwest")))]
fn inspect_clients(_: &(dyn StdError + 'static), _: &mut Signals) {}

#[cfg(feature = "hyper-util")]
fn inspect_hyper_util(e: &(dyn StdError + 'static), s: &mut Signals) {
    if let Some(err) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
        if err.is_connect() {
            s.connect = true;
        }
    }
}

#[cfg(all(not(feature = "hyper-util"), feature = "reqwest"))]
fn inspect_hyper_util(_: &(dyn StdError + 'static), _: &mut Signals) {}

#[cfg(feature = "reqwest")]
fn inspect_reqwest(e: &(dyn StdError + 'static), s: &mut Signals) {
    if let Some(err) = e.downcast_ref::<reqwest::Error>() {
        if err.is_connect() {
            s.connect = true;
        }
        if err.is_timeout() {
            s.timeout = true;
        }
    }
}

#[cfg(all(not(feature = "reqwest"), feature = "hyper-util"))]
fn inspect_reqwest(_: &(dyn StdError + 'static), _: &mut Signals) {}
