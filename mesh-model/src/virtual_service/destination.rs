//! Destinations (D1-D6): where a route sends requests, and its weighted list.

use crate::diag::{Cx, Path};
use crate::names;
use crate::raw;

use super::headers::{validate_headers, Headers, NO_HEADERS};

/// A weighted destination.
#[derive(Debug, Clone)]
pub struct RouteDestination {
    pub(crate) destination: Destination,
    pub(crate) weight: u32,
    /// `None` when there is nothing to do.
    pub(crate) headers: Option<Box<Headers>>,
    /// Its index in `route` as written (destinations of weight 0 are dropped, so it can differ
    /// from the index in the validated list): diagnostics name the entry the user wrote. Not
    /// part of equality.
    pub(crate) written_at: usize,
}

impl PartialEq for RouteDestination {
    fn eq(&self, other: &Self) -> bool {
        self.destination == other.destination
            && self.weight == other.weight
            && self.headers == other.headers
    }
}

impl Eq for RouteDestination {}

impl RouteDestination {
    /// Where to send.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }
    /// Relative weight, always > 0.
    pub fn weight(&self) -> u32 {
        self.weight
    }
    /// Destination-level header operations.
    pub fn headers(&self) -> &Headers {
        self.headers.as_deref().unwrap_or(&NO_HEADERS)
    }
}

/// `Destination`: a registry host, an optional subset and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub(crate) host: String,
    pub(crate) subset: Option<String>,
    pub(crate) port: Option<u16>,
}

impl Destination {
    /// A destination built in code.
    pub fn new(host: impl Into<String>, subset: Option<&str>, port: Option<u16>) -> Self {
        Destination {
            host: host.into().to_ascii_lowercase(),
            subset: subset.map(str::to_owned),
            port,
        }
    }
    /// Host as written (lower-cased).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// Subset name.
    pub fn subset(&self) -> Option<&str> {
        self.subset.as_deref()
    }
    /// Port number.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// D2-D4: a host name (not an IP or `*`), a DNS-1123 subset, a port in range.
pub(crate) fn validate_destination(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    d: &raw::Destination,
) -> Option<Destination> {
    let host = match d.host.as_deref() {
        None | Some("") => {
            cx.error(
                &p.key("host"),
                "destination host is required: name the service to send to",
            );
            return None;
        }
        Some("*") => {
            cx.error(
                &p.key("host"),
                "invalid destination host *: name the service",
            );
            return None;
        }
        Some(h) => {
            if names::is_ip(h) {
                cx.error(
                    &p.key("host"),
                    format!("invalid destination host {h:?}: an IP address is not allowed here; use the service's domain name (a ServiceEntry can name an IP endpoint)"),
                );
                return None;
            }
            if let Some(why) = names::wildcard_domain_problem(h) {
                cx.error(
                    &p.key("host"),
                    format!("invalid destination host {h:?}: not a valid domain name ({why})"),
                );
                return None;
            }
            h.to_ascii_lowercase()
        }
    };
    if let Some(s) = d.subset.as_deref() {
        if !s.is_empty() && !names::is_dns1123_label(s) {
            cx.error(
                &p.key("subset"),
                format!(
                    "subset name {s:?} is invalid: use a DNS-1123 label (letters, digits, '-')"
                ),
            );
        }
    }
    let mut port = None;
    if let Some(ps) = &d.port {
        let n = ps.number.unwrap_or(0);
        match u16::try_from(n) {
            Ok(n) if n > 0 => port = Some(n),
            _ => cx.error(
                &p.key("port").key("number"),
                format!("port number {n} must be in the range 1..65535"),
            ),
        }
    }
    Some(Destination {
        host,
        subset: d.subset.clone().filter(|s| !s.is_empty()),
        port,
    })
}

/// D1, D5, D6: the weighted list of a route; a single destination gets 100, weight 0 is
/// dropped.
pub(crate) fn validate_destinations(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    list: &[Option<raw::HttpRouteDestination>],
) -> Vec<RouteDestination> {
    let mut out = Vec::with_capacity(list.len());
    let mut total: i64 = 0;
    let single = list.len() == 1;
    for (i, rd) in list.iter().enumerate() {
        let ip = p.index(i);
        let Some(rd) = rd else {
            cx.error(&ip, "weight may not be nil: a route entry is null");
            continue;
        };
        let Some(d) = &rd.destination else {
            cx.error(
                &ip.key("destination"),
                "destination is required: give the host (and optionally subset and port)",
            );
            continue;
        };
        let dest = validate_destination(cx, &ip.key("destination"), d);
        let w = rd.weight.unwrap_or(0);
        if w < 0 {
            cx.error(
                &ip.key("weight"),
                format!("weight {w} cannot be negative; weights are relative shares >= 0"),
            );
            continue;
        }
        if w > i64::from(i32::MAX) {
            cx.error(
                &ip.key("weight"),
                format!("weight {w} is larger than the int32 field allows"),
            );
            continue;
        }
        total += w;
        let headers = validate_headers(cx, &ip.key("headers"), rd.headers.as_ref()).boxed();
        if let Some(destination) = dest {
            let weight = if single { 100 } else { w as u32 };
            if weight > 0 {
                out.push(RouteDestination {
                    destination,
                    weight,
                    headers,
                    written_at: i,
                });
            }
        }
    }
    if list.len() > 1 && total == 0 {
        cx.error(p, "total destination weight = 0: give at least one destination a weight above 0 (weights are relative; an omitted weight is 0)");
    }
    out
}
