//! A small seeded pseudo-random generator for the random rolls the pure crates take.
//!
//! The pure crates take decisions from `u64` rolls passed in by the caller
//! (weighted splits, fault percentages, backoff jitter). This generator
//! produces them. It is SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit
//! word of state, full period, good enough statistics for load spreading and
//! jitter, and no cryptographic strength (none is needed here).
//!
//! [`Rng::with_seed`] makes tests and reproductions deterministic;
//! [`Rng::from_entropy`] seeds from the process's randomised hasher.

use std::hash::{BuildHasher, Hasher};

/// A SplitMix64 generator producing `u64` rolls.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub(crate) fn with_seed(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded differently on every call.
    pub(crate) fn from_entropy() -> Self {
        // `RandomState` is seeded from OS randomness once per thread and then
        // incremented, so every new hasher gives a fresh seed.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x6d65_7368); // any constant; the keys are what vary
        Self::with_seed(h.finish())
    }

    /// The next roll, uniform over all of `u64`.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::with_seed(42);
        let mut b = Rng::with_seed(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn known_first_values_for_seed_zero() {
        // Reference values of SplitMix64 from seed 0.
        let mut r = Rng::with_seed(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn rolls_spread_over_buckets() {
        // 10_000 rolls into 10 buckets: each bucket within 20% of 1_000.
        let mut r = Rng::with_seed(7);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            buckets[(r.next_u64() % 10) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn entropy_seeds_differ() {
        let a = Rng::from_entropy().next_u64();
        let b = Rng::from_entropy().next_u64();
        assert_ne!(a, b);
    }
}
