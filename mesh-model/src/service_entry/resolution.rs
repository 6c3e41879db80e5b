//! `resolution`: how the endpoints of a service entry are found.

/// How endpoints of a `ServiceEntry` are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Use the address the caller connected to.
    None,
    /// Use the listed endpoint addresses.
    Static,
    /// Resolve the endpoint (or host) names with DNS.
    Dns,
    /// Resolve with DNS, one address at a time.
    DnsRoundRobin,
}

impl Resolution {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
        }
    }
}
