//! Where git runs this checkout's hooks from: `core.hooksPath` (with its scope) or the common
//! git dir's `hooks/`, and whether husky manages that directory.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::HooksError;

/// Where git looks for this checkout's hooks, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksLocation {
    /// The directory git runs hooks from.
    pub dir: PathBuf,
    /// Why git uses `dir`: the shared hooks directory or a `core.hooksPath` (and from which
    /// config), so `status` and `doctor` can explain it.
    pub source: HooksSource,
    /// Whether dockwarm writes its shims into `dir` itself or into husky's own hook files.
    pub layout: HooksLayout,
}

/// What decided where git runs this checkout's hooks; uninstall also cleans the shared
/// directory when a `core.hooksPath` moved hooks elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HooksSource {
    /// `<common git dir>/hooks`: shared by every worktree of the repository.
    CommonDir {
        /// The repository's common git dir (the main worktree's `.git`).
        common_dir: PathBuf,
    },
    /// `core.hooksPath`, with its value as written and the config file it came from.
    HooksPath {
        /// The setting's bytes; a relative path counts from the worktree's top, `~/` from
        /// `$HOME`.
        value: OsString,
        /// Which config file set it, so the user knows where to change it.
        scope: ConfigScope,
    },
}

/// The git config file a `core.hooksPath` came from, as `hooks status` names it to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigScope {
    /// `config.worktree` (with `extensions.worktreeConfig`): this worktree only.
    Worktree,
    /// The repository's own `.git/config`: every worktree of this repository.
    Local,
    /// The user's `~/.gitconfig` (or the XDG one): every repository of this user.
    Global,
    /// The system-wide git config: every user of the machine.
    System,
    /// A level libgit2 reports that none of the above covers (an app or command-line config).
    Other,
}

/// How the hooks directory is managed, which decides what dockwarm writes and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HooksLayout {
    /// Hooks are files in `dir`, one per hook name.
    Plain,
    /// husky v9: `dir` is husky's generated `.husky/_`; dockwarm writes into `user_dir`.
    Husky {
        /// The user's husky directory (`.husky`), whose per-hook files husky's runner executes;
        /// dockwarm adds a marked block to them.
        user_dir: PathBuf,
    },
}

impl fmt::Display for HooksLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dir.display())?;
        match &self.source {
            HooksSource::CommonDir { .. } => write!(
                f,
                " (the repository's hooks directory, shared by all its worktrees)"
            )?,
            HooksSource::HooksPath { value, scope } => {
                let scope = match scope {
                    ConfigScope::Worktree => "this worktree's config.worktree",
                    ConfigScope::Local => "the repository's config",
                    ConfigScope::Global => "your global git config",
                    ConfigScope::System => "the system git config",
                    ConfigScope::Other => "git config",
                };
                write!(
                    f,
                    " (core.hooksPath={} in {scope})",
                    value.to_string_lossy()
                )?
            }
        }
        if let HooksLayout::Husky { user_dir } = &self.layout {
            write!(
                f,
                "; managed by husky, so dockwarm adds a block to the hook files in {}",
                user_dir.display()
            )?;
        }
        Ok(())
    }
}

/// Install, uninstall and status must agree with git on where hooks live, or dockwarm installs
/// hooks git never runs; this resolves it the way git does (see the module docs), and says why
/// so `status` and `doctor` can explain a surprising answer.
pub fn hooks_dir(worktree: &Path) -> Result<HooksLocation, HooksError> {
    let repo = git2::Repository::discover(worktree).map_err(|source| HooksError::NotARepo {
        path: worktree.to_path_buf(),
        source,
    })?;
    let config_err = |source| HooksError::Config {
        path: repo.path().join("config"),
        source,
    };
    let config = repo.config().map_err(config_err)?;
    // Hooks run at the worktree's top; in a bare repository, in the git dir.
    let base = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();

    let mut found: Option<(OsString, ConfigScope)> = None;
    // libgit2 may not read config.worktree; git lets it override the repository's config.
    if config
        .get_bool("extensions.worktreeConfig")
        .unwrap_or(false)
    {
        let wt_config = repo.path().join("config.worktree");
        if wt_config.is_file() {
            let cfg = git2::Config::open(&wt_config).map_err(|source| HooksError::Config {
                path: wt_config.clone(),
                source,
            })?;
            if let Ok(entry) = cfg.get_entry("core.hooksPath") {
                let v = entry.value_bytes();
                found = Some((OsStr::from_bytes(v).to_os_string(), ConfigScope::Worktree));
            };
        }
    }
    if found.is_none() {
        if let Ok(entry) = config.get_entry("core.hooksPath") {
            let scope = match entry.level() {
                git2::ConfigLevel::Worktree => ConfigScope::Worktree,
                git2::ConfigLevel::Local => ConfigScope::Local,
                git2::ConfigLevel::Global | git2::ConfigLevel::XDG => ConfigScope::Global,
                git2::ConfigLevel::System | git2::ConfigLevel::ProgramData => ConfigScope::System,
                _ => ConfigScope::Other,
            };
            found = Some((OsStr::from_bytes(entry.value_bytes()).to_os_string(), scope));
        };
    }

    match found {
        Some((value, scope)) if !value.is_empty() => {
            let dir = resolve_hooks_path(&base, &value);
            let layout = husky_layout(&dir);
            Ok(HooksLocation {
                dir,
                source: HooksSource::HooksPath { value, scope },
                layout,
            })
        }
        _ => Ok(HooksLocation {
            dir: repo.commondir().join("hooks"),
            source: HooksSource::CommonDir {
                common_dir: repo.commondir().to_path_buf(),
            },
            layout: HooksLayout::Plain,
        }),
    }
}

/// A `core.hooksPath` value as git reads it: `~` and `~/` from `$HOME`, a relative path from
/// `base` (the worktree's top, or the git dir of a bare repository).
pub(super) fn resolve_hooks_path(base: &Path, value: &OsStr) -> PathBuf {
    let bytes = value.as_bytes();
    if bytes == b"~" || bytes.starts_with(b"~/") {
        // The process's HOME, as git expands `~` with its own: libgit2 found this value in the
        // global config through the process's HOME too, so the two must agree.
        if let Some(home) = std::env::var_os("HOME") {
            let rest = OsStr::from_bytes(bytes.get(2..).unwrap_or_default());
            return PathBuf::from(home).join(rest);
        }
    }
    let path = Path::new(value);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// husky v9's generated directory is `<dir>/_` holding its runner `h`; the `_` may not exist yet
/// in a fresh worktree (husky runs on `npm install`), so the name `.husky/_` is enough too.
fn husky_layout(dir: &Path) -> HooksLayout {
    let is_underscore = dir.file_name() == Some(OsStr::new("_"));
    let parent = dir.parent();
    let parent_is_husky = parent.and_then(Path::file_name) == Some(OsStr::new(".husky"));
    match parent {
        Some(user_dir) if is_underscore && (parent_is_husky || dir.join("h").is_file()) => {
            HooksLayout::Husky {
                user_dir: user_dir.to_path_buf(),
            }
        }
        _ => HooksLayout::Plain,
    }
}
