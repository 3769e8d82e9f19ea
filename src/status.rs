//! What each registered workspace's images are — warm, building (and in which phase), queued,
//! failed, stale (and why) or cold — and which build logs are a workspace's current ones.
//! `dockwarm status` and `dockwarm logs` print what this module answers.
//!
//! Three sources, each optional: the state directory (always: registry and build records), the
//! daemon (building and queued, when it runs) and the engine (the exact fingerprint, whether
//! its image exists, and who holds each compose name). Every engine call runs under one
//! deadline: Engine 20.10 holds some answers for tens of seconds while a build exports layers,
//! and past the deadline status shows what the state directory knows, and says so. Sizes come
//! from the snapshot the daemon's upkeep measures, unless asked for now ([`Options::sizes`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::{self, Config, ImageSpec};
use crate::daemon::protocol::{DaemonStatus, JobView};
use crate::engine::Engine;
use crate::plan::{self, ImagePlan, WorkspacePlan};
use crate::prebuild::{self, PrebuildError};
use crate::registry::{self, ImageSeen, Saved};
use crate::state::{BuildRecord, Phase, StageRecord, State};
use crate::tags::{self, Holder};
use crate::workspace::Workspace;

/// What [`collect`] may do.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The time all engine calls together may take (file-system work does not count); past
    /// it, the state directory answers.
    pub engine_budget: Duration,
    /// Measure the volumes' sizes now (`/system/df`, bounded by the deadline) instead of
    /// showing the last measurement.
    pub sizes: bool,
}

/// Everything `status` shows.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether the engine answered, so a reader knows if the states below are exact.
    pub engine: EngineState,
    /// The daemon's own report, when one runs.
    pub daemon: Option<DaemonStatus>,
    /// Every registered workspace, including those that could not be read.
    pub workspaces: Vec<WorkspaceReport>,
    /// The shared volumes of the workspaces' projects (empty while the engine does not answer).
    pub volumes: Vec<VolumeReport>,
    /// When the volumes' sizes were measured (seconds since the epoch; None: never, or now).
    pub volumes_measured_at: Option<u64>,
    /// Every workspace's builds served warm and the cold build time they avoided.
    pub saved: Saved,
    /// dockwarm's images against the budget, and the BuildKit cache, as last measured.
    pub disk: crate::disk::View,
    /// Remote refs warmed ahead of any checkout (`[ahead]`): per ref, the commit last looked
    /// at and, per image, whether its dependency stage is warm, queued, building or failed.
    pub ahead: Vec<AheadReport>,
    /// Per project with a team registry: the last thing that happened with it.
    pub team_registry: Vec<TeamRegistryReport>,
}

/// A project's team registry (`[registry]`) and what last happened with it.
#[derive(Debug, Serialize)]
pub struct TeamRegistryReport {
    /// The compose project name the images are shared under.
    pub project: String,
    /// The registry reference, e.g. `127.0.0.1:5000/myteam`.
    pub registry: String,
    /// The last pull, push or failure, so a registry that is down shows here, not only in a log.
    pub last_event: Option<crate::remote::Event>,
}

/// One remote ref dockwarm prebuilds ahead of any checkout.
#[derive(Debug, Serialize)]
pub struct AheadReport {
    /// The repository's main worktree.
    pub repo: PathBuf,
    /// The ref, e.g. `refs/remotes/origin/main`.
    #[serde(rename = "ref")]
    pub refname: String,
    /// The commit last looked at.
    pub commit: String,
    /// Why dockwarm watches it: "default branch", "upstream of …", `[ahead] refs`.
    pub why: String,
    /// Seconds since the Unix epoch: when the commit was looked at.
    pub at: u64,
    /// Each image's dependency stage at that commit.
    pub images: Vec<AheadImage>,
    /// Why the commit could not be planned, if it could not.
    pub error: Option<String>,
}

/// One image of a commit warmed ahead.
#[derive(Debug, Serialize)]
pub struct AheadImage {
    /// The image's name in the configuration.
    pub image: String,
    /// The engine-free inputs digest at the commit.
    pub digest: String,
    /// warm (these inputs were built already), queued, building, built or failed.
    pub state: String,
    /// The dependency image's tag, once built.
    pub tag: Option<String>,
    /// The commit's whole image, when it is prebuilt ahead too (the default branch): queued,
    /// building, built, warm (an image of these sources was there) or failed.
    pub workspace: Option<String>,
}

/// The refs warmed ahead, from the records, with "building" for what the daemon runs now.
fn ahead_reports(state: &State, daemon: Option<&DaemonStatus>) -> Vec<AheadReport> {
    let running: Vec<(String, String)> = daemon
        .map(|d| {
            d.running
                .iter()
                .filter_map(|j| Some((j.ahead.clone()?, j.image.clone())))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for records in crate::ahead::Records::all(state) {
        for (name, r) in records.refs {
            let at = format!("{name}@{}", &r.commit[..12.min(r.commit.len())]);
            let images = r
                .images
                .into_iter()
                .map(|(image, i)| {
                    let building = running.iter().any(|(a, im)| *a == at && *im == image);
                    let now = |s: String| {
                        if building && s == "queued" {
                            "building".to_string()
                        } else {
                            s
                        }
                    };
                    AheadImage {
                        state: now(i.status),
                        workspace: i.workspace.map(now),
                        image,
                        digest: i.digest,
                        tag: i.tag,
                    }
                })
                .collect();
            out.push(AheadReport {
                repo: records.repo.clone(),
                refname: name,
                commit: r.commit,
                why: r.why,
                at: r.at,
                images,
                error: r.error,
            });
        }
    }
    out
}

/// Whether the engine answered, and if not, why.
#[derive(Debug, Serialize)]
pub struct EngineState {
    /// It answered every call status made.
    pub up: bool,
    /// Why not: it could not be reached, or it gave no answer within the budget.
    pub error: Option<String>,
}

/// One registered workspace.
#[derive(Debug, Serialize)]
pub struct WorkspaceReport {
    /// The name it was registered under (`CONDUCTOR_WORKSPACE_NAME`, else its directory's).
    pub name: String,
    /// Its root directory, as registered.
    pub path: PathBuf,
    /// dockwarm's project, shared by the repository's workspaces.
    pub project: String,
    /// This checkout (where status ran).
    pub current: bool,
    /// Each image its configuration declares (none when `error` says it could not be read).
    pub images: Vec<ImageReport>,
    /// Why the workspace or its configuration could not be read (moved, deleted, invalid).
    pub error: Option<String>,
    /// The sum of its images' `saved`.
    pub saved: Saved,
}

/// One image of a workspace.
#[derive(Debug, Serialize)]
pub struct ImageReport {
    /// The image's name in the configuration.
    pub image: String,
    /// The fingerprint: computed now with the engine, else the last one built (see `exact`).
    pub fingerprint: Option<String>,
    /// Whether `fingerprint` is the current one (the engine answered) or the last known.
    pub exact: bool,
    /// `state`: warm, building (with `phase`), queued, failed, stale (with `why`) or cold.
    #[serde(flatten)]
    pub state: ImageState,
    /// The compose names of its services, and whether each holds the current build (known
    /// when the engine answered).
    pub tags: Vec<TagReport>,
    /// The build behind what is shown, when a record of one exists.
    pub last_build: Option<LastBuild>,
    /// Why its fingerprint could not be computed (its Dockerfile or inputs, or the engine).
    pub error: Option<String>,
    /// Builds of this image served warm here, and the cold build time they avoided.
    pub saved: Saved,
}

/// Where an image of a workspace stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ImageState {
    /// The current fingerprint is built and every compose name holds the current build.
    Warm,
    /// A build runs; `phase` when its record says which step.
    Building {
        /// The step the build is in; None when no record of this workspace says.
        #[serde(skip_serializing_if = "Option::is_none")]
        phase: Option<Phase>,
    },
    /// The daemon has a build waiting.
    Queued,
    /// The last build of the current fingerprint here failed.
    Failed,
    /// Built, but a compose name does not hold the current build: `docker compose up
    /// --no-build` would run something else.
    Stale {
        /// Each name that does not hold the current build, who holds it, and what to do.
        why: String,
    },
    /// Not built.
    Cold,
}

impl ImageState {
    /// The state's word: warm, building, queued, failed, stale or cold.
    pub fn word(&self) -> &'static str {
        match self {
            ImageState::Warm => "warm",
            ImageState::Building { .. } => "building",
            ImageState::Queued => "queued",
            ImageState::Failed => "failed",
            ImageState::Stale { .. } => "stale",
            ImageState::Cold => "cold",
        }
    }
}

/// One compose name of an image.
#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    /// A name compose runs the service's image under: its `image:`, else
    /// `<compose project>-<service>` (compose v2) or `<compose project>_<service>` (v1).
    pub name: String,
    /// "dockwarm", "compose", "other" or "missing".
    pub holder: &'static str,
    /// It holds the current build (dockwarm's of the current fingerprint, or compose's own
    /// made after the dependency inputs last changed).
    pub current: bool,
}

/// This workspace's last build of the fingerprint (or, when it found it built, the build
/// that made it).
#[derive(Debug, Serialize)]
pub struct LastBuild {
    /// "built", "cached", "pulled" (from the team registry), "failed", "building",
    /// "interrupted" or "skipped".
    pub status: String,
    /// Seconds since the Unix epoch.
    pub finished_at: u64,
    /// The whole build.
    pub duration_ms: u64,
    /// The dependency stage's own time.
    pub dependency_ms: Option<u64>,
    /// The workspace image built on it.
    pub workspace_image: Option<StageRecord>,
    /// The dependency build's log.
    pub log: Option<PathBuf>,
    /// Made by another workspace (this one found the fingerprint built).
    pub elsewhere: bool,
}

/// One shared volume.
#[derive(Debug, Serialize)]
pub struct VolumeReport {
    /// The dockwarm project whose configuration declares it (or whose label it carries).
    pub project: String,
    /// The engine's name for it, `<project>_<key>`.
    pub name: String,
    /// Whether the engine has it (`init` and `volumes ensure` make the configured ones).
    pub exists: bool,
    /// Bytes, from the last measurement (or now, with [`Options::sizes`]); None: not measured.
    pub size: Option<u64>,
}

/// The engine while status uses it: dropped at the first call that overruns the budget.
struct Live {
    engine: Option<Engine>,
    error: Option<String>,
    /// What is left of [`Options::engine_budget`].
    left: Duration,
}

impl Live {
    /// Runs an engine call within what is left of the budget; None (and the engine dropped)
    /// when it overruns.
    async fn call<T>(&mut self, f: impl std::future::Future<Output = T>) -> Option<T> {
        self.engine.as_ref()?;
        let started = Instant::now();
        let answer = tokio::time::timeout(self.left, f).await;
        self.left = self.left.saturating_sub(started.elapsed());
        match answer {
            Ok(v) => Some(v),
            Err(_) => {
                self.engine = None;
                self.error = Some(
                    "no answer in time (an engine holds its answers while a build exports layers)"
                        .into(),
                );
                None
            }
        }
    }
}

/// The status of every registered workspace. `engine` is the connected engine or why not.
pub async fn collect(
    state: &State,
    here: Option<&Path>,
    daemon: Option<DaemonStatus>,
    engine: Result<Engine, String>,
    options: &Options,
) -> Report {
    let (engine, error) = match engine {
        Ok(e) => (Some(e), None),
        Err(e) => (None, Some(e)),
    };
    let dialect = engine
        .as_ref()
        .map(Engine::ignore_dialect)
        .unwrap_or_else(|| plan::remembered_dialect(state));
    let mut live = Live {
        engine,
        error,
        left: options.engine_budget,
    };
    let mut workspaces = Vec::new();
    let mut configs: Vec<Config> = Vec::new();
    for ws in registry::list(state) {
        let mut report = WorkspaceReport {
            name: ws.name.clone(),
            path: ws.path.clone(),
            project: ws.project.clone(),
            current: here == Some(ws.path.as_path()),
            images: Vec::new(),
            error: None,
            saved: ws.images.values().fold(Saved::default(), |mut sum, s| {
                sum += s.saved;
                sum
            }),
        };
        let plan = match Workspace::discover(&ws.path)
            .map_err(config::ConfigError::from)
            .and_then(|w| WorkspacePlan::load(state, &w, dialect))
        {
            Ok(p) => p,
            Err(e) => {
                report.error = Some(e.to_string());
                workspaces.push(report);
                continue;
            }
        };
        for image_plan in &plan.images {
            let seen = ws.images.get(&image_plan.name);
            let spec = plan
                .config
                .images
                .iter()
                .find(|i| i.name == image_plan.name);
            let r = image(
                state,
                &mut live,
                daemon.as_ref(),
                &plan.config,
                spec,
                image_plan,
                seen,
            )
            .await;
            report.images.push(r);
        }
        if !configs
            .iter()
            .any(|c| c.project.value == plan.config.project.value)
        {
            configs.push(plan.config.clone());
        }
        workspaces.push(report);
    }

    let snapshot = crate::disk::snapshot(state).unwrap_or_default();
    let mut sizes = snapshot.volumes.clone();
    let mut volumes_measured_at = snapshot.volumes_measured_at;
    if options.sizes {
        if let Some(engine) = live.engine.clone() {
            if let Some(Some(now)) = live
                .call(crate::disk::measure_volumes(&engine, state))
                .await
            {
                sizes = now;
                volumes_measured_at = Some(crate::state::now_secs());
            }
        }
    }
    let mut volumes = Vec::new();
    for config in &configs {
        let Some(engine) = live.engine.clone() else {
            break;
        };
        if let Some(Ok(rows)) = live
            .call(crate::volumes::rows(&engine, config, &sizes))
            .await
        {
            for row in rows {
                volumes.push(VolumeReport {
                    project: config.project.value.clone(),
                    name: row.name,
                    exists: row.exists,
                    size: row.size,
                });
            }
        }
    }
    let team_registry = configs
        .iter()
        .filter_map(|config| {
            let team = config.registry.as_ref()?;
            Some(TeamRegistryReport {
                project: config.project.value.clone(),
                registry: team.value.to_string(),
                last_event: crate::remote::last_event(state, &config.project.value),
            })
        })
        .collect();
    let saved = workspaces.iter().fold(Saved::default(), |mut sum, w| {
        sum += w.saved;
        sum
    });
    Report {
        team_registry,
        ahead: ahead_reports(state, daemon.as_ref()),
        saved,
        engine: EngineState {
            up: live.engine.is_some(),
            error: live.error,
        },
        daemon,
        workspaces,
        volumes,
        volumes_measured_at,
        disk: crate::disk::view(state, here),
    }
}

/// What the engine says about one image of a workspace.
struct Probe {
    fingerprint: String,
    built: bool,
    tags: Vec<TagReport>,
}

async fn probe(
    engine: &Engine,
    config: &Config,
    spec: Option<&ImageSpec>,
    image_plan: &ImagePlan,
) -> Result<Probe, PrebuildError> {
    let fp = prebuild::fingerprint_image(engine, image_plan).await?;
    let tag = fp.tag(&config.project.value);
    let built = prebuild::built_image(engine, &tag, &fp.hex).await?;
    let mut reports = Vec::new();
    if let Some(spec) = spec {
        let deps = match engine.docker.inspect_image(&tag).await {
            Ok(image) => Deps {
                created: image.created.map(|c| c.unix_timestamp()),
                layers: image.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                changed: inputs_changed_at(&config.root, &fp.plan),
            },
            Err(_) => Deps::default(),
        };
        for name in &spec.compose_tags {
            let holder = tags::holder(
                engine,
                name,
                &config.compose_project.value,
                &spec.services.value,
            )
            .await?;
            reports.push(tag_report(name, &holder, &fp.hex, &deps));
        }
    }
    Ok(Probe {
        fingerprint: fp.hex,
        built,
        tags: reports,
    })
}

/// When the dependency stage's inputs (and the Dockerfile) last changed on disk, in seconds
/// since the epoch: a compose build made after that used them.
fn inputs_changed_at(root: &Path, deps: &crate::fingerprint::Plan) -> Option<i64> {
    let mtime = |p: &Path| {
        let t = std::fs::metadata(p).and_then(|m| m.modified()).ok()?;
        Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64)
    };
    deps.inputs
        .iter()
        .filter_map(|i| mtime(&root.join(&i.path)))
        .chain(mtime(&deps.dockerfile_path))
        .max()
}

/// The current dependency image, as compose's images are compared with it.
#[derive(Default)]
struct Deps {
    created: Option<i64>,
    layers: Vec<String>,
    /// See [`inputs_changed_at`].
    changed: Option<i64>,
}

impl Deps {
    /// Whether an image compose built holds the current dependencies: its layers start with
    /// the dependency image's (a final stage built on the dependency stage), or, when the
    /// final stage only copies from it, it was made after both the dependency image and the
    /// inputs' last change. Never "current" on a doubt: a false "stale" is a warning, a false
    /// "warm" a service run on old dependencies.
    fn holds_current(&self, created: Option<i64>, layers: &[String]) -> bool {
        if !self.layers.is_empty() && layers.starts_with(&self.layers) {
            return true;
        }
        match (created, self.created, self.changed) {
            (Some(c), Some(d), Some(t)) => c >= d && c >= t,
            _ => false,
        }
    }
}

fn tag_report(name: &str, holder: &Holder, fingerprint: &str, deps: &Deps) -> TagReport {
    let (holder, current) = match holder {
        Holder::Missing => ("missing", false),
        Holder::Ours { fingerprint: f } => ("dockwarm", f.as_deref() == Some(fingerprint)),
        Holder::Compose { created, layers } => ("compose", deps.holds_current(*created, layers)),
        Holder::Other => ("other", false),
    };
    TagReport {
        name: name.to_string(),
        holder,
        current,
    }
}

/// Why the names that do not hold the current build do not (None: they all do).
fn stale_why(tags: &[TagReport]) -> Option<String> {
    let why: Vec<String> = tags
        .iter()
        .filter(|t| !t.current)
        .map(|t| match t.holder {
            "missing" => format!("`{}` does not exist yet (`docker compose up` would build it)", t.name),
            "dockwarm" => format!("`{}` holds dockwarm's build of other dependencies (the next build replaces it)", t.name),
            "compose" => format!("`{}` holds an image `docker compose build` made, not (as far as its layers and times tell) on the current dependencies (the next build replaces it)", t.name),
            _ => format!("`{}` holds an image neither dockwarm nor compose built for this service, which dockwarm leaves alone: `docker compose up --no-build` runs it; `docker rmi {}` lets the next build tag it", t.name, t.name),
        })
        .collect();
    (!why.is_empty()).then(|| why.join("; "))
}

#[allow(clippy::too_many_arguments)]
async fn image(
    state: &State,
    live: &mut Live,
    daemon: Option<&DaemonStatus>,
    config: &Config,
    spec: Option<&ImageSpec>,
    image_plan: &ImagePlan,
    seen: Option<&ImageSeen>,
) -> ImageReport {
    let name = &image_plan.name;
    let mut r = ImageReport {
        image: name.clone(),
        fingerprint: seen.and_then(|s| s.fingerprint.clone()),
        exact: false,
        state: ImageState::Cold,
        tags: Vec::new(),
        last_build: None,
        error: image_plan.deps.as_ref().err().map(|e| e.to_string()),
        saved: seen.map(|s| s.saved).unwrap_or_default(),
    };
    let mut warm = false;
    let probed = match live.engine.clone() {
        Some(engine) => live.call(probe(&engine, config, spec, image_plan)).await,
        None => None,
    };
    match probed {
        Some(Ok(p)) => {
            r.fingerprint = Some(p.fingerprint);
            r.exact = true;
            warm = p.built;
            r.tags = p.tags;
        }
        Some(Err(e)) => r.error = Some(e.to_string()),
        None => {
            if let (Some(d), Some(s)) = (&image_plan.inputs_digest, seen) {
                // Without the engine: warm as far as the state directory knows.
                warm = s.built() == Some(d.as_str());
            }
        }
    }
    let root = &config.root;
    let own = r
        .fingerprint
        .as_deref()
        .and_then(|f| state.build_record(f, root));
    let running = own
        .as_ref()
        .filter(|b| b.phase.is_some() && build_runs(state, root, &b.fingerprint));
    let phase = running.and_then(|b| b.phase);
    let has = |j: &JobView| {
        j.project == config.project.value
            && j.image == *name
            && j.workspaces.iter().any(|w| w == root)
    };
    let daemon_says = daemon.and_then(|d| {
        if d.running.iter().any(has) {
            Some(ImageState::Building { phase })
        } else if d.queued.iter().any(has) {
            Some(ImageState::Queued)
        } else if d
            .failed
            .iter()
            .any(|f| f.workspace == *root && f.image == *name)
        {
            Some(ImageState::Failed)
        } else {
            None
        }
    });
    let failed = own.as_ref().is_some_and(|b| {
        b.phase.is_none()
            && (b.status == "failed"
                || b.workspace_image
                    .as_ref()
                    .is_some_and(|w| w.status == "failed"))
    });
    r.state = match daemon_says {
        Some(s) => s,
        None if running.is_some() => ImageState::Building { phase },
        None if warm => match stale_why(&r.tags) {
            Some(why) => ImageState::Stale { why },
            None => ImageState::Warm,
        },
        None if failed => ImageState::Failed,
        None => ImageState::Cold,
    };
    let running = running.is_some();
    r.last_build = last_build(state, own, r.fingerprint.as_deref(), running);
    r
}

/// Whether a build of `workspace` (full) or of `fingerprint` (its dependency image) runs now:
/// their locks are held.
fn build_runs(state: &State, workspace: &Path, fingerprint: &str) -> bool {
    crate::daemon::orphans::busy(state, workspace)
        || matches!(state.try_lock(&format!("build-{fingerprint}")), Ok(None))
}

/// This workspace's record, else the build elsewhere that made the fingerprint. A record of
/// a build that no longer `running` (killed mid-way) says "interrupted".
fn last_build(
    state: &State,
    own: Option<BuildRecord>,
    fingerprint: Option<&str>,
    running: bool,
) -> Option<LastBuild> {
    let (mut record, elsewhere) = match own {
        Some(r) => (r, false),
        None => {
            let r = state
                .build_records(fingerprint?)
                .into_iter()
                .filter(|r| r.status == "built")
                .max_by_key(|r| r.finished_at)?;
            (r, true)
        }
    };
    if record.phase.is_some() && !running {
        record.status = "interrupted".into();
    }
    Some(LastBuild {
        status: record.status,
        finished_at: record.finished_at,
        duration_ms: record.duration_ms,
        dependency_ms: record.dependency_ms,
        workspace_image: record.workspace_image,
        log: record.log,
        elsewhere,
    })
}

/// The build logs of one image that explain this workspace's current state, oldest first: the
/// dependency build of its current fingerprint (its own, else the build that made it) and its
/// own workspace image's build on it. Never another fingerprint's. The fingerprint is the
/// engine's (bounded by `deadline`), else the last one built here.
pub async fn current_logs(
    state: &State,
    engine: Option<&Engine>,
    deadline: Instant,
    config: &Config,
    image_plan: &ImagePlan,
) -> Vec<PathBuf> {
    let exact = match engine {
        Some(engine) => tokio::time::timeout_at(
            deadline.into(),
            prebuild::fingerprint_image(engine, image_plan),
        )
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|f| f.hex),
        None => None,
    };
    let fingerprint = exact.or_else(|| {
        registry::get(state, &config.root)?
            .images
            .get(&image_plan.name)?
            .fingerprint
            .clone()
    });
    let Some(fp) = fingerprint else {
        return Vec::new();
    };
    let own = state.build_record(&fp, &config.root);
    let mut logs = Vec::new();
    let deps_log = own.as_ref().and_then(|r| r.log.clone()).or_else(|| {
        state
            .build_records(&fp)
            .into_iter()
            .filter(|r| r.status == "built")
            .max_by_key(|r| r.finished_at)
            .and_then(|r| r.log)
    });
    logs.extend(deps_log);
    let workspace_built = own.as_ref().is_some_and(|r| {
        r.phase == Some(Phase::WorkspaceImage)
            || r.workspace_image.as_ref().is_some_and(|w| w.log.is_some())
    });
    if workspace_built {
        let spec = config.images.iter().find(|i| i.name == image_plan.name);
        if let Some(path) = spec.and_then(|s| prebuild::workspace_log(state, config, s).ok()) {
            logs.push(path);
        }
    }
    logs.retain(|p| p.exists());
    logs.sort_by_key(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    });
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn compose_images_count_as_current_only_on_the_current_dependencies() {
        let deps = Deps {
            created: Some(100),
            layers: layers(&["a", "b"]),
            changed: Some(90),
        };
        // Built on the dependency stage: its layers start with the dependency image's.
        assert!(deps.holds_current(Some(10), &layers(&["a", "b", "c"])));
        // Other dependencies, made before the current ones.
        assert!(!deps.holds_current(Some(50), &layers(&["a", "x", "c"])));
        // Copied from it (other layers), made after both: current.
        assert!(deps.holds_current(Some(120), &layers(&["z"])));
        // No times: never current on a doubt.
        assert!(!deps.holds_current(None, &layers(&["z"])));
        let no_deps = Deps::default();
        assert!(!no_deps.holds_current(Some(120), &layers(&["a"])));
    }

    #[test]
    fn stale_names_every_name_that_does_not_hold_the_current_build() {
        let deps = Deps::default();
        let tags = [
            tag_report(
                "p-app",
                &Holder::Ours {
                    fingerprint: Some("f".into()),
                },
                "f",
                &deps,
            ),
            tag_report("p-worker", &Holder::Other, "f", &deps),
            tag_report("p_app", &Holder::Missing, "f", &deps),
        ];
        assert!(tags[0].current && !tags[1].current && !tags[2].current);
        let why = stale_why(&tags).unwrap();
        assert!(
            why.contains("`p-worker`") && why.contains("`p_app`"),
            "{why}"
        );
        assert!(!why.contains("`p-app`"), "{why}");
        assert_eq!(stale_why(&tags[..1]), None);
    }
}
