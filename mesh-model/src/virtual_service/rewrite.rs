//! `rewrite` (RW1-RW3): path, regex and authority rewrites.

use crate::diag::{Cx, Path};
use crate::raw;

/// `rewrite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub(crate) uri: Option<String>,
    pub(crate) uri_regex: Option<RegexRewrite>,
    pub(crate) authority: Option<String>,
}

impl Rewrite {
    /// Replacement for the matched part of the path (Envoy `prefix_rewrite`).
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }
    /// Regex substitution on the path.
    pub fn uri_regex(&self) -> Option<&RegexRewrite> {
        self.uri_regex.as_ref()
    }
    /// Authority sent upstream.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }
}

/// `uriRegexRewrite`: every non-overlapping match of `pattern` in the path is replaced.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    pub(crate) pattern: regex::Regex,
    pub(crate) rewrite: String,
    pub(crate) replacement: String,
}

impl PartialEq for RegexRewrite {
    fn eq(&self, other: &Self) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.rewrite == other.rewrite
    }
}

impl Eq for RegexRewrite {}

impl RegexRewrite {
    /// The compiled (unanchored) pattern.
    pub fn pattern(&self) -> &regex::Regex {
        &self.pattern
    }
    /// The rewrite as written, with `\1` group references.
    pub fn rewrite(&self) -> &str {
        &self.rewrite
    }
    /// Applies the substitution to a path.
    ///
    /// ```
    /// # let loaded = mesh_model::load_str("x", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - rewrite:\n      uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}\n    route:\n    - destination: {host: a}\n");
    /// # let vs = &loaded.config().virtual_services()[0];
    /// let rw = vs.http()[0].rewrite().unwrap().uri_regex().unwrap();
    /// assert_eq!(rw.apply("/service/update/v1/api"), "/v1/api/instance/update");
    /// ```
    pub fn apply<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        self.pattern.replace_all(path, self.replacement.as_str())
    }
}

/// Converts RE2-style `\1` references into the `${1}` form the regex crate expands.
fn rewrite_to_replacement(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len() + 8);
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// RW1-RW3: one of uri or uriRegexRewrite, something to rewrite, a valid regex.
pub(crate) fn validate_rewrite(cx: &mut Cx<'_>, p: &Path<'_>, r: &raw::HttpRewrite) -> Rewrite {
    if r.uri.is_some() && r.uri_regex_rewrite.is_some() {
        cx.error(
            p,
            "only one of uri or uriRegexRewrite can be set in a rewrite",
        );
    }
    if r.uri.is_none() && r.uri_regex_rewrite.is_none() && r.authority.is_none() {
        cx.error(
            p,
            "rewrite must specify at least one of uri, uriRegexRewrite or authority",
        );
    }
    // istiod passes such a value to Envoy's prefix_rewrite as written, and Envoy sends the
    // request upstream with a path that does not start with `/`: accepted, with a warning.
    if let Some(u) = r
        .uri
        .as_deref()
        .filter(|u| !u.is_empty() && !u.starts_with('/'))
    {
        cx.warn(
            &p.key("uri"),
            format!("rewrite uri {u:?} does not start with '/': istiod accepts it and the path goes upstream as rewritten, without a leading '/', which most servers refuse; write \"/{u}\" (the matched part of the path is replaced by it)"),
        );
    }
    let mut uri_regex = None;
    if let Some(rr) = &r.uri_regex_rewrite {
        let rp = p.key("uriRegexRewrite");
        let m = rr.matcher.as_deref().unwrap_or("");
        let w = rr.rewrite.as_deref().unwrap_or("");
        if m.is_empty() {
            cx.error(
                &rp.key("match"),
                "uriRegexRewrite match cannot be empty: give a regex",
            );
        }
        if w.is_empty() {
            cx.error(
                &rp.key("rewrite"),
                "uriRegexRewrite rewrite cannot be empty: give the replacement",
            );
        }
        if !m.is_empty() {
            match crate::matching::compile_within(m, m, &mut cx.regex_budget) {
                Ok(re) if !w.is_empty() => {
                    uri_regex = Some(RegexRewrite {
                        pattern: re,
                        rewrite: w.to_owned(),
                        replacement: rewrite_to_replacement(w),
                    })
                }
                Ok(_) => {}
                Err(e) => cx.error(&rp.key("match"), e.to_string()),
            }
        }
    }
    Rewrite {
        uri: r.uri.clone(),
        uri_regex,
        authority: r.authority.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backreferences_become_named_expansions() {
        assert_eq!(
            rewrite_to_replacement(r"/customprefix/\2/\1"),
            "/customprefix/${2}/${1}"
        );
        assert_eq!(rewrite_to_replacement("/a$b"), "/a$$b");
    }
}
