//! A request body that can be sent more than once, within a memory cap.
//!
//! Retries and mirrors must resend the request body, but an HTTP request body
//! is usually a stream that can be read only once. [`ReplayBody`] wraps any
//! [`http_body::Body`] and keeps a copy of what it has read, so that a clone
//! can later replay the same bytes (and trailers) from the start.
//!
//! The model is linkerd2-proxy's: the copy is made *while* the first attempt
//! streams, so the first attempt is never delayed by buffering, and the copy
//! is bounded:
//!
//! - [`ReplayBody::try_new`] refuses at once (returning the body untouched) if
//!   the body's `size_hint().lower()` already exceeds the cap. Send such a body
//!   without retries.
//! - While the body streams, chunks are kept in a buffer shared by all clones.
//! - If more than `cap` bytes arrive, the buffer is dropped: the attempt that
//!   is reading keeps streaming every byte (nothing is truncated), but the body
//!   reports [`is_capped`](ReplayBody::is_capped) and a clone that needs the
//!   dropped bytes fails with a [`ReplayError`]. Check
//!   [`is_replayable`](ReplayBody::is_replayable) before retrying.
//! - Trailers are kept and replayed too.
//! - Bodies whose whole content is already in memory (`Full<Bytes>`, `String`,
//!   `Empty`, ...) take a fast path: clones share the bytes with no lock at all.
//!
//! The default cap is [`DEFAULT_REPLAY_CAP`] (64 KiB, linkerd's default).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use mesh_tower::body::{ReplayBody, DEFAULT_REPLAY_CAP};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let body = ReplayBody::try_new(Full::new(Bytes::from_static(b"hello")), DEFAULT_REPLAY_CAP)
//!     .expect("5 bytes fit under the cap");
//! let retry = body.clone();
//!
//! let first = body.collect().await.unwrap().to_bytes();
//! assert!(retry.is_replayable());
//! let second = retry.collect().await.unwrap().to_bytes();
//! assert_eq!(first, second);
//! # }
//! ```
//!
//! # Clones that read at the same time
//!
//! Clones normally run one after another (attempt, then retry). They may also
//! overlap, for example when a response arrives before the request body has
//! finished and the retry starts while the old connection is still reading.
//! Overlap is supported: each clone has its own position and whoever reaches
//! the end of the buffer reads the next chunk for everyone. Once the cap has
//! been exceeded, only the clone that is reading the newest chunk can go on.
//! linkerd2-proxy does not retry at all when the response came before the end
//! of the request body; a retry layer can follow that rule with
//! [`is_complete`](ReplayBody::is_complete).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::BoxError;

mod response;

pub use response::MeshBody;
pub(crate) use response::PermitGuard;

/// The default replay cap: 64 KiB, the value linkerd2-proxy uses.
pub const DEFAULT_REPLAY_CAP: usize = 64 * 1024;

/// A body that can be replayed from the start by its clones, within a cap.
///
/// See the [module documentation](self) for the rules. Cloning a
/// `ReplayBody` gives a body that starts again **from the beginning**, not
/// from where the original is; that is what a retry needs.
pub struct ReplayBody<B> {
    state: State<B>,
}

enum State<B> {
    /// The whole body was in memory when it was wrapped: no lock needed.
    Ready(Ready),
    /// The body streams; clones share a buffer behind a lock.
    Streaming(Streaming<B>),
}

#[derive(Clone)]
struct Ready {
    data: Bytes,
    /// Boxed: rare in requests, and the body is moved with every request.
    trailers: Option<Box<HeaderMap>>,
    data_sent: bool,
    trailers_sent: bool,
    replayable: bool,
}

struct Streaming<B> {
    shared: Arc<Mutex<Shared<B>>>,
    /// A follower never reads ahead of the other clones: it replays what they read and waits
    /// for them (while any is alive), so it can never push the buffer past the cap.
    follower: bool,
    /// How many chunks of the stream this clone has yielded.
    cursor: usize,
    /// How many bytes this clone has yielded.
    consumed: u64,
    trailers_sent: bool,
}

struct Shared<B> {
    /// The rest of the original body; `None` once it ended or failed.
    body: Option<Pin<Box<B>>>,
    cap: usize,
    /// Every chunk read so far, in order, while not capped.
    chunks: Vec<Bytes>,
    /// Bytes held in `chunks`.
    buffered: usize,
    /// Chunks read from the original body in total (also after capping).
    pulled: usize,
    /// Bytes read from the original body in total.
    pulled_bytes: u64,
    trailers: Option<HeaderMap>,
    capped: bool,
    /// The original body returned an error (given to the clone that read it).
    failed: bool,
    /// An error met while probing the body in `try_new`, not yet delivered.
    pending_error: Option<BoxError>,
    /// Clones waiting at the end of the buffer for the original body.
    waiters: Vec<Waker>,
    /// Clones alive that may read from the original body (every clone but followers).
    leaders: usize,
}

/// Why a clone of a [`ReplayBody`] could not be replayed.
///
/// Yielded (boxed) as the body error of a clone that needs bytes the buffer no
/// longer has. The message is not part of the stable API.
#[derive(Debug)]
pub struct ReplayError {
    kind: ReplayErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplayErrorKind {
    Capped,
    Failed,
}

impl ReplayError {
    /// The body grew past the replay cap, so its start was not kept.
    pub fn is_capped(&self) -> bool {
        self.kind == ReplayErrorKind::Capped
    }

    /// The original body failed while an earlier clone was reading it.
    pub fn is_failed(&self) -> bool {
        self.kind == ReplayErrorKind::Failed
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ReplayErrorKind::Capped => {
                f.write_str("request body exceeded the replay buffer cap and cannot be replayed")
            }
            ReplayErrorKind::Failed => {
                f.write_str("request body failed during an earlier attempt and cannot be replayed")
            }
        }
    }
}

impl std::error::Error for ReplayError {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while polling the inner body poisons the lock; the state itself
    // is still consistent (every update is a few plain assignments).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B> ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    /// Wraps `body` so that it can be replayed while it stays within `cap` bytes.
    ///
    /// Returns the body back, untouched, when its size hint already says it is
    /// larger than `cap`: such a body can only be sent once.
    ///
    /// A body that reports an exact size of at most `cap` bytes is read right
    /// away as far as it is ready without waiting (this is how in-memory bodies
    /// such as `Full<Bytes>` or `String` reach the lock-free fast path).
    ///
    /// # Example
    ///
    /// ```
    /// use mesh_tower::body::ReplayBody;
    ///
    /// let small = ReplayBody::try_new(String::from("tiny"), 16);
    /// assert!(small.is_ok());
    /// let large = ReplayBody::try_new("x".repeat(17), 16);
    /// assert_eq!(large.unwrap_err().len(), 17, "the body comes back untouched");
    /// ```
    pub fn try_new(body: B, cap: usize) -> Result<Self, B> {
        let hint = body.size_hint();
        if hint.lower() > cap as u64 {
            return Err(body);
        }
        if body.is_end_stream() {
            return Ok(Self::ready(Bytes::new(), None, true));
        }
        let mut body = Box::pin(body);
        // The common in-memory body is one chunk: keep it out of a Vec.
        let mut first: Option<Bytes> = None;
        let mut prefix: Vec<Bytes> = Vec::new();
        let mut prefix_bytes = 0usize;
        let mut trailers = None;
        let mut pending_error = None;
        let mut finished = false;
        if hint.exact().is_some() {
            let mut cx = Context::from_waker(Waker::noop());
            // Bounded: stops at the first Pending, error, end, or once more
            // than `cap` bytes were seen (a body lying about its size).
            while prefix_bytes <= cap {
                match body.as_mut().poll_frame(&mut cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(mut data) => {
                            let bytes = data.copy_to_bytes(data.remaining());
                            prefix_bytes += bytes.len();
                            if first.is_none() && prefix.is_empty() {
                                first = Some(bytes);
                            } else {
                                prefix.extend(first.take());
                                prefix.push(bytes);
                            }
                        }
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                trailers = Some(t);
                                finished = true;
                                break;
                            }
                        }
                    },
                    Poll::Ready(Some(Err(e))) => {
                        pending_error = Some(e.into());
                        break;
                    }
                    Poll::Ready(None) => {
                        finished = true;
                        break;
                    }
                    Poll::Pending => break,
                }
                if body.is_end_stream() {
                    finished = true;
                    break;
                }
            }
        }
        if finished {
            let data = match (first, prefix.len()) {
                (Some(only), _) => only,
                (None, 0) => Bytes::new(),
                (None, _) => {
                    let mut all = BytesMut::with_capacity(prefix_bytes);
                    for chunk in &prefix {
                        all.extend_from_slice(chunk);
                    }
                    all.freeze()
                }
            };
            return Ok(Self::ready(data, trailers, prefix_bytes <= cap));
        }
        prefix.extend(first);
        let pulled = prefix.len();
        let shared = Shared {
            body: if pending_error.is_some() {
                None
            } else {
                Some(body)
            },
            cap,
            chunks: prefix,
            buffered: prefix_bytes,
            pulled,
            pulled_bytes: prefix_bytes as u64,
            trailers,
            capped: false,
            failed: false,
            pending_error,
            waiters: Vec::new(),
            leaders: 1,
        };
        Ok(Self {
            state: State::Streaming(Streaming {
                shared: Arc::new(Mutex::new(shared)),
                follower: false,
                cursor: 0,
                consumed: 0,
                trailers_sent: false,
            }),
        })
    }
}

impl<B> ReplayBody<B> {
    /// Wraps a body that is sent once and never replayed (it was too large for
    /// the cap up front). It streams every byte and keeps none.
    pub(crate) fn unreplayable(body: B) -> Self {
        let shared = Shared {
            body: Some(Box::pin(body)),
            cap: 0,
            chunks: Vec::new(),
            buffered: 0,
            pulled: 0,
            pulled_bytes: 0,
            trailers: None,
            capped: true,
            failed: false,
            pending_error: None,
            waiters: Vec::new(),
            leaders: 1,
        };
        Self {
            state: State::Streaming(Streaming {
                shared: Arc::new(Mutex::new(shared)),
                follower: false,
                cursor: 0,
                consumed: 0,
                trailers_sent: false,
            }),
        }
    }

    fn ready(data: Bytes, trailers: Option<HeaderMap>, replayable: bool) -> Self {
        Self {
            state: State::Ready(Ready {
                data,
                trailers: trailers.map(Box::new),
                data_sent: false,
                trailers_sent: false,
                replayable,
            }),
        }
    }

    /// Whether the body grew past the cap, so its start is no longer kept.
    ///
    /// Once true it stays true. A capped body is still sent whole by the clone
    /// that was reading it; only replay is lost.
    pub fn is_capped(&self) -> bool {
        match &self.state {
            State::Ready(r) => !r.replayable,
            State::Streaming(s) => lock(&s.shared).capped,
        }
    }

    /// Whether a fresh clone can still resend everything read so far.
    ///
    /// False once the body was capped or the original body failed. A body that
    /// is still streaming may be replayable now and capped later: check again
    /// before each retry.
    pub fn is_replayable(&self) -> bool {
        match &self.state {
            State::Ready(r) => r.replayable,
            State::Streaming(s) => {
                let sh = lock(&s.shared);
                !sh.capped && !sh.failed && sh.pending_error.is_none()
            }
        }
    }

    /// Whether the original body has been read to its end without error.
    ///
    /// True from the start for in-memory bodies.
    pub fn is_complete(&self) -> bool {
        match &self.state {
            State::Ready(_) => true,
            State::Streaming(s) => {
                let sh = lock(&s.shared);
                sh.body.is_none() && !sh.failed && sh.pending_error.is_none()
            }
        }
    }

    /// Whether this body took the lock-free path (its content was in memory).
    pub fn is_in_memory(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }
}

impl<B> ReplayBody<B> {
    /// A clone that follows the others: it replays what they have read and waits for them
    /// instead of reading the original body itself (until no other clone is left). A mirror
    /// copy reads through one, so it can never push the shared buffer past the cap and fail
    /// the request it copies; if it falls further behind than the cap, it fails instead
    /// ([`ReplayError::is_capped`]).
    pub(crate) fn follower(&self) -> Self {
        let mut body = self.fresh_clone(true);
        if let State::Streaming(s) = &mut body.state {
            s.follower = true;
        }
        body
    }

    fn fresh_clone(&self, follower: bool) -> Self {
        let state = match &self.state {
            State::Ready(r) => State::Ready(Ready {
                data: r.data.clone(),
                trailers: r.trailers.clone(),
                data_sent: false,
                trailers_sent: false,
                replayable: r.replayable,
            }),
            State::Streaming(s) => {
                if !follower {
                    lock(&s.shared).leaders += 1;
                }
                State::Streaming(Streaming {
                    shared: Arc::clone(&s.shared),
                    follower,
                    cursor: 0,
                    consumed: 0,
                    trailers_sent: false,
                })
            }
        };
        Self { state }
    }
}

impl<B> Clone for ReplayBody<B> {
    fn clone(&self) -> Self {
        self.fresh_clone(false)
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Ready(r) => f
                .debug_struct("ReplayBody")
                .field("in_memory", &true)
                .field("len", &r.data.len())
                .field("trailers", &r.trailers.is_some())
                .field("replayable", &r.replayable)
                .finish(),
            State::Streaming(s) => {
                let sh = lock(&s.shared);
                f.debug_struct("ReplayBody")
                    .field("in_memory", &false)
                    .field("cap", &sh.cap)
                    .field("buffered", &sh.buffered)
                    .field("capped", &sh.capped)
                    .field("complete", &sh.body.is_none())
                    .field("cursor", &s.cursor)
                    .finish()
            }
        }
    }
}

impl Ready {
    fn poll(&mut self) -> Option<Frame<Bytes>> {
        if !self.data_sent {
            self.data_sent = true;
            if !self.data.is_empty() {
                return Some(Frame::data(self.data.clone()));
            }
        }
        if !self.trailers_sent {
            self.trailers_sent = true;
            if let Some(t) = &self.trailers {
                return Some(Frame::trailers(HeaderMap::clone(t)));
            }
        }
        None
    }

    fn is_end_stream(&self) -> bool {
        (self.data_sent || self.data.is_empty()) && (self.trailers_sent || self.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(if self.data_sent {
            0
        } else {
            self.data.len() as u64
        })
    }
}

impl<B> Shared<B> {
    /// Records a chunk read from the original body; drops the buffer once the
    /// cap is exceeded.
    fn record(&mut self, chunk: &Bytes) {
        self.pulled += 1;
        self.pulled_bytes += chunk.len() as u64;
        if self.capped {
            return;
        }
        if self.buffered + chunk.len() > self.cap {
            self.capped = true;
            self.chunks = Vec::new();
            self.buffered = 0;
        } else {
            self.buffered += chunk.len();
            self.chunks.push(chunk.clone());
        }
    }

    fn finish(&mut self) {
        self.body = None;
        if self.buffered > self.cap {
            // Only reachable when the probe in `try_new` read past the cap.
            self.capped = true;
            self.chunks = Vec::new();
            self.buffered = 0;
        }
    }

    fn register(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    fn wake_others(&mut self, me: &Waker) {
        for w in self.waiters.drain(..) {
            if !w.will_wake(me) {
                w.wake();
            }
        }
    }
}

impl<B> Streaming<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut guard = lock(&self.shared);
        let sh = &mut *guard;
        if self.cursor < sh.pulled {
            if sh.capped {
                return Poll::Ready(Some(Err(Box::new(ReplayError {
                    kind: ReplayErrorKind::Capped,
                }))));
            }
            let chunk = sh.chunks[self.cursor].clone();
            self.cursor += 1;
            self.consumed += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if self.follower && sh.leaders > 0 && sh.body.is_some() {
            // Wait for another clone to read the next chunk.
            sh.register(cx.waker());
            return Poll::Pending;
        }
        if let Some(err) = sh.pending_error.take() {
            sh.failed = true;
            sh.body = None;
            sh.wake_others(cx.waker());
            return Poll::Ready(Some(Err(err)));
        }
        while let Some(body) = sh.body.as_mut() {
            match body.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    sh.register(cx.waker());
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => {
                        let bytes = data.copy_to_bytes(data.remaining());
                        sh.record(&bytes);
                        self.cursor = sh.pulled;
                        self.consumed = sh.pulled_bytes;
                        sh.wake_others(cx.waker());
                        return Poll::Ready(Some(Ok(Frame::data(bytes))));
                    }
                    Err(frame) => {
                        // Frames that are neither data nor trailers are skipped.
                        if let Ok(trailers) = frame.into_trailers() {
                            sh.trailers = Some(trailers.clone());
                            sh.finish();
                            self.trailers_sent = true;
                            sh.wake_others(cx.waker());
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    sh.body = None;
                    sh.failed = true;
                    sh.wake_others(cx.waker());
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    sh.finish();
                    sh.wake_others(cx.waker());
                }
            }
        }
        if sh.failed {
            return Poll::Ready(Some(Err(Box::new(ReplayError {
                kind: ReplayErrorKind::Failed,
            }))));
        }
        if !self.trailers_sent {
            self.trailers_sent = true;
            if let Some(t) = &sh.trailers {
                return Poll::Ready(Some(Ok(Frame::trailers(t.clone()))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        let sh = lock(&self.shared);
        self.cursor == sh.pulled
            && sh.body.is_none()
            && !sh.failed
            && sh.pending_error.is_none()
            && (self.trailers_sent || sh.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let sh = lock(&self.shared);
        let rest = sh.pulled_bytes.saturating_sub(self.consumed);
        match &sh.body {
            Some(body) => {
                let inner = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(rest));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(rest));
                }
                hint
            }
            None => SizeHint::with_exact(rest),
        }
    }
}

impl<B> Drop for Streaming<B> {
    fn drop(&mut self) {
        // This clone may be the one whose waker the original body holds: let
        // the others poll again so one of them registers (a follower left alone reads
        // the original body itself).
        let mut sh = lock(&self.shared);
        if !self.follower {
            sh.leaders = sh.leaders.saturating_sub(1);
        }
        for w in sh.waiters.drain(..) {
            w.wake();
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match &mut self.get_mut().state {
            State::Ready(r) => Poll::Ready(r.poll().map(Ok)),
            State::Streaming(s) => s.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Ready(r) => r.is_end_stream(),
            State::Streaming(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Ready(r) => r.size_hint(),
            State::Streaming(s) => s.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests;
