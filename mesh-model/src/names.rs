//! Name rules: DNS names with wildcards, DNS-1123 labels, Kubernetes labels, header names and
//! values, status codes. Each function is a predicate or returns the reason for refusal.

use std::net::IpAddr;

/// Istio's `ValidateWildcardDomain`: ≤ 255 chars, labels ≤ 63 of `[A-Za-z0-9-]` without leading
/// or trailing `-`, a `*` only as (a prefix of) the first label, top-level label not all digits,
/// optional trailing dot.
pub(crate) fn wildcard_domain_problem(host: &str) -> Option<&'static str> {
    if host.is_empty() {
        return Some("the host name is empty");
    }
    if host.len() > 255 {
        return Some("the host name is longer than 255 characters");
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Some("the host name is only '.': name a host");
    }
    if name == "*" {
        return None;
    }
    let (first, rest) = match name.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    let starred = first.starts_with('*');
    let first = match first.strip_prefix('*') {
        Some(tail) => {
            // `*foo` and `*-foo` behave as suffix matches; the remainder must be label characters.
            if tail.is_empty() {
                rest?;
                ""
            } else {
                tail
            }
        }
        None if first.is_empty() => {
            return Some("the first label is empty (the name starts with '.'): remove the dot");
        }
        None => first,
    };
    if !first.is_empty() && !is_label_chars(first, starred) {
        return Some("a label is not made of letters, digits and '-' (at most 63, no leading or trailing '-'), or a '*' is not at the start of the first label");
    }
    if let Some(rest) = rest {
        let labels: Vec<&str> = rest.split('.').collect();
        for l in &labels {
            if !is_label_chars(l, false) {
                return Some("a label is not made of letters, digits and '-' (at most 63, no leading or trailing '-'), or a '*' is not at the start of the first label");
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Some("the top-level label is all digits");
        }
    } else if !first.is_empty()
        && first.bytes().all(|b| b.is_ascii_digit())
        && !name.starts_with('*')
    {
        return Some("the top-level label is all digits");
    }
    None
}

fn is_label_chars(l: &str, allow_leading_dash: bool) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && (allow_leading_dash || !l.starts_with('-'))
        && !l.ends_with('-')
}

/// An IP address, v4 or v6.
pub(crate) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// An IP address or a CIDR block (`10.0.0.0/16`, `2001:db8::/32`), as Istio's `ValidateIPSubnet`.
pub(crate) fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => is_ip(s),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32 && !bits.starts_with('+'),
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128 && !bits.starts_with('+'),
            _ => false,
        },
    }
}

/// DNS-1123 label as Istio's regex has it: `[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?`, ≤ 63.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !s.is_empty()
        && s.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A Kubernetes label key: optional DNS-subdomain prefix and `/`, then a name.
pub(crate) fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty()
            || p.len() > 253
            || !p
                .split('.')
                .all(|l| is_dns1123_label(l) && l == l.to_ascii_lowercase())
        {
            return Some(format!(
                "label key {key:?} has an invalid prefix: it must be a lower-case DNS subdomain"
            ));
        }
    }
    if !is_label_name(name) {
        return Some(format!(
            "label key {key:?} is invalid: at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    None
}

/// A Kubernetes label value: empty, or the same rule as a label name.
pub(crate) fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() || is_label_name(value) {
        None
    } else {
        Some(format!(
            "label value {value:?} is invalid: at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

const PSEUDO_HEADERS: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":status"];

/// Header names usable in a match: RFC 7230 token characters, or a pseudo-header.
pub(crate) fn is_match_header_name(name: &str) -> bool {
    PSEUDO_HEADERS.contains(&name) || is_token(name)
}

/// RFC 7230 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Istio's header value rule: no control characters but TAB, and `%` only as `%%` or as the start
/// of an Envoy `%VAR%` / `%VAR(args)%` expression.
pub(crate) fn header_value_problem(value: &str) -> Option<String> {
    if let Some(c) = value
        .chars()
        .find(|&c| (c.is_ascii_control() && c != '\t') || c == '\u{7f}')
    {
        return Some(format!(
            "header value contains the control character {c:?}; only TAB is allowed"
        ));
    }
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        // %VAR% or %VAR(args)%
        let start = i + 1;
        let mut j = start;
        while j < b.len() && (b[j].is_ascii_uppercase() || b[j].is_ascii_digit() || b[j] == b'_') {
            j += 1;
        }
        if j == start {
            return Some(format!(
                "header value {value:?} has a '%' that starts no %VARIABLE%; write a literal percent sign as %%"
            ));
        }
        if b.get(j) == Some(&b'(') {
            match b[j..].iter().position(|&c| c == b')') {
                Some(p) => j += p + 1,
                None => {
                    return Some(format!("header value {value:?} has an unclosed '(' in a %VARIABLE(...)% expression"));
                }
            }
        }
        if b.get(j) != Some(&b'%') {
            return Some(format!(
                "header value {value:?} has a '%' that starts no %VARIABLE%; write a literal percent sign as %%"
            ));
        }
        i = j + 1;
    }
    None
}

/// Whether two host patterns overlap (Istio's `Name.Matches` in either direction).
pub(crate) fn hosts_overlap(a: &str, b: &str) -> bool {
    host_matches(a, b) || host_matches(b, a)
}

/// Whether host pattern `p` (`*`, `*suffix` such as `*.example.com`, or an exact name) covers
/// host `h`, which may be a pattern too (`*.com` covers `*.example.com`: every name the
/// latter stands for). Case-insensitive, without allocating. The workspace's one host match:
/// the DestinationRule lookup, the overlap checks and mesh-kube's `Sidecar` egress hosts use
/// it.
///
/// ```
/// use mesh_model::host_matches;
/// assert!(host_matches("*.example.com", "api.example.com"));
/// assert!(host_matches("*.com", "*.example.com"));
/// assert!(host_matches("*", "anything"));
/// assert!(host_matches("API.example.com", "api.example.com"));
/// assert!(!host_matches("*.example.com", "example.com"));
/// assert!(!host_matches("api.example.com", "*.example.com"));
/// ```
pub fn host_matches(p: &str, h: &str) -> bool {
    if p == "*" || p.eq_ignore_ascii_case(h) {
        return true;
    }
    let Some(suffix) = p.strip_prefix('*') else {
        return false;
    };
    // `*S` covers a name ending in `S` and longer than it, and a pattern `*T` whose `T` ends
    // in `S` (every name `*T` stands for ends in `S`).
    let hs = h.strip_prefix('*').unwrap_or(h);
    let ends = hs.len() >= suffix.len()
        && hs.as_bytes()[hs.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes());
    ends && (hs.len() > suffix.len() || h.starts_with('*'))
}

/// For each host, the first earlier one it overlaps ([`hosts_overlap`]), found in time linear in
/// the total length of the hosts (a scan of every pair is quadratic: 100,000 hosts would take
/// minutes).
///
/// Exact duplicates and `*` are looked up directly. A wildcard `*S` covers a host whose name
/// (without its own leading `*`) ends in `S` and is longer: each host's suffixes are looked up
/// among the earlier wildcards' `S`, and each wildcard's `S` among the earlier hosts' suffixes,
/// by a polynomial hash with a base chosen at random per call. Every candidate is checked by
/// comparing the strings, so an overlap is never reported falsely; a hash collision (about one
/// chance in 2^50 per pair of hosts) could hide one.
pub(crate) fn first_overlaps(hosts: &[String]) -> Vec<Option<usize>> {
    use std::collections::{HashMap, HashSet};

    let lower: Vec<String> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    let hash = SuffixHash::new();
    let stripped = |h: &'_ str| -> usize { usize::from(h.starts_with('*')) };
    // The `S` of every wildcard `*S`: only these suffixes of other hosts are worth indexing.
    let wild: HashSet<(u64, usize)> = lower
        .iter()
        .filter_map(|h| h.strip_prefix('*'))
        .filter(|s| !s.is_empty())
        .map(|s| (hash.of(s.as_bytes()), s.len()))
        .collect();
    let mut exact: HashMap<&str, usize> = HashMap::new();
    let mut first_star: Option<usize> = None;
    // Earlier wildcards by their `S`.
    let mut wild_first: HashMap<(u64, usize), usize> = HashMap::new();
    // Proper suffixes of earlier hosts that are some wildcard's `S`.
    let mut suffix_first: HashMap<(u64, usize), usize> = HashMap::new();
    let mut out = Vec::with_capacity(lower.len());
    for (i, h) in lower.iter().enumerate() {
        let hs = &h[stripped(h)..];
        let suffixes = hash.suffixes(hs.as_bytes());
        let mut candidates: Vec<usize> = Vec::new();
        if h == "*" && i > 0 {
            candidates.push(0);
        }
        candidates.extend(first_star);
        candidates.extend(exact.get(h.as_str()).copied());
        // An earlier `*S` with `hs` ending in `S`, `hs` longer.
        for (k, s) in suffixes.iter().enumerate().take(hs.len()).skip(1) {
            if let Some(&j) = wild_first.get(&(*s, hs.len() - k)) {
                candidates.push(j);
            }
        }
        // This host is `*S`: an earlier host whose name ends in `S` and is longer.
        if h.starts_with('*') && !hs.is_empty() {
            if let Some(&j) = suffix_first.get(&(suffixes[0], hs.len())) {
                candidates.push(j);
            }
        }
        candidates.sort_unstable();
        out.push(
            candidates
                .into_iter()
                .find(|&j| hosts_overlap(&lower[j], h)),
        );
        exact.entry(h.as_str()).or_insert(i);
        if h == "*" {
            first_star.get_or_insert(i);
        } else if let Some(s) = h.strip_prefix('*') {
            wild_first.entry((suffixes[0], s.len())).or_insert(i);
        }
        for (k, s) in suffixes.iter().enumerate().take(hs.len()).skip(1) {
            let key = (*s, hs.len() - k);
            if wild.contains(&key) {
                suffix_first.entry(key).or_insert(i);
            }
        }
    }
    out
}

/// Polynomial hashes modulo 2^61 - 1 of a string's suffixes, with a random base, so that every
/// suffix of a string can be looked up in a map in constant time.
#[derive(Debug)]
pub(crate) struct SuffixHash {
    base: u64,
}

impl SuffixHash {
    const P: u64 = (1 << 61) - 1;

    pub(crate) fn new() -> Self {
        use std::hash::BuildHasher;
        let r = std::collections::hash_map::RandomState::new().hash_one(0x6d65_7368_u64);
        SuffixHash {
            base: 256 + r % (Self::P - 512),
        }
    }

    fn mul_add(&self, h: u64, b: u8) -> u64 {
        ((u128::from(h) * u128::from(self.base) + u128::from(b)) % u128::from(Self::P)) as u64
    }

    /// The hash of `s`, equal to `suffixes(t)[k]` when `s == t[k..]`.
    pub(crate) fn of(&self, s: &[u8]) -> u64 {
        s.iter().rev().fold(0, |h, &b| self.mul_add(h, b))
    }

    /// The hash of every suffix `s[k..]`, indexed by `k`.
    pub(crate) fn suffixes(&self, s: &[u8]) -> Vec<u64> {
        let mut out = vec![0; s.len() + 1];
        for k in (0..s.len()).rev() {
            out[k] = self.mul_add(out[k + 1], s[k]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_or_cidr() {
        for ok in [
            "10.0.0.1",
            "10.0.0.0/16",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::1",
            "10.1.2.3/32",
        ] {
            assert!(is_ip_or_cidr(ok), "{ok}");
        }
        for bad in [
            "300.1.1.1",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "/8",
            "a.b",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(!is_ip_or_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn wildcard_domains() {
        for ok in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "*.foo.com",
            "*",
            "*foo.com",
            "a-b.c",
            "foo.com.",
            "*.",
        ] {
            assert_eq!(wildcard_domain_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "foo.*.com",
            "-a.com",
            "a-.com",
            "a_b.com",
            "foo.123",
            &"a".repeat(64),
            "a..b",
            ".",
            ".reviews",
            "..",
        ] {
            assert!(wildcard_domain_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn labels_and_headers() {
        assert!(label_key_problem("app.kubernetes.io/name").is_none());
        assert!(label_key_problem("-bad").is_some());
        assert!(label_value_problem("").is_none());
        assert!(label_value_problem("v1.2_x").is_none());
        assert!(label_value_problem("bad value").is_some());
        assert!(
            is_match_header_name(":authority")
                && is_match_header_name("x-user")
                && !is_match_header_name("x user")
                && !is_match_header_name("@foo")
        );
        assert!(header_value_problem("a%%b").is_none());
        assert!(header_value_problem("%HOSTNAME%").is_none());
        assert!(header_value_problem("%REQ(x-foo)%").is_none());
        assert!(header_value_problem("abc%123").is_some());
        assert!(header_value_problem("trailing%").is_some());
        assert!(header_value_problem("%START_TIME%%").is_some());
        assert!(header_value_problem("bad\nvalue").is_some());
        assert!(header_value_problem("tab\tok").is_none());
    }

    #[test]
    fn hosts() {
        assert!(hosts_overlap("*.foo.com", "bar.foo.com"));
        assert!(hosts_overlap("*.com", "*.foo.com"));
        assert!(hosts_overlap("a.com", "A.com"));
        assert!(!hosts_overlap("*.foo.com", "foo.com"));
        assert!(!hosts_overlap("a.com", "b.com"));
    }

    proptest::proptest! {
        /// The index finds the same first overlapping host as a scan of every earlier one.
        #[test]
        fn first_overlaps_agree_with_a_scan(
            hosts in proptest::collection::vec("[*]?[aAb.]{0,5}", 0..24),
        ) {
            let fast = first_overlaps(&hosts);
            for (i, h) in hosts.iter().enumerate() {
                let slow = hosts[..i].iter().position(|e| hosts_overlap(e, h));
                proptest::prop_assert_eq!(fast[i], slow, "{:?} at {}", hosts, i);
            }
        }
    }
}
