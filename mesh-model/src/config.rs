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
