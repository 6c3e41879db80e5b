//! Tower layers that give any hyper or reqwest client Istio traffic management,
//! in process.
//!
//! This crate is the only async part of the mesh workspace. Today it holds the
//! building blocks the mesh service is assembled from:
//!
//! - [`body`]: [`ReplayBody`](body::ReplayBody), a request body that retries
//!   and mirrors can resend, bounded by a memory cap.
//! - [`error`]: [`MeshError`](error::MeshError), the opaque error of the mesh,
//!   and how each error becomes the response Envoy would have sent.
//! - `client`: adapters for `hyper_util`'s legacy client and for `reqwest`
//!   (features `hyper-util` and `reqwest`, both on by default, neither needs TLS).
//!
//! It never does TLS, DNS-based service discovery or configuration loading.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use mesh_tower::body::ReplayBody;
//!
//! let body = ReplayBody::try_new(Full::new(Bytes::from_static(b"{}")), 1024).unwrap();
//! assert!(body.is_replayable());
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
pub mod client;
pub mod error;
mod files;
mod layer;
mod mesh_body;
pub(crate) mod policy;
pub(crate) mod rng;
mod service;
mod state;
pub mod stats;
pub(crate) mod time;

pub use error::MeshError;
pub use files::{load_files, BuildError, LoadFilesError, ReloadError};
pub use layer::{MeshBuilder, MeshHandle, MeshLayer, WatchHandle, DEFAULT_MAX_CONCURRENT_MIRRORS};
pub use mesh_body::MeshBody;
pub use mesh_routing::ClientContext;
pub use service::{Mesh, ResponseFuture};
pub use stats::{ClusterStats, Stats};

/// A type-erased error, as used by tower and hyper.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests;
