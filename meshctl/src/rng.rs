//! Seeds for runs without `--seed`. The generator itself and the per-request rolls are
//! `mesh_resilience::rng`'s, so `meshctl simulate --seed S` rolls as a mesh built with seed `S`.

use mesh_resilience::rng::Rng;

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
    Rng::with_seed(nanos ^ (u64::from(pid) << 32)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

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
