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

use crate::env::Env;

/// Why the state directory (or a file in it) could not be used; each message says how to point
/// dockwarm elsewhere (DOCKWARM_STATE_DIR).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, locking or creating something under the state directory failed.
    #[error("state directory {path}: {source}; set DOCKWARM_STATE_DIR to a writable directory")]
    Io {
        /// The file or directory the operation was on.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Neither DOCKWARM_STATE_DIR, XDG_STATE_HOME nor HOME is set, so there is nowhere to put it.
    #[error("cannot find a home directory for the state directory; set DOCKWARM_STATE_DIR")]
    NoHome,
    /// The state path (or one of its subdirectories) is a file, which dockwarm will not replace.
    #[error("state directory {path} is not a directory; move that file away, or set DOCKWARM_STATE_DIR to a directory")]
    NotADirectory {
        /// The path that is not a directory.
        path: String,
    },
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
    /// The environment it was opened in, for whatever is handed the state directory.
    env: Env,
}

impl State {
    /// `DOCKWARM_STATE_DIR`, else `$XDG_STATE_HOME/dockwarm`, else the platform's default
    /// (`~/.local/state/dockwarm`, `~/Library/Application Support/dockwarm` on macOS).
    /// It keeps `env` ([`State::env`]).
    pub fn open(env: &Env) -> Result<State, StateError> {
        let root = if let Some(dir) = env.path("DOCKWARM_STATE_DIR") {
            dir
        } else if let Some(dir) = env.path("XDG_STATE_HOME") {
            dir.join("dockwarm")
        } else {
            let home = env.path("HOME").ok_or(StateError::NoHome)?;
            if cfg!(target_os = "macos") {
                home.join("Library/Application Support/dockwarm")
            } else {
                home.join(".local/state/dockwarm")
            }
        };
        // Absolute: the daemon moves to the state directory and runs builds in workspaces, so
        // a relative DOCKWARM_STATE_DIR would name another directory in each of them.
        let root = std::path::absolute(&root).unwrap_or(root);
        let state = State {
            root,
            env: env.clone(),
        };
        state.check()?;
        Ok(state)
    }

    /// Whether the state path can be used: a directory, or nothing yet (it is made on first
    /// use). A directory left readable by others (made by an older dockwarm, or by hand under
    /// a loose umask) is tightened to 0700 when it is ours, since it holds the list of
    /// workspaces and the build logs.
    pub fn check(&self) -> Result<(), StateError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        match fs::metadata(&self.root) {
            Ok(m) if !m.is_dir() => Err(StateError::NotADirectory {
                path: self.root.display().to_string(),
            }),
            Ok(m) => {
                // Only a directory dockwarm evidently made (it holds its entries) and without
                // the sticky bit (never a shared /tmp someone pointed DOCKWARM_STATE_DIR at).
                let ours = ["workspaces", "locks", "builds", "logs"]
                    .iter()
                    .any(|n| self.root.join(n).is_dir());
                if m.mode() & 0o077 != 0 && m.mode() & 0o1000 == 0 && ours {
                    match fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)) {
                        // Another user's directory: not ours to change.
                        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
                        other => other.map_err(io_err(&self.root))?,
                    }
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.root)(e)),
        }
    }

    /// The state directory at `root`, as is: no environment lookup and no check, for tests
    /// and for callers that already know the directory. It carries an empty environment:
    /// every knob at its default.
    pub fn at(root: impl Into<PathBuf>) -> State {
        State {
            root: root.into(),
            env: Env::default(),
        }
    }

    /// The environment the state was opened in: the knobs of whatever is handed the state.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The directory itself, absolute when it came from [`State::open`]; modules that keep
    /// their own files here (the daemon's socket and log, disk accounting) join onto it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A subdirectory, created on first use (0700, like the state directory itself).
    pub fn dir(&self, name: &str) -> Result<PathBuf, StateError> {
        let dir = self.root.join(name);
        if !dir.is_dir() {
            self.ensure_root()?;
            private_dir(&dir)?;
        }
        Ok(dir)
    }

    /// Creates the state directory, 0700 whatever the umask: it lists the user's workspaces
    /// and keeps their build logs, which are no other local user's business.
    pub fn ensure_root(&self) -> Result<(), StateError> {
        if self.root.is_dir() {
            return Ok(());
        }
        self.check()?;
        if let Some(parent) = self.root.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        private_dir(&self.root)
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

    /// The build record of a fingerprint in one workspace (checkout, worktree or clone), if one
    /// was written and reads; else the record an older dockwarm kept for the fingerprint alone.
    /// Two clones reaching one fingerprint each keep their own: one's failure is not the other's.
    pub fn build_record(&self, fingerprint: &str, workspace: &Path) -> Option<BuildRecord> {
        read_json(&self.build_record_path(fingerprint, Some(workspace)))
            .or_else(|| read_json(&self.build_record_path(fingerprint, None)))
    }

    /// Every workspace's record of a fingerprint (and an older dockwarm's), in no set order.
    pub fn build_records(&self, fingerprint: &str) -> Vec<BuildRecord> {
        let dir = self.root.join("builds");
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(fingerprint).is_some_and(|rest| {
                    rest == ".json"
                        || rest
                            .strip_prefix('-')
                            .and_then(|r| r.strip_suffix(".json"))
                            .is_some_and(|id| id.chars().all(|c| c.is_ascii_hexdigit()))
                })
            })
            .filter_map(|e| read_json(&e.path()))
            .collect()
    }

    /// `builds/<fingerprint>-<workspace id>.json`; without a workspace, the name older
    /// dockwarm versions used, `builds/<fingerprint>.json`.
    fn build_record_path(&self, fingerprint: &str, workspace: Option<&Path>) -> PathBuf {
        let name = match workspace {
            Some(w) => format!("{fingerprint}-{}.json", crate::registry::id(w)),
            None => format!("{fingerprint}.json"),
        };
        self.root.join("builds").join(name)
    }

    /// Whether a workspace's record of `fingerprint` exists but does not read (truncated,
    /// edited, from a disk that filled up): the next build that finds the image rewrites it.
    pub fn build_record_is_corrupt(&self, fingerprint: &str, workspace: &Path) -> bool {
        let path = self.build_record_path(fingerprint, Some(workspace));
        path.exists() && read_json::<BuildRecord>(&path).is_none()
    }

    /// The state files that exist but do not read: build records and workspace registrations,
    /// which would otherwise be skipped silently forever. For `doctor`.
    pub fn corrupt_files(&self) -> Vec<PathBuf> {
        let mut bad = Vec::new();
        for (dir, reads) in [
            (
                "builds",
                (|p: &Path| read_json::<BuildRecord>(p).is_some()) as fn(&Path) -> bool,
            ),
            ("workspaces", |p: &Path| {
                read_json::<crate::registry::Workspace>(p).is_some()
            }),
        ] {
            let entries = fs::read_dir(self.root.join(dir)).into_iter().flatten();
            for e in entries.filter_map(|e| e.ok()) {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "json") && !reads(&path) {
                    bad.push(path);
                }
            }
        }
        bad.sort();
        bad
    }

    /// Writes a record under its workspace's name (see [`State::build_record`]).
    pub fn write_build_record(&self, record: &BuildRecord) -> Result<(), StateError> {
        self.dir("builds")?;
        let path = self.build_record_path(&record.fingerprint, record.workspace.as_deref());
        write_json_atomic(&path, record)
    }

    /// Where the log of a build of `image` goes: `<project>-<image>-<12 hex>.log`, or with a
    /// workspace, `<project>-<image>-<12 hex>-<workspace id>.log` (a dependency build's log is
    /// the building workspace's own, so that one clone's failure is not overwritten by another's
    /// build of the same fingerprint).
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

    /// The log of a dependency build of `image` in `workspace` (see [`State::log_path`]).
    pub fn build_log_path(
        &self,
        project: &str,
        image: &str,
        fingerprint: &str,
        workspace: &Path,
    ) -> Result<PathBuf, StateError> {
        let short = &fingerprint[..fingerprint.len().min(12)];
        let id = crate::registry::id(workspace);
        Ok(self
            .dir("logs")?
            .join(format!("{project}-{image}-{short}-{id}.log")))
    }
}

impl State {
    /// The dependency-build logs of one image, newest first. Names are
    /// `<project>-<image>-<12 hex>.log` or `<project>-<image>-<12 hex>-<16 hex>.log` (per
    /// workspace); a name that merely shares the prefix (another project's `<project>-<image>-x`
    /// image) does not match the hex tail.
    pub fn build_logs(&self, project: &str, image: &str) -> Vec<PathBuf> {
        let prefix = format!("{project}-{image}-");
        let mut logs: Vec<(SystemTime, PathBuf)> = fs::read_dir(self.root.join("logs"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let hex =
                    |h: &str, n: usize| h.len() == n && h.chars().all(|c| c.is_ascii_hexdigit());
                name.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".log"))
                    .is_some_and(|h| match h.split_once('-') {
                        Some((fp, ws)) => hex(fp, 12) && hex(ws, 16),
                        None => hex(h, 12),
                    })
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

fn open_lock_file(path: &Path) -> Result<File, StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))
}

/// Makes `dir` (its parent exists) with mode 0700; one made meanwhile by another process is
/// fine. The mode is set after creation too, since the umask only ever removes bits and a
/// racing creator may have used another.
fn private_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(StateError::NotADirectory {
                path: dir.display().to_string(),
            })
        }
        Err(e) => return Err(io_err(dir)(e)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// Opens `path` for appending, creating it 0600 (a log other users must not read).
pub fn open_private_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Creates (or truncates) `path` for writing, 0600.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Held while a lock is; see [`State::lock`].
pub struct LockGuard {
    _file: File,
}

/// What happened to the prebuild of one fingerprint in one workspace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    /// The dependency fingerprint built (hex); part of the record's file name.
    pub fingerprint: String,
    /// The dockwarm project name (config `project`), as in the dependency image's tag.
    pub project: String,
    /// The name of the image in the project whose dependencies these are.
    pub image: String,
    /// The dependency image's tag, `dockwarm/<project>-<image>-deps:<first 12 hex>`.
    pub tag: String,
    /// "built", "cached" (found already built), "pulled" (from the team registry), "failed", or
    /// "building" while it runs (see `phase`).
    pub status: String,
    /// The builder that ran the dependency build ("buildx" or "bollard"); empty until then.
    pub backend: String,
    /// Seconds since the Unix epoch.
    pub finished_at: u64,
    /// The whole cold build (with a full prebuild, the workspace image built with it).
    pub duration_ms: u64,
    /// The dependency build's log.
    pub log: Option<PathBuf>,
    /// Why it failed, or was skipped (its inputs changed mid-build), in one line; the log
    /// has the detail.
    pub error: Option<String>,
    /// The workspace (checkout, worktree or clone) whose build this is. None in records an
    /// older dockwarm wrote, one per fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// The dependency stage's own time (0 when it was found built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_ms: Option<u64>,
    /// The workspace image built on it, when this prebuild made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_image: Option<StageRecord>,
    /// While the build runs, the step it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

/// One stage of a prebuild besides the dependency image: the workspace's own image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageRecord {
    /// "built", "reused" (an identical image got this workspace's names), "failed", or
    /// "skipped" (every name is held by an image dockwarm leaves alone).
    pub status: String,
    /// How long the workspace image's build took (0 when it failed or was not built).
    pub duration_ms: u64,
    /// The workspace image build's log, when a build ran and wrote one.
    pub log: Option<PathBuf>,
}

/// The step a running prebuild is in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The workspace's own image (with a cold dependency stage, that stage runs inside it).
    WorkspaceImage,
    /// The dependency image, from the workspace build's cache.
    DependencyImage,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::WorkspaceImage => "workspace image",
            Phase::DependencyImage => "dependency image",
        })
    }
}

/// How long ago `at` (seconds since the epoch) was: `42s`, `5m`, `3h`, `2d`.
pub fn ago(at: u64) -> String {
    let secs = now_secs().saturating_sub(at);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Now, in seconds since the Unix epoch: the clock of build records and `ago` (0 on a clock
/// set before 1970, rather than a panic).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The JSON file at `path`, or None when it is missing or does not read: a bad state file counts
/// as absent until the next write replaces it (`doctor` names bad records).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
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

/// Written 0600; a missing parent is made 0700 (files here live in the state directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        if let Some(up) = dir.parent() {
            fs::create_dir_all(up).map_err(io_err(up))?;
        }
        private_dir(dir)?;
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let mut file = create_private(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_data().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_takes_the_directory_from_the_environment_given() {
        let dir = tempfile::tempdir().unwrap();
        let at = |vars: &[(&str, &str)]| {
            State::open(&Env::from_vars(vars.iter().copied()))
                .map(|s| s.root().to_path_buf())
                .map_err(|e| e.to_string())
        };
        let d = dir.path().display().to_string();
        assert_eq!(
            at(&[("DOCKWARM_STATE_DIR", &d), ("HOME", "/nowhere")]),
            Ok(dir.path().to_path_buf())
        );
        assert_eq!(
            at(&[("DOCKWARM_STATE_DIR", ""), ("XDG_STATE_HOME", &d)]),
            Ok(dir.path().join("dockwarm"))
        );
        assert!(at(&[]).is_err_and(|e| e.contains("DOCKWARM_STATE_DIR")));
        let state = State::open(&Env::from_vars([
            ("DOCKWARM_STATE_DIR", d.as_str()),
            ("DOCKWARM_DAEMON", "0"),
        ]))
        .unwrap();
        assert!(state.env().daemon_disabled());
    }

    #[test]
    fn build_records_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path());
        let ws = Path::new("/w/a");
        assert!(state.build_record("abc", ws).is_none());
        let mut record = BuildRecord {
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
            workspace: None,
            dependency_ms: None,
            workspace_image: None,
            phase: None,
        };
        // An older dockwarm's record (per fingerprint) still reads, for any workspace.
        state.write_build_record(&record).unwrap();
        assert_eq!(state.build_record("abc", ws), Some(record.clone()));
        // Per workspace: another clone's failure is its own.
        record.workspace = Some(ws.to_path_buf());
        state.write_build_record(&record).unwrap();
        let mut failed = record.clone();
        failed.workspace = Some(PathBuf::from("/w/b"));
        failed.status = "failed".into();
        state.write_build_record(&failed).unwrap();
        assert_eq!(state.build_record("abc", ws), Some(record));
        assert_eq!(state.build_record("abc", Path::new("/w/b")), Some(failed));
        assert_eq!(state.build_records("abc").len(), 3);
        assert!(state.build_records("ab").is_empty());
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
