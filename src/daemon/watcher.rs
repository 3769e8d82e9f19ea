//! Which directories the daemon watches, and which (workspace, image) an event concerns.
//!
//! Directories rather than files: editors, `uv lock` and `npm install` save by writing a
//! temporary file and renaming it over the old one, which a watch on the old file's inode never
//! sees. Non-recursive: one inotify watch per directory that holds an input, so fifty
//! workspaces cost a few hundred watches, not one per file of fifty source trees.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::config::Config;
use crate::fingerprint::Plan;

/// Who cares about changes in one directory.
#[derive(Debug, Clone, PartialEq)]
struct Interest {
    workspace: PathBuf,
    image: String,
    /// Only these entries of the directory; None: any entry (a directory that a COPY source
    /// names, which may gain files).
    names: Option<BTreeSet<OsString>>,
}

/// The directories to watch for a set of workspaces, and who cares about each.
#[derive(Debug, Default)]
pub struct Targets {
    dirs: BTreeMap<PathBuf, Vec<Interest>>,
}

/// The image of the interests in a repository's refs: a change there means "look at the refs
/// prebuilt ahead" (`crate::ahead`), not "recompute a workspace". Not a valid image name.
pub const AHEAD: &str = "\u{0}ahead";

/// Files at a workspace's root that change what gets built, whatever the image.
const ROOT_FILES: &[&str] = &[
    crate::config::FILE_NAME,
    ".env",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

impl Targets {
    /// Forgets a workspace (it is re-added with [`Targets::add_image`] after a change).
    pub fn remove_workspace(&mut self, workspace: &Path) {
        for interests in self.dirs.values_mut() {
            interests.retain(|i| i.workspace != workspace || i.image == AHEAD);
        }
        self.dirs.retain(|_, v| !v.is_empty());
    }

    /// Watches the refs looked at ahead, replacing the previous set: per repository (its main
    /// worktree), directories and the entry names in them (`refs/remotes/origin` → `main`,
    /// the common git dir → `packed-refs`).
    pub fn set_ahead(&mut self, watches: &[crate::ahead::RefWatch]) {
        for interests in self.dirs.values_mut() {
            interests.retain(|i| i.image != AHEAD);
        }
        self.dirs.retain(|_, v| !v.is_empty());
        for w in watches {
            let names = w.names.iter().map(OsString::from).collect();
            self.add(w.dir.clone(), w.repo.clone(), AHEAD, Some(names));
        }
    }

    /// Watches what an image's dependency plan reads: its input files, its Dockerfile and
    /// `.dockerignore`, and the configuration files at the workspace root.
    pub fn add_image(&mut self, config: &Config, plan: &Plan) {
        let root = &config.root;
        let image = &plan.image.name;
        let mut files: Vec<PathBuf> = plan.inputs.iter().map(|f| root.join(&f.path)).collect();
        files.push(plan.dockerfile_path.clone());
        files.push(plan.context_dir.join(".dockerignore"));
        let mut ignore_name = plan.dockerfile_path.clone().into_os_string();
        ignore_name.push(".dockerignore");
        files.push(PathBuf::from(ignore_name));
        for name in ROOT_FILES {
            files.push(root.join(name));
        }
        // Every file the compose model was read from (overrides, includes, env files).
        files.extend(config.compose_inputs.iter().cloned());
        let mut by_dir: BTreeMap<PathBuf, BTreeSet<OsString>> = BTreeMap::new();
        for f in files {
            if let (Some(dir), Some(name)) = (f.parent(), f.file_name()) {
                by_dir
                    .entry(dir.to_path_buf())
                    .or_default()
                    .insert(name.to_os_string());
            }
        }
        for (dir, names) in by_dir {
            // Beyond the root and the context dir, a directory holding inputs is one a COPY
            // names as a whole (`COPY requirements/ ./`): any new entry may be an input.
            let whole = dir != *root && dir != plan.context_dir;
            self.add(dir, config.root.clone(), image, (!whole).then_some(names));
        }
    }

    /// A workspace whose configuration does not resolve (a half-edited file): watch its root
    /// for any change, so the fix is noticed.
    pub fn add_root(&mut self, workspace: &Path) {
        self.add(workspace.to_path_buf(), workspace.to_path_buf(), "", None);
    }

    fn add(
        &mut self,
        dir: PathBuf,
        workspace: PathBuf,
        image: &str,
        names: Option<BTreeSet<OsString>>,
    ) {
        let interests = self.dirs.entry(dir).or_default();
        let interest = Interest {
            workspace,
            image: image.to_string(),
            names,
        };
        if !interests.contains(&interest) {
            interests.push(interest);
        }
    }

    /// Every directory some workspace's inputs live in: what [`DirWatcher::sync`] watches.
    pub fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.dirs.keys()
    }

    /// The (workspace, image) pairs a changed path concerns; image "" means every image.
    pub fn concerned(&self, path: &Path) -> BTreeSet<(PathBuf, String)> {
        let mut out = BTreeSet::new();
        // The path itself is a watched directory (removed, renamed): everyone watching it.
        if let Some(interests) = self.dirs.get(path) {
            for i in interests {
                out.insert((i.workspace.clone(), i.image.clone()));
            }
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return out;
        };
        for i in self.dirs.get(dir).into_iter().flatten() {
            if i.names.as_ref().is_none_or(|n| n.contains(name)) {
                out.insert((i.workspace.clone(), i.image.clone()));
            }
        }
        out
    }
}

/// Whether an event can mean new bytes in a file. Reads (ours included: hashing an input opens
/// it) must not count, or every recompute would trigger the next.
pub fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    )
}

/// The OS watcher, kept in step with [`Targets`].
pub struct DirWatcher {
    inner: notify::RecommendedWatcher,
    watched: BTreeSet<PathBuf>,
}

impl DirWatcher {
    /// A watcher that sends each file event to `handler` (the daemon's loop) and watches nothing
    /// yet; [`DirWatcher::sync`] adds the directories.
    pub fn new(handler: impl notify::EventHandler) -> Result<DirWatcher, notify::Error> {
        Ok(DirWatcher {
            inner: notify::recommended_watcher(handler)?,
            watched: BTreeSet::new(),
        })
    }

    /// Watches the directories of `targets` that exist and unwatches the others. Returns the
    /// directories that could not be watched, with why (a missing directory is not an error:
    /// its parent's change brings the workspace back for a recompute).
    pub fn sync(&mut self, targets: &Targets) -> Vec<(PathBuf, String)> {
        let wanted: BTreeSet<PathBuf> = targets.dirs().filter(|d| d.is_dir()).cloned().collect();
        let gone: Vec<PathBuf> = self.watched.difference(&wanted).cloned().collect();
        for dir in gone {
            let _ = self.inner.unwatch(&dir);
            self.watched.remove(&dir);
        }
        let mut failed = Vec::new();
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.inner.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => failed.push((dir, e.to_string())),
            }
        }
        failed
    }

    /// How many directories are watched now, one inotify watch each; `daemon status` shows it, as
    /// the figure to hold against `fs.inotify.max_user_watches`.
    pub fn count(&self) -> usize {
        self.watched.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_the_workspaces_and_images_that_read_the_path() {
        let mut t = Targets::default();
        let names = |n: &[&str]| Some(n.iter().map(OsString::from).collect());
        t.add("/w/a".into(), "/w/a".into(), "app", names(&["uv.lock"]));
        t.add("/w/a/reqs".into(), "/w/a".into(), "app", None);
        t.add("/w/b".into(), "/w/b".into(), "app", names(&["uv.lock"]));
        let got = |p: &str| t.concerned(Path::new(p));
        assert_eq!(
            got("/w/a/uv.lock"),
            BTreeSet::from([("/w/a".into(), "app".to_string())])
        );
        assert!(got("/w/a/README.md").is_empty());
        assert_eq!(got("/w/a/reqs/new.txt").len(), 1);
        assert_eq!(got("/w/a/reqs").len(), 1);
        t.remove_workspace(Path::new("/w/a"));
        assert!(t.concerned(Path::new("/w/a/uv.lock")).is_empty());
        assert_eq!(t.dirs().count(), 1);
        // The refs watched ahead outlive a workspace's recompute and are replaced as a set.
        let refs = |dir: &str, name: &str| crate::ahead::RefWatch {
            repo: "/w/b".into(),
            dir: dir.into(),
            names: vec![name.into()],
        };
        t.set_ahead(&[refs("/w/b/.git/refs/remotes/origin", "main")]);
        t.remove_workspace(Path::new("/w/b"));
        let ahead = BTreeSet::from([("/w/b".into(), AHEAD.to_string())]);
        assert_eq!(got2(&t, "/w/b/.git/refs/remotes/origin/main"), ahead);
        assert!(got2(&t, "/w/b/.git/refs/remotes/origin/dev").is_empty());
        t.set_ahead(&[refs("/w/b/.git", "packed-refs")]);
        assert!(got2(&t, "/w/b/.git/refs/remotes/origin/main").is_empty());
        assert_eq!(got2(&t, "/w/b/.git/packed-refs"), ahead);
    }

    fn got2(t: &Targets, p: &str) -> BTreeSet<(PathBuf, String)> {
        t.concerned(Path::new(p))
    }
}
