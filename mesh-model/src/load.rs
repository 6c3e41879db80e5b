//! Loading: multi-document YAML and `kind: List` in, a [`MeshConfig`] and diagnostics out.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::diag::{Cx, Diagnostic, Kind, LineIndex, Path, ResourceRef, Seg, Severity};
use crate::{analysis, destination_rule, raw, service_entry, unknown, virtual_service};
use crate::{DestinationRule, ServiceEntry, VirtualService};

/// How unknown fields and warnings are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Unknown fields are warnings (the resource still loads), as `kubectl apply` with a
    /// pruning schema would silently drop them.
    #[default]
    Standard,
    /// Unknown fields are errors: for linting config in CI.
    Strict,
}

/// Largest source text the loader reads, in bytes.
pub const MAX_SOURCE_BYTES: usize = 64 << 20;

/// Most documents (list items included) read from one source.
pub const MAX_DOCUMENTS: usize = 100_000;

/// Deepest `[` / `{` nesting a document may have. Istio resources nest a few levels; the YAML
/// parser's time grows with the square of the nesting depth, so deeper documents are refused
/// before parsing.
pub const MAX_FLOW_NESTING: usize = 128;

/// The validated resources of a configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshConfig {
    pub(crate) virtual_services: Vec<VirtualService>,
    pub(crate) destination_rules: Vec<DestinationRule>,
    pub(crate) service_entries: Vec<ServiceEntry>,
}

impl MeshConfig {
    /// Virtual services in load order (which is the precedence order this library uses where
    /// Istio would use creation time).
    pub fn virtual_services(&self) -> &[VirtualService] {
        &self.virtual_services
    }
    /// Destination rules in load order.
    pub fn destination_rules(&self) -> &[DestinationRule] {
        &self.destination_rules
    }
    /// Service entries in load order.
    pub fn service_entries(&self) -> &[ServiceEntry] {
        &self.service_entries
    }
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.virtual_services.is_empty()
            && self.destination_rules.is_empty()
            && self.service_entries.is_empty()
    }
    /// The configuration as multi-document YAML, one resource per document: virtual services,
    /// then destination rules, then service entries.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        let mut push = |s: Result<String, serde_yaml::Error>| {
            if let Ok(s) = s {
                if !out.is_empty() {
                    out.push_str("---\n");
                }
                out.push_str(&s);
            }
        };
        for vs in &self.virtual_services {
            push(serde_yaml::to_string(&vs.to_raw()));
        }
        for dr in &self.destination_rules {
            push(serde_yaml::to_string(&dr.to_raw()));
        }
        for se in &self.service_entries {
            push(serde_yaml::to_string(&se.to_raw()));
        }
        out
    }
}

/// What loading produced: the resources that passed validation and every diagnostic.
///
/// A document with an error is left out of the configuration; the others still load.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub(crate) config: MeshConfig,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// The valid resources.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }
    /// Takes the configuration.
    pub fn into_config(self) -> MeshConfig {
        self.config
    }
    /// Every diagnostic, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
    /// Only the errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
    /// Only the warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
    /// The configuration if there was no error at all, else every diagnostic.
    pub fn into_result(self) -> Result<MeshConfig, Vec<Diagnostic>> {
        if self.has_errors() {
            Err(self.diagnostics)
        } else {
            Ok(self.config)
        }
    }
}

/// Reads several sources into one configuration, then runs the cross-resource analysis.
///
/// ```
/// let mut loader = mesh_model::Loader::new();
/// loader.add_str("vs.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n");
/// let loaded = loader.finish();
/// // No DestinationRule defines subset v9 for reviews: at run time that is Envoy's 503 NC.
/// assert!(loaded.errors().any(|d| d.path() == "spec.http[0].route[0].destination.subset"));
/// ```
#[derive(Debug, Default)]
pub struct Loader {
    strictness: Strictness,
    skip_analysis: bool,
    loaded: Loaded,
    texts: Vec<(Arc<str>, String)>,
}

impl Loader {
    /// A loader with [`Strictness::Standard`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how unknown fields are treated.
    pub fn strictness(mut self, s: Strictness) -> Self {
        self.strictness = s;
        self
    }

    /// Turns the cross-resource analysis off (each resource is then validated on its own).
    pub fn without_analysis(mut self) -> Self {
        self.skip_analysis = true;
        self
    }

    /// Reads one source (a file's text); `source` names it in diagnostics.
    pub fn add_str(&mut self, source: &str, text: &str) -> &mut Self {
        let source: Arc<str> = Arc::from(source);
        if text.len() > MAX_SOURCE_BYTES {
            self.loaded.diagnostics.push(Diagnostic {
                severity: Severity::Error,
                source,
                document: 0,
                resource: None,
                path: String::new(),
                line: None,
                message: format!("the source is {} bytes; at most {} MiB are read: split the configuration into several files", text.len(), MAX_SOURCE_BYTES >> 20),
            });
            return self;
        }
        self.texts.push((source.clone(), text.to_owned()));
        for (index, (doc, first_line)) in split_documents(text).into_iter().enumerate() {
            if index >= MAX_DOCUMENTS {
                let mut cx = Cx::new(source.clone(), index, doc, first_line);
                cx.error(
                    &Path::ROOT,
                    format!(
                        "more than {MAX_DOCUMENTS} documents in one source; the rest are not read"
                    ),
                );
                self.loaded.diagnostics.extend(cx.out);
                break;
            }
            self.load_document(&source, index, doc, first_line);
        }
        self
    }

    /// Finishes: the cross-resource analysis (unless turned off), then delegation: every root
    /// route with `delegate` is replaced by the delegate's routes merged into it (istio-semantics
    /// §1.16), so the returned configuration holds no [`crate::RouteAction::Delegate`].
    pub fn finish(mut self) -> Loaded {
        // Analysis first, so that its findings point at the routes as written (delegate routes
        // in their own document); then delegation is applied to the configuration.
        let mut findings = if self.skip_analysis {
            Vec::new()
        } else {
            analysis::analyze(&self.loaded.config)
        };
        let merged = crate::delegate::merge_delegates(&mut self.loaded.config);
        if !self.skip_analysis {
            findings.extend(merged);
        }
        // Each source is split, and each document indexed, at most once.
        let mut split: std::collections::HashMap<usize, Vec<(&str, usize)>> =
            std::collections::HashMap::new();
        let mut indexes: std::collections::HashMap<(usize, usize), (LineIndex<'_>, usize)> =
            std::collections::HashMap::new();
        for f in findings {
            let segs = to_segs(&f.path);
            let mut rendered = String::new();
            let _ = crate::diag::write_segments(&mut rendered, &segs);
            let line = self
                .texts
                .iter()
                .position(|(s, _)| *s == f.source)
                .and_then(|t| {
                    let (index, first) = match indexes.entry((t, f.document)) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let docs = split
                                .entry(t)
                                .or_insert_with(|| split_documents(&self.texts[t].1));
                            let (doc, first) = *docs.get(f.document)?;
                            v.insert((LineIndex::new(doc), first))
                        }
                    };
                    index.locate(&segs).map(|i| (i + *first + 1) as u32)
                });
            self.loaded.diagnostics.push(Diagnostic {
                severity: f.severity,
                source: f.source,
                document: f.document,
                resource: Some(f.resource),
                path: rendered,
                line,
                message: f.message,
            });
        }
        self.loaded
    }

    fn load_document(&mut self, source: &Arc<str>, index: usize, text: &str, first_line: usize) {
        let mut cx = Cx::new(source.clone(), index, text, first_line);
        if let Some(line) = flow_nesting_over(text, MAX_FLOW_NESTING) {
            cx.out.push(Diagnostic {
                severity: Severity::Error,
                source: source.clone(),
                document: index,
                resource: None,
                path: String::new(),
                line: Some((line + first_line + 1) as u32),
                message: format!(
                    "not read: brackets nest deeper than {MAX_FLOW_NESTING} levels; Istio resources never need that, write the structure in block style"
                ),
            });
            self.loaded.diagnostics.extend(cx.out);
            return;
        }
        let value: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map(|l| (l.line() + first_line) as u32);
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                cx.out.push(Diagnostic {
                    severity: Severity::Error,
                    source: source.clone(),
                    document: index,
                    resource: None,
                    path: String::new(),
                    line,
                    message: format!("not valid YAML: {msg}"),
                });
                self.loaded.diagnostics.extend(cx.out);
                return;
            }
        };
        self.load_value(&mut cx, &[], value);
        self.loaded.diagnostics.extend(cx.out);
    }

    fn load_value(&mut self, cx: &mut Cx<'_>, prefix: &[String], value: serde_yaml::Value) {
        let serde_yaml::Value::Mapping(map) = &value else {
            if !value.is_null() {
                cx.error(
                    &Path::ROOT,
                    "a document must be a mapping with apiVersion, kind, metadata and spec",
                );
            }
            return;
        };
        let get = |k: &str| map.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let kind_name = get("kind").unwrap_or_default();
        let api_version = get("apiVersion").unwrap_or_default();
        if kind_name == "List" || kind_name.ends_with("List") && map.contains_key("items") {
            let items = map
                .get("items")
                .and_then(|v| v.as_sequence())
                .cloned()
                .unwrap_or_default();
            for (i, item) in items.into_iter().enumerate() {
                let mut p = prefix.to_vec();
                p.push("items".into());
                p.push(format!("[{i}]"));
                self.load_value(cx, &p, item);
            }
            return;
        }
        let kind = match kind_name.as_str() {
            "VirtualService" => Kind::VirtualService,
            "DestinationRule" => Kind::DestinationRule,
            "ServiceEntry" => Kind::ServiceEntry,
            "" => {
                with_prefix(cx, prefix, |cx, p| {
                    cx.error(
                        &p.key("kind"),
                        "kind is missing: this document is not a Kubernetes resource",
                    )
                });
                return;
            }
            other => {
                let name = map
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                with_prefix(cx, prefix, |cx, p| {
                    cx.note(p, format!("skipped {other}/{name}: unsupported kind; only VirtualService, DestinationRule and ServiceEntry are read"))
                });
                return;
            }
        };
        let meta = map.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(crate::meta::DEFAULT_NAMESPACE)
            .to_owned();
        let saved = cx.resource.replace(ResourceRef {
            kind: Some(kind),
            kind_name: kind_name.clone(),
            namespace,
            name,
        });
        let errors_before = cx.out.iter().filter(|d| d.is_error()).count();
        let supported = ["v1", "v1beta1", "v1alpha3"];
        match api_version.strip_prefix("networking.istio.io/") {
            Some(v) if supported.contains(&v) => match kind {
                Kind::VirtualService => {
                    if let Some(r) =
                        self.deserialize::<raw::VirtualService>(cx, prefix, kind, value)
                    {
                        let vs = with_prefix(cx, prefix, |cx, _| virtual_service::validate(cx, &r));
                        if cx.out.iter().filter(|d| d.is_error()).count() == errors_before {
                            self.loaded.config.virtual_services.push(vs);
                        }
                    }
                }
                Kind::DestinationRule => {
                    if let Some(r) =
                        self.deserialize::<raw::DestinationRule>(cx, prefix, kind, value)
                    {
                        let dr =
                            with_prefix(cx, prefix, |cx, _| destination_rule::validate(cx, &r));
                        if cx.out.iter().filter(|d| d.is_error()).count() == errors_before {
                            self.loaded.config.destination_rules.push(dr);
                        }
                    }
                }
                Kind::ServiceEntry => {
                    if let Some(r) = self.deserialize::<raw::ServiceEntry>(cx, prefix, kind, value)
                    {
                        let se = with_prefix(cx, prefix, |cx, _| service_entry::validate(cx, &r));
                        if cx.out.iter().filter(|d| d.is_error()).count() == errors_before {
                            self.loaded.config.service_entries.push(se);
                        }
                    }
                }
            },
            _ => with_prefix(cx, prefix, |cx, p| {
                cx.error(
                    &p.key("apiVersion"),
                    format!("apiVersion {api_version:?} is not one this library reads for {kind_name}: use networking.istio.io/v1 (v1beta1 and v1alpha3 are accepted too)"),
                )
            }),
        }
        cx.resource = saved;
    }

    fn deserialize<T: DeserializeOwned>(
        &mut self,
        cx: &mut Cx<'_>,
        prefix: &[String],
        kind: Kind,
        value: serde_yaml::Value,
    ) -> Option<T> {
        let mut ignored: Vec<Vec<String>> = Vec::new();
        let mut track = serde_path_to_error::Track::new();
        let result = {
            let de = serde_path_to_error::Deserializer::new(value, &mut track);
            serde_ignored::deserialize(de, |path| ignored.push(ignored_segments(&path)))
        };
        match result {
            Ok(r) => {
                for segs in ignored {
                    if segs
                        .first()
                        .is_some_and(|s| s == "metadata" || s == "status")
                    {
                        continue;
                    }
                    let (field, parent) = segs
                        .split_last()
                        .map(|(f, p)| (f.clone(), p.to_vec()))
                        .unwrap_or_default();
                    let parent_segs = to_segs(&parent);
                    let hint = unknown::known_fields(kind, &parent_segs)
                        .and_then(|known| unknown::suggest(&field, known))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    let msg = format!("unknown field `{field}`{hint} (unknown fields are ignored by Istio's schema and do nothing)");
                    let mut all = prefix.to_vec();
                    all.extend(segs.iter().cloned());
                    let severity = match self.strictness {
                        Strictness::Standard => Severity::Warning,
                        Strictness::Strict => Severity::Error,
                    };
                    let segs = to_segs(&all);
                    emit_at(cx, severity, &segs, msg);
                }
                Some(r)
            }
            Err(e) => {
                let mut all = prefix.to_vec();
                for seg in track.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            all.push(format!("[{index}]"))
                        }
                        serde_path_to_error::Segment::Map { key } => all.push(key.clone()),
                        serde_path_to_error::Segment::Enum { variant } => all.push(variant.clone()),
                        serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let msg = friendly_shape_error(&e.to_string());
                emit_at(cx, Severity::Error, &to_segs(&all), msg);
                None
            }
        }
    }
}

fn with_prefix<R>(
    cx: &mut Cx<'_>,
    prefix: &[String],
    f: impl FnOnce(&mut Cx<'_>, &Path<'_>) -> R,
) -> R {
    if prefix.is_empty() {
        return f(cx, &Path::ROOT);
    }
    // List items: validate into a scratch context, then prefix the paths of what it emitted.
    let before = cx.out.len();
    let r = f(cx, &Path::ROOT);
    let pre: String = {
        let mut s = String::new();
        for p in prefix {
            if p.starts_with('[') || s.is_empty() {
                s.push_str(p);
            } else {
                s.push('.');
                s.push_str(p);
            }
        }
        s
    };
    let first = cx.first_line;
    let index = &cx.index;
    for d in &mut cx.out[before..] {
        let rel = d.path.clone();
        d.path = if rel.is_empty() {
            pre.clone()
        } else if rel.starts_with('[') {
            format!("{pre}{rel}")
        } else {
            format!("{pre}.{rel}")
        };
        let segs = parse_rendered(&d.path);
        d.line = index
            .locate(&to_segs(&segs))
            .map(|i| (i + first + 1) as u32)
            .or(d.line);
    }
    r
}

/// Splits a rendered path back into segments (keys and `[i]`).
fn parse_rendered(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                let mut inner = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    inner.push(d);
                }
                if inner.starts_with('"') {
                    out.push(inner.trim_matches('"').to_owned());
                } else {
                    out.push(format!("[{inner}]"));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn to_segs(parts: &[String]) -> Vec<Seg<'_>> {
    parts
        .iter()
        .map(|p| {
            match p
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse().ok())
            {
                Some(i) => Seg::Index(i),
                None => Seg::Key(p.as_str()),
            }
        })
        .collect()
}

fn emit_at(cx: &mut Cx<'_>, severity: Severity, segs: &[Seg<'_>], message: String) {
    let mut rendered = String::new();
    let _ = crate::diag::write_segments(&mut rendered, segs);
    let line = cx
        .index
        .locate(segs)
        .map(|i| (i + cx.first_line + 1) as u32)
        .or(Some(cx.first_line as u32 + 1));
    cx.out.push(Diagnostic {
        severity,
        source: cx.source.clone(),
        document: cx.document,
        resource: cx.resource.clone(),
        path: rendered,
        line,
        message,
    });
}

fn ignored_segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(p: &serde_ignored::Path<'_>, out: &mut Vec<String>) {
        match p {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(format!("[{index}]"));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                out.push(key.clone());
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    walk(path, &mut out);
    out
}

fn friendly_shape_error(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    let msg = msg
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace(
            "expected a string",
            "expected a string (quote numbers and booleans to use them as text)",
        )
        .replace("expected struct ", "expected a mapping (")
        .replace("expected a sequence", "expected a list");
    let msg = if msg.contains("expected a mapping (") {
        format!("{msg})")
    } else {
        msg
    };
    format!("wrong shape: {msg}")
}

/// Checks the metadata every kind has.
pub(crate) fn check_metadata(cx: &mut Cx<'_>, m: &raw::ObjectMeta) {
    let p = Path::ROOT.key("metadata");
    match m.name.as_deref() {
        None | Some("") => cx.error(&p.key("name"), "metadata.name is required"),
        Some(n) => {
            let ok = n.len() <= 253
                && n.split('.')
                    .all(|l| crate::names::is_dns1123_label(l) && l == l.to_ascii_lowercase());
            if !ok {
                cx.error(
                    &p.key("name"),
                    format!(
                        "name {n:?} must be a lower-case DNS subdomain (letters, digits, '-', '.')"
                    ),
                );
            }
        }
    }
    if let Some(ns) = m.namespace.as_deref() {
        if !(ns.is_empty() || crate::names::is_dns1123_label(ns) && ns == ns.to_ascii_lowercase()) {
            cx.error(
                &p.key("namespace"),
                format!("namespace {ns:?} must be a lower-case DNS-1123 label"),
            );
        }
    }
}

/// The 0-based line where `[`/`{` nesting first goes deeper than `limit`, skipping quoted
/// strings and comments.
fn flow_nesting_over(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 0usize;
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' if matches!(prev, ' ' | '[' | '{' | ',' | ':' | '\n' | '-') => {
                    quote = Some(c)
                }
                '#' if prev.is_whitespace() => {
                    while chars.peek().is_some_and(|&n| n != '\n') {
                        chars.next();
                    }
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > limit {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        if c == '\n' {
            line += 1;
        }
        prev = c;
    }
    None
}

/// Splits text into YAML documents at `---` lines, returning each with its first line index.
fn split_documents(text: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut start_line = 0usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let l = line.trim_end_matches(['\n', '\r']);
        let is_marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t") || l == "...";
        if is_marker {
            out.push((&text[start..offset], start_line));
            start = offset + line.len();
            start_line = i + 1;
            if let Some(rest) = l.strip_prefix("--- ") {
                // Content on the marker line itself (rare): keep it with the next document.
                if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                    start = offset + 4;
                    start_line = i;
                }
            }
        }
        offset += line.len();
    }
    out.push((&text[start..], start_line));
    out.retain(|(doc, _)| {
        doc.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "...")
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let docs = split_documents("a: 1\n---\n# c\nb: 2\n---\n\n---\nc: 3\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].1, 2);
        assert_eq!(docs[2].1, 7);
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        assert_eq!(flow_nesting_over("a: [1, {b: [2]}]\n", 3), None);
        assert_eq!(flow_nesting_over("a: [[[[1]]]]\n", 3), Some(0));
        assert_eq!(
            flow_nesting_over("a: '[[[[' # [[[[\nb: \"{{{{\"\n", 3),
            None
        );
        let deep = format!("x: {}1{}\n", "[".repeat(8_000), "]".repeat(8_000));
        let loaded = crate::load_str("deep.yaml", &deep);
        let d = loaded.errors().next().expect("refused");
        assert!(d.message().contains("nest deeper than 128"), "{d}");
        assert_eq!(d.line(), Some(1));
    }

    #[test]
    fn rendered_paths_round_trip() {
        assert_eq!(
            parse_rendered("items[2].spec.http[0].x"),
            vec!["items", "[2]", "spec", "http", "[0]", "x"]
        );
        assert_eq!(parse_rendered("labels[\"a.b/c\"]"), vec!["labels", "a.b/c"]);
    }
}
