//! Tower layers that drive the pure mesh crates around any HTTP client.
