//! Making one connection: TCP (with `TCP_NODELAY` and the cluster's keepalive), TLS when the
//! cluster originates it, then the HTTP/1 or HTTP/2 handshake; all of it bounded by the
//! connect timeout, as Envoy's `connect_timeout` bounds the TCP connect and the TLS
//! handshake. Then [`drive`] runs the connection until it closes, times out idle, reaches
//! its maximum duration or is told to close.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::error::{ConnectError, Kind};
use super::pool::{ConnCtl, Key, Pool, Timer, Tx};
use super::settings::{ConnSettings, H2_CONNECTION_WINDOW, H2_STREAM_WINDOW};
use crate::BoxError;

/// A connection's byte stream: plain TCP or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Dials `key`'s endpoint, hands the connection to `pool` (which gives it to the requests
/// waiting for it) and drives it until it closes; on failure, tells `pool` so that the
/// requests waiting for it fail with the error.
pub(crate) async fn dial_and_drive<B>(pool: Weak<Pool<B>>, key: Key, settings: Arc<ConnSettings>)
where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    let ctl = Arc::new(ConnCtl::default());
    let connected = tokio::time::timeout(
        settings.connect_timeout,
        connect::<B>(&key, &settings, &ctl),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ConnectError::new(
            Kind::Timeout,
            &key.endpoint,
            format!(
                "connect timeout after {:?} (tcp.connectTimeout)",
                settings.connect_timeout
            ),
            None,
        ))
    });
    let Some(strong) = pool.upgrade() else {
        return;
    };
    match connected {
        Err(e) => {
            tracing::debug!(error = %e, "upstream connection failed");
            strong.dial_failed(&key, &e);
        }
        Ok((tx, conn)) => {
            let (id, first) = strong.connected(&key, tx, &ctl, &settings);
            drop(strong);
            drive(conn, pool, key, id, ctl, first).await;
        }
    }
}

/// A connection's driver future, boxed: HTTP/1 and HTTP/2 connections are different types.
type ConnFuture = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

async fn connect<B>(
    key: &Key,
    settings: &ConnSettings,
    ctl: &Arc<ConnCtl>,
) -> Result<(Tx<B>, ConnFuture), ConnectError>
where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    let endpoint = &key.endpoint;
    if let Some(e) = &settings.tls_error {
        return Err(ConnectError::new(
            Kind::Credentials,
            endpoint,
            e.clone(),
            None,
        ));
    }
    let port = endpoint
        .port_u16()
        .unwrap_or(if settings.tls.is_some() { 443 } else { 80 });
    let host = endpoint
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
        let detail = format!("tcp connect: {e}");
        ConnectError::new(Kind::Tcp, endpoint, detail, Some(Box::new(e)))
    })?;
    let _ = tcp.set_nodelay(true);
    if let Some(k) = &settings.keepalive {
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(t) = k.time() {
            ka = ka.with_time(t);
        }
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
        if let Some(i) = k.interval() {
            ka = ka.with_interval(i);
        }
        #[cfg(any(target_os = "linux", target_os = "macos"))]
        if let Some(p) = k.probes() {
            ka = ka.with_retries(p);
        }
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&ka) {
            tracing::debug!(error = %e, "tcpKeepalive could not be set on the socket");
        }
    }
    let (stream, h2) = match &settings.tls {
        None => (Stream::Plain(tcp), key.h2),
        Some(tls) => {
            let config = tls
                .config(key.h2)
                .map_err(|e| ConnectError::new(Kind::Credentials, endpoint, e, None))?;
            let name = tls
                .server_name(key.sni.as_ref(), endpoint)
                .map_err(|e| ConnectError::new(Kind::Tls, endpoint, e, None))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(endpoint, e))?;
            (Stream::Tls(Box::new(stream)), key.h2)
        }
    };
    let io = TokioIo::new(stream);
    let handshake_error = |e: hyper::Error| {
        let detail = format!("{} handshake: {e}", if h2 { "HTTP/2" } else { "HTTP/1" });
        ConnectError::new(Kind::Handshake, endpoint, detail, Some(Box::new(e)))
    };
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW);
        if let Some(k) = &settings.h2_keepalive {
            builder
                .keep_alive_interval(k.interval())
                .keep_alive_timeout(k.timeout())
                .keep_alive_while_idle(true);
        }
        let (tx, conn) = builder.handshake(io).await.map_err(handshake_error)?;
        let conn = Arc::new(std::sync::Mutex::new(Box::pin(conn)));
        let reader = Arc::clone(&conn);
        let peer = move || crate::cluster::lock(&reader).current_max_send_streams();
        let _ = ctl.peer_streams.set(Box::new(peer));
        Ok((Tx::H2(tx), Box::pin(SharedConn(conn))))
    } else {
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(handshake_error)?;
        Ok((Tx::H1(tx), Box::pin(conn)))
    }
}

/// An HTTP/2 connection shared with its pool, which reads the peer's stream limit from it
/// when it hands out streams.
struct SharedConn<C>(Arc<std::sync::Mutex<Pin<Box<C>>>>);

impl<C: Future> Future for SharedConn<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        crate::cluster::lock(&self.0).as_mut().poll(cx)
    }
}

/// A failed TLS handshake as a [`ConnectError`] with Envoy's transport failure reason.
fn tls_error(endpoint: &http::uri::Authority, e: io::Error) -> ConnectError {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match rustls_error {
        Some(r) => ConnectError::tls(endpoint, &r, Box::new(e)),
        None => {
            let detail = format!("TLS handshake: {e}");
            ConnectError::new(Kind::Tls, endpoint, detail, Some(Box::new(e)))
        }
    }
}

/// Runs a connection until it ends: the peer closes it, the pool tells it to close, or its
/// timers (idle timeout, maximum duration) say so. The pool is then told it is gone.
pub(crate) async fn drive<B>(
    conn: ConnFuture,
    pool: Weak<Pool<B>>,
    key: Key,
    id: u64,
    ctl: Arc<ConnCtl>,
    first: Option<tokio::time::Instant>,
) where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    let mut conn = conn;
    let mut deadline = first;
    loop {
        let notified = ctl.notify.notified();
        let sleep = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            ended = &mut conn => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, endpoint = %key.endpoint, "upstream connection ended");
                }
                break;
            }
            () = notified => {
                if ctl.close.load(Ordering::Acquire) {
                    break;
                }
            }
            () = sleep => {
                let Some(pool) = pool.upgrade() else { break };
                match pool.on_timer(&key, id) {
                    Timer::Close => break,
                    Timer::Next(next) => deadline = next,
                }
            }
        }
    }
    drop(conn);
    if let Some(pool) = pool.upgrade() {
        pool.closed(&key, id);
    }
}
