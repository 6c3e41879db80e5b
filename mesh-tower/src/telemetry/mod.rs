//! What an Istio operator reads about each request: Envoy's response flags.
//!
//! [`ResponseFlags`] says why a request ended as it did, with the codes of Envoy's
//! `%RESPONSE_FLAGS%` (`UF`, `URX`, `NR`...): on every error
//! ([`MeshError::response_flags`](crate::MeshError::response_flags)) and on every response the
//! mesh answered or changed ([`ResponseFlags::of`]).
//!
//! # Response flags
//!
//! Envoy's response flags ([`ResponseFlag`], [`ResponseFlags`]) say why a request ended the way
//! it did, in the short codes Envoy writes for `%RESPONSE_FLAGS%` (`UF`, `URX`, `NR`...) and
//! Istio puts in the `response_flags` label.
//!
//! Every response and every error of the mesh carries them: a response as an extension
//! ([`ResponseFlags::of`]; absent, and so empty, on a plain upstream response), an error
//! through [`MeshError::response_flags`](crate::MeshError::response_flags) (and the
//! response [`MeshError::to_response`](crate::MeshError::to_response) builds carries them
//! too). Their `Display` is Envoy's: the short codes joined by `,`, in the order they were set,
//! or `-` when there is none.
//!
//! ```
//! use mesh_tower::telemetry::{ResponseFlag, ResponseFlags};
//!
//! let mut flags = ResponseFlags::new();
//! assert_eq!(flags.to_string(), "-");
//! flags.insert(ResponseFlag::UpstreamRetryLimitExceeded);
//! flags.insert(ResponseFlag::UpstreamConnectionFailure);
//! assert_eq!(flags.to_string(), "URX,UF");
//! assert_eq!("URX,UF".parse::<ResponseFlags>().unwrap(), flags);
//! assert_eq!(flags.long().to_string(), "UpstreamRetryLimitExceeded,UpstreamConnectionFailure");
//!
//! // On a response: the mesh's extension, or none.
//! let res = http::Response::new(());
//! assert!(ResponseFlags::of(&res).is_empty());
//! ```
//!
//! ## Which flags the mesh sets
//!
//! | Flag | When |
//! |---|---|
//! | `DI` | a fault delay was applied |
//! | `FI` | a fault abort answered the request |
//! | `NR` | no route matched (404) |
//! | `NC` | the route's cluster does not exist (an undefined subset, 503) |
//! | `UH` | no healthy endpoint (503) |
//! | `UO` | connection-pool overflow (503); also when a retry was refused by `maxRetries` or the retry budget |
//! | `URX` | retries were exhausted on a retriable outcome: on the backend's last response too |
//! | `UF` | connect failure or connect timeout |
//! | `UC` | the connection closed (before or after the request started) |
//! | `UR` | the server reset or refused the HTTP/2 stream |
//! | `UPE` | the server spoke invalid HTTP (502) |
//! | `UT` | route timeout, per-try timeout or the client's own timeout (504) |
//! | `SI` | the stream idle timeout (408), when enabled |
//!
//! As in Envoy, flags accumulate in the order they are set: a request whose retries all failed
//! to connect ends with `URX,UF` (Envoy decides "no more retries" before it writes the reset's
//! flag), a delayed request whose retries ran out on 503 responses with `DI,URX`.
//!
//! The other flags of Envoy's list ([`ResponseFlag::ALL`]) cannot happen in this client:
//! they belong to filters the mesh does not run (rate limiting, ext_authz, caching, health
//! checks, overload manager) or to the server side of a connection. They parse and print all
//! the same, so a tool reading a sidecar's logs can use this type too.

mod flags;

pub use flags::{ResponseFlag, ResponseFlags, UnknownResponseFlag};
