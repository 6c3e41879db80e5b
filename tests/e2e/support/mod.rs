//! The helpers every e2e area shares, one copy each, split by concept:
//!
//! - [`upstream`]: the two services the tests call (`api` behind the legacy client,
//!   `api.conn.test` behind the mesh-owned connector): their names and URLs.
//! - [`yaml`]: ServiceEntry, DestinationRule and VirtualService text for them, and the loader
//!   that turns documents into a configuration, asserting they are valid.
//! - [`pods`]: named, version-labelled backends started together.
//! - [`mesh`]: the mesh around an inner client, with the options the tests vary.
//! - [`requests`]: the request body type, request builders, and sending with a tally.
//! - [`raw`]: a raw TCP server for behaviours a well-behaved HTTP server cannot produce.
//! - [`leak`]: waiting for the mesh to settle, and the leak check.

pub(crate) mod leak;
pub(crate) mod mesh;
pub(crate) mod pods;
pub(crate) mod raw;
pub(crate) mod requests;
pub(crate) mod upstream;
pub(crate) mod yaml;
