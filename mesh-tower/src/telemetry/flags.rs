//! Envoy's response flags: [`ResponseFlag`] and the ordered set [`ResponseFlags`].

use std::fmt;
use std::str::FromStr;

/// One of Envoy's response flags, in Envoy's order (its `CoreResponseFlag` enumeration).
///
/// [`short`](Self::short) is the code of `%RESPONSE_FLAGS%` and Istio's `response_flags` label;
/// [`long`](Self::long) the name of `%RESPONSE_FLAGS_LONG%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ResponseFlag {
    /// `LH`: the local health check failed.
    FailedLocalHealthCheck,
    /// `UH`: no healthy upstream host in the cluster.
    NoHealthyUpstream,
    /// `UT`: upstream request timeout (route or per-try).
    UpstreamRequestTimeout,
    /// `LR`: the connection was reset locally.
    LocalReset,
    /// `UR`: the upstream reset the stream.
    UpstreamRemoteReset,
    /// `UF`: the upstream connection failed (connect failure or timeout).
    UpstreamConnectionFailure,
    /// `UC`: the upstream connection closed.
    UpstreamConnectionTermination,
    /// `UO`: a circuit breaker overflowed.
    UpstreamOverflow,
    /// `NR`: no route matched.
    NoRouteFound,
    /// `DI`: a fault delay was injected.
    DelayInjected,
    /// `FI`: a fault abort was injected.
    FaultInjected,
    /// `RL`: rate limited locally.
    RateLimited,
    /// `UAEX`: denied by the external authorization service.
    UnauthorizedExternalService,
    /// `RLSE`: the rate-limit service failed.
    RateLimitServiceError,
    /// `DC`: the downstream connection terminated.
    DownstreamConnectionTermination,
    /// `URX`: the retry limit was reached.
    UpstreamRetryLimitExceeded,
    /// `SI`: the stream idle timeout fired.
    StreamIdleTimeout,
    /// `IH`: invalid `x-envoy-*` request headers.
    InvalidEnvoyRequestHeaders,
    /// `DPE`: downstream protocol error.
    DownstreamProtocolError,
    /// `UMSDR`: the upstream max stream duration was reached.
    UpstreamMaxStreamDurationReached,
    /// `RFCF`: the response came from the cache filter.
    ResponseFromCacheFilter,
    /// `NFCF`: no filter configuration was found.
    NoFilterConfigFound,
    /// `DT`: a max connection or stream duration was reached.
    DurationTimeout,
    /// `UPE`: upstream protocol error.
    UpstreamProtocolError,
    /// `NC`: no cluster found for the route.
    NoClusterFound,
    /// `OM`: terminated by the overload manager.
    OverloadManagerTerminated,
    /// `DF`: DNS resolution failed.
    DnsResolutionFailed,
    /// `DO`: dropped by the cluster's drop-overload policy.
    DropOverload,
    /// `DR`: the downstream reset the stream.
    DownstreamRemoteReset,
}

impl ResponseFlag {
    /// Every flag, in Envoy's order.
    pub const ALL: [ResponseFlag; 29] = [
        ResponseFlag::FailedLocalHealthCheck,
        ResponseFlag::NoHealthyUpstream,
        ResponseFlag::UpstreamRequestTimeout,
        ResponseFlag::LocalReset,
        ResponseFlag::UpstreamRemoteReset,
        ResponseFlag::UpstreamConnectionFailure,
        ResponseFlag::UpstreamConnectionTermination,
        ResponseFlag::UpstreamOverflow,
        ResponseFlag::NoRouteFound,
        ResponseFlag::DelayInjected,
        ResponseFlag::FaultInjected,
        ResponseFlag::RateLimited,
        ResponseFlag::UnauthorizedExternalService,
        ResponseFlag::RateLimitServiceError,
        ResponseFlag::DownstreamConnectionTermination,
        ResponseFlag::UpstreamRetryLimitExceeded,
        ResponseFlag::StreamIdleTimeout,
        ResponseFlag::InvalidEnvoyRequestHeaders,
        ResponseFlag::DownstreamProtocolError,
        ResponseFlag::UpstreamMaxStreamDurationReached,
        ResponseFlag::ResponseFromCacheFilter,
        ResponseFlag::NoFilterConfigFound,
        ResponseFlag::DurationTimeout,
        ResponseFlag::UpstreamProtocolError,
        ResponseFlag::NoClusterFound,
        ResponseFlag::OverloadManagerTerminated,
        ResponseFlag::DnsResolutionFailed,
        ResponseFlag::DropOverload,
        ResponseFlag::DownstreamRemoteReset,
    ];

    /// Envoy's short code (`URX`).
    pub const fn short(self) -> &'static str {
        NAMES[self as usize].0
    }

    /// Envoy's long name (`UpstreamRetryLimitExceeded`).
    pub const fn long(self) -> &'static str {
        NAMES[self as usize].1
    }

    /// The flag with short code or long name `s` (case-sensitive, as Envoy's).
    pub fn from_name(s: &str) -> Option<ResponseFlag> {
        NAMES
            .iter()
            .position(|(short, long)| *short == s || *long == s)
            .map(|i| ResponseFlag::ALL[i])
    }
}

/// Short and long names, indexed like [`ResponseFlag::ALL`].
const NAMES: [(&str, &str); 29] = [
    ("LH", "FailedLocalHealthCheck"),
    ("UH", "NoHealthyUpstream"),
    ("UT", "UpstreamRequestTimeout"),
    ("LR", "LocalReset"),
    ("UR", "UpstreamRemoteReset"),
    ("UF", "UpstreamConnectionFailure"),
    ("UC", "UpstreamConnectionTermination"),
    ("UO", "UpstreamOverflow"),
    ("NR", "NoRouteFound"),
    ("DI", "DelayInjected"),
    ("FI", "FaultInjected"),
    ("RL", "RateLimited"),
    ("UAEX", "UnauthorizedExternalService"),
    ("RLSE", "RateLimitServiceError"),
    ("DC", "DownstreamConnectionTermination"),
    ("URX", "UpstreamRetryLimitExceeded"),
    ("SI", "StreamIdleTimeout"),
    ("IH", "InvalidEnvoyRequestHeaders"),
    ("DPE", "DownstreamProtocolError"),
    ("UMSDR", "UpstreamMaxStreamDurationReached"),
    ("RFCF", "ResponseFromCacheFilter"),
    ("NFCF", "NoFilterConfigFound"),
    ("DT", "DurationTimeout"),
    ("UPE", "UpstreamProtocolError"),
    ("NC", "NoClusterFound"),
    ("OM", "OverloadManagerTerminated"),
    ("DF", "DnsResolutionFailed"),
    ("DO", "DropOverload"),
    ("DR", "DownstreamRemoteReset"),
];

impl fmt::Display for ResponseFlag {
    /// The short code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// The response flags of one request, in the order they were set (Envoy keeps that order
/// when it prints them). A small `Copy` value: no allocation, ever.
///
/// `Display` writes Envoy's `%RESPONSE_FLAGS%`: short codes joined by `,`, or `-` for none;
/// [`long`](Self::long) writes `%RESPONSE_FLAGS_LONG%`. `FromStr` reads either form back.
/// See the [`telemetry`](crate::telemetry) module for when the mesh sets each flag.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags {
    /// Up to [`CAPACITY`] flags, 5 bits each, the first in the lowest bits; a slot holds the
    /// flag's index plus one (0: empty).
    slots: u64,
}

/// How many flags one value holds (more were never seen on one request; further ones are
/// ignored).
const CAPACITY: u32 = 12;
const SLOT_BITS: u32 = 5;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;

impl ResponseFlags {
    /// No flag.
    pub const fn new() -> Self {
        ResponseFlags { slots: 0 }
    }

    /// Only `flag`.
    pub const fn from_flag(flag: ResponseFlag) -> Self {
        ResponseFlags {
            slots: flag as u64 + 1,
        }
    }

    /// Whether no flag is set (`-`).
    pub const fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// How many flags are set.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether `flag` is set.
    pub fn contains(&self, flag: ResponseFlag) -> bool {
        self.iter().any(|f| f == flag)
    }

    /// Sets `flag` (after the ones already set; nothing changes if it is set already).
    pub fn insert(&mut self, flag: ResponseFlag) {
        let code = flag as u64 + 1;
        for i in 0..CAPACITY {
            let shift = i * SLOT_BITS;
            match (self.slots >> shift) & SLOT_MASK {
                0 => {
                    self.slots |= code << shift;
                    return;
                }
                c if c == code => return,
                _ => {}
            }
        }
    }

    /// `self` with `flag` set too.
    #[must_use]
    pub fn with(mut self, flag: ResponseFlag) -> Self {
        self.insert(flag);
        self
    }

    /// The flags in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = ResponseFlag> + '_ {
        let slots = self.slots;
        (0..CAPACITY)
            .map(move |i| (slots >> (i * SLOT_BITS)) & SLOT_MASK)
            .take_while(|c| *c != 0)
            .filter_map(|c| ResponseFlag::ALL.get(c as usize - 1).copied())
    }

    /// `%RESPONSE_FLAGS_LONG%`: the long names joined by `,` (`-` for none).
    pub fn long(&self) -> impl fmt::Display + '_ {
        LongNames(self)
    }

    /// The flags the mesh put on `response` (none for a response it passed on untouched, or
    /// one that did not come from a mesh).
    pub fn of<B>(response: &http::Response<B>) -> ResponseFlags {
        response
            .extensions()
            .get::<ResponseFlags>()
            .copied()
            .unwrap_or_default()
    }

    /// Puts the flags on `response` as its extension, unless there is none (so a response
    /// without flags costs no allocation).
    pub(crate) fn attach<B>(self, response: &mut http::Response<B>) {
        if !self.is_empty() {
            response.extensions_mut().insert(self);
        }
    }

    /// The packed value (for hashing into a label-set cache).
    pub(crate) const fn raw(&self) -> u64 {
        self.slots
    }

    /// Sets the flag Envoy's router sets when it stops retrying for `reason`: `URX` when the
    /// attempts ran out, `UO` when the retry breaker or budget refused the retry.
    pub(crate) fn insert_done(&mut self, reason: &mesh_resilience::DoneReason) {
        match reason {
            mesh_resilience::DoneReason::AttemptsExhausted => {
                self.insert(ResponseFlag::UpstreamRetryLimitExceeded);
            }
            mesh_resilience::DoneReason::RetryOverflow(_) => {
                self.insert(ResponseFlag::UpstreamOverflow);
            }
            _ => {}
        }
    }

    fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        name: fn(ResponseFlag) -> &'static str,
    ) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name(flag))?;
        }
        Ok(())
    }
}

impl FromIterator<ResponseFlag> for ResponseFlags {
    fn from_iter<I: IntoIterator<Item = ResponseFlag>>(iter: I) -> Self {
        let mut flags = ResponseFlags::new();
        for f in iter {
            flags.insert(f);
        }
        flags
    }
}

impl fmt::Display for ResponseFlags {
    /// Envoy's `%RESPONSE_FLAGS%`: `URX,UF`, or `-` when no flag is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, ResponseFlag::short)
    }
}

impl fmt::Debug for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseFlags({self})")
    }
}

struct LongNames<'a>(&'a ResponseFlags);

impl fmt::Display for LongNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, ResponseFlag::long)
    }
}

/// A response-flags text that names no flag of Envoy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownResponseFlag {
    name: String,
}

impl fmt::Display for UnknownResponseFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown response flag `{}`", self.name)
    }
}

impl std::error::Error for UnknownResponseFlag {}

impl FromStr for ResponseFlags {
    type Err = UnknownResponseFlag;

    /// Reads `-`, `URX,UF` or `UpstreamRetryLimitExceeded,UpstreamConnectionFailure`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "-" || s.is_empty() {
            return Ok(ResponseFlags::new());
        }
        s.split(',')
            .map(|name| {
                let name = name.trim();
                ResponseFlag::from_name(name).ok_or_else(|| UnknownResponseFlag {
                    name: name.to_owned(),
                })
            })
            .collect()
    }
}

impl FromStr for ResponseFlag {
    type Err = UnknownResponseFlag;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResponseFlag::from_name(s.trim()).ok_or_else(|| UnknownResponseFlag { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{ResponseFlag, ResponseFlags};

    #[test]
    fn names_follow_envoys_table() {
        // Envoy's `ResponseFlagUtils` table, in its enumeration order.
        let expected = "LH,UH,UT,LR,UR,UF,UC,UO,NR,DI,FI,RL,UAEX,RLSE,DC,URX,SI,IH,DPE,UMSDR,RFCF,NFCF,DT,UPE,NC,OM,DF,DO,DR";
        let all: ResponseFlags = ResponseFlag::ALL[..12].iter().copied().collect();
        let shorts: Vec<&str> = ResponseFlag::ALL.iter().map(|f| f.short()).collect();
        assert_eq!(shorts.join(","), expected);
        assert_eq!(all.len(), 12);
        for (i, f) in ResponseFlag::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
            assert_eq!(ResponseFlag::from_name(f.short()), Some(*f));
            assert_eq!(ResponseFlag::from_name(f.long()), Some(*f));
        }
        assert_eq!(
            ResponseFlag::UpstreamRetryLimitExceeded.long(),
            "UpstreamRetryLimitExceeded"
        );
        assert_eq!(ResponseFlag::DropOverload.short(), "DO");
    }

    #[test]
    fn keeps_the_order_flags_were_set_in_and_ignores_repeats() {
        let mut f = ResponseFlags::new();
        assert_eq!(f.to_string(), "-");
        assert_eq!(f.long().to_string(), "-");
        f.insert(ResponseFlag::DelayInjected);
        f.insert(ResponseFlag::UpstreamRetryLimitExceeded);
        f.insert(ResponseFlag::UpstreamConnectionFailure);
        f.insert(ResponseFlag::DelayInjected);
        assert_eq!(f.to_string(), "DI,URX,UF");
        assert_eq!(f.len(), 3);
        assert!(f.contains(ResponseFlag::UpstreamConnectionFailure));
        assert!(!f.contains(ResponseFlag::NoRouteFound));
        assert_eq!(format!("{f:?}"), "ResponseFlags(DI,URX,UF)");
    }

    #[test]
    fn parses_short_and_long_forms() {
        assert_eq!("-".parse::<ResponseFlags>().unwrap(), ResponseFlags::new());
        let f: ResponseFlags = "NR".parse().unwrap();
        assert_eq!(f, ResponseFlags::from_flag(ResponseFlag::NoRouteFound));
        let f: ResponseFlags = "UpstreamOverflow,NoHealthyUpstream".parse().unwrap();
        assert_eq!(f.to_string(), "UO,UH");
        let err = "UF,XX".parse::<ResponseFlags>().unwrap_err();
        assert_eq!(err.to_string(), "unknown response flag `XX`");
    }

    #[test]
    fn reads_the_extension_of_a_response() {
        let mut res = http::Response::new(());
        assert!(ResponseFlags::of(&res).is_empty());
        ResponseFlags::new().attach(&mut res);
        assert!(res.extensions().is_empty(), "no flags, no extension");
        ResponseFlags::from_flag(ResponseFlag::FaultInjected).attach(&mut res);
        assert_eq!(ResponseFlags::of(&res).to_string(), "FI");
    }

    proptest! {
        /// Any sequence of flags prints as its distinct flags in first-seen order, and parses back.
        #[test]
        fn display_round_trips(indexes in proptest::collection::vec(0usize..29, 0..8)) {
            let flags: ResponseFlags = indexes.iter().map(|i| ResponseFlag::ALL[*i]).collect();
            let mut seen = Vec::new();
            for i in &indexes {
                if !seen.contains(i) {
                    seen.push(*i);
                }
            }
            let expected = if seen.is_empty() {
                "-".to_owned()
            } else {
                seen.iter().map(|i| ResponseFlag::ALL[*i].short()).collect::<Vec<_>>().join(",")
            };
            prop_assert_eq!(flags.to_string(), expected);
            prop_assert_eq!(flags.to_string().parse::<ResponseFlags>().unwrap(), flags);
        }
    }
}
