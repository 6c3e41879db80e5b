//! [`MeshBody`]: the response body of the mesh, and the guard it holds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use mesh_resilience::RequestPermit;

use crate::cluster::{ClusterState, EndpointRef};
use crate::error::MeshError;
use crate::stage::pick::Target;
use crate::telemetry::{ResponseFlag, Tail, TailSlot};
use crate::BoxError;

pin_project_lite::pin_project! {
    /// The response body of [`Mesh`](crate::Mesh).
    ///
    /// Either the upstream's body, which holds the cluster's connection-pool
    /// permit until it ends (or is dropped) so that Envoy's "active request"
    /// lasts as long as the response stream; or the body of a local reply
    /// (redirect, direct response, fault abort) with no upstream behind it.
    ///
    /// The route timeout covers the whole response, as in Envoy: if it passes
    /// while the body is still streaming, the body yields a [`MeshError`]
    /// (`is_timeout()`, boxed) and ends. So does a body that sends nothing for the
    /// stream idle timeout ([`MeshBuilder::stream_idle_timeout`](crate::MeshBuilder::stream_idle_timeout)).
    /// (The per-try timeout, as in Envoy, no longer applies once response headers
    /// have arrived.)
    pub struct MeshBody<RB> {
        #[pin]
        kind: Kind<RB>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<RB> {
        Upstream {
            #[pin]
            body: RB,
            guard: Option<PermitGuard>,
            deadline: Option<tokio::time::Instant>,
            idle: Option<std::time::Duration>,
            // Armed only when the body makes the reader wait; boxed so that
            // `MeshBody<RB>` is `Unpin` whenever `RB` is.
            sleep: Option<Pin<Box<tokio::time::Sleep>>>,
            // Whether a frame arrived since the timer was armed (the idle timer restarts).
            active: bool,
            // Whether the armed timer is the route deadline (else the idle deadline).
            route_timer: bool,
            timed_out: bool,
            // Telemetry recorded when the body ends (or is dropped before).
            tail: TailSlot,
        },
        Local {
            data: Option<Bytes>,
        },
    }
}

/// Gives the pool permit and the endpoint's in-flight slot back when dropped.
pub(crate) struct PermitGuard {
    cluster: Arc<ClusterState>,
    permit: Option<RequestPermit>,
    endpoint: Option<EndpointRef>,
}

impl PermitGuard {
    /// Holds `permit` of `cluster` and the in-flight slot of the endpoint `target` names.
    pub(crate) fn new(
        cluster: &Arc<ClusterState>,
        permit: Option<RequestPermit>,
        target: Option<&Target>,
    ) -> Self {
        let endpoint = match target {
            Some(Target::Endpoint(e)) => Some(e.clone()),
            _ => None,
        };
        PermitGuard {
            cluster: Arc::clone(cluster),
            permit,
            endpoint,
        }
    }
}

impl Drop for PermitGuard {
    fn drop(&mut self) {
        self.cluster
            .finish(self.permit.take(), self.endpoint.as_ref());
    }
}

impl fmt::Debug for PermitGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PermitGuard")
            .field(
                "endpoint",
                &self.endpoint.as_ref().map(|e| e.authority.as_str()),
            )
            .finish_non_exhaustive()
    }
}

impl<RB> MeshBody<RB> {
    pub(crate) fn upstream(
        body: RB,
        guard: Option<PermitGuard>,
        deadline: Option<tokio::time::Instant>,
        idle: Option<std::time::Duration>,
    ) -> Self
    where
        RB: Body,
    {
        // An empty body has already ended: give the permit back now.
        let guard = if body.is_end_stream() { None } else { guard };
        Self {
            kind: Kind::Upstream {
                body,
                guard,
                deadline,
                idle,
                sleep: None,
                active: false,
                route_timer: false,
                timed_out: false,
                tail: TailSlot::default(),
            },
        }
    }

    /// Hands the request's telemetry to the body: recorded when it ends. A body that has
    /// already ended records at once.
    pub(crate) fn set_tail(&mut self, t: Tail)
    where
        RB: Body,
    {
        match &mut self.kind {
            Kind::Upstream { body, tail, .. } if !body.is_end_stream() => tail.0 = Some(t),
            _ => t.finish(None),
        }
    }

    pub(crate) fn local(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Local {
                data: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }

    /// The length of a local reply's body (`None` for an upstream body).
    pub(crate) fn local_len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Local { data } => Some(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream { .. } => None,
        }
    }

    /// Whether this body is a local reply of the mesh (no upstream behind it).
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local { .. })
    }
}

impl<RB> Body for MeshBody<RB>
where
    RB: Body<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Local { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Upstream {
                mut body,
                guard,
                deadline,
                idle,
                sleep,
                active,
                route_timer,
                timed_out,
                tail,
            } => {
                if *timed_out {
                    return Poll::Ready(None);
                }
                let Poll::Ready(res) = body.as_mut().poll_frame(cx) else {
                    if sleep.is_none() || (*active && idle.is_some()) {
                        // (Re)arm: the earlier of the route deadline and, counted from the
                        // last frame, the idle timeout. The clock is read only here.
                        let idle_deadline = idle.map(|d| crate::time::now() + d);
                        let next = match (*deadline, idle_deadline) {
                            (Some(r), Some(i)) => Some(if r <= i { (r, true) } else { (i, false) }),
                            (Some(r), None) => Some((r, true)),
                            (None, Some(i)) => Some((i, false)),
                            (None, None) => None,
                        };
                        *active = false;
                        let Some((at, is_route)) = next else {
                            return Poll::Pending;
                        };
                        *route_timer = is_route;
                        match sleep.as_mut() {
                            Some(s) => s.as_mut().reset(at),
                            None => *sleep = Some(Box::pin(tokio::time::sleep_until(at))),
                        }
                    }
                    let fired = sleep
                        .as_mut()
                        .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                    if fired {
                        *timed_out = true;
                        guard.take();
                        let err = if *route_timer {
                            MeshError::route_timeout()
                        } else {
                            MeshError::stream_idle_timeout()
                        };
                        if let Some(t) = tail.0.take() {
                            t.finish(err.response_flags().iter().next());
                        }
                        return Poll::Ready(Some(Err(Box::new(err))));
                    }
                    return Poll::Pending;
                };
                *active = true;
                match res {
                    Some(Ok(frame)) => {
                        if let Some(t) = tail.0.as_mut() {
                            match frame.data_ref() {
                                Some(d) => t.data(d.len()),
                                None => {
                                    if let Some(trailers) = frame.trailers_ref() {
                                        t.headers(trailers);
                                    }
                                }
                            }
                        }
                        if body.is_end_stream() {
                            guard.take();
                            if let Some(t) = tail.0.take() {
                                t.finish(None);
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(e)) => {
                        guard.take();
                        if let Some(t) = tail.0.take() {
                            // The upstream broke off the response.
                            t.finish(Some(ResponseFlag::UpstreamConnectionTermination));
                        }
                        Poll::Ready(Some(Err(e.into())))
                    }
                    None => {
                        guard.take();
                        if let Some(t) = tail.0.take() {
                            t.finish(None);
                        }
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Local { data } => data.is_none(),
            Kind::Upstream {
                body, timed_out, ..
            } => *timed_out || body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Local { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

impl<RB> fmt::Debug for MeshBody<RB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Local { data } => f
                .debug_struct("MeshBody")
                .field("local", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Upstream { guard, .. } => f
                .debug_struct("MeshBody")
                .field("upstream", &true)
                .field("holds_permit", &guard.is_some())
                .finish(),
        }
    }
}
