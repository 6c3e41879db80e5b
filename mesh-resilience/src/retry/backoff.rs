//! Envoy's fully jittered exponential backoff, following the code, not the docs.

use std::time::Duration;

/// Why a [`Backoff`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidBackoff {
    /// The base interval was zero (Envoy requires it to be positive).
    #[error("backoff base interval must be at least 1ms")]
    ZeroBase,
    /// An interval was not a whole number of milliseconds (Envoy counts milliseconds; Istio
    /// rejects sub-millisecond durations).
    #[error("backoff intervals must be whole milliseconds")]
    SubMillisecond,
    /// The max interval was below the base interval (Envoy rejects this).
    #[error("backoff max interval must not be below the base interval")]
    MaxBelowBase,
    /// An interval was too large to compute with (beyond about 29 million years).
    #[error("backoff interval too large")]
    TooLarge,
}

/// Backoff parameters (base and max interval, whole milliseconds), and the waits they give.
///
/// Envoy's `JitteredExponentialBackOffStrategy` keeps an interval that starts at the base;
/// each retry waits `roll % interval` milliseconds (uniform in `[0, interval)`), then the
/// interval doubles while it is below `max / 2` and is otherwise set to `max`. With the default
/// base of 25 ms (max 10 × base = 250 ms) the windows are `[0,25)`, `[0,50)`, `[0,100)`,
/// `[0,200)`, `[0,250)`, `[0,250)`… ms. (Envoy's router docs claim `[0, (2^N − 1)·base)`; the
/// code does not do that, and this crate follows the code.)
///
/// ```
/// use std::time::Duration;
/// use mesh_resilience::Backoff;
///
/// let b = Backoff::default(); // 25 ms base, 250 ms max
/// let windows: Vec<u128> = (1..=6).map(|n| b.window(n).as_millis()).collect();
/// assert_eq!(windows, [25, 50, 100, 200, 250, 250]);
/// assert_eq!(b.delay(3, 1234), Duration::from_millis(1234 % 100));
///
/// let custom = Backoff::new(Duration::from_millis(100))?; // Istio `backoff: 100ms`
/// assert_eq!(custom.max(), Duration::from_secs(1));
/// # Ok::<(), mesh_resilience::InvalidBackoff>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
}

/// Anything above this is refused, so that `10 × base` and doubling never overflow.
const LIMIT_MS: u64 = u64::MAX / 64;

fn whole_ms(d: Duration) -> Result<u64, InvalidBackoff> {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(InvalidBackoff::SubMillisecond);
    }
    let ms = d.as_millis();
    if ms > u128::from(LIMIT_MS) {
        return Err(InvalidBackoff::TooLarge);
    }
    Ok(ms as u64)
}

impl Backoff {
    /// Envoy's default: 25 ms base (`upstream.base_retry_backoff_ms`), 250 ms max.
    pub const ENVOY_DEFAULT: Backoff = Backoff {
        base_ms: 25,
        max_ms: 250,
    };

    /// A backoff with `base` and Envoy's default max of 10 × base, which is all Istio's
    /// `retries.backoff` can set.
    pub fn new(base: Duration) -> Result<Self, InvalidBackoff> {
        let base_ms = whole_ms(base)?;
        if base_ms == 0 {
            return Err(InvalidBackoff::ZeroBase);
        }
        Ok(Self {
            base_ms,
            max_ms: base_ms * 10,
        })
    }

    /// A backoff with an explicit max interval (Envoy's `retry_back_off.max_interval`).
    pub fn with_max(base: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        let base_ms = whole_ms(base)?;
        let max_ms = whole_ms(max)?;
        if base_ms == 0 {
            return Err(InvalidBackoff::ZeroBase);
        }
        if max_ms < base_ms {
            return Err(InvalidBackoff::MaxBelowBase);
        }
        Ok(Self { base_ms, max_ms })
    }

    /// The base interval.
    pub fn base(&self) -> Duration {
        Duration::from_millis(self.base_ms)
    }

    /// The max interval.
    pub fn max(&self) -> Duration {
        Duration::from_millis(self.max_ms)
    }

    /// The interval after `interval_ms` (Envoy: double while below `max / 2`, else `max`).
    #[inline]
    pub(crate) fn next_interval_ms(&self, interval_ms: u64) -> u64 {
        if interval_ms < self.max_ms / 2 {
            interval_ms * 2
        } else {
            self.max_ms
        }
    }

    /// The first interval.
    #[inline]
    pub(crate) fn first_interval_ms(&self) -> u64 {
        self.base_ms
    }

    /// The exclusive upper bound of the wait before retry `retry` (1-based; `0` is treated as
    /// `1`): the wait is uniform in `[0, window)` at millisecond granularity.
    pub fn window(&self, retry: u32) -> Duration {
        let mut interval = self.base_ms;
        for _ in 1..retry.max(1) {
            let next = self.next_interval_ms(interval);
            if next == interval {
                break; // reached max
            }
            interval = next;
        }
        Duration::from_millis(interval)
    }

    /// The wait before retry `retry` (1-based) for the random `roll`: `roll % window` ms.
    pub fn delay(&self, retry: u32, roll: u64) -> Duration {
        let window = self.window(retry).as_millis() as u64;
        Duration::from_millis(roll % window)
    }
}

impl Default for Backoff {
    /// [`Backoff::ENVOY_DEFAULT`].
    fn default() -> Self {
        Self::ENVOY_DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn windows_follow_envoy_code() {
        let cases: &[(u64, Option<u64>, &[u64])] = &[
            (25, None, &[25, 50, 100, 200, 250, 250, 250]),
            (100, None, &[100, 200, 400, 800, 1000, 1000]),
            (30, Some(100), &[30, 60, 100, 100]),
            (40, Some(100), &[40, 80, 100]),
            // max/2 uses integer division: 50 < 101/2 is false, so 50 -> 101 (not 100).
            (50, Some(101), &[50, 101, 101]),
            (25, Some(25), &[25, 25, 25]),
            (1, None, &[1, 2, 4, 8, 10, 10]),
        ];
        for (base, max, want) in cases {
            let b = match max {
                Some(m) => Backoff::with_max(ms(*base), ms(*m)).unwrap(),
                None => Backoff::new(ms(*base)).unwrap(),
            };
            let got: Vec<u64> = (1..=want.len() as u32)
                .map(|n| b.window(n).as_millis() as u64)
                .collect();
            assert_eq!(&got, want, "base {base} max {max:?}");
        }
    }

    #[test]
    fn invalid() {
        assert_eq!(Backoff::new(Duration::ZERO), Err(InvalidBackoff::ZeroBase));
        assert_eq!(
            Backoff::new(Duration::from_micros(1500)),
            Err(InvalidBackoff::SubMillisecond)
        );
        assert_eq!(
            Backoff::with_max(ms(100), ms(99)),
            Err(InvalidBackoff::MaxBelowBase)
        );
        assert_eq!(
            Backoff::new(Duration::MAX),
            Err(InvalidBackoff::SubMillisecond)
        );
        assert_eq!(
            Backoff::new(Duration::from_secs(u64::MAX / 1000)),
            Err(InvalidBackoff::TooLarge)
        );
        assert!(Backoff::new(Duration::from_micros(2000)).is_ok());
    }

    #[test]
    fn delay_is_roll_mod_window() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0), ms(0));
        assert_eq!(b.delay(1, 24), ms(24));
        assert_eq!(b.delay(1, 25), ms(0));
        assert_eq!(b.delay(2, 49), ms(49));
        assert_eq!(b.delay(5, u64::MAX), ms(u64::MAX % 250));
        assert_eq!(b.delay(0, 30), b.delay(1, 30));
    }
}
