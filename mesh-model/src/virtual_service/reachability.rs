//! V10: routes that can never be used because an earlier route or match block takes every request
//! they would match.

use std::collections::HashMap;

use crate::diag::{Cx, Path};
use crate::matching::StringMatch;
use crate::raw;

use super::http_match::HttpMatch;
use super::route::HttpRoute;

/// V10: routes after a catch-all, and match blocks an earlier block already covers.
pub(crate) fn validate_reachability(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    raw_http: &[Option<raw::HttpRoute>],
    http: &[HttpRoute],
) {
    // Only meaningful when every raw route validated (indexes line up).
    if raw_http.iter().any(Option::is_none) || raw_http.len() != http.len() {
        return;
    }
    let label = |i: usize| match http[i].name() {
        Some(n) => format!("#{i} ({n:?})"),
        None => format!("#{i}"),
    };
    let mut catch_all: Option<usize> = None;
    let mut earlier = Earlier::default();
    for (i, route) in http.iter().enumerate() {
        let rp = p.index(i);
        if let Some(j) = catch_all {
            cx.warn(&rp, format!("virtualService rule {} not used (route without matches defined before: rule {}); only the last rule can have no matches", label(i), label(j)));
            continue;
        }
        // Istio counts only identical blocks towards "all matches used"; a block covered by an
        // earlier prefix is reported on its own.
        let mut duplicates = 0;
        let keys: Vec<String> = route.matches.iter().map(rest_key).collect();
        for (k, m) in route.matches.iter().enumerate() {
            if let Some((j, l)) = earlier.first_covering(&keys[k], m) {
                debug_assert!(covers(&http[j].matches[l], m));
                if http[j].matches[l] == *m {
                    duplicates += 1;
                }
                cx.warn(&rp.key("match").index(k), format!("match #{k} of rule {} is not used (duplicate/overlapping match in rule {} match #{l})", label(i), label(j)));
            }
        }
        for (k, (m, key)) in route.matches.iter().zip(keys).enumerate() {
            earlier.add(key, m, (i, k));
        }
        if duplicates > 0 && duplicates == route.matches.len() {
            cx.warn(
                &rp,
                format!(
                    "virtualService rule {} not used (all matches used by prior rules)",
                    label(i)
                ),
            );
        }
        if route.matches.is_empty() && catch_all.is_none() {
            catch_all = Some(i);
        }
    }
}

/// The match blocks of earlier routes, indexed so that finding the first one that covers a
/// block ([`covers`]) costs the length of its uri, not the number of earlier blocks.
#[derive(Debug, Default)]
struct Earlier {
    /// By everything but the uri (blocks that differ there never cover each other).
    groups: HashMap<String, Group>,
}

/// Earlier blocks with the same conditions besides the uri; positions are (route, block).
#[derive(Debug, Default)]
struct Group {
    /// The first block with no uri condition: it covers every later block of the group.
    no_uri: Option<(usize, usize)>,
    /// The first block with each uri condition.
    same_uri: HashMap<(u8, String), (usize, usize)>,
    /// The uri prefixes, for prefix and exact conditions they cover.
    prefixes: PrefixTrie,
}

impl Earlier {
    fn first_covering(&self, key: &str, m: &HttpMatch) -> Option<(usize, usize)> {
        let g = self.groups.get(key)?;
        let Some(uri) = &m.uri else {
            return g.no_uri;
        };
        let by_prefix = match uri {
            StringMatch::Prefix(b) | StringMatch::Exact(b) => g.prefixes.first_prefix_of(b),
            _ => None,
        };
        [g.no_uri, g.same_uri.get(&uri_key(uri)).copied(), by_prefix]
            .into_iter()
            .flatten()
            .min()
    }

    fn add(&mut self, key: String, m: &HttpMatch, at: (usize, usize)) {
        let g = self.groups.entry(key).or_default();
        match &m.uri {
            None => {
                g.no_uri.get_or_insert(at);
            }
            Some(uri) => {
                g.same_uri.entry(uri_key(uri)).or_insert(at);
                if let StringMatch::Prefix(a) = uri {
                    g.prefixes.insert(a, at);
                }
            }
        }
    }
}

/// Everything [`covers`] compares for equality, as one string.
fn rest_key(m: &HttpMatch) -> String {
    format!(
        "{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}",
        m.scheme,
        m.method,
        m.authority,
        m.headers,
        m.without_headers,
        m.query_params,
        m.port,
        m.ignore_uri_case,
        m.source_labels,
        m.source_namespace,
        m.gateways
    )
}

fn uri_key(m: &StringMatch) -> (u8, String) {
    match m {
        StringMatch::Exact(s) => (0, s.clone()),
        StringMatch::Prefix(s) => (1, s.clone()),
        StringMatch::Regex(r) => (2, r.as_str().to_owned()),
        StringMatch::Present => (3, String::new()),
    }
}

/// Uri prefixes byte by byte, each node holding the first block whose prefix ends there.
#[derive(Debug)]
struct PrefixTrie {
    edges: HashMap<(usize, u8), usize>,
    first: Vec<Option<(usize, usize)>>,
}

impl Default for PrefixTrie {
    fn default() -> Self {
        PrefixTrie {
            edges: HashMap::new(),
            first: vec![None],
        }
    }
}

impl PrefixTrie {
    fn insert(&mut self, prefix: &str, at: (usize, usize)) {
        let mut node = 0;
        for &b in prefix.as_bytes() {
            let next = self.first.len();
            node = *self.edges.entry((node, b)).or_insert(next);
            if node == next {
                self.first.push(None);
            }
        }
        self.first[node].get_or_insert(at);
    }

    /// The first block whose prefix `s` starts with.
    fn first_prefix_of(&self, s: &str) -> Option<(usize, usize)> {
        let mut best = self.first[0];
        let mut node = 0;
        for &b in s.as_bytes() {
            match self.edges.get(&(node, b)) {
                Some(&n) => node = n,
                None => break,
            }
            best = match (best, self.first[node]) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        best
    }
}

/// Whether every request `later` matches is already matched by `earlier`.
fn covers(earlier: &HttpMatch, later: &HttpMatch) -> bool {
    let same_rest = earlier.scheme == later.scheme
        && earlier.method == later.method
        && earlier.authority == later.authority
        && earlier.headers == later.headers
        && earlier.without_headers == later.without_headers
        && earlier.query_params == later.query_params
        && earlier.port == later.port
        && earlier.ignore_uri_case == later.ignore_uri_case
        && earlier.source_labels == later.source_labels
        && earlier.source_namespace == later.source_namespace
        && earlier.gateways == later.gateways;
    if !same_rest {
        return false;
    }
    match (&earlier.uri, &later.uri) {
        (None, _) => true,
        (Some(a), Some(b)) if a == b => true,
        (Some(StringMatch::Prefix(a)), Some(StringMatch::Prefix(b) | StringMatch::Exact(b))) => {
            b.starts_with(a.as_str())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(uri: Option<StringMatch>) -> HttpMatch {
        HttpMatch {
            uri,
            ..HttpMatch::default()
        }
    }

    /// The index finds what a scan of every earlier block with [`covers`] finds.
    #[test]
    fn the_index_agrees_with_a_scan() {
        let uris = [
            None,
            Some(StringMatch::Prefix(String::new())),
            Some(StringMatch::Prefix("/a".into())),
            Some(StringMatch::Prefix("/ab".into())),
            Some(StringMatch::Exact("/a".into())),
            Some(StringMatch::Exact("/abc".into())),
            Some(StringMatch::Prefix("/b".into())),
            Some(StringMatch::Present),
            Some(StringMatch::Regex(crate::Regex::new("/a.*").unwrap())),
        ];
        let methods = [None, Some(StringMatch::Exact("GET".into()))];
        let mut all = Vec::new();
        for (n, u) in uris.iter().enumerate() {
            for (o, m) in methods.iter().enumerate() {
                let mut b = block(u.clone());
                b.method = m.clone();
                all.push((n * 2 + o, b));
            }
        }
        // Every order of a few blocks: rotate the list and add the blocks one at a time.
        for shift in 0..all.len() {
            let mut order = all.clone();
            order.rotate_left(shift);
            let mut index = Earlier::default();
            let mut seen: Vec<(usize, &HttpMatch)> = Vec::new();
            for (i, (_, m)) in order.iter().enumerate() {
                let scan = seen
                    .iter()
                    .find(|(_, e)| covers(e, m))
                    .map(|(j, _)| (*j, 0));
                assert_eq!(index.first_covering(&rest_key(m), m), scan, "{m:?}");
                index.add(rest_key(m), m, (i, 0));
                seen.push((i, m));
            }
        }
    }
}
