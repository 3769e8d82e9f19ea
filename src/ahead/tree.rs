//! A commit's files, written out only as far as a plan reads them.
//!
//! Planning a commit must give the fingerprint a checkout of it gives, so it runs the very same
//! code (`config`, `compose`, `fingerprint`, `context`) on a directory that holds the commit's
//! files — but only those the plan reads: the configuration and compose files, the Dockerfiles
//! and ignore files, the dependency inputs, and the listings of the directories a `COPY dir/`
//! or a wildcard walks. What to write is found by fixed point: plan, write what the plan read
//! (or failed to find) that the commit has, plan again, until nothing new is read. A lockfile
//! change costs a few rounds of a few small files, never a checkout.
//!
//! Files are created the way git's checkout creates them — mode 0666 or 0777 (executable),
//! directories 0777, all less the umask — so the modes BuildKit hashes for a `COPY` are those
//! of a later checkout by the same user. Entries of a listed directory that nothing reads are
//! left empty (names matter to a wildcard, content only to what it matches, which is then
//! written in full on the next round).

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::AheadError;

const MODE_EXEC: i32 = 0o100755;
const MODE_LINK: i32 = 0o120000;
const MODE_TREE: i32 = 0o040000;
const MODE_GITLINK: i32 = 0o160000;

/// A commit's tree, written on demand under `root`.
pub(super) struct Sparse<'r> {
    repo: &'r git2::Repository,
    tree: git2::Tree<'r>,
    root: PathBuf,
    /// Paths (relative, `/`-separated) written with their content.
    full: HashSet<String>,
    /// Directories whose entries were created.
    listed: HashSet<String>,
}

impl<'r> Sparse<'r> {
    /// An empty `root` for the commit's `tree`; nothing of the tree is written until wanted.
    pub(super) fn new(
        repo: &'r git2::Repository,
        tree: git2::Tree<'r>,
        root: PathBuf,
    ) -> Result<Sparse<'r>, AheadError> {
        std::fs::create_dir_all(&root).map_err(|e| AheadError::io(&root, e))?;
        Ok(Sparse {
            repo,
            tree,
            root,
            full: HashSet::new(),
            listed: HashSet::new(),
        })
    }

    /// `abs` relative to the root, when it lies under it (`/`-separated, no `..`).
    pub(super) fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs.strip_prefix(&self.root).ok()?;
        clean(&rel.to_string_lossy())
    }

    /// Writes what the commit has at `rel`: a file with its content, a directory's listing.
    /// Returns whether anything new was written (false: already there, or not in the commit).
    pub(super) fn want(&mut self, rel: &str) -> Result<bool, AheadError> {
        let Some(rel) = clean(rel) else {
            return Ok(false);
        };
        if rel.is_empty() {
            return self.list("");
        }
        let entry = match self.tree.get_path(Path::new(&rel)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(false),
            Err(e) => return Err(AheadError::git(&rel, e)),
        };
        match entry.filemode() {
            MODE_TREE => self.list(&rel),
            MODE_GITLINK => Ok(false),
            _ => self.file(&rel, &entry),
        }
    }

    /// Writes a blob (or symlink) in full, replacing a placeholder; a symlink's target inside
    /// the commit is written too, since reading the link reads it.
    fn file(&mut self, rel: &str, entry: &git2::TreeEntry<'_>) -> Result<bool, AheadError> {
        if self.full.contains(rel) {
            return Ok(false);
        }
        self.parents(rel)?;
        let path = self.root.join(rel);
        let blob = entry
            .to_object(self.repo)
            .and_then(|o| o.peel_to_blob())
            .map_err(|e| AheadError::git(rel, e))?;
        let _ = std::fs::remove_file(&path);
        if entry.filemode() == MODE_LINK {
            let target = std::ffi::OsStr::from_bytes(blob.content());
            std::os::unix::fs::symlink(target, &path).map_err(|e| AheadError::io(&path, e))?;
            self.full.insert(rel.to_string());
            let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
            if let Some(target) = clean(&parent.join(target).to_string_lossy()) {
                self.want(&target)?;
            }
            return Ok(true);
        }
        let mode = if entry.filemode() == MODE_EXEC {
            0o777
        } else {
            0o666
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| AheadError::io(&path, e))?;
        f.write_all(blob.content())
            .map_err(|e| AheadError::io(&path, e))?;
        self.full.insert(rel.to_string());
        Ok(true)
    }

    /// Creates a directory's entries: subdirectories (empty), symlinks, and files as empty
    /// placeholders until something reads them.
    fn list(&mut self, rel: &str) -> Result<bool, AheadError> {
        if self.listed.contains(rel) {
            return Ok(false);
        }
        self.listed.insert(rel.to_string());
        let tree = if rel.is_empty() {
            self.tree.clone()
        } else {
            self.parents(rel)?;
            let dir = self.root.join(rel);
            mkdir(&dir)?;
            self.tree
                .get_path(Path::new(rel))
                .and_then(|e| e.to_object(self.repo))
                .and_then(|o| o.peel_to_tree())
                .map_err(|e| AheadError::git(rel, e))?
        };
        for entry in tree.iter() {
            let Ok(name) = entry.name() else { continue };
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let path = self.root.join(&child);
            if self.full.contains(&child) || std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            match entry.filemode() {
                MODE_TREE | MODE_GITLINK => mkdir(&path)?,
                MODE_LINK => {
                    self.file(&child, &entry)?;
                }
                mode => {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(if mode == MODE_EXEC { 0o777 } else { 0o666 })
                        .open(&path)
                        .map_err(|e| AheadError::io(&path, e))?;
                }
            }
        }
        Ok(true)
    }

    /// Creates the parent directories of `rel`, as git does (0777 less the umask).
    fn parents(&self, rel: &str) -> Result<(), AheadError> {
        if let Some(parent) = Path::new(rel).parent() {
            let dir = self.root.join(parent);
            std::fs::create_dir_all(&dir).map_err(|e| AheadError::io(&dir, e))?;
        }
        Ok(())
    }

    /// Everything under `rel` (`""`: the whole commit) in full: the build context of the
    /// commit's workspace image, which holds every file a checkout would, not only the inputs.
    /// Placeholders an earlier round left empty are filled.
    pub(super) fn want_all(&mut self, rel: &str) -> Result<(), AheadError> {
        let Some(rel) = clean(rel) else {
            return Ok(());
        };
        let mut files = Vec::new();
        let mut walk = |dir: &str, entry: &git2::TreeEntry<'_>| {
            if let Ok(name) = entry.name() {
                match entry.filemode() {
                    MODE_TREE => files.push((format!("{dir}{name}"), true)),
                    MODE_GITLINK => {}
                    _ => files.push((format!("{dir}{name}"), false)),
                }
            }
            git2::TreeWalkResult::Ok
        };
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        if rel.is_empty() {
            self.tree.walk(git2::TreeWalkMode::PreOrder, &mut walk)
        } else {
            let sub = match self.tree.get_path(Path::new(&rel)) {
                Ok(e) if e.filemode() == MODE_TREE => e
                    .to_object(self.repo)
                    .and_then(|o| o.peel_to_tree())
                    .map_err(|e| AheadError::git(&rel, e))?,
                Ok(_) => return self.want(&rel).map(|_| ()),
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(()),
                Err(e) => return Err(AheadError::git(&rel, e)),
            };
            sub.walk(git2::TreeWalkMode::PreOrder, &mut walk)
        }
        .map_err(|e| AheadError::git(&rel, e))?;
        self.list(&rel)?;
        for (path, is_dir) in files {
            let path = format!("{prefix}{path}");
            if is_dir {
                self.list(&path)?;
            } else if !self.full.contains(&path) {
                // A placeholder from a listing: replaced by the blob.
                let entry = self
                    .tree
                    .get_path(Path::new(&path))
                    .map_err(|e| AheadError::git(&path, e))?;
                self.file(&path, &entry)?;
            }
        }
        Ok(())
    }

    /// Every blob whose name ends with one of `suffixes`, in full (a compose file named by an
    /// `include` the first round could not resolve): small files, bounded count.
    pub(super) fn want_named(&mut self, suffixes: &[&str]) -> Result<bool, AheadError> {
        let mut found = Vec::new();
        self.tree
            .walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if found.len() >= 256 {
                    return git2::TreeWalkResult::Abort;
                }
                if let Ok(name) = entry.name() {
                    if entry.filemode() != MODE_TREE && suffixes.iter().any(|s| name.ends_with(s)) {
                        found.push(format!("{dir}{name}"));
                    }
                }
                git2::TreeWalkResult::Ok
            })
            .or_else(|e| {
                if e.code() == git2::ErrorCode::User {
                    Ok(())
                } else {
                    Err(AheadError::git("(tree)", e))
                }
            })?;
        let mut more = false;
        for rel in found {
            more |= self.want(&rel)?;
        }
        Ok(more)
    }
}

fn mkdir(dir: &Path) -> Result<(), AheadError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(AheadError::io(dir, e)),
    }
}

/// A relative path with `.` and `..` resolved, `/`-separated; None when it leaves the root.
pub(super) fn clean(rel: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(rel.trim_start_matches('/')).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The literal directory part of a COPY source (before its first wildcard), relative.
pub(super) fn literal_prefix(source: &str) -> String {
    let mut out = Vec::new();
    for part in source.trim_start_matches('/').split('/') {
        if part.contains(['*', '?', '[', '\\']) {
            break;
        }
        out.push(part);
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_prefixes_stop_at_wildcards() {
        assert_eq!(clean("a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(clean("/a").as_deref(), Some("a"));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean(".").as_deref(), Some(""));
        assert_eq!(literal_prefix("/reqs/*.txt"), "reqs");
        assert_eq!(literal_prefix("uv.lock"), "uv.lock");
        assert_eq!(literal_prefix("*.lock"), "");
    }
}
