//! Loading: multi-document YAML and `kind: List` in, a [`MeshConfig`] and diagnostics out.

use std::collections::HashMap;
use std::sync::Arc;

use crate::analysis;
use crate::config::Loaded;
use crate::destination_rule::validate_destination_rule;
use crate::diag::{Cx, Diagnostic, Kind, LineIndex, Path, ResourceRef, Severity};
use crate::service_entry::validate_service_entry;
use crate::virtual_service::validate_virtual_service;

use documents::split_documents;
use nesting::flow_nesting_over;
use paths::{to_segs, with_prefix};
use shape::deserialize_resource;

pub use yaml::{MAX_ALIAS_BYTES, MAX_ALIAS_NODES};

mod documents;
mod nesting;
pub(crate) mod paths;
mod shape;
mod yaml;

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

/// Reads several sources into one configuration, then runs the cross-resource analysis.
///
/// ```
/// let mut loader = mesh_model::Loader::new();
/// loader.add_str("vs.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n");
/// let loaded = loader.finish();
/// // No DestinationRule defines subset v9 for reviews: at run time that is Envoy's 503 NC.
/// assert!(loaded.errors().any(|d| d.path() == "spec.http[0].route[0].destination.subset"));
/// ```
#[derive(Debug)]
pub struct Loader {
    strictness: Strictness,
    skip_analysis: bool,
    loaded: Loaded,
    texts: Vec<(Arc<str>, String)>,
    /// Compiled regex program still allowed (see [`crate::MAX_CONFIG_REGEX_BYTES`]).
    regex_budget: usize,
    /// Where each resource loaded so far is in the configuration, by kind, namespace and name.
    defined: HashMap<(Kind, String, String), Defined>,
    /// Whether a document that may have been a virtual service was refused.
    virtual_service_refused: bool,
}

/// Where a resource was read and where it went.
#[derive(Debug)]
struct Defined {
    /// Position in its kind's list of the configuration.
    at: usize,
    source: Arc<str>,
    document: usize,
}

impl Default for Loader {
    fn default() -> Self {
        Loader {
            strictness: Strictness::default(),
            skip_analysis: false,
            loaded: Loaded::default(),
            texts: Vec::new(),
            regex_budget: crate::matching::MAX_CONFIG_REGEX_BYTES,
            defined: HashMap::new(),
            virtual_service_refused: false,
        }
    }
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

    fn unknown_field_severity(&self) -> Severity {
        match self.strictness {
            Strictness::Standard => Severity::Warning,
            Strictness::Strict => Severity::Error,
        }
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
                analysis: false,
                message: format!("the source is {} bytes; at most {} MiB are read: split the configuration into several files", text.len(), MAX_SOURCE_BYTES >> 20),
            });
            return self;
        }
        // A byte order mark is not content (editors on Windows write one).
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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

    /// Records a problem found before a source's text could be given (a file that cannot be
    /// read, a link to nothing): it is reported with the other diagnostics, under `source`, and
    /// an error fails the configuration like any other.
    ///
    /// ```
    /// use mesh_model::{Loader, Severity};
    /// let mut loader = Loader::new();
    /// loader.add_problem("conf/old.yaml", Severity::Warning, "a link to a file that does not exist; skipped");
    /// let loaded = loader.finish();
    /// assert_eq!(loaded.warnings().next().unwrap().source(), "conf/old.yaml");
    /// ```
    pub fn add_problem(&mut self, source: &str, severity: Severity, message: &str) -> &mut Self {
        self.loaded.diagnostics.push(Diagnostic {
            severity,
            source: Arc::from(source),
            document: 0,
            resource: None,
            path: String::new(),
            line: None,
            analysis: false,
            message: crate::diag::bound_message(message).into_owned(),
        });
        self
    }

    /// Finishes: the cross-resource analysis (unless turned off), then delegation: every root
    /// route with `delegate` is replaced by the delegate's routes merged into it (istio-semantics
    /// §1.16), so the returned configuration holds no [`crate::RouteAction::Delegate`].
    pub fn finish(mut self) -> Loaded {
        // Analysis first, so that its findings point at the routes as written (delegate routes
        // in their own document); then delegation is applied to the configuration.
        // Each finding with whether it is the analysis's (reported, never refusing).
        let mut findings: Vec<(analysis::Finding, bool)> = if self.skip_analysis {
            Vec::new()
        } else {
            analysis::analyze(&self.loaded.config, !self.virtual_service_refused)
                .into_iter()
                .map(|f| (f, true))
                .collect()
        };
        let merged = crate::delegate::merge_delegates(&mut self.loaded.config);
        // Warnings about delegation belong to the analysis; an error is always reported.
        findings.extend(
            merged
                .into_iter()
                .filter(|f| !self.skip_analysis || f.severity == Severity::Error)
                .map(|f| (f, false)),
        );
        // Each source is split, and each document indexed, at most once.
        let mut split: std::collections::HashMap<usize, Vec<(&str, usize)>> =
            std::collections::HashMap::new();
        let mut indexes: std::collections::HashMap<(usize, usize), (LineIndex<'_>, usize)> =
            std::collections::HashMap::new();
        let mut by_source: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::new();
        for (i, (s, _)) in self.texts.iter().enumerate() {
            by_source.entry(s).or_insert(i);
        }
        for (f, from_analysis) in findings {
            let segs = to_segs(&f.path);
            let line = by_source.get(&*f.source).copied().and_then(|t| {
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
            self.loaded
                .diagnostics
                .push(f.into_diagnostic(line, from_analysis));
        }
        // An empty configuration nothing else explains (a foreign kind is only a note).
        let explained = self
            .loaded
            .diagnostics
            .iter()
            .any(|d| d.severity >= Severity::Warning);
        if self.loaded.config.is_empty() && !explained {
            let sources: Vec<&str> = self.texts.iter().map(|(s, _)| &**s).collect();
            self.loaded.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                source: Arc::from(sources.first().copied().unwrap_or("")),
                document: 0,
                resource: None,
                path: String::new(),
                line: None,
                analysis: false,
                message: match sources.len() {
                    0 => "the configuration is empty: no source was read".to_owned(),
                    n => format!(
                        "the configuration is empty: no VirtualService, DestinationRule or ServiceEntry in {n} source{}",
                        if n == 1 { "" } else { "s" }
                    ),
                },
            });
        }
        self.loaded
    }

    fn load_document(&mut self, source: &Arc<str>, index: usize, text: &str, first_line: usize) {
        // A document of a concatenated stream may start with its file's byte order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut cx = Cx::new(source.clone(), index, text, first_line);
        cx.regex_budget = self.regex_budget;
        if let Some(line) = flow_nesting_over(text, MAX_FLOW_NESTING) {
            cx.push(Diagnostic {
                severity: Severity::Error,
                source: source.clone(),
                document: index,
                resource: None,
                path: String::new(),
                line: Some((line + first_line + 1) as u32),
                analysis: false,
                message: format!(
                    "not read: brackets nest deeper than {MAX_FLOW_NESTING} levels; Istio resources never need that, write the structure in block style"
                ),
            });
            self.virtual_service_refused = true;
            self.loaded.diagnostics.extend(cx.out);
            return;
        }
        let value = match yaml::parse(text) {
            Ok(v) => v,
            Err(e) => {
                cx.push(Diagnostic {
                    severity: Severity::Error,
                    source: source.clone(),
                    document: index,
                    resource: None,
                    path: String::new(),
                    line: e.line.map(|l| (l + first_line) as u32),
                    analysis: false,
                    message: e.message,
                });
                self.virtual_service_refused = true;
                self.loaded.diagnostics.extend(cx.out);
                return;
            }
        };
        self.load_value(&mut cx, &[], value);
        self.regex_budget = cx.regex_budget;
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
            let items = match value {
                serde_yaml::Value::Mapping(mut map) => match map.remove("items") {
                    Some(serde_yaml::Value::Sequence(items)) => items,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
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
                self.virtual_service_refused = true;
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
                let istio = api_version.starts_with("networking.istio.io/");
                if istio && !OTHER_NETWORKING_KINDS.contains(&other) {
                    // A kind Istio does not have: most likely a typo of one this library reads.
                    self.virtual_service_refused = true;
                    let hint = crate::unknown::suggest(other, NETWORKING_KINDS)
                        .map(|k| format!("; did you mean {k}?"))
                        .unwrap_or_default();
                    let severity = self.unknown_field_severity();
                    with_prefix(cx, prefix, |cx, p| {
                        cx.emit(
                            severity,
                            &p.key("kind"),
                            format!("{other:?} is not a kind of networking.istio.io{hint} (skipped {other}/{name}: only VirtualService, DestinationRule and ServiceEntry are read; kubectl would refuse this document)"),
                        )
                    });
                } else {
                    with_prefix(cx, prefix, |cx, p| {
                        cx.note(p, format!("skipped {other}/{name}: unsupported kind; only VirtualService, DestinationRule and ServiceEntry are read"))
                    });
                }
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
        // A name is echoed in every diagnostic of the resource: a valid one is at most 253
        // characters, a longer one is cut.
        let saved = cx.resource.replace(Arc::new(ResourceRef {
            kind: Some(kind),
            kind_name: kind_name.clone(),
            namespace: crate::diag::bound(&namespace).into_owned(),
            name: crate::diag::bound(&name).into_owned(),
        }));
        let errors_before = cx.errors;
        let supported = ["v1", "v1beta1", "v1alpha3"];
        match api_version.strip_prefix("networking.istio.io/") {
            Some(v) if supported.contains(&v) => match kind {
                Kind::VirtualService => {
                    self.load_kind(cx, prefix, kind, value, validate_virtual_service, |c| {
                        &mut c.virtual_services
                    })
                }
                Kind::DestinationRule => {
                    self.load_kind(cx, prefix, kind, value, validate_destination_rule, |c| {
                        &mut c.destination_rules
                    })
                }
                Kind::ServiceEntry => {
                    self.load_kind(cx, prefix, kind, value, validate_service_entry, |c| {
                        &mut c.service_entries
                    })
                }
            },
            _ => with_prefix(cx, prefix, |cx, p| {
                cx.error(
                    &p.key("apiVersion"),
                    format!("apiVersion {api_version:?} is not one this library reads for {kind_name}: use networking.istio.io/v1 (v1beta1 and v1alpha3 are accepted too)"),
                )
            }),
        }
        if kind == Kind::VirtualService && cx.errors != errors_before {
            self.virtual_service_refused = true;
        }
        cx.resource = saved;
    }

    /// One resource of `kind`: its shape read from `value`, then validated by `validate`, and
    /// kept in `list` when neither step found an error.
    fn load_kind<R: serde::de::DeserializeOwned, T>(
        &mut self,
        cx: &mut Cx<'_>,
        prefix: &[String],
        kind: Kind,
        value: serde_yaml::Value,
        validate: fn(&mut Cx<'_>, &R) -> T,
        list: fn(&mut crate::MeshConfig) -> &mut Vec<T>,
    ) {
        let errors_before = cx.errors;
        let Some(r) =
            deserialize_resource::<R>(cx, self.unknown_field_severity(), prefix, kind, value)
        else {
            return;
        };
        let item = with_prefix(cx, prefix, |cx, _| validate(cx, &r));
        if cx.errors == errors_before {
            self.keep(cx, prefix, item, list);
        }
    }

    /// Records the resource of `cx` as defined at `at` of its kind's list. When one of the same
    /// kind, namespace and name was read before, returns where it is (the new definition
    /// replaces it, as `kubectl apply` would) and notes it.
    /// Keeps `item`, the resource the document defines, in its list of the configuration:
    /// appended, or in place of an earlier definition of the same kind, namespace and name.
    fn keep<T>(
        &mut self,
        cx: &mut Cx<'_>,
        prefix: &[String],
        item: T,
        list: fn(&mut crate::MeshConfig) -> &mut Vec<T>,
    ) {
        let at = list(&mut self.loaded.config).len();
        match self.define(cx, prefix, at) {
            Some(at) => list(&mut self.loaded.config)[at] = item,
            None => list(&mut self.loaded.config).push(item),
        }
    }

    fn define(&mut self, cx: &mut Cx<'_>, prefix: &[String], at: usize) -> Option<usize> {
        let r = cx.resource.clone()?;
        let key = (r.kind?, r.namespace.clone(), r.name.clone());
        let Some(earlier) = self.defined.get_mut(&key) else {
            let here = Defined {
                at,
                source: cx.source.clone(),
                document: cx.document,
            };
            self.defined.insert(key, here);
            return None;
        };
        let (source, document) = (
            std::mem::replace(&mut earlier.source, cx.source.clone()),
            std::mem::replace(&mut earlier.document, cx.document),
        );
        let at = earlier.at;
        with_prefix(cx, prefix, |cx, p| {
            cx.note(
                &p.key("metadata").key("name"),
                format!(
                    "replaces {}/{}/{} read earlier ({source} document {document}): as with kubectl apply, the later definition is the one used",
                    r.kind_name, r.namespace, r.name
                ),
            )
        });
        Some(at)
    }
}

/// The kinds of `networking.istio.io` this library does not read (skipped with a note).
const OTHER_NETWORKING_KINDS: &[&str] = &[
    "Gateway",
    "Sidecar",
    "WorkloadEntry",
    "WorkloadGroup",
    "EnvoyFilter",
    "ProxyConfig",
];

/// Every kind of `networking.istio.io`, for "did you mean".
const NETWORKING_KINDS: &[&str] = &[
    "VirtualService",
    "DestinationRule",
    "ServiceEntry",
    "Gateway",
    "Sidecar",
    "WorkloadEntry",
    "WorkloadGroup",
    "EnvoyFilter",
    "ProxyConfig",
];
