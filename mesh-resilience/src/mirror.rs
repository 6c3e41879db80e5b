//! Request mirroring: whether to send a copy of this request to a mirror.
//!
//! The percentage is sampled per mirror and per request in parts per million, like faults.
//! Istio's defaults (a mirror without a percentage mirrors 100 %, an explicit `0` turns it off,
//! the deprecated integer `mirrorPercent`) are resolved by `mesh-model`, which hands over a
//! [`Percentage`].
//!
//! ```
//! use mesh_model::Percentage;
//! use mesh_resilience::MirrorPolicy;
//!
//! assert!(MirrorPolicy::default().should_mirror(123)); // 100 %: always
//! assert!(!MirrorPolicy::new(Percentage::ZERO).is_enabled());
//! let half = MirrorPolicy::new(Percentage::from_whole(50));
//! assert!(half.should_mirror(499_999) && !half.should_mirror(500_000));
//! ```

use mesh_model::Percentage;

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
