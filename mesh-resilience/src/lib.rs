//! Envoy-exact resilience policies as pure state machines.
