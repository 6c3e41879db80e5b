//! Request mirroring: whether to send a copy of this request to a mirror.
//!
//! Istio: a mirror without a percentage mirrors **100 %**; an explicit `0` turns it off; the
//! deprecated integer `mirrorPercent` is used only when `mirrorPercentage` is absent. The
//! percentage is sampled per mirror and per request in parts per million, like faults.
//!
//! ```
//! use mesh_resilience::{MirrorPolicy, Percentage};
//!
//! assert!(MirrorPolicy::from_istio(None, None)?.should_mirror(123)); // absent: always
//! assert!(!MirrorPolicy::from_istio(Some(0.0), Some(50))?.is_enabled()); // explicit 0: off
//! let half = MirrorPolicy::from_istio(None, Some(50))?;
//! assert!(half.should_mirror(499_999) && !half.should_mirror(500_000));
//! # Ok::<(), mesh_resilience::InvalidPercentage>(())
//! ```

use crate::percent::{InvalidPercentage, Percentage};

/// The sampling decision for one mirror destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MirrorPolicy {
    percentage: Percentage,
}

impl MirrorPolicy {
    /// Mirrors `percentage` of requests.
    pub fn new(percentage: Percentage) -> Self {
        Self { percentage }
    }

    /// From Istio's fields: `mirrorPercentage.value` (or a `mirrors[].percentage.value`) and
    /// the deprecated `mirrorPercent`. Absent both: 100 %.
    pub fn from_istio(
        percentage: Option<f64>,
        deprecated_percent: Option<u32>,
    ) -> Result<Self, InvalidPercentage> {
        let percentage = match (percentage, deprecated_percent) {
            (Some(v), _) => Percentage::from_percent(v)?,
            (None, Some(p)) => Percentage::from_integer_percent(p),
            (None, None) => Percentage::HUNDRED,
        };
        Ok(Self { percentage })
    }

    /// The percentage.
    pub fn percentage(&self) -> Percentage {
        self.percentage
    }

    /// Whether this mirror can ever fire.
    pub fn is_enabled(&self) -> bool {
        !self.percentage.is_zero()
    }

    /// Whether to mirror the request with random `roll`.
    #[inline]
    pub fn should_mirror(&self, roll: u64) -> bool {
        self.percentage.sample(roll)
    }
}

impl Default for MirrorPolicy {
    /// 100 %.
    fn default() -> Self {
        Self::new(Percentage::HUNDRED)
    }
}
