//! What `dockwarm hooks status` and `doctor` report: per hook, whether git will run dockwarm,
//! and through which manager.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::*;

/// One hook as `status` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookState {
    /// Our shim is the hook; `chains` is the previous hook it runs first, if any.
    Ours {
        /// The moved-aside previous hook (`<hook>.dockwarm-orig`), when it still exists.
        chains: Option<PathBuf>,
    },
    /// Another manager's hook is in place and runs our shim (pre-commit's `<hook>.legacy`).
    OursVia {
        /// The manager whose hook runs ours.
        manager: Manager,
        /// Where our shim is now, under the manager's name for it.
        shim: PathBuf,
        /// The hook our shim runs first, when it still exists.
        chains: Option<PathBuf>,
    },
    /// husky: our block is in the user-facing hook file. `runner_present` is false until husky
    /// has generated `.husky/_/<hook>` in this worktree (e.g. `npm install`), and until then git
    /// runs nothing.
    HuskyBlock {
        /// The user-facing husky hook, `.husky/<hook>`.
        file: PathBuf,
        /// Whether husky's generated `.husky/_/<hook>`, which git runs, exists here.
        runner_present: bool,
    },
    /// A hook that does not run dockwarm. `stranded` is our shim, moved aside by the manager
    /// that replaced it, which no longer runs.
    Foreign {
        /// The manager that wrote the hook, when its file gives it away; None for a hand-written
        /// one.
        manager: Option<Manager>,
        /// Our shim under another name (lefthook's `<hook>.old`), where nothing runs it any
        /// more; `uninstall` removes it too.
        stranded: Option<PathBuf>,
    },
    /// No hook at all.
    Missing,
}

impl HookState {
    /// Whether `dockwarm hooks install` would change something for this hook.
    pub fn needs_install(&self) -> bool {
        matches!(self, HookState::Foreign { .. } | HookState::Missing)
    }
}

impl fmt::Display for HookState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookState::Ours { chains: None } => write!(f, "ours"),
            HookState::Ours { chains: Some(p) } => write!(f, "ours, chaining {}", p.display()),
            HookState::OursVia {
                manager,
                shim,
                chains,
            } => {
                write!(f, "{}'s hook, which runs ours ({})", manager.name(), shim.display())?;
                if let Some(p) = chains {
                    write!(f, ", chaining {}", p.display())?;
                }
                Ok(())
            }
            HookState::HuskyBlock {
                file,
                runner_present: true,
            } => write!(f, "ours, as a block in {} (run by husky)", file.display()),
            HookState::HuskyBlock {
                file,
                runner_present: false,
            } => write!(
                f,
                "ours, as a block in {}, but husky has not generated its runner here yet: run `npx husky` (or `npm install`)",
                file.display()
            ),
            HookState::Foreign { manager, stranded } => {
                match manager {
                    Some(m) => write!(f, "{}'s hook, not chained", m.name())?,
                    None => write!(f, "foreign hook, not chained")?,
                }
                if let Some(p) = stranded {
                    write!(f, " (it moved ours to {}, where it no longer runs)", p.display())?;
                }
                write!(f, ": run `dockwarm hooks install`")
            }
            HookState::Missing => write!(f, "missing: run `dockwarm hooks install`"),
        }
    }
}

/// One hook's line in `dockwarm hooks status` and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStatus {
    /// The hook's git name, one of [`HOOK_NAMES`].
    pub name: &'static str,
    /// The file git runs for this hook.
    pub path: PathBuf,
    /// Whether that file runs dockwarm, and how; its `Display` is the line users read.
    pub state: HookState,
}

/// What [`status`] found: where git looks for hooks and whether each one runs dockwarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksStatus {
    /// Where git looks for hooks, and why there.
    pub location: HooksLocation,
    /// One entry per hook of [`HOOK_NAMES`], in that order (under husky, without [`REFS_HOOK`]).
    pub hooks: Vec<HookStatus>,
}

impl HooksStatus {
    /// True when every hook runs dockwarm.
    pub fn installed(&self) -> bool {
        self.hooks.iter().all(|h| !h.state.needs_install())
    }
}

/// Reports, per hook, whether git will run dockwarm, for `dockwarm hooks status` and `doctor`.
///
/// `refs_hook` (`[ahead] hook`): whether [`REFS_HOOK`] is wanted, and so reported.
pub fn status(worktree: &Path, refs_hook: bool) -> Result<HooksStatus, HooksError> {
    let location = hooks_dir(worktree)?;
    let mut hooks = Vec::new();
    for name in HOOK_NAMES {
        if name == REFS_HOOK && (!refs_hook || matches!(location.layout, HooksLayout::Husky { .. }))
        {
            continue;
        }
        let (path, state) = match &location.layout {
            HooksLayout::Husky { user_dir } => husky_state(&location.dir, user_dir, name)?,
            HooksLayout::Plain => {
                let path = location.dir.join(name);
                let state = plain_state(&location.dir, name)?;
                (path, state)
            }
        };
        hooks.push(HookStatus { name, path, state });
    }
    Ok(HooksStatus { location, hooks })
}

pub(super) fn plain_state(dir: &Path, hook: &str) -> Result<HookState, HooksError> {
    let path = dir.join(hook);
    let Some(current) = read_hook(&path)? else {
        return Ok(HookState::Missing);
    };
    let chain = |h: &ShimHeader| {
        h.orig
            .as_ref()
            .map(|o| dir.join(o))
            .filter(|p| fs::symlink_metadata(p).is_ok())
    };
    if let Some(header) = parse_shim(&current) {
        return Ok(HookState::Ours {
            chains: chain(&header),
        });
    }
    if let Some((manager, shim, header)) = shim_run_by_manager(dir, hook, &current)? {
        return Ok(HookState::OursVia {
            manager,
            shim,
            chains: chain(&header),
        });
    }
    Ok(HookState::Foreign {
        manager: Manager::sniff(&current),
        stranded: stranded_shim(dir, hook)?,
    })
}

/// Our shim for `hook` under another name, which nothing runs any more (lefthook's `.old`).
pub(super) fn stranded_shim(dir: &Path, hook: &str) -> Result<Option<PathBuf>, HooksError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == OsStr::new(hook) || !name.as_bytes().starts_with(hook.as_bytes()) {
            continue;
        }
        let path = entry.path();
        if read_hook(&path)?
            .and_then(|b| parse_shim(&b))
            .is_some_and(|h| h.hook == hook)
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(found.into_iter().next())
}

pub(super) fn husky_state(
    runner_dir: &Path,
    user_dir: &Path,
    hook: &str,
) -> Result<(PathBuf, HookState), HooksError> {
    let path = user_dir.join(hook);
    let has_block = match read_hook(&path)? {
        Some(bytes) => split_block(&path, &bytes)?.is_some(),
        None => false,
    };
    let state = if has_block {
        HookState::HuskyBlock {
            file: path.clone(),
            runner_present: runner_dir.join(hook).is_file(),
        }
    } else if path.exists() {
        HookState::Foreign {
            manager: Some(Manager::Husky),
            stranded: None,
        }
    } else {
        HookState::Missing
    };
    Ok((path, state))
}
