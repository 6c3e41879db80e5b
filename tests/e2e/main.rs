//! End-to-end tests over real loopback sockets.
//!
//! One test binary (tower's `tests/<area>/main.rs` layout); each module is an area, and
//! [`support`] holds the helpers they share.

mod backends;
mod connections;
mod connector;
mod exactly;
mod hostile;
mod istio_exact;
mod load;
mod mesh;
mod mirror_bodies;
mod reload_storm;
mod retry_after_ejection;
mod support;
mod telemetry;
mod tls;
