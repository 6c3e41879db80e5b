//! [`ConnectError`]: why a connection to an endpoint could not be made.

use std::fmt;
use std::sync::Arc;

use http::uri::Authority;

use crate::BoxError;

/// Envoy's transport failure reason for a server certificate that failed verification
/// (BoringSSL's error string, as Envoy writes it into its local reply).
pub(crate) const CERTIFICATE_VERIFY_FAILED: &str =
    "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";

/// Envoy's transport failure reason when the TLS credentials of a cluster are not available.
pub(crate) const SECRET_NOT_SUPPLIED: &str = "TLS error: Secret is not supplied by SDS";

/// What went wrong while connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TCP: refused, unreachable, name not resolved.
    Tcp,
    /// The connect timeout (TCP and TLS handshake) elapsed.
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// The cluster's TLS credentials could not be loaded (files missing, unreadable, invalid).
    Credentials,
    /// The HTTP/1 or HTTP/2 connection could not be set up.
    Handshake,
}

/// Why a connection to an endpoint could not be made: the kind, the endpoint, Envoy's
/// transport failure reason for TLS failures and the cause. Cheap to clone (all requests
/// waiting for the connection get the same error).
#[derive(Clone)]
pub struct ConnectError {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    endpoint: Authority,
    detail: String,
    reason: Option<String>,
    source: Option<BoxError>,
}

impl ConnectError {
    pub(crate) fn new(
        kind: Kind,
        endpoint: &Authority,
        detail: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        let reason = match kind {
            Kind::Credentials => Some(SECRET_NOT_SUPPLIED.to_owned()),
            _ => None,
        };
        ConnectError {
            inner: Arc::new(Inner {
                kind,
                endpoint: endpoint.clone(),
                detail: detail.into(),
                reason,
                source,
            }),
        }
    }

    /// A TLS handshake failure with Envoy's transport failure reason.
    pub(crate) fn tls(endpoint: &Authority, err: &rustls::Error, source: BoxError) -> Self {
        let reason = match err {
            rustls::Error::InvalidCertificate(_) => CERTIFICATE_VERIFY_FAILED.to_owned(),
            other => format!("TLS_error:|{other}:TLS_error_end"),
        };
        ConnectError {
            inner: Arc::new(Inner {
                kind: Kind::Tls,
                endpoint: endpoint.clone(),
                detail: format!("TLS handshake failed: {err}"),
                reason: Some(reason),
                source: Some(source),
            }),
        }
    }

    /// The connect timeout (which bounds the TLS handshake too) elapsed.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == Kind::Timeout
    }

    /// The TLS handshake failed (the server's certificate, the protocol), or the cluster's
    /// TLS credentials could not be loaded.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner.kind, Kind::Tls | Kind::Credentials)
    }

    /// The endpoint (`ip:port`).
    pub fn endpoint(&self) -> &Authority {
        &self.inner.endpoint
    }

    /// Envoy's `%UPSTREAM_TRANSPORT_FAILURE_REASON%` for this failure, when it has one (TLS).
    pub fn transport_failure_reason(&self) -> Option<&str> {
        self.inner.reason.as_deref()
    }
}

impl fmt::Debug for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectError")
            .field("kind", &self.inner.kind)
            .field("endpoint", &format_args!("{}", self.inner.endpoint))
            .field("detail", &self.inner.detail)
            .finish()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connect to {}: {}",
            self.inner.endpoint, self.inner.detail
        )
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
