//! Header operations of routes and destinations, compiled once: names and values parsed, the
//! authority rewrite kept apart, applied to a request's or response's headers in one place.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `set`, `add` and `remove` for one direction (request or response).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    set: Box<[(HeaderName, HeaderValue)]>,
    add: Box<[(HeaderName, HeaderValue)]>,
    remove: Box<[HeaderName]>,
}

impl HeaderOps {
    pub(crate) fn from_model(ops: &mesh_model::HeaderOps) -> Self {
        HeaderOps {
            set: ops.set().into(),
            add: ops.add().into(),
            remove: ops.remove().into(),
        }
    }

    /// Headers overwritten (or added when absent).
    pub fn set(&self) -> &[(HeaderName, HeaderValue)] {
        &self.set
    }
    /// Headers appended.
    pub fn add(&self) -> &[(HeaderName, HeaderValue)] {
        &self.add
    }
    /// Headers removed.
    pub fn remove(&self) -> &[HeaderName] {
        &self.remove
    }
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the operations to `headers` as Envoy's header parser does: removes first,
    /// then sets (replacing every value), then adds (appending). So `remove: [x]` with
    /// `set: {x: v}` leaves `x: v`, and a name both set and added ends with both values.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in self.remove.iter() {
            headers.remove(name);
        }
        for (name, value) in self.set.iter() {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in self.add.iter() {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// The `headers` block of a route or a destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteHeaders {
    request: HeaderOps,
    response: HeaderOps,
}

impl RouteHeaders {
    pub(crate) fn from_model(h: &mesh_model::Headers) -> Self {
        RouteHeaders {
            request: HeaderOps::from_model(h.request()),
            response: HeaderOps::from_model(h.response()),
        }
    }

    /// Operations on the request sent upstream (without the authority rewrite, which the
    /// decision reports on its own).
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
