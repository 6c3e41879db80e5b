//! Finding YAML files and loading them into one configuration.

use std::path::{Path, PathBuf};

use mesh_model::{Loaded, Loader, Strictness};

use crate::Failure;

/// Deepest directory nesting walked (protects against symlink loops).
const MAX_DEPTH: usize = 64;

/// Whether a file name looks like YAML.
fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// The files to read: each file argument as given (whatever its extension), and for each
/// directory every `*.yaml` / `*.yml` below it, in sorted path order. Duplicates are dropped.
pub(crate) fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, 0, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    if out.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::usage(format!(
            "no YAML file (*.yaml, *.yml) found in {}",
            names.join(", ")
        )));
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    if depth > MAX_DEPTH {
        return Err(Failure::usage(format!(
            "{}: directories nested deeper than {MAX_DEPTH} levels (a symlink loop?)",
            dir.display()
        )));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::usage(format!("cannot read directory {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| Failure::usage(format!("cannot read directory {}: {e}", dir.display())))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        if meta.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if is_yaml(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads every file into one [`Loader`] (so the cross-resource analysis sees everything) and
/// returns what it loaded.
pub(crate) fn load(files: &[PathBuf], strictness: Strictness) -> Result<Loaded, Failure> {
    let mut loader = Loader::new().strictness(strictness);
    for file in files {
        let bytes = std::fs::read(file)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Failure::usage(format!(
                "cannot read {}: not UTF-8 text (invalid byte at offset {})",
                file.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        loader.add_str(&file.display().to_string(), &text);
    }
    Ok(loader.finish())
}

/// Collects and loads the `-f` paths of `route` and `simulate`. Errors in the configuration
/// are printed to stderr and end the command with exit code 1; warnings are printed unless
/// `quiet`.
pub(crate) fn load_for_routing(
    paths: &[PathBuf],
    quiet: bool,
) -> Result<mesh_model::MeshConfig, Failure> {
    let files = collect(paths)?;
    let loaded = load(&files, Strictness::Standard)?;
    if loaded.has_errors() {
        for d in loaded.diagnostics() {
            if d.severity() != mesh_model::Severity::Note {
                crate::err_line(&d.to_string());
            }
        }
        let n = loaded.errors().count();
        return Err(Failure::config(format!(
            "the configuration has {n} error{}; fix {} first (`meshctl validate` lists them all)",
            plural(n),
            if n == 1 { "it" } else { "them" }
        )));
    }
    if !quiet {
        for d in loaded.warnings() {
            crate::err_line(&d.to_string());
        }
    }
    Ok(loaded.into_config())
}

/// `"s"` unless `n` is 1.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_extensions() {
        assert!(is_yaml(Path::new("a/b.yaml")));
        assert!(is_yaml(Path::new("b.yml")));
        assert!(!is_yaml(Path::new("b.json")));
        assert!(!is_yaml(Path::new("yaml")));
        assert!(!is_yaml(Path::new("b.YAML.bak")));
    }

    #[test]
    fn missing_path_is_a_usage_error() {
        let err = collect(&[PathBuf::from("/definitely/not/here.yaml")]).unwrap_err();
        assert_eq!(err.code, crate::exit::USAGE);
        assert!(err
            .message
            .contains("cannot read /definitely/not/here.yaml"));
    }

    #[test]
    fn plural_forms() {
        assert_eq!(plural(0), "s");
        assert_eq!(plural(1), "");
        assert_eq!(plural(2), "s");
    }
}
