//! Where a mesh's seed comes from when the builder sets none. The generator and the per-request
//! rolls are `mesh_resilience::rng`'s (the same ones `meshctl simulate` uses).

use std::hash::{BuildHasher, Hasher};

/// A seed that differs on every call: `RandomState` is seeded from OS randomness once per
/// thread and then incremented, so every new hasher gives fresh keys.
pub(crate) fn entropy_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6d65_7368); // any constant; the keys are what vary
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn entropy_seeds_differ() {
        assert_ne!(super::entropy_seed(), super::entropy_seed());
    }
}
