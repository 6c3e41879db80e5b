//! Percentages as Istio hands them to Envoy: parts per million.

use std::fmt;

/// Parts per million in 100 %.
pub const MILLION: u32 = 1_000_000;

/// Why a [`Percentage`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPercentage {
    /// Not a finite number in `0..=100`.
    #[error("percentage must be a number between 0 and 100")]
    OutOfRange,
}

/// A sampling percentage in parts per million, as Istio translates it for Envoy
/// (`FractionalPercent` with denominator `MILLION`): `numerator = value × 10000`, truncated
/// (Go `uint32(value * 10000)`, same floating-point rounding). A request is sampled when
/// `roll % 1_000_000 < numerator`.
///
/// ```
/// use mesh_resilience::Percentage;
///
/// let p = Percentage::from_percent(0.0001)?; // the smallest Istio accepts: 1 per million
/// assert_eq!(p.parts_per_million(), 1);
/// assert!(p.sample(0) && !p.sample(1) && p.sample(1_000_000));
///
/// // Truncation follows Go: 0.57 × 10000 is 5699.999999999999 in floating point.
/// assert_eq!(Percentage::from_percent(0.57)?.parts_per_million(), 5699);
/// # Ok::<(), mesh_resilience::InvalidPercentage>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Percentage {
    ppm: u32,
}

impl Percentage {
    /// 0 %: never.
    pub const ZERO: Percentage = Percentage { ppm: 0 };
    /// 100 %: always.
    pub const HUNDRED: Percentage = Percentage { ppm: MILLION };

    /// From Istio's double `percentage.value` (0–100).
    pub fn from_percent(value: f64) -> Result<Self, InvalidPercentage> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(InvalidPercentage::OutOfRange);
        }
        Ok(Self {
            ppm: (value * 10_000.0) as u32,
        })
    }

    /// From a deprecated integer percentage (fault `percent`, `mirrorPercent`). Istio sends it
    /// with denominator `HUNDRED`; Envoy treats a numerator above the denominator as 100 %, so
    /// values above 100 saturate.
    pub fn from_integer_percent(percent: u32) -> Self {
        Self {
            ppm: percent.min(100) * 10_000,
        }
    }

    /// From parts per million (values above 1 000 000 saturate at 100 %).
    pub fn from_parts_per_million(ppm: u32) -> Self {
        Self {
            ppm: ppm.min(MILLION),
        }
    }

    /// Parts per million.
    pub fn parts_per_million(&self) -> u32 {
        self.ppm
    }

    /// Whether a request with random `roll` is sampled: `roll % 1_000_000 < ppm`.
    #[inline]
    pub fn sample(&self, roll: u64) -> bool {
        roll % u64::from(MILLION) < u64::from(self.ppm)
    }

    /// Whether this is 0 %.
    pub fn is_zero(&self) -> bool {
        self.ppm == 0
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.ppm / 10_000;
        let frac = self.ppm % 10_000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let s = format!("{frac:04}");
            write!(f, "{whole}.{}%", s.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Percentage({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let cases = [
            (0.0, 0),
            (0.0001, 1),
            (0.00005, 0),
            (1.0, 10_000),
            (12.5, 125_000),
            (0.57, 5699),
            (0.0003, 2),
            (99.9999, 999_999),
            (100.0, MILLION),
        ];
        for (v, ppm) in cases {
            assert_eq!(
                Percentage::from_percent(v).unwrap().parts_per_million(),
                ppm,
                "{v}"
            );
        }
        for bad in [-0.1, 100.0001, f64::NAN, f64::INFINITY] {
            assert!(Percentage::from_percent(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Percentage::from_integer_percent(50).parts_per_million(),
            500_000
        );
        assert_eq!(Percentage::from_integer_percent(150), Percentage::HUNDRED);
        assert_eq!(
            Percentage::from_parts_per_million(2_000_000),
            Percentage::HUNDRED
        );
    }

    #[test]
    fn sampling_edges() {
        let half = Percentage::from_percent(50.0).unwrap();
        assert!(half.sample(499_999));
        assert!(!half.sample(500_000));
        assert!(half.sample(1_000_000)); // wraps to 0
        assert!(!Percentage::ZERO.sample(0));
        assert!(Percentage::HUNDRED.sample(999_999));
        assert!(Percentage::HUNDRED.sample(u64::MAX));
    }

    #[test]
    fn display() {
        assert_eq!(Percentage::from_percent(12.5).unwrap().to_string(), "12.5%");
        assert_eq!(
            Percentage::from_percent(0.0001).unwrap().to_string(),
            "0.0001%"
        );
        assert_eq!(Percentage::HUNDRED.to_string(), "100%");
    }
}
