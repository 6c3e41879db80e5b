//! Writing a command's result: as pretty JSON ([`json_text`]), and to a file (`--output`),
//! all or nothing ([`write_atomically`]).
//!
//! `meshctl envoy ... > envoy.yaml` truncates `envoy.yaml` before meshctl even starts, so a
//! failed run leaves an empty file that a later `envoy -c envoy.yaml` happily reads. With
//! `--output`, the text is written to a temporary file in the destination's directory and renamed
//! over the destination only when it is complete: a reader sees the old file or the new one,
//! never a partial one, and a run that fails before writing leaves the old file as it was.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// `value` as pretty-printed JSON with a final newline, as `--format json` prints it.
pub(crate) fn json_text(value: &serde_json::Value) -> Result<String, crate::Failure> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::Failure::usage(format!("cannot write JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// Writes `text` to `path` atomically: a temporary file next to it, then a rename.
///
/// On error nothing is left behind: the temporary file is removed and `path` is untouched.
pub(crate) fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let (tmp, mut file) = create_temporary(path)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&tmp, path)
        });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Creates a new, uniquely named file in `path`'s directory (`.NAME.meshctl-PID-N.tmp`).
fn create_temporary(path: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the output path names no file")
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".meshctl-{}-{n}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            // Left over by a run that was killed, or another meshctl: try the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshctl-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = scratch("replace");
        let path = dir.join("envoy.yaml");
        fs::write(&path, "old\n").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(entries(&dir), ["envoy.yaml"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_and_creates_nothing() {
        let dir = scratch("missing");
        let path = dir.join("no-such-dir").join("envoy.yaml");
        let err = write_atomically(&path, "x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(entries(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_as_destination_fails_and_keeps_it() {
        let dir = scratch("dir-dest");
        let dest = dir.join("out");
        fs::create_dir(&dest).unwrap();
        assert!(write_atomically(&dest, "x").is_err());
        assert!(dest.is_dir());
        assert_eq!(entries(&dir), ["out"], "the temporary file was removed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
