//! The stages a request goes through, one file each, in the order the driver runs them:
//!
//! | stage | does |
//! |---|---|
//! | [`route`] | the route table's decision; local replies (redirect, direct response, 404 `NR`, 503 `NC`) |
//! | [`fault`] | fault injection: delay, abort |
//! | [`attempt`] | the upstream request, built once ([`attempt::Template`]), sent per attempt under the per-try timeout |
//! | [`mirror`] | fire-and-forget copies to the mirror clusters |
//! | [`admit`] | the cluster's connection-pool admission (circuit breakers), waiting as pending |
//! | [`pick`] | the endpoint: the cluster's balancer, ejections, previous-host avoidance |
//! | [`classify`] | an attempt's result as a [`mesh_resilience::Outcome`] |
//! | [`decide`] | counters, outlier detection and the retry decision after an attempt |
//! | [`reply`] | the response: local replies and the upstream response with its permit |
//!
//! The driver (`crate::driver`) strings them together as synchronous steps (begin, dispatch,
//! admit, send, end); [`ResponseFuture`](crate::future::ResponseFuture) polls what a step
//! leaves in flight (a fault delay, a pending admission, an attempt, a back-off) and runs the
//! next. Each stage is a plain function (or a small future) over the pure crates' types.

pub(crate) mod admit;
pub(crate) mod attempt;
pub(crate) mod classify;
pub(crate) mod decide;
pub(crate) mod fault;
pub(crate) mod mirror;
pub(crate) mod pick;
pub(crate) mod reply;
pub(crate) mod route;
