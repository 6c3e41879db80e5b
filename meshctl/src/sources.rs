//! Finding YAML files and loading them into one configuration. The walking and reading are
//! `mesh_tower`'s ([`mesh_tower::config_files`], [`mesh_tower::read_config_files`]), so the CLI
//! reads exactly what a program using `mesh_tower::load_files` reads.

use std::path::PathBuf;

use mesh_model::{Loaded, Loader, Strictness};
use mesh_tower::ConfigFiles;

use crate::Failure;

/// The files to read: each file argument as given (whatever its extension), and for each
/// directory every `*.yaml` / `*.yml` below it, in sorted path order, links followed and
/// `..`-prefixed entries (a ConfigMap mount's internals) skipped; each file once.
pub(crate) fn collect(paths: &[PathBuf]) -> Result<ConfigFiles, Failure> {
    let files = mesh_tower::config_files(paths).map_err(|e| match e {
        mesh_tower::LoadFilesError::Io { path, source } => {
            Failure::usage(format!("cannot read {}: {source}", path.display()))
        }
        other => Failure::usage(other.to_string()),
    })?;
    if files.files().is_empty() && files.skipped().is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Failure::usage(format!(
            "no YAML file (*.yaml, *.yml) found in {}",
            names.join(", ")
        )));
    }
    Ok(files)
}

/// Reads every file into one [`Loader`] (so the cross-resource analysis sees everything) and
/// returns what it loaded. A file that cannot be read, is too large or is not UTF-8, and an
/// entry skipped while walking (a link to nothing), is a diagnostic like any other.
pub(crate) fn load(files: &ConfigFiles, strictness: Strictness) -> Result<Loaded, Failure> {
    let mut loader = Loader::new().strictness(strictness);
    mesh_tower::read_config_files(&mut loader, files);
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
    // Errors of the cross-resource analysis (an undefined subset) do not refuse anything, as
    // under istiod: the configuration is explained with them (the route says 503 NC).
    if loaded.has_refusals() {
        for d in loaded.diagnostics() {
            if d.severity() != mesh_model::Severity::Note {
                crate::err_line(&d.to_string());
            }
        }
        let n = loaded
            .diagnostics()
            .iter()
            .filter(|d| d.is_refusal())
            .count();
        return Err(Failure::config(format!(
            "the configuration has {n} error{}; fix {} first (`meshctl validate` lists them all)",
            plural(n),
            if n == 1 { "it" } else { "them" }
        )));
    }
    for d in loaded.errors() {
        crate::err_line(&d.to_string());
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

    /// A ConfigMap mount (files are links into `..data`, a link to a timestamped directory)
    /// and a dangling link: each resource is read once, and the dangling link is a warning
    /// naming it while the rest loads.
    #[cfg(unix)]
    #[test]
    fn a_configmap_mount_is_read_once_and_a_dangling_link_is_reported() {
        use std::os::unix::fs::symlink;
        let root = std::env::temp_dir().join(format!("meshctl-sources-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let stamp = root.join("..2026_01_01_00_00_00.123");
        std::fs::create_dir_all(&stamp).unwrap();
        std::fs::write(
            stamp.join("a.yaml"),
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a]\n  http: [{route: [{destination: {host: a}}]}]\n",
        )
        .unwrap();
        symlink("..2026_01_01_00_00_00.123", root.join("..data")).unwrap();
        symlink("..data/a.yaml", root.join("a.yaml")).unwrap();
        symlink("..data/gone.yaml", root.join("gone.yaml")).unwrap();

        let files = collect(std::slice::from_ref(&root)).unwrap();
        assert_eq!(files.files(), [root.join("a.yaml")]);
        let loaded = load(&files, Strictness::Standard).unwrap();
        assert_eq!(loaded.config().virtual_services().len(), 1);
        let w: Vec<String> = loaded.warnings().map(|d| d.to_string()).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("gone.yaml") && w[0].contains("a link to nothing"),
            "{}",
            w[0]
        );
        assert!(!loaded.has_errors());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
