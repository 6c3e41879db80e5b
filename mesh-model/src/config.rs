//! What loading produces: the validated resources of a configuration, and its diagnostics.

use crate::destination_rule::DestinationRule;
use crate::diag::{Diagnostic, Severity};
use crate::service_entry::ServiceEntry;
use crate::virtual_service::VirtualService;

/// The validated resources of a configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshConfig {
    pub(crate) virtual_services: Vec<VirtualService>,
    pub(crate) destination_rules: Vec<DestinationRule>,
    pub(crate) service_entries: Vec<ServiceEntry>,
}

impl MeshConfig {
    /// The cross-resource analysis of this configuration, as the loader runs it (an undefined
    /// subset is an error, as `istioctl analyze` reports it; unused DestinationRules and the
    /// like are warnings). The diagnostics have no line numbers: the configuration no longer
    /// knows its text. Every one is an analysis finding ([`Diagnostic::is_analysis`]).
    pub fn analyze(&self) -> Vec<Diagnostic> {
        crate::analysis::analyze(self, true)
            .into_iter()
            .map(|f| f.into_diagnostic(None, true))
            .collect()
    }

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
    /// Whether any diagnostic is an error, the analysis's included (what a validator fails
    /// on, as `istioctl analyze` does).
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
    /// Whether a resource was refused: an error istiod would give
    /// ([`Diagnostic::is_refusal`]). Analysis errors do not count: istiod accepts what
    /// `istioctl analyze` flags.
    pub fn has_refusals(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_refusal)
    }
    /// The configuration unless a resource was refused ([`has_refusals`](Self::has_refusals)),
    /// else every diagnostic. The configuration loads in spite of analysis errors, as istiod
    /// takes it (a route to an undefined subset answers 503 `NC`); they stay in
    /// [`diagnostics`](Self::diagnostics) for the caller to report, and
    /// [`into_result_strict`](Self::into_result_strict) fails on them too.
    pub fn into_result(self) -> Result<MeshConfig, Vec<Diagnostic>> {
        if self.has_refusals() {
            Err(self.diagnostics)
        } else {
            Ok(self.config)
        }
    }
    /// The configuration if there was no error at all, analysis errors included, else every
    /// diagnostic.
    pub fn into_result_strict(self) -> Result<MeshConfig, Vec<Diagnostic>> {
        if self.has_errors() {
            Err(self.diagnostics)
        } else {
            Ok(self.config)
        }
    }
}
