//! Real loopback HTTP backends for the workspace's end-to-end tests.
