//! dockwarm's per-user state directory: build records, logs and locks.
//!
//! One directory per user (not per repository) because one prebuild serves every workspace
//! that shares a fingerprint, and the workspaces of one repository live in many directories.
//! Every write is atomic (write to a temporary file, then rename) so that hooks firing in many
//! worktrees at once never leave a half-written file behind.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs4::fs_std::FileExt;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {source}; set DOCKWARM_STATE_DIR to a writable directory")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find a home directory for the state directory; set DOCKWARM_STATE_DIR")]
    NoHome,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The per-user state directory.
#[derive(Debug, Clone)]
pub struct State {
    root: PathBuf,
}

impl State {
    /// `DOCKWARM_STATE_DIR`, else `$XDG_STATE_HOME/dockwarm`, else the platform's default
    /// (`~/.local/state/dockwarm`, `~/Library/Application Support/dockwarm` on macOS).
    pub fn open() -> Result<State, StateError> {
        let root = if let Some(dir) = env_path("DOCKWARM_STATE_DIR") {
            dir
        } else if let Some(dir) = env_path("XDG_STATE_HOME") {
            dir.join("dockwarm")
        } else {
            let home = env_path("HOME").ok_or(StateError::NoHome)?;
            if cfg!(target_os = "macos") {
                home.join("Library/Application Support/dockwarm")
            } else {
                home.join(".local/state/dockwarm")
            }
        };
        Ok(State { root })
    }

    pub fn at(root: impl Into<PathBuf>) -> State {
        State { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A subdirectory, created on first use.
    pub fn dir(&self, name: &str) -> Result<PathBuf, StateError> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// Takes an exclusive lock named `name`, waiting for whoever holds it. The lock is released
    /// when the returned guard is dropped, and by the kernel when the process dies, so a crash
    /// never leaves a stale lock.
    pub fn lock(&self, name: &str) -> Result<LockGuard, StateError> {
        let path = self.dir("locks")?.join(format!("{name}.lock"));
        let file = open_lock_file(&path)?;
        file.lock_exclusive().map_err(io_err(&path))?;
        Ok(LockGuard { _file: file })
    }

    /// Like `lock`, but returns None at once when someone else holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<LockGuard>, StateError> {
        let path = self.dir("locks")?.join(format!("{name}.lock"));
        let file = open_lock_file(&path)?;
        match file.try_lock_exclusive() {
            Ok(true) => Ok(Some(LockGuard { _file: file })),
            Ok(false) => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The build record of a fingerprint, if one was written.
    pub fn build_record(&self, fingerprint: &str) -> Option<BuildRecord> {
        read_json(&self.root.join("builds").join(format!("{fingerprint}.json")))
    }

    pub fn write_build_record(&self, record: &BuildRecord) -> Result<(), StateError> {
        let path = self
            .dir("builds")?
            .join(format!("{}.json", record.fingerprint));
        write_json_atomic(&path, record)
    }

    /// Where the log of a build of `image` goes.
    pub fn log_path(
        &self,
        project: &str,
        image: &str,
        fingerprint: &str,
    ) -> Result<PathBuf, StateError> {
        let short = &fingerprint[..fingerprint.len().min(12)];
        Ok(self
            .dir("logs")?
            .join(format!("{project}-{image}-{short}.log")))
    }
}

impl State {
    /// The dependency-build logs of one image, newest first. Names are
    /// `<project>-<image>-<12 hex>.log`; a name that merely shares the prefix (another
    /// project's `<project>-<image>-x` image) does not match the 12-hex tail.
    pub fn build_logs(&self, project: &str, image: &str) -> Vec<PathBuf> {
        let prefix = format!("{project}-{image}-");
        let mut logs: Vec<(SystemTime, PathBuf)> = fs::read_dir(self.root.join("logs"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".log"))
                    .is_some_and(|h| h.len() == 12 && h.chars().all(|c| c.is_ascii_hexdigit()))
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        logs.sort_by_key(|l| std::cmp::Reverse(l.0));
        logs.into_iter().map(|(_, p)| p).collect()
    }

    /// Keeps the `keep` newest build logs of an image and deletes the others, so a month of
    /// lockfile changes does not pile up logs.
    pub fn rotate_logs(&self, project: &str, image: &str, keep: usize) {
        for old in self.build_logs(project, image).into_iter().skip(keep) {
            let _ = fs::remove_file(old);
        }
    }
}

/// Build logs kept per image.
pub const LOGS_KEPT: usize = 5;

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn open_lock_file(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(path))
}

/// Held while a lock is; see [`State::lock`].
pub struct LockGuard {
    _file: File,
}

/// What happened to the prebuild of one fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    pub fingerprint: String,
    pub project: String,
    pub image: String,
    pub tag: String,
    /// "built", "cached" (found already built) or "failed".
    pub status: String,
    pub backend: String,
    /// Seconds since the Unix epoch.
    pub finished_at: u64,
    pub duration_ms: u64,
    pub log: Option<PathBuf>,
    pub error: Option<String>,
    /// The workspace image built right after this dependency stage, from cold layers: with
    /// `duration_ms`, what a cold build of this fingerprint costs (see `registry::Saved`).
    #[serde(default)]
    pub workspace_ms: Option<u64>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes `value` as JSON to `path` through a temporary file in the same directory and a
/// rename, so readers see the old or the new file, never a torn one.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StateError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(path, &bytes)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_data().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_records_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path());
        assert!(state.build_record("abc").is_none());
        let record = BuildRecord {
            fingerprint: "abc".into(),
            project: "p".into(),
            image: "app".into(),
            tag: "dockwarm/p-app-deps:abc".into(),
            status: "built".into(),
            backend: "buildx".into(),
            finished_at: 1,
            duration_ms: 2,
            log: None,
            error: None,
            workspace_ms: Some(3),
        };
        state.write_build_record(&record).unwrap();
        assert_eq!(state.build_record("abc"), Some(record));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("builds"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn try_lock_sees_a_held_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path());
        let held = state.lock("fp").unwrap();
        // flock locks are per open file description: a second open in this process conflicts.
        assert!(state.try_lock("fp").unwrap().is_none());
        drop(held);
        assert!(state.try_lock("fp").unwrap().is_some());
    }
}
