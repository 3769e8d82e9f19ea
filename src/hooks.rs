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
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The hooks that mean "the checked-out files may have changed".
pub const HOOK_NAMES: [&str; 3] = ["post-checkout", "post-merge", "post-rewrite"];

/// Hooks whose stdin carries data that both the previous hook and dockwarm need.
const STDIN_HOOKS: [&str; 1] = ["post-rewrite"];

const SHIM_TEMPLATE: &str = include_str!("../hooks/shim.sh");
const HUSKY_TEMPLATE: &str = include_str!("../hooks/husky-block.sh");
const RUN_SNIPPET: &str = include_str!("../hooks/run-dockwarm.sh");

/// Any version counts as ours, so a newer dockwarm's shim is never chained into an older one.
const SHIM_MARKER: &[u8] = b"# dockwarm-shim v";
const BLOCK_START: &[u8] = b"# >>> dockwarm-shim v";
const BLOCK_END: &[u8] = b"# <<< dockwarm-shim v";
const ORIG_SUFFIX: &str = ".dockwarm-orig";

#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    #[error(
        "{path}: not inside a git repository ({source}); run `dockwarm hooks` from a checkout"
    )]
    NotARepo { path: PathBuf, source: git2::Error },
    #[error("{path}: cannot read the git configuration ({source}); fix the config file git names and retry")]
    Config { path: PathBuf, source: git2::Error },
    #[error("hooks directory {dir} is read-only; make it writable (chmod u+w) and run `dockwarm hooks {command}` again")]
    ReadOnly {
        dir: PathBuf,
        /// The `dockwarm hooks` subcommand to run again: "install" or "uninstall".
        command: &'static str,
    },
    #[error("{path}: could not {action}: {source}; fix that and run `dockwarm hooks` again")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("{path}: has a dockwarm block start line but no end line (`# <<< dockwarm-shim v1 <<<`); remove the damaged block by hand and run `dockwarm hooks install` again")]
    DamagedBlock { path: PathBuf },
    #[error("{path}: is a symbolic link; dockwarm edits only regular files there, so add the block by hand or replace the link with a file")]
    Symlink { path: PathBuf },
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> HooksError + 'a {
    move |source| HooksError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Where git looks for this checkout's hooks, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksLocation {
    /// The directory git runs hooks from.
    pub dir: PathBuf,
    pub source: HooksSource,
    pub layout: HooksLayout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HooksSource {
    /// `<common git dir>/hooks`: shared by every worktree of the repository.
    CommonDir { common_dir: PathBuf },
    /// `core.hooksPath`, with its value as written and the config file it came from.
    HooksPath { value: OsString, scope: ConfigScope },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigScope {
    /// `config.worktree` (with `extensions.worktreeConfig`): this worktree only.
    Worktree,
    Local,
    Global,
    System,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HooksLayout {
    /// Hooks are files in `dir`, one per hook name.
    Plain,
    /// husky v9: `dir` is husky's generated `.husky/_`; dockwarm writes into `user_dir`.
    Husky { user_dir: PathBuf },
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

fn resolve_hooks_path(base: &Path, value: &OsStr) -> PathBuf {
    let bytes = value.as_bytes();
    if bytes == b"~" || bytes.starts_with(b"~/") {
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

/// Other hook managers recognised by their files, for messages and for pre-commit's chaining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    PreCommit,
    Lefthook,
    Husky,
    GitLfs,
}

impl Manager {
    fn sniff(bytes: &[u8]) -> Option<Manager> {
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        if has(b"File generated by pre-commit") {
            Some(Manager::PreCommit)
        } else if has(b"call_lefthook") || has(b"lefthook run") {
            Some(Manager::Lefthook)
        } else if has(b"husky") {
            Some(Manager::Husky)
        } else if has(b"git lfs ") {
            Some(Manager::GitLfs)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Manager::PreCommit => "pre-commit",
            Manager::Lefthook => "lefthook",
            Manager::Husky => "husky",
            Manager::GitLfs => "git-lfs",
        }
    }
}

/// What a shim file says about itself in its header comments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShimHeader {
    hook: String,
    orig: Option<String>,
}

fn parse_shim(bytes: &[u8]) -> Option<ShimHeader> {
    let mut lines = bytes.split(|b| *b == b'\n');
    if !lines.next()?.starts_with(b"#!") || !lines.next()?.starts_with(SHIM_MARKER) {
        return None;
    }
    let mut hook = None;
    let mut orig = None;
    for line in lines.take_while(|l| l.starts_with(b"#")) {
        let line = String::from_utf8_lossy(line);
        if let Some(v) = line.strip_prefix("# dockwarm-hook: ") {
            hook = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("# dockwarm-orig: ") {
            let v = v.trim();
            // Only a plain sibling name: a damaged header must not make uninstall touch other files.
            if v != "-" && !v.is_empty() && !v.contains('/') && !v.starts_with('.') {
                orig = Some(v.to_string());
            }
        }
    }
    Some(ShimHeader { hook: hook?, orig })
}

fn sh_quote(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'\'');
    for &b in bytes {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Replaces `@KEY@` in one pass, so a value that happens to contain `@KEY@` stays as it is.
fn render(template: &str, vars: &[(&str, &[u8])]) -> Vec<u8> {
    let template = template.replace("@RUN_DOCKWARM@\n", RUN_SNIPPET);
    let bytes = template.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 256);
    let mut i = 0;
    'outer: while i < bytes.len() {
        if bytes[i] == b'@' {
            for (key, value) in vars {
                let k = key.as_bytes();
                let end = i + 1 + k.len();
                if bytes.get(i + 1..end) == Some(k) && bytes.get(end) == Some(&b'@') {
                    out.extend_from_slice(value);
                    i = end + 1;
                    continue 'outer;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn render_shim(hook: &str, orig: Option<&str>, exe: &Path) -> Vec<u8> {
    let stdin: &[u8] = if STDIN_HOOKS.contains(&hook) {
        b"1"
    } else {
        b"0"
    };
    let orig_name = orig.unwrap_or("-");
    render(
        SHIM_TEMPLATE,
        &[
            ("HOOK", hook.as_bytes()),
            ("ORIG", orig_name.as_bytes()),
            ("HOOK_Q", &sh_quote(hook.as_bytes())),
            ("ORIG_Q", &sh_quote(orig.unwrap_or("").as_bytes())),
            ("EXE_Q", &sh_quote(exe.as_os_str().as_bytes())),
            ("STDIN", stdin),
        ],
    )
}

/// How the husky block got into its file, so uninstall can undo exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockMode {
    /// dockwarm created the file: uninstall deletes it when nothing else is left.
    Created,
    /// Appended to a file that ended in a newline (or was empty).
    Appended,
    /// Appended after adding the newline the file lacked: uninstall removes that newline too.
    AppendedNewline,
}

impl BlockMode {
    fn tag(self) -> &'static str {
        match self {
            BlockMode::Created => "created",
            BlockMode::Appended => "appended",
            BlockMode::AppendedNewline => "appended-newline",
        }
    }
    fn from_start_line(line: &[u8]) -> BlockMode {
        let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
        if has(b" appended-newline ") {
            BlockMode::AppendedNewline
        } else if has(b" appended ") {
            BlockMode::Appended
        } else {
            BlockMode::Created
        }
    }
}

fn render_husky_block(hook: &str, mode: BlockMode) -> Vec<u8> {
    render(
        HUSKY_TEMPLATE,
        &[
            ("HOOK", hook.as_bytes()),
            ("HOOK_Q", &sh_quote(hook.as_bytes())),
            ("MODE", mode.tag().as_bytes()),
        ],
    )
}

/// A husky hook file split around our block.
struct BlockSplit {
    /// Everything before the block, without the newline dockwarm added (if it did).
    before: Vec<u8>,
    block: Vec<u8>,
    after: Vec<u8>,
    mode: BlockMode,
}

fn line_starts(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .filter(move |i| *i < bytes.len()),
    )
}

fn split_block(path: &Path, bytes: &[u8]) -> Result<Option<BlockSplit>, HooksError> {
    let Some(start) = line_starts(bytes).find(|&i| bytes[i..].starts_with(BLOCK_START)) else {
        return Ok(None);
    };
    let start_line_end = bytes[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| start + p);
    let mode = BlockMode::from_start_line(&bytes[start..start_line_end]);
    let end_line = line_starts(bytes)
        .filter(|&i| i > start)
        .find(|&i| bytes[i..].starts_with(BLOCK_END))
        .ok_or_else(|| HooksError::DamagedBlock {
            path: path.to_path_buf(),
        })?;
    let end = bytes[end_line..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| end_line + p + 1);
    let mut before = bytes[..start].to_vec();
    if mode == BlockMode::AppendedNewline && before.last() == Some(&b'\n') {
        before.pop();
    }
    Ok(Some(BlockSplit {
        before,
        block: bytes[start..end].to_vec(),
        after: bytes[end..].to_vec(),
        mode,
    }))
}

/// One hook as `status` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookState {
    /// Our shim is the hook; `chains` is the previous hook it runs first, if any.
    Ours { chains: Option<PathBuf> },
    /// Another manager's hook is in place and runs our shim (pre-commit's `<hook>.legacy`).
    OursVia {
        manager: Manager,
        shim: PathBuf,
        chains: Option<PathBuf>,
    },
    /// husky: our block is in the user-facing hook file. `runner_present` is false until husky
    /// has generated `.husky/_/<hook>` in this worktree (e.g. `npm install`), and until then git
    /// runs nothing.
    HuskyBlock { file: PathBuf, runner_present: bool },
    /// A hook that does not run dockwarm. `stranded` is our shim, moved aside by the manager
    /// that replaced it, which no longer runs.
    Foreign {
        manager: Option<Manager>,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStatus {
    pub name: &'static str,
    /// The file git runs for this hook.
    pub path: PathBuf,
    pub state: HookState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksStatus {
    pub location: HooksLocation,
    pub hooks: Vec<HookStatus>,
}

impl HooksStatus {
    /// True when every hook runs dockwarm.
    pub fn installed(&self) -> bool {
        self.hooks.iter().all(|h| !h.state.needs_install())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallAction {
    /// There was no hook; ours is the only one.
    Created,
    /// The previous hook was moved to `orig` and ours runs it first.
    Chained { orig: PathBuf },
    /// Ours was there but written for another dockwarm path or version; rewritten.
    Updated,
    /// Ours was there as it would be written now.
    Unchanged,
    /// Another manager's hook runs our shim (pre-commit's `.legacy`); left in place.
    Via { manager: Manager, shim: PathBuf },
    /// husky: a block was added to (or rewritten in) `file`.
    HuskyBlock { file: PathBuf, created: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub location: HooksLocation,
    pub hooks: Vec<(&'static str, InstallAction)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallAction {
    /// Our shim at `path` was replaced by the hook it had moved aside.
    Restored { from: PathBuf },
    /// Our shim had nothing to put back and was deleted.
    Removed,
    /// Our block was cut out of a husky hook file.
    BlockRemoved,
    /// The husky hook file dockwarm had created was deleted.
    FileRemoved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallReport {
    pub location: HooksLocation,
    /// Every file changed, and how. Empty when nothing of dockwarm's was found.
    pub changed: Vec<(PathBuf, UninstallAction)>,
}

/// Installs the three hooks for the checkout containing `worktree` (for every worktree, unless
/// `core.hooksPath` is per worktree). `dockwarm_exe` is recorded and run first: hooks run with the
/// PATH of whatever started git (a GUI client, an IDE), which may lack dockwarm's or hold an older
/// one; PATH is the fallback when the recorded binary has moved.
pub fn install(worktree: &Path, dockwarm_exe: &Path) -> Result<InstallReport, HooksError> {
    let location = hooks_dir(worktree)?;
    let exe = std::path::absolute(dockwarm_exe).unwrap_or_else(|_| dockwarm_exe.to_path_buf());
    let mut hooks = Vec::new();
    match &location.layout {
        HooksLayout::Plain => {
            ensure_writable_dir(&location.dir)?;
            for name in HOOK_NAMES {
                hooks.push((name, install_plain(&location.dir, name, &exe)?));
            }
        }
        HooksLayout::Husky { user_dir } => {
            ensure_writable_dir(user_dir)?;
            for name in HOOK_NAMES {
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
        for name in HOOK_NAMES {
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

/// Reports, per hook, whether git will run dockwarm, for `dockwarm hooks status` and `doctor`.
pub fn status(worktree: &Path) -> Result<HooksStatus, HooksError> {
    let location = hooks_dir(worktree)?;
    let mut hooks = Vec::new();
    for name in HOOK_NAMES {
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

fn plain_state(dir: &Path, hook: &str) -> Result<HookState, HooksError> {
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
fn stranded_shim(dir: &Path, hook: &str) -> Result<Option<PathBuf>, HooksError> {
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

fn husky_state(
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

#[cfg(test)]
mod tests {
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
