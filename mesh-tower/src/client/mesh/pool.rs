//! The connections of one cluster (for one client), per endpoint, as Envoy's connection pools
//! keep them:
//!
//! - **HTTP/1**: one request per connection at a time; an idle connection is reused (the
//!   most recently used first), else a new one is dialled, else the request waits for one.
//! - **HTTP/2**: requests are streams, up to the smaller of our `maxConcurrentStreams` and
//!   the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` per connection; beyond that, another
//!   connection, else the request waits.
//! - **`maxConnections`** counts sockets (open or connecting) to the whole cluster: no new
//!   one is dialled beyond it, except that an endpoint with no connection at all may always
//!   get one (as Envoy does, so that a request for it is never stuck behind other endpoints).
//! - **`maxRequestsPerConnection`**: a connection that has served that many requests takes no
//!   more and closes when its last one ends.
//! - **Idle timeout** and **maximum connection duration** are timers of the connection's own
//!   task; a connection past its duration drains (no new request; closed when idle).
//! - **Draining** (endpoint removed or ejected, policy changed): no new request; closed once
//!   its requests end.
//!
//! The state is behind one mutex, held only for these short bookkeeping steps, never across
//! an await.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use http::uri::Authority;
use http::HeaderValue;
use hyper::client::conn::{http1, http2};
use rustc_hash::FxHashMap;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::dial;
use super::error::ConnectError;
use super::settings::ConnSettings;
use crate::cluster::{lock, ConnectionStats};
use crate::BoxError;

/// A connection's request sender.
pub(crate) enum Tx<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>),
}

/// Which connections a request can use: the endpoint, the protocol and (under `auto_sni`)
/// the server name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) endpoint: Authority,
    pub(crate) h2: bool,
    pub(crate) sni: Option<HeaderValue>,
}

/// Tells a connection's task to close; reads the peer's stream limit.
#[derive(Default)]
pub(crate) struct ConnCtl {
    pub(crate) close: AtomicBool,
    pub(crate) notify: Notify,
    /// HTTP/2: reads the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` now.
    pub(crate) peer_streams: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
}

impl std::fmt::Debug for ConnCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnCtl")
            .field("close", &self.close)
            .finish_non_exhaustive()
    }
}

impl ConnCtl {
    fn close(&self) {
        self.close.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

struct Conn<B> {
    id: u64,
    /// The sender; an HTTP/1 one is taken out while a request is being written.
    tx: Option<Tx<B>>,
    h2: bool,
    /// HTTP/2: whether the peer's settings are known (a response came back), before which
    /// the connection carries one stream, so that none is refused for exceeding a limit the
    /// peer has not told yet.
    confirmed: bool,
    active: u32,
    served: u32,
    draining: bool,
    created: Instant,
    idle_since: Instant,
    settings: Arc<ConnSettings>,
    ctl: Arc<ConnCtl>,
}

impl<B> Conn<B> {
    fn exhausted(&self) -> bool {
        let max = self.settings.max_requests_per_connection;
        max > 0 && self.served >= max
    }

    /// A request's use of this connection, if it can take one more.
    fn take(&mut self) -> Option<Checkout<B>> {
        if self.draining || self.exhausted() {
            return None;
        }
        let tx = match self.tx.as_mut()? {
            Tx::H1(tx) if self.active == 0 && !tx.is_closed() => self.tx.take()?,
            Tx::H2(_) if !self.confirmed && self.active > 0 => return None,
            Tx::H2(tx) if !tx.is_closed() => {
                let peer = self.ctl.peer_streams.get().map_or(usize::MAX, |f| f());
                let peer = u32::try_from(peer).unwrap_or(u32::MAX);
                if self.active >= self.settings.max_concurrent_streams.min(peer).max(1) {
                    return None;
                }
                Tx::H2(tx.clone())
            }
            _ => return None,
        };
        self.active += 1;
        self.served += 1;
        Some(Checkout {
            id: self.id,
            tx,
            confirmed: self.confirmed,
        })
    }

    /// Takes back a checkout that no request claimed.
    fn undo(&mut self, checkout: Checkout<B>) {
        self.active = self.active.saturating_sub(1);
        self.served = self.served.saturating_sub(1);
        if let Tx::H1(_) = checkout.tx {
            self.tx = Some(checkout.tx);
        }
    }
}

/// A connection handed to a request.
pub(crate) struct Checkout<B> {
    pub(crate) id: u64,
    pub(crate) tx: Tx<B>,
    /// Whether the connection's peer settings were known (else call [`Pool::confirm`] once
    /// a response arrives).
    pub(crate) confirmed: bool,
}

type Waiter<B> = oneshot::Sender<Result<Checkout<B>, ConnectError>>;

struct EndpointConns<B> {
    conns: Vec<Conn<B>>,
    connecting: u32,
    waiters: VecDeque<Waiter<B>>,
    /// The settings the latest request came with: what new connections get.
    settings: Arc<ConnSettings>,
}

impl<B> EndpointConns<B> {
    fn new(settings: &Arc<ConnSettings>) -> Self {
        EndpointConns {
            conns: Vec::new(),
            connecting: 0,
            waiters: VecDeque::new(),
            settings: Arc::clone(settings),
        }
    }

    fn take(&mut self) -> Option<Checkout<B>> {
        self.conns.iter_mut().rev().find_map(Conn::take)
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id)
    }
}

struct State<B> {
    endpoints: FxHashMap<Key, EndpointConns<B>>,
    /// Sockets open or connecting, to the whole cluster.
    sockets: u32,
    next_id: u64,
    /// Connections not dialled because `maxConnections` was reached (Envoy's
    /// `upstream_cx_overflow`).
    overflows: u64,
    /// Connections dialled (Envoy's `upstream_cx_total`).
    dialled: u64,
}

/// What a connection's timer found.
pub(crate) enum Timer {
    /// Close the connection now.
    Close,
    /// Look again then (`None`: no timer).
    Next(Option<Instant>),
}

/// The connections of one cluster for one client. See the [module docs](self).
pub(crate) struct Pool<B> {
    state: Mutex<State<B>>,
    runtime: tokio::runtime::Handle,
    me: Weak<Pool<B>>,
}

impl<B> Pool<B>
where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    /// An empty pool; connections are dialled on `runtime`.
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new_cyclic(|me| Pool {
            state: Mutex::new(State {
                endpoints: FxHashMap::default(),
                sockets: 0,
                next_id: 0,
                overflows: 0,
                dialled: 0,
            }),
            runtime,
            me: me.clone(),
        })
    }

    /// A connection for a request to `key`, now, or a receiver that gets one (or the error
    /// of the connection dialled for it).
    pub(crate) fn checkout(
        &self,
        key: &Key,
        settings: &Arc<ConnSettings>,
    ) -> Result<Checkout<B>, oneshot::Receiver<Result<Checkout<B>, ConnectError>>> {
        let mut st = lock(&self.state);
        let ep = match st.endpoints.get_mut(key) {
            Some(ep) => ep,
            None => st
                .endpoints
                .entry(key.clone())
                .or_insert_with(|| EndpointConns::new(settings)),
        };
        if ep.waiters.is_empty() {
            if let Some(c) = ep.take() {
                return Ok(c);
            }
        }
        if !Arc::ptr_eq(&ep.settings, settings) {
            ep.settings = Arc::clone(settings);
        }
        let (tx, rx) = oneshot::channel();
        ep.waiters.push_back(tx);
        self.dispatch(&mut st, key);
        Err(rx)
    }

    /// A response came back on HTTP/2 connection `id`: the peer's settings are known, so it
    /// may carry more streams.
    pub(crate) fn confirm(&self, key: &Key, id: u64) {
        let mut st = lock(&self.state);
        let Some(ep) = st.endpoints.get_mut(key) else {
            return;
        };
        if let Some(c) = ep.conns.iter_mut().find(|c| c.id == id) {
            c.confirmed = true;
        }
        if !ep.waiters.is_empty() {
            self.dispatch(&mut st, key);
        }
    }

    /// An HTTP/1 sender back after its request was handed to it.
    pub(crate) fn give_back(&self, key: &Key, id: u64, tx: Tx<B>) {
        let mut st = lock(&self.state);
        if let Some(c) = st
            .endpoints
            .get_mut(key)
            .and_then(|ep| ep.conns.iter_mut().find(|c| c.id == id))
        {
            c.tx = Some(tx);
        }
    }

    /// A request on connection `id` ended; `reusable` says whether the connection can serve
    /// another (an HTTP/1 response read to its end).
    pub(crate) fn release(&self, key: &Key, id: u64, reusable: bool) {
        let mut st = lock(&self.state);
        let Some(ep) = st.endpoints.get_mut(key) else {
            return;
        };
        let Some(i) = ep.position(id) else {
            return;
        };
        let c = &mut ep.conns[i];
        c.active = c.active.saturating_sub(1);
        if !c.h2 && (!reusable || c.tx.is_none()) {
            c.draining = true;
        }
        if c.active == 0 {
            c.idle_since = crate::time::now();
            if c.draining || c.exhausted() {
                let c = ep.conns.remove(i);
                c.ctl.close();
            }
        }
        if !ep.waiters.is_empty() {
            self.dispatch(&mut st, key);
        }
    }

    /// Hands free connections to waiting requests, then dials what is still missing.
    fn dispatch(&self, st: &mut State<B>, key: &Key) {
        let Some(ep) = st.endpoints.get_mut(key) else {
            return;
        };
        loop {
            while ep.waiters.front().is_some_and(oneshot::Sender::is_closed) {
                ep.waiters.pop_front();
            }
            if ep.waiters.is_empty() {
                break;
            }
            let Some(checkout) = ep.take() else { break };
            let Some(waiter) = ep.waiters.pop_front() else {
                break;
            };
            if let Err(Ok(back)) = waiter.send(Ok(checkout)) {
                if let Some(c) = ep.conns.iter_mut().find(|c| c.id == back.id) {
                    c.undo(back);
                }
            }
        }
        self.dial_missing(st, key);
    }

    /// Dials connections for the requests of `key` that no connection (open or connecting)
    /// will serve, within `maxConnections`.
    fn dial_missing(&self, st: &mut State<B>, key: &Key) {
        let State {
            endpoints,
            sockets,
            overflows,
            dialled,
            ..
        } = st;
        let Some(ep) = endpoints.get_mut(key) else {
            return;
        };
        let settings = &ep.settings;
        let per_conn = if key.h2 {
            u64::from(settings.max_concurrent_streams.max(1))
        } else {
            1
        };
        // A new HTTP/2 connection whose peer settings are not known yet will take more.
        let unconfirmed = ep.conns.iter().filter(|c| !c.confirmed).count() as u64;
        loop {
            let waiting = ep.waiters.len() as u64;
            if waiting <= (u64::from(ep.connecting) + unconfirmed) * per_conn {
                break;
            }
            let first = ep.conns.is_empty() && ep.connecting == 0;
            if *sockets >= settings.max_connections && !first {
                *overflows += 1;
                break;
            }
            ep.connecting += 1;
            *sockets += 1;
            *dialled += 1;
            let fut = dial::dial_and_drive(self.me.clone(), key.clone(), Arc::clone(&ep.settings));
            self.runtime.spawn(fut);
        }
    }

    /// A dialled connection is up: it joins the pool and serves the waiting requests. Returns
    /// its id, its control and when its timers first fire.
    pub(crate) fn connected(
        &self,
        key: &Key,
        tx: Tx<B>,
        ctl: &Arc<ConnCtl>,
        settings: &Arc<ConnSettings>,
    ) -> (u64, Option<Instant>) {
        let now = crate::time::now();
        let mut st = lock(&self.state);
        st.next_id += 1;
        let id = st.next_id;
        let h2 = matches!(tx, Tx::H2(_));
        let ep = st
            .endpoints
            .entry(key.clone())
            .or_insert_with(|| EndpointConns::new(settings));
        ep.connecting = ep.connecting.saturating_sub(1);
        ep.conns.push(Conn {
            id,
            tx: Some(tx),
            h2,
            confirmed: !h2,
            active: 0,
            served: 0,
            draining: false,
            created: now,
            idle_since: now,
            settings: Arc::clone(settings),
            ctl: Arc::clone(ctl),
        });
        self.dispatch(&mut st, key);
        let first = [
            settings.idle_timeout.map(|t| now + t),
            settings.max_connection_duration.map(|d| now + d),
        ]
        .into_iter()
        .flatten()
        .min();
        (id, first)
    }

    /// A dial failed: the requests it was for fail with `error` (those that other
    /// connections, open or connecting, cannot serve).
    pub(crate) fn dial_failed(&self, key: &Key, error: &ConnectError) {
        let mut st = lock(&self.state);
        st.sockets = st.sockets.saturating_sub(1);
        if let Some(ep) = st.endpoints.get_mut(key) {
            ep.connecting = ep.connecting.saturating_sub(1);
            let per_conn = if key.h2 { u32::MAX } else { 1 };
            let covered = ep.connecting.saturating_mul(per_conn) as usize;
            let usable = ep
                .conns
                .iter()
                .any(|c| !c.draining && !c.exhausted() && c.tx.is_some());
            if !usable {
                while ep.waiters.len() > covered {
                    if let Some(w) = ep.waiters.pop_front() {
                        let _ = w.send(Err(error.clone()));
                    }
                }
            }
        }
        self.dispatch_all(&mut st);
    }

    /// Connection `id`'s task ended (the socket is closed).
    pub(crate) fn closed(&self, key: &Key, id: u64) {
        let mut st = lock(&self.state);
        st.sockets = st.sockets.saturating_sub(1);
        if let Some(ep) = st.endpoints.get_mut(key) {
            if let Some(i) = ep.position(id) {
                ep.conns.remove(i);
            }
            if ep.conns.is_empty() && ep.connecting == 0 && ep.waiters.is_empty() {
                st.endpoints.remove(key);
            }
        }
        self.dispatch_all(&mut st);
    }

    /// A socket slot may have freed: requests waiting anywhere may dial now.
    fn dispatch_all(&self, st: &mut State<B>) {
        let waiting: Vec<Key> = st
            .endpoints
            .iter()
            .filter(|(_, ep)| !ep.waiters.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            self.dispatch(st, &key);
        }
    }

    /// What a connection's timer says: close it (idle too long, or past its maximum duration
    /// and idle), or look again later.
    pub(crate) fn on_timer(&self, key: &Key, id: u64) -> Timer {
        let now = crate::time::now();
        let mut st = lock(&self.state);
        let Some(ep) = st.endpoints.get_mut(key) else {
            return Timer::Close;
        };
        let Some(i) = ep.position(id) else {
            return Timer::Close;
        };
        let c = &mut ep.conns[i];
        let s = Arc::clone(&c.settings);
        let duration_end = s.max_connection_duration.map(|d| c.created + d);
        if duration_end.is_some_and(|end| now >= end) {
            c.draining = true;
        }
        let idle_end = s.idle_timeout.map(|t| {
            if c.active == 0 {
                c.idle_since + t
            } else {
                now + t
            }
        });
        let close = c.active == 0 && (c.draining || idle_end.is_some_and(|end| now >= end));
        if close {
            ep.conns.remove(i);
            return Timer::Close;
        }
        let next = [idle_end, duration_end.filter(|end| *end > now)]
            .into_iter()
            .flatten()
            .min();
        Timer::Next(next)
    }

    /// Every connection drains (the cluster's policy changed).
    pub(crate) fn drain_all(&self) {
        self.retain(&|_| false);
    }
}

impl<B> Pool<B> {
    /// Sockets open or connecting, and connections dialled in all.
    pub(crate) fn stats(&self) -> ConnectionStats {
        let st = lock(&self.state);
        ConnectionStats {
            active: u64::from(st.sockets),
            total: st.dialled,
        }
    }

    /// Connections to endpoints `keep` refuses drain.
    pub(crate) fn retain(&self, keep: &dyn Fn(&Authority) -> bool) {
        let mut st = lock(&self.state);
        for (key, ep) in &mut st.endpoints {
            if keep(&key.endpoint) {
                continue;
            }
            ep.conns.retain_mut(|c| {
                c.draining = true;
                if c.active == 0 {
                    c.ctl.close();
                    false
                } else {
                    true
                }
            });
        }
    }
}

impl<B> Drop for Pool<B> {
    fn drop(&mut self) {
        let st = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ep in st.endpoints.values() {
            for c in &ep.conns {
                c.ctl.close();
            }
        }
    }
}

/// Gives a request's connection back to its pool, whatever the pool's body type.
pub(crate) trait Release: Send + Sync {
    fn release(&self, key: &Key, id: u64, reusable: bool);
}

impl<B> Release for Pool<B>
where
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static,
{
    fn release(&self, key: &Key, id: u64, reusable: bool) {
        Pool::release(self, key, id, reusable);
    }
}

/// A request's hold on its connection: given back when the response ends (reusable), or
/// when this is dropped first (an HTTP/1 connection with a response not read to its end
/// cannot serve another request and closes).
pub(crate) struct Lease {
    pool: Arc<dyn Release>,
    key: Key,
    id: u64,
    done: bool,
}

impl Lease {
    pub(crate) fn new(pool: Arc<dyn Release>, key: Key, id: u64) -> Self {
        Lease {
            pool,
            key,
            id,
            done: false,
        }
    }

    /// The request ended: `reusable` says whether the connection may serve another.
    pub(crate) fn finish(&mut self, reusable: bool) {
        if !self.done {
            self.done = true;
            self.pool.release(&self.key, self.id, reusable);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.finish(false);
    }
}
