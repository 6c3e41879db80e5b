//! Load balancing (LB-1-LB-7): simple algorithms and consistent hashing.

use crate::checks::validate_duration;
use crate::diag::{Cx, Path};
use crate::{raw, Duration};

use super::locality::{validate_locality, LocalityKind};

/// Simple load-balancing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimpleLb {
    /// Power of two choices over active requests (Istio's default; also `LEAST_CONN`).
    #[default]
    LeastRequest,
    /// Weighted round robin.
    RoundRobin,
    /// Uniform random.
    Random,
    /// Forward to the original destination address.
    Passthrough,
}

/// What a consistent hash hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// A request header.
    Header(String),
    /// A cookie (`ttl` set: Envoy generates it when absent).
    Cookie {
        /// Cookie name.
        name: String,
        /// Cookie path.
        path: Option<String>,
        /// Lifetime of a generated cookie; zero means a session cookie.
        ttl: Option<std::time::Duration>,
    },
    /// The source IP.
    SourceIp,
    /// A query parameter.
    QueryParameter(String),
}

/// Consistent hashing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashTable {
    /// Ketama ring with at least this many entries (Envoy default 1024).
    RingHash {
        /// Minimum ring size.
        minimum_ring_size: u64,
    },
    /// Maglev lookup table of this (prime) size.
    Maglev {
        /// Table size.
        table_size: u64,
    },
}

/// A load-balancing policy with defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancer {
    /// A simple algorithm.
    Simple(SimpleLb),
    /// Consistent hashing.
    ConsistentHash {
        /// What is hashed.
        key: HashKey,
        /// The table.
        table: HashTable,
    },
}

impl Default for LoadBalancer {
    /// Istio's default: LEAST_REQUEST (`cluster_traffic_policy.go`, `defaultLBAlgorithm`).
    fn default() -> Self {
        LoadBalancer::Simple(SimpleLb::LeastRequest)
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// LB-1-LB-7: one algorithm, one hash key, a valid table; locality settings are checked too.
pub(crate) fn validate_load_balancer(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    lb: &raw::LoadBalancerSettings,
    has_outlier: bool,
) -> Option<LoadBalancer> {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        cx.error(
            p,
            "only one of simple or consistentHash can be set in a loadBalancer",
        );
    }
    if lb.warmup_duration_secs.is_some() && lb.warmup.is_some() {
        cx.error(p, "only one of warmupDurationSecs or warmup can be set");
    }
    if let Some(w) = &lb.warmup {
        let wp = p.key("warmup");
        match &w.duration {
            None => cx.error(
                &wp.key("duration"),
                "warmup duration is required (e.g. 60s)",
            ),
            Some(s) => {
                validate_duration(cx, &wp.key("duration"), Some(s));
            }
        }
        if w.minimum_percent
            .is_some_and(|m| !(0.0..=100.0).contains(&m))
        {
            cx.error(
                &wp.key("minimumPercent"),
                "warmup minimumPercent must be greater than or equal to 0 and less than or equal to 100",
            );
        }
        if w.aggression.is_some_and(|a| a <= 0.0) {
            cx.error(
                &wp.key("aggression"),
                "warmup aggression must be greater than 0 (1.0 is linear)",
            );
        }
        cx.warn(
            &wp,
            "warmup (slow start) is validated but not applied by this library",
        );
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        cx.error(
            p,
            "only one of localityLbSetting or zoneAwareLbSetting can be set",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        validate_locality(
            cx,
            &p.key("localityLbSetting"),
            l,
            has_outlier,
            LocalityKind::Locality,
        );
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        let zp = p.key("zoneAwareLbSetting");
        match serde_yaml::from_value::<raw::LocalityLbSetting>(z.value().clone()) {
            Ok(l) => validate_locality(cx, &zp, &l, has_outlier, LocalityKind::ZoneAware),
            Err(e) => cx.error(
                &zp,
                format!("zoneAwareLbSetting does not have the expected shape (failover: [{{from, to}}], failoverPriority: [labels]): {e}"),
            ),
        }
    }
    if let Some(ch) = &lb.consistent_hash {
        let cp = p.key("consistentHash");
        let keys = usize::from(ch.http_header_name.is_some())
            + usize::from(ch.http_cookie.is_some())
            + usize::from(ch.use_source_ip == Some(true))
            + usize::from(ch.http_query_parameter_name.is_some());
        if keys > 1 {
            cx.error(&cp, "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName can be set as the consistent hash key");
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            cx.error(&cp, "only one of ringHash or maglev can be set");
        }
        if ch.minimum_ring_size.is_some() {
            cx.warn(
                &cp.key("minimumRingSize"),
                "minimumRingSize is deprecated; use ringHash.minimumRingSize",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                cx.error(
                    &cp,
                    "only one of the deprecated minimumRingSize or ringHash/maglev can be set; move the size into ringHash.minimumRingSize",
                );
            }
        }
        let key = if let Some(h) = &ch.http_header_name {
            HashKey::Header(h.to_ascii_lowercase())
        } else if let Some(c) = &ch.http_cookie {
            let kp = cp.key("httpCookie");
            let name = c.name.clone().unwrap_or_default();
            if name.is_empty() {
                cx.error(
                    &kp.key("name"),
                    "cookie name is required: name the cookie to hash on",
                );
            }
            let ap = kp.key("attributes");
            let mut seen = std::collections::HashSet::new();
            for (i, a) in c.attributes.iter().enumerate() {
                let an = a.name.clone().unwrap_or_default();
                if an.is_empty() {
                    cx.error(
                        &ap.index(i).key("name"),
                        "cookie attribute name cannot be empty",
                    );
                } else if !seen.insert(an.clone()) {
                    cx.error(
                        &ap.index(i).key("name"),
                        format!("duplicate cookie attribute {an:?}"),
                    );
                }
            }
            let ttl = c
                .ttl
                .as_deref()
                .and_then(|s| match Duration::parse_unbounded(s) {
                    Ok(d) => Some(d.as_std()),
                    Err(e) => {
                        cx.error(&kp.key("ttl"), e.to_string());
                        None
                    }
                });
            HashKey::Cookie {
                name,
                path: c.path.clone(),
                ttl,
            }
        } else if ch.use_source_ip == Some(true) {
            HashKey::SourceIp
        } else if let Some(q) = &ch.http_query_parameter_name {
            HashKey::QueryParameter(q.clone())
        } else {
            cx.error(&cp, "consistentHash needs a key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName");
            return None;
        };
        let table = if let Some(m) = &ch.maglev {
            let size = m.table_size.unwrap_or(0);
            let mp = cp.key("maglev");
            let tp = mp.key("tableSize");
            if size <= 0 {
                cx.error(
                    &tp,
                    "maglev tableSize must be set (a prime below 5000011, e.g. 65537)",
                );
            } else if size >= 5_000_011 {
                cx.error(
                    &tp,
                    format!("maglev tableSize {size} must be less than 5000011; use a prime such as 65537"),
                );
            } else if !is_prime(size as u64) {
                cx.error(
                    &tp,
                    format!("maglev tableSize {size} is not a prime number"),
                );
            }
            HashTable::Maglev {
                table_size: size.max(1) as u64,
            }
        } else {
            let size = ch
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(ch.minimum_ring_size)
                .unwrap_or(0);
            if size < 0 {
                cx.error(
                    &cp.key("ringHash").key("minimumRingSize"),
                    "minimumRingSize cannot be negative",
                );
            }
            HashTable::RingHash {
                minimum_ring_size: if size <= 0 { 1024 } else { size as u64 },
            }
        };
        return Some(LoadBalancer::ConsistentHash { key, table });
    }
    match lb.simple.as_deref() {
        None | Some("UNSPECIFIED" | "LEAST_REQUEST" | "LEAST_CONN") => {
            Some(LoadBalancer::Simple(SimpleLb::LeastRequest))
        }
        Some("ROUND_ROBIN") => Some(LoadBalancer::Simple(SimpleLb::RoundRobin)),
        Some("RANDOM") => Some(LoadBalancer::Simple(SimpleLb::Random)),
        Some("PASSTHROUGH") => Some(LoadBalancer::Simple(SimpleLb::Passthrough)),
        Some(other) => {
            cx.error(&p.key("simple"), format!("unknown load balancer {other:?}: expected one of LEAST_REQUEST, ROUND_ROBIN, RANDOM, PASSTHROUGH (upper case)"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(2) && !is_prime(65536) && !is_prime(1));
    }
}
