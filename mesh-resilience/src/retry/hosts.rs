//! Endpoints already tried by a request: Envoy's `previous_hosts` retry predicate.

use std::fmt;

/// How many tried endpoints a request remembers. Older ones are forgotten first; with Istio's
/// usual 2–3 retries every attempt is remembered.
pub const TRIED_ENDPOINTS_CAPACITY: usize = 8;

/// The endpoints (as indexes into the driver's endpoint list) a request has been sent to, most
/// recent last. Fixed-size and allocation-free: it remembers the last
/// [`TRIED_ENDPOINTS_CAPACITY`] attempts.
///
/// ```
/// use mesh_resilience::TriedEndpoints;
///
/// let mut tried = TriedEndpoints::new();
/// tried.record(3);
/// tried.record(7);
/// assert!(tried.contains(3) && tried.contains(7) && !tried.contains(4));
/// assert_eq!(tried.iter().collect::<Vec<_>>(), vec![3, 7]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TriedEndpoints {
    slots: [usize; TRIED_ENDPOINTS_CAPACITY],
    /// Total number ever recorded (the ring holds the last `CAPACITY` of them).
    recorded: usize,
}

impl TriedEndpoints {
    /// Nothing tried yet.
    pub const fn new() -> Self {
        Self {
            slots: [0; TRIED_ENDPOINTS_CAPACITY],
            recorded: 0,
        }
    }

    /// Records an attempt on `endpoint`.
    pub fn record(&mut self, endpoint: usize) {
        self.slots[self.recorded % TRIED_ENDPOINTS_CAPACITY] = endpoint;
        self.recorded = self.recorded.saturating_add(1);
    }

    /// Whether `endpoint` is among the remembered attempts.
    #[inline]
    pub fn contains(&self, endpoint: usize) -> bool {
        self.slots[..self.len()].contains(&endpoint)
    }

    /// How many attempts are remembered.
    pub fn len(&self) -> usize {
        self.recorded.min(TRIED_ENDPOINTS_CAPACITY)
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.recorded == 0
    }

    /// The remembered endpoints, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let len = self.len();
        let start = self.recorded - len;
        (start..self.recorded).map(move |i| self.slots[i % TRIED_ENDPOINTS_CAPACITY])
    }
}

impl Default for TriedEndpoints {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TriedEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_forgets_oldest() {
        let mut t = TriedEndpoints::new();
        for i in 0..10 {
            t.record(100 + i);
        }
        assert_eq!(t.len(), TRIED_ENDPOINTS_CAPACITY);
        assert!(!t.contains(100) && !t.contains(101));
        assert!(t.contains(102) && t.contains(109));
        assert_eq!(t.iter().collect::<Vec<_>>(), (102..110).collect::<Vec<_>>());
    }

    #[test]
    fn empty_contains_nothing() {
        let t = TriedEndpoints::new();
        assert!(!t.contains(0));
        assert!(t.is_empty());
    }
}
