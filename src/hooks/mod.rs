//! The git hooks that tell dockwarm a checkout changed: `dockwarm hooks install|uninstall|status`.
//!
//! dockwarm never owns a hook. Each hook it installs is a small shim (rendered from
//! `hooks/shim.sh`) that first runs whatever hook was there before — moved aside to
//! `<hook>.dockwarm-orig`, with its arguments, stdin, environment and exit status — and then runs
//! `dockwarm hook NAME ARGS...` in a way that can neither fail nor stall git. Uninstalling puts
//! every moved hook back by renaming it, so bytes and mode bits come back exactly.
//!
//! # Where the hooks go, and living beside other hook managers
//!
//! Git looks for hooks in `core.hooksPath` when it is set (a relative value is relative to the
//! worktree's top, `~/` is the home directory), reading `config.worktree` first when
//! `extensions.worktreeConfig` is on; otherwise in the *common* git dir's `hooks/`, which all
//! worktrees of a repository share, so installing from any worktree installs for all of them.
//!
//! * **husky v9** sets `core.hooksPath=.husky/_` and rewrites the scripts in `.husky/_/` on every
//!   `husky` run (each `npm install`), which would silently drop a shim written there. Those
//!   generated scripts only run the user-facing `.husky/<hook>` file (`sh -e .husky/<hook>`), and
//!   husky never touches that file. So for husky dockwarm appends a marked block to
//!   `.husky/<hook>` (creating the file when there is none) and leaves `.husky/_/` alone. The
//!   block is the same in every clone (it records no local path), so committing it is harmless;
//!   uninstall cuts exactly the block (and the newline it had to add, or the file it created),
//!   which restores the file byte for byte. `.husky/` is checked out per worktree, so each
//!   worktree installs its own (`dockwarm init` does, in every workspace's setup).
//! * **any other `core.hooksPath`** is treated as a hooks directory like `.git/hooks`.
//! * **pre-commit** (`pre-commit install` after dockwarm) moves our shim to `<hook>.legacy` and
//!   runs it from its own hook, so dockwarm keeps running; `status` says so. pre-commit gives
//!   `.legacy` hooks an empty stdin, so post-rewrite's list of commits is lost on that path.
//! * **lefthook** (`lefthook install` after dockwarm) moves our shim to `<hook>.old` and never
//!   runs it; `status` reports dockwarm as no longer installed, and `dockwarm hooks install`
//!   chains lefthook's hook in turn.
//! * **git-lfs** hooks are ordinary hooks and get chained.
//!
//! Uninstall looks at every shim of ours in the hooks directory, whatever its name now is, so it
//! also undoes shims that another manager moved aside (pre-commit's `.legacy`, lefthook's `.old`),
//! leaving that manager's own uninstall to put the user's original hook back.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod location;
mod shim;
mod state;

pub use location::{hooks_dir, ConfigScope, HooksLayout, HooksLocation, HooksSource};
pub use shim::Manager;
use shim::*;
pub use state::{status, HookState, HookStatus, HooksStatus};

/// The hooks dockwarm installs: the first three mean "the checked-out files may have changed";
/// `reference-transaction` (git 2.28+) means "a ref moved", of which only remote-tracking refs
/// moved by a fetch concern dockwarm (see [`REFS_HOOK`]).
pub const HOOK_NAMES: [&str; 4] = ["post-checkout", "post-merge", "post-rewrite", REFS_HOOK];

/// The hook that tells dockwarm a fetch moved remote-tracking refs, so it can prebuild the
/// new default branch before any checkout. It runs on every ref update (each commit twice, a
/// `git checkout` eight times), so its shim filters in the shell: only a `committed`
/// transaction with a `refs/remotes/` line starts dockwarm. Even so each run is a shell git
/// starts, which is why it is installed only with `[ahead] hook = true`: by default the
/// daemon's watch on the ref files sees fetches at no cost to git. husky runs only the hooks it
/// knows, and this is not one.
pub const REFS_HOOK: &str = "reference-transaction";

/// Hooks whose stdin carries data that both the previous hook and dockwarm need.
const STDIN_HOOKS: [&str; 1] = ["post-rewrite"];

const SHIM_TEMPLATE: &str = include_str!("../../hooks/shim.sh");
const HUSKY_TEMPLATE: &str = include_str!("../../hooks/husky-block.sh");
const RUN_SNIPPET: &str = include_str!("../../hooks/run-dockwarm.sh");

/// Any version counts as ours, so a newer dockwarm's shim is never chained into an older one.
const SHIM_MARKER: &[u8] = b"# dockwarm-shim v";
const BLOCK_START: &[u8] = b"# >>> dockwarm-shim v";
const BLOCK_END: &[u8] = b"# <<< dockwarm-shim v";
const ORIG_SUFFIX: &str = ".dockwarm-orig";
/// Beside the reference-transaction shim: the refs the daemon watches, one per line, so a fetch
/// that moves other remote refs starts no dockwarm. Written by the daemon, removed by uninstall.
const REFS_LIST_SUFFIX: &str = ".dockwarm-refs";

/// Why hooks could not be located, installed or uninstalled; each names the path to fix.
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    /// No git repository at or above the directory the command ran in.
    #[error(
        "{path}: not inside a git repository ({source}); run `dockwarm hooks` from a checkout"
    )]
    NotARepo {
        /// The directory dockwarm looked from.
        path: PathBuf,
        /// git2's reason.
        source: git2::Error,
    },
    /// The git configuration that says where hooks live (`core.hooksPath`) could not be read.
    #[error("{path}: cannot read the git configuration ({source}); fix the config file git names and retry")]
    Config {
        /// The config file: the repository's `config` or the worktree's `config.worktree`.
        path: PathBuf,
        /// git2's reason.
        source: git2::Error,
    },
    /// The hooks directory cannot be written; checked before any hook is moved.
    #[error("hooks directory {dir} is read-only; make it writable (chmod u+w) and run `dockwarm hooks {command}` again")]
    ReadOnly {
        /// The hooks directory (or husky's `.husky/`).
        dir: PathBuf,
        /// The `dockwarm hooks` subcommand to run again: "install" or "uninstall".
        command: &'static str,
    },
    /// Reading, writing or renaming a hook file failed for another reason than permissions.
    #[error("{path}: could not {action}: {source}; fix that and run `dockwarm hooks` again")]
    Io {
        /// The hook file or hooks directory.
        path: PathBuf,
        /// What dockwarm was doing, worded to follow "could not": "move the existing hook aside".
        action: &'static str,
        /// The system's reason.
        source: io::Error,
    },
    /// A husky hook file has our block's start marker without its end, so cutting or rewriting
    /// the block could eat the user's lines.
    #[error("{path}: has a dockwarm block start line but no end line (`# <<< dockwarm-shim v1 <<<`); remove the damaged block by hand and run `dockwarm hooks install` again")]
    DamagedBlock {
        /// The husky hook file (`.husky/<hook>`).
        path: PathBuf,
    },
    /// A husky hook file is a symlink; writing through it would change a file elsewhere.
    #[error("{path}: is a symbolic link; dockwarm edits only regular files there, so add the block by hand or replace the link with a file")]
    Symlink {
        /// The husky hook file (`.husky/<hook>`).
        path: PathBuf,
    },
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> HooksError + 'a {
    move |source| HooksError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// What `install` did to one hook, for `dockwarm hooks install` to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallAction {
    /// There was no hook; ours is the only one.
    Created,
    /// The previous hook was moved to `orig` and ours runs it first.
    Chained {
        /// Where the previous hook now is: `<hook>.dockwarm-orig` (`.2`, … when taken), which
        /// uninstall renames back.
        orig: PathBuf,
    },
    /// Ours was there but written for another dockwarm path or version; rewritten.
    Updated,
    /// Ours was there as it would be written now.
    Unchanged,
    /// Another manager's hook runs our shim (pre-commit's `.legacy`); left in place.
    Via {
        /// The manager whose hook runs ours.
        manager: Manager,
        /// Where our shim now is (`<hook>.legacy`), rewritten there when it was out of date.
        shim: PathBuf,
    },
    /// husky: a block was added to (or rewritten in) `file`.
    HuskyBlock {
        /// The user-facing husky hook, `.husky/<hook>`.
        file: PathBuf,
        /// Whether dockwarm created the file, so uninstall deletes it rather than cut a block.
        created: bool,
    },
}

/// What `install` did, for `dockwarm hooks install` to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// Where the hooks went and why there (`core.hooksPath`, husky, the common git dir).
    pub location: HooksLocation,
    /// Each hook of [`HOOK_NAMES`] and what was done to it, in that order (under husky, all
    /// but [`REFS_HOOK`], which husky does not run).
    pub hooks: Vec<(&'static str, InstallAction)>,
}

/// What `uninstall` did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallAction {
    /// Our shim at `path` was replaced by the hook it had moved aside.
    Restored {
        /// The moved-aside hook (`<hook>.dockwarm-orig`) renamed back over our shim.
        from: PathBuf,
    },
    /// Our shim had nothing to put back and was deleted.
    Removed,
    /// Our block was cut out of a husky hook file.
    BlockRemoved,
    /// The husky hook file dockwarm had created was deleted.
    FileRemoved,
}

/// What `uninstall` did, for `dockwarm hooks uninstall` to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallReport {
    /// The hooks location git uses now, which uninstall cleaned (and the repository's own
    /// `hooks/` too, when `core.hooksPath` points elsewhere).
    pub location: HooksLocation,
    /// Every file changed, and how. Empty when nothing of dockwarm's was found.
    pub changed: Vec<(PathBuf, UninstallAction)>,
}

/// Installs the hooks of [`HOOK_NAMES`] for the checkout containing `worktree` (for every
/// worktree, unless `core.hooksPath` is per worktree). `dockwarm_exe` is recorded and run first:
/// hooks run with the PATH of whatever started git (a GUI client, an IDE), which may lack
/// dockwarm's or hold an older one; PATH is the fallback when the recorded binary has moved.
///
/// `refs_hook` (`[ahead] hook`) says whether [`REFS_HOOK`] is wanted; when it is not, a shim of
/// ours left there by an earlier install is taken out again (the hook it chained put back).
pub fn install(
    worktree: &Path,
    dockwarm_exe: &Path,
    refs_hook: bool,
) -> Result<InstallReport, HooksError> {
    let location = hooks_dir(worktree)?;
    let exe = std::path::absolute(dockwarm_exe).unwrap_or_else(|_| dockwarm_exe.to_path_buf());
    let mut hooks = Vec::new();
    match &location.layout {
        HooksLayout::Plain => {
            ensure_writable_dir(&location.dir)?;
            for name in HOOK_NAMES {
                if name == REFS_HOOK && !refs_hook {
                    remove_refs_shim(&location.dir)?;
                    continue;
                }
                hooks.push((name, install_plain(&location.dir, name, &exe)?));
            }
        }
        HooksLayout::Husky { user_dir } => {
            ensure_writable_dir(user_dir)?;
            for name in HOOK_NAMES.into_iter().filter(|n| *n != REFS_HOOK) {
                hooks.push((name, install_husky(user_dir, name)?));
            }
        }
    }
    Ok(InstallReport { location, hooks })
}

/// Creates `dir` if needed and refuses early when it is read-only, before any hook is moved.
/// Write bits are checked by hand because root ignores them, yet a directory someone made
/// read-only is still one they did not want changed.
fn ensure_writable_dir(dir: &Path) -> Result<(), HooksError> {
    if let Err(e) = fs::create_dir_all(dir) {
        return Err(classify_write_error(dir, e, "create the hooks directory"));
    }
    let meta = fs::metadata(dir).map_err(io_err(dir, "read the hooks directory"))?;
    if meta.permissions().mode() & 0o222 == 0 {
        return Err(HooksError::ReadOnly {
            dir: dir.to_path_buf(),
            command: "install",
        });
    }
    Ok(())
}

fn classify_write_error(dir: &Path, e: io::Error, action: &'static str) -> HooksError {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            HooksError::ReadOnly {
                dir: dir.to_path_buf(),
                command: "install",
            }
        }
        _ => HooksError::Io {
            path: dir.to_path_buf(),
            action,
            source: e,
        },
    }
}

/// Reads a hook file; `None` when there is none. A dangling symlink reads as empty: it is still
/// a foreign hook to be kept.
fn read_hook(path: &Path) -> Result<Option<Vec<u8>>, HooksError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "read the hook")(e)),
        Ok(meta) if meta.is_dir() => Ok(Some(Vec::new())),
        Ok(_) => match fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(Vec::new())),
            Err(e) => Err(io_err(path, "read the hook")(e)),
        },
    }
}

/// Writes through a temporary file and a rename, so git never runs a half-written hook.
fn write_atomic(dir: &Path, name: &OsStr, bytes: &[u8], mode: u32) -> Result<(), HooksError> {
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".dockwarm-tmp-{}", std::process::id()));
    let tmp = dir.join(&tmp_name);
    let target = dir.join(name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        classify_write_error(dir, e, "write a hook")
    })
}

fn free_orig_name(dir: &Path, hook: &str) -> String {
    let base = format!("{hook}{ORIG_SUFFIX}");
    let taken = |n: &str| fs::symlink_metadata(dir.join(n)).is_ok();
    if !taken(&base) {
        return base;
    }
    (2u32..)
        .map(|i| format!("{base}.{i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

fn install_plain(dir: &Path, hook: &'static str, exe: &Path) -> Result<InstallAction, HooksError> {
    let path = dir.join(hook);
    let Some(current) = read_hook(&path)? else {
        write_atomic(dir, OsStr::new(hook), &render_shim(hook, None, exe), 0o755)?;
        return Ok(InstallAction::Created);
    };
    if let Some(header) = parse_shim(&current) {
        let wanted = render_shim(hook, header.orig.as_deref(), exe);
        if wanted == current {
            return Ok(InstallAction::Unchanged);
        }
        write_atomic(
            dir,
            OsStr::new(hook),
            &wanted,
            mode_of(&path).unwrap_or(0o755),
        )?;
        return Ok(InstallAction::Updated);
    }
    if let Some((manager, shim, header)) = shim_run_by_manager(dir, hook, &current)? {
        let bytes = read_hook(&shim)?.unwrap_or_default();
        let wanted = render_shim(hook, header.orig.as_deref(), exe);
        if wanted != bytes {
            let name = shim.file_name().unwrap_or_default().to_os_string();
            write_atomic(dir, &name, &wanted, mode_of(&shim).unwrap_or(0o755))?;
        }
        return Ok(InstallAction::Via { manager, shim });
    }

    // A foreign hook: move it aside (rename keeps bytes and mode) and chain it.
    let orig = free_orig_name(dir, hook);
    let orig_path = dir.join(&orig);
    let tmp_name = OsString::from(format!(".{hook}.dockwarm-new-{}", std::process::id()));
    write_atomic(dir, &tmp_name, &render_shim(hook, Some(&orig), exe), 0o755)?;
    let tmp = dir.join(&tmp_name);
    if let Err(e) = fs::rename(&path, &orig_path) {
        let _ = fs::remove_file(&tmp);
        return Err(classify_write_error(dir, e, "move the existing hook aside"));
    }
    if let Err(e) = fs::rename(&tmp, &path) {
        // Put the user's hook back before reporting: never leave a hook missing.
        let _ = fs::rename(&orig_path, &path);
        let _ = fs::remove_file(&tmp);
        return Err(classify_write_error(dir, e, "install the hook"));
    }
    Ok(InstallAction::Chained { orig: orig_path })
}

fn mode_of(path: &Path) -> Option<u32> {
    fs::symlink_metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// pre-commit runs `<hook>.legacy` from its own hook; when that is our shim, dockwarm still runs.
fn shim_run_by_manager(
    dir: &Path,
    hook: &str,
    current: &[u8],
) -> Result<Option<(Manager, PathBuf, ShimHeader)>, HooksError> {
    if Manager::sniff(current) != Some(Manager::PreCommit) {
        return Ok(None);
    }
    let legacy = dir.join(format!("{hook}.legacy"));
    Ok(read_hook(&legacy)?
        .and_then(|b| parse_shim(&b))
        .map(|h| (Manager::PreCommit, legacy, h)))
}

fn install_husky(user_dir: &Path, hook: &'static str) -> Result<InstallAction, HooksError> {
    let path = user_dir.join(hook);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(HooksError::Symlink { path });
    }
    let current = read_hook(&path)?;
    let (bytes, mode, created) = match &current {
        None => (render_husky_block(hook, BlockMode::Created), 0o644, true),
        Some(cur) => {
            let mode = mode_of(&path).unwrap_or(0o644);
            match split_block(&path, cur)? {
                Some(split) => {
                    let wanted = render_husky_block(hook, split.mode);
                    if wanted == split.block {
                        return Ok(InstallAction::Unchanged);
                    }
                    let mut out = split.before;
                    if split.mode == BlockMode::AppendedNewline {
                        out.push(b'\n');
                    }
                    out.extend_from_slice(&wanted);
                    out.extend_from_slice(&split.after);
                    (out, mode, false)
                }
                None => {
                    let mut out = cur.clone();
                    let block_mode = if out.is_empty() || out.ends_with(b"\n") {
                        BlockMode::Appended
                    } else {
                        out.push(b'\n');
                        BlockMode::AppendedNewline
                    };
                    out.extend_from_slice(&render_husky_block(hook, block_mode));
                    (out, mode, false)
                }
            }
        }
    };
    write_atomic(user_dir, OsStr::new(hook), &bytes, mode)?;
    Ok(InstallAction::HuskyBlock {
        file: path,
        created,
    })
}

/// Removes dockwarm's hooks from the checkout containing `worktree`: every shim of ours in the
/// hooks directory (whatever another manager renamed it to) gives way to the hook it had moved
/// aside, and husky files lose our block. Shims left in the repository's own `hooks/` from
/// before a `core.hooksPath` was set are removed too.
pub fn uninstall(worktree: &Path) -> Result<UninstallReport, HooksError> {
    uninstall_inner(worktree).map_err(|e| match e {
        HooksError::ReadOnly { dir, .. } => HooksError::ReadOnly {
            dir,
            command: "uninstall",
        },
        other => other,
    })
}

fn uninstall_inner(worktree: &Path) -> Result<UninstallReport, HooksError> {
    let location = hooks_dir(worktree)?;
    let mut changed = Vec::new();
    if let HooksLayout::Husky { user_dir } = &location.layout {
        for name in HOOK_NAMES.into_iter().filter(|n| *n != REFS_HOOK) {
            if let Some(action) = uninstall_husky(user_dir, name)? {
                changed.push((user_dir.join(name), action));
            }
        }
    }
    uninstall_plain(&location.dir, &mut changed)?;
    if let HooksSource::HooksPath { .. } = location.source {
        let repo = git2::Repository::discover(worktree).map_err(|source| HooksError::NotARepo {
            path: worktree.to_path_buf(),
            source,
        })?;
        let common = repo.commondir().join("hooks");
        if common != location.dir {
            uninstall_plain(&common, &mut changed)?;
        }
    }
    Ok(UninstallReport { location, changed })
}

/// Writes the list of refs the daemon watches beside the reference-transaction shim of the
/// checkout at `worktree` (see `hooks/README.md`), when that shim is ours and the list changed.
/// Returns whether it wrote.
pub fn write_watched_refs(worktree: &Path, refs: &[String]) -> Result<bool, HooksError> {
    let location = hooks_dir(worktree)?;
    if !matches!(location.layout, HooksLayout::Plain) {
        return Ok(false);
    }
    let dir = &location.dir;
    let ours = [REFS_HOOK.to_string(), format!("{REFS_HOOK}.legacy")]
        .iter()
        .any(|name| {
            read_hook(&dir.join(name))
                .ok()
                .flatten()
                .and_then(|b| parse_shim(&b))
                .is_some_and(|h| h.hook == REFS_HOOK)
        });
    if !ours {
        return Ok(false);
    }
    let path = dir.join(format!("{REFS_HOOK}{REFS_LIST_SUFFIX}"));
    let mut text = String::new();
    for r in refs {
        text.push_str(r);
        text.push('\n');
    }
    if fs::read(&path).is_ok_and(|b| b == text.as_bytes()) {
        return Ok(false);
    }
    let tmp = dir.join(format!(".{REFS_HOOK}{REFS_LIST_SUFFIX}.tmp"));
    fs::write(&tmp, text.as_bytes())
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(io_err(&path, "write the list of watched refs"))?;
    Ok(true)
}

fn uninstall_plain(
    dir: &Path,
    changed: &mut Vec<(PathBuf, UninstallAction)>,
) -> Result<(), HooksError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir, "list the hooks directory")(e)),
    };
    let mut shims = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "list the hooks directory"))?;
        let path = entry.path();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || entry.file_name().as_bytes().starts_with(b".") {
            continue;
        }
        if entry
            .file_name()
            .as_bytes()
            .ends_with(REFS_LIST_SUFFIX.as_bytes())
        {
            ensure_writable_dir(dir)?;
            fs::remove_file(&path)
                .map_err(|e| classify_write_error(dir, e, "remove dockwarm's list of refs"))?;
            changed.push((path, UninstallAction::Removed));
            continue;
        }
        if let Some(header) = read_hook(&path)?.and_then(|b| parse_shim(&b)) {
            shims.push((path, header));
        }
    }
    shims.sort_by(|a, b| a.0.cmp(&b.0));
    if !shims.is_empty() {
        ensure_writable_dir(dir)?;
    }
    for (path, header) in shims {
        let orig = header.orig.map(|o| dir.join(o));
        match orig {
            Some(orig) if fs::symlink_metadata(&orig).is_ok() => {
                fs::rename(&orig, &path)
                    .map_err(|e| classify_write_error(dir, e, "put the previous hook back"))?;
                changed.push((path, UninstallAction::Restored { from: orig }));
            }
            _ => {
                fs::remove_file(&path)
                    .map_err(|e| classify_write_error(dir, e, "remove dockwarm's hook"))?;
                changed.push((path, UninstallAction::Removed));
            }
        }
    }
    Ok(())
}

/// Takes out our [`REFS_HOOK`] shim (putting back the hook it chained) and its list of refs,
/// when an earlier install put them there and `[ahead] hook` is now off.
fn remove_refs_shim(dir: &Path) -> Result<(), HooksError> {
    let list = dir.join(format!("{REFS_HOOK}{REFS_LIST_SUFFIX}"));
    if list.is_file() {
        fs::remove_file(&list)
            .map_err(|e| classify_write_error(dir, e, "remove dockwarm's list of refs"))?;
    }
    let path = dir.join(REFS_HOOK);
    let Some(header) = read_hook(&path)?.and_then(|b| parse_shim(&b)) else {
        return Ok(());
    };
    match header.orig.map(|o| dir.join(o)) {
        Some(orig) if fs::symlink_metadata(&orig).is_ok() => fs::rename(&orig, &path)
            .map_err(|e| classify_write_error(dir, e, "put the previous hook back")),
        _ => fs::remove_file(&path)
            .map_err(|e| classify_write_error(dir, e, "remove dockwarm's hook")),
    }
}

fn uninstall_husky(user_dir: &Path, hook: &str) -> Result<Option<UninstallAction>, HooksError> {
    let path = user_dir.join(hook);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Ok(None);
    }
    let Some(current) = read_hook(&path)? else {
        return Ok(None);
    };
    let Some(split) = split_block(&path, &current)? else {
        return Ok(None);
    };
    let mut out = split.before;
    out.extend_from_slice(&split.after);
    if split.mode == BlockMode::Created && out.is_empty() {
        fs::remove_file(&path)
            .map_err(|e| classify_write_error(user_dir, e, "remove dockwarm's hook file"))?;
        return Ok(Some(UninstallAction::FileRemoved));
    }
    let mode = mode_of(&path).unwrap_or(0o644);
    write_atomic(user_dir, OsStr::new(hook), &out, mode)?;
    Ok(Some(UninstallAction::BlockRemoved))
}

#[cfg(test)]
mod tests {
    use super::location::resolve_hooks_path;
    use super::*;

    #[test]
    fn shim_header_round_trips() {
        let shim = render_shim(
            "post-rewrite",
            Some("post-rewrite.dockwarm-orig"),
            Path::new("/x/it's here/dockwarm"),
        );
        assert_eq!(
            parse_shim(&shim),
            Some(ShimHeader {
                hook: "post-rewrite".into(),
                orig: Some("post-rewrite.dockwarm-orig".into())
            })
        );
        let text = String::from_utf8(shim).unwrap();
        assert!(text.contains("dockwarm_exe='/x/it'\\''s here/dockwarm'"));
        assert!(text.contains("dockwarm_stdin=1"));
        for key in ["@HOOK", "@ORIG", "@EXE", "@STDIN", "@RUN"] {
            assert!(!text.contains(key), "unrendered {key} in:\n{text}");
        }
    }

    #[test]
    fn shim_without_orig_has_no_chain() {
        let shim = render_shim("post-merge", None, Path::new("/bin/dockwarm"));
        assert_eq!(parse_shim(&shim).and_then(|h| h.orig), None);
    }

    #[test]
    fn foreign_hooks_are_not_ours() {
        assert_eq!(parse_shim(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(parse_shim(b""), None);
    }

    #[test]
    fn husky_block_splits_back_to_the_original() {
        let path = Path::new("post-checkout");
        for original in [&b""[..], b"npm test\n", b"npm test"] {
            let mode = if original.is_empty() || original.ends_with(b"\n") {
                BlockMode::Appended
            } else {
                BlockMode::AppendedNewline
            };
            let mut file = original.to_vec();
            if mode == BlockMode::AppendedNewline {
                file.push(b'\n');
            }
            file.extend_from_slice(&render_husky_block("post-checkout", mode));
            let split = split_block(path, &file).unwrap().unwrap();
            assert_eq!(split.mode, mode);
            let mut back = split.before;
            back.extend_from_slice(&split.after);
            assert_eq!(back, original);
        }
    }

    #[test]
    fn damaged_block_is_an_error() {
        let text = b"# >>> dockwarm-shim v1 appended >>>\necho\n";
        assert!(matches!(
            split_block(Path::new("f"), text),
            Err(HooksError::DamagedBlock { .. })
        ));
    }

    #[test]
    fn hooks_path_resolution() {
        assert_eq!(
            resolve_hooks_path(Path::new("/w"), OsStr::new(".husky/_")),
            PathBuf::from("/w/.husky/_")
        );
        assert_eq!(
            resolve_hooks_path(Path::new("/w"), OsStr::new("/abs")),
            PathBuf::from("/abs")
        );
    }
}
