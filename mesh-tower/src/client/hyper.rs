//! hyper-util legacy client with defaults suited to mesh traffic.

use std::time::Duration;

use http_body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Builder, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The hyper-util client [`legacy_client`] builds: plain HTTP over TCP.
pub type LegacyClient<B> = Client<HttpConnector, B>;

/// Connect timeout of [`http_connector`]: 10 s, Istio's default
/// `connectionPool.tcp.connectTimeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection is kept by [`legacy_builder`]: 90 s,
/// hyper-util's own default, now driven by a tokio timer so it is enforced.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A legacy client [`Builder`] on the tokio runtime with an idle-pool timer.
///
/// Everything else is hyper-util's default: HTTP/1 by default (call
/// `http2_only(true)` for HTTP/2 prior knowledge), `Host` set from the URI only
/// when the request has none, and a request that failed on a reused idle
/// connection *before being sent* retried once on a fresh one
/// (`retry_canceled_requests`). That last retry is invisible to the mesh's
/// attempt counting; it is safe because nothing reached the server.
pub fn legacy_builder() -> Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(DEFAULT_POOL_IDLE_TIMEOUT);
    builder
}

/// A TCP connector with `TCP_NODELAY` and a [`DEFAULT_CONNECT_TIMEOUT`].
///
/// It accepts only `http://` URIs (no TLS).
pub fn http_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(DEFAULT_CONNECT_TIMEOUT));
    connector
}

/// A ready-to-use legacy client: [`legacy_builder`] over [`http_connector`].
///
/// Must be called inside a tokio runtime's context only when requests are
/// made; building it needs no runtime.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
///
/// let client = mesh_tower::client::legacy_client::<Full<Bytes>>();
/// # let _ = client;
/// ```
pub fn legacy_client<B>() -> LegacyClient<B>
where
    B: Body + Send,
    B::Data: Send,
{
    legacy_builder().build(http_connector())
}
