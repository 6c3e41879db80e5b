//! End-to-end tests over real loopback sockets.
//!
//! One test binary (tower's `tests/<area>/main.rs` layout); each module is an area.

mod connections;
mod connector;
mod exactly;
mod hostile;
mod istio_exact;
mod load;
mod mesh;
mod mirror_bodies;
mod rel;
mod reload_storm;
mod retry_after_ejection;
mod support_backend;
mod telemetry;
mod tls;
