//! Warm before checkout: the plan of a commit, read from git's objects, and which remote
//! branches the daemon prebuilds ahead of any checkout.
//!
//! A teammate's lockfile change arrives with `git fetch`; the first workspace on the new
//! default branch should find its dependency stage built. [`plan_at`] plans a commit with the
//! same code that plans a checkout (see the private `tree` module), so equal inputs give an equal fingerprint
//! and the prebuild's context holds the files a checkout would hold, with the modes a checkout
//! would give them: BuildKit's cache keys for the dependency steps are those of the user's
//! later build. [`watched_refs`] says which refs matter: the default branch (`origin/HEAD`'s
//! target, or `CONDUCTOR_DEFAULT_BRANCH`), the upstreams of the branches checked out in
//! registered workspaces, and `[ahead] refs`. [`Records`] remembers, per repository and ref,
//! the commit last looked at and what became of it, for `status` and for not looking twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::ignore::Dialect;
use crate::plan::{PlanError, WorkspacePlan};
use crate::state::{self, State, StateError};
use crate::workspace::Workspace;

mod tree;

/// Most rounds of plan-then-write before giving up: each round only adds files, and real
/// projects settle in two to four.
const MAX_ROUNDS: usize = 12;

/// Why a commit could not be planned from git's objects ([`plan_at`], [`resolve`]).
#[derive(Debug, thiserror::Error)]
pub enum AheadError {
    /// No git repository could be opened at or above the checkout.
    #[error("{path}: {source}; check that it is a git repository dockwarm can read")]
    Repo {
        /// The checkout dockwarm looked from.
        path: PathBuf,
        /// git2's reason.
        source: git2::Error,
    },
    /// The revision the user named does not resolve to a commit; a usage error.
    #[error("`{rev}` is not a commit here ({source}); name a branch, tag or commit (`git rev-parse {rev}` must answer)")]
    Rev {
        /// The revision as given (`origin/main`, a commit id).
        rev: String,
        /// git2's reason.
        source: git2::Error,
    },
    /// An object of the commit (a tree, a blob) could not be read.
    #[error("reading `{path}` from the commit: {source}")]
    Git {
        /// The path inside the commit, or `(root)` / `(tree)` for the trees themselves.
        path: String,
        /// git2's reason.
        source: git2::Error,
    },
    /// Writing the commit's files into the scratch directory failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The scratch file or directory dockwarm was writing.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The state directory (its `ahead` directory or a scratch lock) could not be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// The commit's configuration or Dockerfile does not plan; `message` names its files
    /// as `<commit>:path`, not by the scratch directory they were read from.
    #[error("at commit {commit}: {message}")]
    Plan {
        /// The full commit id.
        commit: String,
        /// The planning error, its paths relabelled as `<commit>:path`.
        message: String,
    },
    /// Each round of planning asked for more of the commit's files, past `MAX_ROUNDS`.
    #[error("planning commit {commit} did not settle after {MAX_ROUNDS} rounds (a symlink loop?)")]
    Unsettled {
        /// The full commit id.
        commit: String,
    },
}

impl AheadError {
    fn io(path: &Path, source: std::io::Error) -> AheadError {
        AheadError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn git(path: &str, source: git2::Error) -> AheadError {
        AheadError::Git {
            path: path.to_string(),
            source,
        }
    }
}

impl crate::error::Classify for AheadError {
    /// A revision that does not resolve, or a commit whose configuration does not plan: the
    /// user names another revision or fixes the file; git or disk trouble is not theirs.
    fn is_usage(&self) -> bool {
        matches!(self, AheadError::Rev { .. } | AheadError::Plan { .. })
    }
}

/// A commit's plan, and the directory holding the commit's files it read: the build context
/// of its prebuild, removed when this is dropped.
pub struct RevPlan {
    /// The full commit id.
    pub commit: String,
    /// The commit planned as a checkout would be; its config's root is the scratch copy of the
    /// commit's files.
    pub plan: WorkspacePlan,
    scratch: PathBuf,
    _lock: state::LockGuard,
}

impl RevPlan {
    /// `text` (an error about the commit's files) with the scratch directory's paths shown as
    /// `<commit>:path`, which is how the user can find them (`git show <commit>:path`).
    pub fn relabel(&self, text: &str) -> String {
        let prefix = format!("{}/", self.plan.config.root.display());
        text.replace(
            &prefix,
            &format!("{}:", &self.commit[..12.min(self.commit.len())]),
        )
    }
}

impl Drop for RevPlan {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Resolves `rev` in the repository of the checkout at `dir` to a full commit id.
pub fn resolve(dir: &Path, rev: &str) -> Result<String, AheadError> {
    let repo = open(dir)?;
    let id = peel(&repo, rev)?.id().to_string();
    Ok(id)
}

fn open(dir: &Path) -> Result<git2::Repository, AheadError> {
    git2::Repository::discover(dir).map_err(|source| AheadError::Repo {
        path: dir.to_path_buf(),
        source,
    })
}

fn peel<'r>(repo: &'r git2::Repository, rev: &str) -> Result<git2::Commit<'r>, AheadError> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|source| AheadError::Rev {
            rev: rev.to_string(),
            source,
        })
}

/// Plans commit `rev` of the repository of the checkout `ws`, from git's objects: no checkout,
/// no index, nothing of the working tree read. The configuration is the commit's own
/// (`dockwarm.toml` and compose files as committed); the project name defaults, as in a
/// checkout, to the main worktree's directory name.
pub fn plan_at(
    state: &State,
    ws: &Workspace,
    rev: &str,
    dialect: Dialect,
) -> Result<RevPlan, AheadError> {
    plan_tree_at(state, ws, rev, dialect, false)
}

/// [`plan_at`], and with `full` every file of each image's build context written too (not only
/// what the dependency stage reads): what building the commit's workspace image needs.
fn plan_tree_at(
    state: &State,
    ws: &Workspace,
    rev: &str,
    dialect: Dialect,
    full: bool,
) -> Result<RevPlan, AheadError> {
    let repo = open(&ws.root)?;
    let commit = peel(&repo, rev)?;
    let id = commit.id().to_string();
    let tree = commit.tree().map_err(|e| AheadError::git("(root)", e))?;
    // A stable place per concurrent planner (slot), so compose's cached answer for the same
    // compose files at the same path serves every round and the next commit; named like the
    // main worktree, so compose's default project name is a checkout's.
    let (slot, lock) = scratch_slot(state)?;
    // Private, like the rest of the state directory, whatever the umask: it holds the
    // commit's files.
    state.dir("ahead")?;
    state.dir("ahead/trees")?;
    let slot_dir = format!("ahead/trees/{slot}");
    let _ = std::fs::remove_dir_all(state.root().join(&slot_dir));
    let scratch = state.dir(&slot_dir)?;
    let root = scratch.join(
        ws.main_root
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "repo".into()),
    );
    let made = RevPlanDir(scratch.clone());
    let mut sparse = tree::Sparse::new(&repo, tree, root.clone())?;
    let at = Workspace {
        root,
        main_root: ws.main_root.clone(),
    };
    let mut seeds: Vec<String> = vec![crate::config::FILE_NAME.into(), ".env".into()];
    seeds.extend(crate::compose::FILE_NAMES.iter().map(|s| s.to_string()));
    seeds.extend(crate::compose::OVERRIDE_NAMES.iter().map(|s| s.to_string()));
    if let Some(list) = state.env().compose_file() {
        seeds.extend(list.split([':', ';']).map(str::to_string));
    }
    for s in &seeds {
        sparse.want(s)?;
    }
    let mut widened = false;
    for _ in 0..MAX_ROUNDS {
        let plan = WorkspacePlan::compute_unstored(&at, state.env(), dialect);
        let more = match &plan {
            Ok(plan) => wanted(&mut sparse, plan)?,
            // A compose file named by an `include` or `COMPOSE_FILE` the seeds missed: write
            // every compose-like file once and try again.
            Err(_) if !widened => {
                widened = true;
                sparse.want_named(&[".yml", ".yaml", ".env", ".toml"])?
            }
            Err(_) => false,
        };
        if !more {
            let plan = match plan {
                // The workspace image's context is every file of the commit under it: write
                // them all, and plan once more so the context digest sees them.
                Ok(plan) if full => {
                    for image in &plan.config.images {
                        let mut dirs = vec![plan.config.root.join(&image.context.value)];
                        dirs.extend(image.named_context_dirs(&plan.config.root).into_values());
                        for dir in dirs {
                            if let Some(rel) = sparse.relative(&dir) {
                                sparse.want_all(&rel)?;
                            }
                        }
                    }
                    WorkspacePlan::compute_unstored(&at, state.env(), dialect)
                }
                other => other,
            };
            std::mem::forget(made);
            return match plan {
                Ok(plan) => Ok(RevPlan {
                    commit: id,
                    plan,
                    scratch,
                    _lock: lock,
                }),
                Err(source) => {
                    let _ = std::fs::remove_dir_all(&scratch);
                    Err(plan_error(&id, &at.root, &source))
                }
            };
        }
    }
    Err(AheadError::Unsettled { commit: id })
}

/// The first free scratch slot, held until the plan is dropped.
fn scratch_slot(state: &State) -> Result<(usize, state::LockGuard), AheadError> {
    for slot in 0..64 {
        if let Some(guard) = state.try_lock(&format!("ahead-tree-{slot}"))? {
            return Ok((slot, guard));
        }
    }
    Ok((64, state.lock("ahead-tree-64")?))
}

/// A planning error at a commit, its paths shown as `<commit>:path`.
fn plan_error(commit: &str, root: &Path, e: &PlanError) -> AheadError {
    let prefix = format!("{}/", root.display());
    let short = &commit[..12.min(commit.len())];
    AheadError::Plan {
        commit: commit.to_string(),
        message: e.to_string().replace(&prefix, &format!("{short}:")),
    }
}

/// Removes a scratch directory on an early return.
struct RevPlanDir(PathBuf);

impl Drop for RevPlanDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes what `plan` read (or missed) that the commit has; whether anything was new.
fn wanted(sparse: &mut tree::Sparse<'_>, plan: &WorkspacePlan) -> Result<bool, AheadError> {
    let mut more = false;
    let config = &plan.config;
    let mut paths: Vec<PathBuf> = config.read.files.clone();
    paths.extend(config.compose_inputs.iter().cloned());
    for image in &config.images {
        if image.dockerfile_inline.is_none() {
            let dockerfile = config.root.join(&image.dockerfile.value);
            paths.push(crate::ignore::dockerfile_ignore_path(&dockerfile));
            paths.push(dockerfile);
        }
        let context = config.root.join(&image.context.value);
        paths.push(context.join(".dockerignore"));
        for dir in image.named_context_dirs(&config.root).values() {
            paths.push(dir.join(".dockerignore"));
        }
    }
    for image in &plan.images {
        match &image.deps {
            Ok(deps) => {
                paths.extend(deps.read_paths());
                // A wildcard under a directory not written yet matches nothing, silently:
                // the literal part of every source is written, so the next round sees it.
                let sources = deps.deps.context_sources.iter();
                let inputs = deps.image.inputs.value.iter();
                for source in sources.chain(inputs) {
                    paths.push(deps.context_dir.join(tree::literal_prefix(source)));
                }
                for (name, dir) in deps.image.named_context_dirs(&config.root) {
                    for source in deps.deps.named_sources.get(&name).into_iter().flatten() {
                        paths.push(dir.join(tree::literal_prefix(source)));
                    }
                }
            }
            Err(crate::fingerprint::FingerprintError::Inputs {
                source: crate::context::ContextError::SourceNotFound { src, .. },
                ..
            }) => {
                // A source not written yet: its literal directory part, in every context
                // the image has (which one named it, the error does not say).
                if let Some(spec) = config.images.iter().find(|i| i.name == image.name) {
                    let prefix = tree::literal_prefix(src);
                    let mut dirs = vec![config.root.join(&spec.context.value)];
                    dirs.extend(spec.named_context_dirs(&config.root).into_values());
                    paths.extend(dirs.into_iter().map(|d| d.join(&prefix)));
                }
            }
            Err(_) => {}
        }
    }
    for path in paths {
        if let Some(rel) = sparse.relative(&path) {
            more |= sparse.want(&rel)?;
        }
    }
    Ok(more)
}

/// A ref dockwarm prebuilds ahead, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Watched {
    /// Full name: `refs/remotes/origin/main`.
    pub name: String,
    /// `default branch`, `upstream of BRANCH in WORKSPACE`, `[ahead] refs`.
    pub why: String,
}

/// The refs worth prebuilding for the repository of `workspaces` (registered checkouts of
/// one repository): its default branch, each checked-out branch's upstream, and `extra`
/// (`[ahead] refs`, short names like `origin/release` allowed).
pub fn watched_refs(env: &Env, workspaces: &[PathBuf], extra: &[String]) -> Vec<Watched> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let Some(first) = workspaces.first() else {
        return Vec::new();
    };
    let Ok(repo) = open(first) else {
        return Vec::new();
    };
    let default = env
        .conductor_default_branch()
        .map(|b| {
            if b.starts_with("refs/") {
                b.to_string()
            } else if b.contains('/') && repo.find_reference(&format!("refs/remotes/{b}")).is_ok() {
                format!("refs/remotes/{b}")
            } else {
                format!("refs/remotes/origin/{b}")
            }
        })
        .or_else(|| {
            repo.find_reference("refs/remotes/origin/HEAD")
                .ok()
                .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_string))
        });
    if let Some(d) = default {
        out.insert(d, "default branch".into());
    }
    for ws in workspaces {
        let Ok(wrepo) = git2::Repository::open(ws) else {
            continue;
        };
        let Ok(head) = wrepo.head() else { continue };
        if !head.is_branch() {
            continue;
        }
        let Ok(branch) = head.name() else { continue };
        if let Ok(up) = wrepo.branch_upstream_name(branch) {
            if let Ok(up) = up.as_str() {
                if up.starts_with("refs/remotes/") {
                    out.entry(up.to_string()).or_insert_with(|| {
                        format!(
                            "upstream of {} in {}",
                            branch.trim_start_matches("refs/heads/"),
                            ws.display()
                        )
                    });
                }
            }
        }
    }
    for r in extra {
        let full = if r.starts_with("refs/") {
            r.clone()
        } else {
            format!("refs/remotes/{r}")
        };
        out.entry(full).or_insert_with(|| "[ahead] refs".into());
    }
    out.into_iter()
        .map(|(name, why)| Watched { name, why })
        .collect()
}

/// The commit each ref points at now (refs that do not resolve are left out).
pub fn ref_targets(dir: &Path, refs: &[String]) -> BTreeMap<String, String> {
    let Ok(repo) = open(dir) else {
        return BTreeMap::new();
    };
    refs.iter()
        .filter_map(|name| {
            let commit = repo
                .find_reference(name)
                .ok()?
                .peel_to_commit()
                .ok()?
                .id()
                .to_string();
            Some((name.clone(), commit))
        })
        .collect()
}

/// What became of one ref looked at ahead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefRecord {
    /// The full commit id the ref pointed at when looked at; the same commit is not looked at
    /// twice.
    pub commit: String,
    /// Why the ref is watched, from [`Watched::why`]: "default branch", "upstream of …".
    pub why: String,
    /// When it was looked at, in seconds since the Unix epoch.
    pub at: u64,
    /// Per image: its inputs digest at the commit and what dockwarm did about it.
    pub images: BTreeMap<String, ImageAhead>,
    /// Why the commit, or one of its images (`image: …`), could not be planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One image of a commit looked at ahead: its inputs and whether their prebuild is done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageAhead {
    /// The image's inputs digest at the commit, compared with what workspaces have built.
    pub digest: String,
    /// "warm" (these inputs were built already), "queued", "built", "failed".
    pub status: String,
    /// The dependency image's tag, once `dockwarm prebuild --rev` built or found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The commit's whole image (default branch only, `[ahead] full`): "queued", "built",
    /// "warm" (an image of these very sources was there), "failed", or "skipped" (the build
    /// context sends `.git`, which differs in every workspace, so none could reuse it);
    /// `None` when only the dependency stage is prebuilt ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// The refs of one repository looked at ahead, by full ref name; one file per repository,
/// keyed by its main worktree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Records {
    /// The repository's main worktree; the file is named by its registry id.
    pub repo: PathBuf,
    /// What became of each watched ref, by full ref name; unwatched refs are dropped.
    pub refs: BTreeMap<String, RefRecord>,
}

fn records_path(state: &State, main_root: &Path) -> Result<PathBuf, StateError> {
    Ok(state
        .dir("ahead")?
        .join(format!("{}.json", crate::registry::id(main_root))))
}

impl Records {
    /// The records of the repository whose main worktree is `main_root`.
    pub fn load(state: &State, main_root: &Path) -> Records {
        records_path(state, main_root)
            .ok()
            .and_then(|p| state::read_json(&p))
            .unwrap_or_else(|| Records {
                repo: main_root.to_path_buf(),
                refs: BTreeMap::new(),
            })
    }

    /// Every repository's records.
    pub fn all(state: &State) -> Vec<Records> {
        let Ok(dir) = state.dir("ahead") else {
            return Vec::new();
        };
        let mut out: Vec<Records> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| state::read_json(&e.path()))
            .collect();
        out.sort_by(|a, b| a.repo.cmp(&b.repo));
        out
    }

    /// Changes the records of `main_root` under a lock (the daemon and build children write).
    pub fn update(
        state: &State,
        main_root: &Path,
        change: impl FnOnce(&mut Records),
    ) -> Result<(), StateError> {
        let _guard = state.lock(&format!("ahead-{}", crate::registry::id(main_root)))?;
        let mut records = Records::load(state, main_root);
        change(&mut records);
        state::write_json_atomic(&records_path(state, main_root)?, &records)
    }
}

/// Sets the status of `image` at `commit` of every ref that points there.
pub fn set_status(
    state: &State,
    main_root: &Path,
    commit: &str,
    image: &str,
    status: &str,
    tag: Option<&str>,
) {
    let _ = Records::update(state, main_root, |r| {
        for rec in r.refs.values_mut().filter(|rec| rec.commit == commit) {
            if let Some(i) = rec.images.get_mut(image) {
                i.status = status.to_string();
                if let Some(t) = tag {
                    i.tag = Some(t.to_string());
                }
            }
        }
    });
}

/// Sets the status of the whole image of `image` at `commit`, on every ref that points there.
fn set_workspace_status(state: &State, main_root: &Path, commit: &str, image: &str, status: &str) {
    let _ = Records::update(state, main_root, |r| {
        for rec in r.refs.values_mut().filter(|rec| rec.commit == commit) {
            if let Some(i) = rec.images.get_mut(image) {
                i.workspace = Some(status.to_string());
            }
        }
    });
}

/// Prebuilds the dependency stages of commit `rev` (the named images, all when empty) with
/// its files as the build context, and records the outcome on every ref looked at ahead that
/// points there. With `full`, each image's whole image too, from every file of the commit,
/// under a dockwarm tag per ref ([`crate::prebuild::build_commit_image`]): a commit has no
/// workspace whose compose names it could take, but a new workspace on it finds the image by
/// its sources and only tags it.
#[allow(clippy::too_many_arguments)]
pub async fn prebuild(
    engine: &crate::engine::Engine,
    state: &State,
    ws: &Workspace,
    rev: &str,
    images: &[String],
    backend: Option<crate::config::Backend>,
    quiet: bool,
    full: bool,
) -> Result<(String, Vec<crate::prebuild::ImageResult>), AheadPrebuildError> {
    let at = plan_tree_at(state, ws, rev, engine.ignore_dialect(), full)?;
    // The tag a commit's whole image gets: one per watched ref, so the next commit's image
    // replaces it rather than piling up.
    let slot = Records::load(state, &ws.main_root)
        .refs
        .iter()
        .find(|(_, r)| r.commit == at.commit)
        .map(|(name, _)| name.trim_start_matches("refs/").replace('/', "-"))
        .unwrap_or_else(|| "rev".into());
    let options = crate::prebuild::Options {
        backend: backend.unwrap_or(at.plan.config.backend.value),
        quiet,
        full: false,
        push: crate::prebuild::Push::Background,
    };
    let names: Vec<String> = if images.is_empty() {
        at.plan.images.iter().map(|i| i.name.clone()).collect()
    } else {
        images.to_vec()
    };
    let mut results = Vec::new();
    for name in &names {
        let one = std::slice::from_ref(name);
        match crate::prebuild::run(engine, state, &at.plan, one, &options).await {
            Ok(r) => {
                for r in &r {
                    let status = match r.outcome.status {
                        crate::prebuild::Status::Built => "built",
                        _ => "warm",
                    };
                    set_status(
                        state,
                        &ws.main_root,
                        &at.commit,
                        name,
                        status,
                        Some(&r.outcome.tag),
                    );
                }
                if full && sends_git(&at.plan, name) {
                    // Each workspace's `.git` differs: no workspace could reuse the image.
                    set_workspace_status(state, &ws.main_root, &at.commit, name, "skipped");
                } else if full {
                    for r in &r {
                        let fingerprint = &r.outcome.fingerprint;
                        let built = crate::prebuild::build_commit_image(
                            engine,
                            state,
                            &at.plan,
                            name,
                            fingerprint,
                            &slot,
                            &options,
                        )
                        .await;
                        let status = match &built {
                            Ok(b) if b.reused => "warm",
                            Ok(_) => "built",
                            Err(_) => "failed",
                        };
                        set_workspace_status(state, &ws.main_root, &at.commit, name, status);
                        if let Err(e) = built {
                            return Err(relabel_error(&at, e).into());
                        }
                    }
                }
                results.extend(r);
            }
            Err(e) => {
                set_status(state, &ws.main_root, &at.commit, name, "failed", None);
                if full {
                    set_workspace_status(state, &ws.main_root, &at.commit, name, "failed");
                }
                return Err(relabel_error(&at, e).into());
            }
        }
    }
    Ok((at.commit.clone(), results))
}

/// Whether image `name`'s build context takes `.git` along (its `.dockerignore` does not
/// exclude it): then every workspace's context differs from the commit's, and from every
/// other workspace's.
fn sends_git(plan: &WorkspacePlan, name: &str) -> bool {
    let Some(Ok(deps)) = plan.image(name).map(|i| i.deps.as_ref()) else {
        return true;
    };
    match crate::ignore::IgnoreRules::load(&deps.context_dir, &deps.dockerfile_path) {
        Ok(rules) => !rules.is_excluded(".git", true) || !rules.is_excluded(".git", false),
        Err(_) => true,
    }
}

/// A build error at a commit, its scratch paths shown as `<commit>:path`.
fn relabel_error(
    at: &RevPlan,
    e: crate::prebuild::PrebuildError,
) -> crate::prebuild::PrebuildError {
    match e {
        crate::prebuild::PrebuildError::Plan { message, usage } => {
            crate::prebuild::PrebuildError::Plan {
                message: at.relabel(&message),
                usage,
            }
        }
        other => other,
    }
}

/// Why [`prebuild`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AheadPrebuildError {
    /// The commit could not be planned from git's objects.
    #[error(transparent)]
    Plan(#[from] AheadError),
    /// The build itself failed; `dockwarm prebuild` reports it as it reports a checkout's.
    #[error(transparent)]
    Build(#[from] crate::prebuild::PrebuildError),
}

impl crate::error::Classify for AheadPrebuildError {
    /// Transparent: it answers as the error it wraps (`prebuild --rev` of a revision that
    /// does not resolve exits 2, as `fingerprint --rev` does).
    fn is_usage(&self) -> bool {
        match self {
            AheadPrebuildError::Plan(e) => e.is_usage(),
            AheadPrebuildError::Build(e) => e.is_usage(),
        }
    }
}

/// A dependency build a fetched commit wants.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// A registered checkout of the repository (where the build runs).
    pub anchor: PathBuf,
    /// The repository's main worktree.
    pub repo: PathBuf,
    /// The watched ref that points at the commit (`refs/remotes/origin/main`).
    pub refname: String,
    /// The full commit id to build, given to `dockwarm prebuild --rev`.
    pub commit: String,
    /// The commit's project name, which with `image` and `digest` keys the daemon's job.
    pub project: String,
    /// The image whose dependency stage is wanted.
    pub image: String,
    /// Its inputs digest at the commit, which no workspace and no earlier commit built.
    pub digest: String,
    /// The commit's whole image is wanted too (the default branch, `[ahead] full`).
    pub full: bool,
    /// Its dependency stage is built already: only the whole image is owed.
    pub built: bool,
}

/// Where a watched ref is written: a directory and the entry names in it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefWatch {
    /// The repository's main worktree.
    pub repo: PathBuf,
    /// The directory to watch: a loose ref's parent in the common git dir, or the common git
    /// dir itself for `packed-refs`.
    pub dir: PathBuf,
    /// The entries of `dir` that matter: the loose ref files' names, `packed-refs`.
    pub names: Vec<String>,
}

/// What [`scan`] found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The dependency builds to queue at low priority: per ref, each image whose inputs no one
    /// built.
    pub wanted: Vec<Wanted>,
    /// Where the watched refs live (loose ref files, `packed-refs`): the daemon watches them,
    /// so a fetch is seen even where the hook is missing.
    pub watch: Vec<RefWatch>,
    /// Every repository was looked at (not only one checkout's).
    pub all: bool,
}

/// Looks at the watched refs of every repository that has a registered workspace (only the
/// repository of `only`, when given): each ref whose commit was not looked at yet is planned
/// from git's objects, and each image whose inputs no workspace and no earlier commit built
/// comes back as [`Wanted`]; the rest is recorded as warm. Refs are compared with the
/// records, so a look that finds nothing moved costs a few ref reads per repository.
pub fn scan(state: &State, only: Option<&Path>, dialect: Dialect) -> Scan {
    let registered = crate::registry::list(state);
    let mut repos: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for w in &registered {
        if let Ok(ws) = Workspace::discover(&w.path) {
            repos.entry(ws.main_root).or_default().push(w.path.clone());
        }
    }
    if let Some(only) = only {
        let main = Workspace::discover(only).map(|w| w.main_root).ok();
        repos.retain(|repo, _| Some(repo) == main.as_ref());
    }
    let mut found = Scan {
        all: only.is_none(),
        ..Scan::default()
    };
    for (repo, workspaces) in repos {
        scan_repo(state, &repo, &workspaces, &registered, dialect, &mut found);
    }
    found
}

fn scan_repo(
    state: &State,
    repo: &Path,
    workspaces: &[PathBuf],
    registered: &[crate::registry::Workspace],
    dialect: Dialect,
    found: &mut Scan,
) {
    let Some(anchor) = workspaces.first() else {
        return;
    };
    let Ok(anchor_ws) = Workspace::discover(anchor) else {
        return;
    };
    // The checkout's own configuration says whether and what to look at ahead (resolved
    // without starting compose, and without planning: the workspace's plan is its own
    // evaluation's business).
    let Ok(config) = crate::config::resolve_cached(&anchor_ws, state.env()) else {
        return;
    };
    if !config.ahead.enabled.value {
        // An empty list: the hook then starts dockwarm for no fetch at all.
        let _ = crate::hooks::write_watched_refs(anchor, &[]);
        return;
    }
    let watched = watched_refs(state.env(), workspaces, &config.ahead.refs.value);
    let names: Vec<String> = watched.iter().map(|w| w.name.clone()).collect();
    // The hook then starts dockwarm only for these refs (a fetch moves each ref on its own).
    let _ = crate::hooks::write_watched_refs(anchor, &names);
    if let Ok(git) = open(anchor) {
        let common = git.commondir().to_path_buf();
        let mut dirs: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        dirs.entry(common.clone())
            .or_default()
            .push("packed-refs".into());
        for name in &names {
            let file = common.join(name);
            if let (Some(dir), Some(base)) = (file.parent(), file.file_name()) {
                dirs.entry(dir.to_path_buf())
                    .or_default()
                    .push(base.to_string_lossy().into_owned());
            }
        }
        found
            .watch
            .extend(dirs.into_iter().map(|(dir, names)| RefWatch {
                repo: repo.to_path_buf(),
                dir,
                names,
            }));
    }
    let targets = ref_targets(anchor, &names);
    let records = Records::load(state, repo);
    let wanted = &mut found.wanted;
    for w in &watched {
        let Some(commit) = targets.get(&w.name) else {
            continue;
        };
        if records
            .refs
            .get(&w.name)
            .is_some_and(|r| &r.commit == commit)
        {
            continue;
        }
        let mut record = RefRecord {
            commit: commit.clone(),
            why: w.why.clone(),
            at: state::now_secs(),
            ..Default::default()
        };
        let full = config.ahead.full.value && w.why == "default branch";
        match plan_at(state, &anchor_ws, commit, dialect) {
            Ok(at) => {
                for (image, digest) in at.plan.digests() {
                    let built = registered.iter().any(|r| {
                        r.project == at.plan.config.project.value
                            && r.images.get(&image).and_then(|s| s.built()) == Some(&digest)
                    }) || Records::all(state).iter().any(|rs| {
                        rs.refs.values().any(|r| {
                            r.images.get(&image).is_some_and(|i| {
                                i.digest == digest && (i.status == "built" || i.status == "warm")
                            })
                        })
                    });
                    let status = if built { "warm" } else { "queued" };
                    if !built || full {
                        wanted.push(Wanted {
                            anchor: anchor.clone(),
                            repo: repo.to_path_buf(),
                            refname: w.name.clone(),
                            commit: commit.clone(),
                            project: at.plan.config.project.value.clone(),
                            image: image.clone(),
                            digest: digest.clone(),
                            full,
                            built,
                        });
                    }
                    record.images.insert(
                        image,
                        ImageAhead {
                            digest,
                            status: status.into(),
                            tag: None,
                            workspace: full.then(|| "queued".into()),
                        },
                    );
                }
                let prefix = format!("{}/", at.plan.config.root.display());
                for image in at.plan.images.iter() {
                    if let Err(e) = &image.deps {
                        let text = e.to_string().replace(&prefix, "");
                        record.error = Some(format!("{}: {text}", image.name));
                    }
                }
            }
            Err(e) => record.error = Some(e.to_string()),
        }
        let name = w.name.clone();
        let _ = Records::update(state, repo, |r| {
            r.repo = repo.to_path_buf();
            r.refs.insert(name, record);
        });
    }
    // Refs no longer watched (a workspace switched branch) leave the records.
    if records.refs.keys().any(|name| !names.contains(name)) {
        let _ = Records::update(state, repo, |r| {
            r.refs.retain(|name, _| names.contains(name));
        });
    }
}

/// A build of these inputs ended (whoever asked for it): records of commits waiting on them
/// say so.
pub fn mark_digest(state: &State, image: &str, digest: &str, status: &str) {
    for records in Records::all(state) {
        let touches = records.refs.values().any(|r| {
            r.images
                .get(image)
                .is_some_and(|i| i.digest == digest && i.status == "queued")
        });
        if !touches {
            continue;
        }
        let _ = Records::update(state, &records.repo, |rs| {
            for r in rs.refs.values_mut() {
                if let Some(i) = r.images.get_mut(image) {
                    if i.digest == digest && i.status == "queued" {
                        i.status = status.to_string();
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::git;

    /// The default branch from `origin/HEAD`, each checked-out branch's upstream (a linked
    /// worktree's own HEAD), `[ahead] refs` in short form; a branch without upstream adds none.
    #[test]
    fn watched_refs_are_the_default_branch_upstreams_and_extras() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        git(&origin, &["commit", "-q", "--allow-empty", "-m", "x"]);
        git(&origin, &["branch", "feature"]);
        git(tmp.path(), &["clone", "-q", "origin", "clone"]);
        let clone = tmp.path().join("clone");
        let wt = tmp.path().join("wt");
        git(
            &clone,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "feature",
                wt.to_str().unwrap(),
                "origin/feature",
            ],
        );
        git(&clone, &["branch", "local-only"]);
        let env = Env::default();
        let refs = watched_refs(
            &env,
            &[clone.clone(), wt.clone()],
            &["origin/release".into()],
        );
        let names: Vec<&str> = refs.iter().map(|w| w.name.as_str()).collect();
        assert!(names.contains(&"refs/remotes/origin/feature"), "{refs:?}");
        assert!(names.contains(&"refs/remotes/origin/release"), "{refs:?}");
        let main = refs
            .iter()
            .find(|w| w.name == "refs/remotes/origin/main")
            .unwrap();
        assert_eq!(main.why, "default branch");
        assert!(refs
            .iter()
            .any(|w| w.why.starts_with("upstream of feature in ")));
        let targets = ref_targets(
            &clone,
            &names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        assert_eq!(targets.len(), 2, "release does not resolve: {targets:?}");
    }
}
