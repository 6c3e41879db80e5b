//! [`HostIndex`]: from a request's authority to the virtual host that serves it.
//!
//! Envoy's virtual-host selection order, case-insensitively: an exact name, then the longest
//! suffix wildcard (`*.foo.com`, `*-bar.foo.com`), then `*`. The port in the authority is
//! tried first as written (`name:port` entries) and then stripped.
//!
//! ```
//! use mesh_routing::host::HostIndex;
//!
//! let mut index = HostIndex::new();
//! index.insert("reviews.default.svc.cluster.local", 1);
//! index.insert("*.example.com", 2);
//! index.insert("*.api.example.com", 3);
//! index.insert("*", 4);
//! assert_eq!(index.lookup("Reviews.default.svc.cluster.local:9080"), Some(&1));
//! assert_eq!(index.lookup("a.api.example.com"), Some(&3));
//! assert_eq!(index.lookup("a.example.com"), Some(&2));
//! assert_eq!(index.lookup("example.com"), Some(&4));
//! ```

use rustc_hash::FxHashMap;

use crate::request::split_host_port;

/// Longest authority the index lowercases on the stack; longer ones cannot be valid DNS names
/// (255 characters plus `:65535`) and never match an exact entry.
const MAX_AUTHORITY: usize = 262;

/// A case-insensitive host-name index with Envoy's precedence (exact, longest suffix wildcard,
/// `*`). Lookups do not allocate.
#[derive(Debug, Clone)]
pub struct HostIndex<V> {
    /// Exact names. FxHash: the keys come from config, and a lookup with an attacker-chosen
    /// authority cannot make a fixed table slower than its worst bucket.
    exact: FxHashMap<Box<str>, V>,
    /// Whether any exact name carries a `:port` (otherwise lookups skip the full authority).
    port_entries: bool,
    /// Suffixes (the pattern without its leading `*`), longest first; ties in insertion order.
    wildcards: Vec<(Box<str>, V)>,
    any: Option<V>,
}

impl<V> Default for HostIndex<V> {
    fn default() -> Self {
        HostIndex {
            exact: FxHashMap::default(),
            port_entries: false,
            wildcards: Vec::new(),
            any: None,
        }
    }
}

impl<V> HostIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a name (exact, `*.suffix`, `*suffix` or `*`), lowercased. The first insertion of a
    /// name wins: returns `false` (and keeps the old value) if the name was already present.
    pub fn insert(&mut self, name: &str, value: V) -> bool {
        let name = name.to_ascii_lowercase();
        if name == "*" {
            if self.any.is_some() {
                return false;
            }
            self.any = Some(value);
            return true;
        }
        if let Some(suffix) = name.strip_prefix('*') {
            if self.wildcards.iter().any(|(s, _)| **s == *suffix) {
                return false;
            }
            let at = self
                .wildcards
                .partition_point(|(s, _)| s.len() >= suffix.len());
            self.wildcards.insert(at, (suffix.into(), value));
            return true;
        }
        let has_port = split_host_port(&name).1.is_some();
        match self.exact.entry(name.into_boxed_str()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(value);
                self.port_entries |= has_port;
                true
            }
        }
    }

    /// Whether an exact (non-wildcard) name is present.
    pub fn contains_exact(&self, name: &str) -> bool {
        self.exact.contains_key(name.to_ascii_lowercase().as_str())
    }

    /// The entry for `authority` (`host` or `host:port`, any case).
    pub fn lookup(&self, authority: &str) -> Option<&V> {
        self.lookup_with_pattern(authority).map(|(v, _)| v)
    }

    /// The entry for a request: its authority as sent and the host part of it (as
    /// [`RequestView`](crate::RequestView) splits it once).
    pub(crate) fn lookup_request(&self, authority: &str, host: &str) -> Option<&V> {
        if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.lookup(authority);
        }
        self.resolve(host, authority).map(|(v, _)| v)
    }

    /// As [`lookup`](Self::lookup), also returning how the entry matched.
    pub fn lookup_with_pattern(&self, authority: &str) -> Option<(&V, HostMatch<'_>)> {
        let mut buf = [0u8; MAX_AUTHORITY];
        let lowered: &str = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            if authority.len() > MAX_AUTHORITY {
                return self.any.as_ref().map(|v| (v, HostMatch::Any));
            }
            let buf = &mut buf[..authority.len()];
            buf.copy_from_slice(authority.as_bytes());
            buf.make_ascii_lowercase();
            // Lowercasing ASCII bytes keeps UTF-8 valid.
            std::str::from_utf8(buf).unwrap_or(authority)
        } else {
            authority
        };
        let host = split_host_port(lowered).0;
        self.resolve(host, lowered)
    }

    /// The lookup proper, on a lowercase `host` and the `full` authority it was split from.
    /// A fully qualified name with its root dot (`reviews.default.svc.cluster.local.`) finds
    /// the entry of the name without it, as current istiod's virtual hosts do (they list each
    /// service's fully qualified name with the root dot as well); an entry written with the
    /// dot wins over one without.
    fn resolve<'s>(&'s self, host: &str, full: &str) -> Option<(&'s V, HostMatch<'s>)> {
        let exact = |key: &str| {
            self.exact
                .get_key_value(key)
                .map(|(k, v)| (v, HostMatch::Exact(k)))
        };
        let port = &full[host.len()..];
        if self.port_entries && !port.is_empty() {
            if let Some(hit) = exact(full) {
                return Some(hit);
            }
        }
        if let Some(hit) = exact(host) {
            return Some(hit);
        }
        let bare = without_root_dot(host);
        if bare.len() != host.len() {
            if self.port_entries && !port.is_empty() && full.len() <= MAX_AUTHORITY {
                let mut buf = [0u8; MAX_AUTHORITY];
                let n = bare.len() + port.len();
                buf[..bare.len()].copy_from_slice(bare.as_bytes());
                buf[bare.len()..n].copy_from_slice(port.as_bytes());
                if let Some(hit) = std::str::from_utf8(&buf[..n]).ok().and_then(exact) {
                    return Some(hit);
                }
            }
            if let Some(hit) = exact(bare) {
                return Some(hit);
            }
        }
        for (suffix, v) in &self.wildcards {
            if bare.len() > suffix.len() && bare.ends_with(&**suffix) {
                return Some((v, HostMatch::Suffix(suffix)));
            }
        }
        self.any.as_ref().map(|v| (v, HostMatch::Any))
    }

    /// Number of entries (exact, wildcard and `*`).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcards.len() + usize::from(self.any.is_some())
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `name.` → `name`: one root dot removed (`.` alone and `a..` are left as they are).
fn without_root_dot(host: &str) -> &str {
    match host.strip_suffix('.') {
        Some(bare) if !bare.is_empty() && !bare.ends_with('.') => bare,
        _ => host,
    }
}

/// How a [`HostIndex`] entry matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMatch<'a> {
    /// An exact entry (the stored, lowercased name).
    Exact(&'a str),
    /// A suffix wildcard (the suffix, without `*`).
    Suffix(&'a str),
    /// The `*` entry.
    Any,
}

/// The cluster domain short names expand into (`name.ns.svc.cluster.local`): mesh-model's
/// [`mesh_model::CLUSTER_DOMAIN`], re-exported here.
pub use mesh_model::CLUSTER_DOMAIN;

/// The names under which a client reaches the Kubernetes service `fqdn`
/// (`name.ns.svc.cluster.local`), besides the FQDN itself: `name.ns.svc`, `name.ns`, and, for a
/// client in namespace `ns`, the bare `name`. Empty for names that are not service FQDNs. See
/// istio-semantics §1.2 (sidecar virtual-host domains).
pub fn kube_alternative_names(fqdn: &str, client_namespace: &str) -> Vec<String> {
    let Some(prefix) = fqdn
        .strip_suffix(CLUSTER_DOMAIN)
        .and_then(|p| p.strip_suffix(".svc."))
    else {
        return Vec::new();
    };
    let Some((name, ns)) = prefix.split_once('.') else {
        return Vec::new();
    };
    if name.is_empty() || ns.is_empty() || ns.contains('.') || name.starts_with('*') {
        return Vec::new();
    }
    let mut out = vec![format!("{name}.{ns}.svc"), format!("{name}.{ns}")];
    if ns == client_namespace {
        out.push(name.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_root_dot_finds_the_name_without_it() {
        let mut index = HostIndex::new();
        index.insert("api.example.com", 1);
        index.insert("*.example.com", 2);
        index.insert("dotted.example.com.", 3);
        index.insert("dotted.example.com", 4);
        index.insert("ported.example.com:8080", 5);
        assert_eq!(index.lookup("api.example.com."), Some(&1));
        assert_eq!(index.lookup("API.example.com.:9080"), Some(&1));
        assert_eq!(index.lookup("other.example.com."), Some(&2));
        assert_eq!(
            index.lookup("dotted.example.com."),
            Some(&3),
            "written with the dot"
        );
        assert_eq!(index.lookup("dotted.example.com"), Some(&4));
        assert_eq!(index.lookup("ported.example.com.:8080"), Some(&5));
        assert_eq!(index.lookup("api.example.com.."), None, "one root dot only");
        assert_eq!(index.lookup("."), None);
        assert_eq!(
            index.lookup_request("api.example.com.", "api.example.com."),
            Some(&1)
        );
        assert_eq!(
            index.lookup_request("ported.example.com.:8080", "ported.example.com."),
            Some(&5)
        );
    }

    use super::*;

    #[test]
    fn alternative_names() {
        assert_eq!(
            kube_alternative_names("api.default.svc.cluster.local", "default"),
            ["api.default.svc", "api.default", "api"]
        );
        assert_eq!(
            kube_alternative_names("api.default.svc.cluster.local", "other"),
            ["api.default.svc", "api.default"]
        );
        assert!(kube_alternative_names("api.example.com", "default").is_empty());
        assert!(kube_alternative_names("*.ns.svc.cluster.local", "ns").is_empty());
    }

    #[test]
    fn first_insert_wins_and_wildcards_order() {
        let mut i = HostIndex::new();
        assert!(i.insert("A.com", 1));
        assert!(!i.insert("a.com", 2));
        assert!(i.insert("*.com", 3));
        assert!(i.insert("*.b.com", 4));
        assert!(i.insert("*-x.b.com", 5));
        assert_eq!(i.lookup("a.com:80"), Some(&1));
        assert_eq!(i.lookup("z-x.b.com"), Some(&5));
        assert_eq!(
            i.lookup("-x.b.com"),
            Some(&4),
            "a wildcard never matches the empty string"
        );
        assert_eq!(i.lookup("q.b.com"), Some(&4));
        assert_eq!(i.lookup("b.com"), Some(&3));
        assert_eq!(i.lookup("com"), None);
        assert_eq!(i.len(), 4);
    }

    #[test]
    fn port_specific_entries_win() {
        let mut i = HostIndex::new();
        i.insert("a:8080", 1);
        i.insert("a", 2);
        assert_eq!(i.lookup("A:8080"), Some(&1));
        assert_eq!(i.lookup("a:9090"), Some(&2));
    }
}
