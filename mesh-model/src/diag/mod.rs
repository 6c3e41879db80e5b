//! Diagnostics: every problem found in a configuration, with where it is and how to fix it.
//!
//! A [`Diagnostic`] names the source (a file name or any label the caller gave), the index of the
//! YAML document in that source, the resource (`kind/namespace/name`), the field path written
//! like `spec.http[1].route[0].weight`, the line when it can be found, and a message that says
//! what is wrong and what is allowed.
//!
//! ```
//! let loaded = mesh_model::load_str("routes.yaml", "
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - route:
//!     - destination: {host: reviews, subset: v1}
//!       weight: -5
//!     - destination: {host: reviews, subset: v2}
//! ");
//! let d = loaded.errors().next().unwrap();
//! assert_eq!(d.path(), "spec.http[0].route[0].weight");
//! assert_eq!(d.line(), Some(10));
//! assert!(d.to_string().starts_with("routes.yaml:10: error: VirtualService/reviews: spec.http[0].route[0].weight:"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

mod echo;
mod line_index;
mod path;

pub(crate) use echo::{bound, bound_message};

pub(crate) use line_index::LineIndex;
pub(crate) use path::{write_segments, Path, Seg};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something worth knowing; never fails anything.
    Note,
    /// Accepted, but probably not what was meant (or not enforced by this library).
    Warning,
    /// Rejected: Istio would refuse the resource. An error of the cross-resource analysis
    /// ([`Diagnostic::is_analysis`]) is what `istioctl analyze` reports as an error: istiod
    /// accepts the resource, and so does the loader.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The kinds of resource this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `networking.istio.io` `VirtualService`.
    VirtualService,
    /// `networking.istio.io` `DestinationRule`.
    DestinationRule,
    /// `networking.istio.io` `ServiceEntry`.
    ServiceEntry,
}

impl Kind {
    /// The Kubernetes `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which resource a diagnostic is about: `kind/namespace/name`, plus where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    pub(crate) kind: Option<Kind>,
    pub(crate) kind_name: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ResourceRef {
    /// The resource kind when it is one of ours.
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }
    /// The `kind` string as written.
    pub fn kind_name(&self) -> &str {
        &self.kind_name
    }
    /// The namespace (`default` when the document names none).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The name (empty when the document names none).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind_name, self.namespace, self.name)
    }
}

/// One problem (or remark) about one field of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub(crate) severity: Severity,
    pub(crate) source: Arc<str>,
    pub(crate) document: usize,
    /// Shared by every diagnostic of the resource.
    pub(crate) resource: Option<Arc<ResourceRef>>,
    pub(crate) path: String,
    pub(crate) line: Option<u32>,
    pub(crate) message: String,
    /// A finding of the cross-resource analysis (see [`Diagnostic::is_analysis`]).
    pub(crate) analysis: bool,
}

impl Diagnostic {
    /// Error, warning or note.
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// The source name given to the loader (usually a file path).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Index of the YAML document in the source, from 0.
    pub fn document(&self) -> usize {
        self.document
    }
    /// The resource, when the document got far enough to name one.
    pub fn resource(&self) -> Option<&ResourceRef> {
        self.resource.as_deref()
    }
    /// The field path from the document root, like `spec.http[1].route[0].weight`; empty for the
    /// whole document.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The 1-based line in the source, when it could be found.
    pub fn line(&self) -> Option<u32> {
        self.line
    }
    /// What is wrong and what is allowed. The wording is not a stable interface.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    /// Whether this is a finding of the cross-resource analysis, as `istioctl analyze` reports
    /// it (an undefined subset, for one): istiod accepts the configuration, so an analysis
    /// error does not refuse anything. [`Loaded::into_result`](crate::Loaded::into_result)
    /// succeeds in spite of it, and the mesh runs the configuration as Envoy would (a route to
    /// an undefined subset answers 503 `NC`).
    pub fn is_analysis(&self) -> bool {
        self.analysis
    }
    /// Whether this is an error that refuses a resource: an error istiod would give, not an
    /// analysis finding.
    pub fn is_refusal(&self) -> bool {
        self.is_error() && !self.analysis
    }
}

/// `FILE:LINE: SEVERITY: KIND/NAME: FIELD.PATH: MESSAGE`, with line 0 where it is unknown.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: ",
            self.source,
            self.line.unwrap_or(0),
            self.severity
        )?;
        match &self.resource {
            Some(r) => write!(f, "{}/{}: ", bound(&r.kind_name), bound(&r.name))?,
            None => write!(f, "document {}: ", self.document)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Collects diagnostics for one document.
#[derive(Debug)]
pub(crate) struct Cx<'t> {
    pub(crate) source: Arc<str>,
    pub(crate) document: usize,
    pub(crate) resource: Option<Arc<ResourceRef>>,
    pub(crate) index: LineIndex<'t>,
    pub(crate) first_line: usize,
    pub(crate) out: Vec<Diagnostic>,
    /// Errors in `out`.
    pub(crate) errors: usize,
    /// Compiled regex program the configuration may still use; the loader carries it from one
    /// document to the next.
    pub(crate) regex_budget: usize,
}

impl<'t> Cx<'t> {
    pub(crate) fn new(source: Arc<str>, document: usize, text: &'t str, first_line: usize) -> Self {
        Cx {
            source,
            document,
            resource: None,
            index: LineIndex::new(text),
            first_line,
            out: Vec::new(),
            errors: 0,
            regex_budget: usize::MAX,
        }
    }

    pub(crate) fn emit(&mut self, severity: Severity, path: &Path<'_>, message: impl Into<String>) {
        let segs = path.segments();
        let mut rendered = String::new();
        let _ = write_segments(&mut rendered, &segs);
        let line = self
            .index
            .locate(&segs)
            .map(|i| (i + self.first_line + 1) as u32)
            .or_else(|| (!self.index.is_empty()).then_some(self.first_line as u32 + 1));
        let d = Diagnostic {
            severity,
            source: self.source.clone(),
            document: self.document,
            resource: self.resource.clone(),
            path: rendered,
            line,
            message: message.into(),
            analysis: false,
        };
        self.push(d);
    }

    /// Adds a diagnostic built elsewhere.
    pub(crate) fn push(&mut self, mut d: Diagnostic) {
        if let Cow::Owned(m) = bound_message(&d.message) {
            d.message = m;
        }
        if d.is_error() {
            self.errors += 1;
        }
        self.out.push(d);
    }

    pub(crate) fn error(&mut self, path: &Path<'_>, message: impl Into<String>) {
        self.emit(Severity::Error, path, message);
    }

    pub(crate) fn warn(&mut self, path: &Path<'_>, message: impl Into<String>) {
        self.emit(Severity::Warning, path, message);
    }

    pub(crate) fn note(&mut self, path: &Path<'_>, message: impl Into<String>) {
        self.emit(Severity::Note, path, message);
    }
}
