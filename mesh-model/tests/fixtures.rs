//! The fixture corpus (`tests/fixtures/`): every valid file loads with exactly the diagnostics its
//! header lists, every invalid file produces exactly the listed errors and warnings (path and the
//! gist of the message), and the analysis files get the cross-resource findings they list.
//! The header syntax is described in `tests/fixtures/README.md`.

use std::path::{Path, PathBuf};

use mesh_model::{Diagnostic, Loader, Severity, Strictness};

#[derive(Debug, Clone)]
struct Expect {
    severity: Severity,
    resource: Option<String>,
    path: String,
    gist: String,
    hint: Option<String>,
}

#[derive(Debug, Default)]
struct Header {
    expects: Vec<Expect>,
    notes_checked: bool,
}

fn parse_header(text: &str) -> Header {
    let mut h = Header::default();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let line = line.trim_start_matches('#').trim();
        let (severity, rest) = if let Some(r) = line.strip_prefix("expect-error:") {
            (Severity::Error, r)
        } else if let Some(r) = line.strip_prefix("expect-warning:") {
            (Severity::Warning, r)
        } else if let Some(r) = line.strip_prefix("expect-note:") {
            h.notes_checked = true;
            (Severity::Note, r)
        } else {
            continue;
        };
        let rest = rest.trim();
        // An empty target (`| gist`): the whole source.
        let rest = if rest.starts_with("| ") {
            format!(" {rest}")
        } else {
            rest.to_owned()
        };
        let rest = rest.as_str();
        if rest == "none" {
            continue;
        }
        let mut parts = rest.split(" | ");
        let target = parts.next().unwrap_or("").trim();
        let gist = parts.next().unwrap_or("").trim().to_lowercase();
        let hint = parts
            .next()
            .and_then(|p| p.trim().strip_prefix("hint:"))
            .map(|s| s.trim().to_owned());
        let (resource, path) = match target.split_once(' ') {
            Some((r, p)) if r.contains('/') && r.starts_with(|c: char| c.is_ascii_uppercase()) => {
                (Some(r.to_owned()), p.to_owned())
            }
            _ if target.contains('/') && target.starts_with(|c: char| c.is_ascii_uppercase()) => {
                (Some(target.to_owned()), String::new())
            }
            _ => (None, target.to_owned()),
        };
        h.expects.push(Expect {
            severity,
            resource,
            path,
            gist,
            hint,
        });
    }
    h
}

fn resource_matches(want: &str, d: &Diagnostic) -> bool {
    let Some(r) = d.resource() else {
        // Skip notes name the foreign document in their message.
        return d.message().contains(&format!("{want}:"));
    };
    let short = format!("{}/{}", r.kind_name(), r.name());
    let long = format!("{}/{}/{}", r.kind_name(), r.namespace(), r.name());
    want == short || want == long
}

/// Diagnostics this library adds on top of Istio's verdict ("validated but not applied by this
/// library"); they are checked by their own tests, not by the corpus headers.
fn is_library_remark(d: &Diagnostic) -> bool {
    d.message().contains("by this library")
}

fn check_file(path: &Path, analysis: bool, strict: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let header = parse_header(&text);
    let mut loader = Loader::new();
    if strict {
        loader = loader.strictness(Strictness::Strict);
    }
    if !analysis {
        loader = loader.without_analysis();
    }
    loader.add_str(&path.display().to_string(), &text);
    let loaded = loader.finish();
    let mut diags: Vec<&Diagnostic> = loaded
        .diagnostics()
        .iter()
        .filter(|d| !is_library_remark(d))
        .filter(|d| header.notes_checked || d.severity() != Severity::Note)
        .collect();
    let mut problems = Vec::new();
    for e in &header.expects {
        let mut sev = e.severity;
        // Unknown fields and kinds are warnings, errors in strict mode.
        let strict_error = e.gist.contains("unknown field") || e.gist.contains("not a kind of");
        if strict && e.severity == Severity::Warning && strict_error {
            sev = Severity::Error;
        }
        let pos = diags.iter().position(|d| {
            d.severity() == sev
                && d.path() == e.path
                && e.resource.as_deref().is_none_or(|r| resource_matches(r, d))
                && d.message().to_lowercase().contains(&e.gist)
                && e.hint.as_deref().is_none_or(|h| d.message().contains(h))
        });
        match pos {
            Some(i) => {
                diags.remove(i);
            }
            None => problems.push(format!(
                "missing {:?} at {:?} {:?} containing {:?}",
                sev, e.resource, e.path, e.gist
            )),
        }
    }
    for d in diags {
        problems.push(format!("unexpected {d}"));
    }
    problems
}

fn files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", root.display());
    v
}

fn run(dir: &str, analysis: bool, strict: bool) {
    let mut failures = Vec::new();
    let list = files(dir);
    for f in &list {
        let problems = check_file(f, analysis, strict);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", f.display(), problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files in {dir} disagree:\n{}",
        failures.len(),
        list.len(),
        failures.join("\n")
    );
}

#[test]
fn valid_fixtures() {
    run("valid", false, false);
}

#[test]
fn invalid_fixtures() {
    run("invalid", false, false);
}

#[test]
fn invalid_fixtures_strict() {
    run("invalid", false, true);
}

#[test]
fn analysis_fixtures() {
    run("analysis", true, false);
}
