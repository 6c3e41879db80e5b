//! Placeholder until the mesh benchmark lands.
fn main() {}
