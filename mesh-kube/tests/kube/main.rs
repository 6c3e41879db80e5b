//! mesh-kube against a loopback stand-in API server, driven by the real `kube::Client`, with
//! pods as real loopback backends. Every wait is bounded; nothing leaves the machine.

mod churn;
mod differential;
mod scenarios;
mod snapshot;
mod support;
