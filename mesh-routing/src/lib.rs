//! A compiled, immutable Istio route table.

pub mod endpoints;
pub mod host;
pub mod lb;
pub mod matcher;
mod request;
pub mod weighted;

pub use request::RequestView;

/// Placeholder until the table lands.
#[derive(Debug)]
pub struct RouteTable;
impl RouteTable {
    /// x
    pub fn route(&self) {}
}
