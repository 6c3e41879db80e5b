//! Load balancers: pure functions over a cluster's endpoints ([`ClusterEndpoint`] slices), with the little state they need
//! kept in an [`LbState`] that the caller owns (one per cluster).
//!
//! Every function takes the ejected endpoints as an input ([`EjectedSet`]: a closure, a
//! `[bool]` slice, or [`NoneEjected`]), the in-flight request counts as a slice indexed like the
//! set, and a random `roll` the caller draws. Nothing here reads a clock or a random source.
//!
//! | algorithm | what it does (Envoy) |
//! |---|---|
//! | [`LoadBalancer::RoundRobin`] | plain rotation when weights are equal, else smooth weighted round robin (nginx); exact over a cycle of `sum(weights)` picks |
//! | [`LoadBalancer::LeastRequest`] | power of two choices, with replacement: the draw with fewer in-flight requests wins, the first draw on a tie (Istio's default) |
//! | [`LoadBalancer::Random`] | uniform over the endpoints that are not ejected |
//! | [`LoadBalancer::RingHash`] | ketama ring, `minimum_ring_size` entries (default 1024) per unit of weight; an ejected endpoint's keys go clockwise to the next live one |
//! | [`LoadBalancer::Maglev`] | Maglev lookup table of prime size (default 65537); an ejected endpoint's slots go to the next live slot |
//!
//! Consistent hashing needs a key from the request ([`HashPolicy::hash`]); without one
//! (header, cookie or parameter missing) the roll is used, so the pick is random, as in Envoy.
//!
//! ```
//! use mesh_routing::endpoints::{ClusterEndpoint, Endpoint};
//! use mesh_routing::lb::{pick, LbState, LoadBalancer, NoneEjected};
//!
//! let set = [
//!     ClusterEndpoint::new(Endpoint::new("10.0.0.1").with_weight(2), 80).unwrap(),
//!     ClusterEndpoint::new(Endpoint::new("10.0.0.2"), 80).unwrap(),
//! ];
//! let mut state = LbState::new();
//! let picks: Vec<_> = (0..3)
//!     .map(|_| pick(&LoadBalancer::RoundRobin, &set, &mut state, &[], &NoneEjected, 0, None))
//!     .collect();
//! assert_eq!(picks, [Some(0), Some(1), Some(0)]);
//! ```

use std::hash::Hasher;

use http::HeaderName;
use twox_hash::XxHash64;

use crate::endpoints::ClusterEndpoint;
use crate::RequestView;

/// Envoy's default minimum ring size.
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;
/// Envoy's maximum ring size.
pub const MAXIMUM_RING_SIZE: u64 = 8 * 1024 * 1024;
/// Envoy's default Maglev table size (a prime).
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;

/// Which endpoints are ejected (outlier detection). Indexes are positions in the
/// cluster's endpoint list.
pub trait EjectedSet {
    /// Whether the endpoint at `index` is ejected.
    fn is_ejected(&self, index: usize) -> bool;

    /// `true` only if no endpoint is ejected (a fast path; the default is `false`).
    fn none_ejected(&self) -> bool {
        false
    }
}

/// No endpoint is ejected.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoneEjected;

impl EjectedSet for NoneEjected {
    fn is_ejected(&self, _: usize) -> bool {
        false
    }
    fn none_ejected(&self) -> bool {
        true
    }
}

impl<F: Fn(usize) -> bool> EjectedSet for F {
    fn is_ejected(&self, index: usize) -> bool {
        self(index)
    }
}

impl EjectedSet for [bool] {
    fn is_ejected(&self, index: usize) -> bool {
        self.get(index).copied().unwrap_or(false)
    }
}

/// A load-balancing algorithm, as resolved from a DestinationRule `loadBalancer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalancer {
    /// `ROUND_ROBIN`.
    RoundRobin,
    /// `LEAST_REQUEST` / `LEAST_CONN`, and the default when nothing is set.
    #[default]
    LeastRequest,
    /// `RANDOM`.
    Random,
    /// `PASSTHROUGH`: no balancing, connect to the address the caller asked for.
    Passthrough,
    /// `consistentHash` with a ring (the default for consistent hashing).
    RingHash {
        /// Minimum number of ring entries (0 means [`DEFAULT_MINIMUM_RING_SIZE`]).
        minimum_ring_size: u64,
    },
    /// `consistentHash.maglev`.
    Maglev {
        /// Lookup table size, a prime (0 means [`DEFAULT_MAGLEV_TABLE_SIZE`]).
        table_size: u64,
    },
}

impl LoadBalancer {
    /// Whether the algorithm uses a request hash.
    pub fn is_consistent_hash(&self) -> bool {
        matches!(
            self,
            LoadBalancer::RingHash { .. } | LoadBalancer::Maglev { .. }
        )
    }
}

/// Where a consistent-hash key comes from (`consistentHash.httpHeaderName`, `httpCookie`,
/// `useSourceIp`, `httpQueryParameterName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPolicy {
    /// The value of a header (the first one if repeated).
    Header(HeaderName),
    /// The value of a cookie (generated when absent, if the cookie has a `ttl`).
    Cookie(CookieHash),
    /// The client's source IP ([`RequestView::with_source_ip`]).
    SourceIp,
    /// The first value of a query parameter (case-sensitive name, raw value).
    QueryParameter(Box<str>),
}

impl HashPolicy {
    /// The request's hash key, or `None` when the request does not carry it (Envoy then picks
    /// a random endpoint). Hashing is xxHash64 with seed 0, as in Envoy.
    pub fn hash(&self, req: &RequestView<'_>) -> Option<u64> {
        match self {
            HashPolicy::Header(name) => req
                .headers()
                .get(name)
                .map(|v| XxHash64::oneshot(0, v.as_bytes())),
            HashPolicy::Cookie(c) => req
                .cookie(&c.name)
                .filter(|v| !v.is_empty())
                .map(|v| XxHash64::oneshot(0, v.as_bytes())),
            HashPolicy::QueryParameter(name) => req
                .query_param(name)
                .map(|v| XxHash64::oneshot(0, v.as_bytes())),
            HashPolicy::SourceIp => req.source_ip().map(hash_ip),
        }
    }
}

/// `consistentHash.httpCookie`: the cookie whose value is the hash key, and how to generate
/// it when a request does not carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieHash {
    name: Box<str>,
    path: Option<Box<str>>,
    /// `None`: never generated. `Some(ZERO)`: a session cookie.
    ttl: Option<std::time::Duration>,
}

impl CookieHash {
    /// The cookie `name`; with a `ttl` (zero for a session cookie) Envoy generates it for a
    /// request that lacks it.
    pub fn new(name: &str, path: Option<&str>, ttl: Option<std::time::Duration>) -> Self {
        CookieHash {
            name: name.into(),
            path: path.filter(|p| !p.is_empty()).map(Into::into),
            ttl,
        }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie a request without it gets, as Envoy's router generates it: a 16-hex-digit
    /// value (`roll` stands for Envoy's hash of the downstream connection's addresses, which
    /// an in-process client does not have), the request's hash key (the xxHash64 of the
    /// value), and the `set-cookie` value for the response:
    /// `name="value"; Max-Age=ttl; Path=path; HttpOnly`. `None` without a `ttl`.
    pub fn generate(&self, roll: u64) -> Option<GeneratedCookie> {
        let ttl = self.ttl?;
        let value = format!("{roll:016x}");
        let mut set_cookie = format!("{}=\"{value}\"", self.name);
        if !ttl.is_zero() {
            set_cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
        }
        if let Some(path) = &self.path {
            set_cookie.push_str("; Path=");
            set_cookie.push_str(path);
        }
        set_cookie.push_str("; HttpOnly");
        Some(GeneratedCookie {
            key: XxHash64::oneshot(0, value.as_bytes()),
            set_cookie,
        })
    }
}

/// A cookie generated for a request without one ([`CookieHash::generate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCookie {
    /// The request's consistent-hash key.
    pub key: u64,
    /// The `set-cookie` response header value.
    pub set_cookie: String,
}

/// Envoy's source-IP hash: xxHash64 of the address as text (`10.0.0.5`, `2001:db8::1`),
/// formatted on the stack.
fn hash_ip(ip: std::net::IpAddr) -> u64 {
    use std::io::Write;
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    // An IPv6 address is at most 45 characters: the write cannot fail.
    let _ = write!(w, "{ip}");
    let len = 64 - w.len();
    XxHash64::oneshot(0, &buf[..len])
}

/// Per-cluster load-balancer state, owned by the caller. It belongs to one endpoint set:
/// call [`reset`](Self::reset) when the set changes (a change of length is detected and
/// resets it automatically).
#[derive(Debug, Clone, Default)]
pub struct LbState {
    len: usize,
    equal_weights: bool,
    cursor: usize,
    current: Vec<i64>,
    ring: Option<RingHash>,
    maglev: Option<Maglev>,
}

impl LbState {
    /// Fresh state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget everything (round-robin position, hash ring, Maglev table).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    fn sync(&mut self, set: &[ClusterEndpoint]) {
        if self.len != set.len() || self.current.len() != set.len() {
            self.reset();
            self.len = set.len();
            self.current = vec![0; set.len()];
            let first = set.first().map(|e| e.weight());
            self.equal_weights = set.iter().all(|e| Some(e.weight()) == first);
        }
    }
}

/// Pick an endpoint: the position in `set`, or `None` if the set is empty or every endpoint is
/// ejected (Envoy's "no healthy upstream", 503 `UH`). `in_flight[i]` is the number of active
/// requests to endpoint `i` (missing entries count as 0); `hash` is the request's
/// consistent-hash key, if any.
pub fn pick<E: EjectedSet + ?Sized>(
    lb: &LoadBalancer,
    set: &[ClusterEndpoint],
    state: &mut LbState,
    in_flight: &[u32],
    ejected: &E,
    roll: u64,
    hash: Option<u64>,
) -> Option<usize> {
    state.sync(set);
    match *lb {
        LoadBalancer::RoundRobin => round_robin(set, state, ejected),
        LoadBalancer::LeastRequest => least_request(set, in_flight, ejected, roll),
        LoadBalancer::Random | LoadBalancer::Passthrough => random(set.len(), ejected, roll),
        LoadBalancer::RingHash { minimum_ring_size } => {
            let ring = state
                .ring
                .get_or_insert_with(|| RingHash::build(set, minimum_ring_size));
            ring.pick(hash.unwrap_or(roll), ejected)
        }
        LoadBalancer::Maglev { table_size } => {
            let table = state
                .maglev
                .get_or_insert_with(|| Maglev::build(set, table_size));
            table.pick(hash.unwrap_or(roll), ejected)
        }
    }
}

fn healthy_count<E: EjectedSet + ?Sized>(n: usize, ejected: &E) -> usize {
    if ejected.none_ejected() {
        n
    } else {
        (0..n).filter(|&i| !ejected.is_ejected(i)).count()
    }
}

fn kth_healthy<E: EjectedSet + ?Sized>(n: usize, k: usize, ejected: &E) -> Option<usize> {
    if ejected.none_ejected() {
        (k < n).then_some(k)
    } else {
        (0..n).filter(|&i| !ejected.is_ejected(i)).nth(k)
    }
}

fn round_robin<E: EjectedSet + ?Sized>(
    set: &[ClusterEndpoint],
    state: &mut LbState,
    ejected: &E,
) -> Option<usize> {
    let n = set.len();
    if n == 0 {
        return None;
    }
    if state.equal_weights {
        let start = state.cursor % n;
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| !ejected.is_ejected(i))?;
        state.cursor = i + 1;
        return Some(i);
    }
    // Smooth weighted round robin: every live endpoint gains its weight, the richest is picked
    // (first on ties) and pays the total.
    let mut total = 0i64;
    let mut best: Option<usize> = None;
    for (i, e) in set.iter().enumerate() {
        if ejected.is_ejected(i) {
            continue;
        }
        let w = i64::from(e.weight());
        state.current[i] += w;
        total += w;
        if best.is_none_or(|b| state.current[i] > state.current[b]) {
            best = Some(i);
        }
    }
    let best = best?;
    state.current[best] -= total;
    Some(best)
}

fn least_request<E: EjectedSet + ?Sized>(
    set: &[ClusterEndpoint],
    in_flight: &[u32],
    ejected: &E,
    roll: u64,
) -> Option<usize> {
    let h = healthy_count(set.len(), ejected);
    if h == 0 {
        return None;
    }
    // Two draws with replacement from the two halves of the roll.
    let a = kth_healthy(set.len(), (roll as u32 as usize) % h, ejected)?;
    let b = kth_healthy(set.len(), ((roll >> 32) as usize) % h, ejected)?;
    let load = |i: usize| u64::from(in_flight.get(i).copied().unwrap_or(0));
    let weight = |i: usize| u64::from(set.get(i).map_or(1, |e| e.weight()));
    // Fewer active requests per unit of weight wins; strictly fewer, so the first draw wins ties.
    if load(b) * weight(a) < load(a) * weight(b) {
        Some(b)
    } else {
        Some(a)
    }
}

fn random<E: EjectedSet + ?Sized>(n: usize, ejected: &E, roll: u64) -> Option<usize> {
    let h = healthy_count(n, ejected);
    if h == 0 {
        return None;
    }
    kth_healthy(n, (roll % h as u64) as usize, ejected)
}

fn endpoint_hash(address: &str, replica: u64) -> u64 {
    let mut h = XxHash64::with_seed(0);
    h.write(address.as_bytes());
    h.write(b"_");
    h.write(&replica.to_le_bytes());
    h.finish()
}

/// A ketama-style hash ring over an endpoint set.
#[derive(Debug, Clone)]
pub struct RingHash {
    /// Entry hashes, sorted.
    hashes: Box<[u64]>,
    /// The endpoint position owning each entry.
    owners: Box<[u32]>,
}

impl RingHash {
    /// Build a ring. Each endpoint gets `minimum_ring_size × weight / lightest weight`
    /// entries (0 means the default 1024), scaled down only if the ring would exceed 8M
    /// entries.
    ///
    /// Envoy instead sizes the *whole* ring to about `minimum_ring_size`, so every endpoint's
    /// share of entries shrinks when one is added and keys also move between the old
    /// endpoints (about 15% instead of 9% when going from 10 to 11 endpoints). Here an
    /// endpoint's entries do not depend on how many others there are: adding one of N + 1
    /// endpoints moves about 1/(N + 1) of the keys, all of them to the new endpoint. The price is
    /// memory: 12 bytes per entry, so 1024 entries per endpoint.
    pub fn build(set: &[ClusterEndpoint], minimum_ring_size: u64) -> Self {
        let per_unit = if minimum_ring_size == 0 {
            DEFAULT_MINIMUM_RING_SIZE
        } else {
            minimum_ring_size
        } as f64;
        let min_w = set.iter().map(|e| e.weight()).min().unwrap_or(1).max(1);
        let units: f64 = set
            .iter()
            .map(|e| f64::from(e.weight()) / f64::from(min_w))
            .sum();
        let scale = if units * per_unit > MAXIMUM_RING_SIZE as f64 {
            MAXIMUM_RING_SIZE as f64 / units
        } else {
            per_unit
        };
        let mut ring = Vec::new();
        for (i, e) in set.iter().enumerate() {
            let entries = (scale * f64::from(e.weight()) / f64::from(min_w)).ceil() as u64;
            for replica in 0..entries.max(1) {
                ring.push((endpoint_hash(e.authority().as_str(), replica), i as u32));
            }
        }
        ring.sort_unstable();
        let (hashes, owners) = ring.into_iter().unzip::<_, _, Vec<u64>, Vec<u32>>();
        RingHash {
            hashes: hashes.into(),
            owners: owners.into(),
        }
    }

    /// Number of ring entries.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The endpoint owning `hash`: the first entry clockwise from it whose endpoint is not
    /// ejected.
    pub fn pick<E: EjectedSet + ?Sized>(&self, hash: u64, ejected: &E) -> Option<usize> {
        let n = self.hashes.len();
        if n == 0 {
            return None;
        }
        let start = self.hashes.partition_point(|&h| h < hash) % n;
        (0..n)
            .map(|k| self.owners[(start + k) % n] as usize)
            .find(|&i| !ejected.is_ejected(i))
    }
}

/// A Maglev lookup table over an endpoint set.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Box<[u32]>,
}

impl Maglev {
    /// Build a table of `table_size` slots (0 means 65537; it should be prime so that every
    /// endpoint's permutation visits every slot). Endpoints fill slots in proportion to their
    /// weights.
    pub fn build(set: &[ClusterEndpoint], table_size: u64) -> Self {
        let m = if table_size == 0 {
            DEFAULT_MAGLEV_TABLE_SIZE
        } else {
            table_size
        };
        let n = set.len();
        if n == 0 {
            return Maglev {
                table: Box::new([]),
            };
        }
        let max_w = u64::from(set.iter().map(|e| e.weight()).max().unwrap_or(1).max(1));
        // Endpoints take their turns in address order, so the table does not depend on the
        // order discovery lists them in (as Envoy sorts its hosts before building).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| set[a].authority().as_str().cmp(set[b].authority().as_str()));
        let perms: Vec<(u64, u64)> = order
            .iter()
            .map(|&i| {
                let key = set[i].authority().as_str().as_bytes();
                let offset = XxHash64::oneshot(0, key) % m;
                let skip = XxHash64::oneshot(1, key) % (m - 1).max(1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; n];
        let mut filled_by = vec![0u64; n];
        let mut table = vec![u32::MAX; m as usize];
        let mut filled = 0u64;
        let mut iteration = 1u64;
        while filled < m {
            for (turn, &i) in order.iter().enumerate() {
                let w = u64::from(set[i].weight());
                // Endpoint i may take a slot while it holds fewer than iteration * w / max_w.
                if filled_by[turn] * max_w >= iteration * w {
                    continue;
                }
                let (offset, skip) = perms[turn];
                let mut slot = None;
                // With a prime size the permutation reaches every slot within m steps.
                for _ in 0..m {
                    let s = ((offset + next[turn] * skip) % m) as usize;
                    next[turn] += 1;
                    if table[s] == u32::MAX {
                        slot = Some(s);
                        break;
                    }
                }
                // A non-prime size can cycle early: take the first free slot instead.
                let slot = slot.or_else(|| table.iter().position(|&t| t == u32::MAX));
                if let Some(s) = slot {
                    table[s] = i as u32;
                    filled_by[turn] += 1;
                    filled += 1;
                }
                if filled == m {
                    break;
                }
            }
            iteration += 1;
        }
        Maglev {
            table: table.into(),
        }
    }

    /// The endpoint owning `hash`; if it is ejected, the next slot's live endpoint.
    pub fn pick<E: EjectedSet + ?Sized>(&self, hash: u64, ejected: &E) -> Option<usize> {
        let m = self.table.len();
        if m == 0 {
            return None;
        }
        let start = (hash % m as u64) as usize;
        (0..m)
            .map(|k| self.table[(start + k) % m] as usize)
            .find(|&i| !ejected.is_ejected(i))
    }

    /// Number of slots owned by each endpoint position.
    pub fn slot_counts(&self, endpoints: usize) -> Vec<usize> {
        let mut counts = vec![0; endpoints];
        for &i in self.table.iter() {
            if let Some(c) = counts.get_mut(i as usize) {
                *c += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_cookie_is_envoys() {
        let c = CookieHash::new(
            "sticky",
            Some("/api"),
            Some(std::time::Duration::from_secs(60)),
        );
        let g = c.generate(0xab).unwrap();
        assert_eq!(
            g.set_cookie,
            "sticky=\"00000000000000ab\"; Max-Age=60; Path=/api; HttpOnly"
        );
        assert_eq!(g.key, XxHash64::oneshot(0, b"00000000000000ab"));
        let session = CookieHash::new("s", None, Some(std::time::Duration::ZERO));
        assert_eq!(
            session.generate(1).unwrap().set_cookie,
            "s=\"0000000000000001\"; HttpOnly"
        );
        assert!(CookieHash::new("s", None, None).generate(1).is_none());
    }

    #[test]
    fn the_source_ip_key_is_the_hash_of_the_address_text_as_in_envoy() {
        for text in ["10.0.0.5", "2001:db8::1", "::1"] {
            let ip: std::net::IpAddr = text.parse().unwrap();
            assert_eq!(hash_ip(ip), XxHash64::oneshot(0, text.as_bytes()), "{text}");
        }
    }
}
