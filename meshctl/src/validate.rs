//! `meshctl validate`.

use std::collections::HashMap;
use std::path::PathBuf;

use mesh_model::{Diagnostic, Severity, Strictness};

use crate::sources::{self, plural};
use serde_json::{json, Value};

use crate::{exit, Failure, ValidateFormat};

/// Counts of diagnostics by severity.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
    pub(crate) notes: usize,
}

impl Counts {
    fn of(diags: &[Diagnostic]) -> Self {
        let mut c = Counts::default();
        for d in diags {
            match d.severity() {
                Severity::Error => c.errors += 1,
                Severity::Warning => c.warnings += 1,
                Severity::Note => c.notes += 1,
            }
        }
        c
    }

    /// The exit code: 1 on any error (or any warning when `strict`), else 0.
    pub(crate) fn exit_code(self, strict: bool) -> u8 {
        if self.errors > 0 || (strict && self.warnings > 0) {
            exit::CONFIG
        } else {
            exit::OK
        }
    }

    /// `N errors, M warnings, K notes in F files`.
    pub(crate) fn summary(self, files: usize) -> String {
        format!(
            "{} error{}, {} warning{}, {} note{} in {files} file{}",
            self.errors,
            plural(self.errors),
            self.warnings,
            plural(self.warnings),
            self.notes,
            plural(self.notes),
            plural(files)
        )
    }
}

/// One diagnostic as JSON; `line` is null when unknown, `kind`/`name` when the document named
/// no resource.
fn diagnostic_json(d: &Diagnostic) -> Value {
    let r = d.resource();
    json!({
        "file": d.source(),
        "line": d.line(),
        "severity": d.severity().to_string(),
        "analysis": d.is_analysis(),
        "kind": r.map(|r| r.kind_name()),
        "namespace": r.map(|r| r.namespace()),
        "name": r.map(|r| r.name()),
        "document": d.document(),
        "path": d.path(),
        "message": d.message(),
    })
}

/// Runs `validate`: diagnostics on stdout (notes only when `verbose`), the summary on stderr.
pub(crate) fn run(
    paths: &[PathBuf],
    strict: bool,
    verbose: bool,
    format: ValidateFormat,
) -> Result<u8, Failure> {
    let files = sources::collect(paths)?;
    let strictness = if strict {
        Strictness::Strict
    } else {
        Strictness::Standard
    };
    let loaded = sources::load(&files, strictness)?;
    // The loader lists diagnostics per source, then the cross-resource findings; print them
    // in file order, then line order, so each file's problems read top to bottom.
    let order: HashMap<String, usize> = files
        .files()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.display().to_string(), i))
        .collect();
    let mut diags: Vec<&Diagnostic> = loaded.diagnostics().iter().collect();
    diags.sort_by_key(|d| {
        (
            order.get(d.source()).copied().unwrap_or(usize::MAX),
            d.line().unwrap_or(0),
        )
    });
    let counts = Counts::of(loaded.diagnostics());
    let mut out = String::new();
    match format {
        ValidateFormat::Text => {
            for d in diags {
                if d.severity() == Severity::Note && !verbose {
                    continue;
                }
                out.push_str(&d.to_string());
                out.push('\n');
            }
        }
        ValidateFormat::Json => {
            let v = json!({
                "files": files.files().iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "diagnostics": diags.iter().map(|d| diagnostic_json(d)).collect::<Vec<_>>(),
                "errors": counts.errors,
                "warnings": counts.warnings,
                "notes": counts.notes,
                "strict": strict,
            });
            out = serde_json::to_string_pretty(&v)
                .map_err(|e| Failure::usage(format!("cannot write JSON: {e}")))?;
            out.push('\n');
        }
    }
    crate::out(&out)?;
    let mut summary = counts.summary(files.files().len());
    if strict && counts.warnings > 0 {
        summary.push_str(" (--strict: warnings count as errors)");
    }
    crate::err_line(&summary);
    Ok(counts.exit_code(strict))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_severity_and_strictness() {
        let none = Counts::default();
        let warn = Counts {
            warnings: 2,
            ..Counts::default()
        };
        let err = Counts {
            errors: 1,
            ..Counts::default()
        };
        let note = Counts {
            notes: 4,
            ..Counts::default()
        };
        assert_eq!(none.exit_code(false), exit::OK);
        assert_eq!(none.exit_code(true), exit::OK);
        assert_eq!(warn.exit_code(false), exit::OK);
        assert_eq!(warn.exit_code(true), exit::CONFIG);
        assert_eq!(err.exit_code(false), exit::CONFIG);
        assert_eq!(note.exit_code(true), exit::OK, "notes never fail");
    }

    #[test]
    fn summary_wording() {
        let c = Counts {
            errors: 1,
            warnings: 2,
            notes: 0,
        };
        assert_eq!(c.summary(1), "1 error, 2 warnings, 0 notes in 1 file");
        assert_eq!(
            Counts::default().summary(3),
            "0 errors, 0 warnings, 0 notes in 3 files"
        );
    }

    #[test]
    fn counts_from_a_loaded_config() {
        let loaded = mesh_model::load_str(
            "x.yaml",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n    retires: {attempts: 1}\n",
        );
        let c = Counts::of(loaded.diagnostics());
        assert_eq!(c.errors, 0);
        assert!(c.warnings >= 1, "{:?}", loaded.diagnostics());
    }
}
