//! The mesh service against an in-process mock client, all on tokio's paused clock: each
//! module steps one area (retries, faults, pools, outlier detection, local replies, request
//! rewriting, mirrors, reload, stats). Real sockets are the end-to-end suite's (`tests/`
//! package `mesh-tests`).

// The tests read tokio's paused clock directly; the crate's own code goes through its time
// module (clippy.toml).
#![allow(clippy::disallowed_methods)]

mod support;

mod faults;
mod flags;
mod hashing;
mod hygiene;
mod idle;
mod metrics;
mod mirrors;
mod outlier;
mod pools;
mod reload;
mod replies;
mod retries;
mod rewrite;
mod stats;
mod tracing_ctx;
