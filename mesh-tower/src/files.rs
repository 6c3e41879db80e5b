//! Loading configuration files, and the errors of building and reloading a mesh.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use mesh_model::{Diagnostic, Loader, MeshConfig, Severity};

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
    /// The cross-resource analysis found errors and
    /// [`MeshBuilder::analysis_errors_fatal`](crate::MeshBuilder::analysis_errors_fatal) is on.
    #[error("the configuration has {} analysis error(s) (fatal by MeshBuilder::analysis_errors_fatal):\n{}", .0.len(), DiagList(.0))]
    Analysis(Vec<Diagnostic>),
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

/// Reads Istio YAML from files and directories, as [`config_files`] finds them and
/// [`read_config_files`] reads them, and validates it with `mesh-model`. Warnings and the
/// errors of the cross-resource analysis (an undefined subset: istiod accepts the
/// configuration, and the route answers 503 `NC`) are accepted, each logged with `tracing`;
/// an error that refuses a resource fails the load with every such diagnostic.
pub fn load_files(paths: &[impl AsRef<Path>]) -> Result<MeshConfig, LoadFilesError> {
    let files = config_files(paths)?;
    let mut loader = Loader::new();
    read_config_files(&mut loader, &files);
    let loaded = loader.finish();
    if !loaded.has_refusals() {
        for d in loaded.diagnostics() {
            if d.severity() >= Severity::Warning {
                tracing::warn!("{d}");
            }
        }
    }
    loaded.into_result().map_err(|diags| {
        LoadFilesError::Invalid(diags.into_iter().filter(Diagnostic::is_refusal).collect())
    })
}

/// Deepest directory nesting walked below a path given.
const MAX_DEPTH: usize = 64;

/// The configuration files some paths stand for, found by [`config_files`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFiles {
    files: Vec<PathBuf>,
    skipped: Vec<(PathBuf, String)>,
}

impl ConfigFiles {
    /// The files to read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Entries left out, each with why (a link to nothing, a directory that cannot be listed, a
    /// FIFO or device named like YAML). [`read_config_files`] reports each as a diagnostic.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }
}

/// The files `paths` stand for, the way both [`load_files`] and `meshctl` read configuration:
///
/// * a file given is read whatever its name;
/// * a directory stands for every `*.yaml` and `*.yml` file below it, at any depth, in sorted
///   path order;
/// * links are followed, to files and to directories; entries whose names start with `..` are
///   skipped: a Kubernetes ConfigMap mount shows each file as `name -> ..data/name`, with
///   `..data -> ..2026_01_01_00_00_00.123`, so each file is read once, by its visible name;
/// * a file is read once even when several paths lead to it (compared by their real path);
/// * a link to nothing, an unreadable directory and a FIFO or device named like YAML are
///   skipped and listed in [`ConfigFiles::skipped`]; the rest goes on.
///
/// Fails only when a path given does not exist or cannot be looked at.
pub fn config_files(paths: &[impl AsRef<Path>]) -> Result<ConfigFiles, LoadFilesError> {
    let mut out = ConfigFiles::default();
    let mut seen = HashSet::new();
    for path in paths {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|source| LoadFilesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Walk::default();
            found.dir(path, 0);
            found.files.sort();
            for f in found.files {
                if seen.insert(real(&f)) {
                    out.files.push(f);
                }
            }
            out.skipped.extend(found.skipped);
        } else if seen.insert(real(path)) {
            out.files.push(path.to_path_buf());
        }
    }
    Ok(out)
}

/// The path with every link resolved, to recognise one file reached two ways.
fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// What a directory walk found.
#[derive(Debug, Default)]
struct Walk {
    files: Vec<PathBuf>,
    skipped: Vec<(PathBuf, String)>,
    /// Directories already walked, by real path (a link loop ends here).
    dirs: HashSet<PathBuf>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            self.skipped.push((
                dir.to_path_buf(),
                format!("directories nested deeper than {MAX_DEPTH} levels; not walked"),
            ));
            return;
        }
        if !self.dirs.insert(real(dir)) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.skipped
                    .push((dir.to_path_buf(), format!("cannot list the directory: {e}")));
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.skipped
                        .push((dir.to_path_buf(), format!("cannot list the directory: {e}")));
                    continue;
                }
            };
            if entry.file_name().to_string_lossy().starts_with("..") {
                continue;
            }
            let path = entry.path();
            // Follows links: the type of what the entry leads to.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => self.dir(&path, depth + 1),
                Ok(m) if is_yaml(&path) => {
                    if m.is_file() {
                        self.files.push(path);
                    } else {
                        self.skipped.push((
                            path,
                            "not a regular file (a FIFO, socket or device named like YAML); skipped"
                                .to_owned(),
                        ));
                    }
                }
                Ok(_) => {}
                Err(e) if is_yaml(&path) => {
                    let why = if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) {
                        format!("a link to nothing ({e}); skipped")
                    } else {
                        format!("cannot be looked at ({e}); skipped")
                    };
                    self.skipped.push((path, why));
                }
                Err(_) => {}
            }
        }
    }
}

/// Reads `files` into `loader`, each under its path as given. Each file is looked at before it
/// is read: one larger than [`mesh_model::MAX_SOURCE_BYTES`] is not read (an error), nor is
/// anything but a regular file, and reading stops at the limit should the file grow meanwhile.
/// Text that is not UTF-8 is an error naming the first bad byte. Unreadable files and
/// [`ConfigFiles::skipped`] entries become diagnostics of the loader (errors and warnings), so
/// one bad file does not stop the others from being read.
pub fn read_config_files(loader: &mut Loader, files: &ConfigFiles) {
    for (path, why) in &files.skipped {
        loader.add_problem(&path.display().to_string(), Severity::Warning, why);
    }
    for path in &files.files {
        let name = path.display().to_string();
        match read_bounded(path) {
            Ok(text) => {
                loader.add_str(&name, &text);
            }
            Err(why) => {
                loader.add_problem(&name, Severity::Error, &why);
            }
        }
    }
}

/// A file's text, read only if it is a regular file of at most `MAX_SOURCE_BYTES`.
fn read_bounded(path: &Path) -> Result<String, String> {
    let limit = mesh_model::MAX_SOURCE_BYTES;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(
            "not a regular file (a directory, FIFO, socket or device); not read".to_owned(),
        );
    }
    if meta.len() > limit as u64 {
        return Err(format!(
            "the file is {} bytes; at most {} MiB are read: split the configuration into several files",
            meta.len(),
            limit >> 20
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > limit {
        return Err(format!(
            "the file grew past {} MiB while it was read: split the configuration into several files",
            limit >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The files a path stands for ([`config_files`] of one path), for the watcher.
pub(crate) fn expand(path: &Path) -> Result<Vec<PathBuf>, LoadFilesError> {
    Ok(config_files(&[path])?.files)
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: NAME}\nspec:\n  hosts: [NAME]\n  http:\n  - route:\n    - destination: {host: NAME}\n";

    fn vs(name: &str) -> String {
        VS.replace("NAME", name)
    }

    /// A fresh directory under the system's temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("mesh-tower-files-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn names(files: &ConfigFiles, root: &Path) -> Vec<String> {
        files
            .files()
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    /// A directory laid out as Kubernetes mounts a ConfigMap: the files are links into
    /// `..data`, itself a link to a timestamped directory. Each resource is read once, by its
    /// visible name, and the configuration is not empty.
    #[test]
    fn a_configmap_mount_is_read_once_per_file() {
        let tmp = TempDir::new("configmap");
        let root = &tmp.0;
        let stamp = root.join("..2026_01_01_00_00_00.123");
        std::fs::create_dir(&stamp).unwrap();
        std::fs::write(stamp.join("a.yaml"), vs("a")).unwrap();
        std::fs::write(stamp.join("b.yml"), vs("b")).unwrap();
        symlink("..2026_01_01_00_00_00.123", root.join("..data")).unwrap();
        symlink("..data/a.yaml", root.join("a.yaml")).unwrap();
        symlink("..data/b.yml", root.join("b.yml")).unwrap();

        let files = config_files(&[root]).unwrap();
        assert_eq!(names(&files, root), ["a.yaml", "b.yml"]);
        assert!(files.skipped().is_empty(), "{:?}", files.skipped());
        let cfg = load_files(&[root]).unwrap();
        assert_eq!(cfg.virtual_services().len(), 2);

        // The same files named twice (the mount and a file through `..data`): read once.
        let again = config_files(&[root.clone(), root.join("..data/a.yaml")]).unwrap();
        assert_eq!(again.files().len(), 2);
    }

    #[test]
    fn directories_are_read_recursively_in_sorted_order() {
        let tmp = TempDir::new("recursive");
        let root = &tmp.0;
        std::fs::create_dir_all(root.join("z/deep")).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("z/deep/c.yaml"), vs("c")).unwrap();
        std::fs::write(root.join("a/b.YML"), vs("b")).unwrap();
        std::fs::write(root.join("m.yaml"), vs("m")).unwrap();
        std::fs::write(root.join("notes.txt"), "not yaml").unwrap();
        // A link back up: walked once, no loop.
        symlink("..", root.join("z/up")).unwrap();
        let files = config_files(&[root]).unwrap();
        assert_eq!(names(&files, root), ["a/b.YML", "m.yaml", "z/deep/c.yaml"]);
        assert_eq!(load_files(&[root]).unwrap().virtual_services().len(), 3);
        assert_eq!(expand(root).unwrap(), files.files());
    }

    /// A link to nothing is reported with its name, and the other files still load.
    #[test]
    fn a_dangling_link_is_reported_and_the_rest_goes_on() {
        let tmp = TempDir::new("dangling");
        let root = &tmp.0;
        std::fs::write(root.join("a.yaml"), vs("a")).unwrap();
        symlink("gone.yaml", root.join("old.yaml")).unwrap();
        let files = config_files(&[root]).unwrap();
        assert_eq!(names(&files, root), ["a.yaml"]);
        assert_eq!(files.skipped().len(), 1);
        assert_eq!(files.skipped()[0].0, root.join("old.yaml"));
        assert!(
            files.skipped()[0].1.contains("a link to nothing"),
            "{:?}",
            files.skipped()
        );
        let mut loader = Loader::new();
        read_config_files(&mut loader, &files);
        let loaded = loader.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
        let w: Vec<_> = loaded.warnings().collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].source().ends_with("old.yaml"), "{}", w[0]);
        assert_eq!(load_files(&[root]).unwrap().virtual_services().len(), 1);
    }

    /// A file over the limit is refused from its size, without reading it; a device or FIFO
    /// named like YAML is not opened, so it neither hangs nor fills memory.
    #[test]
    fn files_are_looked_at_before_they_are_read() {
        let tmp = TempDir::new("limits");
        let root = &tmp.0;
        let big = root.join("big.yaml");
        // Sparse: takes no disk space, and reading it would take 65 MiB.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(mesh_model::MAX_SOURCE_BYTES as u64 + (1 << 20))
            .unwrap();
        std::fs::write(root.join("a.yaml"), vs("a")).unwrap();
        let files = config_files(&[root]).unwrap();
        let mut loader = Loader::new();
        read_config_files(&mut loader, &files);
        let loaded = loader.finish();
        let e: Vec<_> = loaded.errors().collect();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].source().ends_with("big.yaml"));
        // Refused from its size on disk ("the file is"), not after reading it into a string
        // (mesh-model's own check says "the source is").
        assert!(e[0].message().starts_with("the file is"), "{}", e[0]);
        assert!(e[0].message().contains("at most 64 MiB"), "{}", e[0]);
        assert_eq!(
            loaded.config().virtual_services().len(),
            1,
            "the rest is read"
        );

        // A device given by name: an error, not an endless read.
        let files = config_files(&["/dev/zero"]).unwrap();
        let mut loader = Loader::new();
        read_config_files(&mut loader, &files);
        let loaded = loader.finish();
        assert!(loaded
            .errors()
            .any(|d| d.message().contains("not a regular file")));

        // A FIFO named like YAML in a directory: skipped, never opened (opening would block).
        let fifo = root.join("pipe.yaml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let files = config_files(&[root]).unwrap();
            assert!(files
                .skipped()
                .iter()
                .any(|(p, why)| p == &fifo && why.contains("FIFO")));
            assert!(!files.files().contains(&fifo));
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_an_error_naming_the_offset() {
        let tmp = TempDir::new("utf8");
        let root = &tmp.0;
        std::fs::write(root.join("bad.yaml"), b"kind: \xff\n").unwrap();
        let err = load_files(&[root]).unwrap_err();
        let d = err.diagnostics();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message().contains("offset 6"), "{}", d[0]);
        // A path that does not exist is an I/O error naming it.
        let missing = root.join("missing.yaml");
        assert!(matches!(
            config_files(&[&missing]),
            Err(LoadFilesError::Io { path, .. }) if path == missing
        ));
    }
}
