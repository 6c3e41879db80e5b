//! Compiled string matchers with Istio's semantics.
//!
//! ```
//! use mesh_model::{Regex, StringMatch};
//!
//! let m = StringMatch::Regex(Regex::new("v[0-9]+").unwrap());
//! assert!(m.matches("v12"));
//! assert!(!m.matches("xv12")); // full match, as RE2 in Envoy
//! assert!(StringMatch::Prefix("/foo".into()).matches("/foobar")); // not segment aware
//! ```

use std::fmt;

/// Longest regular expression Istio accepts.
pub const MAX_REGEX_LEN: usize = 1024;

/// Most compiled program one regex may take, in bytes (the `regex` crate's size limit).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiled program, in bytes, that the regexes of one configuration (every source given to one
/// [`crate::Loader`]) may take together. Each regex is charged the size limit it compiled under,
/// found by doubling from 4 KiB, so at most twice its real size; one regex may take at most
/// 1 MiB. A configuration past the budget gets an error on each regex that does not fit.
pub const MAX_CONFIG_REGEX_BYTES: usize = 64 << 20;

/// A regular expression compiled once for **full** matches (`^(?:pattern)$`), as Envoy's
/// `safe_regex` matches. Equality compares the pattern as written.
#[derive(Clone)]
pub struct Regex {
    source: String,
    anchored: regex::Regex,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegexError {
    /// Empty pattern.
    #[error("regex string match should not be empty")]
    Empty,
    /// Longer than [`MAX_REGEX_LEN`].
    #[error("regex is too large: {0} characters, at most 1024 are allowed")]
    TooLarge(usize),
    /// The regexes of the configuration together need more than [`MAX_CONFIG_REGEX_BYTES`].
    #[error("the regexes of this configuration together need more than {} MiB of compiled program; use prefix or exact matches where they do, or fewer and smaller regexes (large repetitions of Unicode classes such as \\w{{20}} are the usual cause)", MAX_CONFIG_REGEX_BYTES >> 20)]
    OverBudget,
    /// Not valid RE2 syntax.
    #[error("invalid regex {pattern:?}: {reason}")]
    Invalid {
        /// The pattern.
        pattern: String,
        /// The compiler's reason, first line.
        reason: String,
    },
}

impl Regex {
    /// Compiles `pattern` anchored at both ends. The compiled size is bounded, so hostile
    /// patterns are refused instead of using unbounded memory; matching is linear in the input.
    pub fn new(pattern: &str) -> Result<Self, RegexError> {
        let anchored = compile(&format!("^(?:{pattern})$"), pattern)?;
        Ok(Regex {
            source: pattern.to_owned(),
            anchored,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.anchored.is_match(s)
    }

    /// [`Regex::new`], charged to a configuration's regex budget.
    pub(crate) fn within(pattern: &str, budget: &mut usize) -> Result<Self, RegexError> {
        let anchored = compile_within(&format!("^(?:{pattern})$"), pattern, budget)?;
        Ok(Regex {
            source: pattern.to_owned(),
            anchored,
        })
    }

    /// The anchored compiled expression.
    pub fn as_regex(&self) -> &regex::Regex {
        &self.anchored
    }
}

/// Compiles `full` (the pattern as it will run) with the size limits; errors name `pattern`.
pub(crate) fn compile(full: &str, pattern: &str) -> Result<regex::Regex, RegexError> {
    check_length(pattern)?;
    build(full, REGEX_SIZE_LIMIT).map_err(|e| invalid(pattern, &e))
}

/// [`compile`] within what is left of a configuration's budget (see
/// [`MAX_CONFIG_REGEX_BYTES`]), which shrinks by what the regex is charged.
pub(crate) fn compile_within(
    full: &str,
    pattern: &str,
    budget: &mut usize,
) -> Result<regex::Regex, RegexError> {
    check_length(pattern)?;
    let mut limit = 4 << 10;
    loop {
        let granted = limit.min(REGEX_SIZE_LIMIT).min(*budget);
        if granted == 0 {
            return Err(RegexError::OverBudget);
        }
        match build(full, granted) {
            Ok(re) => {
                *budget -= granted;
                return Ok(re);
            }
            // Too big for what is left of the budget: more room would need more budget.
            Err(regex::Error::CompiledTooBig(_))
                if granted == *budget && granted < REGEX_SIZE_LIMIT =>
            {
                return Err(RegexError::OverBudget);
            }
            Err(regex::Error::CompiledTooBig(_)) if granted < REGEX_SIZE_LIMIT => {
                limit = granted * 2;
            }
            Err(e) => return Err(invalid(pattern, &e)),
        }
    }
}

fn check_length(pattern: &str) -> Result<(), RegexError> {
    if pattern.is_empty() {
        return Err(RegexError::Empty);
    }
    if pattern.len() > MAX_REGEX_LEN {
        return Err(RegexError::TooLarge(pattern.len()));
    }
    Ok(())
}

fn build(full: &str, size_limit: usize) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(full)
        .size_limit(size_limit)
        .dfa_size_limit(1 << 20)
        .nest_limit(64)
        .build()
}

fn invalid(pattern: &str, e: &regex::Error) -> RegexError {
    RegexError::Invalid {
        pattern: pattern.to_owned(),
        reason: e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Regex {}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Regex").field(&self.source).finish()
    }
}

impl fmt::Display for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Istio's `StringMatch`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Byte-exact equality.
    Exact(String),
    /// Plain string prefix (not path-segment aware).
    Prefix(String),
    /// RE2 full match.
    Regex(Regex),
    /// The value is present (written `{}`; `regex: "*"` in `withoutHeaders`).
    Present,
}

impl StringMatch {
    /// Case-sensitive match of a present value.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(e) => value == e,
            StringMatch::Prefix(p) => value.starts_with(p.as_str()),
            StringMatch::Regex(r) => r.is_match(value),
            StringMatch::Present => true,
        }
    }
}

impl fmt::Display for StringMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StringMatch::Exact(e) => write!(f, "exact {e:?}"),
            StringMatch::Prefix(p) => write!(f, "prefix {p:?}"),
            StringMatch::Regex(r) => write!(f, "regex {:?}", r.as_str()),
            StringMatch::Present => f.write_str("present"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_full_match_and_bounded() {
        let r = Regex::new("a|b").unwrap();
        assert!(r.is_match("a") && r.is_match("b") && !r.is_match("ab"));
        assert_eq!(Regex::new(""), Err(RegexError::Empty));
        assert!(matches!(
            Regex::new(&"a".repeat(1025)),
            Err(RegexError::TooLarge(1025))
        ));
        for bad in ["*", "(", "(?=x)", "\\1"] {
            assert!(
                matches!(Regex::new(bad), Err(RegexError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(Regex::new("(?i)/xxx/").unwrap().is_match("/XXX/"));
        assert!(matches!(
            Regex::new("(((a{1000}){1000}){1000})"),
            Err(RegexError::Invalid { .. })
        ));
    }
}
