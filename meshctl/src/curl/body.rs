//! The request body of `meshctl curl -d`: nothing, the bytes given, a file's bytes, or
//! standard input streamed with no length (`-d @-`), as curl sends it.

use std::io::Read as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::Failure;

/// What `-d` said.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// No body.
    None,
    /// These bytes (from the argument or a file).
    Bytes(Bytes),
    /// Standard input, streamed.
    Stdin,
}

impl Data {
    /// Parses `-d`: `@-` is standard input, `@FILE` a file's bytes, anything else the bytes
    /// as written.
    pub(crate) fn parse(arg: Option<&str>) -> Result<Self, Failure> {
        Ok(match arg {
            None => Data::None,
            Some("@-") => Data::Stdin,
            Some(a) if a.starts_with('@') => {
                let path = &a[1..];
                let bytes = std::fs::read(path)
                    .map_err(|e| Failure::usage(format!("cannot read -d file {path:?}: {e}")))?;
                Data::Bytes(bytes.into())
            }
            Some(a) => Data::Bytes(Bytes::copy_from_slice(a.as_bytes())),
        })
    }

    /// A body for one request. Standard input can be read once only.
    pub(crate) fn body(&self) -> CurlBody {
        match self {
            Data::None => CurlBody::Full(None),
            Data::Bytes(b) => CurlBody::Full(Some(b.clone())),
            Data::Stdin => CurlBody::Stream(stdin_chunks()),
        }
    }
}

/// Standard input in chunks of at most 16 KiB, read on a thread of its own.
fn stdin_chunks() -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// A request body: whole, or streamed with no length.
#[derive(Debug)]
pub(crate) enum CurlBody {
    /// All of it at once (`None`: empty).
    Full(Option<Bytes>),
    /// Chunks as they come.
    Stream(mpsc::Receiver<std::io::Result<Bytes>>),
}

impl Body for CurlBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            CurlBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            CurlBody::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, CurlBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            CurlBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            CurlBody::Stream(_) => SizeHint::default(),
        }
    }
}
