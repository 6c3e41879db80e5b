//! End-to-end tests over real loopback sockets.
//!
//! One test binary (tower's `tests/<area>/main.rs` layout); each module is an area.

mod mesh;
mod support_backend;
