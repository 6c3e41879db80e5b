//! Compiled request matchers: the per-request half of an Istio `HTTPMatchRequest`.
//!
//! Everything that can be decided once is decided when the table is compiled: regexes are
//! compiled and anchored, header names parsed, selectors (`sourceLabels`, `sourceNamespace`,
//! `gateways`) evaluated against the client. What is left here runs per request and never
//! allocates, except a regex over a multi-valued header longer than 1 KiB.
//!
//! ```
//! use http::HeaderMap;
//! use mesh_routing::matcher::{HeaderMatcher, MatchBlock, StringMatcher, UriMatcher};
//! use mesh_routing::RequestView;
//!
//! let block = MatchBlock::default()
//!     .with_uri(UriMatcher::new(StringMatcher::prefix("/ratings/v2/"), true))
//!     .with_header(HeaderMatcher::new("end-user", StringMatcher::exact("jason")).unwrap());
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("end-user", "jason".parse().unwrap());
//! assert!(block.matches(&RequestView::new("GET", "ratings", "/RATINGS/v2/x", &headers)));
//! assert!(!block.matches(&RequestView::new("GET", "ratings", "/ratings/v1/x", &headers)));
//! ```

use std::fmt;

use http::header::{GetAll, HeaderName, HeaderValue};

use crate::RequestView;

/// A regular expression that must match the whole input (RE2 full-match semantics), compiled
/// once as `^(?:pattern)$`.
#[derive(Clone)]
pub struct AnchoredRegex {
    pattern: Box<str>,
    regex: regex::bytes::Regex,
}

impl AnchoredRegex {
    /// Compile `pattern` (the pattern as written in the config, without anchors).
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        let regex = regex::bytes::Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(AnchoredRegex {
            pattern: pattern.into(),
            regex,
        })
    }

    /// The pattern as written in the config.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `input` matches.
    pub fn is_match(&self, input: &[u8]) -> bool {
        self.regex.is_match(input)
    }
}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnchoredRegex").field(&self.pattern).finish()
    }
}

/// An Istio `StringMatch`, compiled.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// Byte-wise equality.
    Exact(Box<str>),
    /// Plain byte-wise prefix (not path-segment aware: `/foo` matches `/foobar`).
    Prefix(Box<str>),
    /// Full-string regex match.
    Regex(AnchoredRegex),
    /// No match type (`{}`): the value only has to be present.
    Present,
}

impl StringMatcher {
    /// An `exact` matcher.
    pub fn exact(value: &str) -> Self {
        StringMatcher::Exact(value.into())
    }

    /// A `prefix` matcher.
    pub fn prefix(value: &str) -> Self {
        StringMatcher::Prefix(value.into())
    }

    /// A `regex` matcher (compiled here, anchored).
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        AnchoredRegex::new(pattern).map(StringMatcher::Regex)
    }

    /// Whether `value` matches, case-sensitively. [`Present`](Self::Present) matches anything.
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            StringMatcher::Exact(e) => value == e.as_bytes(),
            StringMatcher::Prefix(p) => value.starts_with(p.as_bytes()),
            StringMatcher::Regex(r) => r.is_match(value),
            StringMatcher::Present => true,
        }
    }

    /// Whether the values of a (possibly multi-valued) header match, with Envoy's semantics: all
    /// values joined with `,`. Only a regex over several values longer than 1 KiB in total
    /// allocates.
    fn matches_values(&self, all: &GetAll<'_, HeaderValue>) -> Option<bool> {
        let mut it = all.iter();
        let first = it.next()?;
        if it.next().is_none() {
            return Some(self.matches(first.as_bytes()));
        }
        let pieces = || {
            all.iter().enumerate().flat_map(|(i, v)| {
                let sep: &[u8] = if i == 0 { b"" } else { b"," };
                [sep, v.as_bytes()]
            })
        };
        Some(match self {
            StringMatcher::Exact(e) => pieces_eq(pieces(), e.as_bytes(), true),
            StringMatcher::Prefix(p) => pieces_eq(pieces(), p.as_bytes(), false),
            StringMatcher::Present => true,
            StringMatcher::Regex(r) => {
                let mut stack = [0u8; 1024];
                let mut len = 0;
                let mut heap: Option<Vec<u8>> = None;
                for piece in pieces() {
                    match &mut heap {
                        Some(h) => h.extend_from_slice(piece),
                        None if len + piece.len() <= stack.len() => {
                            stack[len..len + piece.len()].copy_from_slice(piece);
                            len += piece.len();
                        }
                        None => {
                            let mut h = stack[..len].to_vec();
                            h.extend_from_slice(piece);
                            heap = Some(h);
                        }
                    }
                }
                match heap {
                    Some(h) => r.is_match(&h),
                    None => r.is_match(&stack[..len]),
                }
            }
        })
    }

    fn describe(&self) -> String {
        match self {
            StringMatcher::Exact(e) => format!("exact {e:?}"),
            StringMatcher::Prefix(p) => format!("prefix {p:?}"),
            StringMatcher::Regex(r) => format!("regex {:?}", r.pattern()),
            StringMatcher::Present => "present".to_owned(),
        }
    }
}

/// Compare the concatenation of `pieces` with `target`: equality when `whole`, else
/// "concatenation starts with target".
fn pieces_eq<'p>(pieces: impl Iterator<Item = &'p [u8]>, target: &[u8], whole: bool) -> bool {
    let mut rest = target;
    for piece in pieces {
        if rest.is_empty() {
            return !whole;
        }
        if piece.len() > rest.len() {
            return !whole && piece.starts_with(rest);
        }
        if &rest[..piece.len()] != piece {
            return false;
        }
        rest = &rest[piece.len()..];
    }
    rest.is_empty()
}

/// A `uri` match: against the path without the query string, optionally ignoring ASCII case
/// (`ignoreUriCase`, which applies to `exact` and `prefix` only, never to `regex`).
#[derive(Debug, Clone)]
pub struct UriMatcher {
    matcher: StringMatcher,
    ignore_case: bool,
}

impl UriMatcher {
    /// A URI matcher. `ignore_case` is Istio's `ignoreUriCase`.
    pub fn new(matcher: StringMatcher, ignore_case: bool) -> Self {
        UriMatcher {
            matcher,
            ignore_case,
        }
    }

    /// The string matcher.
    pub fn matcher(&self) -> &StringMatcher {
        &self.matcher
    }

    /// Whether `ignoreUriCase` is set.
    pub fn ignore_case(&self) -> bool {
        self.ignore_case
    }

    /// Whether this is a catch-all: prefix `/` (or empty) or regex `.*`.
    pub fn is_catch_all(&self) -> bool {
        match &self.matcher {
            StringMatcher::Prefix(p) => p.is_empty() || &**p == "/",
            StringMatcher::Regex(r) => r.pattern() == ".*",
            StringMatcher::Present => true,
            StringMatcher::Exact(_) => false,
        }
    }

    /// Whether `path` (no query string) matches.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.as_bytes();
        match (&self.matcher, self.ignore_case) {
            (StringMatcher::Exact(e), true) => path.eq_ignore_ascii_case(e.as_bytes()),
            (StringMatcher::Prefix(p), true) => {
                path.len() >= p.len() && path[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            (m, _) => m.matches(path),
        }
    }
}

/// Which request value a header matcher reads: a real header, or a pseudo-header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderKey {
    /// A regular header (name compared case-insensitively).
    Name(HeaderName),
    /// `:method`.
    Method,
    /// `:scheme`.
    Scheme,
    /// `:authority`.
    Authority,
    /// `:path` (with the query string, as Envoy sees it).
    Path,
    /// `:status`: never present on a request.
    Status,
}

impl HeaderKey {
    /// Parse a header-match key: a token header name (any case) or one of Envoy's request
    /// pseudo-headers.
    pub fn parse(name: &str) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(match name {
            ":method" => HeaderKey::Method,
            ":scheme" => HeaderKey::Scheme,
            ":authority" => HeaderKey::Authority,
            ":path" => HeaderKey::Path,
            ":status" => HeaderKey::Status,
            other => HeaderKey::Name(HeaderName::from_bytes(other.as_bytes())?),
        })
    }

    fn as_str(&self) -> &str {
        match self {
            HeaderKey::Name(n) => n.as_str(),
            HeaderKey::Method => ":method",
            HeaderKey::Scheme => ":scheme",
            HeaderKey::Authority => ":authority",
            HeaderKey::Path => ":path",
            HeaderKey::Status => ":status",
        }
    }
}

/// One entry of `headers` (or, inverted, of `withoutHeaders`).
#[derive(Debug, Clone)]
pub struct HeaderMatcher {
    key: HeaderKey,
    matcher: StringMatcher,
    invert: bool,
}

impl HeaderMatcher {
    /// A `headers` entry: the header must be present and match.
    pub fn new(
        name: &str,
        matcher: StringMatcher,
    ) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(HeaderMatcher {
            key: HeaderKey::parse(name)?,
            matcher,
            invert: false,
        })
    }

    /// A `withoutHeaders` entry: the block fails if the header matches. A missing header is
    /// an empty string for value matchers; [`StringMatcher::Present`] means "must be absent".
    pub fn without(
        name: &str,
        matcher: StringMatcher,
    ) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(HeaderMatcher {
            invert: true,
            ..Self::new(name, matcher)?
        })
    }

    /// The key.
    pub fn key(&self) -> &HeaderKey {
        &self.key
    }

    /// Whether this is a `withoutHeaders` entry.
    pub fn is_inverted(&self) -> bool {
        self.invert
    }

    /// Whether the request satisfies this entry.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let hit = match &self.key {
            HeaderKey::Name(name) => self.matcher.matches_values(&req.headers().get_all(name)),
            pseudo => pseudo_value(pseudo, req).map(|v| self.matcher.matches(v.as_bytes())),
        };
        match (hit, self.invert) {
            (Some(hit), invert) => hit != invert,
            (None, false) => false,
            (None, true) => match self.matcher {
                StringMatcher::Present => true,
                ref value => !value.matches(b""),
            },
        }
    }

    fn describe_failure(&self, req: &RequestView<'_>) -> String {
        let name = self.key.as_str();
        let field = if self.invert {
            "withoutHeaders"
        } else {
            "headers"
        };
        let actual = match &self.key {
            HeaderKey::Name(n) => {
                let values: Vec<String> = req
                    .headers()
                    .get_all(n)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            }
            pseudo => pseudo_value(pseudo, req).map(str::to_owned),
        };
        match (actual, self.invert) {
            (None, _) => format!(
                "{field}.{name}: {} but the header is absent",
                self.matcher.describe()
            ),
            (Some(v), false) => {
                format!(
                    "{field}.{name}: {} did not match {v:?}",
                    self.matcher.describe()
                )
            }
            (Some(v), true) => format!(
                "{field}.{name}: {} matched {v:?}, which excludes the request",
                self.matcher.describe()
            ),
        }
    }
}

fn pseudo_value<'a>(key: &HeaderKey, req: &RequestView<'a>) -> Option<&'a str> {
    match key {
        HeaderKey::Method => Some(req.method()),
        HeaderKey::Scheme => Some(req.scheme()),
        HeaderKey::Authority => Some(req.authority()),
        HeaderKey::Path => Some(req.path_and_query()),
        HeaderKey::Status | HeaderKey::Name(_) => None,
    }
}

/// One entry of `queryParams`.
#[derive(Debug, Clone)]
pub struct QueryMatcher {
    name: Box<str>,
    matcher: StringMatcher,
}

impl QueryMatcher {
    /// A query parameter matcher. Names are case-sensitive; values are raw (no
    /// percent-decoding); the first value is tested; [`StringMatcher::Present`] means the
    /// parameter only has to exist.
    pub fn new(name: &str, matcher: StringMatcher) -> Self {
        QueryMatcher {
            name: name.into(),
            matcher,
        }
    }

    /// Whether the request satisfies this entry.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        req.query_param(&self.name)
            .is_some_and(|v| self.matcher.matches(v.as_bytes()))
    }
}

/// One compiled `HTTPMatchRequest`: all conditions must hold (AND). The blocks of a route are
/// OR-ed by the route table.
///
/// Selectors (`sourceLabels`, `sourceNamespace`, `gateways`) are not here: the table drops
/// blocks whose selectors do not fit the client when it is compiled.
#[derive(Debug, Clone, Default)]
pub struct MatchBlock {
    name: Option<Box<str>>,
    uri: Option<UriMatcher>,
    scheme: Option<StringMatcher>,
    method: Option<StringMatcher>,
    authority: Option<StringMatcher>,
    headers: Vec<HeaderMatcher>,
    query: Vec<QueryMatcher>,
    port: Option<u16>,
}

impl MatchBlock {
    /// Set the block's `name` (label only).
    #[must_use]
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Set `uri`.
    #[must_use]
    pub fn with_uri(mut self, uri: UriMatcher) -> Self {
        self.uri = Some(uri);
        self
    }
    /// Set `scheme`.
    #[must_use]
    pub fn with_scheme(mut self, m: StringMatcher) -> Self {
        self.scheme = Some(m);
        self
    }
    /// Set `method` (case-sensitive).
    #[must_use]
    pub fn with_method(mut self, m: StringMatcher) -> Self {
        self.method = Some(m);
        self
    }
    /// Set `authority` (the value as sent, port included).
    #[must_use]
    pub fn with_authority(mut self, m: StringMatcher) -> Self {
        self.authority = Some(m);
        self
    }
    /// Add a `headers` or `withoutHeaders` entry.
    #[must_use]
    pub fn with_header(mut self, h: HeaderMatcher) -> Self {
        self.headers.push(h);
        self
    }
    /// Add a `queryParams` entry.
    #[must_use]
    pub fn with_query(mut self, q: QueryMatcher) -> Self {
        self.query.push(q);
        self
    }
    /// Set `port` (0 means any).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = (port != 0).then_some(port);
        self
    }

    /// The block's name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The `uri` prefix, if the block matches the URI by prefix (used by redirect
    /// `prefixRewrite` and rewrite `uri`).
    pub fn uri_prefix(&self) -> Option<&str> {
        match self.uri.as_ref().map(UriMatcher::matcher) {
            Some(StringMatcher::Prefix(p)) => Some(p),
            _ => None,
        }
    }

    /// The `uri` matcher, if any.
    pub fn uri(&self) -> Option<&UriMatcher> {
        self.uri.as_ref()
    }

    /// Whether Istio treats the block as a catch-all (matches every request): no conditions
    /// at all, or only a `/` prefix / `.*` regex URI. `method`, `scheme`, `authority` and
    /// `port` make a block specific.
    pub fn is_catch_all(&self) -> bool {
        self.uri.as_ref().is_none_or(UriMatcher::is_catch_all)
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.query.is_empty()
            && self.port.is_none()
    }

    /// How many `queryParams` entries the block tests.
    pub(crate) fn query_len(&self) -> usize {
        self.query.len()
    }

    /// Whether every condition holds for `req`.
    #[inline]
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.first_failure(req).is_none()
    }

    /// The first condition that fails, in evaluation order, or `None` if the block matches.
    pub fn first_failure(&self, req: &RequestView<'_>) -> Option<Failure<'_>> {
        if let Some(p) = self.port {
            if p != req.port() {
                return Some(Failure::Port(p));
            }
        }
        if let Some(m) = &self.method {
            if !m.matches(req.method().as_bytes()) {
                return Some(Failure::Method(m));
            }
        }
        if let Some(u) = &self.uri {
            if !u.matches(req.path()) {
                return Some(Failure::Uri(u));
            }
        }
        if let Some(m) = &self.authority {
            if !m.matches(req.authority().as_bytes()) {
                return Some(Failure::Authority(m));
            }
        }
        if let Some(m) = &self.scheme {
            if !m.matches(req.scheme().as_bytes()) {
                return Some(Failure::Scheme(m));
            }
        }
        if let Some(h) = self.headers.iter().find(|h| !h.matches(req)) {
            return Some(Failure::Header(h));
        }
        if let Some(q) = self.query.iter().find(|q| !q.matches(req)) {
            return Some(Failure::Query(q));
        }
        None
    }
}

/// Which condition of a [`MatchBlock`] failed; [`Failure::describe`] renders it for humans.
#[derive(Debug, Clone, Copy)]
pub enum Failure<'m> {
    /// `port` differed.
    Port(u16),
    /// `method` did not match.
    Method(&'m StringMatcher),
    /// `uri` did not match.
    Uri(&'m UriMatcher),
    /// `authority` did not match.
    Authority(&'m StringMatcher),
    /// `scheme` did not match.
    Scheme(&'m StringMatcher),
    /// A `headers` / `withoutHeaders` entry failed.
    Header(&'m HeaderMatcher),
    /// A `queryParams` entry failed.
    Query(&'m QueryMatcher),
}

impl Failure<'_> {
    /// A one-line explanation naming the field, the expectation and the actual value, e.g.
    /// `headers.end-user: exact "jason" did not match "bob"`.
    pub fn describe(&self, req: &RequestView<'_>) -> String {
        match self {
            Failure::Port(p) => format!("port: {p} did not match {}", req.port()),
            Failure::Method(m) => {
                format!("method: {} did not match {:?}", m.describe(), req.method())
            }
            Failure::Uri(u) => format!(
                "uri: {}{} did not match {:?}",
                u.matcher.describe(),
                if u.ignore_case {
                    " (ignoreUriCase)"
                } else {
                    ""
                },
                req.path()
            ),
            Failure::Authority(m) => {
                format!(
                    "authority: {} did not match {:?}",
                    m.describe(),
                    req.authority()
                )
            }
            Failure::Scheme(m) => {
                format!("scheme: {} did not match {:?}", m.describe(), req.scheme())
            }
            Failure::Header(h) => h.describe_failure(req),
            Failure::Query(q) => match req.query_param(&q.name) {
                None => format!(
                    "queryParams.{}: {} but the parameter is absent",
                    q.name,
                    q.matcher.describe()
                ),
                Some(v) => format!(
                    "queryParams.{}: {} did not match {v:?}",
                    q.name,
                    q.matcher.describe()
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn multi(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x", v.parse().unwrap());
        }
        h
    }

    fn header_hit(m: StringMatcher, values: &[&str]) -> bool {
        let h = multi(values);
        HeaderMatcher::new("x", m)
            .unwrap()
            .matches(&RequestView::new("GET", "a", "/", &h))
    }

    #[test]
    fn multi_valued_headers_are_joined_with_commas() {
        assert!(header_hit(StringMatcher::exact("a,b"), &["a", "b"]));
        assert!(!header_hit(StringMatcher::exact("a"), &["a", "b"]));
        assert!(!header_hit(StringMatcher::exact("a,b,c"), &["a", "b"]));
        assert!(!header_hit(StringMatcher::exact("a,bc"), &["a", "b"]));
        assert!(header_hit(StringMatcher::prefix("a,"), &["a", "b"]));
        assert!(header_hit(StringMatcher::prefix("a,b"), &["a", "bc"]));
        assert!(header_hit(StringMatcher::prefix("a"), &["ab", "c"]));
        assert!(!header_hit(StringMatcher::prefix("a,c"), &["a", "b"]));
        assert!(header_hit(
            StringMatcher::regex("a,b+").unwrap(),
            &["a", "bbb"]
        ));
        let long = "y".repeat(2000);
        assert!(header_hit(
            StringMatcher::regex("a,y+").unwrap(),
            &["a", long.as_str()]
        ));
        assert!(header_hit(StringMatcher::Present, &["a", "b"]));
    }

    #[test]
    fn pieces_eq_edge_cases() {
        let p = |v: &[&'static str]| v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        assert!(pieces_eq(p(&["ab", ",", "c"]).into_iter(), b"ab,c", true));
        assert!(pieces_eq(p(&["ab", ",", "c"]).into_iter(), b"ab,", false));
        assert!(pieces_eq(p(&["ab", ",", "c"]).into_iter(), b"", false));
        assert!(!pieces_eq(p(&["ab", ",", "c"]).into_iter(), b"", true));
    }
}
