//! Durations in Istio's language.
//!
//! Istio reads `google.protobuf.Duration` fields with Go's `time.ParseDuration` grammar: an optional
//! sign, then one or more `<decimal><unit>` groups (`1h30m`, `0.5s`, `.5s`, `100ms`), units `ns`,
//! `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`, and the bare string `0`. There is no day unit and no
//! unit-less number. Validation then requires at least 1 ms and a whole number of milliseconds.
//!
//! This is not humantime's language: humantime accepts `1d` and refuses `.5s`; Istio does the
//! opposite, and so does this module.
//!
//! ```
//! use mesh_model::Duration;
//!
//! let d: Duration = "1m30s".parse().unwrap();
//! assert_eq!(d.as_std(), std::time::Duration::from_secs(90));
//! assert_eq!(d.to_string(), "90s");
//! assert!("1d".parse::<Duration>().is_err());
//! assert!("500us".parse::<Duration>().is_err()); // not whole milliseconds
//! ```

use std::fmt;
use std::str::FromStr;

/// Nanoseconds in the largest duration Go can represent.
const GO_MAX_NANOS: u128 = i64::MAX as u128;

/// A duration accepted by Istio: at least 1 ms and a whole number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not Go duration syntax.
    #[error("{input:?} is not a duration: {reason} (write a number with a unit, e.g. 500ms, 2s, 1m30s; units are ns, us, ms, s, m, h)")]
    Syntax {
        /// The input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Parsed, but negative.
    #[error("{input:?} is negative; durations must be at least 1ms")]
    Negative {
        /// The input.
        input: String,
    },
    /// Parsed, but shorter than Istio allows.
    #[error("{input:?} is shorter than 1ms; durations must be at least 1ms")]
    TooShort {
        /// The input.
        input: String,
    },
    /// Parsed, but not a whole number of milliseconds.
    #[error("{input:?} is not a whole number of milliseconds; only durations to ms precision are supported")]
    SubMillisecond {
        /// The input.
        input: String,
    },
    /// Parsed, but not a whole number of seconds where Istio requires seconds.
    #[error("{input:?} is not a whole number of seconds; this field has second precision")]
    SubSecond {
        /// The input.
        input: String,
    },
}

/// Parses Go's duration grammar, returning signed nanoseconds. No Istio rule is applied.
///
/// ```
/// assert_eq!(mesh_model::duration::parse_go("1.5h").unwrap(), 5_400_000_000_000);
/// assert_eq!(mesh_model::duration::parse_go("-1s").unwrap(), -1_000_000_000);
/// assert!(mesh_model::duration::parse_go("5").is_err());
/// ```
pub fn parse_go(input: &str) -> Result<i128, DurationError> {
    let syntax = |reason| DurationError::Syntax {
        input: input.to_owned(),
        reason,
    };
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(syntax("it is empty"));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(syntax("a number is missing"));
        }
        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(syntax("a unit is missing")),
            "d" => return Err(syntax("there is no day unit")),
            _ => return Err(syntax("the unit is unknown")),
        };
        let mut int_value: u128 = 0;
        for b in int_digits.bytes() {
            int_value = int_value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(b - b'0')))
                .filter(|v| *v <= GO_MAX_NANOS)
                .ok_or_else(|| syntax("it is too large"))?;
        }
        let mut value = int_value
            .checked_mul(unit_nanos)
            .filter(|v| *v <= GO_MAX_NANOS)
            .ok_or_else(|| syntax("it is too large"))?;
        // Fraction: as Go does, keep enough digits and truncate below a nanosecond.
        let mut scale = unit_nanos;
        for b in frac_digits.bytes().take(30) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += u128::from(b - b'0') * scale;
        }
        total = total
            .checked_add(value)
            .filter(|v| *v <= GO_MAX_NANOS)
            .ok_or_else(|| syntax("it is too large"))?;
    }
    let total = total as i128;
    Ok(if negative { -total } else { total })
}

impl Duration {
    /// Parses and applies Istio's rule for most duration fields: at least 1 ms, whole milliseconds.
    pub fn parse_istio(input: &str) -> Result<Self, DurationError> {
        let nanos = parse_go(input)?;
        if nanos < 0 {
            return Err(DurationError::Negative {
                input: input.to_owned(),
            });
        }
        if nanos < 1_000_000 {
            return Err(DurationError::TooShort {
                input: input.to_owned(),
            });
        }
        if nanos % 1_000_000 != 0 {
            return Err(DurationError::SubMillisecond {
                input: input.to_owned(),
            });
        }
        Ok(Self(std::time::Duration::from_nanos(nanos as u64)))
    }

    /// Parses with Go's grammar only, for the fields Istio does not bound (cookie `ttl`, retry
    /// budget interval): any non-negative value, zero included.
    pub fn parse_unbounded(input: &str) -> Result<Self, DurationError> {
        let nanos = parse_go(input)?;
        if nanos < 0 {
            return Err(DurationError::Negative {
                input: input.to_owned(),
            });
        }
        Ok(Self(std::time::Duration::from_nanos(nanos as u64)))
    }

    /// Parses a field that must also be whole seconds (`corsPolicy.maxAge`).
    pub fn parse_istio_seconds(input: &str) -> Result<Self, DurationError> {
        let d = Self::parse_istio(input)?;
        if d.0.subsec_nanos() != 0 {
            return Err(DurationError::SubSecond {
                input: input.to_owned(),
            });
        }
        Ok(d)
    }

    /// A duration of whole milliseconds, for building configuration in code.
    ///
    /// Returns `None` for zero, which Istio cannot express.
    pub fn from_millis(ms: u64) -> Option<Self> {
        (ms > 0).then(|| Self(std::time::Duration::from_millis(ms)))
    }

    /// The value as a standard duration.
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_istio(s)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// Writes the shortest exact form in the largest unit that divides the value: `2h`, `90s`, `500ms`.
/// Zero (possible only from [`Duration::parse_unbounded`]) is written `0s`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_go(f, self.0)
    }
}

/// Writes a standard duration in the form [`Duration`]'s `Display` uses.
pub(crate) fn write_go(f: &mut impl fmt::Write, d: std::time::Duration) -> fmt::Result {
    let nanos = d.as_nanos();
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    if nanos == 0 {
        return f.write_str("0s");
    }
    for (unit, name) in UNITS {
        if nanos.is_multiple_of(unit) {
            return write!(f, "{}{name}", nanos / unit);
        }
    }
    unreachable!("every value is a whole number of nanoseconds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<u128, DurationError> {
        Duration::parse_istio(s).map(|d| d.as_std().as_millis())
    }

    #[test]
    fn go_grammar_accepts() {
        for (s, want) in [
            ("2s", 2_000),
            ("0.5s", 500),
            (".5s", 500),
            ("100ms", 100),
            ("3m", 180_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("2m3.5s", 123_500),
            ("2000us", 2),
            ("2000\u{b5}s", 2),
            ("2000\u{3bc}s", 2),
            ("+5s", 5_000),
            ("1.5h", 5_400_000),
            ("2h45m", 9_900_000),
            ("1ms", 1),
            ("5.s", 5_000),
        ] {
            assert_eq!(ms(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn istio_refuses() {
        for s in [
            "1d", "5", "", "-1s", "500us", "1.5ms", "0", "0s", "1500us", "s", ".s", "1x", "1 s",
            " 1s", "1s ",
        ] {
            assert!(ms(s).is_err(), "{s:?} should be refused");
        }
        assert!(matches!(
            Duration::parse_istio("-1s"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            Duration::parse_istio("500us"),
            Err(DurationError::TooShort { .. })
        ));
        assert!(matches!(
            Duration::parse_istio("1500us"),
            Err(DurationError::SubMillisecond { .. })
        ));
        assert!(matches!(
            Duration::parse_istio("1d"),
            Err(DurationError::Syntax { .. })
        ));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(parse_go("9999999999999999999999h").is_err());
        assert!(parse_go("3000000h").is_err());
        assert!(parse_go("2562047h").is_ok());
    }

    #[test]
    fn unbounded_and_seconds() {
        assert_eq!(
            Duration::parse_unbounded("0s").unwrap().as_std(),
            std::time::Duration::ZERO
        );
        assert!(Duration::parse_istio_seconds("1500ms").is_err());
        assert!(Duration::parse_istio_seconds("24h").is_ok());
    }

    #[test]
    fn display_is_shortest_exact() {
        for (s, shown) in [
            ("1h30m", "90m"),
            ("2h", "2h"),
            ("90s", "90s"),
            ("0.5s", "500ms"),
            ("1m30.5s", "90500ms"),
        ] {
            assert_eq!(Duration::parse_istio(s).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn messages_name_the_fix() {
        let e = Duration::parse_istio("1d").unwrap_err().to_string();
        assert!(e.contains("no day unit") && e.contains("1m30s"), "{e}");
    }
}
