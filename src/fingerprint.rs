//! The fingerprint of an image's dependency stage: what must be equal for one prebuild to serve
//! every workspace.
//!
//! sha256 over the dependency stage's definition (its instructions, target, build args and the
//! local image ID of each base image) and each input file's path relative to the repository and
//! its bytes. Paths are repository-relative, so the same inputs in two worktrees give the same
//! fingerprint; base images count by ID, so a re-pulled `python:3.12-slim` gives a new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Config, ImageSpec};
use crate::context::{self, ContextError};
use crate::dockerfile::{self, DepsError, DepsPlan, ParseError};
use crate::env::Env;
use crate::ignore::{Dialect, IgnoreError, IgnoreRules};

/// Bump when the hashed layout changes, so old tags are never mistaken for new ones.
const VERSION: &str = "dockwarm-fingerprint-v1";

/// Why an image's dependency plan could not be made; each names the file and what to change,
/// and its [`crate::error::Classify`] answer tells an edit from a retry.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// The configured Dockerfile does not exist; the configuration that named it must change.
    #[error("Dockerfile {path} not found (image `{image}`, from {from}); fix the path in {from}")]
    MissingDockerfile {
        /// The Dockerfile path that was looked for.
        path: String,
        /// The image (compose service) it belongs to.
        image: String,
        /// Where the path was configured (`dockwarm.toml`, a compose file), so the user edits that.
        from: String,
    },
    /// A Dockerfile or input could not be read (permissions, I/O); worth a retry, not an edit.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// What the OS said, and that dockwarm needs it.
        reason: String,
    },
    /// An input is a directory, FIFO, device or socket: its bytes cannot be hashed, and a FIFO
    /// would hang the hook.
    #[error("{path} is {kind}, not a regular file; dockwarm hashes the bytes of the dependency inputs, so make it a file (a symlink to one is fine) or leave it out of the COPY and `inputs`")]
    NotAFile {
        /// The input's path.
        path: String,
        /// What it is instead, e.g. "a FIFO".
        kind: &'static str,
    },
    /// An input is larger than a lockfile can be; hashing it would cost every checkout dearly.
    #[error("{path} is over {limit} bytes; a dependency input that large is not a lockfile: leave it out of the COPY and `inputs` (or raise DOCKWARM_MAX_INPUT_BYTES)")]
    TooLarge {
        /// The input's path.
        path: String,
        /// The cap in bytes (`DOCKWARM_MAX_INPUT_BYTES`, 1 GiB unless set).
        limit: u64,
    },
    /// Hashing the inputs ran past the time limit (a hung mount?); the daemon tries again on the
    /// next change.
    #[error("hashing {path} took over {secs} s (a slow or hung filesystem?); dockwarm gave up on it and will try again on the next change")]
    TooSlow {
        /// The input being read when time ran out.
        path: String,
        /// The limit in seconds (`DOCKWARM_HASH_TIMEOUT_SECS`, 30 unless set).
        secs: u64,
    },
    /// The Dockerfile is one BuildKit would reject; shown as `path:line:1: what`.
    #[error("{path}:{}:1: {source}", source.line)]
    Parse {
        /// The Dockerfile.
        path: String,
        /// The line and what is wrong there.
        #[source]
        source: ParseError,
    },
    /// No dependency stage could be found in the Dockerfile (e.g. the source is copied before
    /// the install); the message says which lines and how to reorder them.
    #[error("{path}: {source}")]
    Deps {
        /// The Dockerfile.
        path: String,
        /// What the stage search found wrong.
        #[source]
        source: DepsError,
    },
    /// A `.dockerignore` could not be read or has a pattern the engine would reject.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// The files a COPY or `inputs` names could not be listed from the build context.
    #[error("image `{image}`: {source}")]
    Inputs {
        /// The image whose inputs these are.
        image: String,
        /// Which source, and why.
        #[source]
        source: ContextError,
    },
}

impl crate::error::Classify for FingerprintError {
    /// A Dockerfile, `.dockerignore` or input to fix; not a read that failed or timed out,
    /// which a retry may get past.
    fn is_usage(&self) -> bool {
        !matches!(
            self,
            FingerprintError::Unreadable { .. } | FingerprintError::TooSlow { .. }
        )
    }
}

/// Everything about an image's dependency stage that can be known without the engine.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The configured image this plan is for: name, context, Dockerfile, target, build args.
    pub image: ImageSpec,
    /// Absolute paths.
    pub context_dir: PathBuf,
    /// The Dockerfile, absolute: one of the paths whose change invalidates this plan.
    pub dockerfile_path: PathBuf,
    /// The dependency stage found in the Dockerfile: its definition, base images and sources.
    pub deps: DepsPlan,
    /// The build args as the build will see them, hashed because they can change what is installed.
    pub args: BTreeMap<String, String>,
    /// The input files the dependency stage copies, with their hashes, in a stable order.
    pub inputs: Vec<InputFile>,
    /// Directories (absolute) whose entries decided `inputs`: a `COPY dir/` or a wildcard's.
    #[serde(default)]
    pub dirs_read: Vec<PathBuf>,
}

impl Plan {
    /// Every path whose change can change this plan: the Dockerfile, both ignore files, the
    /// inputs and the directories listed to find them.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![
            self.dockerfile_path.clone(),
            self.context_dir.join(".dockerignore"),
            crate::ignore::dockerfile_ignore_path(&self.dockerfile_path),
        ];
        paths.extend(
            self.inputs
                .iter()
                .map(|f| self.context_dir.join(&f.context_path)),
        );
        paths.extend(self.dirs_read.iter().cloned());
        paths
    }
}

/// One file the dependency stage copies in, named the same in every worktree, with its hash.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    /// Relative to the workspace root, with `/`.
    pub path: String,
    /// Relative to the build context, with `/`.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub context_path: String,
    /// Bytes hashed, as `dockwarm fingerprint` lists each input.
    pub size: u64,
    /// Hex sha256 of the file's bytes: what makes two worktrees' inputs equal or not.
    pub sha256: String,
}

/// A base image of the dependency stage (FROM), counted by its local ID so a re-pull
/// changes the fingerprint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseImage {
    /// The reference as the Dockerfile names it after build args, e.g. `python:3.12-slim`.
    pub reference: String,
    /// The local image ID, or None when the engine does not have the image (yet).
    pub id: Option<String>,
}

/// An image's dependency fingerprint: the plan plus its base images' IDs, hashed; the tag and
/// label that let every workspace share one prebuild.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// The plan that was hashed.
    pub plan: Plan,
    /// The base images and the IDs that were hashed with it.
    pub bases: Vec<BaseImage>,
    /// 64 hex digits.
    pub hex: String,
}

impl Fingerprint {
    /// The first 12 hex digits: the tag of the dependency image, as short as a docker image ID.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// `dockwarm/<project>-<image>-deps:<first 12 hex>`.
    pub fn tag(&self, project: &str) -> String {
        format!(
            "{}:{}",
            repository(project, &self.plan.image.name),
            self.short()
        )
    }
}

/// The repository part of an image's dependency tags.
pub fn repository(project: &str, image: &str) -> String {
    let image = crate::compose::normalize_project_name(image);
    format!("dockwarm/{project}-{image}-deps")
}

/// Parses the Dockerfile, finds the dependency stage and hashes its input files.
/// `dialect`: the engine's `.dockerignore` rules, which decide the files a COPY brings in;
/// `env`: the hashing limits' knobs.
pub fn plan(
    config: &Config,
    image: &ImageSpec,
    dialect: Dialect,
    env: &Env,
) -> Result<Plan, FingerprintError> {
    let context_dir = config.root.join(&image.context.value);
    let dockerfile_path = config.root.join(&image.dockerfile.value);
    let text = image.read_dockerfile(&config.root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            FingerprintError::MissingDockerfile {
                path: dockerfile_path.display().to_string(),
                image: image.name.clone(),
                from: image.dockerfile.from.to_string(),
            }
        } else {
            FingerprintError::Unreadable {
                path: dockerfile_path.display().to_string(),
                reason: e.to_string(),
            }
        }
    })?;
    let shown = dockerfile_path.display().to_string();
    let df = dockerfile::parse(&text).map_err(|source| FingerprintError::Parse {
        path: shown.clone(),
        source,
    })?;
    let args = image.arg_values();
    // Which named paths turned out to be directories: a lockfile replaced by a directory
    // makes its COPY a source copy, and the error must say why.
    let dirs_seen = std::cell::RefCell::new(Vec::new());
    let is_dir = |rel: &str| {
        let dir = context_dir.join(rel).is_dir();
        if dir {
            dirs_seen.borrow_mut().push(rel.to_string());
        }
        dir
    };
    let deps = dockerfile::dependency_stage(
        &df,
        image.target.value.as_deref(),
        image.deps_target.value.as_deref(),
        &args,
        &is_dir,
    )
    .map_err(|source| FingerprintError::Deps {
        path: shown.clone(),
        source: explain_dirs(source, &dirs_seen.borrow()),
    })?;
    let rules = IgnoreRules::load(&context_dir, &dockerfile_path)?.with_dialect(dialect);
    let mut sources = deps.context_sources.clone();
    sources.extend(image.inputs.value.iter().cloned());
    let found = context::resolve_sources(&context_dir, &rules, &sources).map_err(|source| {
        FingerprintError::Inputs {
            image: image.name.clone(),
            source,
        }
    })?;
    let prefix = image.context.value.clone();
    let mut inputs = hash_files(&context_dir, &prefix, &found.files, env)?;
    let mut dirs_read: Vec<PathBuf> = found
        .dirs_read
        .iter()
        .map(|d| {
            if d.is_empty() {
                context_dir.clone()
            } else {
                context_dir.join(d)
            }
        })
        .collect();
    // What the dependency stage reads from compose's additional_contexts is input too.
    let mut deps = deps;
    for (name, dir) in image.named_context_dirs(&config.root) {
        let Some(sources) = deps.named_sources.get(&name) else {
            continue;
        };
        let rules = IgnoreRules::load(&dir, &dir.join("Dockerfile"))?.with_dialect(dialect);
        let found = context::resolve_sources(&dir, &rules, sources).map_err(|source| {
            FingerprintError::Inputs {
                image: image.name.clone(),
                source,
            }
        })?;
        let mut named = hash_files(
            &dir,
            &image.additional_contexts[&name].value,
            &found.files,
            env,
        )?;
        // `context_path` stays relative to the build context (what the stored plan stats).
        for f in &mut named {
            let absolute = dir.join(&f.context_path);
            f.context_path = relative_path(&context_dir, &absolute);
        }
        inputs.extend(named);
        dirs_read.extend(found.dirs_read.iter().map(|d| {
            if d.is_empty() {
                dir.clone()
            } else {
                dir.join(d)
            }
        }));
        deps.base_images.retain(|b| b != &name);
    }
    Ok(Plan {
        image: image.clone(),
        context_dir,
        dockerfile_path,
        deps,
        args,
        inputs,
        dirs_read,
    })
}

/// A Dockerfile said to copy its source before installing, because a path it names is a
/// directory: say which, since that path is often a lockfile that became a directory.
fn explain_dirs(e: DepsError, dirs: &[String]) -> DepsError {
    match e {
        DepsError::NoDependencyStage {
            line,
            source_copy_line: Some(source_line),
            input_copy_line,
            mut message,
        } if !dirs.is_empty() => {
            let names: Vec<String> = dirs.iter().map(|d| format!("`{d}`")).collect();
            message.push_str(&format!(
                " ({} {} a directory here, so its COPY counts as copying the source; if it should be a file, such as a lockfile, put the file back)",
                names.join(", "),
                if names.len() == 1 { "is" } else { "are" }
            ));
            DepsError::NoDependencyStage {
                line,
                source_copy_line: Some(source_line),
                input_copy_line,
                message,
            }
        }
        other => other,
    }
}

/// `to` relative to the directory `from`, with `..` where needed and `/` separators.
fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Below this many bytes in all, hashing stays on the calling thread: starting threads costs
/// more than it saves, and hooks hash a few small lockfiles on every checkout.
const PARALLEL_FROM_BYTES: u64 = 4 << 20;

/// Hashes the files, on every core when there is enough to hash (lockfiles can be tens of
/// megabytes; sha256 runs at about 2 GB/s per core with the SHA extensions). `env`: the
/// limits' knobs (see `Limits`).
pub fn hash_files(
    context_dir: &Path,
    prefix: &Path,
    files: &[String],
    env: &Env,
) -> Result<Vec<InputFile>, FingerprintError> {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(context_dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let workers = if total < PARALLEL_FROM_BYTES {
        1
    } else {
        cores.min(files.len()).max(1)
    };
    let limits = Limits::from_env(env);
    if workers == 1 {
        let mut buf = Vec::new();
        return files
            .iter()
            .map(|f| hash_file(context_dir, prefix, f, &mut buf, &limits))
            .collect();
    }
    let chunk = files.len().div_ceil(workers);
    let results: Vec<Result<Vec<InputFile>, FingerprintError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let limits = &limits;
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    part.iter()
                        .map(|f| hash_file(context_dir, prefix, f, &mut buf, limits))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(FingerprintError::Unreadable {
                        path: context_dir.display().to_string(),
                        reason: "hashing thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(files.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// How much one hashing pass may read, and for how long: an input that never ends (a symlink
/// to `/dev/zero` slips past the file-type check only if swapped in mid-read; a file that keeps
/// growing does not) must not hold a hook or the daemon.
struct Limits {
    max_bytes: u64,
    deadline: std::time::Instant,
    secs: u64,
}

/// Largest input hashed: lockfiles run to tens of megabytes, never to gigabytes.
const MAX_INPUT_BYTES: u64 = 1 << 30;
/// Longest a hashing pass may take (all of an image's inputs).
const HASH_TIME_LIMIT_SECS: u64 = 30;

impl Limits {
    /// `DOCKWARM_MAX_INPUT_BYTES` and `DOCKWARM_HASH_TIMEOUT_SECS` in `env` override the
    /// defaults (tests/faults.rs turns them).
    fn from_env(env: &Env) -> Limits {
        let num = |name: &str| env.number::<u64>(name).filter(|n| *n > 0);
        let secs = num("DOCKWARM_HASH_TIMEOUT_SECS").unwrap_or(HASH_TIME_LIMIT_SECS);
        Limits {
            max_bytes: num("DOCKWARM_MAX_INPUT_BYTES").unwrap_or(MAX_INPUT_BYTES),
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(secs),
            secs,
        }
    }
}

/// What a path is, for an input that is not a regular file.
fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Hashes one input: only a regular file (a symlink is followed to one), at most
/// `limits.max_bytes`, before `limits.deadline`. Opened non-blocking, so a FIFO swapped in
/// after the type check cannot block the open, and the type is checked on the opened file.
/// `buf` is reused across files; it grows to at most 1 MiB, and only as far as a file needs.
fn hash_file(
    context_dir: &Path,
    prefix: &Path,
    rel: &str,
    buf: &mut Vec<u8>,
    limits: &Limits,
) -> Result<InputFile, FingerprintError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const CHUNK: u64 = 1 << 20;
    let path = context_dir.join(rel);
    let shown = || path.display().to_string();
    let unreadable = |e: std::io::Error| FingerprintError::Unreadable {
        path: shown(),
        reason: format!("{e}; dockwarm hashes this dependency input"),
    };
    let not_a_file = |t: std::fs::FileType| FingerprintError::NotAFile {
        path: shown(),
        kind: kind_of(t),
    };
    let before = std::fs::metadata(&path).map_err(unreadable)?;
    if !before.is_file() {
        return Err(not_a_file(before.file_type()));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(not_a_file(meta.file_type()));
    }
    if meta.len() > limits.max_bytes {
        return Err(FingerprintError::TooLarge {
            path: shown(),
            limit: limits.max_bytes,
        });
    }
    let want = meta.len().clamp(1, CHUNK) as usize;
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = file.read(buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > limits.max_bytes {
            return Err(FingerprintError::TooLarge {
                path: shown(),
                limit: limits.max_bytes,
            });
        }
        if std::time::Instant::now() > limits.deadline {
            return Err(FingerprintError::TooSlow {
                path: shown(),
                secs: limits.secs,
            });
        }
        hasher.update(&buf[..n]);
    }
    let repo_path = prefix.join(rel);
    Ok(InputFile {
        path: repo_path.to_string_lossy().replace('\\', "/"),
        context_path: rel.to_string(),
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Combines a plan with the base images' local IDs.
pub fn fingerprint(plan: Plan, bases: Vec<BaseImage>) -> Fingerprint {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &str| {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((value.len() as u64).to_le_bytes());
        h.update(value.as_bytes());
    };
    field("version", VERSION);
    field("definition", &plan.deps.definition);
    field("target", plan.deps.build_target.as_deref().unwrap_or(""));
    if let Some(network) = &plan.image.network.value {
        field("network", network);
    }
    for (k, v) in &plan.args {
        field("arg", k);
        field("value", v);
    }
    for b in &bases {
        field("base", &b.reference);
        field("id", b.id.as_deref().unwrap_or("(not local)"));
    }
    for f in &plan.inputs {
        field("file", &f.path);
        field("sha256", &f.sha256);
    }
    let hex = hex::encode(h.finalize());
    Fingerprint { plan, bases, hex }
}

/// The digest hooks compare to notice a change without asking the engine: the fingerprint with
/// base images counted by reference only. Equal inputs give equal digests; the prebuild then
/// computes the real fingerprint, base image IDs included.
pub fn inputs_digest(plan: &Plan) -> String {
    let bases = plan
        .deps
        .base_images
        .iter()
        .map(|reference| BaseImage {
            reference: reference.clone(),
            id: None,
        })
        .collect();
    fingerprint(plan.clone(), bases).hex
}
