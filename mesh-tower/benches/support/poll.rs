//! Driving the mesh without a runtime's scheduler, for the benches whose inner client answers
//! at once: poll a future to completion, read a body to its end.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http_body::Body;

/// Polls a future that never waits to completion.
pub(crate) fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Reads a body to its end (this is what records the request's metrics and releases the
/// mesh's pool permit).
pub(crate) fn drain<B: Body + Unpin>(mut body: B) {
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(Ok(_))) = std::pin::Pin::new(&mut body).poll_frame(&mut cx) {}
}
