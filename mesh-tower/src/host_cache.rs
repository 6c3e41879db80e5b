//! The `Host` header values of the authorities callers use, made once: a request whose caller
//! sent no `Host` gets a shared copy of its URI authority instead of a new allocation.
//!
//! Bounded ([`CAPACITY`] authorities); past that, values are made per request as before.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;
use rustc_hash::FxHashMap;

/// Authorities kept at most.
pub(crate) const CAPACITY: usize = 256;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct HostCache {
    values: ArcSwap<FxHashMap<Box<str>, HeaderValue>>,
}

impl HostCache {
    /// The `Host` value for `authority`.
    pub(crate) fn get(&self, authority: &str) -> Option<HeaderValue> {
        if let Some(v) = self.values.load().get(authority) {
            return Some(v.clone());
        }
        let value = HeaderValue::from_str(authority).ok()?;
        if self.values.load().len() < CAPACITY {
            self.values.rcu(|map| {
                let mut map = FxHashMap::clone(map);
                map.entry(authority.into()).or_insert_with(|| value.clone());
                Arc::new(map)
            });
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::{HostCache, CAPACITY};

    #[test]
    fn values_are_made_once_and_the_cache_is_bounded() {
        let cache = HostCache::default();
        assert_eq!(cache.get("api:8080").unwrap(), "api:8080");
        assert_eq!(cache.get("api:8080").unwrap(), "api:8080");
        assert_eq!(cache.values.load().len(), 1);
        for i in 0..2 * CAPACITY {
            assert_eq!(
                cache.get(&format!("h{i}")).unwrap(),
                format!("h{i}").as_str()
            );
        }
        assert_eq!(cache.values.load().len(), CAPACITY);
        assert!(cache.get("bad\nvalue").is_none());
    }
}
