//! A small seeded pseudo-random generator for rolls: SplitMix64 (Steele, Lea and Flood, 2014).
//!
//! Statistically good enough for choosing among weighted destinations (it passes BigCrush),
//! tiny, and reproducible from a 64-bit seed. Not for anything secret.

/// SplitMix64 state.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that starts from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A seed from the clock and the process id, for runs without `--seed`.
pub(crate) fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    seed_from(nanos, std::process::id())
}

/// Mixes a clock reading and a process id into a seed, so that runs started in the same
/// nanosecond by different processes, or one nanosecond apart, get unrelated seeds.
fn seed_from(nanos: u64, pid: u32) -> u64 {
    SplitMix64::new(nanos ^ (u64::from(pid) << 32)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // The reference implementation's first outputs from state 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let mut c = SplitMix64::new(43);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn rolls_mod_100_are_uniform() {
        // 100 buckets, 200,000 draws: each bucket expects 2,000 with sd ~44.5. A chi-square
        // statistic over 99 degrees of freedom has mean 99 and sd 14; 200 is ~7 sd above.
        let mut r = SplitMix64::new(7);
        let mut buckets = [0u32; 100];
        for _ in 0..200_000 {
            buckets[(r.next_u64() % 100) as usize] += 1;
        }
        let chi2: f64 = buckets
            .iter()
            .map(|&b| {
                let d = f64::from(b) - 2000.0;
                d * d / 2000.0
            })
            .sum();
        assert!(chi2 < 200.0, "chi-square {chi2}");
    }

    #[test]
    fn seeds_depend_on_clock_and_process() {
        let base = seed_from(1_700_000_000_000_000_000, 4242);
        assert_eq!(base, seed_from(1_700_000_000_000_000_000, 4242));
        assert_ne!(base, seed_from(1_700_000_000_000_000_001, 4242));
        assert_ne!(base, seed_from(1_700_000_000_000_000_000, 4243));
        // Neighbouring readings give seeds that differ in about half of their bits.
        let flipped = (base ^ seed_from(1_700_000_000_000_000_001, 4242)).count_ones();
        assert!((16..=48).contains(&flipped), "{flipped} bits differ");
    }
}
