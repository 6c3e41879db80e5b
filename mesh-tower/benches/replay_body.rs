//! Cost of wrapping a request body for replay and reading it (and a replay).
//!
//! Run with: `cargo bench -p mesh-tower --bench replay_body -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body::Body;
use http_body_util::Full;
use mesh_tower::body::{ReplayBody, DEFAULT_REPLAY_CAP};

/// Reads a body to its end with a no-op waker (the bodies here never wait).
fn drain<B: Body + Unpin>(mut body: B) -> usize
where
    B::Data: bytes::Buf,
{
    use bytes::Buf;
    let mut cx = Context::from_waker(Waker::noop());
    let mut n = 0;
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    n += d.remaining();
                }
            }
            Poll::Ready(_) => return n,
            Poll::Pending => {}
        }
    }
}

/// A streamed body over prepared chunks (no size hint, so no fast path).
#[derive(Debug)]
struct Chunked(std::collections::VecDeque<Bytes>);

impl Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

fn streamed(chunks: &[Bytes]) -> Chunked {
    Chunked(chunks.iter().cloned().collect())
}

fn bench(c: &mut Criterion) {
    let small = Bytes::from_static(b"{\"user\":\"jason\",\"rating\":5}");
    c.bench_function("full_28B_wrap_read", |b| {
        b.iter(|| {
            let body = ReplayBody::try_new(Full::new(small.clone()), DEFAULT_REPLAY_CAP).unwrap();
            black_box(drain(body))
        })
    });
    c.bench_function("full_28B_wrap_read_replay", |b| {
        b.iter(|| {
            let body = ReplayBody::try_new(Full::new(small.clone()), DEFAULT_REPLAY_CAP).unwrap();
            let retry = body.clone();
            black_box(drain(body) + drain(retry))
        })
    });
    let chunks: Vec<Bytes> = (0..16).map(|_| Bytes::from(vec![7u8; 1024])).collect();
    c.bench_function("stream_16x1KiB_plain_read", |b| {
        b.iter(|| black_box(drain(streamed(&chunks))))
    });
    c.bench_function("stream_16x1KiB_wrap_read", |b| {
        b.iter(|| {
            let body = ReplayBody::try_new(streamed(&chunks), DEFAULT_REPLAY_CAP).unwrap();
            black_box(drain(body))
        })
    });
    c.bench_function("stream_16x1KiB_wrap_read_replay", |b| {
        b.iter(|| {
            let body = ReplayBody::try_new(streamed(&chunks), DEFAULT_REPLAY_CAP).unwrap();
            let retry = body.clone();
            black_box(drain(body) + drain(retry))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
