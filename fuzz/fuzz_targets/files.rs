//! The configuration-file walk that `load_files`, `MeshHandle::watch` and `meshctl` share
//! (`mesh_tower::config_files` then `read_config_files`), over directory trees the input
//! builds: nested directories, `.yaml`/`.yml`/other files with arbitrary contents (empty,
//! truncated, binary), symbolic links to files and directories (Kubernetes ConfigMap mounts
//! are made of them), links that dangle and links that loop.
//!
//! Checks: never panics and always ends; every file listed is a `.yaml` or `.yml` file (any
//! case); no
//! file is listed twice, even when links reach it by several paths; loading what was listed
//! never panics.
#![no_main]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "a.yaml", "b.yml", "c.txt", "..data", "d", "e.yaml", "..2026_12_03", "f.YAML",
];

/// Builds a tree under `root` from `data`, four bytes per step: an operation, a parent (one of
/// the paths made so far), a name and a content length.
fn build(root: &Path, data: &[u8]) {
    let mut made: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut rest = data;
    let mut steps = 0;
    while rest.len() >= 4 && steps < 64 {
        steps += 1;
        let (op, parent, name, len) = (rest[0], rest[1], rest[2], rest[3] as usize);
        rest = &rest[4..];
        let dir = &dirs[parent as usize % dirs.len()];
        let path = dir.join(NAMES[name as usize % NAMES.len()]);
        match op % 4 {
            0 => {
                let n = len.min(rest.len());
                let _ = std::fs::write(&path, &rest[..n]);
                rest = &rest[n..];
                made.push(path);
            }
            1 => {
                if std::fs::create_dir(&path).is_ok() {
                    dirs.push(path.clone());
                    made.push(path);
                }
            }
            2 => {
                // A link to something made so far (perhaps an ancestor: a loop), or to a
                // name that does not exist.
                let target = made
                    .get(len % (made.len() + 1))
                    .cloned()
                    .unwrap_or_else(|| root.join("missing"));
                if std::os::unix::fs::symlink(&target, &path).is_ok() {
                    made.push(path);
                }
            }
            _ => {
                // Remove what a path names (a file, a link or an empty directory).
                let victim = &made[len % made.len()];
                if victim != root {
                    let _ = std::fs::remove_file(victim).or_else(|_| std::fs::remove_dir(victim));
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let root = tmp.path().join("config");
    if std::fs::create_dir(&root).is_err() {
        return;
    }
    build(&root, data);
    let Ok(files) = mesh_tower::config_files(&[&root]) else {
        return;
    };
    let mut seen = HashSet::new();
    for f in files.files() {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
        assert!(
            ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"),
            "{} is listed",
            f.display()
        );
        let real = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
        assert!(seen.insert(real), "{} is listed twice", f.display());
    }
    let mut loader = mesh_model::Loader::new();
    mesh_tower::read_config_files(&mut loader, &files);
    let loaded = loader.finish();
    for d in loaded.diagnostics() {
        let _ = d.to_string();
    }
});
