//! Watching configuration files ([`MeshHandle::watch`]): poll, wait until the files are
//! stable, read and compile on a blocking thread, and swap only a configuration that is
//! whole.
//!
//! A file being rewritten can be read half-written or empty; a ConfigMap update swaps a
//! `..data` link; a directory can lose a file. The watcher never applies what a torn read
//! gives:
//!
//! 1. it polls every file's modification time, size and inode every
//!    [`interval`](WatchOptions::interval);
//! 2. after a change it waits until they stay the same for [`settle`](WatchOptions::settle)
//!    (a truncate-then-write, or a burst of saves, settles first);
//! 3. it reads and compiles on tokio's blocking pool, never on the runtime's workers;
//! 4. it checks the files did not change while it read them (else it starts over at the
//!    next tick);
//! 5. a result with no resource where some are serving is refused
//!    ([`ReloadError::Empty`]) unless [`allow_empty`](WatchOptions::allow_empty).
//!
//! Any refusal keeps the old configuration, logs a warning and calls `on_error`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::files::{expand, load_files, ReloadError};
use crate::handle::MeshHandle;

/// How [`MeshHandle::watch_with`] watches. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    interval: Duration,
    settle: Duration,
    allow_empty: bool,
}

impl Default for WatchOptions {
    /// Poll every second, settle for 250 ms, refuse an empty result.
    fn default() -> Self {
        WatchOptions {
            interval: Duration::from_secs(1),
            settle: Duration::from_millis(250),
            allow_empty: false,
        }
    }
}

impl WatchOptions {
    /// How often the files are looked at (at least 1 ms).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long the files must stay unchanged before they are read.
    #[must_use]
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Whether files holding no resource may replace a configuration that has some (off by
    /// default: that is what a deleted or truncated file looks like).
    #[must_use]
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }
}

/// What identifies a file's content without reading it.
type Stamp = (PathBuf, Option<(SystemTime, u64, u64)>);

/// The stamps of every file the paths stand for; an unreadable path contributes `None`, so
/// its appearance is a change too.
fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    let mut out = Vec::new();
    for p in paths {
        match expand(p) {
            Ok(files) => {
                for f in files {
                    let m = std::fs::metadata(&f)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len(), inode(&m))));
                    out.push((f, m));
                }
            }
            Err(_) => out.push((p.clone(), None)),
        }
    }
    out
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

async fn stamps_off_runtime(paths: &[PathBuf]) -> Vec<Stamp> {
    let paths = paths.to_vec();
    tokio::task::spawn_blocking(move || stamps(&paths))
        .await
        .unwrap_or_default()
}

impl MeshHandle {
    /// Watches `paths` (files or directories, as [`load_files`](crate::load_files)) with the
    /// default [`WatchOptions`] but polling every `interval`. See [`watch_with`](Self::watch_with).
    pub fn watch(
        &self,
        paths: Vec<PathBuf>,
        interval: Duration,
        on_error: impl Fn(&ReloadError) + Send + Sync + 'static,
    ) -> WatchHandle {
        self.watch_with(paths, WatchOptions::default().interval(interval), on_error)
    }

    /// Watches `paths` on a tokio task and reloads when they change, never applying a torn
    /// read (see the [module docs](crate::watch)). A refused or failed reload keeps the old
    /// configuration, emits a `tracing` warning and calls `on_error`. The task stops when the
    /// returned [`WatchHandle`] is dropped. Must be called inside a tokio runtime.
    pub fn watch_with(
        &self,
        paths: Vec<PathBuf>,
        options: WatchOptions,
        on_error: impl Fn(&ReloadError) + Send + Sync + 'static,
    ) -> WatchHandle {
        let handle = self.clone();
        let task = tokio::spawn(async move {
            let mut last = stamps_off_runtime(&paths).await;
            let mut tick = tokio::time::interval(options.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let mut now = stamps_off_runtime(&paths).await;
                if now == last {
                    continue;
                }
                // Wait for the files to settle.
                loop {
                    tokio::time::sleep(options.settle).await;
                    let again = stamps_off_runtime(&paths).await;
                    if again == now {
                        break;
                    }
                    now = again;
                }
                let outcome = handle.reload_stable(&paths, &now, options).await;
                match outcome {
                    // The files changed while they were read: look again at the next tick.
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "mesh configuration files rejected; the previous configuration keeps serving");
                        on_error(&e);
                    }
                }
                last = now;
            }
        });
        WatchHandle { task }
    }

    /// Reads, checks and swaps in the files on the blocking pool. `Ok(false)` when the files
    /// changed while they were read (nothing applied).
    async fn reload_stable(
        &self,
        paths: &[PathBuf],
        expected: &[Stamp],
        options: WatchOptions,
    ) -> Result<bool, ReloadError> {
        let handle = self.clone();
        let paths = paths.to_vec();
        let expected = expected.to_vec();
        let work = tokio::task::spawn_blocking(move || {
            let cfg = load_files(&paths)?;
            if stamps(&paths) != expected {
                return Ok(false);
            }
            let resources = cfg.virtual_services().len()
                + cfg.destination_rules().len()
                + cfg.service_entries().len();
            let serving = handle.resources();
            if resources == 0 && serving > 0 && !options.allow_empty {
                return Err(ReloadError::Empty(serving));
            }
            handle.reload(cfg)?;
            Ok(true)
        });
        work.await.unwrap_or(Ok(false))
    }
}

/// Stops the watch task of [`MeshHandle::watch`] when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
