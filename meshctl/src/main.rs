//! `meshctl`: validate Istio configs, explain a routing decision, simulate a split.

fn main() {}
