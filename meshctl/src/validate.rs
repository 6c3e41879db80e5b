//! `meshctl validate`.

use std::collections::HashMap;

use mesh_model::{Diagnostic, Severity, Strictness};

use crate::cli::ValidateArgs;
use crate::sources::{self, plural, Source};
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
        self.summary_of(files, "file")
    }

    /// `N errors, M warnings, K notes in F THINGs`.
    fn summary_of(self, n: usize, thing: &str) -> String {
        format!(
            "{} error{}, {} warning{}, {} note{} in {n} {thing}{}",
            self.errors,
            plural(self.errors),
            self.warnings,
            plural(self.warnings),
            self.notes,
            plural(self.notes),
            plural(n)
        )
    }
}

/// One diagnostic as JSON; `line` is null when unknown, `kind`/`name` when the document named
/// no resource; `file` and `line` are null for an object from a cluster.
fn diagnostic_json(d: &Diagnostic) -> Value {
    let r = d.resource();
    let from_cluster = sources::cluster_object(d).is_some();
    json!({
        "file": (!from_cluster).then(|| d.source()),
        "line": if from_cluster { None } else { d.line() },
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
pub(crate) fn run(args: &ValidateArgs) -> Result<u8, Failure> {
    let (strict, verbose, format) = (args.strict, args.verbose, args.format);
    let strictness = if strict {
        Strictness::Strict
    } else {
        Strictness::Standard
    };
    let paths = match Source::of(&args.paths, &args.cluster)? {
        Source::Files(paths) => paths,
        Source::Cluster(cluster) => {
            return run_cluster(
                &sources::read_cluster(cluster)?,
                strictness,
                verbose,
                format,
            )
        }
    };
    let files = sources::collect(paths)?;
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
    let inventory = json!(files
        .files()
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>());
    let summary = counts.summary(files.files().len());
    let report = Report {
        diags: &diags,
        counts: &counts,
        strict,
        verbose,
        format,
    };
    report.print(|d| d.to_string(), ("files", inventory), summary)
}

/// `validate` of the Istio objects of a cluster: every object loaded together, as files are,
/// each diagnostic naming its object `NAMESPACE/NAME (KIND)`, in Istio's order of the objects.
fn run_cluster(
    snapshot: &mesh_kube::Snapshot,
    strictness: Strictness,
    verbose: bool,
    format: ValidateFormat,
) -> Result<u8, Failure> {
    let strict = strictness == Strictness::Strict;
    let loaded = snapshot.load(strictness);
    let order: HashMap<String, usize> = snapshot
        .objects()
        .iter()
        .enumerate()
        .map(|(i, o)| (o.source_name(), i))
        .collect();
    let mut diags: Vec<&Diagnostic> = loaded.diagnostics().iter().collect();
    diags.sort_by_key(|d| order.get(d.source()).copied().unwrap_or(usize::MAX));
    let counts = Counts::of(loaded.diagnostics());
    let inventory = json!(snapshot
        .objects()
        .iter()
        .map(|o| json!({
            "kind": o.kind().as_str(),
            "namespace": o.namespace(),
            "name": o.name(),
        }))
        .collect::<Vec<_>>());
    let mut summary = counts.summary_of(snapshot.objects().len(), "object");
    summary.push_str(" from the cluster");
    let report = Report {
        diags: &diags,
        counts: &counts,
        strict,
        verbose,
        format,
    };
    report.print(sources::diagnostic_line, ("objects", inventory), summary)
}

/// What `validate` prints, whatever it read: the diagnostics in order (notes only when
/// verbose), as text or as one JSON object, then the summary line on stderr.
struct Report<'a> {
    diags: &'a [&'a Diagnostic],
    counts: &'a Counts,
    strict: bool,
    verbose: bool,
    format: ValidateFormat,
}

impl Report<'_> {
    /// Prints the report, each diagnostic as `line` writes it, `inventory` (what was read,
    /// under its key) first in JSON; returns the exit code.
    fn print(
        &self,
        line: impl Fn(&Diagnostic) -> String,
        inventory: (&str, serde_json::Value),
        mut summary: String,
    ) -> Result<u8, Failure> {
        let mut out = String::new();
        match self.format {
            ValidateFormat::Text => {
                for d in self.diags {
                    if d.severity() == Severity::Note && !self.verbose {
                        continue;
                    }
                    out.push_str(&line(d));
                    out.push('\n');
                }
            }
            ValidateFormat::Json => {
                let mut v = serde_json::Map::new();
                v.insert(inventory.0.to_owned(), inventory.1);
                v.insert(
                    "diagnostics".to_owned(),
                    self.diags.iter().map(|d| diagnostic_json(d)).collect(),
                );
                v.insert("errors".to_owned(), json!(self.counts.errors));
                v.insert("warnings".to_owned(), json!(self.counts.warnings));
                v.insert("notes".to_owned(), json!(self.counts.notes));
                v.insert("strict".to_owned(), json!(self.strict));
                out = serde_json::to_string_pretty(&v)
                    .map_err(|e| Failure::usage(format!("cannot write JSON: {e}")))?;
                out.push('\n');
            }
        }
        crate::out(&out)?;
        if self.strict && self.counts.warnings > 0 {
            summary.push_str(" (--strict: warnings count as errors)");
        }
        crate::err_line(&summary);
        Ok(self.counts.exit_code(self.strict))
    }
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
