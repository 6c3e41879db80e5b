//! A compiled, immutable Istio route table.

mod cluster;
mod compile;
mod decision;
pub mod endpoints;
mod explain;
pub mod host;
pub mod lb;
pub mod matcher;
mod request;
mod table;
pub mod weighted;

pub use cluster::{ClusterId, ClusterKey, ClusterPolicy};
pub use compile::CompileError;
pub use decision::{
    Action, DestinationRef, MirrorTarget, Passthrough, RouteDecision, RouteId, Routed,
    VirtualServiceId,
};
pub use explain::{
    Trace, TraceBlock, TraceDestination, TraceOutcome, TraceRoute, TraceRouteResult,
    TraceVirtualService,
};
pub use request::RequestView;
pub use table::{ClientContext, ClusterEndpoints, CompileNote, EndpointChoice, RouteTable};
