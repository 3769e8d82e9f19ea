//! Which checkout we are in: the workspace root and the repository's main worktree.
//!
//! Read straight from the `.git` file/dir rather than through libgit2, because this runs in every
//! git hook and must cost microseconds. A linked worktree's `.git` is a file naming its private
//! git dir, whose `commondir` names the main repository's git dir.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why the checkout holding a path could not be found; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// No `.git` in the path or any parent: dockwarm was run outside a git checkout (the path as
    /// given, made absolute).
    #[error(
        "{0} is not inside a git repository; run dockwarm from a checkout (or `git init` first)"
    )]
    NotARepository(String),
    /// A `.git` file (or what it points at) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The checkout's (or its main worktree's) path is not UTF-8, escaped for printing; refused
    /// up front rather than half-registered.
    #[error("the checkout's path {0} is not valid UTF-8, which dockwarm (and compose's project names and build contexts) cannot represent; rename the directory to a UTF-8 name")]
    NotUtf8(String),
}

/// One git checkout, the unit dockwarm keeps warm, and the repository's main worktree, whose
/// directory name is the default project name of every linked worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The top of this checkout (where `dockwarm.toml` and the compose file live).
    pub root: PathBuf,
    /// The top of the repository's main worktree (equal to `root` outside linked worktrees).
    pub main_root: PathBuf,
}

impl Workspace {
    /// Finds the checkout containing `start`. Its path must be UTF-8: the registry, build
    /// records and compose names all carry it as text, so a path that is not is refused here
    /// with one line rather than failing later, half-registered.
    pub fn discover(start: &Path) -> Result<Workspace, WorkspaceError> {
        let found = Self::find(start)?;
        for path in [&found.root, &found.main_root] {
            if path.to_str().is_none() {
                return Err(WorkspaceError::NotUtf8(escaped(path.as_os_str())));
            }
        }
        Ok(found)
    }

    fn find(start: &Path) -> Result<Workspace, WorkspaceError> {
        let start = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        let mut dir = start.as_path();
        loop {
            let dotgit = dir.join(".git");
            if dotgit.is_dir() {
                return Ok(Workspace {
                    root: dir.to_path_buf(),
                    main_root: dir.to_path_buf(),
                });
            }
            if dotgit.is_file() {
                let main_root = main_root_of_linked(&dotgit)?.unwrap_or_else(|| dir.to_path_buf());
                return Ok(Workspace {
                    root: dir.to_path_buf(),
                    main_root,
                });
            }
            match dir.parent() {
                Some(parent) => dir = parent,
                None => return Err(WorkspaceError::NotARepository(start.display().to_string())),
            }
        }
    }

    /// The name of the directory of this checkout.
    pub fn dir_name(&self) -> String {
        dir_name(&self.root)
    }

    /// The name of the main worktree's directory: the default project name, the same in every
    /// linked worktree, so they share one set of dependency images.
    pub fn main_dir_name(&self) -> String {
        dir_name(&self.main_root)
    }
}

/// Text that is not UTF-8, shown with its odd bytes escaped (`caf\xE9`) rather than as `�`, so
/// the user can find the name they must change.
pub fn escaped(text: &std::ffi::OsStr) -> String {
    let debug = format!("{text:?}");
    debug
        .strip_prefix('"')
        .and_then(|d| d.strip_suffix('"'))
        .unwrap_or(&debug)
        .to_string()
}

fn dir_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `gitdir: <path>` → `<path>/commondir` → the main git dir, whose parent is the main worktree.
/// Submodules also have a `.git` file but no `commondir`: they are their own main worktree.
fn main_root_of_linked(dotgit: &Path) -> Result<Option<PathBuf>, WorkspaceError> {
    // Bytes, not text: git writes paths as the filesystem has them, UTF-8 or not.
    let read = |p: &Path| {
        std::fs::read(p)
            .map(|b| {
                let b = b.trim_ascii();
                PathBuf::from(std::ffi::OsStr::from_bytes(b))
            })
            .map_err(|source| WorkspaceError::Unreadable {
                path: p.to_path_buf(),
                source,
            })
    };
    let text = read(dotgit)?;
    let Some(gitdir) = text.as_os_str().as_bytes().strip_prefix(b"gitdir:") else {
        return Ok(None);
    };
    let base = dotgit.parent().unwrap_or(Path::new("/"));
    let gitdir = base.join(std::ffi::OsStr::from_bytes(gitdir.trim_ascii()));
    let commondir = gitdir.join("commondir");
    if !commondir.exists() {
        return Ok(None);
    }
    let common = gitdir.join(read(&commondir)?);
    let common = common.canonicalize().unwrap_or(common);
    Ok(common.parent().map(Path::to_path_buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::git;

    #[test]
    fn a_linked_worktree_knows_its_main_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let main = tmp.path().join("my repo");
        std::fs::create_dir(&main).unwrap();
        git(&main, &["init", "-q"]);
        git(&main, &["commit", "-q", "--allow-empty", "-m", "x"]);
        git(&main, &["worktree", "add", "-q", "../wörk tree", "-b", "b"]);
        let wt = tmp.path().join("wörk tree");
        std::fs::create_dir(wt.join("sub")).unwrap();
        let ws = Workspace::discover(&wt.join("sub")).unwrap();
        assert_eq!(ws.root, wt);
        assert_eq!(ws.main_root, main.canonicalize().unwrap());
        assert_eq!(ws.main_dir_name(), "my repo");
        let ws = Workspace::discover(&main).unwrap();
        assert_eq!(ws.root, ws.main_root);
    }

    #[test]
    fn outside_a_repository_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            Workspace::discover(tmp.path()),
            Err(WorkspaceError::NotARepository(_))
        ));
    }
}
