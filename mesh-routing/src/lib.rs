//! A compiled, immutable Istio route table.
