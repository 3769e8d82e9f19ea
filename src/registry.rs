//! Registered workspaces: which checkouts dockwarm keeps warm, and what it last saw in each.
//!
//! One file per workspace (named by a hash of its path), written atomically: hooks firing in
//! many worktrees at once each write their own file, so no registration is ever lost to a
//! concurrent read-modify-write of a shared list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{self, State, StateError};

/// One registered workspace's record: who it is, and what the hooks and prebuilds last saw
/// there, so the next look only has to compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// `CONDUCTOR_WORKSPACE_NAME`, else the directory name.
    pub name: String,
    /// The workspace's root, as dockwarm resolved it: the record's key (see [`id`]).
    pub path: PathBuf,
    /// dockwarm's project (shared by the repository's workspaces).
    pub project: String,
    /// This workspace's compose project.
    pub compose_project: String,
    /// When it was first registered (seconds since the epoch); `init` again keeps it.
    pub registered_at: u64,
    /// Per image: what the hooks last saw.
    #[serde(default)]
    pub images: BTreeMap<String, ImageSeen>,
    /// The engine variables of the shell that last ran `init` or a hook here: the daemon
    /// builds this workspace on that engine, whatever its own environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<crate::engine::EngineEnv>,
}

/// What was last seen and built of one image in one workspace: tells a checkout that changed
/// its dependency inputs from one that did not, and whether a build is still owed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageSeen {
    /// Digest of the dependency stage's inputs as the hooks compute it (without base image IDs,
    /// which would need the engine): a change means a prebuild is due.
    pub inputs_digest: String,
    /// The full fingerprint of the last prebuild, when one ran.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Compose image names tagged for this workspace (`<project>-<service>`,
    /// `<project>_<service>`): what `archive` removes.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The inputs digest of the last full prebuild that succeeded for this workspace: what the
    /// daemon compares with the files on disk to know whether a build is still owed, after a
    /// crash or a restart included.
    #[serde(default)]
    pub built_digest: Option<String>,
    /// The cold builds this workspace was spared.
    #[serde(default)]
    pub saved: Saved,
}

/// Builds served warm, and the cold build time they avoided: for each, the measured time of
/// the cold build of the same fingerprint (its dependency stage and the workspace image built
/// on it) less the time this warm one took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// How many builds were served warm.
    pub builds: u32,
    /// The cold build time they avoided, in milliseconds (a warm build slower than the cold
    /// one counts as nothing saved, never as time lost).
    pub ms: u64,
}

impl Saved {
    /// Adds one build served warm.
    pub fn add(&mut self, avoided_ms: u64, took_ms: u64) {
        self.builds += 1;
        self.ms += avoided_ms.saturating_sub(took_ms);
    }
}

impl std::ops::AddAssign for Saved {
    fn add_assign(&mut self, other: Saved) {
        self.builds += other.builds;
        self.ms += other.ms;
    }
}

impl ImageSeen {
    /// The inputs digest this workspace's images were last built from, if known. Records
    /// written before `built_digest` existed count as built from `inputs_digest` when a
    /// prebuild ran, which [`ImageSeen::set_inputs_digest`] keeps true.
    pub fn built(&self) -> Option<&str> {
        self.built_digest
            .as_deref()
            .or_else(|| {
                self.fingerprint
                    .as_ref()
                    .map(|_| self.inputs_digest.as_str())
            })
            .filter(|d| !d.is_empty())
    }

    /// Records a newly seen digest, first pinning what was built (see [`ImageSeen::built`]),
    /// so that seeing a change is never mistaken for having built it.
    pub fn set_inputs_digest(&mut self, digest: &str) {
        if self.built_digest.is_none() {
            self.built_digest = self.built().map(str::to_string);
        }
        self.inputs_digest = digest.to_string();
    }
}

/// The registry key of a workspace path.
pub fn id(path: &Path) -> String {
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..8])
}

fn file(state: &State, path: &Path) -> Result<PathBuf, StateError> {
    Ok(state.dir("workspaces")?.join(format!("{}.json", id(path))))
}

/// The record of the workspace at `path`; `None` when it is not registered (or its file
/// cannot be read: the next hook then registers it afresh rather than failing git).
pub fn get(state: &State, path: &Path) -> Option<Workspace> {
    let text = std::fs::read(file(state, path).ok()?).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes a workspace's record whole, atomically; to change one that may be written
/// concurrently, use [`update`].
pub fn put(state: &State, ws: &Workspace) -> Result<(), StateError> {
    state::write_json_atomic(&file(state, &ws.path)?, ws)
}

/// Updates a workspace's record under its lock (read, change, write), so two hooks of the same
/// workspace never overwrite each other's changes.
pub fn update(
    state: &State,
    path: &Path,
    change: impl FnOnce(&mut Workspace),
) -> Result<Option<Workspace>, StateError> {
    let _guard = state.lock(&format!("workspace-{}", id(path)))?;
    let Some(mut ws) = get(state, path) else {
        return Ok(None);
    };
    change(&mut ws);
    put(state, &ws)?;
    Ok(Some(ws))
}

/// Unregisters the workspace at `path` (`archive`, or its directory gone): `Ok(false)` when it
/// was not registered.
pub fn remove(state: &State, path: &Path) -> Result<bool, StateError> {
    let f = file(state, path)?;
    match std::fs::remove_file(&f) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io {
            path: f.display().to_string(),
            source,
        }),
    }
}

/// The marker file of an archived workspace: `archived/<id>`, holding its path.
fn archived_file(state: &State, path: &Path) -> Result<PathBuf, StateError> {
    Ok(state.dir("archived")?.join(id(path)))
}

/// Marks a workspace archived: the hooks (which all worktrees share) leave it alone, and
/// neither register it again nor hand it to the daemon, until `dockwarm init` runs there.
pub fn mark_archived(state: &State, path: &Path) -> Result<(), StateError> {
    let marker = archived_file(state, path)?;
    // Marks of workspaces whose directory is gone (Conductor deletes it after archiving)
    // have nothing left to keep quiet.
    if let Some(dir) = marker.parent() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let gone = std::fs::read(entry.path()).is_ok_and(|bytes| {
                !Path::new(&String::from_utf8_lossy(&bytes).into_owned()).exists()
            });
            if gone {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    state::write_atomic(&marker, path.as_os_str().as_encoded_bytes())
}

/// Whether `dockwarm archive` ran in this workspace and `dockwarm init` has not since. One
/// `stat` (the hooks ask it on every checkout).
pub fn is_archived(state: &State, path: &Path) -> bool {
    state.root().join("archived").join(id(path)).exists()
}

/// Forgets the archived mark (`dockwarm init`, or a new worktree made at the same path).
pub fn unarchive(state: &State, path: &Path) -> Result<(), StateError> {
    let f = state.root().join("archived").join(id(path));
    match std::fs::remove_file(&f) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Io {
            path: f.display().to_string(),
            source,
        }),
    }
}

/// Every registered workspace, sorted by path.
pub fn list(state: &State) -> Vec<Workspace> {
    let Ok(dir) = state.dir("workspaces") else {
        return Vec::new();
    };
    let mut out: Vec<Workspace> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by(|a: &Workspace, b| a.path.cmp(&b.path));
    out
}

/// The workspace's display name: Conductor's when it runs us (`env`), else the directory's.
pub fn workspace_name(env: &crate::env::Env, path: &Path) -> String {
    env.conductor_workspace_name()
        .map(str::to_string)
        .unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(path: &str) -> Workspace {
        Workspace {
            name: "w".into(),
            path: PathBuf::from(path),
            project: "p".into(),
            compose_project: "w".into(),
            registered_at: 0,
            images: BTreeMap::new(),
            engine: None,
        }
    }

    #[test]
    fn an_archived_mark_lasts_until_unarchived_and_goes_with_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path().join("state"));
        let (kept, gone) = (dir.path().join("kept"), dir.path().join("gone"));
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::create_dir_all(&gone).unwrap();
        assert!(!is_archived(&state, &kept));
        unarchive(&state, &kept).unwrap();
        mark_archived(&state, &gone).unwrap();
        std::fs::remove_dir(&gone).unwrap();
        mark_archived(&state, &kept).unwrap();
        assert!(is_archived(&state, &kept));
        assert!(
            !is_archived(&state, &gone),
            "a gone directory's mark is dropped"
        );
        unarchive(&state, &kept).unwrap();
        assert!(!is_archived(&state, &kept));
    }

    #[test]
    fn ten_registrations_at_once_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::thread::scope(|s| {
            for i in 0..10 {
                let root = root.clone();
                s.spawn(move || {
                    let state = State::at(root);
                    for _ in 0..20 {
                        put(&state, &ws(&format!("/w/{i}"))).unwrap();
                        update(&state, Path::new(&format!("/w/{i}")), |w| {
                            w.images
                                .entry("app".into())
                                .or_default()
                                .inputs_digest
                                .push('x')
                        })
                        .unwrap();
                    }
                });
            }
        });
        let state = State::at(&root);
        let all = list(&state);
        assert_eq!(all.len(), 10);
        assert!(remove(&state, Path::new("/w/3")).unwrap());
        assert!(!remove(&state, Path::new("/w/3")).unwrap());
        assert_eq!(list(&state).len(), 9);
    }
}
