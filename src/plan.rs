//! A workspace's build plan: its resolved configuration and, per image, the dependency stage,
//! its input files and their digest — computed once, then passed down to whatever needs it:
//! the hook's change check, the daemon's evaluation, the prebuild and the workspace build,
//! `status`.
//!
//! Computing a plan parses compose and the Dockerfiles, resolves the COPY sources and hashes
//! the inputs. Each plan is stored in the state directory with a [`Stamp`] of everything it
//! read — (size, mtime, ctime, inode) of every file and directory, and the environment
//! variables the configuration consulted. While the stamp holds, the stored plan *is* the
//! plan: a git hook on a checkout that touched no input answers from a few `stat`s, and the
//! daemon and its build children reuse what the hook computed instead of computing it again.
//!
//! The stamp is taken *before* the files are read (from the previous plan's list of paths),
//! so a file written while a plan is computed never leaves a stamp that matches content the
//! plan did not see; paths new to a plan are stamped after, and marked unreliable when they
//! changed after the computation began.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{self, Config, ConfigError};
use crate::env::Env;
use crate::fingerprint::{self, FingerprintError, Plan};
use crate::ignore::Dialect;
use crate::state::{self, State};
use crate::workspace::Workspace;

/// Bump when the stored layout or the meaning of a plan changes: older stored plans are then
/// recomputed instead of trusted.
const STORED_VERSION: &str = concat!("dockwarm-plan-v1 ", env!("CARGO_PKG_VERSION"));

static COMPUTED: AtomicUsize = AtomicUsize::new(0);

/// How many plans this process computed (rather than reused): what "computed once per build"
/// is checked against.
pub fn computed_count() -> usize {
    COMPUTED.load(Ordering::Relaxed)
}

/// Why there is no plan: the workspace or its configuration does not resolve.
pub type PlanError = ConfigError;

/// One workspace's plan.
#[derive(Debug)]
pub struct WorkspacePlan {
    /// The workspace's resolved configuration: read once here, so nothing downstream resolves
    /// it again.
    pub config: Config,
    /// The `.dockerignore` rules the inputs were resolved with (the engine's generation of
    /// them, as last seen; see [`remembered_dialect`]).
    pub dialect: Dialect,
    /// One plan per configured image, in the configuration's order.
    pub images: Vec<ImagePlan>,
    /// Taken from the state directory rather than computed by this process.
    pub reused: bool,
    stamp: Stamp,
    /// The environment it was made in: the stamp's variables are checked against it.
    env: Env,
}

/// One image's part of a plan.
#[derive(Debug)]
pub struct ImagePlan {
    /// The configured image's name (see [`WorkspacePlan::image`]).
    pub name: String,
    /// The dependency stage and its inputs, or why there is none (an error naming the file).
    pub deps: Result<Plan, FingerprintError>,
    /// [`fingerprint::inputs_digest`] of `deps`: equal inputs, equal digest.
    pub inputs_digest: Option<String>,
    dialect: Dialect,
    sources: OnceLock<Result<String, String>>,
    /// The hashing limits' knobs, for [`ImagePlan::context_digest`].
    env: Env,
}

impl ImagePlan {
    fn new(
        name: String,
        deps: Result<Plan, FingerprintError>,
        dialect: Dialect,
        env: &Env,
    ) -> ImagePlan {
        let inputs_digest = deps.as_ref().ok().map(fingerprint::inputs_digest);
        ImagePlan {
            name,
            deps,
            inputs_digest,
            dialect,
            sources: OnceLock::new(),
            env: env.clone(),
        }
    }

    /// sha256 over every file of the build context as the engine sees it (the whole context,
    /// unlike the inputs): computed at most once per process, and only by a build that
    /// wants to know whether an image was already built from these very sources.
    pub fn context_digest(&self) -> Result<&str, String> {
        self.sources
            .get_or_init(|| {
                let plan = self.deps.as_ref().map_err(|e| e.to_string())?;
                let rules =
                    crate::ignore::IgnoreRules::load(&plan.context_dir, &plan.dockerfile_path)
                        .map_err(|e| e.to_string())?;
                let files = crate::context::expand_sources(
                    &plan.context_dir,
                    &rules.with_dialect(self.dialect),
                    &[".".to_string()],
                )
                .map_err(|e| e.to_string())?;
                let hashed =
                    fingerprint::hash_files(&plan.context_dir, Path::new(""), &files, &self.env)
                        .map_err(|e| e.to_string())?;
                use sha2::{Digest, Sha256};
                let mut h = Sha256::new();
                for f in &hashed {
                    h.update(format!("{}\0{}\0", f.path, f.sha256).as_bytes());
                }
                Ok(hex::encode(h.finalize()))
            })
            .as_ref()
            .map(String::as_str)
            .map_err(String::clone)
    }
}

impl WorkspacePlan {
    /// The plan of the checkout at `ws`: the stored one while its stamp holds, else computed
    /// now and stored. `dialect`: the engine's `.dockerignore` generation (what a build will
    /// send), or [`remembered_dialect`] where the engine is not asked (hooks).
    pub fn load(
        state: &State,
        ws: &Workspace,
        dialect: Dialect,
    ) -> Result<WorkspacePlan, PlanError> {
        let path = stored_path(state, &ws.root);
        let stored: Option<Stored> = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let stored = match stored {
            Some(s)
                if s.version == STORED_VERSION
                    && s.dialect == dialect
                    && s.config.root == ws.root
                    && s.stamp.holds(state.env()) =>
            {
                return Ok(WorkspacePlan {
                    images: s
                        .images
                        .into_iter()
                        .map(|p| ImagePlan::new(p.image.name.clone(), Ok(p), dialect, state.env()))
                        .collect(),
                    config: s.config,
                    dialect,
                    reused: true,
                    stamp: s.stamp,
                    env: state.env().clone(),
                });
            }
            other => other,
        };
        // Stat what the last plan read before reading anything (see the module's doc).
        let before = stored.map(|s| s.stamp.restat()).unwrap_or_default();
        let plan = Self::compute(ws, state.env(), dialect, before)?;
        if let (Some(path), Some(stored)) = (path, plan.to_stored()) {
            // Only a cache: a failure to write it costs the next caller a recompute.
            let _ = state::write_json_atomic(&path, &stored);
        }
        Ok(plan)
    }

    /// The plan of files that are not a checkout's (a commit's, written out by
    /// [`crate::ahead`]): computed now in `env` and never stored, since nothing would reuse it.
    pub fn compute_unstored(
        ws: &Workspace,
        env: &Env,
        dialect: Dialect,
    ) -> Result<WorkspacePlan, PlanError> {
        Self::compute(ws, env, dialect, BTreeMap::new())
    }

    fn compute(
        ws: &Workspace,
        env: &Env,
        dialect: Dialect,
        before: BTreeMap<PathBuf, Option<FileId>>,
    ) -> Result<WorkspacePlan, PlanError> {
        COMPUTED.fetch_add(1, Ordering::Relaxed);
        trace(env, &ws.root);
        let started = now_ns();
        let config = config::resolve(ws, env)?;
        let images: Vec<ImagePlan> = config
            .images
            .iter()
            .map(|image| {
                ImagePlan::new(
                    image.name.clone(),
                    fingerprint::plan(&config, image, dialect, env),
                    dialect,
                    env,
                )
            })
            .collect();
        let mut paths: Vec<PathBuf> = config.read.files.clone();
        for plan in images.iter().filter_map(|i| i.deps.as_ref().ok()) {
            paths.extend(plan.read_paths());
        }
        let stamp = Stamp::capture(paths, config.read.env.clone(), &before, started);
        Ok(WorkspacePlan {
            config,
            dialect,
            images,
            reused: false,
            stamp,
            env: env.clone(),
        })
    }

    /// Whether nothing this plan read has changed since it was made (after a build: did the
    /// inputs hold still while it ran?).
    pub fn still_current(&self) -> bool {
        self.stamp.holds(&self.env)
    }

    /// The image's plan by name.
    pub fn image(&self, name: &str) -> Option<&ImagePlan> {
        self.images.iter().find(|i| i.name == name)
    }

    /// Every image's inputs digest, for the images that have a plan.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.images
            .iter()
            .filter_map(|i| Some((i.name.clone(), i.inputs_digest.clone()?)))
            .collect()
    }

    fn to_stored(&self) -> Option<Stored> {
        if self.stamp.unreliable {
            return None;
        }
        let images = self
            .images
            .iter()
            .map(|i| i.deps.as_ref().ok().cloned())
            .collect::<Option<Vec<Plan>>>()?;
        Some(Stored {
            version: STORED_VERSION.to_string(),
            dialect: self.dialect,
            config: self.config.clone(),
            images,
            stamp: self.stamp.clone(),
        })
    }
}

/// A plan as stored in the state directory: only plans without errors are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    version: String,
    dialect: Dialect,
    stamp: Stamp,
    config: Config,
    images: Vec<Plan>,
}

fn stored_path(state: &State, root: &Path) -> Option<PathBuf> {
    state
        .dir("plans")
        .ok()
        .map(|d| d.join(format!("{}.json", crate::registry::id(root))))
}

/// What a plan read, as it was: enough to tell, with a `stat` per path, that none of it
/// changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    files: BTreeMap<PathBuf, Option<FileId>>,
    env: BTreeMap<String, Option<String>>,
    /// A path changed while the plan was computed: the stamp cannot vouch for the plan.
    #[serde(default)]
    unreliable: bool,
}

/// A file's identity and last change, as `stat` gives it. Equal ids: the same bytes, barring
/// two writes within one tick of the file system's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileId::from_meta(&meta))
    }

    #[cfg(unix)]
    fn from_meta(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    fn from_meta(meta: &std::fs::Metadata) -> FileId {
        let ns = |t: std::io::Result<SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i128)
                .unwrap_or(0)
        };
        FileId {
            size: meta.len(),
            mtime_ns: ns(meta.modified()),
            ctime_ns: ns(meta.created()),
            ino: 0,
        }
    }
}

impl Stamp {
    fn capture(
        paths: Vec<PathBuf>,
        env: BTreeMap<String, Option<String>>,
        before: &BTreeMap<PathBuf, Option<FileId>>,
        started_ns: i128,
    ) -> Stamp {
        let mut files = BTreeMap::new();
        let mut unreliable = false;
        for path in paths {
            if files.contains_key(&path) {
                continue;
            }
            let id = match before.get(&path) {
                Some(id) => *id,
                None => {
                    let id = FileId::of(&path);
                    // Stamped after it was read: only good if it had not changed since the
                    // computation began.
                    if id.is_some_and(|i| i.mtime_ns >= started_ns || i.ctime_ns >= started_ns) {
                        unreliable = true;
                    }
                    id
                }
            };
            files.insert(path, id);
        }
        Stamp {
            files,
            env,
            unreliable,
        }
    }

    /// The same paths, as they are now.
    fn restat(&self) -> BTreeMap<PathBuf, Option<FileId>> {
        self.files
            .keys()
            .map(|p| (p.clone(), FileId::of(p)))
            .collect()
    }

    /// Whether every path and variable (in `env`, standing for the process's) is as it was.
    pub fn holds(&self, env: &Env) -> bool {
        !self.unreliable
            && self.env.iter().all(|(k, v)| env.text(k) == v.as_deref())
            && self.files.iter().all(|(p, id)| FileId::of(p) == *id)
    }
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// `DOCKWARM_TRACE_PLANS=FILE` appends a line per computed plan (pid and workspace): how to
/// see which process computes plans, and how often.
fn trace(env: &Env, root: &Path) {
    let Some(file) = env.trace_plans() else {
        return;
    };
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = writeln!(f, "{} {}", std::process::id(), root.display());
    }
}

/// The `.dockerignore` generation of the engine as last seen (written by every process that
/// reached it), so that processes that never ask the engine — the hooks — resolve inputs the
/// way the engine's builds will. [`Dialect::Current`] until an engine was seen.
pub fn remembered_dialect(state: &State) -> Dialect {
    recorded_dialect(state).unwrap_or_default()
}

fn recorded_dialect(state: &State) -> Option<Dialect> {
    std::fs::read_to_string(state.root().join("engine-dialect"))
        .ok()
        .and_then(|t| serde_json::from_str(t.trim()).ok())
}

/// Records the engine's `.dockerignore` generation for [`remembered_dialect`] (a write only
/// when it differs from the one recorded).
pub fn remember_dialect(state: &State, dialect: Dialect) {
    if recorded_dialect(state) != Some(dialect) {
        if let Ok(text) = serde_json::to_string(&dialect) {
            let _ = state::write_atomic(&state.root().join("engine-dialect"), text.as_bytes());
        }
    }
}
