//! The workspace's one random generator, and how a request's rolls derive from a seed.
//!
//! The pure crates take every random decision from a `u64` roll the caller passes in
//! (weighted splits, fault and mirror sampling, backoff jitter, load balancing). This module
//! makes those rolls: [`Rng`] is SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit word of
//! state, full period, statistically good enough for load spreading and jitter, and no
//! cryptographic strength (none is needed).
//!
//! [`Rolls::for_request`] gives request number `index` of a run seeded with `seed` its own
//! rolls, independent of how many rolls earlier requests drew. Two streams keep the decisions
//! that `meshctl simulate` reproduces apart from the ones it does not:
//!
//! | stream | draws, in order |
//! |---|---|
//! | decide | the route's weighted pick ([`Rolls::route`]) first, then fault delay, fault abort, each mirror, each backoff ([`Rolls::decide`]) |
//! | pick | each endpoint pick of the load balancer ([`Rolls::pick`]) |
//!
//! A request's id ([`Rolls::request_id`]) derives from its seed apart from both streams.
//!
//! So the mesh built with seed `S` and `meshctl simulate --seed S` route the `i`-th request to
//! the same destination and the same endpoint, whatever faults or mirrors the route has.
//!
//! ```
//! use mesh_resilience::rng::Rolls;
//!
//! let mut a = Rolls::for_request(42, 7);
//! let mut b = Rolls::for_request(42, 7);
//! assert_eq!(a.route(), b.route());
//! let _fault = a.decide(); // draws of the decide stream do not move the pick stream
//! assert_eq!(a.pick(), b.pick());
//! assert_ne!(Rolls::for_request(42, 8).route(), Rolls::for_request(42, 7).route());
//! ```

/// The golden-ratio increment of SplitMix64; also the step between request seeds.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
/// Mixed into a request seed to start its pick stream.
const PICK_STREAM: u64 = 0x7069_636b_5f73_7472; // "pick_str"
/// Mixed into a request seed for the two words of its request id.
const ID_STREAM: [u64; 2] = [0x7265_715f_6964_5f61, 0x7265_715f_6964_5f62]; // "req_id_a", "req_id_b"

/// A SplitMix64 generator producing `u64` rolls.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub const fn with_seed(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next roll, uniform over all of `u64`.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }
}

/// SplitMix64's output function.
#[inline]
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rolls of one request (see the [module docs](self) for the streams).
#[derive(Debug, Clone)]
pub struct Rolls {
    decide: Rng,
    pick: Rng,
    /// The request's own seed, from which [`Rolls::request_id`] derives.
    request: u64,
}

impl Rolls {
    /// The rolls of request number `index` (0-based, in the order requests enter) of a run
    /// seeded with `seed`.
    pub const fn for_request(seed: u64, index: u64) -> Self {
        let request = mix(seed.wrapping_add(index.wrapping_mul(GOLDEN)));
        Self {
            decide: Rng::with_seed(request),
            pick: Rng::with_seed(mix(request ^ PICK_STREAM)),
            request,
        }
    }

    /// The roll of the route's weighted pick: the first draw of the decide stream.
    #[inline]
    pub fn route(&mut self) -> u64 {
        self.decide.next_u64()
    }

    /// The next draw of the decide stream (fault, mirror and backoff rolls, after the route's).
    #[inline]
    pub fn decide(&mut self) -> u64 {
        self.decide.next_u64()
    }

    /// The next draw of the pick stream (one per load-balancer pick).
    #[inline]
    pub fn pick(&mut self) -> u64 {
        self.pick.next_u64()
    }

    /// 128 random bits for the request's id (an `x-request-id` UUID), derived from the
    /// request's seed alone: drawing them moves neither stream.
    pub const fn request_id(&self) -> [u64; 2] {
        [
            mix(self.request ^ ID_STREAM[0]),
            mix(self.request ^ ID_STREAM[1]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::{Rng, Rolls};

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
    fn rolls_mod_100_are_uniform() {
        // 100 buckets, 200,000 draws: each bucket expects 2,000 with sd ~44.5. A chi-square
        // statistic over 99 degrees of freedom has mean 99 and sd 14; 200 is ~7 sd above.
        let mut r = Rng::with_seed(7);
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
    fn request_route_rolls_spread_and_streams_are_independent() {
        // The route roll of consecutive requests covers a 90/10 split within a point.
        let v1 = (0..100_000u64)
            .filter(|&i| Rolls::for_request(3, i).route() % 100 < 90)
            .count();
        assert!((89_000..91_000).contains(&v1), "{v1}");
        // Drawing from one stream never moves the other.
        let mut a = Rolls::for_request(3, 1);
        let mut b = Rolls::for_request(3, 1);
        for _ in 0..5 {
            a.decide();
        }
        assert_eq!(a.pick(), b.pick());
        assert_ne!(a.route(), b.route());
        // The request id is fixed by the request alone.
        assert_eq!(a.request_id(), b.request_id());
        assert_ne!(a.request_id(), Rolls::for_request(3, 2).request_id());
        assert_ne!(a.request_id()[0], a.request_id()[1]);
    }
}
