//! [`RequestView`]: the parts of an HTTP request that routing reads, borrowed, split once.

use std::net::IpAddr;

use http::{header, HeaderMap};

/// A borrowed, read-only view of a request: everything [`RouteTable::route`] and the load
/// balancers look at, and nothing else.
///
/// Building a view does not allocate: every field borrows from the request (or from strings the
/// caller owns). The path and the query string are split once here, so matchers never search
/// for `?` again.
///
/// The *destination port* is the service port being called. It defaults to the port written in
/// the authority, or to the scheme's default port (443 for `https`, 80 otherwise); a caller that
/// knows better (for example a client that resolved the port itself) sets it with
/// [`RequestView::with_port`]. The *source IP* is only used by consistent hashing with
/// `useSourceIp`; set it with [`RequestView::with_source_ip`].
///
/// ```
/// use mesh_routing::RequestView;
///
/// let req = http::Request::get("http://reviews:9080/api/v1?user=jason&debug")
///     .header("end-user", "jason")
///     .body(())
///     .unwrap();
/// let view = RequestView::from_request(&req);
/// assert_eq!(view.authority(), "reviews:9080");
/// assert_eq!(view.host(), "reviews");
/// assert_eq!(view.port(), 9080);
/// assert_eq!(view.path(), "/api/v1");
/// assert_eq!(view.query(), Some("user=jason&debug"));
/// assert_eq!(view.query_param("user"), Some("jason"));
/// assert_eq!(view.query_param("debug"), Some(""));
/// ```
///
/// [`RouteTable::route`]: crate::RouteTable::route
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    method: &'a str,
    scheme: &'a str,
    authority: &'a str,
    /// The authority without its port (split once, when the view is built).
    host: &'a str,
    /// The authority's port, if it has one.
    authority_port: Option<u16>,
    target: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    port: u16,
    source_ip: Option<IpAddr>,
    /// The query's parameters, indexed once when a virtual host tests many of them.
    query_index: Option<&'a QueryIndex<'a>>,
}

impl<'a> RequestView<'a> {
    /// A view from its parts. `authority` is the `Host` the request names (any `user@`
    /// before it is dropped). `path_and_query` is the request target as sent (`/a/b?x=1`);
    /// it is split at the first `?`. The scheme is `http` and the port comes from the
    /// authority (80 when it has none); change them with [`with_scheme`](Self::with_scheme) and
    /// [`with_port`](Self::with_port).
    pub fn new(
        method: &'a str,
        authority: &'a str,
        path_and_query: &'a str,
        headers: &'a HeaderMap,
    ) -> Self {
        let (path, query) = split_path(path_and_query);
        let authority = without_userinfo(authority);
        let (host, authority_port) = split_host_port(authority);
        RequestView {
            method,
            scheme: "http",
            authority,
            host,
            authority_port,
            target: path_and_query,
            path,
            query,
            headers,
            port: authority_port.unwrap_or(80),
            source_ip: None,
            query_index: None,
        }
    }

    /// A view of an [`http::Request`].
    ///
    /// The authority routes are chosen by is the `Host` header when the request has one, else
    /// the URI's authority (absolute form, HTTP/2's `:authority`), as Envoy routes by
    /// `Host`/`:authority`; userinfo (`user:pw@`) is never part of it. The port the request is
    /// for is the URI's (the connection's), else the `Host` header's, else the scheme's
    /// default. The scheme is the URI's or else `http`.
    pub fn from_request<B>(req: &'a http::Request<B>) -> Self {
        Self::from_uri(req.method(), req.uri(), req.headers())
    }

    /// A view of [`http::request::Parts`], as [`from_request`](Self::from_request).
    pub fn from_parts(parts: &'a http::request::Parts) -> Self {
        Self::from_uri(&parts.method, &parts.uri, &parts.headers)
    }

    fn from_uri(method: &'a http::Method, uri: &'a http::Uri, headers: &'a HeaderMap) -> Self {
        let scheme = uri.scheme_str().unwrap_or("http");
        let uri_authority = uri.authority().map(|a| without_userinfo(a.as_str()));
        // Envoy routes by `Host` (`:authority`); the URI's authority only says where the
        // connection goes, which is the port the request is for.
        let host_header = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = match host_header {
            Some(h) => without_userinfo(h),
            None => uri_authority.unwrap_or(""),
        };
        let (host, authority_port) = split_host_port(authority);
        let port = match (uri_authority, host_header) {
            // Without a `Host` header the authority is the URI's: split once.
            (Some(_), None) => authority_port,
            (Some(a), Some(_)) => split_host_port(a).1,
            (None, _) => authority_port,
        };
        RequestView {
            method: method.as_str(),
            scheme,
            authority,
            host,
            authority_port,
            target: uri.path_and_query().map_or("/", |pq| pq.as_str()),
            path: uri.path(),
            query: uri.query(),
            headers,
            port: port.unwrap_or_else(|| default_port(scheme)),
            source_ip: None,
            query_index: None,
        }
    }

    /// Replace the scheme. If the port was derived from the scheme (no port in the authority),
    /// it follows the new scheme.
    #[must_use]
    pub fn with_scheme(mut self, scheme: &'a str) -> Self {
        self.scheme = scheme;
        if self.authority_port.is_none() {
            self.port = default_port(scheme);
        }
        self
    }

    /// Set the destination (service) port the client is calling.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Set the client's source IP, used by consistent hashing with `useSourceIp`.
    #[must_use]
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// The method, e.g. `GET` (case as sent).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The scheme, e.g. `http`.
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// The authority as sent, including any `:port`.
    pub fn authority(&self) -> &'a str {
        self.authority
    }

    /// The authority without its `:port` (IPv6 literals keep their brackets).
    pub fn host(&self) -> &'a str {
        self.host
    }

    /// The port written in the authority, if any (see [`port`](Self::port) for the port the
    /// request goes to).
    pub fn authority_port(&self) -> Option<u16> {
        self.authority_port
    }

    /// The path, without the query string.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The request target as sent: path and query string (Envoy's `:path`).
    pub fn path_and_query(&self) -> &'a str {
        self.target
    }

    /// The raw query string after `?` (not percent-decoded), if there was a `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The destination (service) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client's source IP, if the caller set one.
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source_ip
    }

    /// The first value of query parameter `name`, parsed the way Envoy does: the raw query
    /// string is split on `&`, each piece at its first `=`; no percent-decoding; names are
    /// case-sensitive. `?key` and `?key=` both give `Some("")`.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        if let Some(index) = self.query_index {
            return index.get(name);
        }
        let query = self.query?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// The value of cookie `name` from the `Cookie` header(s), with surrounding double quotes
    /// removed, as Envoy's cookie hash policy reads it.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.trim_start().split_once('=')?;
                if k != name {
                    return None;
                }
                let v = v.trim_end();
                Some(
                    v.strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v),
                )
            })
    }
}

/// A request's query parameters sorted by name, first occurrence first: with it, each
/// `queryParams` test is a binary search instead of a scan of the whole query.
#[derive(Debug)]
pub(crate) struct QueryIndex<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> QueryIndex<'a> {
    /// Splits `query` as [`RequestView::query_param`] does: one pass, one allocation, a stable
    /// sort (so the first value of a repeated name stays first).
    pub(crate) fn new(query: &'a str) -> Self {
        let mut pairs: Vec<(&str, &str)> = query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        QueryIndex { pairs }
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        let at = self.pairs.partition_point(|(k, _)| *k < name);
        self.pairs
            .get(at)
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

impl<'a> RequestView<'a> {
    /// This view, answering [`query_param`](Self::query_param) from `index`.
    pub(crate) fn with_query_index(mut self, index: &'a QueryIndex<'a>) -> Self {
        self.query_index = Some(index);
        self
    }
}

/// `user:pw@host:80` → `host:80`: credentials are never part of the authority that routes or
/// of the `Host` sent upstream.
pub fn without_userinfo(authority: &str) -> &str {
    // A byte scan: authorities are short, and `rsplit_once` costs a generic `memrchr` call
    // (about 100 instructions) on every request.
    match authority.bytes().rposition(|b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    }
}

/// Split `/a/b?x=1` into (`/a/b`, `Some("x=1")`). A fragment, if any, is dropped.
fn split_path(path_and_query: &str) -> (&str, Option<&str>) {
    let without_fragment = path_and_query
        .split_once('#')
        .map_or(path_and_query, |(p, _)| p);
    match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (without_fragment, None),
    }
}

/// Split an authority into host and port. `[::1]:80` gives (`[::1]`, 80); a bare IPv6
/// address without brackets is returned whole; a port that is not a number up to 65535 is
/// not a port. One pass from the end, no allocation (it runs for every request).
pub(crate) fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    let b = authority.as_bytes();
    let mut i = b.len();
    let mut port: u32 = 0;
    let mut scale: u32 = 1;
    while i > 0 && b[i - 1].is_ascii_digit() && b.len() - i < 5 {
        port += u32::from(b[i - 1] - b'0') * scale;
        scale *= 10;
        i -= 1;
    }
    let digits = b.len() - i;
    if digits == 0 || i == 0 || b[i - 1] != b':' || port > 65535 {
        return (authority, None);
    }
    let host = &authority[..i - 1];
    let bracketed = host.starts_with('[');
    if bracketed && !host.ends_with(']') {
        return (authority, None);
    }
    if !bracketed && host.contains(':') {
        // An IPv6 literal without brackets: the last group is not a port.
        return (authority, None);
    }
    (host, Some(port as u16))
}

/// The port a scheme implies: 443 for `https`, else 80.
fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_authority_forms() {
        assert_eq!(split_host_port("a:80"), ("a", Some(80)));
        assert_eq!(split_host_port("a"), ("a", None));
        assert_eq!(split_host_port("[::1]:8080"), ("[::1]", Some(8080)));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("a:notaport"), ("a:notaport", None));
    }

    #[test]
    fn path_split_once() {
        assert_eq!(split_path("/a?b=c?d"), ("/a", Some("b=c?d")));
        assert_eq!(split_path("/a"), ("/a", None));
        assert_eq!(split_path("/a?"), ("/a", Some("")));
        assert_eq!(split_path("/a#frag"), ("/a", None));
    }

    #[test]
    fn host_header_and_default_port() {
        let req = http::Request::get("/x")
            .header("host", "api")
            .body(())
            .unwrap();
        let v = RequestView::from_request(&req);
        assert_eq!(v.authority(), "api");
        assert_eq!(v.port(), 80);
        assert_eq!(v.with_scheme("https").port(), 443);
        assert_eq!(v.with_port(8080).port(), 8080);
    }

    #[test]
    fn the_host_header_names_the_authority_and_the_uri_the_port() {
        let req = http::Request::get("http://user:pw@10.0.0.9:9080/x")
            .header("host", "reviews")
            .body(())
            .unwrap();
        let v = RequestView::from_request(&req);
        assert_eq!(
            (v.authority(), v.host(), v.port()),
            ("reviews", "reviews", 9080)
        );
        let req = http::Request::get("http://user:pw@reviews:9080/x")
            .body(())
            .unwrap();
        let v = RequestView::from_request(&req);
        assert_eq!(
            (v.authority(), v.host(), v.port()),
            ("reviews:9080", "reviews", 9080)
        );
        let h = HeaderMap::new();
        let v = RequestView::new("GET", "a@b@reviews:81", "/", &h);
        assert_eq!((v.authority(), v.port()), ("reviews:81", 81));
    }

    #[test]
    fn the_query_index_answers_as_the_scan() {
        let h = HeaderMap::new();
        let target = "/p?b=2&a=1&a=3&c&d=&=e&b=4";
        let plain = RequestView::new("GET", "x", target, &h);
        let index = QueryIndex::new(plain.query().unwrap());
        let indexed = plain.with_query_index(&index);
        for name in ["a", "b", "c", "d", "", "e", "A"] {
            assert_eq!(indexed.query_param(name), plain.query_param(name), "{name}");
        }
        assert_eq!(indexed.query_param("a"), Some("1"));
        assert_eq!(indexed.query_param("b"), Some("2"));
    }

    #[test]
    fn cookies_and_query() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; user=\"jason\"".parse().unwrap());
        h.append(header::COOKIE, "b=2".parse().unwrap());
        let v = RequestView::new("GET", "x", "/p?a=1&a=2&b&c=", &h);
        assert_eq!(v.cookie("user"), Some("jason"));
        assert_eq!(v.cookie("b"), Some("2"));
        assert_eq!(v.cookie("c"), None);
        assert_eq!(v.query_param("a"), Some("1"));
        assert_eq!(v.query_param("b"), Some(""));
        assert_eq!(v.query_param("c"), Some(""));
        assert_eq!(v.query_param("A"), None);
    }
}
