//! Loading configuration files, and the errors of building and reloading a mesh.

use std::fmt;
use std::path::{Path, PathBuf};

use mesh_model::{Diagnostic, Loader, MeshConfig};

/// Why [`MeshBuilder::build`](crate::MeshBuilder::build) or
/// [`MeshHandle::reload`](crate::MeshHandle::reload) refused a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// [`MeshBuilder::config`](crate::MeshBuilder::config) was never called.
    #[error("no mesh configuration was given (call MeshBuilder::config)")]
    MissingConfig,
    /// The route table does not compile.
    #[error("the route table does not compile: {0}")]
    Compile(#[source] mesh_routing::CompileError),
}

/// Why [`load_files`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadFilesError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The files were read but the configuration is invalid.
    #[error("invalid mesh configuration ({} error(s)):\n{}", .0.len(), DiagList(.0))]
    Invalid(Vec<Diagnostic>),
}

impl LoadFilesError {
    /// The validation errors, when the configuration was invalid.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadFilesError::Invalid(d) => d,
            LoadFilesError::Io { .. } => &[],
        }
    }
}

struct DiagList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.0 {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

/// Why [`MeshHandle::reload_files`](crate::MeshHandle::reload_files) kept the old configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The files could not be read or are invalid.
    #[error(transparent)]
    Load(#[from] LoadFilesError),
    /// The configuration is valid but does not build.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The files hold no resource while the configuration serving now has some: a deleted,
    /// truncated or half-written file, most likely. Refused unless
    /// [`WatchOptions::allow_empty`](crate::WatchOptions::allow_empty).
    #[error("the configuration files hold no VirtualService, DestinationRule or ServiceEntry while {0} are serving; refused (a deleted or half-written file?)")]
    Empty(usize),
}

/// Reads Istio YAML from files and directories (every `*.yaml` / `*.yml` file
/// directly inside a directory, in name order) and validates it with
/// `mesh-model`. Warnings are accepted; any error fails the load with every
/// diagnostic.
pub fn load_files(paths: &[impl AsRef<Path>]) -> Result<MeshConfig, LoadFilesError> {
    let mut loader = Loader::new();
    for path in paths {
        let path = path.as_ref();
        for file in expand(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| LoadFilesError::Io {
                path: file.clone(),
                source,
            })?;
            loader.add_str(&file.display().to_string(), &text);
        }
    }
    loader.finish().into_result().map_err(|diags| {
        LoadFilesError::Invalid(diags.into_iter().filter(Diagnostic::is_error).collect())
    })
}

/// The files a path stands for: itself, or the YAML files of a directory.
pub(crate) fn expand(path: &Path) -> Result<Vec<PathBuf>, LoadFilesError> {
    let io = |source| LoadFilesError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let p = entry.path();
        let yaml = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
        if yaml && entry.file_type().map_err(io)?.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Validates Istio YAML given as text (`source` names it in diagnostics), as [`load_files`]
/// does for files: warnings are accepted; any error fails with every error diagnostic.
///
/// ```
/// let yaml = "apiVersion: networking.istio.io/v1
/// kind: VirtualService
/// metadata: {name: api}
/// spec:
///   hosts: [api]
///   http: [{route: [{destination: {host: api}}]}]
/// ";
/// let config = mesh_tower::load_str("api.yaml", yaml)?;
/// assert_eq!(config.virtual_services().len(), 1);
/// assert!(mesh_tower::load_str("bad.yaml", "kind: VirtualService\nspec: 7\n").is_err());
/// # Ok::<(), mesh_tower::LoadFilesError>(())
/// ```
pub fn load_str(source: &str, text: &str) -> Result<MeshConfig, LoadFilesError> {
    let mut loader = Loader::new();
    loader.add_str(source, text);
    loader.finish().into_result().map_err(|diags| {
        LoadFilesError::Invalid(diags.into_iter().filter(Diagnostic::is_error).collect())
    })
}
