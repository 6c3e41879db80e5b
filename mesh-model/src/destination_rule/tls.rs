//! Client TLS settings (TLS-1-TLS-4): validated here; `mesh_tower`'s `MeshClient` originates them.

use crate::diag::{Cx, Path};
use crate::raw;

/// TLS-1-TLS-4: a known mode and a consistent set of certificate fields.
pub(crate) fn validate_tls(cx: &mut Cx<'_>, p: &Path<'_>, t: &raw::ClientTlsSettings) {
    let mode = t.mode.as_deref().unwrap_or("DISABLE");
    if !["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"].contains(&mode) {
        cx.error(
            &p.key("mode"),
            format!(
                "unknown tls mode {mode:?}: expected one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL"
            ),
        );
        return;
    }
    let has_cred = t.credential_name.is_some();
    if mode == "MUTUAL" && !has_cred {
        if t.client_certificate.is_none() {
            cx.error(
                &p.key("clientCertificate"),
                "clientCertificate is required for MUTUAL tls (or set credentialName)",
            );
        }
        if t.private_key.is_none() {
            cx.error(
                &p.key("privateKey"),
                "privateKey is required for MUTUAL tls (or set credentialName)",
            );
        }
    }
    if (mode == "SIMPLE" || mode == "MUTUAL")
        && has_cred
        && (t.client_certificate.is_some()
            || t.ca_certificates.is_some()
            || t.private_key.is_some()
            || t.ca_crl.is_some())
    {
        cx.error(p, "credentialName cannot be combined with clientCertificate, caCertificates, privateKey or caCrl");
    }
    if t.insecure_skip_verify == Some(true) {
        if mode == "SIMPLE"
            && (t.ca_certificates.is_some() || has_cred || !t.subject_alt_names.is_empty())
        {
            cx.error(p, "insecureSkipVerify cannot be combined with caCertificates, credentialName or subjectAltNames in SIMPLE mode; drop the verification settings or insecureSkipVerify");
        }
        if mode == "MUTUAL" && (t.ca_certificates.is_some() || !t.subject_alt_names.is_empty()) {
            cx.error(
                p,
                "insecureSkipVerify cannot be combined with caCertificates or subjectAltNames in MUTUAL mode; drop the verification settings or insecureSkipVerify",
            );
        }
    }
    if let Some(c) = t
        .credential_name
        .as_deref()
        .and_then(|c| c.strip_prefix("configmap://"))
    {
        let own = cx
            .resource
            .as_ref()
            .map(|r| r.namespace.clone())
            .unwrap_or_default();
        if c.contains('/') && !c.starts_with(&format!("{own}/")) {
            cx.error(
                &p.key("credentialName"),
                format!("configmap credential namespace must match the DestinationRule namespace {own:?}: write configmap://{own}/NAME"),
            );
        }
    }
    // Every mode is originated by mesh-tower's MeshClient; what it cannot do is said here.
    if t.credential_name.is_some() {
        cx.warn(
            &p.key("credentialName"),
            "credentialName (a Kubernetes secret) is not read by this library: name the files with clientCertificate, privateKey and caCertificates (at a sidecar without workloadSelector istiod sends no TLS settings for it either)",
        );
    }
    if t.ca_crl.is_some() {
        cx.warn(
            &p.key("caCrl"),
            "caCrl is validated but not checked by this library: revoked server certificates are accepted",
        );
    }
}

/// A client TLS `mode` (`ClientTLSSettings.TLSmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `DISABLE`: plaintext.
    Disable,
    /// `SIMPLE`: TLS, the server verified.
    Simple,
    /// `MUTUAL`: TLS with a client certificate from files.
    Mutual,
    /// `ISTIO_MUTUAL`: mutual TLS with the workload's mesh certificate.
    IstioMutual,
}

impl TlsMode {
    /// The mode of a (validated) `tls` block: `DISABLE` when unset; `None` for a mode Istio
    /// does not know (validation rejects those).
    pub fn of(tls: &raw::ClientTlsSettings) -> Option<TlsMode> {
        Some(match tls.mode.as_deref() {
            None | Some("DISABLE") => TlsMode::Disable,
            Some("SIMPLE") => TlsMode::Simple,
            Some("MUTUAL") => TlsMode::Mutual,
            Some("ISTIO_MUTUAL") => TlsMode::IstioMutual,
            Some(_) => return None,
        })
    }

    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "DISABLE",
            TlsMode::Simple => "SIMPLE",
            TlsMode::Mutual => "MUTUAL",
            TlsMode::IstioMutual => "ISTIO_MUTUAL",
        }
    }
}
