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

/// Whether pattern `p` (possibly `*.suffix` or `*`) covers host `h` (which may be a pattern too).
pub(crate) fn host_matches(p: &str, h: &str) -> bool {
    let p = p.to_ascii_lowercase();
    let h = h.to_ascii_lowercase();
    if p == h || p == "*" {
        return true;
    }
    if let Some(suffix) = p.strip_prefix('*') {
        let hs = h.strip_prefix('*').unwrap_or(&h);
        return hs.len() > suffix.len() && hs.ends_with(suffix)
            || (h.starts_with('*') && hs.ends_with(suffix) && hs.len() >= suffix.len());
    }
    false
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
}
