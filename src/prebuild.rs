//! Prebuilding dependency stages: once per fingerprint, whichever workspace asks first.

use std::collections::BTreeMap;
use std::time::Instant;

use bollard::query_parameters::{CreateImageOptions, TagImageOptions};
use futures_util::StreamExt;

use crate::build::{BuildFailure, Builder, Request};
use crate::config::{Backend, Config, ImageSpec};
use crate::engine::{labels, Engine, EngineError};
use crate::error::Classify;
use crate::fingerprint::{self, BaseImage, Fingerprint, FingerprintError, Plan};
use crate::plan::{ImagePlan, WorkspacePlan};
use crate::progress::BuildLog;
use crate::registry;
use crate::state::{now_secs, BuildRecord, Phase, StageRecord, State, StateError};

/// Why a prebuild stopped; its [`crate::error::Classify`] answer tells a file to fix from a retry.
#[derive(Debug, thiserror::Error)]
pub enum PrebuildError {
    /// The dependency stage's inputs could not be read or fingerprinted.
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    /// The image's plan failed (its text: the plan keeps the error itself).
    #[error("{message}")]
    Plan {
        /// The plan's error, as the user sees it.
        message: String,
        /// Whether it is the user's to fix in a file (exit code 2).
        usage: bool,
    },
    /// The engine refused or could not be reached (a pull, a tag, an inspect).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// dockwarm's state directory (locks, build records) could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A shared cache volume the full build mounts could not be made.
    #[error(transparent)]
    Volumes(#[from] crate::volumes::VolumeError),
    /// Only with [`Push::Now`] (`prebuild --push`): otherwise the registry never fails a build.
    #[error(transparent)]
    Registry(#[from] crate::remote::RemoteError),
    /// The build itself failed: the failing step and the log file to read.
    #[error("image `{image}`: {failure}; full log: {log}")]
    Build {
        /// The configured image whose build failed.
        image: String,
        /// The failing step, the builder's message and the log's last lines.
        failure: BuildFailure,
        /// The build's full log file, which the one-line error points the user to
        /// ("(no build started)" when no builder could be chosen).
        log: String,
    },
}

impl crate::error::Classify for PrebuildError {
    /// The plan's answer: a file to fix only when the fingerprint or plan says so (it wraps
    /// [`FingerprintError`] transparently, so that error is not in the chain to ask itself);
    /// an engine, state or build failure is not the user's to edit.
    fn is_usage(&self) -> bool {
        match self {
            PrebuildError::Fingerprint(f) => f.is_usage(),
            PrebuildError::Plan { usage, .. } => *usage,
            _ => false,
        }
    }
}

impl From<bollard::errors::Error> for PrebuildError {
    fn from(e: bollard::errors::Error) -> Self {
        PrebuildError::Engine(e.into())
    }
}

/// What became of one image's dependency stage (`status` in `prebuild --json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Built now.
    Built,
    /// The fingerprint's image was already there.
    AlreadyBuilt,
    /// Pulled from the team registry instead of built.
    Pulled,
    /// Not built: the inputs changed while the workspace's image was built before it, so the
    /// context no longer matches the fingerprint; the next build takes the new inputs.
    InputsChanged,
}

/// What one image's dependency prebuild did: the row `prebuild` prints and the JSON it gives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The configured image's name.
    pub image: String,
    /// The dependency image's tag, named for its fingerprint
    /// (`dockwarm/<project>-<image>-deps:<12 hex>`).
    pub tag: String,
    /// The full fingerprint of the dependency stage's inputs.
    pub fingerprint: String,
    /// Whether it was built, already here, pulled or left to the next build.
    pub status: Status,
    /// The builder that built it (`buildx`, `bollard`); None when nothing was built.
    pub backend: Option<String>,
    /// Wall time spent on this image, in milliseconds, fingerprinting included.
    pub duration_ms: u64,
    /// Where the dependency image came from: `built`, `pulled`, `present` (already here) or
    /// `none` (left to the next build).
    pub source: &'static str,
    /// What happened with the team registry, in one line (None without one).
    pub registry: Option<String>,
    /// The project (prefix of shared names) the image belongs to.
    #[serde(skip)]
    pub project: String,
    /// Whether the team registry answered and lacks this fingerprint (a push is worth it).
    #[serde(skip)]
    pub push_owed: bool,
}

impl Status {
    /// The `source` of an [`Outcome`].
    pub fn source(&self) -> &'static str {
        match self {
            Status::Built => "built",
            Status::Pulled => "pulled",
            Status::AlreadyBuilt => "present",
            Status::InputsChanged => "none",
        }
    }
}

/// When a dependency image built here goes to the team registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// A detached child pushes it, so the local warm-up never waits (the default).
    Background,
    /// Now, before returning, and failing if it cannot (`prebuild --push`, for CI); also
    /// images that were already here but are missing from the registry.
    Now,
}

/// How [`run`] prebuilds: chosen by the command (foreground, hook, daemon), not the config.
pub struct Options {
    /// The build client to use (`auto` is resolved once, on the first build owed).
    pub backend: Backend,
    /// No terminal progress (background runs); the log file still gets everything.
    pub quiet: bool,
    /// Also build the workspace's own image and tag it with its compose names.
    pub full: bool,
    /// Pushing to the team registry (when one is configured).
    pub push: Push,
}

/// What [`run`] did for one image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageResult {
    /// The dependency stage's outcome (flattened into the image's JSON object).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// With [`Options::full`]: the workspace's image (None when the workspace was archived
    /// while its build ran: it gets no tags).
    pub workspace_image: Option<WorkspaceImage>,
}

/// Prebuilds the named images of a workspace's plan (all when `names` is empty): each
/// dependency stage once per fingerprint and, with [`Options::full`], the workspace's own
/// image under its compose names, recorded in the registry. The plan is the one the caller
/// computed (or reused): nothing here plans again.
pub async fn run(
    engine: &Engine,
    state: &State,
    plan: &WorkspacePlan,
    names: &[String],
    options: &Options,
) -> Result<Vec<ImageResult>, PrebuildError> {
    let config = &plan.config;
    let selected = config.select(names).map_err(|e| PrebuildError::Plan {
        message: e.to_string(),
        usage: true,
    })?;
    if options.full {
        crate::volumes::ensure(engine, config).await?;
    }
    let mut builder = None;
    let mut results = Vec::new();
    for image in selected {
        let image_plan = plan.image(&image.name).ok_or_else(|| PrebuildError::Plan {
            message: format!("image `{}` has no plan", image.name),
            usage: false,
        })?;
        let deps = planned_deps(image_plan)?;
        // A workspace archived meanwhile gets no new tags: its archive already ran.
        let full = options.full && registry::get(state, &config.root).is_some();
        let (outcome, first) = prebuild_image(
            engine,
            state,
            plan,
            image,
            image_plan,
            deps,
            full,
            &mut builder,
            options,
        )
        .await?;
        let mut result = ImageResult {
            outcome,
            workspace_image: None,
        };
        if let Some(team) = &config.registry {
            share(
                engine,
                state,
                &config.root,
                &team.value,
                &mut result.outcome,
                options,
            )
            .await?;
        }
        if full {
            let built = match first {
                Some(built) => built?,
                None => {
                    // The dependency image was there: this workspace's record says so, and
                    // what its own image took (a record it already has keeps its status).
                    let fp = &result.outcome.fingerprint;
                    let mut record = state
                        .build_record(fp, &config.root)
                        .filter(|r| r.workspace.is_some() && r.phase.is_none())
                        .unwrap_or_else(|| {
                            let mut r = new_record(config, image, &result.outcome.tag, fp);
                            r.status = "cached".into();
                            r.dependency_ms = Some(0);
                            r
                        });
                    record.phase = Some(Phase::WorkspaceImage);
                    let _ = state.write_build_record(&record);
                    let built = build_workspace_image(
                        engine,
                        state,
                        config,
                        image,
                        image_plan,
                        fp,
                        &mut builder,
                        options,
                    )
                    .await;
                    record.phase = None;
                    // Names moved to an identical image: when this workspace built it, its
                    // record of that build still says what the names hold.
                    let stage = stage_record(state, config, image, &built);
                    let kept = stage.status == "reused"
                        && record
                            .workspace_image
                            .as_ref()
                            .is_some_and(|w| w.status == "built");
                    if !kept {
                        record.workspace_image = Some(stage);
                    }
                    let _ = state.write_build_record(&record);
                    built?
                }
            };
            if registry::get(state, &config.root).is_none() {
                for tag in &built.tags {
                    let _ = crate::pending::remove_tag(engine, tag).await;
                }
            } else {
                let warm = avoided_cold_build(state, &result.outcome);
                // The build counts for these inputs only if they held still while it ran (a
                // checkout mid-build leaves the new inputs owed), and only if the dependency
                // image was made (inputs that moved and came back still left it unbuilt).
                let held = plan.still_current() && result.outcome.status != Status::InputsChanged;
                registry::update(state, &config.root, |w| {
                    let seen = w.images.entry(image.name.clone()).or_default();
                    if let Some(avoided) = warm {
                        if seen.fingerprint.as_deref() != Some(&result.outcome.fingerprint) {
                            let took = result.outcome.duration_ms + built.duration_ms;
                            seen.saved.add(avoided, took);
                        }
                    }
                    seen.fingerprint = Some(result.outcome.fingerprint.clone());
                    seen.tags = built.tags.clone();
                    if held {
                        seen.built_digest = image_plan.inputs_digest.clone();
                    }
                })?;
                result.workspace_image = Some(built);
            }
        }
        results.push(result);
    }
    Ok(results)
}

/// After one image's prebuild, its dependency image goes to the team registry: a built one
/// in the background (a detached `dockwarm registry push-image`), or with [`Push::Now`] any
/// the registry lacks, before returning.
async fn share(
    engine: &Engine,
    state: &State,
    root: &std::path::Path,
    team: &crate::remote::TeamRegistry,
    outcome: &mut Outcome,
    options: &Options,
) -> Result<(), PrebuildError> {
    match (options.push, &outcome.status) {
        (Push::Background, Status::Built) if outcome.push_owed => {
            let to = team.to_string();
            let mut args = vec![
                "registry",
                "push-image",
                "--to",
                &to,
                "--image",
                &outcome.image,
                "--fingerprint",
                &outcome.fingerprint,
                "--project",
                &outcome.project,
            ];
            if team.plain_http {
                args.push("--plain-http");
            }
            let push =
                match crate::background::spawn_logged(state, root, &args, "registry-push.log") {
                    Ok(pid) => format!("pushing it in the background (pid {pid})"),
                    Err(e) => format!("cannot start the push: {e}"),
                };
            // Beside the line that said why it was built here.
            outcome.registry = Some(match outcome.registry.take() {
                Some(why) => format!("{why}; {push}"),
                None => format!("team registry {team}: {push}"),
            });
        }
        (Push::Now, Status::Built | Status::AlreadyBuilt) => {
            let line = crate::remote::push_missing(
                engine,
                state.env(),
                team,
                &outcome.project,
                &outcome.image,
                &outcome.fingerprint,
                &outcome.tag,
            )
            .await
            .inspect_err(|e| {
                crate::remote::record_event(state, &outcome.project, false, &e.to_string())
            })?;
            crate::remote::record_event(state, &outcome.project, true, &line);
            outcome.registry = Some(line);
        }
        _ => {}
    }
    Ok(())
}

/// Pulls the fingerprint's dependency image from the team registry. Ok: what happened, in one
/// line. Err: why not, in one line, and whether a push would still be worth trying (the
/// registry answered and only lacked the tag).
async fn pull_from_team(
    engine: &Engine,
    env: &crate::env::Env,
    team: &crate::remote::TeamRegistry,
    project: &str,
    image: &str,
    fp: &str,
    tag: &str,
) -> Result<String, (bool, String)> {
    let short = &fp[..12.min(fp.len())];
    let failed = |e: crate::remote::RemoteError| (false, format!("{e}; building locally"));
    let client = crate::remote::Team::new(team, env).map_err(failed)?;
    match client.has(project, image, fp).await {
        Ok(true) => {}
        Ok(false) => {
            return Err((
                true,
                format!(
                    "team registry {team} does not hold fingerprint {short} yet; building locally"
                ),
            ))
        }
        Err(e) => return Err(failed(e)),
    }
    client
        .pull(engine, project, image, fp, tag)
        .await
        .map_err(failed)?;
    Ok(format!(
        "pulled fingerprint {short} from team registry {team}"
    ))
}

/// A pulled dependency image's record: status shows where it came from and how long the
/// pull took.
fn write_pulled_record(state: &State, config: &Config, image: &ImageSpec, pulled: &Outcome) {
    let mut record = new_record(config, image, &pulled.tag, &pulled.fingerprint);
    record.status = "pulled".into();
    record.duration_ms = pulled.duration_ms;
    let _ = state.write_build_record(&record);
}

async fn base_images(
    engine: &Engine,
    references: &[String],
) -> Result<Vec<BaseImage>, PrebuildError> {
    let mut bases = Vec::new();
    for reference in references {
        bases.push(BaseImage {
            reference: reference.clone(),
            id: engine.image_id(reference).await?,
        });
    }
    Ok(bases)
}

/// A workspace's record of a fingerprint, before its build: "building", now.
fn new_record(config: &Config, image: &ImageSpec, tag: &str, fingerprint: &str) -> BuildRecord {
    BuildRecord {
        fingerprint: fingerprint.to_string(),
        project: config.project.value.clone(),
        image: image.name.clone(),
        tag: tag.to_string(),
        status: "building".into(),
        backend: String::new(),
        finished_at: now_secs(),
        duration_ms: 0,
        log: None,
        error: None,
        workspace: Some(config.root.clone()),
        dependency_ms: None,
        workspace_image: None,
        phase: None,
    }
}

/// What a workspace image build gave, for its record.
fn stage_record(
    state: &State,
    config: &Config,
    image: &ImageSpec,
    built: &Result<WorkspaceImage, PrebuildError>,
) -> StageRecord {
    let log = workspace_log(state, config, image).ok();
    match built {
        Ok(w) => StageRecord {
            status: if w.reused {
                "reused"
            } else if w.tags.is_empty() {
                "skipped"
            } else {
                "built"
            }
            .into(),
            duration_ms: w.duration_ms,
            log: log.filter(|_| !w.reused && !w.tags.is_empty()),
        },
        Err(_) => StageRecord {
            status: "failed".into(),
            duration_ms: 0,
            log,
        },
    }
}

/// The log of this workspace's own image builds (one per workspace and image, rewritten by
/// each build).
pub fn workspace_log(
    state: &State,
    config: &Config,
    image: &ImageSpec,
) -> Result<std::path::PathBuf, StateError> {
    state.log_path(&config.compose_project.value, &image.name, "workspace")
}

/// A build record that does not read (see `doctor`) is replaced by a "cached" one when the
/// fingerprint's image is found built, so status shows it again instead of skipping it forever.
fn repair_record(state: &State, config: &Config, image: &ImageSpec, tag: &str, fingerprint: &str) {
    if !state.build_record_is_corrupt(fingerprint, &config.root) {
        return;
    }
    let mut record = new_record(config, image, tag, fingerprint);
    record.status = "cached".into();
    let _ = state.write_build_record(&record);
}

/// The tagged image of a fingerprint, if it exists with our labels.
pub async fn built_image(
    engine: &Engine,
    tag: &str,
    fingerprint: &str,
) -> Result<bool, PrebuildError> {
    match engine.docker.inspect_image(tag).await {
        Ok(image) => {
            let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
            Ok(labels.get(labels::FINGERPRINT).map(String::as_str) == Some(fingerprint))
        }
        Err(e) if crate::engine::is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// For a prebuild that found its fingerprint already built, the cold build it spared this
/// workspace: the measured duration of that fingerprint's build (a `--full` one covers the
/// workspace image built with it).
fn avoided_cold_build(state: &State, outcome: &Outcome) -> Option<u64> {
    if outcome.status != Status::AlreadyBuilt {
        return None;
    }
    state
        .build_records(&outcome.fingerprint)
        .into_iter()
        .filter(|r| r.status == "built")
        .map(|r| r.duration_ms)
        .max()
}

/// The fingerprint of an image of a plan, with base image IDs from the engine; the plan's
/// error when the image has none.
pub async fn fingerprint_image(
    engine: &Engine,
    image: &ImagePlan,
) -> Result<Fingerprint, PrebuildError> {
    fingerprint_of(engine, planned_deps(image)?).await
}

/// The image's dependency stage, or the plan's error for it (the plan keeps the error itself).
fn planned_deps(image: &ImagePlan) -> Result<&Plan, PrebuildError> {
    image.deps.as_ref().map_err(|e| PrebuildError::Plan {
        message: e.to_string(),
        usage: e.is_usage(),
    })
}

/// The fingerprint of an image's planned dependency stage, with base image IDs from the engine.
pub async fn fingerprint_of(engine: &Engine, deps: &Plan) -> Result<Fingerprint, PrebuildError> {
    let bases = base_images(engine, &deps.deps.base_images).await?;
    Ok(fingerprint::fingerprint(deps.clone(), bases))
}

/// What a workspace's image build, run first, gave.
type FirstBuild = Result<WorkspaceImage, PrebuildError>;

/// Builds the dependency stage of one image unless its fingerprint is built already.
///
/// With `full`, when the dependency build is owed, the workspace's own image is built first,
/// under the fingerprint's lock, and comes back beside the outcome: on the engine's BuildKit
/// the cost of an export is registering new layers, and one export of the whole chain costs
/// less than two (see [`crate::build`]); the dependency image then finds every step CACHED
/// and every layer registered. Should the inputs change while that runs, the dependency
/// build is left to the next build ([`Status::InputsChanged`]): it would read the new ones
/// under this fingerprint's tag.
#[allow(clippy::too_many_arguments)]
async fn prebuild_image(
    engine: &Engine,
    state: &State,
    plan: &WorkspacePlan,
    image: &ImageSpec,
    image_plan: &ImagePlan,
    deps: &Plan,
    full: bool,
    builder: &mut Option<Builder>,
    options: &Options,
) -> Result<(Outcome, Option<FirstBuild>), PrebuildError> {
    let started = Instant::now();
    let config = &plan.config;
    let project = config.project.value.as_str();
    let mut fp = fingerprint_of(engine, deps).await?;
    if fp.bases.iter().any(|b| b.id.is_none()) {
        // Pull missing bases first, so the fingerprint (and so the tag) covers their IDs.
        pull_missing(engine, &fp.bases).await;
        let bases = base_images(engine, &fp.plan.deps.base_images).await?;
        fp = fingerprint::fingerprint(fp.plan, bases);
    }
    let tag = fp.tag(project);
    let outcome = |status: Status, backend: Option<&str>| Outcome {
        image: image.name.clone(),
        tag: tag.clone(),
        fingerprint: fp.hex.clone(),
        source: status.source(),
        status,
        backend: backend.map(str::to_string),
        duration_ms: started.elapsed().as_millis() as u64,
        registry: None,
        project: project.to_string(),
        push_owed: false,
    };
    if built_image(engine, &tag, &fp.hex).await? {
        repair_record(state, config, image, &tag, &fp.hex);
        return Ok((outcome(Status::AlreadyBuilt, None), None));
    }

    // One build per fingerprint across all workspaces and processes: whoever holds the lock
    // builds; the others wait and then find the image built.
    let lock_name = format!("build-{}", fp.hex);
    let _guard = match state.try_lock(&lock_name)? {
        Some(g) => g,
        None => {
            if !options.quiet {
                eprintln!(
                    "{}: another dockwarm is building fingerprint {}; waiting for it",
                    image.name,
                    fp.short()
                );
            }
            lock_blocking(state.clone(), lock_name).await?
        }
    };
    if built_image(engine, &tag, &fp.hex).await? {
        repair_record(state, config, image, &tag, &fp.hex);
        return Ok((outcome(Status::AlreadyBuilt, None), None));
    }

    // Another machine may have built it: pulling costs the transfer, building the install.
    let mut registry_line = None;
    let mut push_owed = false;
    if let Some(team) = &config.registry {
        match pull_from_team(
            engine,
            state.env(),
            &team.value,
            project,
            &image.name,
            &fp.hex,
            &tag,
        )
        .await
        {
            Ok(line) => {
                crate::remote::record_event(state, project, true, &line);
                let mut pulled = outcome(Status::Pulled, None);
                write_pulled_record(state, config, image, &pulled);
                pulled.registry = Some(line);
                return Ok((pulled, None));
            }
            Err((answered, line)) => {
                // In the background (and under --json) stderr is the log; in a terminal the
                // command prints the outcome's line.
                if options.quiet {
                    eprintln!("dockwarm: {}: {line}", image.name);
                }
                crate::remote::record_event(state, project, false, &line);
                registry_line = Some(line);
                push_owed = answered;
            }
        }
    }

    // This workspace's record says what runs now, then what happened.
    let log_path = state.build_log_path(project, &image.name, &fp.hex, &config.root)?;
    let mut record = new_record(config, image, &tag, &fp.hex);
    record.log = Some(log_path.clone());
    record.phase = Some(if full {
        Phase::WorkspaceImage
    } else {
        Phase::DependencyImage
    });
    let _ = state.write_build_record(&record);
    let first = if full {
        let built = build_workspace_image(
            engine, state, config, image, image_plan, &fp.hex, builder, options,
        )
        .await;
        record.workspace_image = Some(stage_record(state, config, image, &built));
        Some(built)
    } else {
        None
    };
    if first.is_some() && !plan.still_current() {
        record.status = "skipped".into();
        record.phase = None;
        record.error =
            Some("the inputs changed during the build; the next build takes them".into());
        let _ = state.write_build_record(&record);
        let mut changed = outcome(Status::InputsChanged, None);
        changed.registry = registry_line;
        return Ok((changed, first));
    }
    record.phase = Some(Phase::DependencyImage);
    let _ = state.write_build_record(&record);
    let deps_started = Instant::now();

    let builder = choose_builder(engine, options, image, builder).await?;
    let mut log = BuildLog::new(Some(&log_path), &image.name, options.quiet);
    state.rotate_logs(project, &image.name, crate::state::LOGS_KEPT);
    let build_labels = managed_labels(project, &image.name, &fp.hex, None);
    let scratch = state.dir("dockerfiles")?.join(&fp.hex);
    let tags = [tag.clone()];
    let named_contexts = image.named_context_dirs(&config.root);
    let request = Request {
        context_dir: &fp.plan.context_dir,
        dockerfile_path: &fp.plan.dockerfile_path,
        dockerfile_text: (fp.plan.deps.truncated || image.dockerfile_inline.is_some())
            .then_some(fp.plan.deps.dockerfile_text.as_str()),
        target: fp.plan.deps.build_target.as_deref(),
        network: image.network.value.as_deref(),
        cache_from: &[],
        inline_cache: true,
        args: &fp.plan.args,
        named_contexts: &named_contexts,
        labels: &build_labels,
        tags: &tags,
        scratch_dir: &scratch,
    };
    let result = builder.build(&request, &mut log).await;
    log.finish();
    let _ = std::fs::remove_dir_all(&scratch);
    record.status = "built".into();
    record.phase = None;
    record.backend = builder.name().into();
    record.finished_at = now_secs();
    // With `full`, the workspace image's build too: the whole cold build.
    record.duration_ms = started.elapsed().as_millis() as u64;
    record.dependency_ms = Some(deps_started.elapsed().as_millis() as u64);
    match result {
        Ok(()) => {
            state.write_build_record(&record)?;
            let mut built = outcome(Status::Built, Some(builder.name()));
            built.registry = registry_line;
            built.push_owed = push_owed;
            Ok((built, first))
        }
        Err(failure) => {
            record.status = "failed".into();
            record.error = Some(failure.to_string());
            state.write_build_record(&record)?;
            Err(PrebuildError::Build {
                image: image.name.clone(),
                failure,
                log: log_path.display().to_string(),
            })
        }
    }
}

/// What `build_workspace_image` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkspaceImage {
    /// The configured image it was built from.
    pub image: String,
    /// The compose names now pointing at the built image.
    pub tags: Vec<String>,
    /// Compose names left alone because an image dockwarm did not make holds them.
    pub skipped: Vec<String>,
    /// Tagged an image already built from identical sources instead of building.
    pub reused: bool,
    /// Wall time of the build (or of finding the reusable image), in milliseconds.
    pub duration_ms: u64,
}

/// Builds this workspace's full image (fast once the dependency stage is warm) and tags it with
/// the names compose gives it, so `docker compose up` starts without building.
#[allow(clippy::too_many_arguments)]
async fn build_workspace_image(
    engine: &Engine,
    state: &State,
    config: &Config,
    image: &ImageSpec,
    image_plan: &ImagePlan,
    fingerprint: &str,
    builder: &mut Option<Builder>,
    options: &Options,
) -> Result<WorkspaceImage, PrebuildError> {
    let started = Instant::now();
    let workspace = config.root.display().to_string();
    let mut tags = Vec::new();
    let mut skipped = Vec::new();
    for tag in &image.compose_tags {
        // dockwarm's and compose's own image for this service are replaced, as `docker compose
        // build` replaces them (the old image stays); a name the user tagged or pulled
        // themselves stays theirs.
        let holder = crate::tags::holder(
            engine,
            tag,
            &config.compose_project.value,
            &image.services.value,
        )
        .await?;
        if holder.replaceable() {
            tags.push(tag.clone());
        } else {
            skipped.push(tag.clone());
        }
    }
    if tags.is_empty() {
        return Ok(WorkspaceImage {
            image: image.name.clone(),
            tags,
            skipped,
            reused: false,
            duration_ms: 0,
        });
    }
    let lock = format!(
        "workspace-image-{}-{}",
        crate::registry::id(&config.root),
        image.name
    );
    let target = Target {
        tags: &tags,
        workspace: Some(&workspace),
        lock,
    };
    let (reused, _) = build_tagged(
        engine,
        state,
        config,
        image,
        image_plan,
        fingerprint,
        target,
        builder,
        options,
    )
    .await?;
    Ok(WorkspaceImage {
        image: image.name.clone(),
        tags,
        skipped,
        reused,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// What [`build_commit_image`] did.
#[derive(Debug, Clone)]
pub struct CommitImage {
    /// The tag it holds: `dockwarm/<project>-<image>-ahead:<ref>`.
    pub tag: String,
    /// An image of identical sources was there already (a workspace of that commit built it).
    pub reused: bool,
    /// The sources' digest (the image's `dev.dockwarm.source` label).
    pub source: String,
}

/// Builds the full image of a commit planned from git's objects (see `crate::ahead`): the
/// image a new workspace on that commit would build, under one dockwarm tag per ref (`slot`)
/// instead of compose names. Such a workspace then finds it by its sources' label and only
/// tags it: a new workspace on the newest main is as fast as one on a commit built before.
/// The image the tag held before is removed when nothing else names it. `fingerprint`: the
/// dependency stage's, which [`run`] built or found first.
pub async fn build_commit_image(
    engine: &Engine,
    state: &State,
    plan: &WorkspacePlan,
    name: &str,
    fingerprint: &str,
    slot: &str,
    options: &Options,
) -> Result<CommitImage, PrebuildError> {
    let config = &plan.config;
    let selected = config
        .select(&[name.to_string()])
        .map_err(|e| PrebuildError::Plan {
            message: e.to_string(),
            usage: true,
        })?;
    let image = selected.first().ok_or_else(|| PrebuildError::Plan {
        message: format!("no image `{name}`"),
        usage: true,
    })?;
    let image_plan = plan.image(name).ok_or_else(|| PrebuildError::Plan {
        message: format!("image `{name}` has no plan"),
        usage: false,
    })?;
    let project = config.project.value.as_str();
    let repo = fingerprint::repository(project, name);
    let tag = format!(
        "{}-ahead:{}",
        repo.trim_end_matches("-deps"),
        crate::compose::normalize_project_name(slot)
    );
    let before = ahead_image_id(engine, &tag).await;
    let lock = format!("ahead-image-{project}-{name}");
    let tags = [tag.clone()];
    let target = Target {
        tags: &tags,
        workspace: None,
        lock,
    };
    let mut builder = None;
    let (reused, source) = build_tagged(
        engine,
        state,
        config,
        image,
        image_plan,
        fingerprint,
        target,
        &mut builder,
        options,
    )
    .await?;
    if let Some(old) = before {
        let now = ahead_image_id(engine, &tag).await;
        if now.as_deref() != Some(old.as_str()) {
            remove_if_unnamed(engine, &old).await;
        }
    }
    Ok(CommitImage {
        tag,
        reused,
        source,
    })
}

/// The ID of the image `tag` names, when dockwarm built it for a commit (managed, no
/// workspace): only such an image is ever removed by [`build_commit_image`].
async fn ahead_image_id(engine: &Engine, tag: &str) -> Option<String> {
    let image = engine.docker.inspect_image(tag).await.ok()?;
    let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
    let ours = labels.get(labels::MANAGED).map(String::as_str) == Some("true")
        && !labels.contains_key(labels::WORKSPACE);
    if ours {
        image.id
    } else {
        None
    }
}

/// Removes image `id` when no name is left on it (a workspace that tagged it keeps it).
async fn remove_if_unnamed(engine: &Engine, id: &str) {
    let Ok(image) = engine.docker.inspect_image(id).await else {
        return;
    };
    if image.repo_tags.as_ref().is_some_and(|t| !t.is_empty()) {
        return;
    }
    let _ = engine
        .docker
        .remove_image(
            id,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

/// Where [`build_tagged`] puts the image it builds or finds.
struct Target<'a> {
    /// The names it gets.
    tags: &'a [String],
    /// The workspace it is built for (its label); `None` for a commit's image built ahead.
    workspace: Option<&'a str>,
    /// The state lock held while building, so one image is not built twice side by side.
    lock: String,
}

/// Builds the full image of `image` (or finds one built from identical sources) and gives it
/// `target`'s names: whether it was found rather than built, and its source digest.
#[allow(clippy::too_many_arguments)]
async fn build_tagged(
    engine: &Engine,
    state: &State,
    config: &Config,
    image: &ImageSpec,
    image_plan: &ImagePlan,
    fingerprint: &str,
    target: Target<'_>,
    builder: &mut Option<Builder>,
    options: &Options,
) -> Result<(bool, String), PrebuildError> {
    let project = config.project.value.as_str();
    let tags = target.tags;
    let _guard = lock_blocking(state.clone(), target.lock.clone()).await?;
    let context_dir = config.root.join(&image.context.value);
    let dockerfile_path = config.root.join(&image.dockerfile.value);
    let args = image.arg_values();
    let mut build_labels = managed_labels(project, &image.name, fingerprint, target.workspace);

    // Workspaces of one repository mostly hold the same files (a fresh `git worktree add`
    // does): an image already built from identical sources only needs this workspace's names.
    let source = source_digest(image, image_plan, fingerprint, &dockerfile_path)?;
    build_labels.insert(labels::SOURCE.to_string(), source.clone());
    if let Some(id) = image_with_label(engine, labels::SOURCE, &source).await? {
        for tag in tags {
            let (repo, tag_part) = split_tag(tag);
            engine
                .docker
                .tag_image(
                    &id,
                    Some(TagImageOptions {
                        repo: Some(repo.into()),
                        tag: Some(tag_part.into()),
                    }),
                )
                .await?;
        }
        return Ok((true, source));
    }

    let builder = choose_builder(engine, options, image, builder).await?;
    let log_path = workspace_log(state, config, image)?;
    let mut log = BuildLog::new(Some(&log_path), &image.name, options.quiet);
    // The dependency image carries inline cache metadata: when BuildKit's own cache was pruned
    // (or evicted by its GC), the workspace build still reuses its layers.
    let deps_tag = format!(
        "{}:{}",
        fingerprint::repository(project, &image.name),
        &fingerprint[..12.min(fingerprint.len())]
    );
    let mut cache_from: Vec<String> = if built_image(engine, &deps_tag, fingerprint).await? {
        vec![deps_tag]
    } else {
        Vec::new()
    };
    // A builder with its own store (docker-container, remote) cannot read the engine's
    // images: it takes the dependency layers' cache from the team registry itself. The
    // engine's own BuildKit finds them locally and is not sent to the network.
    if let Some(team) = &config.registry {
        if !builder.uses_engine_store().await {
            cache_from.push(team.value.image_ref(project, &image.name, fingerprint));
        }
    }
    let scratch = state
        .dir("dockerfiles")?
        .join(format!("ws-{}", crate::registry::id(&config.root)));
    let named_contexts = image.named_context_dirs(&config.root);
    let request = Request {
        context_dir: &context_dir,
        dockerfile_path: &dockerfile_path,
        dockerfile_text: image.dockerfile_inline.as_ref().map(|d| d.value.as_str()),
        target: image.target.value.as_deref(),
        network: image.network.value.as_deref(),
        cache_from: &cache_from,
        inline_cache: false,
        args: &args,
        named_contexts: &named_contexts,
        labels: &build_labels,
        tags,
        scratch_dir: &scratch,
    };
    let result = builder.build(&request, &mut log).await;
    log.finish();
    result.map_err(|failure| PrebuildError::Build {
        image: image.name.clone(),
        failure,
        log: log_path.display().to_string(),
    })?;
    Ok((false, source))
}

/// sha256 over everything the workspace image is built from: the dependency fingerprint, the
/// Dockerfile, target, network and args, and every file of the context as the engine sees it
/// (the plan's context digest, computed once).
fn source_digest(
    image: &ImageSpec,
    image_plan: &ImagePlan,
    deps_fingerprint: &str,
    dockerfile_path: &std::path::Path,
) -> Result<String, PrebuildError> {
    use sha2::{Digest, Sha256};
    let files = image_plan
        .context_digest()
        .map_err(|message| PrebuildError::Plan {
            message,
            usage: false,
        })?;
    let dockerfile = match &image.dockerfile_inline {
        Some(inline) => inline.value.clone().into_bytes(),
        None => std::fs::read(dockerfile_path).map_err(|e| FingerprintError::Unreadable {
            path: dockerfile_path.display().to_string(),
            reason: e.to_string(),
        })?,
    };
    let mut h = Sha256::new();
    for part in [
        "dockwarm-source-v2",
        deps_fingerprint,
        image.target.value.as_deref().unwrap_or(""),
        image.network.value.as_deref().unwrap_or(""),
        files,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(Sha256::digest(&dockerfile));
    for (k, v) in image.arg_values() {
        h.update(format!("{}={k}={v}\0", k.len()).as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// The ID of some image carrying `key=value`, if any.
async fn image_with_label(
    engine: &Engine,
    key: &str,
    value: &str,
) -> Result<Option<String>, PrebuildError> {
    let filters =
        std::collections::HashMap::from([("label".to_string(), vec![format!("{key}={value}")])]);
    let images = engine
        .docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    Ok(images.into_iter().next().map(|i| i.id))
}

fn split_tag(tag: &str) -> (&str, &str) {
    match tag.rsplit_once(':') {
        Some((repo, t)) if !t.contains('/') => (repo, t),
        _ => (tag, "latest"),
    }
}

fn managed_labels(
    project: &str,
    image: &str,
    fingerprint: &str,
    workspace: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = [
        (labels::MANAGED, "true"),
        (labels::PROJECT, project),
        (labels::FINGERPRINT, fingerprint),
        (labels::IMAGE, image),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(w) = workspace {
        l.insert(labels::WORKSPACE.to_string(), w.to_string());
    }
    l
}

/// Waits for a state lock without blocking the runtime.
async fn lock_blocking(
    state: State,
    name: String,
) -> Result<crate::state::LockGuard, PrebuildError> {
    tokio::task::spawn_blocking(move || state.lock(&name))
        .await
        .map_err(|e| StateError::Io {
            path: "lock".into(),
            source: std::io::Error::other(e),
        })?
        .map_err(PrebuildError::from)
}

/// The builder, chosen on first use and kept for the rest of the run (`docker buildx
/// version` is asked once, not per build).
async fn choose_builder<'b>(
    engine: &Engine,
    options: &Options,
    image: &ImageSpec,
    chosen: &'b mut Option<Builder>,
) -> Result<&'b Builder, PrebuildError> {
    if chosen.is_none() {
        let builder = Builder::choose(options.backend, engine)
            .await
            .map_err(|failure| PrebuildError::Build {
                image: image.name.clone(),
                failure,
                log: "(no build started)".into(),
            })?;
        *chosen = Some(builder);
    }
    chosen.as_ref().ok_or_else(|| PrebuildError::Plan {
        message: "no builder".into(),
        usage: false,
    })
}

async fn pull_missing(engine: &Engine, bases: &[BaseImage]) {
    for base in bases.iter().filter(|b| b.id.is_none()) {
        let options = CreateImageOptions {
            from_image: Some(base.reference.clone()),
            ..Default::default()
        };
        let mut stream = engine.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            if item.is_err() {
                break;
            }
        }
    }
}
