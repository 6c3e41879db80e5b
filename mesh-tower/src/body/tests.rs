use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use proptest::prelude::*;

use super::{ReplayBody, ReplayError, DEFAULT_REPLAY_CAP};
use crate::BoxError;

/// One step of a scripted body.
#[derive(Debug, Clone)]
enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    /// Return `Pending` once (waking itself at once).
    Pending,
    Fail,
}

/// A body that plays a fixed script, optionally with a size hint.
#[derive(Debug)]
struct Scripted {
    steps: VecDeque<Step>,
    hint: SizeHint,
}

impl Scripted {
    fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            steps: steps.into_iter().collect(),
            hint: SizeHint::new(),
        }
    }

    fn chunks(chunks: &[&'static [u8]]) -> Self {
        Self::new(
            chunks
                .iter()
                .flat_map(|c| [Step::Pending, Step::Data(Bytes::from_static(c))]),
        )
    }

    fn with_hint(mut self, hint: SizeHint) -> Self {
        self.hint = hint;
        self
    }
}

#[derive(Debug)]
struct ScriptError;

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted failure")
    }
}

impl std::error::Error for ScriptError {}

impl Body for Scripted {
    type Data = Bytes;
    type Error = ScriptError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ScriptError>>> {
        match self.steps.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Step::Data(d)) => Poll::Ready(Some(Ok(Frame::data(d)))),
            Some(Step::Trailers(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Some(Step::Fail) => Poll::Ready(Some(Err(ScriptError))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.steps.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// What a body produced: its bytes and trailers, or the error it ended with.
#[derive(Debug, PartialEq)]
struct Read {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
}

/// Polls one frame with a no-op waker, re-polling while `Pending` (the test
/// bodies wake themselves at once, so this never waits for anything).
fn next_frame<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(f) = Pin::new(&mut *body).poll_frame(&mut cx) {
            return f;
        }
    }
    panic!("body stayed pending");
}

fn read_all<B>(mut body: ReplayBody<B>) -> Result<Read, BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = next_frame(&mut body) {
        let frame = frame?;
        match frame.into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(f) => trailers = Some(f.into_trailers().expect("data or trailers")),
        }
    }
    assert!(body.is_end_stream(), "ended but not is_end_stream");
    Ok(Read { data, trailers })
}

fn trailers(value: &'static str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static(value));
    t
}

fn is_replay_error(e: &BoxError, capped: bool) -> bool {
    e.downcast_ref::<ReplayError>()
        .is_some_and(|r| r.is_capped() == capped && r.is_failed() != capped)
}

#[test]
fn full_body_takes_the_lock_free_path_and_replays() {
    let body = ReplayBody::try_new(Full::new(Bytes::from_static(b"hello")), 64).unwrap();
    assert!(body.is_in_memory());
    assert!(body.is_complete());
    assert_eq!(body.size_hint().exact(), Some(5));
    let retry = body.clone();
    assert_eq!(read_all(body).unwrap().data, b"hello");
    assert!(retry.is_replayable());
    assert_eq!(retry.size_hint().exact(), Some(5));
    assert_eq!(read_all(retry).unwrap().data, b"hello");
}

#[test]
fn string_body_takes_the_lock_free_path() {
    let body = ReplayBody::try_new(String::from("abc"), 3).unwrap();
    assert!(body.is_in_memory());
    assert_eq!(read_all(body.clone()).unwrap().data, b"abc");
    assert_eq!(read_all(body).unwrap().data, b"abc");
}

#[test]
fn empty_body_yields_nothing_and_is_at_end() {
    let body = ReplayBody::try_new(Empty::<Bytes>::new(), 0).unwrap();
    assert!(body.is_in_memory());
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
    let mut again = body.clone();
    assert!(next_frame(&mut again).is_none());
    assert_eq!(
        read_all(body).unwrap(),
        Read {
            data: vec![],
            trailers: None
        }
    );
}

#[test]
fn size_hint_above_cap_is_refused_untouched() {
    let mut hint = SizeHint::new();
    hint.set_lower(11);
    let body = Scripted::chunks(&[b"0123456789a"]).with_hint(hint);
    let back = ReplayBody::try_new(body, 10).unwrap_err();
    assert_eq!(
        back.steps.len(),
        2,
        "nothing was read from the refused body"
    );

    let exact = Full::new(Bytes::from_static(b"0123456789"));
    assert!(
        ReplayBody::try_new(exact, 10).is_ok(),
        "exactly the cap fits"
    );
    let over = Full::new(Bytes::from_static(b"0123456789a"));
    assert!(ReplayBody::try_new(over, 10).is_err());
}

#[test]
fn streamed_body_is_replayed_byte_for_byte_with_trailers() {
    let body = Scripted::new([
        Step::Pending,
        Step::Data(Bytes::from_static(b"ab")),
        Step::Pending,
        Step::Data(Bytes::from_static(b"cde")),
        Step::Trailers(trailers("0")),
    ]);
    let body = ReplayBody::try_new(body, DEFAULT_REPLAY_CAP).unwrap();
    assert!(!body.is_in_memory());
    let retry = body.clone();
    let mirror = body.clone();
    let first = read_all(body).unwrap();
    assert_eq!(first.data, b"abcde");
    assert_eq!(first.trailers, Some(trailers("0")));
    assert!(retry.is_complete());
    assert!(retry.is_replayable());
    assert_eq!(retry.size_hint().exact(), Some(5));
    assert_eq!(read_all(retry).unwrap(), first);
    assert_eq!(read_all(mirror).unwrap(), first);
}

#[test]
fn in_memory_trailers_are_replayed() {
    // A body with an exact size whose frames are all ready: probed eagerly.
    let body = Scripted::new([
        Step::Data(Bytes::from_static(b"xy")),
        Step::Trailers(trailers("14")),
    ])
    .with_hint(SizeHint::with_exact(2));
    let body = ReplayBody::try_new(body, 8).unwrap();
    assert!(body.is_in_memory());
    let expect = Read {
        data: b"xy".to_vec(),
        trailers: Some(trailers("14")),
    };
    assert_eq!(read_all(body.clone()).unwrap(), expect);
    assert_eq!(read_all(body).unwrap(), expect);
}

#[test]
fn cap_exceeded_mid_stream_keeps_first_attempt_whole_and_refuses_replay() {
    let body = Scripted::chunks(&[b"aaaa", b"bbbb", b"cccc"]);
    let body = ReplayBody::try_new(body, 10).unwrap();
    let retry = body.clone();
    assert!(retry.is_replayable(), "nothing read yet");
    let first = read_all(body).unwrap();
    assert_eq!(first.data, b"aaaabbbbcccc", "never truncated");
    assert!(retry.is_capped());
    assert!(!retry.is_replayable());
    let err = read_all(retry).unwrap_err();
    assert!(is_replay_error(&err, true), "{err}");
}

#[test]
fn cap_is_inclusive() {
    let body = ReplayBody::try_new(Scripted::chunks(&[b"aaaa", b"bbbbbb"]), 10).unwrap();
    let retry = body.clone();
    assert_eq!(read_all(body).unwrap().data, b"aaaabbbbbb");
    assert!(!retry.is_capped());
    assert_eq!(read_all(retry).unwrap().data, b"aaaabbbbbb");
}

#[test]
fn retry_may_start_before_the_body_ends() {
    let body = ReplayBody::try_new(Scripted::chunks(&[b"one", b"two", b"three"]), 64).unwrap();
    let mut first = body.clone();
    drop(body);
    // The first attempt reads one chunk, then its response arrives early.
    let chunk = next_frame(&mut first)
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(chunk, "one");
    let retry = first.clone();
    assert!(retry.is_replayable());
    assert!(!retry.is_complete());
    // The retry replays "one" from the buffer, then reads the rest itself.
    assert_eq!(read_all(retry).unwrap().data, b"onetwothree");
    // The old attempt, still alive, can go on from the shared buffer.
    assert_eq!(read_all(first).unwrap().data, b"twothree");
}

#[test]
fn inner_error_reaches_the_reader_and_blocks_replay() {
    let body = Scripted::new([
        Step::Data(Bytes::from_static(b"par")),
        Step::Pending,
        Step::Fail,
    ]);
    let body = ReplayBody::try_new(body, 64).unwrap();
    let retry = body.clone();
    let err = read_all(body).unwrap_err();
    assert!(err.downcast_ref::<ScriptError>().is_some(), "{err}");
    assert!(!retry.is_replayable());
    assert!(!retry.is_complete());
    let err = read_all(retry).unwrap_err();
    assert!(is_replay_error(&err, false), "{err}");
}

#[test]
fn error_met_while_probing_is_delivered_once() {
    let body = Scripted::new([Step::Data(Bytes::from_static(b"ab")), Step::Fail])
        .with_hint(SizeHint::with_exact(4));
    let body = ReplayBody::try_new(body, 64).unwrap();
    assert!(!body.is_in_memory());
    assert!(!body.is_replayable());
    let retry = body.clone();
    let mut first = body;
    assert_eq!(
        next_frame(&mut first)
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap(),
        "ab"
    );
    let err = next_frame(&mut first).unwrap().unwrap_err();
    assert!(err.downcast_ref::<ScriptError>().is_some(), "{err}");
    let err = read_all(retry).unwrap_err();
    assert!(is_replay_error(&err, false), "{err}");
}

#[test]
fn body_lying_about_its_size_is_sent_whole_but_not_replayed() {
    // Claims 4 bytes, delivers 12 at once: all in memory, but over the cap.
    let body = Scripted::new([Step::Data(Bytes::from_static(b"twelve bytes"))])
        .with_hint(SizeHint::with_exact(4));
    let body = ReplayBody::try_new(body, 8).unwrap();
    assert!(body.is_capped());
    assert!(!body.is_replayable());
    assert_eq!(read_all(body).unwrap().data, b"twelve bytes");
}

#[test]
fn streamed_size_hint_counts_buffered_and_inner() {
    let body = Scripted::chunks(&[b"abc", b"de"]).with_hint(SizeHint::with_exact(5));
    let body = ReplayBody::try_new(body, 64).unwrap();
    // The probe stopped at the first Pending, so nothing was buffered yet.
    assert!(!body.is_in_memory());
    assert_eq!(body.size_hint().exact(), Some(5));
}

#[test]
fn debug_does_not_dump_the_body() {
    let body = ReplayBody::try_new(Full::new(Bytes::from_static(b"secret")), 64).unwrap();
    let s = format!("{body:?}");
    assert!(s.contains("len: 6"), "{s}");
    assert!(!s.contains("secret"), "{s}");
}

#[tokio::test]
async fn channel_body_streams_and_replays_across_tasks() {
    let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
    let body = ReplayBody::try_new(rx, DEFAULT_REPLAY_CAP).unwrap();
    let retry = body.clone();
    let sender = tokio::spawn(async move {
        for i in 0..20u8 {
            tx.send_data(Bytes::from(vec![i; 100])).await.unwrap();
        }
        tx.send_trailers(trailers("0")).await.unwrap();
    });
    let first = body.collect().await.unwrap();
    sender.await.unwrap();
    assert_eq!(first.trailers(), Some(&trailers("0")));
    let first = first.to_bytes();
    assert_eq!(first.len(), 2000);
    let second = retry.collect().await.unwrap();
    assert_eq!(second.trailers(), Some(&trailers("0")));
    assert_eq!(second.to_bytes(), first);
}

#[tokio::test]
async fn two_clones_waiting_at_the_end_are_both_woken() {
    let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
    let body = ReplayBody::try_new(rx, DEFAULT_REPLAY_CAP).unwrap();
    let a = tokio::spawn(body.clone().collect());
    let b = tokio::spawn(body.clone().collect());
    drop(body);
    // Let both readers reach the end of the (empty) buffer and wait.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tx.send_data(Bytes::from_static(b"late")).await.unwrap();
    drop(tx);
    let a = a.await.unwrap().unwrap().to_bytes();
    let b = b.await.unwrap().unwrap().to_bytes();
    assert_eq!(a, "late");
    assert_eq!(b, "late");
}

#[tokio::test]
async fn waiter_is_woken_when_the_registered_reader_is_dropped() {
    let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
    let body = ReplayBody::try_new(rx, DEFAULT_REPLAY_CAP).unwrap();
    let waiting = tokio::spawn(body.clone().collect());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // A second reader polls last, so the channel holds only its waker; then it goes away.
    let mut second = body.clone();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut second).poll_frame(&mut cx).is_pending());
    drop(second);
    drop(body);
    tx.send_data(Bytes::from_static(b"x")).await.unwrap();
    drop(tx);
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("the waiting reader was woken")
        .unwrap()
        .unwrap();
    assert_eq!(got.to_bytes(), "x");
}

fn chunking() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<bool>, bool, usize)> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12),
        prop::collection::vec(any::<bool>(), 12),
        any::<bool>(),
        0usize..300,
    )
}

proptest! {
    /// For any chunking, with or without pauses and trailers: the first
    /// attempt yields exactly the input; a replay yields the same bytes and
    /// trailers when the total fits the cap, and an error (never wrong bytes)
    /// when it does not.
    #[test]
    fn replay_matches_the_original((chunks, pauses, with_trailers, cap) in chunking()) {
        let mut steps = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            if pauses[i] {
                steps.push(Step::Pending);
            }
            steps.push(Step::Data(Bytes::from(c.clone())));
        }
        if with_trailers {
            steps.push(Step::Trailers(trailers("0")));
        }
        let total: usize = chunks.iter().map(Vec::len).sum();
        let expect: Vec<u8> = chunks.concat();

        let body = ReplayBody::try_new(Scripted::new(steps), cap).unwrap();
        let retry = body.clone();
        let first = read_all(body).unwrap();
        prop_assert_eq!(&first.data, &expect);
        prop_assert_eq!(first.trailers.is_some(), with_trailers);
        prop_assert_eq!(retry.is_replayable(), total <= cap);
        prop_assert_eq!(retry.is_capped(), total > cap);
        match read_all(retry) {
            Ok(second) => {
                prop_assert!(total <= cap);
                prop_assert_eq!(second, first);
            }
            Err(e) => {
                prop_assert!(total > cap);
                prop_assert!(is_replay_error(&e, true));
            }
        }
    }

    /// An in-memory body of any size up to the cap replays identically, and
    /// larger ones are refused by the size-hint check.
    #[test]
    fn full_bodies_replay_or_are_refused(data in prop::collection::vec(any::<u8>(), 0..200), cap in 0usize..200) {
        let len = data.len();
        match ReplayBody::try_new(Full::new(Bytes::from(data.clone())), cap) {
            Ok(body) => {
                prop_assert!(len <= cap);
                prop_assert!(body.is_in_memory());
                let retry = body.clone();
                prop_assert_eq!(read_all(body).unwrap().data, data.clone());
                prop_assert_eq!(read_all(retry).unwrap().data, data);
            }
            Err(_) => prop_assert!(len > cap),
        }
    }
}
