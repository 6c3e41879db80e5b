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

use std::fmt;
use std::sync::Arc;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something worth knowing; never fails anything.
    Note,
    /// Accepted, but probably not what was meant (or not enforced by this library).
    Warning,
    /// Rejected: Istio would refuse the resource.
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
    pub(crate) resource: Option<ResourceRef>,
    pub(crate) path: String,
    pub(crate) line: Option<u32>,
    pub(crate) message: String,
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
        self.resource.as_ref()
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
            Some(r) => write!(f, "{}/{}: ", r.kind_name, r.name)?,
            None => write!(f, "document {}: ", self.document)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// One step of a field path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A field path built on the stack while walking a resource: `p.key("http").index(1)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Option<Seg<'a>>,
}

impl<'a> Path<'a> {
    pub(crate) const ROOT: Path<'static> = Path {
        parent: None,
        seg: None,
    };

    pub(crate) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            seg: Some(Seg::Key(key)),
        }
    }

    pub(crate) fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Some(Seg::Index(index)),
        }
    }

    /// The last key of the path (`maxRetries` for `...http.maxRetries`), or "" at an index.
    pub(crate) fn last_key(&self) -> &'a str {
        match self.seg {
            Some(Seg::Key(k)) => k,
            _ => "",
        }
    }

    pub(crate) fn segments(&self) -> Vec<Seg<'a>> {
        let mut out = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            if let Some(s) = p.seg {
                out.push(s);
            }
            cur = p.parent;
        }
        out.reverse();
        out
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_segments(f, &self.segments())
    }
}

pub(crate) fn write_segments(f: &mut impl fmt::Write, segs: &[Seg<'_>]) -> fmt::Result {
    for (i, s) in segs.iter().enumerate() {
        match s {
            Seg::Index(n) => write!(f, "[{n}]")?,
            Seg::Key(k) => {
                let plain = !k.is_empty() && !k.contains(['.', '[', ']', '"']);
                if plain {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    f.write_str(k)?;
                } else {
                    write!(f, "[{k:?}]")?;
                }
            }
        }
    }
    Ok(())
}

/// What one line of block-style YAML looks like to [`LineIndex`].
#[derive(Debug, Clone, Copy)]
struct LineInfo {
    /// Leading spaces.
    indent: usize,
    /// Column of the first key after any `- ` item markers.
    col: usize,
    /// Byte offset of that key in the line.
    rest: usize,
    /// The line starts a sequence item.
    item: bool,
}

/// A cached step of [`LineIndex::locate`]: the range searched and the segment looked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum StepKey {
    Key(usize, usize, String),
    Items(usize, usize),
}

#[derive(Debug, Clone)]
enum StepValue {
    /// Found line, and the range of its children.
    Key(Option<(usize, usize, usize)>),
    /// Lines of the items at the outermost indentation.
    Items(Vec<usize>),
}

/// The lines of one YAML document, pre-scanned once so that finding the line of a field path
/// costs little per diagnostic: every step's result is memoised, so thousands of diagnostics
/// under one list do not rescan the document (hostile input stays linear).
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    lines: Vec<&'t str>,
    info: Vec<Option<LineInfo>>,
    cache: std::cell::RefCell<std::collections::HashMap<StepKey, StepValue>>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let info = lines
            .iter()
            .map(|line| {
                let trimmed = line.trim_start_matches(' ');
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                    return None;
                }
                let indent = line.len() - trimmed.len();
                let mut rest = trimmed;
                let mut col = indent;
                while let Some(r) = rest.strip_prefix("- ") {
                    let r2 = r.trim_start_matches(' ');
                    col += 2 + (r.len() - r2.len());
                    rest = r2;
                }
                Some(LineInfo {
                    indent,
                    col,
                    rest: line.len() - rest.len(),
                    item: trimmed.starts_with('-'),
                })
            })
            .collect();
        LineIndex {
            lines,
            info,
            cache: Default::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Finds the line of a field path. Best effort: flow style and unusual layouts fall back to
    /// the deepest ancestor found. Returns a 0-based line index.
    pub(crate) fn locate(&self, segs: &[Seg<'_>]) -> Option<usize> {
        let mut found = None;
        let mut start = 0;
        let mut end = self.lines.len();
        for seg in segs {
            match seg {
                Seg::Key(k) => {
                    let Some((i, s, e)) = self.key_step(start, end, k) else {
                        break;
                    };
                    found = Some(i);
                    start = s;
                    end = e;
                }
                Seg::Index(n) => {
                    let items = self.items(start, end);
                    let Some(&i) = items.get(*n) else {
                        break;
                    };
                    found = Some(i);
                    end = items.get(n + 1).copied().unwrap_or(end);
                    start = i;
                }
            }
        }
        found
    }

    fn key_step(&self, start: usize, end: usize, k: &str) -> Option<(usize, usize, usize)> {
        let ck = StepKey::Key(start, end, k.to_owned());
        if let Some(StepValue::Key(v)) = self.cache.borrow().get(&ck) {
            return *v;
        }
        let v = self.key_step_uncached(start, end, k);
        self.cache.borrow_mut().insert(ck, StepValue::Key(v));
        v
    }

    fn key_step_uncached(
        &self,
        start: usize,
        end: usize,
        k: &str,
    ) -> Option<(usize, usize, usize)> {
        let infos = || (start..end).filter_map(|i| self.info[i].map(|x| (i, x)));
        let c = infos().map(|(_, x)| x.col).min()?;
        let (i, _) =
            infos().find(|(i, x)| x.col == c && key_matches(&self.lines[*i][x.rest..], k))?;
        let mut j = i + 1;
        while j < end {
            if let Some(x) = self.info[j] {
                if x.indent < c || (x.indent == c && !x.item) {
                    break;
                }
            }
            j += 1;
        }
        // A scalar or flow value on the same line: nothing deeper to find.
        if j == i + 1 {
            return Some((i, i, i + 1));
        }
        Some((i, i + 1, j))
    }

    fn items(&self, start: usize, end: usize) -> Vec<usize> {
        let ck = StepKey::Items(start, end);
        if let Some(StepValue::Items(v)) = self.cache.borrow().get(&ck) {
            return v.clone();
        }
        let all: Vec<(usize, usize)> = (start..end)
            .filter_map(|i| {
                let x = self.info[i]?;
                x.item.then_some((i, x.indent))
            })
            .collect();
        let v: Vec<usize> = match all.iter().map(|t| t.1).min() {
            Some(min) => all
                .into_iter()
                .filter(|t| t.1 == min)
                .map(|t| t.0)
                .collect(),
            None => Vec::new(),
        };
        self.cache
            .borrow_mut()
            .insert(ck, StepValue::Items(v.clone()));
        v
    }
}

fn key_matches(rest: &str, key: &str) -> bool {
    for quote in ["", "\"", "'"] {
        if let Some(r) = rest.strip_prefix(quote) {
            if let Some(r) = r.strip_prefix(key) {
                if let Some(r) = r.strip_prefix(quote) {
                    if r.starts_with(':') {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Finds the line of a field path in block-style YAML lines (see [`LineIndex::locate`]).
#[cfg(test)]
fn locate(lines: &[&str], segs: &[Seg<'_>]) -> Option<usize> {
    let text = lines.join("\n");
    LineIndex::new(&text).locate(segs)
}

/// Collects diagnostics for one document.
#[derive(Debug)]
pub(crate) struct Cx<'t> {
    pub(crate) source: Arc<str>,
    pub(crate) document: usize,
    pub(crate) resource: Option<ResourceRef>,
    pub(crate) index: LineIndex<'t>,
    pub(crate) first_line: usize,
    pub(crate) out: Vec<Diagnostic>,
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
        self.out.push(Diagnostic {
            severity,
            source: self.source.clone(),
            document: self.document,
            resource: self.resource.clone(),
            path: rendered,
            line,
            message: message.into(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn render(p: &Path<'_>) -> String {
        p.to_string()
    }

    #[test]
    fn paths_render_like_kubectl_explain() {
        let root = Path::ROOT;
        let spec = root.key("spec");
        let http = spec.key("http");
        let h1 = http.index(1);
        let route = h1.key("route");
        let r0 = route.index(0);
        assert_eq!(render(&r0.key("weight")), "spec.http[1].route[0].weight");
        let labels = spec.key("labels");
        assert_eq!(
            render(&labels.key("app.kubernetes.io/name")),
            "spec.labels[\"app.kubernetes.io/name\"]"
        );
    }

    #[test]
    fn locate_block_yaml() {
        let text = "apiVersion: v1\nspec:\n  hosts:\n  - a\n  http:\n  - match:\n    - uri: {prefix: /}\n    route:\n    - destination:\n        host: a\n      weight: 3\n    - destination:\n        host: b\n      weight: 0\n";
        let lines: Vec<&str> = text.lines().collect();
        let segs = [
            Seg::Key("spec"),
            Seg::Key("http"),
            Seg::Index(0),
            Seg::Key("route"),
            Seg::Index(1),
            Seg::Key("weight"),
        ];
        assert_eq!(locate(&lines, &segs), Some(13));
        let segs = [Seg::Key("spec"), Seg::Key("hosts"), Seg::Index(0)];
        assert_eq!(locate(&lines, &segs), Some(3));
        let segs = [
            Seg::Key("spec"),
            Seg::Key("http"),
            Seg::Index(0),
            Seg::Key("match"),
            Seg::Index(0),
            Seg::Key("uri"),
            Seg::Key("prefix"),
        ];
        assert_eq!(locate(&lines, &segs), Some(6));
        let segs = [Seg::Key("spec"), Seg::Key("nothere")];
        assert_eq!(
            locate(&lines, &segs),
            Some(1),
            "falls back to the deepest ancestor"
        );
        let segs = [Seg::Key("nothere")];
        assert_eq!(locate(&lines, &segs), None);
    }
}
