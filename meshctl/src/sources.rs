//! Finding YAML files and loading them into one configuration. The walking and reading are
//! `mesh_tower`'s ([`mesh_tower::config_files`], [`mesh_tower::read_config_files`]), so the CLI
//! reads exactly what a program using `mesh_tower::load_files` reads.

use std::path::PathBuf;
use std::time::Duration;

use mesh_model::{Diagnostic, Loaded, Loader, Severity, Strictness};
use mesh_routing::endpoints::{EndpointSource as _, StaticEndpoints};
use mesh_routing::RouteTable;
use mesh_tower::ConfigFiles;

use crate::cli::{ClusterArgs, SourceArgs};
use crate::Failure;

/// How long reading a cluster may take in all.
const CLUSTER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the command line says to read.
#[derive(Debug)]
pub(crate) enum Source<'a> {
    /// These files and directories.
    Files(&'a [PathBuf]),
    /// The cluster of a kubeconfig.
    Cluster(&'a ClusterArgs),
}

impl<'a> Source<'a> {
    /// Files or a cluster; neither is a usage error. (Both together is refused by clap.)
    pub(crate) fn of(files: &'a [PathBuf], cluster: &'a ClusterArgs) -> Result<Self, Failure> {
        if cluster.is_given() {
            Ok(Source::Cluster(cluster))
        } else if !files.is_empty() {
            Ok(Source::Files(files))
        } else {
            Err(Failure::usage(
                "no configuration given: name files with -f PATH (validate: PATH), or a cluster \
                 with --kubeconfig PATH and/or --context NAME (KUBECONFIG alone is not read: \
                 meshctl reads a cluster only when asked; --context NAME alone uses it)",
            ))
        }
    }
}

/// Reads the cluster `args` names once (Istio objects, Services, EndpointSlices, pod labels,
/// every namespace), on a runtime of its own.
pub(crate) fn read_cluster(args: &ClusterArgs) -> Result<mesh_kube::Snapshot, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let client =
            mesh_kube::client_from_kubeconfig(args.kubeconfig.as_deref(), args.context.as_deref())
                .await
                .map_err(|e| Failure::usage(e.to_string()))?;
        let read = mesh_kube::Snapshot::read(&client, &mesh_kube::Scope::AllNamespaces);
        match tokio::time::timeout(CLUSTER_READ_TIMEOUT, read).await {
            Ok(Ok(snapshot)) => Ok(snapshot),
            Ok(Err(e)) => Err(Failure::usage(format!("cannot read the cluster: {e}"))),
            Err(_) => Err(Failure::usage(format!(
                "the API server did not answer within {}s: check the kubeconfig's server \
                 address and that it can be reached from here",
                CLUSTER_READ_TIMEOUT.as_secs()
            ))),
        }
    })
}

/// `namespace`, `name` and `kind` of the cluster object a diagnostic is about, from its
/// source name `kubernetes:<kind>/<namespace>/<name>`; `None` for a file's.
pub(crate) fn cluster_object(d: &Diagnostic) -> Option<(&str, &str, &str)> {
    let rest = d.source().strip_prefix("kubernetes:")?;
    let (kind, rest) = rest.split_once('/')?;
    let (namespace, name) = rest.split_once('/')?;
    Some((namespace, name, kind))
}

/// One diagnostic as a line: `FILE:LINE: SEVERITY: KIND/NAME: PATH: MESSAGE` for a file's,
/// `NAMESPACE/NAME (KIND): SEVERITY: PATH: MESSAGE` for a cluster object's.
pub(crate) fn diagnostic_line(d: &Diagnostic) -> String {
    match cluster_object(d) {
        Some((namespace, name, kind)) => {
            let mut line = format!("{namespace}/{name} ({kind}): {}: ", d.severity());
            if !d.path().is_empty() {
                line.push_str(d.path());
                line.push_str(": ");
            }
            line.push_str(d.message());
            line
        }
        None => d.to_string(),
    }
}

/// The configuration `route`, `simulate` and `curl` route with, and the endpoints a
/// discovery source adds to the configuration's own (a cluster's EndpointSlices; none for
/// files).
#[derive(Debug)]
pub(crate) struct Routing {
    /// The configuration.
    pub(crate) config: mesh_model::MeshConfig,
    /// Endpoints per host from the cluster (empty for files).
    pub(crate) discovered: StaticEndpoints,
}

impl Routing {
    /// Every host's endpoints as a mesh built from this source sees them: the
    /// configuration's ServiceEntry `STATIC` endpoints, overridden per host by discovered
    /// ones (as a discovery source overrides them in a mesh).
    pub(crate) fn endpoints(&self, table: &RouteTable) -> StaticEndpoints {
        let mut all = table.static_endpoints().clone();
        self.discovered.publish(&mut all);
        all
    }
}

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

/// Loads what `route`, `simulate` and `curl` route with. From files: errors in the
/// configuration are printed to stderr and end the command with exit code 1; warnings are
/// printed unless `quiet`. From a cluster: as the mesh reading that cluster would, a refused
/// object is left out and the rest applies; its errors are printed on stderr (always), and
/// the other objects' warnings unless `quiet`.
pub(crate) fn load_for_routing(args: &SourceArgs) -> Result<Routing, Failure> {
    match Source::of(&args.files, &args.cluster)? {
        Source::Files(paths) => Ok(Routing {
            config: load_files_for_routing(paths, args.quiet)?,
            discovered: StaticEndpoints::new(),
        }),
        Source::Cluster(cluster) => {
            let snapshot = read_cluster(cluster)?;
            let loaded = snapshot.load(Strictness::Standard);
            for d in loaded.diagnostics() {
                let shown = match d.severity() {
                    Severity::Error => true,
                    Severity::Warning => !args.quiet,
                    Severity::Note => false,
                };
                if shown {
                    crate::err_line(&diagnostic_line(d));
                }
            }
            let refused: Vec<String> = snapshot
                .refused()
                .iter()
                .filter_map(|e| match e {
                    mesh_kube::DiscoveryError::Refused {
                        kind,
                        namespace,
                        name,
                        ..
                    } => Some(format!("{namespace}/{name} ({kind})")),
                    _ => None,
                })
                .collect();
            if !refused.is_empty() {
                crate::err_line(&format!(
                    "meshctl: left out, as the mesh leaves them out: {} (refused: fix the \
                     errors above; `meshctl validate` with the same --kubeconfig/--context \
                     lists everything)",
                    refused.join(", ")
                ));
            }
            Ok(Routing {
                config: snapshot.config().clone(),
                discovered: snapshot.endpoints().clone(),
            })
        }
    }
}

/// [`load_for_routing`] from files (and `envoy`'s loader, which reads files only).
pub(crate) fn load_files_for_routing(
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
