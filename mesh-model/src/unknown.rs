//! Unknown-field detection support: which fields a raw type knows, and "did you mean" hints.

use std::sync::OnceLock;

use serde::de::{self, Deserialize, Visitor};

use crate::diag::{Kind, Seg};
use crate::raw;

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field collection stops here")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// A deserializer that records the field list serde's derive hands to `deserialize_struct`.
#[derive(Debug, Default)]
struct Collector(Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for &mut Collector {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut c = Collector::default();
    let _ = T::deserialize(&mut c);
    c.0.unwrap_or(&[])
}

macro_rules! cached {
    ($t:ty) => {{
        static CELL: OnceLock<&'static [&'static str]> = OnceLock::new();
        *CELL.get_or_init(fields::<$t>)
    }};
}

const ENVELOPE: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// The fields known at `parent` (the path of the struct holding the unknown field).
pub(crate) fn known_fields(kind: Kind, parent: &[Seg<'_>]) -> Option<&'static [&'static str]> {
    let keys: Vec<&str> = parent
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(*k),
            Seg::Index(_) => None,
        })
        .collect();
    let last = keys.last().copied();
    let before = |n: usize| keys.len().checked_sub(n + 1).map(|i| keys[i]);
    Some(match last {
        None => ENVELOPE,
        Some("spec") if keys.len() == 1 => match kind {
            Kind::VirtualService => cached!(raw::VirtualServiceSpec),
            Kind::DestinationRule => cached!(raw::DestinationRuleSpec),
            Kind::ServiceEntry => cached!(raw::ServiceEntrySpec),
        },
        Some(_)
            if matches!(
                before(1),
                Some("headers" | "withoutHeaders" | "queryParams")
            ) && before(2) == Some("match") =>
        {
            cached!(raw::StringMatch)
        }
        Some("http") if before(1) == Some("connectionPool") => cached!(raw::HttpSettings),
        Some("http") => cached!(raw::HttpRoute),
        Some("match") => cached!(raw::HttpMatchRequest),
        Some("route") => cached!(raw::HttpRouteDestination),
        Some("destination" | "mirror") => cached!(raw::Destination),
        Some("port") => cached!(raw::PortSelector),
        Some("headers") => cached!(raw::Headers),
        Some("uri" | "scheme" | "method" | "authority" | "allowOrigins") => {
            cached!(raw::StringMatch)
        }
        Some("request" | "response") => cached!(raw::HeaderOperations),
        Some("redirect") => cached!(raw::HttpRedirect),
        Some("directResponse") => cached!(raw::HttpDirectResponse),
        Some("body") => cached!(raw::HttpBody),
        Some("delegate") => cached!(raw::Delegate),
        Some("rewrite") => cached!(raw::HttpRewrite),
        Some("uriRegexRewrite") => cached!(raw::RegexRewrite),
        Some("retries") => cached!(raw::HttpRetry),
        Some("fault") => cached!(raw::HttpFaultInjection),
        Some("delay") => cached!(raw::FaultDelay),
        Some("abort") => cached!(raw::FaultAbort),
        Some("percentage" | "mirrorPercentage" | "percent") => cached!(raw::Percent),
        Some("mirrors") => cached!(raw::HttpMirrorPolicy),
        Some("corsPolicy") => cached!(raw::CorsPolicy),
        Some("trafficPolicy") => cached!(raw::TrafficPolicy),
        Some("portLevelSettings") => cached!(raw::PortTrafficPolicy),
        Some("subsets") => cached!(raw::Subset),
        Some("loadBalancer") => cached!(raw::LoadBalancerSettings),
        Some("consistentHash") => cached!(raw::ConsistentHashLb),
        Some("httpCookie") => cached!(raw::HttpCookie),
        Some("attributes") => cached!(raw::CookieAttribute),
        Some("ringHash") => cached!(raw::RingHash),
        Some("maglev") => cached!(raw::MagLev),
        Some("localityLbSetting") => cached!(raw::LocalityLbSetting),
        Some("distribute") => cached!(raw::LocalityDistribute),
        Some("failover") => cached!(raw::LocalityFailover),
        Some("warmup") => cached!(raw::WarmupConfiguration),
        Some("connectionPool") => cached!(raw::ConnectionPoolSettings),
        Some("tcp") if before(1) == Some("connectionPool") => cached!(raw::TcpSettings),
        Some("tcpKeepalive") => cached!(raw::TcpKeepalive),
        Some("http2KeepAlive") => cached!(raw::Http2KeepAlive),
        Some("outlierDetection") => cached!(raw::OutlierDetection),
        Some("tls") => cached!(raw::ClientTlsSettings),
        Some("tunnel") => cached!(raw::TunnelSettings),
        Some("proxyProtocol") => cached!(raw::ProxyProtocol),
        Some("retryBudget") => cached!(raw::RetryBudget),
        Some("workloadSelector") if kind == Kind::ServiceEntry => {
            cached!(raw::EntryWorkloadSelector)
        }
        Some("workloadSelector") => cached!(raw::WorkloadSelector),
        Some("ports") if kind == Kind::ServiceEntry => cached!(raw::ServicePort),
        Some("endpoints") => cached!(raw::WorkloadEntry),
        _ => return None,
    })
}

/// The known field closest to `unknown`, if one is close enough to be a likely typo.
pub(crate) fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let fold = |s: &str| s.replace(['_', '-'], "").to_ascii_lowercase();
    let folded = fold(unknown);
    if let Some(k) = known.iter().find(|k| fold(k) == folded) {
        return Some(k);
    }
    let len = folded.chars().count();
    let limit = (len / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| {
            let fk = fold(k);
            let fk_len = fk.chars().count();
            let prefix = folded
                .chars()
                .zip(fk.chars())
                .take_while(|(a, b)| a == b)
                .count();
            let shorter = len.min(fk_len);
            // The distance is at least the difference in length: no need to compute it (a
            // field name written a megabyte long would take seconds).
            let distance = if len.abs_diff(fk_len) > limit {
                len.abs_diff(fk_len)
            } else {
                levenshtein(&folded, &fk)
            };
            (distance, prefix >= 4 && prefix * 5 >= shorter * 4, *k)
        })
        .filter(|(d, shared_stem, _)| *d <= limit || *shared_stem)
        .min_by_key(|(d, _, _)| *d)
        .map(|(_, _, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_fields_of_raw_types() {
        let f = known_fields(
            Kind::VirtualService,
            &[Seg::Key("spec"), Seg::Key("http"), Seg::Index(1)],
        )
        .unwrap();
        assert!(f.contains(&"retries") && f.contains(&"match") && f.contains(&"corsPolicy"));
        let f = known_fields(
            Kind::DestinationRule,
            &[
                Seg::Key("spec"),
                Seg::Key("trafficPolicy"),
                Seg::Key("outlierDetection"),
            ],
        )
        .unwrap();
        assert!(f.contains(&"consecutive5xxErrors"));
    }

    #[test]
    fn suggestions() {
        let http =
            known_fields(Kind::VirtualService, &[Seg::Key("spec"), Seg::Key("http")]).unwrap();
        assert_eq!(suggest("retires", http), Some("retries"));
        assert_eq!(suggest("retry", http), Some("retries"));
        assert_eq!(
            suggest(
                "per_try_timeout",
                known_fields(Kind::VirtualService, &[Seg::Key("retries")]).unwrap()
            ),
            Some("perTryTimeout")
        );
        assert_eq!(suggest("zzzzzz", http), None);
    }
}
