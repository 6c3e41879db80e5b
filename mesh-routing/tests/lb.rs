//! Load balancers and weighted splits: exactness, convergence and consistent-hash stability.

use mesh_routing::endpoints::ClusterEndpoint;
use mesh_routing::endpoints::Endpoint;
use mesh_routing::lb::{pick, LbState, LoadBalancer, Maglev, NoneEjected, RingHash};
use mesh_routing::weighted::Weighted;
use proptest::prelude::*;

/// A fixed-seed source of rolls for the convergence tests (the workspace's generator).
struct Rolls(mesh_resilience::rng::Rng);
impl Rolls {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
}

fn endpoints(weights: &[u32]) -> Vec<ClusterEndpoint> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            ClusterEndpoint::new(
                Endpoint::new(&format!("10.0.{}.{}", i / 250, i % 250)).with_weight(w),
                8080,
            )
            .expect("valid address")
        })
        .collect()
}

proptest! {
    #[test]
    fn weighted_pick_never_lands_on_zero_weight(
        weights in proptest::collection::vec(0u32..5, 1..8),
        roll in any::<u64>(),
    ) {
        let pairs: Vec<(usize, u32)> = weights.iter().copied().enumerate().collect();
        match Weighted::new(pairs) {
            Ok(set) => {
                let (_, &orig) = set.pick(roll);
                prop_assert!(weights[orig] > 0);
            }
            Err(_) => prop_assert!(weights.iter().all(|&w| w == 0)),
        }
    }

    #[test]
    fn weighted_pick_is_exact_over_total(weights in proptest::collection::vec(1u32..20, 1..6)) {
        let set = Weighted::new(weights.iter().copied().enumerate()).unwrap();
        let mut counts = vec![0u32; weights.len()];
        for roll in 0..set.total() {
            counts[*set.pick(roll).1] += 1;
        }
        if weights.len() > 1 {
            prop_assert_eq!(counts, weights);
        } else {
            prop_assert_eq!(counts, vec![set.total() as u32]);
        }
    }

    #[test]
    fn round_robin_is_exact_over_a_cycle(
        weights in proptest::collection::vec(1u32..10, 1..8),
        ejected_mask in any::<u8>(),
    ) {
        let eps = endpoints(&weights);
        let set: &[_] = &eps;
        let ejected: Vec<bool> = (0..weights.len()).map(|i| ejected_mask & (1 << i) != 0).collect();
        let live_total: u32 = weights.iter().zip(&ejected).filter(|(_, &e)| !e).map(|(w, _)| w).sum();
        let mut state = LbState::new();
        let mut counts = vec![0u32; weights.len()];
        for _ in 0..live_total {
            let i = pick(&LoadBalancer::RoundRobin, set, &mut state, &[], &ejected[..], 0, None).unwrap();
            counts[i] += 1;
        }
        let expected: Vec<u32> = weights.iter().zip(&ejected).map(|(&w, &e)| if e { 0 } else { w }).collect();
        if live_total == 0 {
            prop_assert_eq!(pick(&LoadBalancer::RoundRobin, set, &mut state, &[], &ejected[..], 0, None), None);
        } else if weights.iter().all(|&w| w == weights[0]) {
            // Equal weights rotate: one pick per live endpoint per `live` picks.
            let live = ejected.iter().filter(|e| !**e).count() as u32;
            let per = live_total / live;
            for (c, &e) in counts.iter().zip(&ejected) {
                prop_assert_eq!(*c, if e { 0 } else { per });
            }
        } else {
            prop_assert_eq!(counts, expected);
        }
    }

    #[test]
    fn least_request_takes_the_less_loaded_draw(
        loads in proptest::collection::vec(0u32..5, 1..8),
        roll in any::<u64>(),
    ) {
        let eps = endpoints(&vec![1; loads.len()]);
        let set: &[_] = &eps;
        let n = loads.len() as u64;
        let a = ((roll as u32) as u64 % n) as usize;
        let b = ((roll >> 32) % n) as usize;
        let got = pick(&LoadBalancer::LeastRequest, set, &mut LbState::new(), &loads, &NoneEjected, roll, None).unwrap();
        let want = if loads[b] < loads[a] { b } else { a };
        prop_assert_eq!(got, want);
    }

    #[test]
    fn balancers_never_pick_an_ejected_endpoint(
        n in 1usize..10,
        ejected_mask in any::<u16>(),
        roll in any::<u64>(),
        hash in any::<u64>(),
    ) {
        let eps = endpoints(&vec![1; n]);
        let set: &[_] = &eps;
        let ejected: Vec<bool> = (0..n).map(|i| ejected_mask & (1 << i) != 0).collect();
        let all_ejected = ejected.iter().all(|e| *e);
        for lb in [
            LoadBalancer::RoundRobin,
            LoadBalancer::LeastRequest,
            LoadBalancer::Random,
            LoadBalancer::RingHash { minimum_ring_size: 64 },
            LoadBalancer::Maglev { table_size: 251 },
        ] {
            let got = pick(&lb, set, &mut LbState::new(), &[], &ejected[..], roll, Some(hash));
            match got {
                None => prop_assert!(all_ejected, "{lb:?} found nothing"),
                Some(i) => prop_assert!(!ejected[i], "{lb:?} picked ejected {i}"),
            }
        }
    }

}

proptest! {
    // Building tables dominates; 64 cases with a 4099-slot Maglev table keep this quick.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn consistent_hash_does_not_depend_on_endpoint_order(key in any::<u64>(), n in 1usize..20, rotate in 0usize..20) {
        // A key goes to the same endpoint (by address) whatever order discovery lists the
        // endpoints in: two clients, or one client after an update, agree.
        let eps = endpoints(&vec![1; n]);
        let mut shuffled = eps.clone();
        shuffled.rotate_left(rotate % n);
        shuffled.reverse();
        let addr = |set: &[ClusterEndpoint], i: Option<usize>| i.map(|i| set[i].authority().to_string());
        let (a, b) = (RingHash::build(&eps, 0), RingHash::build(&shuffled, 0));
        prop_assert_eq!(addr(&eps, a.pick(key, &NoneEjected)), addr(&shuffled, b.pick(key, &NoneEjected)));
        let (a, b) = (Maglev::build(&eps, 4099), Maglev::build(&shuffled, 4099));
        prop_assert_eq!(addr(&eps, a.pick(key, &NoneEjected)), addr(&shuffled, b.pick(key, &NoneEjected)));
    }
}

#[test]
fn consistent_hash_spreads_keys_over_every_endpoint() {
    // 2,000 keys over 8 equal endpoints: each gets its share within a factor of two (a
    // balancer answering one endpoint for every key fails this).
    let eps = endpoints(&[1; 8]);
    let ring = RingHash::build(&eps, 0);
    let maglev = Maglev::build(&eps, 65537);
    for pick in [
        &|k: u64| ring.pick(k, &NoneEjected) as Option<usize>,
        &|k: u64| maglev.pick(k, &NoneEjected),
    ] as [&dyn Fn(u64) -> Option<usize>; 2]
    {
        let mut counts = [0u32; 8];
        let mut rolls = Rolls(mesh_resilience::rng::Rng::with_seed(3));
        for _ in 0..2_000 {
            counts[pick(rolls.next()).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|&c| (125..500).contains(&c)),
            "{counts:?}"
        );
    }
}

#[test]
fn split_frequencies_converge_to_weights() {
    // 200,000 fixed-seed rolls over 90/10 and 50/30/20; tolerance ±0.5 percentage points.
    for weights in [vec![90u32, 10], vec![50, 30, 20], vec![1, 1, 1, 1]] {
        let set = Weighted::new(weights.iter().copied().enumerate()).unwrap();
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0u64; weights.len()];
        let mut rolls = Rolls(mesh_resilience::rng::Rng::with_seed(42));
        let draws = 200_000u64;
        for _ in 0..draws {
            counts[*set.pick(rolls.next()).1] += 1;
        }
        for (c, w) in counts.iter().zip(&weights) {
            let share = *c as f64 / draws as f64;
            let want = f64::from(*w) / f64::from(total);
            assert!(
                (share - want).abs() < 0.005,
                "{weights:?}: {share} vs {want}"
            );
        }
    }
}

#[test]
fn random_and_least_request_spread_evenly() {
    // 100,000 fixed-seed picks over 5 idle endpoints: each share within ±1 point of 20%.
    let eps = endpoints(&[1; 5]);
    let set: &[_] = &eps;
    for lb in [LoadBalancer::Random, LoadBalancer::LeastRequest] {
        let mut counts = [0u32; 5];
        let mut rolls = Rolls(mesh_resilience::rng::Rng::with_seed(7));
        let mut state = LbState::new();
        for _ in 0..100_000 {
            counts[pick(&lb, set, &mut state, &[], &NoneEjected, rolls.next(), None).unwrap()] += 1;
        }
        for c in counts {
            assert!(
                (f64::from(c) / 100_000.0 - 0.2).abs() < 0.01,
                "{lb:?}: {counts:?}"
            );
        }
    }
}

#[test]
fn least_request_avoids_the_busy_endpoint() {
    // With 2 endpoints, the busy one wins only when both draws pick it (1/4 of rolls).
    let eps = endpoints(&[1, 1]);
    let set: &[_] = &eps;
    let mut rolls = Rolls(mesh_resilience::rng::Rng::with_seed(3));
    let busy = (0..40_000)
        .filter(|_| {
            pick(
                &LoadBalancer::LeastRequest,
                set,
                &mut LbState::new(),
                &[10, 0],
                &NoneEjected,
                rolls.next(),
                None,
            ) == Some(0)
        })
        .count();
    let share = busy as f64 / 40_000.0;
    assert!((share - 0.25).abs() < 0.01, "{share}");
}

fn moved_fraction(
    build: impl Fn(&[ClusterEndpoint]) -> Box<dyn Fn(u64) -> usize>,
    n: usize,
) -> (f64, bool) {
    let before = endpoints(&vec![1; n]);
    let after = endpoints(&vec![1; n + 1]);
    let pick_before = build(&before);
    let pick_after = build(&after);
    let mut rolls = Rolls(mesh_resilience::rng::Rng::with_seed(11));
    let keys = 20_000;
    let mut moved = 0;
    let mut only_to_new = true;
    for _ in 0..keys {
        let k = rolls.next();
        let (a, b) = (pick_before(k), pick_after(k));
        if a != b {
            moved += 1;
            only_to_new &= b == n;
        }
    }
    (f64::from(moved) / f64::from(keys), only_to_new)
}

#[test]
fn ring_hash_moves_about_one_in_n_keys() {
    // Adding an 11th endpoint should move ~1/11 (9.1%) of keys, all to the new endpoint.
    // Tolerance: 7%..11.5%.
    let (frac, only_to_new) = moved_fraction(
        |set| {
            let ring = RingHash::build(set, 1024);
            Box::new(move |k| ring.pick(k, &NoneEjected).unwrap())
        },
        10,
    );
    assert!(only_to_new, "keys moved between old endpoints");
    assert!((0.07..0.115).contains(&frac), "{frac}");
}

#[test]
fn maglev_moves_a_bounded_share_of_keys() {
    // Maglev moves ~1/(N+1) to the new endpoint plus some reshuffling (Envoy: about twice a
    // ring's churn). Tolerance for N = 10: 6%..15%.
    let (frac, _) = moved_fraction(
        |set| {
            let table = Maglev::build(set, 65537);
            Box::new(move |k| table.pick(k, &NoneEjected).unwrap())
        },
        10,
    );
    assert!((0.06..0.15).contains(&frac), "{frac}");
}

#[test]
fn maglev_table_follows_weights() {
    let eps = endpoints(&[1, 1, 1, 1]);
    let counts = Maglev::build(&eps, 65537).slot_counts(4);
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "{counts:?}");
    let eps = endpoints(&[1, 3]);
    let counts = Maglev::build(&eps, 65537).slot_counts(2);
    let share = counts[1] as f64 / 65537.0;
    assert!((share - 0.75).abs() < 0.001, "{counts:?}");
}

#[test]
fn ring_hash_follows_weights() {
    // Weights 1:3 over 50,000 keys: the heavy endpoint gets 75% ± 4 points.
    let eps = endpoints(&[1, 3]);
    let ring = RingHash::build(&eps, 1024);
    assert!(ring.len() >= 1024);
    let mut rolls = Rolls(mesh_resilience::rng::Rng::with_seed(5));
    let heavy = (0..50_000)
        .filter(|_| ring.pick(rolls.next(), &NoneEjected) == Some(1))
        .count();
    let share = heavy as f64 / 50_000.0;
    assert!((share - 0.75).abs() < 0.04, "{share}");
}

#[test]
fn ejected_keys_move_to_a_live_endpoint_and_others_stay() {
    let eps = endpoints(&[1; 6]);
    let set: &[_] = &eps;
    let ring = RingHash::build(set, 1024);
    let ejected = |i: usize| i == 2;
    let mut rolls = Rolls(mesh_resilience::rng::Rng::with_seed(9));
    for _ in 0..5_000 {
        let k = rolls.next();
        let healthy = ring.pick(k, &NoneEjected).unwrap();
        let with_ejection = ring.pick(k, &ejected).unwrap();
        if healthy == 2 {
            assert_ne!(with_ejection, 2);
        } else {
            assert_eq!(with_ejection, healthy);
        }
    }
}

#[test]
fn maglev_table_does_not_depend_on_endpoint_order() {
    // Every slot, not a sample: the table built from the endpoints in another order owns the
    // same slots per endpoint address.
    let eps = endpoints(&[1, 2, 1, 3, 1]);
    let mut shuffled = eps.clone();
    shuffled.reverse();
    let a = Maglev::build(&eps, 4099);
    let b = Maglev::build(&shuffled, 4099);
    for k in 0..4099u64 {
        let x = eps[a.pick(k, &NoneEjected).unwrap()]
            .authority()
            .to_string();
        let y = shuffled[b.pick(k, &NoneEjected).unwrap()]
            .authority()
            .to_string();
        assert_eq!(x, y, "slot {k}");
    }
}
