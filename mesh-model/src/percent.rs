//! Percentages as Istio and Envoy use them: a double between 0 and 100 in YAML, a fraction per
//! million in Envoy (`value × 10000`, truncated).
//!
//! ```
//! use mesh_model::Percentage;
//!
//! let p = Percentage::from_value(0.1).unwrap();
//! assert_eq!(p.per_million(), 1_000);
//! assert!(Percentage::from_value(100.5).is_err());
//! ```

use std::fmt;

/// A share of requests, stored in parts per million so it is exact, `Eq` and `Hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percentage(u32);

/// A percentage outside what Istio accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("percentage {0} is outside [0, 100]")]
pub struct PercentageError(pub f64);

impl Percentage {
    /// 0%: never.
    pub const ZERO: Self = Self(0);
    /// 100%: always.
    pub const HUNDRED: Self = Self(1_000_000);

    /// From Istio's double in `[0, 100]`; Envoy's translation truncates to parts per million.
    pub fn from_value(value: f64) -> Result<Self, PercentageError> {
        if !(0.0..=100.0).contains(&value) || value.is_nan() {
            return Err(PercentageError(value));
        }
        Ok(Self((value * 10_000.0) as u32))
    }

    /// From parts per million, clamped to 1,000,000.
    pub fn from_per_million(ppm: u32) -> Self {
        Self(ppm.min(1_000_000))
    }

    /// From a whole-number percentage (the deprecated integer fields), clamped to 100.
    pub fn from_whole(percent: u32) -> Self {
        Self(percent.min(100) * 10_000)
    }

    /// Parts per million.
    pub fn per_million(self) -> u32 {
        self.0
    }

    /// The percentage as Istio writes it: a value that [`Percentage::from_value`] maps back to
    /// exactly this percentage (floating point can make `ppm / 10000 × 10000` fall just short).
    pub fn value(self) -> f64 {
        let plain = f64::from(self.0) / 10_000.0;
        if (plain * 10_000.0) as u32 == self.0 {
            plain
        } else {
            (f64::from(self.0) + 0.5) / 10_000.0
        }
    }

    /// Whether a request with this uniform random roll is selected: `roll % 1_000_000 < ppm`
    /// (Envoy's `FractionalPercent` sampling).
    #[inline]
    pub fn sample(self, roll: u64) -> bool {
        (roll % 1_000_000) < u64::from(self.0)
    }

    /// Whether this is 0 % (never sampled).
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        assert_eq!(Percentage::from_value(0.0001).unwrap().per_million(), 1);
        assert_eq!(Percentage::from_value(100.0).unwrap(), Percentage::HUNDRED);
        assert!(Percentage::from_value(-0.1).is_err());
        assert!(Percentage::from_value(f64::NAN).is_err());
        assert!(!Percentage::ZERO.sample(0));
        assert!(Percentage::HUNDRED.sample(u64::MAX));
    }

    proptest! {
        #[test]
        fn value_round_trips_through_per_million(ppm in 0u32..=1_000_000) {
            let p = Percentage::from_per_million(ppm);
            prop_assert_eq!(Percentage::from_value(p.value()).unwrap(), p);
        }

        #[test]
        fn sampling_matches_the_share(ppm in 0u32..=1_000_000, roll in any::<u64>()) {
            let p = Percentage::from_per_million(ppm);
            prop_assert_eq!(p.sample(roll), roll % 1_000_000 < u64::from(ppm));
        }
    }
}
