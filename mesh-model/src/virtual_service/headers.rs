//! Header operations (H1-H3) on requests and responses.

use http::{HeaderName, HeaderValue};

use crate::diag::{Cx, Path};
use crate::names;
use crate::raw;

/// Header operations for requests and responses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    pub(crate) request: HeaderOps,
    pub(crate) response: HeaderOps,
}

/// No operation at all: what the accessors return for a route or destination without `headers`.
pub(crate) static NO_HEADERS: Headers = Headers::EMPTY;

impl Headers {
    /// No operation at all.
    const EMPTY: Headers = Headers {
        request: HeaderOps::EMPTY,
        response: HeaderOps::EMPTY,
    };

    /// `None` when there is nothing to do, so that routes without operations stay small.
    pub(crate) fn boxed(self) -> Option<Box<Headers>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    /// Operations on the request sent upstream.
    pub fn request(&self) -> &HeaderOps {
        &self.request
    }
    /// Operations on the response returned to the caller.
    pub fn response(&self) -> &HeaderOps {
        &self.response
    }
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// `set`, `add`, `remove` in Istio's order: all sets (by name), then all adds (by name), then
/// removes. A request `set`/`add` of `host` or `:authority` is an authority rewrite, kept apart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderOps {
    pub(crate) set: Vec<(HeaderName, HeaderValue)>,
    pub(crate) add: Vec<(HeaderName, HeaderValue)>,
    pub(crate) remove: Vec<HeaderName>,
    pub(crate) authority: Option<(String, bool)>,
    /// The values of `set` and `add` as written (`%%` escapes and `%VARIABLE%`s kept), index for
    /// index, so that writing the configuration back says exactly what was read.
    pub(crate) set_written: Vec<String>,
    pub(crate) add_written: Vec<String>,
}

impl HeaderOps {
    const EMPTY: HeaderOps = HeaderOps {
        set: Vec::new(),
        add: Vec::new(),
        remove: Vec::new(),
        authority: None,
        set_written: Vec::new(),
        add_written: Vec::new(),
    };

    /// Overwrite or add.
    pub fn set(&self) -> &[(HeaderName, HeaderValue)] {
        &self.set
    }
    /// Append.
    pub fn add(&self) -> &[(HeaderName, HeaderValue)] {
        &self.add
    }
    /// Remove.
    pub fn remove(&self) -> &[HeaderName] {
        &self.remove
    }
    /// Authority set through `host` / `:authority` (request operations only).
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_ref().map(|(a, _)| a.as_str())
    }
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.authority.is_none()
    }
}

/// H1-H3: one `set`/`add`/`remove` block; `request` says whether it acts on requests.
pub(crate) fn validate_header_ops(
    cx: &mut Cx<'_>,
    p: &Path<'_>,
    ops: Option<&raw::HeaderOperations>,
    request: bool,
) -> HeaderOps {
    let mut out = HeaderOps::default();
    let Some(ops) = ops else { return out };
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        let fp = p.key(field);
        for (name, value) in map {
            let np = fp.key(name);
            if name.is_empty() {
                cx.error(&np, "header name cannot be empty");
                continue;
            }
            let is_authority = name.eq_ignore_ascii_case("host") || name == ":authority";
            if let Some(why) = names::header_value_problem(value) {
                cx.error(&np, why);
                continue;
            }
            if request && is_authority {
                if out.authority.is_none() || field == "set" {
                    out.authority = Some((value.clone(), field == "set"));
                }
                continue;
            }
            if !request && name.eq_ignore_ascii_case("host") {
                cx.error(&np, "the host header cannot be changed on a response");
                continue;
            }
            if name.starts_with(':') {
                cx.error(&np, format!("pseudo-header {name:?} cannot be changed; only :authority (on requests) can"));
                continue;
            }
            if value.contains('%') && value.replace("%%", "").contains('%') {
                cx.warn(&np, "Envoy %VARIABLE% substitution is not performed by this library; the value is sent as written");
            }
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value.replace("%%", "%")),
            ) {
                (Ok(n), Ok(v)) => {
                    if field == "set" {
                        out.set.push((n, v));
                        out.set_written.push(value.clone());
                    } else {
                        out.add.push((n, v));
                        out.add_written.push(value.clone());
                    }
                }
                (Err(_), _) => cx.error(&np, format!("{name:?} is not a valid HTTP header name")),
                (_, Err(_)) => cx.error(&np, "not a valid HTTP header value"),
            }
        }
    }
    let rp = p.key("remove");
    for (i, name) in ops.remove.iter().enumerate() {
        let ip = rp.index(i);
        if name.is_empty() {
            cx.error(&ip, "header name cannot be empty");
        } else if name.eq_ignore_ascii_case("host") {
            cx.error(&ip, "the host header cannot be removed");
        } else if name.starts_with(':') {
            cx.error(&ip, format!("pseudo-header {name:?} cannot be removed"));
        } else {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => out.remove.push(n),
                Err(_) => cx.error(&ip, format!("{name:?} is not a valid HTTP header name")),
            }
        }
    }
    out
}

/// A `headers` block (request and response operations).
pub(crate) fn validate_headers(cx: &mut Cx<'_>, p: &Path<'_>, h: Option<&raw::Headers>) -> Headers {
    let Some(h) = h else {
        return Headers::default();
    };
    Headers {
        request: validate_header_ops(cx, &p.key("request"), h.request.as_ref(), true),
        response: validate_header_ops(cx, &p.key("response"), h.response.as_ref(), false),
    }
}
