//! A fixed-size, allocation-free set of HTTP status codes (100..=599).

use std::fmt;

/// Smallest code a [`StatusCodeSet`] can hold.
pub const MIN_STATUS: u16 = 100;
/// Largest code a [`StatusCodeSet`] can hold.
pub const MAX_STATUS: u16 = 599;

const WORDS: usize = 8; // 8 × 64 = 512 bits ≥ 500 codes

/// A set of HTTP status codes in `100..=599`, stored as a 512-bit bitmap.
///
/// It is `Copy` and never allocates, so it can live inside per-request state. It backs
/// [`RetryOn`](crate::RetryOn)'s retriable status codes and the outlier detector's
/// `outlierDetectionHttpErrorCodes`.
///
/// ```
/// use mesh_resilience::StatusCodeSet;
///
/// let mut set = StatusCodeSet::new();
/// assert!(set.insert(503));
/// assert!(!set.insert(600)); // out of range: refused, set unchanged
/// assert!(set.contains(503));
/// assert!(!set.contains(502));
/// assert_eq!(set.iter().collect::<Vec<_>>(), vec![503]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusCodeSet {
    bits: [u64; WORDS],
}

impl StatusCodeSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self { bits: [0; WORDS] }
    }

    /// Adds `code`. Returns `false` (and leaves the set unchanged) when `code` is outside
    /// `100..=599`.
    pub fn insert(&mut self, code: u16) -> bool {
        if !(MIN_STATUS..=MAX_STATUS).contains(&code) {
            return false;
        }
        let i = usize::from(code - MIN_STATUS);
        self.bits[i / 64] |= 1 << (i % 64);
        true
    }

    /// Removes `code` if present.
    pub fn remove(&mut self, code: u16) {
        if (MIN_STATUS..=MAX_STATUS).contains(&code) {
            let i = usize::from(code - MIN_STATUS);
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Whether `code` is in the set. Codes outside `100..=599` are never members.
    #[inline]
    pub fn contains(&self, code: u16) -> bool {
        if !(MIN_STATUS..=MAX_STATUS).contains(&code) {
            return false;
        }
        let i = usize::from(code - MIN_STATUS);
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// Number of codes in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The codes in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (MIN_STATUS..=MAX_STATUS).filter(move |c| self.contains(*c))
    }
}

impl FromIterator<u16> for StatusCodeSet {
    /// Collects codes; codes outside `100..=599` are skipped (use [`StatusCodeSet::insert`]
    /// to detect them).
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut set = Self::new();
        for code in iter {
            set.insert(code);
        }
        set
    }
}

impl fmt::Debug for StatusCodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Whether Go's `net/http.StatusText` knows `code`: the numeric `retryOn` tokens Istio's
/// validation accepts (istio-semantics Appendix A).
pub(crate) fn go_knows_status(code: i64) -> bool {
    matches!(code,
        100..=103
        | 200..=208 | 226
        | 300..=305 | 307 | 308
        | 400..=418 | 421..=426 | 428 | 429 | 431 | 451
        | 500..=508 | 510 | 511)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let mut s = StatusCodeSet::new();
        assert!(s.insert(100));
        assert!(s.insert(599));
        assert!(!s.insert(99));
        assert!(!s.insert(600));
        assert_eq!(s.len(), 2);
        assert!(s.contains(100) && s.contains(599));
        assert!(!s.contains(0) && !s.contains(u16::MAX));
        s.remove(100);
        assert!(!s.contains(100));
        s.remove(600); // no-op, no panic
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![599]);
    }

    #[test]
    fn go_status_table() {
        for ok in [
            100, 103, 200, 208, 226, 300, 305, 307, 308, 400, 418, 421, 425, 426, 428, 429, 431,
            451, 500, 508, 510, 511,
        ] {
            assert!(go_knows_status(ok), "{ok}");
        }
        for bad in [
            0, 99, 104, 209, 225, 306, 309, 419, 420, 427, 430, 450, 499, 509, 512, 599, 600, -503,
        ] {
            assert!(!go_knows_status(bad), "{bad}");
        }
    }
}
